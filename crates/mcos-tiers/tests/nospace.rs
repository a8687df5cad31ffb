//! A disk tier that does not fit its filesystem fails at creation with a clear `NoSpace`.
//!
//! Needs a small filesystem: a 256 KiB tmpfs mounted for the test, which takes root. Without
//! root (or where mounting is refused) the test prints why it skipped, except under CI as root,
//! where the mount must work.

// A test crate: clippy.toml allows unwrap in #[test] functions, and the helpers here are
// part of the tests (a failed unwrap is a failed test).
#![allow(clippy::unwrap_used)]

use mcos_core::BlockKey;
use mcos_tiers::{DiskTier, TierError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Unmounts on drop, so a failed assertion does not leave the mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn mount_small_tmpfs(dir: &Path) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mount(dir.to_path_buf()))
    } else {
        Err(format!(
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn disk_tier_larger_than_its_filesystem_is_no_space() {
    let root = is_root();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dir = tempfile::tempdir().unwrap();
    let mount = match mount_small_tmpfs(dir.path()) {
        Ok(m) => m,
        Err(why) if ci && root => panic!("CI runs as root, so the tmpfs mount must work: {why}"),
        Err(why) => {
            println!("skipped: {why} (root: {root})");
            return;
        }
    };

    // A superblock and 100 frames of 8 KiB stride: 804 KiB on a 256 KiB filesystem.
    let path = dir.path().join("too-big.tier");
    let err = DiskTier::create(&path, 100, 8000).unwrap_err();
    let msg = err.to_string();
    match &err {
        TierError::NoSpace {
            path: p,
            needed_bytes,
            free_bytes,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*needed_bytes, 4096 + 100 * 8192);
            // The real free space, read before reserving (posix_fallocate is never tried, so
            // the filesystem is not briefly filled and the figure is not 0).
            assert!(
                *free_bytes > 200 * 1024 && *free_bytes <= 256 * 1024,
                "free {free_bytes}"
            );
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("823296 bytes needed"), "{msg}");
    assert!(msg.contains("bytes free"), "{msg}");
    assert!(!path.exists(), "the file this call created is removed");

    // A tier that fits works on the same filesystem, and its space is really reserved.
    let small = DiskTier::create(dir.path().join("fits.tier"), 8, 4000).unwrap();
    small.write_block(7, BlockKey(1), b"fits").unwrap();
    let mut out = [0u8; 8];
    assert_eq!(small.read_block(7, BlockKey(1), &mut out).unwrap(), 4);
    println!("tmpfs direct I/O: {}", small.direct_io());
    drop(small);
    drop(mount);
}
