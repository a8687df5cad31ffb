//! `mcos serve`, `mcos stats --connect` and `mcos bench serve` end to end, with real processes
//! on a temporary socket and loopback ports.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mcos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcos"))
}

/// Kills the daemon if the test fails before stopping it.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_then_stats_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("127.0.0.1:{port}");
    let mut d = Guard(
        mcos()
            .args([
                "serve",
                "--socket",
                sock.to_str().unwrap(),
                "--listen",
                &tcp,
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "mcos serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for addr in [sock.to_str().unwrap(), tcp.as_str()] {
        let o = mcos()
            .args(["stats", "--connect", addr, "--format", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["node"]["tiers"][0]["capacity_blocks"], 16384,
            "the default node"
        );
        assert!(v["daemon"]["requests"]["hello"].as_u64().unwrap() >= 1);
        let t = mcos().args(["stats", "--connect", addr]).output().unwrap();
        let text = String::from_utf8_lossy(&t.stdout);
        assert!(
            text.contains("dram") && text.contains("clients connected"),
            "{text}"
        );
    }
    // A wrong tenant is a clear error, not a hang.
    let o = mcos()
        .args(["stats", "--connect", &tcp, "--tenant", "nobody"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown tenant `nobody`"));
    // SIGTERM: clean exit 0, socket removed.
    // SAFETY: signals our own child.
    unsafe { libc::kill(d.0.id() as i32, libc::SIGTERM) };
    let st = d.0.wait().unwrap();
    assert!(st.success(), "{st}");
    assert!(!sock.exists());
    // Nothing to connect to: a clear error naming the address.
    let o = mcos()
        .args(["stats", "--connect", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the daemon running?"));
}

/// The benchmark runs every system on a tiny point and reports the fields, with every
/// get verified. redis-server must be present in CI (.ci/run installs it); elsewhere its rows
/// are skipped with a printed reason.
#[test]
fn bench_serve_reports_every_system_with_no_wrong_bytes() {
    let have_redis = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    if !have_redis {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have redis-server (.ci/run installs it)"
        );
        eprintln!("redis-server not found: the redis rows are skipped");
    }
    let systems = if have_redis {
        "mcos-local,mcos-tcp,redis-unix,redis-tcp,node,memcpy"
    } else {
        "mcos-local,mcos-tcp,node,memcpy"
    };
    let dir = tempfile::tempdir().unwrap();
    let o = mcos()
        .args([
            "bench",
            "serve",
            "--quick",
            "--format",
            "json",
            "--systems",
            systems,
        ])
        .args([
            "--clients",
            "1,2",
            "--block-kib",
            "16",
            "--working-sets",
            "fits,spills",
        ])
        .args([
            "--seconds",
            "0.2",
            "--dram-mib",
            "8",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    let n_sys = systems.split(',').count();
    // Every system at 1 and 2 clients (memcpy at 1), both working sets.
    assert_eq!(rows.len(), 2 * (2 * (n_sys - 1) + 1), "{rows:?}");
    for r in rows {
        for f in [
            "system",
            "block_bytes",
            "clients",
            "working_set",
            "gb_per_s",
            "batches_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "verified_gets",
            "wrong_bytes",
        ] {
            assert!(!r[f].is_null(), "{f} missing in {r}");
        }
        assert_eq!(r["wrong_bytes"], 0, "{r}");
        assert!(r["batches_per_s"].as_f64().unwrap() > 0.0, "{r}");
        if r["system"] != "memcpy" {
            assert!(r["verified_gets"].as_u64().unwrap() > 0, "{r}");
        }
    }
    // The disk tier and sockets the benchmark created are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().ends_with(".tier")
                && !n.to_string_lossy().ends_with(".sock")),
        "{left:?}"
    );
}
