//! Warm-restart rejoin: a pool member with a persistent disk tier is killed (SIGKILL) and
//! started again with the same node id; it rebuilds its directory from the tier's block
//! headers, registers again, and the pool serves the keys it owns from it again, byte-exact
//! (placement hashes node ids, so the restarted member owns the same keys). Real etcd, three
//! real `mcosd` processes; skips with a printed reason when etcd is not installed, unless
//! `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, etcd_or_skip};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
use mcos_core::BlockKey;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

fn payload(k: u128) -> Vec<u8> {
    common::payload(k, BLOCK)
}

#[test]
fn a_restarted_member_rejoins_with_its_blocks() {
    let name = "a_restarted_member_rejoins_with_its_blocks";
    if !etcd_or_skip(name) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start(&dir.path().join("etcd")).unwrap();
    let cluster = format!("wr{}", std::process::id());
    let dram =
        format!("block_bytes = {BLOCK}\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 1024\n");
    // The restarting member: its only tier is persistent, so every block it stores is in the
    // tier file (one pwrite before the put is answered) and survives the process.
    let durable = format!(
        "block_bytes = {BLOCK}\n[[tiers]]\nkind = \"disk\"\ncapacity_blocks = 1024\npath = \"{}\"\npersist = true\n",
        dir.path().join("dur.tier").display()
    );
    let mut members = vec![
        Daemon::start(dir.path(), "n0", &etcd.client_addr, &cluster, &dram),
        Daemon::start(dir.path(), "n1", &etcd.client_addr, &cluster, &dram),
        Daemon::start(dir.path(), "dur", &etcd.client_addr, &cluster, &durable),
    ];
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = 3;
    let mut pool = PoolClient::connect(
        cfg,
        PoolOptions {
            peer_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    let all3 = |v: &mcos_cluster::View| v.members.len() == 3;
    assert!(
        pool.membership()
            .wait_for(Duration::from_secs(20), all3)
            .is_some()
    );

    let keys: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let data: Vec<(BlockKey, Vec<u8>)> = keys.iter().map(|k| (*k, payload(k.0))).collect();
    let view: Vec<(BlockKey, &[u8])> = data.iter().map(|(k, b)| (*k, b.as_slice())).collect();
    assert!(pool.put(&view).unwrap().iter().all(|r| r.stored == 1));
    let mine: Vec<BlockKey> = keys
        .iter()
        .copied()
        .filter(|k| pool.owners_of(*k, 0)[0] == "dur")
        .collect();
    assert!(mine.len() > 30, "dur owns {} keys", mine.len());

    // Crash: its keys (one copy each) are misses while it is away, never errors or wrong bytes.
    members[2].kill9();
    let gone = |v: &mcos_cluster::View| v.member("dur").is_none();
    assert!(
        pool.membership()
            .wait_for(Duration::from_secs(10), gone)
            .is_some()
    );
    for (k, g) in mine.iter().zip(pool.get(&mine).unwrap()) {
        assert!(
            g.is_none(),
            "key {} served while its only owner is down",
            k.0
        );
    }

    // Warm restart with the same node id: rebuilt from the tier file, registered again (after
    // its previous incarnation's lease lapsed), serving its keys.
    let restarted = Instant::now();
    members[2].restart();
    assert!(
        pool.membership()
            .wait_for(Duration::from_secs(20), |v| v.member("dur").is_some())
            .is_some(),
        "the restarted member did not rejoin"
    );
    eprintln!("rejoined {:?} after the restart", restarted.elapsed());
    let mut local = mcos_client::Client::connect(members[2].socket_str(), "default", "").unwrap();
    let stats: serde_json::Value = serde_json::from_str(&local.stats_json().unwrap()).unwrap();
    let restored = stats["node"]["rebuild"]["blocks_restored"]
        .as_u64()
        .unwrap();
    assert_eq!(restored, mine.len() as u64, "{stats}");
    let got = pool.get(&keys).unwrap();
    for (k, g) in keys.iter().zip(&got) {
        assert_eq!(g.as_deref(), Some(&payload(k.0)[..]), "key {}", k.0);
    }
    // Its keys came from it: no other member ever held them.
    assert!(local.exists(&mine).unwrap().iter().all(Option::is_some));
    for m in &members[..2] {
        let mut c = mcos_client::Client::connect(m.socket_str(), "default", "").unwrap();
        assert!(c.exists(&mine).unwrap().iter().all(Option::is_none));
    }
    drop(pool);
    drop(members);
}
