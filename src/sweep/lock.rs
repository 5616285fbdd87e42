//! One writer per sweep: `submit`, `resume` and `cancel` hold an exclusive lock on
//! `results/<sweep>/.lock` (an OS file lock, released when the process ends, however it ends), so
//! that two of them never submit the same jobs. The file holds the holder's pid for messages.
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A held sweep lock; dropping it releases the lock.
#[derive(Debug)]
pub struct SweepLock {
    _file: File,
}

/// Errors taking the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("sweep {path} is locked by another ssal (pid {holder}) submitting or cancelling it")]
    Busy { path: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn open(dir: &Path) -> Result<(File, PathBuf), LockError> {
    let path = dir.join(".lock");
    let io = |source| LockError::Io { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    Ok((file, path))
}

fn claim(mut file: File, path: &Path) -> Result<SweepLock, LockError> {
    let io = |source| LockError::Io { path: path.to_path_buf(), source };
    file.set_len(0).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(SweepLock { _file: file })
}

impl SweepLock {
    /// Takes the lock of the sweep in `dir` if it is free; `Busy` names the holder otherwise.
    pub fn try_acquire(dir: &Path) -> Result<SweepLock, LockError> {
        let (file, path) = open(dir)?;
        match file.try_lock() {
            Ok(()) => claim(file, &path),
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
                Err(LockError::Busy {
                    path: dir.to_path_buf(),
                    holder: if holder.is_empty() { "?".into() } else { holder },
                })
            }
            Err(TryLockError::Error(source)) => Err(LockError::Io { path, source }),
        }
    }

    /// Waits until the lock of the sweep in `dir` is free and takes it.
    pub fn acquire(dir: &Path) -> Result<SweepLock, LockError> {
        let (file, path) = open(dir)?;
        file.lock().map_err(|source| LockError::Io { path: path.clone(), source })?;
        claim(file, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let t = tempfile::tempdir().unwrap();
        let first = SweepLock::try_acquire(t.path()).unwrap();
        match SweepLock::try_acquire(t.path()) {
            Err(LockError::Busy { holder, .. }) => assert_eq!(holder, std::process::id().to_string()),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        let _again = SweepLock::try_acquire(t.path()).unwrap();
    }
}
