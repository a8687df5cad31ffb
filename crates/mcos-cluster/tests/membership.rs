//! Membership against a real etcd (started on loopback, stopped at the end): register, watch,
//! the duplicate-id refusal, the same-incarnation re-register, re-registration after our record
//! is deleted, leave revoking at once, and losing etcd. Skips with a printed reason when etcd
//! is not installed, except under `CI=true`.

use mcos_cluster::{ClusterError, LocalEtcd, MemberRecord, Membership, MembershipConfig};
use std::time::{Duration, Instant};

fn etcd_or_skip(test: &str) -> bool {
    if mcos_cluster::etcd_installed() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: etcd is not installed and CI=true (apt-get install etcd-server)");
    }
    eprintln!("skipping {test}: etcd is not installed (apt-get install etcd-server)");
    false
}

fn record(id: &str, incarnation: u64) -> MemberRecord {
    MemberRecord {
        node_id: id.into(),
        addr: format!("127.0.0.1:{}", 4000 + incarnation),
        protocol_version: 1,
        incarnation,
        block_bytes: 4096,
        tiers: Vec::new(),
        started_unix_ms: 0,
    }
}

fn ids(m: &Membership) -> Vec<String> {
    m.view().members.iter().map(|r| r.node_id.clone()).collect()
}

/// A loopback port nothing listens on (once the probe listener is dropped).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn members_register_watch_refuse_duplicates_reregister_and_leave() {
    if !etcd_or_skip("members_register_watch_refuse_duplicates_reregister_and_leave") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = LocalEtcd::start(&dir.path().join("etcd")).unwrap();
    // A first endpoint nothing listens on: the session moves on to the next.
    let dead = free_port();
    let mut cfg = MembershipConfig::new(
        vec![
            format!("127.0.0.1:{dead}"),
            format!("http://{}/", etcd.client_addr),
        ],
        "t",
    );
    cfg.lease_ttl_s = 2;

    let watcher = Membership::watch(cfg.clone(), WAIT).unwrap();
    assert!(watcher.view().connected && watcher.view().revision > 0);
    assert!(watcher.view().members.is_empty());
    assert!(!watcher.registered());

    let a = Membership::join(cfg.clone(), record("a", 1), WAIT).unwrap();
    assert!(a.registered());
    let b = Membership::join(cfg.clone(), record("b", 2), WAIT).unwrap();
    let v = watcher
        .wait_for(WAIT, |v| v.members.len() == 2)
        .expect("the watcher sees both members");
    assert_eq!(v.members[0], record("a", 1));
    assert_eq!(v.seeds.len(), 2);
    assert!(a.wait_for(WAIT, |v| v.members.len() == 2).is_some());

    // Another incarnation may not take a live id.
    let t = Instant::now();
    match Membership::join(cfg.clone(), record("a", 9), Duration::from_secs(3)) {
        Err(ClusterError::Invalid(m)) => assert!(m.contains("already registered"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second incarnation took a live id"),
    }
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(ids(&watcher), ["a", "b"]);

    // The same incarnation may (a lease lost to a partition): it takes the record over under
    // its own lease. Leaving revokes that lease, the record goes, and the first holder, seeing
    // its record deleted, registers again.
    let a2 = Membership::join(cfg.clone(), record("a", 1), WAIT).unwrap();
    let gen_before = watcher.view().generation;
    a2.leave();
    assert!(
        a.wait_for(WAIT, |_| a.registered() && a.last_error().is_none())
            .is_some()
    );
    let v = watcher
        .wait_for(WAIT, |v| {
            v.generation > gen_before && v.members.iter().any(|m| m.node_id == "a")
        })
        .expect("the first holder registered again");
    assert_eq!(v.members.len(), 2);

    // Leave revokes the lease: gone at once, well within the TTL.
    let t = Instant::now();
    b.leave();
    assert!(watcher.wait_for(WAIT, |v| v.members.len() == 1).is_some());
    assert!(t.elapsed() < Duration::from_secs(cfg.lease_ttl_s));
    assert_eq!(ids(&watcher), ["a"]);

    // Losing etcd: the views say so and keep the last members; errors are reported.
    etcd.stop();
    assert!(watcher.wait_for(WAIT, |v| !v.connected).is_some());
    assert!(a.wait_for(WAIT, |v| !v.connected).is_some());
    assert!(!a.registered());
    assert!(a.last_error().is_some());
    assert_eq!(ids(&watcher), ["a"]);
    drop(a);
    drop(watcher);
}

#[test]
fn unreachable_etcd_fails_the_start_with_a_reason() {
    let port = free_port();
    let cfg = MembershipConfig::new(vec![format!("127.0.0.1:{port}")], "t");
    match Membership::watch(cfg, Duration::from_millis(700)) {
        Err(ClusterError::EtcdUnreachable { message, .. }) => {
            assert!(message.contains("connect"), "{message}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("watching with no etcd succeeded"),
    }
    let cfg = MembershipConfig::new(vec!["https://127.0.0.1:1".into()], "t");
    match Membership::watch(cfg, Duration::from_millis(500)) {
        Err(ClusterError::EtcdUnreachable { message, .. }) => {
            assert!(message.contains("TLS"), "{message}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("https succeeded"),
    }
}
