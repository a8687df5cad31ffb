//! The brain thread stalling, then panicking (injected through mcos-brain's test-only
//! `fault-injection` feature): the fast path keeps the brain's last table, falls back to the
//! built-in one after the table's TTL, reports the brain's health, and keeps serving every block
//! byte-exact. One test: the fault switches are process-wide.
#![allow(clippy::unwrap_used)]

use mcos_brain::thread::fault;
use mcos_core::BlockKey;
use mcos_node::{GetOutcome, Node, NodeConfig};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn serve_and_check(node: &Node, from: u64) {
    let mut buf = Vec::new();
    for id in from..from + 50 {
        let k = BlockKey(u128::from(id) + 1);
        node.put(k, &[id as u8; 64]).unwrap();
        if node.get(k, &mut buf).unwrap() != GetOutcome::Miss {
            assert_eq!(buf, vec![id as u8; 64]);
        }
    }
}

#[test]
fn a_stalled_or_panicked_brain_costs_its_tables_after_the_ttl_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::dram_and_disk(512, 600, 1200, dir.path());
    cfg.tiers.truncate(1);
    cfg.brain.enabled = true;
    cfg.brain.table_ttl_ticks = 100; // 100 ms
    let node = Node::open(cfg).unwrap();
    wait_for("the brain's first install", || {
        node.stats().policy_epoch >= 2
    });
    assert!(node.brain_health().unwrap().alive);

    // A stall of 10 TTLs: the table lapses while the brain is silent, and comes back after.
    fault::STALL_MS.store(1000, Ordering::Relaxed);
    wait_for("the stall to be seen", || {
        node.brain_health().unwrap().silent > Duration::from_millis(300)
    });
    wait_for("the TTL fallback during the stall", || {
        node.stats().policy_epoch == 0
    });
    serve_and_check(&node, 0);
    let fallbacks = node.stats().counters.policy_fallbacks;
    assert!(fallbacks >= 1);
    wait_for("the brain back after its stall", || {
        node.brain_health().unwrap().silent < Duration::from_millis(100)
            && node.stats().policy_epoch >= 2
    });

    // A panic: the thread is gone; the last table holds until its TTL, then the built-in one.
    fault::PANIC.store(true, Ordering::Relaxed);
    wait_for("the brain thread to die", || {
        !node.brain_health().unwrap().alive
    });
    wait_for("the TTL fallback after the panic", || {
        node.stats().policy_epoch == 0
    });
    assert!(node.stats().counters.policy_fallbacks > fallbacks);
    assert_eq!(node.policy_table().1, mcos_core::PolicyTable::builtin(1));
    serve_and_check(&node, 1000);
    node.close().unwrap();
}
