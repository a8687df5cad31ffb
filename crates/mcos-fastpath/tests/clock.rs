//! CLOCK replacement (`Replacement::Clock`): reference bits instead of list moves, and the
//! bounded victim scan the hardware pipeline of `mcos-hw` executes.

mod harness;

use harness::{Rig, key};
use mcos_core::{InsertPosition, PolicyTable, Replacement};
use mcos_fastpath::{Access, Insert};

fn clock_table() -> PolicyTable {
    let mut t = PolicyTable::builtin(1);
    t.replacement = Replacement::Clock;
    t
}

fn frame_of(rig: &Rig, id: u64) -> Option<u32> {
    rig.shard.peek(key(id)).map(|(_, f)| f)
}

#[test]
fn fills_take_frames_from_the_top_and_the_hand_starts_at_frame_zero() {
    let mut rig = Rig::with_table(&[4], clock_table());
    for id in 0..4 {
        assert!(!rig.touch(id));
    }
    // The free list hands out the highest local index first.
    assert_eq!(frame_of(&rig, 0), Some(3));
    assert_eq!(frame_of(&rig, 3), Some(0));
    // New blocks start unreferenced: the scan takes the hand's frame, frame 0 (block 3).
    assert!(!rig.touch(10));
    assert_eq!(frame_of(&rig, 3), None);
    assert_eq!(frame_of(&rig, 10), Some(0));
    // Hand at 1: frame 1 (block 2) goes next, unless it is hit.
    assert!(rig.touch(2));
    assert!(!rig.touch(11));
    assert_eq!(
        frame_of(&rig, 2),
        Some(1),
        "the hit set its bit: a second chance"
    );
    assert_eq!(
        frame_of(&rig, 1),
        None,
        "frame 2 (block 1) was the first clear bit"
    );
    assert_eq!(frame_of(&rig, 11), Some(2));
}

#[test]
fn lru_insertion_makes_the_new_block_the_next_victim() {
    let mut t = clock_table();
    t.classes[1].insert_position = InsertPosition::Lru;
    let mut rig = Rig::with_table(&[4], t);
    for id in 0..4 {
        rig.touch(id);
    }
    // A stream of class-1 blocks churns through one frame: each points the hand at itself.
    for id in 20..30 {
        assert!(matches!(rig.shard.access(key(id), None), Access::Miss));
        match rig.shard.insert(key(id), 1) {
            Insert::Fill { tier, frame } => rig.shard.commit_fill(key(id), tier, frame, true),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(frame_of(&rig, 29), Some(0));
    for id in 20..29 {
        assert_eq!(frame_of(&rig, id), None);
    }
    // The class-0 blocks in frames 1..3 survived the stream.
    for id in 0..3 {
        assert!(frame_of(&rig, id).is_some(), "block {id}");
    }
    assert_eq!(rig.shard.counters().evictions, 10);
}

#[test]
fn hits_move_no_frame_and_scans_are_bounded() {
    let frames = 64u32;
    let mut rig = Rig::with_table(&[frames], clock_table());
    for id in 0..u64::from(frames) {
        rig.touch(id);
    }
    for id in 0..u64::from(frames) {
        assert!(rig.touch(id), "hit {id}");
    }
    // All 64 bits set: a scan covers only VICTIM_SCAN_MAX (16) frames, so bits of frames 16..
    // stay set and the victim is the hand's frame.
    rig.touch(1000);
    assert_eq!(frame_of(&rig, 1000), Some(0));
    // Frames 1..16 were cleared by the scan: the next three victims are 1, 2, 3.
    for (n, id) in (1001..1004).enumerate() {
        rig.touch(id);
        assert_eq!(frame_of(&rig, id), Some(n as u32 + 1));
    }
    // A hit reports the same frame before and after: nothing moved.
    let f = frame_of(&rig, 40);
    assert!(
        matches!(rig.shard.access(key(40), None), Access::Hit { frame, .. } if Some(frame) == f)
    );
    assert_eq!(frame_of(&rig, 40), f);
}

#[test]
fn pinned_frames_are_skipped_and_the_window_stops_at_the_last_frame() {
    let mut rig = Rig::with_table(&[4], clock_table());
    for id in 0..4 {
        rig.touch(id);
    }
    // Block 3 sits in frame 0: pin it; the scan passes over it.
    rig.shard
        .intent(mcos_core::Intent {
            key: key(3),
            action: mcos_core::IntentAction::Pin { ttl_ticks: 0 },
        })
        .unwrap();
    rig.touch(30);
    assert_eq!(frame_of(&rig, 3), Some(0), "pinned: never a victim");
    assert_eq!(frame_of(&rig, 30), Some(1));
    // Hand at 2: frames 2, 3 are unreferenced (cleared by the last scan).
    rig.touch(31);
    assert_eq!(frame_of(&rig, 31), Some(2));
    rig.touch(32);
    assert_eq!(frame_of(&rig, 32), Some(3));
    // The window stopped at frame 3: the hand wrapped to 0 (pinned), then 1 (block 30).
    rig.touch(33);
    assert_eq!(frame_of(&rig, 30), None);
    assert_eq!(frame_of(&rig, 33), Some(1));
}

#[test]
fn switching_to_clock_and_back_keeps_every_block() {
    let mut rig = Rig::new(&[32]);
    for id in 0..32 {
        rig.touch(id);
    }
    rig.installer.try_install(&clock_table()).unwrap();
    for id in 0..32 {
        assert!(rig.touch(id), "block {id} resident across the switch");
    }
    rig.touch(100);
    assert_eq!(rig.shard.counters().evictions, 1);
    rig.installer.try_install(&PolicyTable::builtin(1)).unwrap();
    // Back on lists: still 32 resident, and inserts keep working.
    let hits = (0..32).filter(|&id| rig.touch(id)).count();
    assert_eq!(hits, 31);
    assert!(matches!(
        rig.shard.insert(key(500), 0),
        Insert::Fill { .. } | Insert::Present
    ));
}
