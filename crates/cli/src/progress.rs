//! Download progress: a bar on a terminal (indicatif), plain lines otherwise (a log, a CI job,
//! a Kubernetes init container), all on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct DownloadProgress {
    terminal: bool,
    bar: Option<ProgressBar>,
    /// Plain lines: the file, its size, when the last line was printed, and at what count.
    file: String,
    total: Option<u64>,
    last: Option<(Instant, u64)>,
}

impl DownloadProgress {
    pub fn new() -> DownloadProgress {
        DownloadProgress { terminal: std::io::stderr().is_terminal(), bar: None, file: String::new(), total: None, last: None }
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

impl herd_store::Progress for DownloadProgress {
    fn say(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn start(&mut self, file: &str, total: Option<u64>, done: u64) {
        self.file = file.to_string();
        self.total = total;
        if done > 0 {
            eprintln!("herd: {file}: resuming at {}", mib(done));
        }
        if self.terminal {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(file.to_string());
            bar.set_position(done);
            bar.reset_eta();
            self.bar = Some(bar);
        } else {
            self.last = Some((Instant::now(), done));
        }
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        // A line every 10 seconds at most.
        let Some((at, _)) = self.last else { return };
        if at.elapsed() >= Duration::from_secs(10) {
            let of = self.total.map_or(String::new(), |n| format!(" of {} ({:.0}%)", mib(n), 100.0 * done as f64 / n.max(1) as f64));
            eprintln!("herd: {}: {}{of}", self.file, mib(done));
            self.last = Some((Instant::now(), done));
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.last = None;
    }
}
