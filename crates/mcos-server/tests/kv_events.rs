//! KV events end to end: three real `mcosd` processes in a pool (real etcd on loopback), a
//! pool client writing more than the pool holds (evictions on every member) and reading, and a
//! router-like consumer subscribed to every member with `mcos-client`. The consumer rebuilds
//! each member's contents from the events alone and must match, exactly, what each member says
//! it holds: its snapshot list and an exists query over every key ever written. Every process
//! is stopped at the end, even when an assertion fails. Skips with a printed reason when etcd
//! is not installed, unless `CI=true`.
//!
//! Parent keys: after the pool's writes, chains of blocks (each block's parent is the previous
//! one, as in a token prefix) are put on each member with `put_with_parents`, over its Unix
//! socket (shared region) and over TCP (inline). The consumer checks every BlockStored's
//! parent against what was put (salted like the key), and the snapshot's parents against the
//! ones it rebuilt.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, etcd_or_skip};
use mcos_client::{Client, KvEvent, kv_event_kind};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
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
    common::payload(k, BLOCK)
}

/// Chains put with parents per member, blocks per chain.
const CHAINS: u128 = 4;
const CHAIN_BLOCKS: u128 = 8;

/// Client key of block `i` of chain `c` put on member `m` (outside the pool's 1..=1200).
fn chain_key(m: usize, c: u128, i: u128) -> BlockKey {
    BlockKey(100_000 + m as u128 * 1_000 + c * 100 + i)
}

/// Stored key -> (stored parent key, put directly on a member) of every block put with a
/// parent (salted like the keys); every other block has none.
type Parents = Arc<BTreeMap<BlockKey, (BlockKey, bool)>>;

/// What the consumer knows of one member: rebuilt from its snapshot and events.
#[derive(Default)]
struct Rebuilt {
    /// Stored key -> (tier, parent).
    blocks: BTreeMap<BlockKey, (u8, BlockKey)>,
    /// Sequence number of the last event applied.
    seq: u64,
    stored: u64,
    /// Stored events of the directly put chains that named a parent.
    with_parent: u64,
    /// Stored events of the pool's writes that named a parent.
    pool_with_parent: u64,
    removed: u64,
    lost: u64,
}

