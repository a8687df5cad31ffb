//! `mcos bench crash`: the daemon SIGKILLed 20 times at random moments under a writing client;
//! every key found byte-exact or missing, every key acknowledged durable found.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn twenty_sigkills_lose_no_durable_block_and_return_no_wrong_byte() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args([
            "bench",
            "crash",
            "--iterations",
            "20",
            "--format",
            "json",
            "--check",
        ])
        .args(["--seed", "7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["iterations"], 20);
    assert_eq!(v["wrong_bytes"], 0, "{v}");
    assert_eq!(v["durable_lost"], 0, "{v}");
    let written = v["keys_written"].as_u64().unwrap();
    let durable = v["durable_acknowledged"].as_u64().unwrap();
    let found = v["found_after_restart"].as_u64().unwrap();
    assert!(durable > 0 && written > durable, "{v}");
    assert!(found >= durable && found <= written, "{v}");
    assert!(v["rebuild_seconds_p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        start.elapsed() < Duration::from_secs(90),
        "took {:?}",
        start.elapsed()
    );
}
