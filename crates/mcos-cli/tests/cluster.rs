//! `mcos cluster up` and `mcos cluster status` end to end: a real etcd and real daemons on
//! loopback, stopped at the end (SIGINT to `cluster up`; its children die with it even if the
//! test kills it). Skips with a printed reason without etcd, unless CI=true.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cluster_up_then_status_lists_every_member() {
    if !mcos_cluster::etcd_installed() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("etcd is not installed and CI=true (apt-get install etcd-server)");
        }
        eprintln!("skipping: etcd is not installed (apt-get install etcd-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut up = Guard(
        Command::new(env!("CARGO_BIN_EXE_mcos"))
            .args(["cluster", "up", "--nodes", "2", "--dram-blocks", "256"])
            .args(["--cluster", "clitest", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = up.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut etcd = None;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("cluster up did not come up: {lines:?}"));
        if let Some(rest) = line
            .split(" on ")
            .nth(1)
            .filter(|_| line.starts_with("etcd "))
        {
            etcd = rest.split(' ').next().map(str::to_string);
        }
        let done = line.starts_with("pool `clitest` up");
        lines.push(line);
        if done {
            break;
        }
    }
    let etcd = etcd.unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(["cluster", "status", "--etcd", &etcd, "--cluster", "clitest"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ms = v["members"].as_array().unwrap();
    assert_eq!(ms.len(), 2, "{v}");
    for m in ms {
        assert_eq!(m["reachable"], true, "{m}");
        assert_eq!(m["capacity_blocks"], 256);
        assert_eq!(m["registered"], true, "{m}");
        assert_eq!(m["members_seen"], 2, "{m}");
    }
    // A wrong etcd address is a clear error, not a hang.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(["cluster", "status", "--etcd", &dead.to_string()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("etcd") && err.contains("unreachable"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // SIGINT stops everything cleanly.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        if let Some(s) = up.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "cluster up ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "{st:?}");
    for i in 0..2 {
        let log = std::fs::read_to_string(dir.path().join(format!("n{i}.log"))).unwrap();
        assert!(log.contains("stopped cleanly"), "n{i}: {log}");
    }
}

#[test]
fn bench_cluster_reports_every_field_and_meets_its_targets() {
    let trace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces/mooncake-conversation/conversation_trace.jsonl");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for (ok, what) in [
        (mcos_cluster::etcd_installed(), "etcd is not installed"),
        (
            trace.exists(),
            "the Mooncake trace is not in ../shared/traces",
        ),
    ] {
        if !ok {
            assert!(!ci, "{what} and CI=true");
            eprintln!("skipping: {what}");
            return;
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args([
            "bench",
            "cluster",
            "--requests",
            "600",
            "--check",
            "--format",
            "json",
        ])
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for f in [
        "pooled_hit_ratio",
        "isolated_hit_ratio",
        "single_node_hit_ratio",
        "detect_seconds",
        "replicated_lost",
        "unreplicated_lost",
        "wrong_bytes",
        "peer_bytes",
        "remote_get_p99_us",
    ] {
        assert!(v[f].is_number(), "{f} missing: {v}");
    }
    assert_eq!(v["replicated_lost"], 0);
    assert_eq!(v["wrong_bytes"], 0);
    assert!(v["unreplicated_lost"].as_u64().unwrap() > 0, "{v}");
    assert!(v["peer_bytes"].as_u64().unwrap() > 0);
}
