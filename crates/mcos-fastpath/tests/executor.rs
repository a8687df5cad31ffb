//! Behaviour of the policy executor against simple models.

mod harness;

use harness::{Rig, key};
use mcos_core::{AdmitFilter, Intent, IntentAction, MoveStatus, PolicyTable, TierId};
use mcos_fastpath::{Access, Insert, RejectReason};
use proptest::prelude::*;
use std::collections::VecDeque;

/// Exact LRU model.
fn lru_model(seq: &[u64], cap: usize) -> Vec<bool> {
    let mut q: VecDeque<u64> = VecDeque::new();
    seq.iter()
        .map(|&id| {
            if let Some(p) = q.iter().position(|&x| x == id) {
                q.remove(p);
                q.push_front(id);
                true
            } else {
                if q.len() == cap {
                    q.pop_back();
                }
                q.push_front(id);
                false
            }
        })
        .collect()
}

proptest! {
    /// One tier with the built-in table is exact LRU.
    #[test]
    fn builtin_single_tier_is_exact_lru(seq in proptest::collection::vec(0u64..24, 1..300), cap in 1u32..12) {
        let mut rig = Rig::new(&[cap]);
        let got: Vec<bool> = seq.iter().map(|&id| rig.touch(id)).collect();
        prop_assert_eq!(got, lru_model(&seq, cap as usize));
        prop_assert!(rig.shard.tier_usage(TierId(0)).0 <= cap);
    }

    /// Two tiers: an exclusive hierarchy. A block is in at most one tier, capacities hold, and
    /// the union behaves like an LRU of the combined size (demote on evict, promote on hit).
    #[test]
    fn two_tiers_hold_capacity_and_lose_nothing_they_can_keep(
        seq in proptest::collection::vec(0u64..30, 1..300), fast in 1u32..6, slow in 1u32..10,
    ) {
        let mut rig = Rig::new(&[fast, slow]);
        for &id in &seq {
            rig.touch(id);
            rig.pump();
            let (u0, c0) = rig.shard.tier_usage(TierId(0));
            let (u1, c1) = rig.shard.tier_usage(TierId(1));
            prop_assert!(u0 <= c0 && u1 <= c1);
            prop_assert!(rig.shard.peek(key(id)).is_some(), "just-touched block resident");
        }
        let c = rig.shard.counters();
        prop_assert_eq!(c.accesses, seq.len() as u64);
        prop_assert_eq!(c.total_hits() + c.misses, c.accesses);
    }
}

#[test]
fn demoted_blocks_are_hits_in_the_lower_tier_and_come_back_up() {
    let mut rig = Rig::new(&[2, 4]);
    for id in 0..3 {
        assert!(!rig.touch(id));
        rig.pump();
    }
    // Block 0 was demoted to tier 1 to make room for block 2.
    assert_eq!(rig.shard.peek(key(0)).map(|l| l.0), Some(TierId(1)));
    // Tier 0 is full: the first hit reads in place while a demotion makes room...
    assert!(matches!(
        rig.shard.access(key(0), None),
        Access::Hit {
            tier: TierId(1),
            ..
        }
    ));
    rig.pump();
    // ...and the next hit promotes.
    match rig.shard.access(key(0), None) {
        Access::Wait { move_id, from } => {
            assert_eq!(from, TierId(1));
            assert!(rig.shard.move_pending(move_id));
            // A second reader merges onto the same move.
            assert_eq!(
                rig.shard.access(key(0), None),
                Access::Wait { move_id, from }
            );
            rig.pump();
            assert!(!rig.shard.move_pending(move_id));
        }
        other => panic!("expected a promotion, got {other:?}"),
    }
    assert_eq!(rig.shard.peek(key(0)).map(|l| l.0), Some(TierId(0)));
    let c = rig.shard.counters();
    assert_eq!(c.hits[1], 2);
    assert_eq!(c.merged_misses, 1);
    assert!(c.demotions >= 2);
}

