//! `herd chat`: a conversation in the terminal, or one answer per input line when stdin is not
//! a terminal (so it scripts cleanly).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use herd_engine::chat::Conversation;
use herd_engine::session::Session;
use herd_engine::Model;

use super::GenerationArgs;
use crate::model_arg;
use crate::template_arg::{self, ChatTemplateArg};

#[derive(clap::Args)]
pub struct Args {
    /// Model file or known model name (default: the default model, fetched if absent).
    #[arg(short, long)]
    model: Option<String>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    template: ChatTemplateArg,
    #[command(flatten)]
    generation: GenerationArgs,
    /// Context size in tokens (default: the model's trained context).
    #[arg(short, long)]
    ctx: Option<usize>,
    /// Threads (default: one per core).
    #[arg(short, long)]
    threads: Option<usize>,
}

const HELP: &str = "/clear forgets the conversation, /system TEXT sets the system prompt, /exit or Ctrl-D quits; Ctrl-C stops an answer";

pub fn main(args: Args) -> Result<()> {
    let params = args.generation.params()?;
    let template = args.template.compiled()?;
    let path = model_arg::resolve(args.model.as_deref())?;
    let mut model = Model::load(&path)?;
    template_arg::install(&mut model, template, &path, "")?;
    let pool = super::pool(args.threads);
    let mut conversation = Conversation::new(Session::new(&model, &pool, args.ctx)?, args.system.clone())?;

    let interactive = std::io::stdin().is_terminal();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = Arc::clone(&interrupted);
        ctrlc::set_handler(move || interrupted.store(true, Ordering::Relaxed))?;
    }
    if interactive {
        eprintln!("herd: chatting with {} (seed {}; {HELP})", model.name(), params.sampling.seed);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
        }
        interrupted.store(false, Ordering::Relaxed);
        let line = match lines.next() {
            Some(Ok(line)) => line,
            Some(Err(e)) => anyhow::bail!("reading stdin: {e}"),
            None => break,
        };
        let input = line.trim();
        match input.split_once(' ').map_or((input, ""), |(cmd, rest)| (cmd, rest.trim())) {
            ("", _) => continue,
            ("/exit" | "/quit", _) => break,
            ("/clear", _) => {
                conversation.clear();
                eprintln!("herd: conversation cleared");
                continue;
            }
            ("/system", text) => {
                conversation.set_system((!text.is_empty()).then(|| text.to_string()));
                eprintln!("herd: system prompt {}, conversation cleared", if text.is_empty() { "removed" } else { "set" });
                continue;
            }
            (cmd, _) if cmd.starts_with('/') && interactive => {
                eprintln!("herd: unknown command {cmd} ({HELP})");
                continue;
            }
            _ => {}
        }
        let mut stdout = std::io::stdout().lock();
        let result = conversation.send(input, &params, &mut |text| {
            let ok = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_ok();
            ok && !interrupted.load(Ordering::Relaxed)
        });
        let _ = writeln!(stdout);
        drop(stdout);
        match result {
            Ok(stats) if interactive => eprintln!("herd: {} tokens, {:.1} tokens/s", stats.n_generated, stats.gen_tokens_per_sec()),
            Ok(_) => {}
            // A turn that does not fit is reported, and the conversation goes on.
            Err(e) if interactive => eprintln!("herd: error: {e} (try /clear)"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
