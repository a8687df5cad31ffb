//! `mcos mrc` end to end on a small built-in trace: the JSON's stable fields, CSV, the table,
//! and clear errors on bad input.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn mcos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn curves_as_json_csv_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let t = trace.to_str().unwrap();
    assert!(
        mcos(&["generate", "--out", t, "--requests", "500"])
            .status
            .success()
    );

    let o = mcos(&["mrc", "--trace", t, "--points", "6", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for field in [
        "trace",
        "requests",
        "block_accesses",
        "unique_blocks",
        "sample_rate",
        "curves",
    ] {
        assert!(!v[field].is_null(), "missing {field}");
    }
    let curves = v["curves"].as_array().unwrap();
    let names: Vec<&str> = curves
        .iter()
        .map(|c| c["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["lru", "mcos", "s3fifo", "sieve", "arc", "wtinylfu", "min"]
    );
    assert_eq!(curves[0]["method"]["kind"], "stack_distance");
    let min = &curves[6]["points"];
    for c in curves {
        let pts = c["points"].as_array().unwrap();
        assert!(!pts.is_empty() && pts.len() <= 6);
        let mut last = 0.0;
        for (i, p) in pts.iter().enumerate() {
            let (h, m) = (
                p["hit_ratio"].as_f64().unwrap(),
                p["miss_ratio"].as_f64().unwrap(),
            );
            assert!((h + m - 1.0).abs() < 1e-9);
            let cap = p["capacity_blocks"].as_u64().unwrap();
            assert!(cap as f64 > last, "capacities ascend");
            last = cap as f64;
            assert!(
                h <= min[i]["hit_ratio"].as_f64().unwrap() + 0.01,
                "{} beat MIN",
                c["policy"]
            );
        }
    }
    // LRU's curve never falls as the cache grows (inclusion).
    let lru: Vec<f64> = curves[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hit_ratio"].as_f64().unwrap())
        .collect();
    assert!(lru.windows(2).all(|w| w[0] <= w[1]), "{lru:?}");

    let o = mcos(&[
        "mrc",
        "--trace",
        t,
        "--points",
        "3",
        "--policy",
        "lru,sieve",
        "--format",
        "csv",
    ]);
    let csv = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "policy,method,capacity_blocks,capacity_fraction,hit_ratio,miss_ratio"
    );
    assert!(
        lines.len() >= 3 && lines[1].starts_with("lru,stack-distance,"),
        "{csv}"
    );

    let o = mcos(&["mrc", "--trace", t, "--points", "4", "--policy", "lru,min"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("block hit ratio per capacity")
            && table.contains("methods: lru stack-distance"),
        "{table}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let t = trace.to_str().unwrap();
    assert!(
        mcos(&["generate", "--out", t, "--requests", "50"])
            .status
            .success()
    );
    for (args, why) in [
        (vec!["mrc", "--trace", "/no/such.jsonl"], "does not exist"),
        (
            vec!["mrc", "--trace", t, "--policy", "nope"],
            "unknown policy `nope`",
        ),
        (
            vec!["mrc", "--trace", t, "--sample-rate", "1.5"],
            "--sample-rate 1.5",
        ),
        (
            vec!["mrc", "--trace", t, "--from", "50%", "--to", "10%"],
            "is above --to",
        ),
        (vec!["mrc", "--trace", t, "--points", "0"], "0"),
    ] {
        let o = mcos(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
