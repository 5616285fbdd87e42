//! Files replaced whole: written beside their destination, flushed to the disk, then renamed over
//! it, so that a reader — or a crash or kill in the middle — sees the old file or the new one,
//! never a part. Every file ssal rewrites in place (results, checkpoints, caches) goes through here.
use std::io;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (see the module docs); creates the parent directory.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, |tmp| std::fs::write(tmp, bytes))
}

/// Replaces `path` by what `fill` writes to the temporary path it is given (for writers that only
/// take a path, such as libtorch's); creates the parent directory. The temporary file is removed
/// when `fill` fails.
pub fn replace(path: &Path, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = temporary_path(path);
    let written = fill(&tmp).and_then(|()| std::fs::File::open(&tmp)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is; not every file system can sync a
    // directory, and the data is safe either way, so a failure here is not an error.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.NAME.tmpPID` beside `path`: hidden, unique per process, never mistaken for the real file.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_whole_file_and_leaves_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("sub/out.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
    }

    #[test]
    fn a_failed_writer_keeps_the_old_file_and_removes_its_temporary() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("out.bin");
        write(&path, b"old").unwrap();
        let err = replace(&path, |tmp| {
            std::fs::write(tmp, b"partial")?;
            Err(io::Error::other("writer failed"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "writer failed");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
