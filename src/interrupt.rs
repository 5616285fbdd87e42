//! A run asked to stop (SIGTERM from `scancel` or a time limit, SIGUSR1 from Slurm's
//! `--signal`, SIGINT from Ctrl-C) checkpoints at the next training step and exits cleanly,
//! so the same command resumes it.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Exit code of a run stopped by a signal after saving its state (EX_TEMPFAIL: try again).
pub const EXIT_INTERRUPTED: u8 = 75;

static REQUESTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Routes SIGTERM, SIGUSR1 and SIGINT to the stop flag instead of killing the process.
pub fn install() -> std::io::Result<()> {
    let flag = REQUESTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGUSR1, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(flag))?;
    }
    Ok(())
}

/// Work that stopped early because a stop was asked for (see [`requested`]); what it had done is
/// dropped, and the caller saves what it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped by a signal")]
pub struct Stopped;

/// Whether a stop was asked for since [`install`].
pub fn requested() -> bool {
    REQUESTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