#[test]
fn pinned_blocks_are_never_evicted() {
    let mut rig = Rig::new(&[3]);
    for id in 0..3 {
        rig.touch(id);
    }
    rig.shard
        .intent(Intent {
            key: key(0),
            action: IntentAction::Pin { ttl_ticks: 0 },
        })
        .unwrap();
    rig.shard
        .intent(Intent {
            key: key(1),
            action: IntentAction::Pin { ttl_ticks: 0 },
        })
        .unwrap();
    for id in 10..40 {
        rig.touch(id);
        assert!(rig.shard.peek(key(0)).is_some() && rig.shard.peek(key(1)).is_some());
    }
    rig.shard
        .intent(Intent {
            key: key(2),
            action: IntentAction::Pin { ttl_ticks: 0 },
        })
        .ok();
    // Every frame pinned: new blocks are refused, not forced in.
    rig.shard
        .intent(Intent {
            key: key(39),
            action: IntentAction::Pin { ttl_ticks: 0 },
        })
        .unwrap();
    assert_eq!(rig.shard.access(key(99), None), Access::Miss);
    assert_eq!(
        rig.shard.insert(key(99), 0),
        Insert::Rejected(RejectReason::NoRoom)
    );
    // Unpin lets the LRU-most pinned one go.
    rig.shard
        .intent(Intent {
            key: key(0),
            action: IntentAction::Unpin,
        })
        .unwrap();
    assert!(matches!(rig.shard.insert(key(99), 0), Insert::Fill { .. }));
    assert!(rig.shard.peek(key(0)).is_none());
    assert_eq!(
        rig.shard.intent(Intent {
            key: key(0),
            action: IntentAction::Unpin
        }),
        Err(mcos_fastpath::IntentError::NotResident)
    );
}

#[test]
fn soft_pins_lapse_after_their_ttl() {
    let mut rig = Rig::new(&[1]);
    rig.touch(1);
    rig.shard
        .intent(Intent {
            key: key(1),
            action: IntentAction::Pin { ttl_ticks: 5 },
        })
        .unwrap();
    assert_eq!(
        rig.shard.insert(key(2), 0),
        Insert::Rejected(RejectReason::NoRoom)
    );
    for _ in 0..6 {
        rig.shard.tick();
    }
    assert!(matches!(rig.shard.insert(key(2), 0), Insert::Fill { .. }));
}

#[test]
fn admission_threshold_filters_one_hit_blocks() {
    let mut t = PolicyTable::builtin(1);
    t.classes[0].admit_threshold = 2;
    let mut rig = Rig::with_table(&[4], t);
    assert!(!rig.touch(1));
    assert_eq!(
        rig.shard.counters().rejected_admission,
        1,
        "seen once: not admitted"
    );
    assert!(!rig.touch(1));
    assert_eq!(rig.shard.counters().admitted, 1, "seen twice: admitted");
    assert!(rig.touch(1));
    // Declared reuse admits on the first miss.
    rig.shard
        .intent(Intent {
            key: key(7),
            action: IntentAction::ExpectReuse { uses: 3 },
        })
        .unwrap();
    assert!(!rig.touch(7));
    assert!(rig.touch(7));
}

#[test]
fn quota_caps_a_class() {
    let mut t = PolicyTable::builtin(1);
    t.classes[5].quota_blocks = 2;
    let mut rig = Rig::with_table(&[8], t);
    for id in 0..3 {
        match rig.shard.insert(key(id), 5) {
            Insert::Fill { tier, frame } => rig.shard.commit_fill(key(id), tier, frame, true),
            other => assert_eq!((id, other), (2, Insert::Rejected(RejectReason::Quota))),
        }
    }
}

#[test]
fn protected_segment_resists_a_scan() {
    let mut t = PolicyTable::builtin(1);
    t.protected_share = [192, 0, 0, 0];
    let mut rig = Rig::with_table(&[8], t);
    for _ in 0..2 {
        for id in 0..4 {
            rig.touch(id);
        }
    }
    // A scan of 20 one-time blocks passes through probation only.
    for id in 100..120 {
        rig.touch(id);
    }
    for id in 0..4 {
        assert!(rig.touch(id), "hot block {id} survived the scan");
    }
    // Plain LRU loses them.
    let mut lru = Rig::new(&[8]);
    for _ in 0..2 {
        for id in 0..4 {
            lru.touch(id);
        }
    }
    for id in 100..120 {
        lru.touch(id);
    }
    assert!(!lru.touch(0));
}

