//! Small filesystem helpers shared by the log: atomic small-file writes,
//! directory fsync and idempotent removal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Atomically replaces `dir/name` with `contents`: write a temp file, fsync it,
/// rename over the target and fsync the directory. A crash leaves either the old
/// or the new contents, never a torn file (a stray `.tmp` is cleaned up on open).
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(contents)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| Error::io("rename into place", &target, e))?;
    fsync_dir(dir)
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_contents_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_atomic(dir.path(), "f", b"one").expect("write");
        write_atomic(dir.path(), "f", b"two").expect("write");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"two");
        assert!(!dir.path().join("f.tmp").exists());
        remove_if_exists(&dir.path().join("f")).expect("remove");
        remove_if_exists(&dir.path().join("f")).expect("remove twice");
    }
}
