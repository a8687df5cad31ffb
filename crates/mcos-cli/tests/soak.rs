//! `mcos bench soak`, bounded: mixed load on the real daemon with every get verified; RSS
//! growth after warm-up at most 5 %, no wrong byte, no durable block lost, no pin leaked.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_bounded_soak_keeps_memory_bytes_durability_and_pins() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(["bench", "soak", "--seconds", "30", "--clients", "3"])
        .args(["--format", "json", "--check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["wrong_bytes"], 0, "{v}");
    assert_eq!(v["durable_lost"], 0, "{v}");
    assert_eq!(v["pins_held_end"], 0, "{v}");
    assert_eq!(v["client_errors"], 0, "{v}");
    assert!(v["rss_growth_pct"].as_f64().unwrap() <= 5.0, "{v}");
    assert!(v["verified_gets"].as_u64().unwrap() > 1000, "{v}");
    assert!(v["durable_acknowledged"].as_u64().unwrap() > 0, "{v}");
}