#[test]
fn corrupt_or_failed_moves_never_leave_a_phantom_block() {
    let mut rig = Rig::new(&[1, 2]);
    rig.touch(1);
    // Inserting 2 demotes 1; that move finds the source corrupt.
    rig.fail_next = Some(MoveStatus::Corrupt);
    rig.touch(2);
    assert!(
        rig.shard.peek(key(1)).is_none(),
        "a corrupt block is dropped, not half-present"
    );
    assert_eq!(rig.shard.counters().corrupt_blocks, 1);
    assert_eq!(rig.shard.peek(key(2)).map(|l| l.0), Some(TierId(0)));
    // A demotion that fails with an I/O error drops the victim (as an eviction would).
    rig.fail_next = Some(MoveStatus::IoError);
    rig.touch(3);
    assert!(rig.shard.peek(key(2)).is_none());
    assert_eq!(rig.shard.counters().move_errors, 1);
    rig.touch(4); // demotes 3 successfully
    assert_eq!(rig.shard.peek(key(3)).map(|l| l.0), Some(TierId(1)));
    // A promotion that fails leaves the block where it was, still readable.
    rig.shard.access(key(3), None); // tier 0 full: read in place, demotion of 4 starts
    rig.pump();
    let Access::Wait { .. } = rig.shard.access(key(3), None) else {
        panic!("expected promotion")
    };
    rig.fail_next = Some(MoveStatus::IoError);
    rig.pump();
    assert_eq!(rig.shard.peek(key(3)).map(|l| l.0), Some(TierId(1)));
    assert_eq!(rig.shard.counters().move_errors, 2);
}

#[test]
fn expired_table_falls_back_to_builtin() {
    let mut t = PolicyTable::builtin(1);
    t.ttl_ticks = 10;
    t.classes[0].admit_threshold = 15;
    let mut rig = Rig::with_table(&[4], PolicyTable::builtin(1));
    rig.installer.try_install(&t).unwrap();
    assert!(!rig.touch(1));
    assert_eq!(
        rig.shard.counters().rejected_admission,
        1,
        "installed table in force"
    );
    assert!(!rig.shard.on_fallback());
    for _ in 0..11 {
        rig.shard.tick();
    }
    assert!(
        rig.shard.on_fallback(),
        "brain silent past the TTL: built-in default"
    );
    assert_eq!(rig.shard.policy_epoch(), 0);
    assert!(!rig.touch(2));
    assert!(rig.touch(2), "the default admits everything");
    assert_eq!(rig.shard.counters().policy_fallbacks, 1);
    // A fresh install ends the fallback.
    let mut fresh = PolicyTable::builtin(1);
    fresh.version = 2;
    rig.installer.try_install(&fresh).unwrap();
    rig.shard.tick();
    assert!(!rig.shard.on_fallback());
}

#[test]
fn insert_of_a_present_block_is_a_no_op_and_uncommitted_fills_are_invisible() {
    let mut rig = Rig::new(&[4]);
    let Insert::Fill { tier, frame } = rig.shard.insert(key(1), 0) else {
        panic!()
    };
    assert_eq!(
        rig.shard.access(key(1), None),
        Access::Miss,
        "not visible before commit"
    );
    assert_eq!(rig.shard.insert(key(1), 0), Insert::Present);
    rig.shard.commit_fill(key(1), tier, frame, false);
    assert_eq!(
        rig.shard.access(key(1), None),
        Access::Miss,
        "abandoned fill leaves nothing"
    );
    assert!(matches!(rig.shard.insert(key(1), 0), Insert::Fill { .. }));
}

#[test]
fn a_tier_keeps_its_free_frame_watermark() {
    // Tier 0 keeps 4 frames free: each insert that dips below demotes its LRU block early, so
    // once the demotions land the watermark holds again (free frames are what prefetch uses).
    let mut rig = Rig::with_watermark(&[16, 64], PolicyTable::builtin(2), &[4, 0]);
    for id in 0..200 {
        rig.touch(id);
        rig.pump();
        if id >= 16 {
            let (used, cap) = rig.shard.tier_usage(TierId(0));
            assert_eq!(cap - used, 4, "free frames of tier 0 after insert {id}");
        }
    }
    let c = rig.shard.counters();
    assert_eq!(c.misses, 200);
    assert!(c.demotions >= 200 - 16, "{c:?}");
}

