//! The removal log behind KV events: every block the shard drops is logged once with the tier
//! it left, in order; a full log counts what it could not hold and never grows.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{Rig, key};
use mcos_core::TierId;
use std::collections::HashSet;

fn drain(r: &mut Rig) -> (Vec<(u64, TierId)>, u64) {
    let mut v = Vec::new();
    let lost = r.shard.drain_removals(|tag, t| v.push((tag, t)));
    (v, lost)
}

#[test]
fn every_drop_is_logged_once_and_matches_the_directory() {
    let mut r = Rig::new(&[4, 8]);
    r.shard.enable_removal_log(64);
    let mut resident: HashSet<u64> = HashSet::new();
    for id in 1..=40u64 {
        r.touch(id);
        r.pump();
        resident.insert(key(id).tag());
        let (removed, lost) = drain(&mut r);
        assert_eq!(lost, 0);
        for (tag, tier) in removed {
            // Dropped for good from the last tier a block may live in.
            assert_eq!(tier, TierId(1));
            assert!(
                resident.remove(&tag),
                "tag {tag:x} dropped twice or never stored"
            );
        }
    }
    let mut held: HashSet<u64> = HashSet::new();
    for id in 1..=40u64 {
        if r.shard.peek(key(id)).is_some() {
            held.insert(key(id).tag());
        }
    }
    assert_eq!(resident, held);
    assert!((8..=12).contains(&held.len()), "{}", held.len());
    // Invalidation (a corrupt block) is a removal from the tier it was in.
    let victim = (1..=40u64)
        .find(|&id| r.shard.peek(key(id)).is_some())
        .unwrap();
    let (tier, _) = r.shard.peek(key(victim)).unwrap();
    assert!(r.shard.invalidate(key(victim)));
    assert_eq!(drain(&mut r), (vec![(key(victim).tag(), tier)], 0));
}

#[test]
fn a_full_log_counts_what_it_lost() {
    let mut r = Rig::new(&[2, 2]);
    r.shard.enable_removal_log(1);
    for id in 1..=10u64 {
        r.touch(id);
        r.pump();
    }
    let (removed, lost) = drain(&mut r);
    assert_eq!(removed.len(), 1);
    assert_eq!(lost, 5, "10 blocks through 4 frames drop 6");
    assert_eq!(drain(&mut r), (vec![], 0));
}

#[test]
fn without_a_log_nothing_is_kept() {
    let mut r = Rig::new(&[2, 2]);
    for id in 1..=10u64 {
        r.touch(id);
        r.pump();
    }
    assert_eq!(drain(&mut r), (vec![], 0));
}