impl Rebuilt {
    fn apply(&mut self, events: &[KvEvent], parents: &Parents) {
        for e in events {
            assert!(e.seq > self.seq, "event {} after {}", e.seq, self.seq);
            self.seq = e.seq;
            if e.kind == kv_event_kind::STORED {
                self.stored += 1;
                let (want, direct) = parents
                    .get(&e.key)
                    .copied()
                    .unwrap_or((BlockKey::NONE, false));
                assert_eq!(e.parent, want, "parent of {:?}", e.key);
                if e.parent != BlockKey::NONE {
                    if direct {
                        self.with_parent += 1;
                    } else {
                        self.pool_with_parent += 1;
                    }
                }
                assert!(
                    self.blocks.insert(e.key, (e.tier, e.parent)).is_none(),
                    "stored twice without a removal: {:?}",
                    e.key
                );
            } else {
                self.removed += 1;
                assert_eq!(e.parent, BlockKey::NONE, "a removal names no parent");
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
fn consume(socket: PathBuf, state: Arc<Mutex<Rebuilt>>, parents: Parents, stop: Arc<AtomicBool>) {
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
            s.blocks = snap
                .blocks
                .iter()
                .zip(&snap.parents)
                .map(|(&(k, t), &p)| (k, (t, p)))
                .collect();
            s.seq = snap.seq;
            events.retain(|e| e.seq > snap.seq);
        }
        s.apply(&events, &parents);
    }
}

#[test]
fn a_router_rebuilds_the_pool_from_kv_events() {
    let name = "a_router_rebuilds_the_pool_from_kv_events";
    if !etcd_or_skip(name) {
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

    // The chains' expected parents, as the daemons store them: salted like the keys.
    let salt = mcos_core::tenant_salt("default");
    let mut expected = BTreeMap::new();
    for m in 0..ids.len() {
        for c in 0..CHAINS {
            for i in 1..CHAIN_BLOCKS {
                expected.insert(
                    chain_key(m, c, i).salted(salt),
                    (chain_key(m, c, i - 1).salted(salt), true),
                );
            }
        }
    }
    // The pool's writes chain 1..=1200 too (each key's parent is the one before it), put
    // through the pool client on the keys' owners.
    for k in 2..=1200u128 {
        expected.insert(
            BlockKey(k).salted(salt),
            (BlockKey(k - 1).salted(salt), false),
        );
    }
    let expected: Parents = Arc::new(expected);

    let stop = Arc::new(AtomicBool::new(false));
    let states: Vec<Arc<Mutex<Rebuilt>>> = ids.iter().map(|_| Arc::default()).collect();
    let consumers: Vec<_> = daemons
        .iter()
        .zip(&states)
        .map(|(d, s)| {
            let (sock, s, stop) = (d.socket.clone(), s.clone(), stop.clone());
            let parents = expected.clone();
            std::thread::spawn(move || consume(sock, s, parents, stop))
        })
        .collect();
    // Let the subscriptions start before the first put (each asserts it starts at seq 1).
    std::thread::sleep(Duration::from_millis(300));

    // 1,200 distinct keys through 480 frames, in batches, with reads in between: evictions
    // and demotions on every member.
    let universe: Vec<BlockKey> = (1..=1200u128).map(BlockKey).collect();
    let mut pool_stored_with_parent = 0u64;
    for (i, chunk) in universe.chunks(40).enumerate() {
        let data: Vec<(BlockKey, Vec<u8>)> = chunk.iter().map(|k| (*k, payload(k.0))).collect();
        let view: Vec<(BlockKey, &[u8])> = data.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        let parents: Vec<BlockKey> = chunk
            .iter()
            .map(|k| {
                if k.0 == 1 {
                    BlockKey::NONE
                } else {
                    BlockKey(k.0 - 1)
                }
            })
            .collect();
        let reports = pool.put_with_parents(0, &view, &parents).unwrap();
        pool_stored_with_parent += reports
            .iter()
            .zip(chunk)
            .filter(|(_, k)| k.0 > 1)
            .map(|(r, _)| u64::from(r.stored))
            .sum::<u64>();
        let back = &universe[i * 40 / 2..i * 40 / 2 + 20];
        for (k, got) in back.iter().zip(pool.get(back).unwrap()) {
            if let Some(b) = got {
                assert_eq!(b, payload(k.0), "wrong bytes for {}", k.0);
            }
        }
    }

    // Chains put with parents on each member directly: even chains over its Unix socket
    // (through the shared region), odd ones over TCP (payloads inline).
    let view = pool.membership().view();
    let mut all_keys = universe.clone();
    // Per member: chain blocks with a parent that it stored (the policy may refuse some).
    let mut stored_with_parent = vec![0u64; ids.len()];
    for (m, (d, id)) in daemons.iter().zip(ids).enumerate() {
        let tcp = &view
            .members
            .iter()
            .find(|r| r.node_id == id)
            .expect("member in the view")
            .addr;
        let mut by_socket = Client::connect(d.socket.to_str().unwrap(), "default", "").unwrap();
        let mut by_tcp = Client::connect(tcp, "default", "").unwrap();
        for c in 0..CHAINS {
            let keys: Vec<BlockKey> = (0..CHAIN_BLOCKS).map(|i| chain_key(m, c, i)).collect();
            let parents: Vec<BlockKey> = (0..CHAIN_BLOCKS as usize)
                .map(|i| if i == 0 { BlockKey::NONE } else { keys[i - 1] })
                .collect();
            let data: Vec<Vec<u8>> = keys.iter().map(|k| payload(k.0)).collect();
            let view: Vec<(BlockKey, &[u8])> = keys
                .iter()
                .zip(&data)
                .map(|(k, b)| (*k, b.as_slice()))
                .collect();
            let client = if c % 2 == 0 {
                &mut by_socket
            } else {
                &mut by_tcp
            };
            let outcomes = client.put_with_parents(0, &view, &parents).unwrap();
            for (i, o) in outcomes.iter().enumerate() {
                match o {
                    mcos_client::Outcome::Stored { .. } if i > 0 => stored_with_parent[m] += 1,
                    mcos_client::Outcome::Stored { .. } | mcos_client::Outcome::Rejected { .. } => {
                    }
                    o => panic!("{id}: chain put answered {o:?}"),
                }
            }
            all_keys.extend(keys);
        }
        // A parent list of the wrong length is refused before anything is sent.
        assert!(
            by_socket
                .put_with_parents(0, &[(chain_key(m, 9, 0), &[1u8][..])], &[])
                .is_err()
        );
    }

    // Each member's final state: what it says it holds, and the consumer caught up with it.
    let salted: BTreeMap<BlockKey, BlockKey> =
        all_keys.iter().map(|k| (k.salted(salt), *k)).collect();
    let mut total_removed = 0;
    for (m, ((d, id), state)) in daemons.iter().zip(ids).zip(&states).enumerate() {
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
        let listed: BTreeMap<BlockKey, BlockKey> = snap
            .blocks
            .iter()
            .map(|b| b.0)
            .zip(snap.parents.iter().copied())
            .collect();
        let rebuilt_parents: BTreeMap<BlockKey, BlockKey> =
            s.blocks.iter().map(|(k, &(_, p))| (*k, p)).collect();
        assert_eq!(
            rebuilt_parents, listed,
            "{id}: events and snapshot disagree (keys or parents)"
        );
        // Every chain block stored but the first of each chain named its parent, once.
        assert!(stored_with_parent[m] > 0, "{id}: no chain block was stored");
        assert_eq!(
            s.with_parent, stored_with_parent[m],
            "{id}: stored events with a parent"
        );
        let rebuilt: BTreeSet<BlockKey> = s.blocks.keys().copied().collect();
        // The exists query over every key ever written says the same.
        let present: BTreeSet<BlockKey> = all_keys
            .iter()
            .zip(c.exists(&all_keys).unwrap())
            .filter(|(_, t)| t.is_some())
            .map(|(k, _)| k.salted(salt))
            .collect();
        assert_eq!(rebuilt, present, "{id}: events and exists disagree");
        assert!(rebuilt.iter().all(|k| salted.contains_key(k)));
        assert!(s.removed > 0, "{id}: no eviction happened");
        assert_eq!(s.lost, 0, "{id}: a consumer keeping up lost events");
        total_removed += s.removed;
        eprintln!(
            "{id}: {} stored ({} with a parent), {} removed, {} resident",
            s.stored,
            s.with_parent,
            s.removed,
            rebuilt.len()
        );
    }
    assert!(total_removed > 300, "{total_removed}");
    // Every pool write but key 1 named its parent, on each owner that stored it.
    let pool_with_parent: u64 = states
        .iter()
        .map(|s| s.lock().unwrap().pool_with_parent)
        .sum();
    assert!(pool_stored_with_parent > 0, "no pool write was stored");
    assert_eq!(
        pool_with_parent, pool_stored_with_parent,
        "stored events of pool writes with their parent"
    );
    // A pool client's parent list of the wrong length is refused before anything is sent.
    assert!(
        pool.put_with_parents(0, &[(BlockKey(1), &[1u8][..])], &[])
            .is_err()
    );
    stop.store(true, Ordering::Release);
    for c in consumers {
        c.join().unwrap();
    }
    drop(pool);
    drop(daemons);
}
