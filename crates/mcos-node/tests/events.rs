//! KV events against the node's own directory: a reader that applies BlockStored /
//! BlockRemoved to a set ends with exactly the blocks the node holds, under a workload with
//! evictions, demotions and gets from several threads; a reader that lags resyncs from a
//! snapshot.
#![allow(clippy::unwrap_used)]

use mcos_core::{BlockKey, TierId};
use mcos_node::{KvEvent, KvEventKind, Node, NodeConfig};
use std::collections::HashMap;
use std::time::Duration;

fn node(dir: &std::path::Path, shards: usize) -> Node {
    let mut cfg = NodeConfig::dram_and_disk(256, 32, 64, dir);
    cfg.shards = shards;
    cfg.kv_events = true;
    Node::open(cfg).unwrap()
}

fn apply(model: &mut HashMap<BlockKey, TierId>, events: &[KvEvent], last: &mut u64) {
    for e in events {
        assert!(
            e.seq > *last,
            "sequence goes backwards: {} after {}",
            e.seq,
            *last
        );
        *last = e.seq;
        match e.kind {
            KvEventKind::Stored => {
                assert!(
                    model.insert(e.key, e.tier).is_none(),
                    "stored twice: {:?}",
                    e.key
                );
            }
            KvEventKind::Removed => {
                assert!(
                    model.remove(&e.key).is_some(),
                    "removed unknown: {:?}",
                    e.key
                );
            }
        }
    }
}

fn resident(node: &Node, universe: u128) -> Vec<BlockKey> {
    let mut v: Vec<BlockKey> = (1..=universe)
        .map(BlockKey)
        .filter(|k| node.locate(*k).is_some())
        .collect();
    v.sort();
    v
}

#[test]
fn events_rebuild_the_directory_exactly_under_evictions() {
    let dir = tempfile::tempdir().unwrap();
    let node = std::sync::Arc::new(node(dir.path(), 4));
    let log = node.kv_events().unwrap().clone();
    let mut cursor = log.next_seq();
    assert_eq!(cursor, 1);
    let universe = 400u128;
    // Four writers and readers over 400 keys on 96 frames: many evictions and demotions.
    let workers: Vec<_> = (0..4u128)
        .map(|w| {
            let node = node.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..600u128 {
                    let k = BlockKey(1 + (i * 7 + w * 13) % universe);
                    node.put(k, &[k.0 as u8; 200]).unwrap();
                    node.get(BlockKey(1 + (i * 3) % universe), &mut out)
                        .unwrap();
                }
            })
        })
        .collect();
    let mut model = HashMap::new();
    let mut last = 0;
    let mut events = Vec::new();
    while workers.iter().any(|w| !w.is_finished()) {
        events.clear();
        let lost = log.read(&mut cursor, &mut events, 4096, Duration::from_millis(5));
        assert_eq!(lost, 0, "a reader keeping up loses nothing");
        apply(&mut model, &events, &mut last);
    }
    for w in workers {
        w.join().unwrap();
    }
    node.quiesce().unwrap();
    events.clear();
    assert_eq!(
        log.read(&mut cursor, &mut events, usize::MAX, Duration::ZERO),
        0
    );
    apply(&mut model, &events, &mut last);
    let mut rebuilt: Vec<BlockKey> = model.keys().copied().collect();
    rebuilt.sort();
    let stats = node.stats();
    assert!(stats.counters.evictions > 100, "{:?}", stats.counters);
    assert_eq!(rebuilt, resident(&node, universe));
    // The snapshot says the same, at the last sequence number.
    let snap = node.kv_snapshot().unwrap();
    assert_eq!(snap.seq, last);
    let mut listed: Vec<BlockKey> = snap.blocks.iter().map(|b| b.0).collect();
    listed.sort();
    assert_eq!(listed, rebuilt);
    for (k, t) in &snap.blocks {
        assert_eq!(node.locate(*k).map(|l| l.0), Some(*t));
    }
}

#[test]
fn a_lagging_reader_resyncs_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 2);
    let log = node.kv_events().unwrap();
    let mut cursor = log.next_seq();
    // More events than the ring holds before the reader reads any.
    let mut n = 0u128;
    while log.next_seq() <= mcos_node::KV_EVENT_RING_DEPTH as u64 + 100 {
        n += 1;
        node.put(BlockKey(n), &[1u8; 16]).unwrap();
    }
    let mut events = Vec::new();
    let lost = log.read(&mut cursor, &mut events, usize::MAX, Duration::ZERO);
    assert!(lost >= 100, "lost {lost}");
    assert_eq!(log.dropped(), lost);
    // Resync: the snapshot, then the events after it.
    let snap = node.kv_snapshot().unwrap();
    let mut model: HashMap<BlockKey, TierId> = snap.blocks.iter().copied().collect();
    let mut cursor = snap.seq + 1;
    for i in 0..50u128 {
        node.put(BlockKey(n + 1 + i), &[2u8; 16]).unwrap();
    }
    events.clear();
    assert_eq!(
        log.read(&mut cursor, &mut events, usize::MAX, Duration::ZERO),
        0
    );
    let mut last = snap.seq;
    apply(&mut model, &events, &mut last);
    let mut rebuilt: Vec<BlockKey> = model.keys().copied().collect();
    rebuilt.sort();
    assert_eq!(rebuilt, resident(&node, n + 50));
    node.close().unwrap();
}