fn insert_class(rig: &mut Rig, id: u64, class: u8) {
    match rig.shard.insert(key(id), class) {
        Insert::Fill { tier, frame } => rig.shard.commit_fill(key(id), tier, frame, true),
        other => panic!("insert of {id}: {other:?}"),
    }
}

#[test]
fn the_highest_eviction_priority_goes_first_then_the_lru_most() {
    let mut t = PolicyTable::builtin(1);
    t.classes[1].evict_priority = 5;
    t.classes[2].evict_priority = 9;
    t.classes[3].ttl_ticks = 2;
    let mut rig = Rig::with_table(&[7], t);
    // Oldest first: ids 0..6 with these classes; id 6 (class 3) idles past its TTL.
    for (id, class) in [0u8, 1, 0, 2, 1, 0, 3].into_iter().enumerate() {
        insert_class(&mut rig, id as u64, class);
    }
    for _ in 0..3 {
        rig.shard.tick();
    }
    // The expired block (priority 16), then class 2, then class 1 LRU-most first, then LRU.
    for (n, victim) in [6u64, 3, 1, 4, 0, 2, 5].into_iter().enumerate() {
        insert_class(&mut rig, 100 + n as u64, 0);
        assert!(
            rig.shard.peek(key(victim)).is_none(),
            "eviction {n}: {victim}"
        );
        let left = (0..7)
            .filter(|&id| rig.shard.peek(key(id)).is_some())
            .count();
        assert_eq!(left, 6 - n, "one block per insert");
    }
}

#[test]
fn history_admission_refuses_first_misses_only_when_full() {
    let mut t = PolicyTable::builtin(1);
    t.history_quarters = 8;
    t.classes[0].admit_filter = AdmitFilter::History;
    let mut rig = Rig::with_table(&[4], t);
    for id in 0..4 {
        assert!(!rig.touch(id));
    }
    assert_eq!(
        rig.shard.counters().admitted,
        4,
        "room: everything admitted"
    );
    assert!(!rig.touch(10));
    assert_eq!(
        rig.shard.counters().rejected_admission,
        1,
        "full: a first miss is refused"
    );
    assert!(rig.shard.peek(key(10)).is_none());
    assert!(!rig.touch(10), "second miss: admitted from the history");
    assert!(rig.touch(10));
    // The evicted block went to the history: its return is admitted at once.
    let evicted = (0..4)
        .find(|&id| rig.shard.peek(key(id)).is_none())
        .unwrap();
    assert!(!rig.touch(evicted));
    assert!(rig.shard.peek(key(evicted)).is_some());
}

#[test]
fn history_hits_skip_probation() {
    let mut t = PolicyTable::builtin(1);
    t.history_quarters = 8;
    t.protected_share = [128, 0, 0, 0];
    let mut rig = Rig::with_table(&[8], t);
    for id in 0..8 {
        rig.touch(id);
    }
    // 0 is evicted by 100, then returns: from the history it enters protected, so a scan
    // through probation does not push it out again.
    rig.touch(100);
    assert!(rig.shard.peek(key(0)).is_none());
    rig.touch(0);
    for id in 200..210 {
        rig.touch(id);
    }
    assert!(rig.touch(0), "a history hit was protected from the scan");
}

#[test]
fn window_duel_keeps_frequent_blocks_and_admits_quick_reuse() {
    let mut t = PolicyTable::builtin(1);
    t.window_share = [32, 0, 0, 0];
    let mut rig = Rig::with_table(&[16], t);
    for _ in 0..6 {
        for id in 0..12 {
            rig.touch(id);
        }
    }
    for id in 1000..1200 {
        rig.touch(id);
    }
    let kept = (0..12)
        .filter(|&id| rig.shard.peek(key(id)).is_some())
        .count();
    assert!(
        kept >= 11,
        "the scan displaced the frequent blocks: {kept} of 12"
    );
    // A newcomer waits in the window: reused at once, it hits.
    assert!(!rig.touch(5000));
    assert!(rig.touch(5000));
}

