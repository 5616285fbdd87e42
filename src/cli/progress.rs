//! A run's progress on the terminal: one bar per phase on stderr (hidden when stderr is not a
//! terminal, as in a Slurm output file) and `ssal: …` log lines, which show everywhere.
use crate::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;

/// Draws [`Progress`] with indicatif.
#[derive(Default)]
pub(super) struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            f(bar);
        }
    }
}

impl Progress for TerminalProgress {
    fn begin(&self, phase: &str, total: u64, done: u64) {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps ({eta}) {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(phase.to_string());
        bar.set_position(done);
        if let Some(old) = self.bar.lock().expect("not poisoned").replace(bar) {
            old.finish_and_clear();
        }
    }

    fn step(&self) {
        self.with_bar(|b| b.inc(1));
    }

    fn status(&self, status: &str) {
        self.with_bar(|b| b.set_message(status.to_string()));
    }

    fn end(&self) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
    }

    fn note(&self, line: &str) {
        let line = format!("ssal: {line}");
        match self.bar.lock().expect("not poisoned").as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}