#[test]
fn restored_blocks_are_in_the_first_snapshot_and_their_eviction_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(256, 4, 16, dir.path());
    cfg.tiers[1].persist = true;
    cfg.kv_events = true;
    let node = Node::open(cfg.clone()).unwrap();
    for k in 1..=10u128 {
        node.put_durable(
            BlockKey(k),
            mcos_core::PriorityClass::DEFAULT,
            &[k as u8; 100],
        )
        .unwrap();
    }
    node.close().unwrap();
    let node = Node::open(cfg).unwrap();
    let snap = node.kv_snapshot().unwrap();
    assert_eq!(snap.seq, 0);
    let mut model: HashMap<BlockKey, TierId> = snap.blocks.iter().copied().collect();
    assert_eq!(model.len(), 10);
    let log = node.kv_events().unwrap();
    let mut cursor = 1;
    // Durable puts of new keys fill the 16 frames: restored blocks are evicted.
    for k in 100..=130u128 {
        node.put_durable(
            BlockKey(k),
            mcos_core::PriorityClass::DEFAULT,
            &[k as u8; 100],
        )
        .unwrap();
    }
    let mut events = Vec::new();
    assert_eq!(
        log.read(&mut cursor, &mut events, usize::MAX, Duration::ZERO),
        0
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == KvEventKind::Removed && e.key.0 <= 10),
        "no restored block's removal was published"
    );
    let mut last = 0;
    apply(&mut model, &events, &mut last);
    let mut rebuilt: Vec<BlockKey> = model.keys().copied().collect();
    rebuilt.sort();
    let mut all: Vec<BlockKey> = (1..=130u128)
        .map(BlockKey)
        .filter(|k| node.locate(*k).is_some())
        .collect();
    all.sort();
    assert_eq!(rebuilt, all);
    node.close().unwrap();
}

/// Parent keys: chains put with `put_batch_with_parents` (each block's parent is the previous
/// block of its chain, the first has none) come back on every `Stored` event and in the
/// snapshot, under evictions; plain puts and durable puts without a parent carry none; a
/// parent list of the wrong length is refused.
#[test]
fn stored_events_and_snapshots_carry_the_parent_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(256, 16, 32, dir.path());
    cfg.tiers[1].persist = true;
    cfg.kv_events = true;
    let node = Node::open(cfg).unwrap();
    let log = node.kv_events().unwrap().clone();
    let mut cursor = log.next_seq();
    let class = mcos_core::PriorityClass::DEFAULT;
    let mut expected: HashMap<BlockKey, BlockKey> = HashMap::new();
    // 12 chains of 8 blocks (96 blocks through 48 frames): evictions along the way.
    for chain in 0..12u128 {
        let keys: Vec<BlockKey> = (0..8).map(|i| BlockKey(1000 * (chain + 1) + i)).collect();
        let parents: Vec<BlockKey> = (0..8)
            .map(|i| if i == 0 { BlockKey::NONE } else { keys[i - 1] })
            .collect();
        let data = [chain as u8; 64];
        let blocks: Vec<(BlockKey, &[u8])> = keys.iter().map(|&k| (k, &data[..])).collect();
        for r in node.put_batch_with_parents(class, &blocks, &parents) {
            assert!(matches!(r.unwrap(), mcos_node::PutOutcome::Stored(_)));
        }
        expected.extend(keys.iter().copied().zip(parents));
    }
    node.put(BlockKey(7), &[7u8; 64]).unwrap();
    node.put_durable(BlockKey(8), class, &[8u8; 64]).unwrap();
    node.put_durable_with_parent(BlockKey(9), BlockKey(8), class, &[9u8; 64])
        .unwrap();
    expected.extend([
        (BlockKey(7), BlockKey::NONE),
        (BlockKey(8), BlockKey::NONE),
        (BlockKey(9), BlockKey(8)),
    ]);
    let mut events = Vec::new();
    assert_eq!(
        log.read(&mut cursor, &mut events, usize::MAX, Duration::ZERO),
        0
    );
    let mut stored = 0;
    let mut parents_seen: HashMap<BlockKey, BlockKey> = HashMap::new();
    for e in &events {
        match e.kind {
            KvEventKind::Stored => {
                stored += 1;
                assert_eq!(Some(&e.parent), expected.get(&e.key), "{:?}", e.key);
                parents_seen.insert(e.key, e.parent);
            }
            KvEventKind::Removed => {
                assert_eq!(e.parent, BlockKey::NONE);
                parents_seen.remove(&e.key);
            }
        }
    }
    assert_eq!(stored, 99);
    assert!(events.iter().any(|e| e.kind == KvEventKind::Removed));
    let snap = node.kv_snapshot().unwrap();
    assert_eq!(snap.blocks.len(), snap.parents.len());
    assert!(!snap.blocks.is_empty());
    let listed: HashMap<BlockKey, BlockKey> = snap
        .blocks
        .iter()
        .map(|b| b.0)
        .zip(snap.parents.iter().copied())
        .collect();
    assert_eq!(listed, parents_seen);
    // A parent list that is neither empty nor one per block is refused, nothing stored.
    let data = [1u8; 8];
    let res = node.put_batch_with_parents(
        class,
        &[(BlockKey(50), &data[..]), (BlockKey(51), &data[..])],
        &[BlockKey(49)],
    );
    assert!(
        res.iter()
            .all(|r| matches!(r, Err(mcos_node::NodeError::ParentCount { .. })))
    );
    assert!(node.locate(BlockKey(50)).is_none());
    node.close().unwrap();
}
