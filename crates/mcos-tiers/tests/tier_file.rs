//! A disk tier never destroys a file it did not create, and one process owns a tier file.
//!
//! Open refuses an existing file that is not an MCOS tier file (and leaves it byte for byte),
//! reuses an MCOS tier file of the same geometry with its frames, refuses another geometry
//! unless asked to recreate, removes at close only a file it created, and refuses a second
//! opener naming the holder's pid.

// A test crate: clippy.toml allows unwrap in #[test] functions.
#![allow(clippy::unwrap_used)]

use mcos_core::BlockKey;
use mcos_tiers::{DiskTier, TierError};

#[test]
fn a_foreign_file_is_refused_and_left_intact_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let data: Vec<u8> = b"someone's precious data\n"
        .iter()
        .copied()
        .cycle()
        .take(10_000)
        .collect();
    std::fs::write(&path, &data).unwrap();
    for recreate in [false, true] {
        let err = DiskTier::open(&path, 8, 4000, recreate).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TierError::NotATierFile { .. }), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("not an MCOS tier file"), "{msg}");
        assert!(msg.contains("10000 bytes"), "{msg}");
        assert!(msg.contains("someone's"), "what was found is named: {msg}");
        assert_eq!(std::fs::read(&path).unwrap(), data, "left byte for byte");
    }
    // A directory is refused too.
    let err = DiskTier::create(dir.path(), 8, 4000).unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn a_tier_file_of_the_same_geometry_is_reused_with_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tier");
    let a = DiskTier::create(&path, 8, 4000).unwrap();
    assert!(a.created_file());
    a.write_block(5, BlockKey(42), b"kept").unwrap();
    drop(a);
    let b = DiskTier::create(&path, 8, 4000).unwrap();
    assert!(!b.created_file(), "reused, not created");
    let mut out = [0u8; 16];
    assert_eq!(b.read_block(5, BlockKey(42), &mut out).unwrap(), 4);
    assert_eq!(&out[..4], b"kept");
    assert!(!b.remove_created().unwrap(), "a reused file is not removed");
    drop(b);
    assert!(path.exists());
}

#[test]
fn another_geometry_is_refused_unless_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tier");
    let a = DiskTier::create(&path, 8, 4000).unwrap();
    a.write_block(1, BlockKey(7), b"old").unwrap();
    drop(a);
    let before = std::fs::read(&path).unwrap();
    let err = DiskTier::create(&path, 16, 4000).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TierError::TierFileMismatch { .. }), "{msg}");
    assert!(
        msg.contains("8 frames") && msg.contains("16 frames"),
        "{msg}"
    );
    assert!(msg.contains("recreate = true"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "refused untouched");
    let c = DiskTier::open(&path, 16, 4000, true).unwrap();
    assert_eq!(c.frames(), 16);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        c.file_bytes(),
        "recreated at the new size"
    );
    let mut out = [0u8; 8];
    assert!(
        c.read_block(1, BlockKey(7), &mut out).is_err(),
        "old blocks gone"
    );
}

#[test]
fn a_second_opener_is_refused_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tier");
    let a = DiskTier::create(&path, 4, 4000).unwrap();
    let err = DiskTier::create(&path, 4, 4000).unwrap_err();
    let msg = err.to_string();
    match &err {
        TierError::Locked { holder_pid, .. } => {
            assert_eq!(*holder_pid, Some(std::process::id()), "{msg}")
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        msg.contains(&format!("in use by process {}", std::process::id())),
        "{msg}"
    );
    assert!(
        path.exists(),
        "the refused opener did not remove the holder's file"
    );
    // Also with recreate: the holder's file is not touched.
    assert!(matches!(
        DiskTier::open(&path, 8, 4000, true),
        Err(TierError::Locked { .. })
    ));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), a.file_bytes());
    assert!(a.remove_created().unwrap());
    drop(a);
    assert!(!path.exists());
}

#[test]
fn a_tier_too_large_for_the_free_space_is_refused_before_reserving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.tier");
    let free = mcos_tiers::disk::free_bytes(dir.path()).unwrap();
    // Frames of 64 MiB: enough of them to exceed what is free (within the frame limit).
    let frames = u32::try_from(free / (64 << 20) + 2).unwrap();
    let err = DiskTier::create(&path, frames, 64 << 20).unwrap_err();
    match err {
        TierError::NoSpace { free_bytes, .. } => {
            assert!(free_bytes > 0, "the real free space is reported");
            assert!(free_bytes.abs_diff(free) < free / 10 + (64 << 20));
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!path.exists(), "the file this call created is removed");
}

#[test]
fn directories_created_for_the_file_are_removed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/t.tier");
    let t = DiskTier::create(&path, 4, 4000).unwrap();
    assert!(t.remove_created().unwrap());
    drop(t);
    assert!(
        !dir.path().join("a").exists(),
        "a/b created by open, removed"
    );
    // A directory that existed stays.
    std::fs::create_dir(dir.path().join("keep")).unwrap();
    let t = DiskTier::create(dir.path().join("keep/t.tier"), 4, 4000).unwrap();
    assert!(t.remove_created().unwrap());
    assert!(dir.path().join("keep").exists());
    // A refused open removes what it created too.
    let err = DiskTier::create(dir.path().join("c/d/t.tier"), 0, 4000).unwrap_err();
    assert!(matches!(err, TierError::Config(_)), "{err}");
    assert!(!dir.path().join("c").exists());
}
