//! The `mcos` binary end to end: outputs, stable JSON fields, and clear errors on bad input.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mcos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mooncake() -> Option<PathBuf> {
    shared_trace("mooncake-conversation/conversation_trace.jsonl")
}

fn cloudphysics() -> Option<PathBuf> {
    shared_trace("libcachesim-cloudphysics/cloudPhysicsIO.oracleGeneral.bin")
}

/// `../shared/traces/<rel>` beside this clone; CI must have it, elsewhere a test without it
/// is skipped with the reason printed.
fn shared_trace(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must have ../shared/traces: {}",
        p.display()
    );
    eprintln!(
        "skipped: {} not found (../shared is not beside this clone)",
        p.display()
    );
    None
}

/// A valid trace line: one request of two 512-token blocks.
const ONE_REQUEST: &str =
    "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, 2]}\n";

/// `t.jsonl` in `dir`, holding [`ONE_REQUEST`].
fn one_request_trace(dir: &Path) -> PathBuf {
    write(dir, "t.jsonl", ONE_REQUEST)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The acceptance check of the simulator: `mcos replay --mode simulate --policy lru,min` on the
/// Mooncake conversation trace reproduces SOURCE.md's LRU and Belady columns within 0.001.
#[test]
fn replay_reproduces_the_mooncake_reference_table() {
    let Some(trace) = mooncake() else { return };
    let o = mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--mode",
        "simulate",
        "--policy",
        "lru,min",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["requests"], 12031);
    assert_eq!(v["block_accesses"], 288500);
    assert_eq!(v["unique_blocks"], 182790);
    let reference = [
        ("lru", [0.0523, 0.1954, 0.2784, 0.3535]),
        ("min", [0.2464, 0.3664, 0.3664, 0.3664]),
    ];
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    for (policy, ratios) in reference {
        let rows: Vec<_> = results.iter().filter(|r| r["policy"] == policy).collect();
        for (row, want) in rows.iter().zip(ratios) {
            let got = row["block_hit_ratio"].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 0.001,
                "{policy} at {}: {got} vs {want}",
                row["capacity_fraction"]
            );
        }
    }
    // The stable field names scripts depend on.
    for field in [
        "policy",
        "capacity_fraction",
        "capacity_blocks",
        "block_hit_ratio",
        "token_hit_ratio",
        "hits_per_tier",
        "bytes_moved",
        "evictions",
        "admissions_rejected",
    ] {
        assert!(results[0].get(field).is_some(), "missing field {field}");
    }
    assert_eq!(results[0]["capacity_blocks"], 1828);
}

