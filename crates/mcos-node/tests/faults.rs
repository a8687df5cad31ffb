//! Device faults under a persistent disk tier, injected through the tier's test-only fault
//! plan (mcos-tiers feature `fault-injection`, enabled for these tests only): a failed read is
//! a counted miss and retires its frame, a failed write is retried in another frame (the
//! failing one retired), a full device refuses puts (backpressure). The node keeps serving and
//! never returns a wrong byte.
#![allow(clippy::unwrap_used)]

use mcos_core::{AdmitFilter, BlockKey, PolicyTable, PriorityClass, TierId};
use mcos_node::{GetOutcome, Node, NodeConfig, PutOutcome};
use mcos_tiers::FaultPlan;

fn payload_of(id: u64) -> Vec<u8> {
    (0..1000).map(|i| (id as usize * 17 + i) as u8).collect()
}

fn key(id: u64) -> BlockKey {
    BlockKey(u128::from(id) * 0x9e37_79b9 + 1)
}

#[test]
fn failing_reads_writes_and_a_full_device_cost_only_the_blocks_involved() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(1000, 8, 64, dir.path());
    cfg.tiers[1].persist = true;
    let node = Node::open(cfg).unwrap();
    let disk = node.disk_tier().unwrap();
    let put = |id: u64| {
        node.put_durable(key(id), PriorityClass::DEFAULT, &payload_of(id))
            .unwrap()
    };
    for id in 1..=10 {
        assert_eq!(put(id), PutOutcome::Stored(TierId(1)));
    }
    let mut out = Vec::new();

    // A read error: that block is a miss, its frame retired, every other block still served.
    let (_, bad) = node.locate(key(3)).unwrap();
    disk.inject_faults(FaultPlan {
        fail_reads: vec![bad],
        ..FaultPlan::default()
    });
    assert_eq!(node.get(key(3), &mut out).unwrap(), GetOutcome::Miss);
    assert_eq!(node.get(key(3), &mut out).unwrap(), GetOutcome::Miss);
    let s = node.stats();
    assert_eq!((s.io_errors, s.frames_retired), (1, 1));
    for id in (1..=10).filter(|&i| i != 3) {
        assert_eq!(
            node.get(key(id), &mut out).unwrap(),
            GetOutcome::Hit(TierId(1))
        );
        assert_eq!(out, payload_of(id));
    }

    // Write errors on every frame from 24 up (free frames are handed out from the top):
    // each durable put is retried until it lands in a good frame; the failing frames are
    // retired, never used again.
    disk.inject_faults(FaultPlan {
        fail_writes: (24..64).collect(),
        ..FaultPlan::default()
    });
    for id in 11..=20 {
        assert_eq!(put(id), PutOutcome::Stored(TierId(1)));
        let (_, f) = node.locate(key(id)).unwrap();
        assert!(f < 24, "block {id} landed in failing frame {f}");
    }
    let s = node.stats();
    assert!(
        s.frames_retired > 1 && s.io_errors == s.frames_retired,
        "{s:?}"
    );
    // Healed device: new blocks never land in a retired frame (the retired frames are
    // exactly those that failed, so a write there would have been counted again).
    disk.inject_faults(FaultPlan::default());
    let retired = s.frames_retired;
    for id in 21..=30 {
        assert_eq!(put(id), PutOutcome::Stored(TierId(1)));
    }
    let used = node.stats().tiers[1].used_blocks;
    assert_eq!(used, 29 + retired, "retired frames count as used");

    // A full device: puts refused and counted; the stored blocks stay.
    disk.inject_faults(FaultPlan {
        no_space: true,
        ..FaultPlan::default()
    });
    assert!(matches!(put(31), PutOutcome::Rejected(_)));
    assert_eq!(node.stats().puts_refused_no_space, 1);
    assert_eq!(node.get(key(31), &mut out).unwrap(), GetOutcome::Miss);
    disk.inject_faults(FaultPlan::default());
    assert_eq!(put(31), PutOutcome::Stored(TierId(1)));
    for id in (1..=31).filter(|&i| i != 3) {
        assert_eq!(
            node.get(key(id), &mut out).unwrap(),
            GetOutcome::Hit(TierId(1)),
            "{id}"
        );
        assert_eq!(out, payload_of(id));
    }
}

