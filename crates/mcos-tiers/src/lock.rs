//! One owner per file: exclusive, non-blocking `flock` locks.
//!
//! A lock belongs to an open file description, so it lasts as long as the `File` that took it
//! and goes away with the process, however it ends (no stale locks after a crash). flock says
//! only that the file is held, not by whom, so holders write their pid where the next opener
//! can read it: the disk tier into its superblock, a run directory into its lock file.

use crate::error::TierError;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the lock file [`DirLock`] keeps in a directory.
pub const DIR_LOCK_FILE: &str = "mcos.lock";

/// Takes an exclusive lock on `file` without waiting. `Ok(false)`: another open file
/// description (another process, or another opener in this one) holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: plain system call on a descriptor `file` keeps open for the call; no memory is
        // passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// An exclusive lock on a directory: `DIR/mcos.lock`, flock'ed and holding the owner's pid.
/// Dropping it releases the lock and removes the lock file.
#[derive(Debug)]
pub struct DirLock {
    /// Holds the flock until dropped.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) for this process, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, TierError> {
        Self::acquire_within(dir, 8)
    }

    fn acquire_within(dir: &Path, attempts: u32) -> Result<DirLock, TierError> {
        let path = dir.join(DIR_LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                TierError::io(
                    format!(
                        "cannot create lock file {}: check that the directory exists and is writable",
                        path.display()
                    ),
                    e,
                )
            })?;
        let held = try_lock_exclusive(&file)
            .map_err(|e| TierError::io(format!("cannot lock {}", path.display()), e))?;
        if held && attempts > 1 && !same_file(&file, &path) {
            // The holder removed the name between our open and our lock: lock the new one.
            drop(file);
            return DirLock::acquire_within(dir, attempts - 1);
        }
        if !held {
            let mut buf = [0u8; 32];
            let n = file.read_at(&mut buf, 0).unwrap_or(0);
            let holder_pid = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            return Err(TierError::Locked {
                path: dir.to_path_buf(),
                holder_pid,
            });
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(|e| TierError::io(format!("cannot write {}", path.display()), e))?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` still names the file `file` has open (a lock on an unlinked file guards nothing).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other process can lock the name we are removing.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_locker_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        drop(first);
        assert!(!dir.path().join(DIR_LOCK_FILE).exists());
        let again = DirLock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
