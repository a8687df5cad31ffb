//! The pool as real processes: a real etcd on free loopback ports with a temporary data
//! directory, three real `mcosd` processes on temporary sockets and loopback ports, a pool
//! client routing over the membership it watches. Every process is stopped at the end, even
//! when an assertion fails (handles kill on drop). Skips with a printed reason when etcd is not
//! installed, unless `CI=true`, where that is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Daemon, etcd_or_skip};
use mcos_cluster::{LocalEtcd, MembershipConfig, PoolClient, PoolOptions};
use mcos_core::{BlockKey, PriorityClass};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
const TTL_S: u64 = 3;

/// Each member's node: one DRAM tier of 2,048 blocks.
const NODE: &str = "block_bytes = 4096\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 2048\n";

/// A member on loopback (lease TTL 3 s).
fn member(dir: &Path, id: &str, etcd: &str, cluster: &str) -> Daemon {
    Daemon::start(dir, id, etcd, cluster, NODE)
}

/// Waits up to 10 s for `member`'s log to hold every one of `lines` (a daemon logs from its
/// own threads, so a line can land just after the state a test observed).
fn wait_for_log(member: &Daemon, lines: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&member.log).unwrap();
        if lines.iter().all(|l| log.contains(l)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not log all of {lines:?}: {log}",
            member.id
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn payload(k: u128) -> Vec<u8> {
    common::payload(k, BLOCK)
}

struct Pool {
    _etcd: LocalEtcd,
    members: Vec<Daemon>,
    client: PoolClient,
    cfg: MembershipConfig,
    _dir: tempfile::TempDir,
}

fn pool(n: usize) -> Pool {
    pool_with(n, PoolOptions::default())
}

fn pool_with(n: usize, opts: PoolOptions) -> Pool {
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start(&dir.path().join("etcd")).unwrap();
    let cluster = format!("t{}", std::process::id());
    let members: Vec<Daemon> = (0..n)
        .map(|i| member(dir.path(), &format!("n{i}"), &etcd.client_addr, &cluster))
        .collect();
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = TTL_S;
    let client = PoolClient::connect(cfg.clone(), opts).unwrap();
    let v = client
        .membership()
        .wait_for(Duration::from_secs(20), |v| v.members.len() == n);
    assert!(v.is_some(), "{n} daemons did not all register within 20 s");
    Pool {
        _etcd: etcd,
        members,
        client,
        cfg,
        _dir: dir,
    }
}

fn view(d: &[(BlockKey, Vec<u8>)]) -> Vec<(BlockKey, &[u8])> {
    d.iter().map(|(k, b)| (*k, b.as_slice())).collect()
}

#[test]
fn killed_member_leaves_within_the_ttl_and_protected_blocks_survive() {
    if !etcd_or_skip("killed_member_leaves_within_the_ttl_and_protected_blocks_survive") {
        return;
    }
    let t0 = Instant::now();
    let mut p = pool_with(
        3,
        PoolOptions {
            repair_protected: true,
            ..PoolOptions::default()
        },
    );
    let precious = PriorityClass::PRECIOUS.0;
    let plain: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let prot: Vec<BlockKey> = (1001..=1300u128).map(BlockKey).collect();
    let data = |ks: &[BlockKey]| ks.iter().map(|k| (*k, payload(k.0))).collect::<Vec<_>>();
    let (dp, dq) = (data(&plain), data(&prot));
    let r = p.client.put_class(0, &view(&dp)).unwrap();
    assert!(r.iter().all(|x| x.wanted == 1 && x.stored == 1), "{r:?}");
    let r = p.client.put_class(precious, &view(&dq)).unwrap();
    assert!(r.iter().all(|x| x.wanted == 2 && x.stored == 2), "{r:?}");
    // Batched per peer: 2 puts over 3 members are at most 6 calls.
    assert!(p.client.stats().peer_calls <= 6, "{:?}", p.client.stats());

    // Everything reads back exact, and every member owns a share.
    let all: Vec<BlockKey> = plain.iter().chain(&prot).copied().collect();
    let got = p.client.get(&all).unwrap();
    for (k, g) in all.iter().zip(&got) {
        assert_eq!(g.as_deref(), Some(&payload(k.0)[..]), "key {}", k.0);
    }
    // Prefix lookup across the pool: one exists call per member involved.
    let calls = p.client.stats().peer_calls;
    assert_eq!(p.client.longest_prefix(&all).unwrap(), all.len());
    assert!(p.client.stats().peer_calls - calls <= 3);
    let mut gap = all.clone();
    gap.insert(123, BlockKey(999_999));
    assert_eq!(p.client.longest_prefix(&gap).unwrap(), 123);
    let victim = "n1";
    let owned_by_victim: Vec<bool> = plain
        .iter()
        .map(|k| p.client.owners_of(*k, 0)[0] == victim)
        .collect();
    let lost = owned_by_victim.iter().filter(|x| **x).count();
    assert!((50..150).contains(&lost), "n1 owns {lost} of 300");

    // kill -9 one member.
    let killed_at = Instant::now();
    p.members[1].kill9();

    // Before the lease expires the client still sees it: its blocks are misses or the other
    // owner's hits, never errors or wrong bytes.
    let check = |got: &[Option<Vec<u8>>], after: bool| {
        for (i, (k, g)) in all.iter().zip(got).enumerate() {
            match g {
                Some(b) => assert_eq!(b, &payload(k.0), "wrong bytes for key {}", k.0),
                None => {
                    assert!(i < plain.len(), "protected key {} lost", k.0);
                    assert!(owned_by_victim[i], "key {} not on the victim missed", k.0);
                }
            }
            if after && i < plain.len() && owned_by_victim[i] {
                assert!(g.is_none());
            }
        }
    };
    let got = p.client.get(&all).unwrap();
    check(&got, true);
    let first_lost = owned_by_victim.iter().position(|x| *x).unwrap();
    assert_eq!(p.client.longest_prefix(&all).unwrap(), first_lost);
    assert_eq!(p.client.longest_prefix(&prot).unwrap(), prot.len());

    // The others see it gone within the TTL (plus etcd's 500 ms expiry check).
    let gone = p
        .client
        .membership()
        .wait_for(Duration::from_secs(TTL_S + 2), |v| {
            v.member(victim).is_none()
        });
    let detect = killed_at.elapsed();
    assert!(
        gone.is_some(),
        "{victim} still in the view after {detect:?}"
    );
    assert!(
        detect <= Duration::from_millis(TTL_S * 1000 + 1000),
        "detected after {detect:?}"
    );
    assert_eq!(gone.unwrap().members.len(), 2);
    eprintln!("kill -9 detected after {detect:?} (lease TTL {TTL_S} s)");

    // A fresh watcher agrees, and the client no longer routes to the dead member.
    let fresh = PoolClient::connect(p.cfg.clone(), PoolOptions::default()).unwrap();
    assert_eq!(fresh.membership().view().members.len(), 2);
    let failures = p.client.stats().peer_failures;
    let got = p.client.get(&all).unwrap();
    check(&got, true);
    assert_eq!(
        p.client.stats().peer_failures,
        failures,
        "the client still called the dead member"
    );
    assert!(
        p.client
            .owners_of(prot[0], precious)
            .iter()
            .all(|o| o != victim)
    );

    // New protected puts land on the two survivors.
    let more: Vec<BlockKey> = (5001..=5050u128).map(BlockKey).collect();
    let dm = data(&more);
    let r = p.client.put_class(precious, &view(&dm)).unwrap();
    assert!(r.iter().all(|x| x.wanted == 2 && x.stored == 2), "{r:?}");
    let got = p.client.get(&more).unwrap();
    assert!(
        more.iter()
            .zip(&got)
            .all(|(k, g)| g.as_deref() == Some(&payload(k.0)[..]))
    );

    // Re-replication: about two thirds of the protected blocks had the victim as an owner. The
    // surviving daemons copy each to its new owner (daemon-side re-replication), and this
    // client's repairer races them for the protected blocks it stored (each counts what it
    // wrote, and a put that finds the block already there is not a copy); between them every
    // such block gets its second copy, so a second loss loses none of them either. Waits until
    // a check finds nothing missing.
    let all_prot: Vec<(BlockKey, u8)> = prot.iter().chain(&more).map(|k| (*k, precious)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = p.client.repair_totals().unwrap();
        let daemons: u64 = p
            .client
            .member_stats()
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .filter_map(|j| j["daemon"]["pool"]["rereplication"]["copied"].as_u64())
            .sum();
        if t.copied + daemons >= 150 {
            assert_eq!(t.lost, 0, "{t:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no re-replication: {t:?}, daemons {daemons}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A pure check once the factor holds (nothing to copy, nothing lost).
        let r = p.client.repair(&all_prot).unwrap();
        assert_eq!(r.lost, 0, "{r:?}");
        if r.copied == 0 && r.failed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "factor not restored: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    p.members[0].kill9();
    let gone = p
        .client
        .membership()
        .wait_for(Duration::from_secs(TTL_S + 2), |v| v.members.len() == 1);
    assert!(gone.is_some(), "n0 still in the view");
    let got = p.client.get(&prot).unwrap();
    for (k, g) in prot.iter().zip(&got) {
        assert_eq!(
            g.as_deref(),
            Some(&payload(k.0)[..]),
            "protected key {} lost after two failures with a repair between",
            k.0
        );
    }
    assert!(
        t0.elapsed() < Duration::from_secs(40),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_stopped_member_leaves_at_once_and_a_missing_etcd_is_a_clear_error() {
    if !etcd_or_skip("a_stopped_member_leaves_at_once_and_a_missing_etcd_is_a_clear_error") {
        return;
    }
    let mut p = pool(2);
    let t = Instant::now();
    let st = p.members[0].terminate();
    assert!(st.success(), "mcosd exited {st:?} on SIGTERM");
    let gone = p
        .client
        .membership()
        .wait_for(Duration::from_secs(2), |v| v.member("n0").is_none());
    assert!(
        gone.is_some(),
        "a clean stop did not revoke the lease at once"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // etcd not there: the daemon refuses to start, naming etcd, instead of serving alone.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut m = member(dir.path(), "lonely", &format!("127.0.0.1:{port}"), "x");
    let mut c = m.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "mcosd kept running without etcd");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(log.contains("etcd") && log.contains("unreachable"), "{log}");
    drop(p.client);
}

#[test]
fn a_joining_member_takes_its_share_lazily_from_the_previous_owners() {
    if !etcd_or_skip("a_joining_member_takes_its_share_lazily_from_the_previous_owners") {
        return;
    }
    let mut p = pool(2);
    let keys: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let d: Vec<(BlockKey, Vec<u8>)> = keys.iter().map(|k| (*k, payload(k.0))).collect();
    let r = p.client.put(&view(&d)).unwrap();
    assert!(r.iter().all(|x| x.stored == 1));
    // A third member joins the running pool.
    let dir = tempfile::tempdir().unwrap();
    let etcd = p.cfg.etcd[0].clone();
    let cluster = p.cfg.cluster.clone();
    p.members.push(member(dir.path(), "n2", &etcd, &cluster));
    let v = p
        .client
        .membership()
        .wait_for(Duration::from_secs(20), |v| v.members.len() == 3);
    assert!(v.is_some(), "n2 did not join");
    let moved: Vec<bool> = keys
        .iter()
        .map(|k| p.client.owners_of(*k, 0)[0] == "n2")
        .collect();
    let n_moved = moved.iter().filter(|x| **x).count();
    assert!((60..140).contains(&n_moved), "n2 owns {n_moved} of 300");
    // Every block is still found (the new owner misses, the previous owner serves) and the
    // new owner's share is handed over.
    let got = p.client.get(&keys).unwrap();
    for (k, g) in keys.iter().zip(&got) {
        assert_eq!(g.as_deref(), Some(&payload(k.0)[..]), "key {}", k.0);
    }
    let s = p.client.stats().clone();
    assert_eq!(s.fallback_hits, n_moved as u64, "{s:?}");
    assert_eq!(s.handed_over, n_moved as u64, "{s:?}");
    // Now each block is one call away at its new owner.
    let got = p.client.get(&keys).unwrap();
    assert!(got.iter().all(Option::is_some));
    assert_eq!(
        p.client.stats().fallback_hits,
        s.fallback_hits,
        "no fallback any more"
    );
}

#[test]
fn a_hung_member_costs_at_most_the_peer_timeout_and_never_wrong_bytes() {
    if !etcd_or_skip("a_hung_member_costs_at_most_the_peer_timeout_and_never_wrong_bytes") {
        return;
    }
    let mut p = pool_with(
        2,
        PoolOptions {
            peer_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    );
    // A member that completes TCP handshakes (the kernel's backlog) and never answers: a hung
    // daemon, or one behind a link that drops replies. It registers like any daemon.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let record = mcos_cluster::MemberRecord {
        node_id: "hung".into(),
        addr: hung.local_addr().unwrap().to_string(),
        protocol_version: 1,
        incarnation: 7,
        block_bytes: BLOCK as u32,
        tiers: Vec::new(),
        started_unix_ms: 0,
    };
    let m = mcos_cluster::Membership::join(p.cfg.clone(), record, Duration::from_secs(10)).unwrap();
    assert!(
        p.client
            .membership()
            .wait_for(Duration::from_secs(5), |v| v.members.len() == 3)
            .is_some()
    );
    let keys: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let on_hung: Vec<bool> = keys
        .iter()
        .map(|k| p.client.owners_of(*k, 0)[0] == "hung")
        .collect();
    assert!(on_hung.iter().any(|x| *x));
    let d: Vec<(BlockKey, Vec<u8>)> = keys.iter().map(|k| (*k, payload(k.0))).collect();
    let t = Instant::now();
    let r = p.client.put(&view(&d)).unwrap();
    for (x, h) in r.iter().zip(&on_hung) {
        assert_eq!(x.stored, u8::from(!*h), "{x:?}");
    }
    let got = p.client.get(&keys).unwrap();
    for ((k, g), h) in keys.iter().zip(&got).zip(&on_hung) {
        match g {
            Some(b) => assert_eq!(b, &payload(k.0), "wrong bytes for key {}", k.0),
            None => assert!(*h, "key {} not on the hung member missed", k.0),
        }
    }
    assert!(got.iter().filter(|g| g.is_some()).count() == on_hung.iter().filter(|h| !**h).count());
    // One timeout (then the member is skipped for a moment), not minutes.
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert!(p.client.stats().peer_failures >= 1);
    m.leave();
    assert!(
        p.client
            .membership()
            .wait_for(Duration::from_secs(2), |v| v.members.len() == 2)
            .is_some()
    );
    drop(hung);
}

/// A network namespace with a veth link to the host, deleted on drop (which deletes the link).
struct Netns {
    name: String,
    host_if: String,
    host_ip: std::net::Ipv4Addr,
    ns_ip: std::net::Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let (a, b) = ((tag / 250) % 250, tag % 250);
        let n = Netns {
            name: format!("mcos-part-{tag}"),
            host_if: format!("vh{tag}"),
            host_ip: std::net::Ipv4Addr::new(10, 213, a as u8, (b as u8 & 0x3f) * 4 + 1),
            ns_ip: std::net::Ipv4Addr::new(10, 213, a as u8, (b as u8 & 0x3f) * 4 + 2),
        };
        let ns_if = format!("vn{tag}");
        ip(&["netns", "add", &n.name])?;
        let (h, nsip) = (format!("{}/30", n.host_ip), format!("{}/30", n.ns_ip));
        ip(&[
            "link", "add", &n.host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &n.name])?;
        ip(&["addr", "add", &h, "dev", &n.host_if])?;
        ip(&["link", "set", &n.host_if, "up"])?;
        ip(&[
            "netns", "exec", &n.name, "ip", "addr", "add", &nsip, "dev", &ns_if,
        ])?;
        ip(&["netns", "exec", &n.name, "ip", "link", "set", &ns_if, "up"])?;
        ip(&["netns", "exec", &n.name, "ip", "link", "set", "lo", "up"])?;
        Ok(n)
    }

    /// Cuts the link: packets stop both ways, no reset is sent.
    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    /// Restores the link cut by `cut`.
    fn restore(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

#[test]
fn a_partitioned_member_leaves_is_fenced_and_rejoins_and_no_side_sees_wrong_bytes() {
    let name = "a_partitioned_member_leaves_is_fenced_and_rejoins_and_no_side_sees_wrong_bytes";
    if !etcd_or_skip(name) {
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            assert!(
                !ci,
                "{name}: cannot create a network namespace under CI=true: {e}"
            );
            eprintln!("skipping {name}: cannot create a network namespace (needs root): {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = LocalEtcd::start_on(&dir.path().join("etcd"), &[ns.host_ip]).unwrap();
    let port = etcd.client_addr.rsplit(':').next().unwrap().to_string();
    let cluster = format!("part{}", std::process::id());
    let mut members = vec![
        member(dir.path(), "n0", &etcd.client_addr, &cluster),
        member(dir.path(), "n1", &etcd.client_addr, &cluster),
    ];
    let ns_ip = ns.ns_ip.to_string();
    members.push(Daemon::start_in(
        dir.path(),
        "iso",
        &format!("{}:{port}", ns.host_ip),
        &cluster,
        NODE,
        "",
        &ns_ip,
        Some(&ns.name),
    ));
    let mut cfg = MembershipConfig::new(vec![etcd.client_addr.clone()], cluster);
    cfg.lease_ttl_s = TTL_S;
    let mut client = PoolClient::connect(
        cfg,
        PoolOptions {
            peer_timeout: Duration::from_millis(500),
            ..PoolOptions::default()
        },
    )
    .unwrap();
    assert!(
        client
            .membership()
            .wait_for(Duration::from_secs(20), |v| v.members.len() == 3)
            .is_some(),
        "the namespaced member did not join"
    );
    let plain: Vec<BlockKey> = (1..=300u128).map(BlockKey).collect();
    let prot: Vec<BlockKey> = (1001..=1300u128).map(BlockKey).collect();
    let (dp, dq): (Vec<_>, Vec<_>) = (
        plain.iter().map(|k| (*k, payload(k.0))).collect(),
        prot.iter().map(|k| (*k, payload(k.0))).collect(),
    );
    assert!(
        client
            .put(&view(&dp))
            .unwrap()
            .iter()
            .all(|x| x.stored == 1)
    );
    let precious = PriorityClass::PRECIOUS.0;
    let r = client.put_class(precious, &view(&dq)).unwrap();
    assert!(r.iter().all(|x| x.stored == 2));
    let on_iso: Vec<bool> = plain
        .iter()
        .map(|k| client.owners_of(*k, 0)[0] == "iso")
        .collect();
    assert!(
        on_iso.iter().any(|x| *x),
        "the isolated member owns nothing"
    );

    ns.cut();
    let cut_at = Instant::now();
    let all: Vec<BlockKey> = plain.iter().chain(&prot).copied().collect();
    let check = |got: &[Option<Vec<u8>>]| {
        for (i, (k, g)) in all.iter().zip(got).enumerate() {
            match g {
                Some(b) => assert_eq!(b, &payload(k.0), "wrong bytes for key {}", k.0),
                None => assert!(
                    i < plain.len() && on_iso[i],
                    "key {} missed though a reachable owner holds it",
                    k.0
                ),
            }
        }
    };
    // Before the lease expires: the isolated member costs a timeout, never wrong bytes.
    let t = Instant::now();
    check(&client.get(&all).unwrap());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let gone = client
        .membership()
        .wait_for(Duration::from_secs(TTL_S + 2), |v| {
            v.member("iso").is_none()
        });
    assert!(gone.is_some(), "the isolated member is still in the view");
    assert!(cut_at.elapsed() <= Duration::from_millis(TTL_S * 1000 + 1500));
    let failures = client.stats().peer_failures;
    check(&client.get(&all).unwrap());
    assert_eq!(client.stats().peer_failures, failures, "still routed to it");

    // The isolated side, read over its Unix socket (shared filesystem): once its lease is
    // gone it is fenced, so it serves none of the pooled keys it held (misses, never errors or
    // wrong bytes), and says so in its log and its stats.
    let mut local =
        mcos_client::Client::connect(dir.path().join("iso.sock").to_str().unwrap(), "default", "")
            .unwrap();
    let mine: Vec<BlockKey> = plain
        .iter()
        .zip(&on_iso)
        .filter(|(_, o)| **o)
        .map(|(k, _)| *k)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = local.get(&mine).unwrap();
        for (k, g) in mine.iter().zip(&got) {
            if let Some(b) = g {
                assert_eq!(b, &payload(k.0), "isolated side, key {}", k.0);
            }
        }
        if got.iter().all(Option::is_none) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the isolated member still serves pooled keys {:?} after its lease is gone",
            cut_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cut_at.elapsed() >= Duration::from_millis(TTL_S * 1000 - 2000),
        "fenced {:?} after the cut, before its lease could have lapsed",
        cut_at.elapsed()
    );
    eprintln!(
        "fenced {:?} after the cut ({} pooled keys it held)",
        cut_at.elapsed(),
        mine.len()
    );
    assert!(local.exists(&mine).unwrap().iter().all(Option::is_none));
    let stats: serde_json::Value = serde_json::from_str(&local.stats_json().unwrap()).unwrap();
    assert_eq!(stats["daemon"]["cluster"]["fenced"], true, "{stats}");
    // The fence (a whole TTL without a renewal) can come before the keepalive call times out
    // and the session is logged as ended: wait for both lines.
    wait_for_log(&members[2], &["etcd session ended", "fenced:"]);

    // The link comes back: the member registers again, is unfenced, and the pool reads its
    // keys from it again, byte-exact.
    ns.restore();
    assert!(
        client
            .membership()
            .wait_for(Duration::from_secs(20), |v| v.member("iso").is_some())
            .is_some(),
        "the isolated member did not register again"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while local.get(&mine).unwrap().iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "still fenced after registering again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("serving again {:?} after the cut", cut_at.elapsed());
    let got = client.get(&all).unwrap();
    for (k, g) in all.iter().zip(&got) {
        assert_eq!(
            g.as_deref(),
            Some(&payload(k.0)[..]),
            "after the rejoin, key {}",
            k.0
        );
    }
    wait_for_log(&members[2], &["unfenced"]);
    members[2].kill9();
    drop(members);
}
