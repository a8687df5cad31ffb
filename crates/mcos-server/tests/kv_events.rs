//! KV events end to end: three real `mcosd` processes in a pool (real etcd on loopback), a
//! pool client writing more than the pool holds (evictions on every member) and reading, and a
//! router-like consumer subscribed to every member with `mcos-client`. The consumer rebuilds
//! each member's contents from the events alone and must match, exactly, what each member says
//! it holds: its snapshot list and an exists query over every key ever written. Every process
//! is stopped at the end, even when an assertion fails. Skips with a printed reason when etcd
//! is not installed, unless `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use common::Daemon;
use mcos_client::{Client, KvEvent, kv_event_kind};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions, etcd_installed};
use mcos_core::BlockKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BLOCK: usize = 1024;
/// Frames per member: 3 x 160 = 480 frames for 1,200 keys written.
const DRAM_BLOCKS: u32 = 96;
const DISK_BLOCKS: u32 = 64;

fn start(dir: &Path, id: &str, etcd: &str, cluster: &str) -> Daemon {
    let disk = dir.join(format!("{id}.tier"));
    let node = format!(
        "block_bytes = {BLOCK}\nkv_events = true\nfree_watermark = 0.0\n\
         [[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = {DRAM_BLOCKS}\n\
         [[tiers]]\nkind = \"disk\"\ncapacity_blocks = {DISK_BLOCKS}\npath = \"{}\"\n",
        disk.display()
    );
    Daemon::start(dir, id, etcd, cluster, &node)
}

fn payload(k: u128) -> Vec<u8> {
    (0..BLOCK).map(|i| (k as usize * 131 + i) as u8).collect()
}

/// What the consumer knows of one member: rebuilt from its snapshot and events.
#[derive(Default)]
struct Rebuilt {
    blocks: BTreeMap<BlockKey, u8>,
    /// Sequence number of the last event applied.
    seq: u64,
    stored: u64,
    removed: u64,
    lost: u64,
}

impl Rebuilt {
    fn apply(&mut self, events: &[KvEvent]) {
        for e in events {
            assert!(e.seq > self.seq, "event {} after {}", e.seq, self.seq);
            self.seq = e.seq;
            if e.kind == kv_event_kind::STORED {
                self.stored += 1;
                assert!(
                    self.blocks.insert(e.key, e.tier).is_none(),
                    "stored twice without a removal: {:?}",
                    e.key
                );
            } else {
                self.removed += 1;
                assert!(
                    self.blocks.remove(&e.key).is_some(),
                    "removal of a block never stored: {:?}",
                    e.key
                );
            }
        }
    }
}

/// Subscribes to one member and applies its events until `stop`: a router's consumer. A gap
/// (events lost) makes it resync from a snapshot on a second connection.
fn consume(socket: PathBuf, state: Arc<Mutex<Rebuilt>>, stop: Arc<AtomicBool>) {
    let addr = socket.to_str().unwrap().to_string();
    let mut stream = Client::connect(&addr, "default", "")
        .unwrap()
        .subscribe()
        .unwrap();
    // Nothing was written before the subscription: the stream starts at the first event.
    assert_eq!(stream.next_seq(), 1);
    let mut events = Vec::new();
    while !stop.load(Ordering::Acquire) {
        events.clear();
        let lost = stream.next_batch(&mut events).unwrap();
        let mut s = state.lock().unwrap();
        if lost > 0 {
            // Resync: the snapshot, then only the events after it.
            s.lost += lost;
            let snap = Client::connect(&addr, "default", "")
                .unwrap()
                .kv_snapshot()
                .unwrap();
            s.blocks = snap.blocks.iter().copied().collect();
            s.seq = snap.seq;
            events.retain(|e| e.seq > snap.seq);
        }
        s.apply(&events);
    }
}

