//! The daemon as a pool member, with real processes: a real etcd on a free loopback port and
//! real `mcosd` members. A client connected to one daemon only gets blocks owned by others
//! (over the local shared region and over TCP), the daemon keeps copies of blocks read often,
//! prices remote hits with its measured peer links, and after a `kill -9` the surviving
//! daemons restore the replication factor of protected blocks with no client repairer. Every
//! process is stopped at the end, even when an assertion fails. Skips with a printed reason
//! when etcd is not installed, unless `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used)]

use mcos_client::{Client, ClientOptions, Outcome};
mod common;

use common::{Daemon, etcd_or_skip};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
use mcos_core::{BlockKey, PriorityClass};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const TTL_S: u64 = 3;

/// Starts member `id`; `extra` is appended to its node config (TOML).
fn start_member(dir: &Path, id: &str, etcd: &str, cluster: &str, extra: &str) -> Daemon {
    let node = format!(
        "block_bytes = {BLOCK}\n{extra}\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 4096\n"
    );
    Daemon::start_with(
        dir,
        id,
        etcd,
        cluster,
        &node,
        "copy_after_remote_reads = 2\n",
    )
}

fn payload(k: u128) -> Vec<u8> {
    common::payload(k, BLOCK)
}

struct Pool {
    _etcd: LocalEtcd,
    members: Vec<Daemon>,
    client: PoolClient,
    _dir: tempfile::TempDir,
}

