//! Aged replacement (`Replacement::Aged`): 7-bit age stamps instead of list moves, and the
//! sweeping victim scan with one carried candidate that the cycle model of `mcos-hw` executes.

mod harness;

use harness::{Rig, key};
use mcos_core::{InsertPosition, PolicyTable, Replacement};

fn aged_table() -> PolicyTable {
    let mut t = PolicyTable::builtin(1);
    t.replacement = Replacement::Aged;
    t
}

fn frame_of(rig: &Rig, id: u64) -> Option<u32> {
    rig.shard.peek(key(id)).map(|(_, f)| f)
}

#[test]
fn the_oldest_stamp_in_the_window_is_evicted_and_a_hit_restamps() {
    // Four frames: the epoch advances on every stamp write (max(1, 4 / 32)).
    let mut rig = Rig::with_table(&[4], aged_table());
    for id in 0..4 {
        assert!(!rig.touch(id));
    }
    assert_eq!(frame_of(&rig, 0), Some(3));
    // The window is the whole tier: block 0 (frame 3) is the oldest.
    assert!(!rig.touch(10));
    assert_eq!(frame_of(&rig, 0), None);
    assert_eq!(frame_of(&rig, 10), Some(3));
    // A hit on block 1 makes block 2 the oldest: exact LRU order at this size.
    assert!(rig.touch(1));
    assert!(!rig.touch(11));
    assert_eq!(frame_of(&rig, 2), None, "block 2 was least recently used");
    assert_eq!(frame_of(&rig, 1), Some(2), "the hit restamped block 1");
    assert_eq!(frame_of(&rig, 11), Some(1));
}

#[test]
fn lru_insertion_makes_the_new_block_the_next_victim() {
    let mut t = aged_table();
    t.classes[1].insert_position = InsertPosition::Lru;
    let mut rig = Rig::with_table(&[64], t);
    for id in 0..64 {
        rig.touch(id);
    }
    // A class-1 block is stamped old and carried: the next miss evicts it, not a resident.
    let before: Vec<u64> = (0..64).filter(|&id| frame_of(&rig, id).is_some()).collect();
    for id in 100..110 {
        assert!(matches!(
            rig.shard.access(key(id), None),
            mcos_fastpath::Access::Miss
        ));
        match rig.shard.insert(key(id), 1) {
            mcos_fastpath::Insert::Fill { tier, frame } => {
                rig.shard.commit_fill(key(id), tier, frame, true)
            }
            other => panic!("{other:?}"),
        }
    }
    let resident = (0..64).filter(|&id| frame_of(&rig, id).is_some()).count();
    assert_eq!(
        resident,
        before.len() - 1,
        "the class-1 blocks churn one frame"
    );
}