#[test]
fn a_router_rebuilds_the_pool_from_kv_events() {
    let name = "a_router_rebuilds_the_pool_from_kv_events";
    if !etcd_installed() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{name}: etcd is not installed and CI=true"
        );
        eprintln!("skipping {name}: etcd is not installed (apt-get install etcd-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start(&dir.path().join("etcd")).unwrap();
    let cluster = format!("ev{}", std::process::id());
    let ids = ["n0", "n1", "n2"];
    let daemons: Vec<Daemon> = ids
        .iter()
        .map(|id| start(dir.path(), id, &etcd.client_addr, &cluster))
        .collect();
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = 3;
    let mut pool = PoolClient::connect(cfg, PoolOptions::default()).unwrap();
    assert!(
        pool.membership()
            .wait_for(Duration::from_secs(20), |v| v.members.len() == 3)
            .is_some(),
        "the daemons did not all register"
    );
    // A subscriber's id is the member id.
    for (d, id) in daemons.iter().zip(ids) {
        let s = Client::connect(d.socket.to_str().unwrap(), "default", "")
            .unwrap()
            .subscribe()
            .unwrap();
        assert_eq!(s.node_id(), id);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let states: Vec<Arc<Mutex<Rebuilt>>> = ids.iter().map(|_| Arc::default()).collect();
    let consumers: Vec<_> = daemons
        .iter()
        .zip(&states)
        .map(|(d, s)| {
            let (sock, s, stop) = (d.socket.clone(), s.clone(), stop.clone());
            std::thread::spawn(move || consume(sock, s, stop))
        })
        .collect();
    // Let the subscriptions start before the first put (each asserts it starts at seq 1).
    std::thread::sleep(Duration::from_millis(300));

    // 1,200 distinct keys through 480 frames, in batches, with reads in between: evictions
    // and demotions on every member.
    let universe: Vec<BlockKey> = (1..=1200u128).map(BlockKey).collect();
    for (i, chunk) in universe.chunks(40).enumerate() {
        let data: Vec<(BlockKey, Vec<u8>)> = chunk.iter().map(|k| (*k, payload(k.0))).collect();
        let view: Vec<(BlockKey, &[u8])> = data.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        pool.put(&view).unwrap();
        let back = &universe[i * 40 / 2..i * 40 / 2 + 20];
        for (k, got) in back.iter().zip(pool.get(back).unwrap()) {
            if let Some(b) = got {
                assert_eq!(b, payload(k.0), "wrong bytes for {}", k.0);
            }
        }
    }

    // Each member's final state: what it says it holds, and the consumer caught up with it.
    let salt = mcos_core::tenant_salt("default");
    let salted: BTreeMap<BlockKey, BlockKey> =
        universe.iter().map(|k| (k.salted(salt), *k)).collect();
    let mut total_removed = 0;
    for ((d, id), state) in daemons.iter().zip(ids).zip(&states) {
        let mut c = Client::connect(d.socket.to_str().unwrap(), "default", "").unwrap();
        let snap = c.kv_snapshot().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.lock().unwrap().seq < snap.seq {
            assert!(
                Instant::now() < deadline,
                "{id}: the consumer did not catch up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = state.lock().unwrap();
        assert_eq!(s.seq, snap.seq, "{id}: events after the last put");
        let listed: BTreeSet<BlockKey> = snap.blocks.iter().map(|b| b.0).collect();
        let rebuilt: BTreeSet<BlockKey> = s.blocks.keys().copied().collect();
        assert_eq!(rebuilt, listed, "{id}: events and snapshot disagree");
        // The exists query over every key ever written says the same.
        let present: BTreeSet<BlockKey> = universe
            .iter()
            .zip(c.exists(&universe).unwrap())
            .filter(|(_, t)| t.is_some())
            .map(|(k, _)| k.salted(salt))
            .collect();
        assert_eq!(rebuilt, present, "{id}: events and exists disagree");
        assert!(rebuilt.iter().all(|k| salted.contains_key(k)));
        assert!(s.removed > 0, "{id}: no eviction happened");
        assert_eq!(s.lost, 0, "{id}: a consumer keeping up lost events");
        total_removed += s.removed;
        eprintln!(
            "{id}: {} stored, {} removed, {} resident",
            s.stored,
            s.removed,
            rebuilt.len()
        );
    }
    assert!(total_removed > 300, "{total_removed}");
    stop.store(true, Ordering::Release);
    for c in consumers {
        c.join().unwrap();
    }
    drop(pool);
    drop(daemons);
}
