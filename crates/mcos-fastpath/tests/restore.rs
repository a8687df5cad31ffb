//! Warm restart and durable puts at the fast path: blocks restored at known frames, puts into
//! one given tier, and a home tier that never moves its blocks out.
#![allow(clippy::unwrap_used)]

mod harness;

use harness::{Rig, key};
use mcos_core::TierId;
use mcos_fastpath::{Access, Insert, RestoreError};

#[test]
fn restored_blocks_are_hits_where_they_were_found() {
    let mut r = Rig::new(&[4, 16]);
    r.shard.restore(key(1), TierId(1), 3, 0).unwrap();
    r.shard.restore(key(2), TierId(1), 7, 0).unwrap();
    assert_eq!(
        r.shard.restore(key(1), TierId(1), 9, 0),
        Err(RestoreError::Duplicate)
    );
    assert_eq!(
        r.shard.restore(key(3), TierId(1), 3, 0),
        Err(RestoreError::FrameInUse)
    );
    assert_eq!(
        r.shard.restore(key(3), TierId(1), 16, 0),
        Err(RestoreError::NotOwned)
    );
    assert_eq!(r.shard.peek(key(1)), Some((TierId(1), 3)));
    assert_eq!(r.shard.tier_usage(TierId(1)), (2, 16));
    // New blocks (fewer than the free frames) never take a restored frame.
    for id in 10..24 {
        r.touch(id);
        r.pump();
    }
    assert_eq!(r.shard.peek(key(2)), Some((TierId(1), 7)));
    assert_eq!(
        r.shard.tier_usage(TierId(1)).0 + r.shard.tier_usage(TierId(0)).0,
        16
    );
}

#[test]
fn a_home_tier_reads_in_place_and_durable_inserts_land_there() {
    let mut r = Rig::new(&[4, 16]);
    r.shard.set_home_tier(TierId(1));
    let k = key(5);
    let Insert::Fill { tier, frame } = r.shard.insert_into(k, 0, TierId(1)) else {
        panic!("durable insert refused");
    };
    assert_eq!(tier, TierId(1));
    r.shard.commit_fill(k, tier, frame, true);
    for _ in 0..3 {
        // Without a home tier the first access would promote it (Wait); here it stays.
        assert_eq!(
            r.shard.access(k, None),
            Access::Hit {
                tier: TierId(1),
                frame
            }
        );
        assert_eq!(r.pump(), 0);
    }
    assert_eq!(r.shard.peek(k), Some((TierId(1), frame)));
    assert_eq!(r.shard.insert_into(k, 0, TierId(1)), Insert::Present);
}