#[test]
fn shrinking_a_segment_drains_it_instead_of_freezing_its_blocks() {
    let mut t = PolicyTable::builtin(1);
    t.protected_share = [192, 0, 0, 0];
    let mut rig = Rig::with_table(&[16], t);
    for _ in 0..2 {
        for id in 0..12 {
            rig.touch(id);
        }
    }
    // Back to plain LRU: a cyclic pass over 16 new blocks must evict the old protected ones
    // (a frozen protected list would keep them and leave 4 frames for everything else).
    rig.installer.try_install(&PolicyTable::builtin(1)).unwrap();
    for _ in 0..3 {
        for id in 100..116 {
            rig.touch(id);
        }
    }
    let hits = (100..116).filter(|&id| rig.touch(id)).count();
    assert_eq!(hits, 16, "LRU over 16 frames holds a 16-block loop");
}

#[test]
fn a_block_the_fast_tier_refuses_is_placed_below_and_promoted_on_reuse() {
    let mut t = PolicyTable::builtin(2);
    t.history_quarters = 8;
    t.classes[0].admit_filter = AdmitFilter::History;
    let mut rig = Rig::with_table(&[4, 16], t);
    for id in 0..4 {
        rig.touch(id);
    }
    assert!(!rig.touch(50));
    assert_eq!(
        rig.shard.peek(key(50)).map(|l| l.0),
        Some(TierId(1)),
        "refused by tier 0, kept in tier 1"
    );
    assert_eq!(rig.shard.counters().admitted_below, 1);
    assert!(rig.touch(50), "a hit in tier 1");
    // The first hit made room in tier 0 (a demotion); once it landed, the next promotes.
    rig.pump();
    assert!(rig.touch(50));
    rig.pump();
    assert_eq!(
        rig.shard.peek(key(50)).map(|l| l.0),
        Some(TierId(0)),
        "promoted"
    );
}

#[test]
fn telemetry_carries_only_the_kinds_the_table_asks_for() {
    use mcos_core::{SampleKind, TelemetrySample, limits::MAX_TIERS, policy_cell, ring};
    use mcos_fastpath::{Shard, ShardConfig};
    let mut t = PolicyTable::builtin(1);
    t.telemetry_kinds = 1 << SampleKind::Hit as u8 | 1 << SampleKind::Miss as u8;
    let run = |table: PolicyTable| {
        let (_installer, mut readers) = policy_cell(table, 1);
        let (tx, _rx) = ring(64);
        let (ttx, mut trx) = ring::<TelemetrySample>(4096);
        let mut shard = Shard::new(
            ShardConfig {
                shard: 0,
                tiers: vec![(0, 4)],
                block_bytes: 1,
                routes: [[0; MAX_TIERS]; MAX_TIERS],
                free_watermark: vec![0],
                telemetry_shift: 0,
            },
            readers.remove(0),
            vec![tx],
            Some(ttx),
        );
        for id in 0..20u64 {
            if let Access::Miss = shard.access(key(id % 6), None)
                && let Insert::Fill { tier, frame } = shard.insert(key(id % 6), 0)
            {
                shard.commit_fill(key(id % 6), tier, frame, true);
            }
        }
        let mut kinds = Vec::new();
        while let Some(s) = trx.pop() {
            kinds.push(s.kind);
        }
        kinds
    };
    let all = run(PolicyTable::builtin(1));
    assert!(all.contains(&SampleKind::Admit) && all.contains(&SampleKind::Evict));
    let some = run(t);
    assert_eq!(some.len(), 20, "one sample per access");
    assert!(
        some.iter()
            .all(|k| matches!(k, SampleKind::Hit | SampleKind::Miss))
    );
}