#[test]
fn real_mode_moves_real_bytes_through_dram_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let o = mcos(&[
        "generate",
        "--out",
        trace.to_str().unwrap(),
        "--requests",
        "300",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = dir.path().join("data");
    let o = mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--mode",
        "real",
        "--capacity",
        "0.05",
        "--disk-capacity",
        "0.5",
        "--block-bytes",
        "4096",
        "--dir",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["results"][0];
    assert_eq!(r["mode"], "real");
    assert!(r["hits_per_tier"]["disk"].as_u64().unwrap() > 0, "{r}");
    assert!(r["bytes_moved"]["dram->disk"].as_u64().unwrap() > 0, "{r}");
    let demotions = &r["links"]["dram->disk"];
    assert_eq!(demotions["bytes"], r["bytes_moved"]["dram->disk"], "{r}");
    assert!(
        demotions["measured_bytes_per_s"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(
        demotions["configured_bytes_per_s"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert!(
        !data.join("mcos-disk-tier.bin").exists(),
        "the disk tier file is removed on close"
    );
}

#[test]
fn run_works_with_no_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let o = mcos(&[
        "run",
        "--requests",
        "300",
        "--dir",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "built-in workload",
        "lru",
        "s3fifo",
        "sieve",
        "arc",
        "min",
        "real",
        "verified byte for byte",
    ] {
        assert!(out.contains(want), "`{want}` missing from:\n{out}");
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let good = ONE_REQUEST;
    let malformed = write(
        dir.path(),
        "bad.jsonl",
        &format!("{good}{good}{{\"timestamp\": 5, \"hash_ids\": [1,\n"),
    );
    let trace = write(dir.path(), "ok.jsonl", good);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["replay", "--trace", malformed.to_str().unwrap()], ":3"),
        (
            vec![
                "replay",
                "--trace",
                trace.to_str().unwrap(),
                "--policy",
                "bogus",
            ],
            "unknown policy `bogus`",
        ),
        (
            vec![
                "replay",
                "--trace",
                trace.to_str().unwrap(),
                "--capacity",
                "0",
            ],
            "capacity 0",
        ),
        (
            vec!["replay", "--trace", "/no/such/trace.jsonl"],
            "/no/such/trace.jsonl",
        ),
        (
            vec![
                "replay",
                "--trace",
                trace.to_str().unwrap(),
                "--mode",
                "real",
                "--policy",
                "sieve",
            ],
            "simulate",
        ),
        (vec!["run", "--requests", "0"], "requests"),
        (
            vec!["replay", "--trace", trace.to_str().unwrap(), "--bogus-flag"],
            "--bogus-flag",
        ),
    ];
    for (args, needle) in cases {
        let o = mcos(&args);
        assert!(!o.status.success(), "{args:?} should fail");
        let e = stderr(&o);
        assert!(e.contains(needle), "{args:?}: `{needle}` not in: {e}");
        assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
    }
}

#[test]
fn help_describes_every_command() {
    let o = mcos(&["--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["run", "replay", "generate"] {
        assert!(out.contains(cmd), "{out}");
    }
    let o = mcos(&["replay", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--trace",
        "--mode",
        "--policy",
        "--capacity",
        "--format",
        "--block-bytes",
    ] {
        assert!(out.contains(opt), "{out}");
    }
}

#[test]
fn bench_gpu_without_a_gpu_exits_nonzero_with_a_clear_message() {
    #[cfg(feature = "cuda")]
    if mcos_tiers::cuda::driver_present() {
        eprintln!("skipped: a CUDA driver is present (scripts/gpu-bench.sh runs the benchmark)");
        return;
    }
    let o = mcos(&["bench", "gpu", "--format", "json"]);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty(), "no report without a GPU");
    let e = stderr(&o);
    let want = if cfg!(feature = "cuda") {
        "no CUDA driver found (libcuda.so not loadable)"
    } else {
        "built without the cuda feature: rebuild with --features cuda"
    };
    assert!(e.contains(want), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    // Bad arguments are refused before anything else, on every build.
    let o = mcos(&["bench", "gpu", "--blocks", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--blocks"), "{}", stderr(&o));
    let o = mcos(&["bench", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("gpu"));
}

/// `mcos bench fastpath` at tiny sizes: the stable JSON fields, and a fast-path thread that
/// allocated nothing and never blocked (the binary installs the counting allocator).
#[test]
fn bench_fastpath_reports_stable_fields_and_a_clean_fast_path() {
    let o = mcos(&[
        "bench",
        "fastpath",
        "--shards",
        "1",
        "--capacity",
        "20000",
        "--decisions",
        "300000",
        "--hot-blocks",
        "1000",
        "--roundtrip-decisions",
        "300",
        "--churn-interval-ms",
        "2",
        "--churn-segment-ms",
        "10",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["fastpath"];
    for field in ["decisions_per_s", "p50_ns", "p99_ns", "p999_ns"] {
        assert!(f[field].as_f64().unwrap() > 0.0, "fastpath.{field}");
    }
    assert_eq!(f["allocations"], 0, "{f}");
    assert_eq!(f["voluntary_ctx_switches"], 0, "{f}");
    assert!(f.get("syscalls").is_some());
    for mode in ["roundtrip", "roundtrip_syscall"] {
        for field in ["p50_ns", "p99_ns", "decisions_per_s"] {
            assert!(v[mode][field].as_f64().unwrap() > 0.0, "{mode}.{field}");
        }
    }
    assert!(v["churn"]["p99_ns"].as_u64().is_some());
    assert!(v["churn"]["commit_to_effect_p99_ns"].as_u64().is_some());
    assert!(v["directory_bytes_per_block"].as_f64().unwrap() <= 16.0);

    let bad = mcos(&["bench", "fastpath", "--mix", "70,30"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("three shares"), "{}", stderr(&bad));
}

/// The brain's commands end to end on a small generated trace: `policy show`, `--shadow`,
/// `--tiers`, a served replay with intents, and a real node under the brain.
#[test]
fn brain_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let o = mcos(&[
        "generate",
        "--out",
        trace.to_str().unwrap(),
        "--requests",
        "400",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = trace.to_str().unwrap();

    let o = mcos(&["policy", "show"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("plain LRU order"),
        "{out}"
    );
    let o = mcos(&["policy", "show", "--trace", t, "--capacity", "0.02"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for want in ["knobs in force", "class 1 (queued)", "shadow hit ratios"] {
        assert!(out.contains(want), "`{want}` missing:\n{out}");
    }

    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--shadow",
        "hadm2",
        "--policy",
        "lru",
        "--capacity",
        "0.02",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["results"][0];
    let gain = r["would_gain"].as_i64().unwrap();
    let lose = r["would_lose"].as_i64().unwrap();
    let blocks = v["block_accesses"].as_f64().unwrap();
    let delta = r["shadow_hit_ratio"].as_f64().unwrap() - r["acting_hit_ratio"].as_f64().unwrap();
    assert!(((gain - lose) as f64 / blocks - delta).abs() < 1e-9, "{r}");
    let o = mcos(&["replay", "--trace", t, "--shadow", "nonsense"]);
    assert!(!o.status.success() && stderr(&o).contains("knob label"));

    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--tiers",
        "0.01,0.05,0.25",
        "--policy",
        "lru",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows[0]["policy"], "mcos");
    assert_eq!(rows[0]["scope"], "hierarchy");
    assert!(rows[0]["saved_s"].as_f64().unwrap() > 0.0);
    assert!(rows.iter().any(|r| r["scope"] == "tier0"));
    assert!(rows[0].get("serving").is_none() && v.get("serve_tokens_per_s").is_none());

    // Served over the tiers, with and without staging: every baseline in the same run.
    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--tiers",
        "0.01,0.05,0.25",
        "--load",
        "0.8",
        "--intents",
        "none,stage",
        "--policy",
        "lru",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["mcos", "mcos+stage", "lru", "lru+stage", "min", "lru"]
    );
    assert!(v["serve_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(rows[0]["serving"]["staged"], 0);
    assert!(
        rows[3]["serving"]["staged"].as_u64().unwrap() > 0,
        "{}",
        rows[3]
    );
    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--load",
        "0.8",
        "--intents",
        "stage",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("give --tiers"));

    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--load",
        "0.8",
        "--intents",
        "none,queue",
        "--policy",
        "mcos,lru",
        "--capacity",
        "0.02",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mcos", "mcos+queue", "lru"]);
    let util = v["results"][0]["serving"]["utilisation"].as_f64().unwrap();
    assert!(util > 0.0 && util < 1.0, "{util}");

    let o = mcos(&[
        "run",
        "--requests",
        "300",
        "--policy",
        "mcos",
        "--dir",
        dir.path().join("d").to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("real node (mcos)") && out.contains("brain (own thread)"),
        "{out}"
    );
}

/// Capacity syntax through the binary: percentages, fractions below 1, block counts and sizes
/// are accepted; ambiguous and out-of-range values are refused saying what to write, and a
/// negative number is read as a value (not as an unknown flag).
#[test]
fn capacity_syntax_is_unambiguous_and_refusals_say_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let o = mcos(&[
        "generate",
        "--out",
        trace.to_str().unwrap(),
        "--requests",
        "100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = trace.to_str().unwrap();
    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--policy",
        "lru",
        "--capacity",
        "5%,0.05,100,1MiB",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = v["results"].as_array().unwrap();
    assert_eq!(
        r[0]["capacity_blocks"], r[1]["capacity_blocks"],
        "5% is 0.05"
    );
    assert_eq!(r[2]["capacity_blocks"], 100);
    assert_eq!(r[3]["capacity_blocks"], 64, "1 MiB of 16 KiB blocks");
    let refused = [
        ("-1", "must be positive"),
        ("0", "holds nothing"),
        ("1.0", "write 100% or 1"),
        ("2.5", "write 250%"),
        ("NaN", "not a number"),
        ("1e30", "out of range"),
        ("150%", "outside"),
    ];
    for (cap, why) in refused {
        let o = mcos(&["replay", "--trace", t, "--capacity", cap]);
        assert_eq!(o.status.code(), Some(1), "{cap}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("--capacity") && e.contains(why), "{cap}: {e}");
        assert!(
            e.contains("5%") && e.contains("128MiB"),
            "{cap}: says what to write: {e}"
        );
        assert!(o.stdout.is_empty());
    }
}

/// Sizes are bounded before anything is allocated: the error names the limit and the memory.
#[test]
fn oversize_requests_are_refused_naming_the_limit_and_the_memory() {
    let dir = tempfile::tempdir().unwrap();
    let trace = one_request_trace(dir.path());
    let t = trace.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["replay", "--trace", t, "--capacity", "2000000000"],
            &["--capacity", "limit of 268435455 blocks", "GiB of memory"],
        ),
        (
            &[
                "replay",
                "--trace",
                t,
                "--mode",
                "real",
                "--capacity",
                "2000000000",
            ],
            &["--capacity", "limit of 268435455 blocks", "GiB of memory"],
        ),
        (
            &["run", "--requests", "100000000"],
            &["--requests 100000000", "limit of 10000000", "GiB"],
        ),
    ];
    for (args, wants) in cases {
        let o = mcos(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        for w in wants {
            assert!(e.contains(w), "{args:?}: `{w}` not in {e}");
        }
        assert!(!e.contains("memory allocation"), "{e}");
    }
}

/// Counts are checked before any work: `bench hw` with no frame at all or more than the RTL
/// simulator holds (0 was a panic), `mrc` with no thread (0 was taken silently).
#[test]
fn out_of_range_counts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let trace = one_request_trace(dir.path());
    let t = trace.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["bench", "hw", "--no-synth", "--frames", "0"], "--frames"),
        (
            &["bench", "hw", "--no-synth", "--tier1-frames", "1048577"],
            "--tier1-frames",
        ),
        (
            &["bench", "hw", "--no-synth", "--frames", "1048577"],
            "--frames",
        ),
        (
            &["bench", "hw", "--no-synth", "--frames", "4294967296"],
            "--frames",
        ),
        (&["mrc", "--trace", t, "--threads", "0"], "--threads"),
    ];
    for (args, flag) in cases {
        let o = mcos(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(flag) && !e.contains("panicked"), "{e}");
    }
}

/// Questionable traces get warnings with counts; a trace with nothing to replay is an error;
/// flags that do not apply to the mode are refused before any work; errors are not repeated.
#[test]
fn questionable_input_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let odd = write(
        dir.path(),
        "odd.jsonl",
        "{\"timestamp\": 10, \"input_length\": 1000, \"output_length\": 1, \"hash_ids\": [1, 2]}\n\
         {\"timestamp\": 5, \"input_length\": 1000, \"output_length\": 1, \"hash_ids\": [1, 2]}\n\
         {\"timestamp\": 6, \"input_length\": 9000, \"output_length\": 1, \"hash_ids\": [3]}\n\
         {\"timestamp\": 7, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}\n",
    );
    let o = mcos(&[
        "replay",
        "--trace",
        odd.to_str().unwrap(),
        "--policy",
        "lru",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning") && e.contains("1 of 4 requests have no blocks"),
        "{e}"
    );
    assert!(e.contains("1 of 4 requests have an input_length"), "{e}");
    assert!(
        e.contains("1 of 4 requests have a timestamp earlier"),
        "{e}"
    );

    let empty = write(dir.path(), "empty.jsonl", "");
    let no_blocks = write(
        dir.path(),
        "noblocks.jsonl",
        "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}\n",
    );
    for (trace, want) in [(&empty, "no requests"), (&no_blocks, "hash_ids is empty")] {
        let o = mcos(&["replay", "--trace", trace.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }

    let t = odd.to_str().unwrap();
    let data = dir.path().join("never-created");
    let d = data.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["replay", "--trace", t, "--disk-capacity", "5%"],
            "--disk-capacity applies to --mode real only",
        ),
        (
            &["replay", "--trace", t, "--dir", d],
            "--dir applies to --mode real only",
        ),
        (
            &[
                "replay", "--trace", t, "--mode", "real", "--tiers", "1%,5%", "--dir", d,
            ],
            "--tiers applies to --mode simulate only",
        ),
        (
            &["replay", "--trace", t, "--model", "llama-3-70b"],
            "--model applies with --tiers only",
        ),
        (
            &["replay", "--trace", t, "--load", "-1"],
            "--load -1 must be positive",
        ),
    ];
    for (args, want) in cases {
        let o = mcos(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: `{want}` not in {e}");
    }
    assert!(
        !data.exists(),
        "refused before any work: no directory created"
    );

    // An error whose cause is already in its text is printed once.
    let cfg = write(
        dir.path(),
        "n.toml",
        "block_bytes = 4096\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 8\n\
         [[tiers]]\nkind = \"disk\"\ncapacity_blocks = 8\npath = \"/proc/no-such-dir/x.tier\"\n",
    );
    let o = mcos(&[
        "replay",
        "--trace",
        t,
        "--mode",
        "real",
        "--policy",
        "lru",
        "--capacity",
        "1",
        "--config",
        cfg.to_str().unwrap(),
        "--dir",
        d,
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(
        e.matches("No such file or directory").count(),
        1,
        "repeated: {e}"
    );
}

/// A disk tier never destroys a file it did not create: a config whose tier path names a
/// file holding other data is refused, and the file is left byte for byte.
#[test]
fn a_tier_path_naming_someone_elses_file_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let trace = one_request_trace(dir.path());
    let precious = write(dir.path(), "notes.txt", "my precious notes\n");
    let cfg = write(
        dir.path(),
        "n.toml",
        &format!(
            "block_bytes = 4096\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 8\n\
             [[tiers]]\nkind = \"disk\"\ncapacity_blocks = 8\npath = \"{}\"\n",
            precious.display()
        ),
    );
    let o = mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--mode",
        "real",
        "--policy",
        "lru",
        "--capacity",
        "1",
        "--config",
        cfg.to_str().unwrap(),
        "--dir",
        dir.path().join("run").to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("not an MCOS tier file") && e.contains("notes.txt"),
        "{e}"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"my precious notes\n");
    assert!(
        !dir.path().join("run").exists(),
        "the run directory it created is removed"
    );
}

/// One owner per run directory: a second run on a locked `--dir` is refused naming the holder.
#[test]
fn a_locked_run_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let _held = mcos_tiers::lock::DirLock::acquire(dir.path()).unwrap();
    let o = mcos(&[
        "run",
        "--requests",
        "50",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&format!("in use by process {}", std::process::id())),
        "{e}"
    );
    assert!(e.contains("--dir"), "{e}");
}

/// Spawns `mcos` and waits (bounded) until `ready` holds, then sends `signal`, and returns
/// the exit code and stderr.
fn interrupt_when(args: &[&str], ready: impl Fn() -> bool, signal: &str) -> (Option<i32>, String) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcos"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "mcos ended before it could be interrupted"
        );
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mcos never became ready to interrupt");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("mcos did not stop within 60 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

/// SIGINT during the real replay stops it, says what was done, removes the tier file and the
/// run directory it created, and exits 130; SIGTERM during the simulated sweep exits 143.
#[test]
fn an_interrupted_run_says_what_was_done_and_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let tier = run.join("mcos-disk-tier.bin");
    let (code, e) = interrupt_when(
        &["run", "--requests", "4000", "--dir", run.to_str().unwrap()],
        || tier.exists(),
        "-INT",
    );
    assert_eq!(code, Some(130), "{e}");
    assert!(
        e.contains("interrupted by SIGINT during the real replay"),
        "{e}"
    );
    assert!(e.contains("requests replayed"), "{e}");
    assert!(!tier.exists(), "tier file removed: {e}");
    assert!(!run.exists(), "run directory removed: {e}");

    let run2 = dir.path().join("run2");
    let lock = run2.join("mcos.lock");
    let (code, e) = interrupt_when(
        &[
            "run",
            "--requests",
            "30000",
            "--dir",
            run2.to_str().unwrap(),
        ],
        || lock.exists(),
        "-TERM",
    );
    assert_eq!(code, Some(143), "{e}");
    assert!(e.contains("interrupted by SIGTERM"), "{e}");
    assert!(!run2.exists(), "run directory removed: {e}");
}

/// `--check` makes a missed target a non-zero exit, after the report.
#[test]
fn bench_check_exits_nonzero_exactly_when_a_target_is_missed() {
    let o = mcos(&[
        "bench",
        "fastpath",
        "--shards",
        "1",
        "--capacity",
        "20000",
        "--decisions",
        "100000",
        "--hot-blocks",
        "1000",
        "--roundtrip-decisions",
        "200",
        "--churn-interval-ms",
        "2",
        "--churn-segment-ms",
        "10",
        "--format",
        "json",
        "--check",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let targets = v["targets"].as_array().unwrap();
    let all_met = targets.iter().all(|t| t["met"] == true);
    assert_eq!(o.status.success(), all_met, "{}", stderr(&o));
    if !all_met {
        assert!(stderr(&o).contains("--check") && stderr(&o).contains("targets missed"));
    }
}

/// Object traces (libCacheSim's formats): a CSV with a column spec replays at byte capacities,
/// reports integer counts and both miss ratios in the JSON, and a malformed record names its
/// file and record number.
#[test]
fn object_traces_replay_at_byte_capacities() {
    let dir = tempfile::tempdir().unwrap();
    // time,key,size: a(100) b(100) a c(300) a b  -> with 400 bytes of LRU: a hits twice.
    let csv = "time,key,size\n1,a,100\n2,b,100\n3,a,100\n4,c,300\n5,a,100\n6,b,100\n";
    let trace = write(dir.path(), "t.csv", csv);
    let out = mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--csv-columns",
        "time=1,key=2,size=3",
        "--policy",
        "lru,fifo,s3fifo:small=0.5,threshold=1",
        "--capacity",
        "400B,1KiB",
        "--trace-stats",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trace_format"], "csv");
    assert_eq!(v["stats"]["requests"], 6);
    assert_eq!(v["stats"]["unique_bytes"], 500);
    assert_eq!(v["results"][0]["capacity_fraction"], 0.8);
    // Absolute capacities alone skip the statistics pass: same runs, no working-set figures.
    let args = [
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--csv-columns",
        "time=1,key=2,size=3",
        "--policy",
        "lru,fifo,s3fifo:small=0.5,threshold=1",
        "--capacity",
        "400B,1KiB",
    ];
    let lazy = mcos(&[&args[..], &["--format", "json"]].concat());
    assert!(lazy.status.success(), "{}", stderr(&lazy));
    let w: serde_json::Value = serde_json::from_slice(&lazy.stdout).unwrap();
    assert!(w["stats"].is_null(), "{w}");
    let strip = |v: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value)> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["misses"].clone(), r["miss_bytes"].clone()))
            .collect()
    };
    assert_eq!(strip(&w), strip(&v));
    assert!(w["results"][0]["capacity_fraction"].is_null());
    let table = mcos(&args);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(
        stderr(&table).contains("no statistics pass"),
        "{}",
        stderr(&table)
    );
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let lru = &rows[0];
    assert_eq!(lru["policy"], "lru");
    assert_eq!(lru["capacity_bytes"], 400);
    assert_eq!(
        (lru["misses"].as_u64(), lru["miss_bytes"].as_u64()),
        (Some(4), Some(600))
    );
    assert!((lru["byte_miss_ratio"].as_f64().unwrap() - 600.0 / 800.0).abs() < 1e-12);
    assert!((lru["object_hit_ratio"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-12);
    assert_eq!(rows[2]["policy"], "fifo");
    assert_eq!(rows[4]["policy"], "s3fifo:small=0.5,ghost=0.9,threshold=1");
    for r in rows.iter().filter(|r| r["capacity_bytes"] == 1024) {
        assert_eq!(r["misses"], 3, "1 KiB holds the working set: {r}");
    }

    let bad = write(dir.path(), "bad.csv", "1,a,100\n2,b,x\n");
    let out = mcos(&[
        "replay",
        "--trace",
        bad.to_str().unwrap(),
        "--csv-columns",
        "time=1,key=2,size=3",
    ]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("bad.csv: record 2") && e.contains("size `x`"),
        "{e}"
    );
    let out = mcos(&["replay", "--trace", trace.to_str().unwrap()]);
    assert!(stderr(&out).contains("--csv-columns"), "{}", stderr(&out));
    let out = mcos(&[
        "replay",
        "--trace",
        trace.to_str().unwrap(),
        "--csv-columns",
        "key=2",
        "--policy",
        "belady",
    ]);
    assert!(stderr(&out).contains("oracleGeneral"), "{}", stderr(&out));
}

/// The brain never ends below LRU on the CloudPhysics sample at 20 % and 30 % of its objects,
/// where switches to an admission filter used to land on a cache LRU had emptied of what the
/// filter's shadow kept (issue 16; the forks hold such switches back: BENCHMARKS.md).
#[test]
fn brain_is_not_below_lru_on_cloudphysics() {
    let Some(p) = cloudphysics() else { return };
    let out = mcos(&[
        "replay",
        "--trace",
        p.to_str().unwrap(),
        "--ignore-obj-size",
        "--policy",
        "mcos,lru",
        "--capacity",
        "20%,30%",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().expect("results");
    for cap in [9795u64, 14692] {
        let misses = |policy: &str| {
            results
                .iter()
                .find(|r| r["policy"] == policy && r["capacity_bytes"] == cap)
                .and_then(|r| r["misses"].as_u64())
                .unwrap_or_else(|| panic!("{policy} at {cap}: {v}"))
        };
        assert!(
            misses("mcos") <= misses("lru"),
            "mcos {} misses, LRU {} at {cap} objects",
            misses("mcos"),
            misses("lru")
        );
    }
}

/// `--compat libcachesim` on the CloudPhysics sample gives libCacheSim's LRU figure at 128 MiB
/// with a bare byte count (the full reproduction is `mcos-workload`'s libcachesim_reference).
#[test]
fn compat_libcachesim_reads_bare_bytes() {
    let Some(p) = cloudphysics() else { return };
    let out = mcos(&[
        "replay",
        "--trace",
        p.to_str().unwrap(),
        "--compat",
        "libcachesim",
        "--policy",
        "LRU",
        "--capacity",
        "134217728",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["misses"], 93374);
    assert_eq!(v["results"][0]["miss_bytes"], 4214303232u64);
}
