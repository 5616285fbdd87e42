//! How long work reports where it is without printing: the library tells a [`Progress`], and
//! only `cli/` turns that into progress bars and log lines (tests and benches pass [`Silent`]).

/// Receives a run's progress: phases of counted steps (RotNet training, one cycle's training)
/// and lines worth keeping in a log (a Slurm output file, where bars stay hidden).
pub trait Progress {
    /// A phase named `phase` of `total` steps starts, `done` of them already behind it (a
    /// resumed cycle).
    fn begin(&self, phase: &str, total: u64, done: u64);
    /// One more step of the current phase is done.
    fn step(&self);
    /// A short status of the current phase (loss, accuracy), shown until the next one.
    fn status(&self, status: &str);
    /// The current phase is over.
    fn end(&self);
    /// A line for the log, e.g. "cycle 1/3: training on 150 labels for 1000 steps".
    fn note(&self, line: &str);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _phase: &str, _total: u64, _done: u64) {}
    fn step(&self) {}
    fn status(&self, _status: &str) {}
    fn end(&self) {}
    fn note(&self, _line: &str) {}
}