#[test]
fn a_promotion_that_cannot_start_evicts_nothing() {
    // Tier 0 holds class-1 blocks that are dropped when evicted (floor tier 0); tier 1 holds
    // class-0 blocks. Every lower-tier hit promotes by dropping a class-1 block, until the
    // move table is full: the next promotion cannot start, so it must not drop a block first.
    let mut table = PolicyTable::builtin(2);
    table.classes[1].floor_tier = TierId(0);
    let mut rig = Rig::with_table(&[300, 400], table);
    for id in 0..300 {
        insert_class(&mut rig, id, 0);
    }
    for id in 1000..1300 {
        loop {
            match rig.shard.insert(key(id), 1) {
                Insert::Fill { tier, frame } => {
                    rig.shard.commit_fill(key(id), tier, frame, true);
                    break;
                }
                Insert::Retry => {
                    rig.pump();
                }
                other => panic!("insert of {id}: {other:?}"),
            }
        }
        rig.pump();
    }
    assert_eq!(rig.shard.peek(key(0)).map(|l| l.0), Some(TierId(1)));
    let slots = mcos_core::limits::INFLIGHT_MOVES as u64;
    for id in 0..slots {
        assert!(matches!(
            rig.shard.access(key(id), None),
            Access::Wait { .. }
        ));
    }
    assert_eq!(rig.shard.moves_in_flight() as u64, slots);
    let evictions = rig.shard.counters().evictions;
    let used = rig.shard.tier_usage(TierId(0)).0;
    assert!(matches!(
        rig.shard.access(key(slots), None),
        Access::Hit {
            tier: TierId(1),
            ..
        }
    ));
    assert_eq!(
        rig.shard.counters().evictions,
        evictions,
        "no block dropped for a move that could not start"
    );
    assert_eq!(rig.shard.tier_usage(TierId(0)).0, used);
    rig.pump();
    assert!(matches!(
        rig.shard.access(key(slots), None),
        Access::Wait { .. }
    ));
}

/// Sequence reads over blocks demoted to tier 1: each reads block `2k` of sequence `k` and
/// prefetches block `2k + 1`; `use_prefetched` then reads the prefetched block too. Returns
/// the prefetches issued in the first 50 and in the last 200 of 400 reads.
fn prefetch_rounds(use_prefetched: bool) -> (u64, u64, mcos_fastpath::Counters) {
    let mut table = PolicyTable::builtin(2);
    table.classes[0].prefetch_mode = mcos_core::PrefetchMode::Sequential;
    table.classes[0].prefetch_degree = 1;
    let mut rig = Rig::with_watermark(&[16, 4096], table, &[2, 0]);
    for id in 0..1000 {
        rig.touch(id);
        rig.pump();
    }
    let mut issued_at = Vec::new();
    for k in 0..400u32 {
        let (a, b) = (2 * u64::from(k), 2 * u64::from(k) + 1);
        let declared = rig.shard.intent(Intent {
            key: key(b),
            action: IntentAction::Sequence {
                sequence: k,
                position: 1,
            },
        });
        assert_eq!(declared, Ok(()));
        assert_ne!(rig.shard.access(key(a), Some((k, 0))), Access::Miss);
        rig.pump();
        if use_prefetched {
            assert_ne!(rig.shard.access(key(b), None), Access::Miss);
            rig.pump();
        }
        issued_at.push(rig.shard.counters().prefetch_issued);
    }
    let c = *rig.shard.counters();
    (issued_at[49], issued_at[399] - issued_at[199], c)
}

#[test]
fn unused_prefetches_stop_evicting_but_keep_probing() {
    let (first, last, c) = prefetch_rounds(false);
    assert!(first >= 45, "trusted at first: {first} of 50 issued");
    assert!(c.prefetch_unused >= 64, "{c:?}");
    assert!(
        (1..=40).contains(&last),
        "after a window of unused prefetches only probes (and spare frames) issue: {last} of 200"
    );
    assert_eq!(c.prefetch_useful, 0);
}

#[test]
fn used_prefetches_keep_taking_the_reserve() {
    let (first, last, c) = prefetch_rounds(true);
    assert!(first >= 45, "{first}");
    assert!(
        last >= 190,
        "accurate prefetches keep issuing: {last} of 200, {c:?}"
    );
    assert!(c.prefetch_useful >= 380, "{c:?}");
}