/// The engines' moves fail through the same fault plan (mcos-tiers applies it to the batched
/// disk I/O too): a promotion whose disk read fails loses that one block (a counted miss) and
/// retires its frame; a demotion whose disk write fails retires the destination frame and drops
/// the victim, as an eviction would. No wrong byte is ever returned, and no block ever lands
/// in a retired frame afterwards.
#[test]
fn failing_engine_moves_retire_the_frame_the_device_failed_under() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(NodeConfig::dram_and_disk(1000, 4, 32, dir.path())).unwrap();
    let disk = node.disk_tier().unwrap();
    let mut out = Vec::new();
    for id in 1..=12 {
        node.put(key(id), &payload_of(id)).unwrap();
    }
    node.quiesce().unwrap();
    let on_disk: Vec<(u64, u32)> = (1..=12)
        .filter_map(|id| match node.locate(key(id)) {
            Some((TierId(1), f)) => Some((id, f)),
            _ => None,
        })
        .collect();
    assert!(on_disk.len() >= 4, "demoted to disk: {on_disk:?}");

    // A promotion (disk -> DRAM, by the engine) whose read fails. Without an admission filter
    // (the built-in one may serve a first read in place, depending on free frames) a read of a
    // disk block promotes it once DRAM has a free frame: the first read below is served in
    // place while it demotes a victim to make one.
    let mut table = PolicyTable::builtin(2);
    for c in table.classes.iter_mut() {
        c.admit_filter = AdmitFilter::None;
    }
    node.install_policy(&table).unwrap();
    let (lost, bad) = on_disk[0];
    assert_eq!(
        node.get(key(lost), &mut out).unwrap(),
        GetOutcome::Hit(TierId(1))
    );
    assert_eq!(out, payload_of(lost));
    node.quiesce().unwrap();
    assert_eq!(
        node.locate(key(lost)),
        Some((TierId(1), bad)),
        "read in place"
    );
    disk.inject_faults(FaultPlan {
        fail_reads: vec![bad],
        ..FaultPlan::default()
    });
    assert_eq!(node.get(key(lost), &mut out).unwrap(), GetOutcome::Miss);
    node.quiesce().unwrap();
    let s = node.stats();
    assert_eq!(
        (s.io_errors, s.frames_retired),
        (1, 1),
        "the failed read is counted and its frame retired: {s:?}"
    );
    assert!(s.counters.move_errors >= 1, "{:?}", s.counters);
    assert_eq!(node.locate(key(lost)), None);

    // Demotions (DRAM -> disk, by the engine) whose writes fail: every free disk frame fails.
    let free_before = 32 - node.stats().tiers[1].used_blocks;
    disk.inject_faults(FaultPlan {
        fail_writes: (0..32).collect(),
        ..FaultPlan::default()
    });
    for id in 100..=108 {
        node.put(key(id), &payload_of(id)).unwrap();
    }
    node.quiesce().unwrap();
    let s = node.stats();
    let write_faults = s.frames_retired - 1;
    assert!(
        write_faults >= 1 && s.io_errors == s.frames_retired,
        "each failed demotion retired its destination frame: {s:?}"
    );
    disk.inject_faults(FaultPlan::default());

    // Healed: the node keeps serving, every hit is byte-exact, and the retired frames stay out
    // of service (they count as used; nothing ever lands in one again).
    for id in 200..=260 {
        node.put(key(id), &payload_of(id)).unwrap();
    }
    node.quiesce().unwrap();
    let s = node.stats();
    assert_eq!(s.frames_retired, 1 + write_faults, "no new faults: {s:?}");
    assert!(free_before > write_faults);
    let resident_on_disk = (1..=260)
        .filter(|&id| matches!(node.locate(key(id)), Some((TierId(1), _))))
        .count() as u64;
    assert_eq!(
        s.tiers[1].used_blocks,
        resident_on_disk + s.frames_retired,
        "retired frames count as used and hold nothing"
    );
    for id in (1..=12).chain(100..=108).chain(200..=260) {
        if let GetOutcome::Hit(_) = node.get(key(id), &mut out).unwrap() {
            assert_eq!(out, payload_of(id), "block {id}");
        }
    }
}