/// `n` members; member `i` gets `extra(i)` in its config.
fn pool(n: usize, extra: impl Fn(usize) -> String) -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start(&dir.path().join("etcd")).unwrap();
    let cluster = format!("m{}", std::process::id());
    let members: Vec<Daemon> = (0..n)
        .map(|i| {
            let id = format!("n{i}");
            start_member(dir.path(), &id, &etcd.client_addr, &cluster, &extra(i))
        })
        .collect();
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = TTL_S;
    let client = PoolClient::connect(cfg, PoolOptions::default()).unwrap();
    let v = client
        .membership()
        .wait_for(Duration::from_secs(20), |v| v.members.len() == n);
    assert!(v.is_some(), "{n} daemons did not all register within 20 s");
    let p = Pool {
        _etcd: etcd,
        members,
        client,
        _dir: dir,
    };
    // Each daemon routes over its own view: wait until every one sees all members.
    let deadline = Instant::now() + Duration::from_secs(10);
    for m in &p.members {
        while p.stats(&m.id)["daemon"]["cluster"]["members"] != n {
            assert!(
                Instant::now() < deadline,
                "{} does not see {n} members",
                m.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    p
}

impl Pool {
    fn addr(&self, id: &str) -> String {
        let v = self.client.membership().view();
        format!("tcp://{}", v.member(id).unwrap().addr)
    }

    /// A TCP client of member `id` (lookups forwarded to owners unless `local_only`).
    fn tcp(&self, id: &str, local_only: bool) -> Client {
        let mut c = Client::connect_with(
            &self.addr(id),
            ClientOptions {
                reconnect_timeout: Duration::ZERO,
                ..ClientOptions::default()
            },
        )
        .unwrap();
        c.set_local_only(local_only);
        c
    }

    fn stats(&self, id: &str) -> Value {
        serde_json::from_str(&self.tcp(id, true).stats_json().unwrap()).unwrap()
    }
}

fn data(ks: &[BlockKey]) -> Vec<(BlockKey, Vec<u8>)> {
    ks.iter().map(|k| (*k, payload(k.0))).collect()
}

fn view(d: &[(BlockKey, Vec<u8>)]) -> Vec<(BlockKey, &[u8])> {
    d.iter().map(|(k, b)| (*k, b.as_slice())).collect()
}

fn tiers(c: &mut Client, keys: &[BlockKey]) -> Vec<Option<u8>> {
    let mut bufs: Vec<Vec<u8>> = keys.iter().map(|_| vec![0u8; BLOCK]).collect();
    let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
    let res = c.get_into(keys, &mut views).unwrap();
    res.iter()
        .zip(keys.iter().zip(&bufs))
        .map(|(o, (k, b))| match *o {
            Outcome::Hit { tier, len } => {
                assert_eq!(&b[..len as usize], &payload(k.0)[..], "key {}", k.0);
                Some(tier)
            }
            Outcome::Miss => None,
            other => panic!("key {}: {other:?}", k.0),
        })
        .collect()
}

#[test]
fn local_daemon_fetches_from_owners_and_keeps_copies_of_blocks_read_often() {
    if !etcd_or_skip("local_daemon_fetches_from_owners_and_keeps_copies_of_blocks_read_often") {
        return;
    }
    let t0 = Instant::now();
    let mut p = pool(3, |_| String::new());
    // Blocks stored by a pool client (on their owners only), 400 of them.
    let keys: Vec<BlockKey> = (1..=400u128).map(BlockKey).collect();
    let d = data(&keys);
    let r = p.client.put(&view(&d)).unwrap();
    assert!(r.iter().all(|x| x.stored == 1), "{r:?}");
    let owner = |k: BlockKey| p.client.owners_of(k, 0)[0].clone();
    let remote: Vec<BlockKey> = keys.iter().copied().filter(|&k| owner(k) != "n0").collect();
    let local: Vec<BlockKey> = keys.iter().copied().filter(|&k| owner(k) == "n0").collect();
    assert!(remote.len() > 150 && !local.is_empty(), "{}", remote.len());
    // Split the remote keys: A read once, B read three times, C kept for the kill.
    let (a, rest) = remote.split_at(remote.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);

    // A local client of n0 (shared region) gets blocks owned by n1 and n2: exact bytes,
    // reported as remote hits; n0's own blocks as local hits.
    let mut unix = Client::connect(p.members[0].socket.to_str().unwrap(), "default", "").unwrap();
    assert!(
        unix.region().is_some(),
        "the local path uses the shared region"
    );
    let t = tiers(&mut unix, a);
    assert!(
        t.iter().all(|&t| t == Some(mcos_proto::TIER_REMOTE)),
        "{t:?}"
    );
    assert!(tiers(&mut unix, &local).iter().all(|&t| t == Some(0)));
    // The same over TCP.
    let mut tcp = p.tcp("n0", false);
    let t = tiers(&mut tcp, b);
    assert!(
        t.iter().all(|&t| t == Some(mcos_proto::TIER_REMOTE)),
        "{t:?}"
    );
    // With LOCAL, n0 answers from its own tiers only.
    let mut only = p.tcp("n0", true);
    assert!(only.get(c).unwrap().iter().all(Option::is_none));
    // A key nowhere in the pool is a miss, not an error.
    assert_eq!(tcp.get(&[BlockKey(99_999)]).unwrap(), vec![None]);

    // Read B again: the second remote read of each block makes it a local copy
    // (copy_after_remote_reads = 2), so the third read is a local hit.
    let t = tiers(&mut tcp, b);
    assert!(
        t.iter().all(|&t| t == Some(mcos_proto::TIER_REMOTE)),
        "{t:?}"
    );
    let t = tiers(&mut unix, b);
    assert!(
        t.iter().all(|&t| t == Some(0)),
        "copies kept after 2 reads: {t:?}"
    );
    assert!(only.get(b).unwrap().iter().all(Option::is_some));
    // A, read once, was not copied.
    assert!(only.get(a).unwrap().iter().all(Option::is_none));
    let s = p.stats("n0");
    let pool = &s["daemon"]["pool"];
    assert_eq!(pool["local_copies"]["stored"], b.len() as u64, "{pool}");
    assert!(pool["remote"]["hits"].as_u64().unwrap() >= (a.len() + 2 * b.len()) as u64);
    // Batched per peer: each get asks at most one call per owner per round.
    assert!(
        pool["remote"]["peer_calls"].as_u64().unwrap() <= 40,
        "{pool}"
    );
    // A copy is a cache entry, not an owner: the owners are unchanged.
    assert_eq!(p.client.owners_of(b[0], 0)[0], owner(b[0]));

    // Prefix lookups through n0 consult the owners: the whole chain is in the pool; a chain
    // with a key nowhere stops there.
    assert_eq!(tcp.longest_prefix(&keys).unwrap(), keys.len());
    let mut gap = keys.clone();
    gap.insert(250, BlockKey(77_777));
    assert_eq!(unix.longest_prefix(&gap).unwrap(), 250);
    assert!(only.longest_prefix(&keys).unwrap() < keys.len());
    let s = p.stats("n0");
    let pool = &s["daemon"]["pool"];
    assert!(pool["remote"]["prefix_forwarded"].as_u64().unwrap() >= 2);
    // The measured links (payload calls give the bandwidth, lookups the round trip), priced:
    // no cost model configured, so every remote hit is fetched.
    let links = pool["peer_links"].as_array().unwrap();
    assert_eq!(links.len(), 2, "{pool}");
    for l in links {
        assert!(l["latency_us"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["measured_bytes_per_s"].as_f64().unwrap() > 0.0, "{l}");
        assert_eq!(l["decision"], "fetch", "{l}");
    }

    // kill -9 n1: through n0, n1's keys of C are misses (never errors or wrong bytes) within
    // a peer timeout, n2's are still exact.
    let victim = 1;
    p.members[victim].kill9();
    let t = Instant::now();
    let got = tiers(&mut unix, c);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for (k, g) in c.iter().zip(&got) {
        if owner(*k) == "n1" {
            assert_eq!(*g, None, "key {} of the dead member", k.0);
        } else {
            assert_eq!(*g, Some(mcos_proto::TIER_REMOTE), "key {}", k.0);
        }
    }
    eprintln!("fetch-from-owners test: {:?}", t0.elapsed());
}

#[test]
fn remote_hits_priced_against_recompute_with_the_measured_link() {
    if !etcd_or_skip("remote_hits_priced_against_recompute_with_the_measured_link") {
        return;
    }
    // n0's model says a block recomputes in 1 ns (1 token at 10^9 tokens/s): once its links
    // are measured (any round trip is slower), a remote hit is not worth fetching.
    let mut p = pool(2, |i| {
        if i == 0 {
            "[brain]\nprefill_tokens_per_s = 1e9\nkv_bytes_per_token = 4096\nblock_tokens = 1\n"
                .into()
        } else {
            String::new()
        }
    });
    let keys: Vec<BlockKey> = (1..=200u128).map(BlockKey).collect();
    let d = data(&keys);
    p.client.put(&view(&d)).unwrap();
    let remote: Vec<BlockKey> = keys
        .iter()
        .copied()
        .filter(|&k| p.client.owners_of(k, 0)[0] == "n1")
        .collect();
    let mut tcp = p.tcp("n0", false);
    // The first call is over an unmeasured link (free: fetched) and measures its bandwidth;
    // a lookup of a key nowhere (an all-miss call) measures its round trip.
    let first = tcp.get(&remote[..10]).unwrap();
    assert!(first.iter().all(Option::is_some));
    assert_eq!(tcp.get(&[BlockKey(99_999)]).unwrap(), vec![None]);
    // Now the link is priced: recompute wins, the blocks are misses for the engine.
    let second = tcp.get(&remote[10..20]).unwrap();
    assert!(second.iter().all(Option::is_none), "priced out");
    let s = p.stats("n0");
    let pool = &s["daemon"]["pool"];
    assert_eq!(pool["remote"]["priced_out"], 10, "{pool}");
    let l = &pool["peer_links"][0];
    assert_eq!(l["decision"], "recompute", "{l}");
    assert!(l["recompute_us_per_block"].as_f64().unwrap() < 0.01, "{l}");
    assert!(
        l["fetch_us_per_block"].as_f64().unwrap() > l["recompute_us_per_block"].as_f64().unwrap()
    );
    // n1, with no cost model, still fetches from n0.
    let mine: Vec<BlockKey> = keys
        .iter()
        .copied()
        .filter(|&k| p.client.owners_of(k, 0)[0] == "n0")
        .take(10)
        .collect();
    assert!(
        p.tcp("n1", false)
            .get(&mine)
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
}

/// Which survivors hold each key (local lookups only).
fn holders(p: &Pool, ids: &[&str], keys: &[BlockKey]) -> Vec<usize> {
    let mut n = vec![0usize; keys.len()];
    for id in ids {
        let got = p.tcp(id, true).exists(keys).unwrap();
        for (c, g) in n.iter_mut().zip(got) {
            *c += usize::from(g.is_some());
        }
    }
    n
}

#[test]
fn surviving_daemons_restore_the_factor_of_protected_blocks_without_a_client() {
    if !etcd_or_skip("surviving_daemons_restore_the_factor_of_protected_blocks_without_a_client") {
        return;
    }
    let mut p = pool(3, |_| String::new());
    let precious = PriorityClass::PRECIOUS.0;
    let prot: Vec<BlockKey> = (1001..=1300u128).map(BlockKey).collect();
    let plain: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let (dq, dp) = (data(&prot), data(&plain));
    // The pool client has no repairer (PoolOptions::default()).
    assert!(p.client.repair_totals().is_none());
    let r = p.client.put_class(precious, &view(&dq)).unwrap();
    assert!(r.iter().all(|x| x.wanted == 2 && x.stored == 2), "{r:?}");
    p.client.put(&view(&dp)).unwrap();
    for id in ["n0", "n1", "n2"] {
        let s = p.stats(id);
        let tracked = s["daemon"]["pool"]["rereplication"]["tracked"]
            .as_u64()
            .unwrap();
        assert!(tracked > 100, "{id} tracks its protected blocks: {tracked}");
    }
    let lost_copy = prot
        .iter()
        .filter(|&&k| p.client.owners_of(k, precious).contains(&"n2".to_string()))
        .count();
    assert!(lost_copy > 100, "{lost_copy}");

    // kill -9 n2; the client does nothing but watch. The survivors copy every protected
    // block that lost a copy to its new second owner.
    p.members[2].kill9();
    let gone = p
        .client
        .membership()
        .wait_for(Duration::from_secs(TTL_S + 2), |v| v.members.len() == 2);
    assert!(gone.is_some(), "n2 still in the view after TTL + 2 s");
    let t = Instant::now();
    let deadline = t + Duration::from_secs(15);
    loop {
        let h = holders(&p, &["n0", "n1"], &prot);
        if h.iter().all(|&n| n == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "factor not restored in 15 s: {} of {} blocks have 2 copies",
            h.iter().filter(|&&n| n == 2).count(),
            prot.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "factor restored {:?} after the member left the view",
        t.elapsed()
    );
    let copied: u64 = ["n0", "n1"]
        .iter()
        .map(|id| {
            p.stats(id)["daemon"]["pool"]["rereplication"]["copied"]
                .as_u64()
                .unwrap()
        })
        .sum();
    // One daemon copies each block (the surviving first owner): no duplicates.
    assert_eq!(copied, lost_copy as u64);
    // Unprotected blocks are not copied: n2's share of them is gone.
    let plain_held = holders(&p, &["n0", "n1"], &plain);
    assert!(plain_held.iter().all(|&n| n <= 1));
    assert!(plain_held.contains(&0));

    // A second kill loses no protected block: n0 alone serves all 300, exact.
    p.members[1].kill9();
    let got = tiers(&mut p.tcp("n0", true), &prot);
    assert!(got.iter().all(Option::is_some));
    let metrics_copied = p.stats("n0")["daemon"]["pool"]["rereplication"]["rounds"]
        .as_u64()
        .unwrap();
    assert!(metrics_copied >= 1);
}
