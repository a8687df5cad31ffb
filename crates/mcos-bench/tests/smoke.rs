//! The benchmark at tiny sizes: every report field is there and sane, the fast-path thread
//! allocated nothing, made no system call (where the kernel lets us count them) and never
//! blocked, and the round trip is the slower of the two.
#![allow(clippy::unwrap_used)]

use mcos_bench::alloc::CountingAlloc;
use mcos_bench::{BenchConfig, run};
use mcos_workload::{GeneratorConfig, Mixture, write_trace};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn a_tiny_run_reports_a_clean_fast_path_and_a_slower_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let mut g = GeneratorConfig::preset(Mixture::from_name("chat").unwrap());
    g.requests = 300;
    write_trace(&g, &trace).unwrap();

    let mut cfg = BenchConfig::tiny();
    cfg.trace = Some(trace);
    let mut phases = Vec::new();
    let report = run(&cfg, |p| phases.push(p.to_owned())).unwrap();
    assert_eq!(phases.len(), 5, "{phases:?}");

    let v = serde_json::to_value(&report).unwrap();
    for field in [
        "decisions_per_s",
        "p50_ns",
        "p99_ns",
        "p999_ns",
        "allocations",
        "syscalls",
        "voluntary_ctx_switches",
    ] {
        assert!(v["fastpath"].get(field).is_some(), "fastpath.{field}");
    }
    for mode in ["roundtrip", "roundtrip_syscall"] {
        for field in ["p50_ns", "p99_ns", "decisions_per_s"] {
            assert!(v[mode][field].as_f64().unwrap() > 0.0, "{mode}.{field}");
        }
    }
    assert!(v["churn"]["p99_ns"].as_u64().unwrap() > 0);
    assert!(v["churn"]["commit_to_effect_p99_ns"].as_u64().unwrap() > 0);
    assert!(v["directory_bytes_per_block"].as_f64().unwrap() <= 16.0);

    let f = &report.fastpath;
    assert!(f.decisions_per_s > 0.0 && f.decisions > 0);
    assert!(f.p50_ns <= f.p99_ns && f.p99_ns <= f.p999_ns);
    assert_eq!(f.allocations, Some(0), "fast-path thread allocated");
    if let Some(why) = &f.syscall_error {
        eprintln!("system calls not counted here: {why}");
    } else {
        assert_eq!(f.syscalls, Some(0), "fast-path thread made system calls");
    }
    assert_eq!(f.voluntary_ctx_switches, 0, "fast-path thread blocked");

    // The round trip blocks on every decision, so it switches context and is slower.
    assert!(report.roundtrip.caller.voluntary_ctx_switches > 0);
    assert!(report.roundtrip.p50_ns > f.p50_ns);
    if f.syscall_error.is_none() {
        let per = report.roundtrip_syscall.policy_thread.syscalls.unwrap() as f64
            / report.roundtrip_syscall.decisions as f64;
        assert!(
            per >= 1.0,
            "the syscall variant makes one per decision: {per}"
        );
    }
    assert!(report.churn.installs > 0);

    // Runs: synthetic and trace, 1 and 2 shards; the synthetic stream hits, misses, evicts
    // and prefetches.
    assert_eq!(report.runs.len(), 4);
    for r in &report.runs {
        assert!(r.decisions_per_s > 0.0, "{r:?}");
        assert_eq!(r.threads.allocations, Some(0), "{}/{}", r.stream, r.shards);
        assert_eq!(r.events.rejected_directory, 0);
    }
    let synthetic = &report.runs[0];
    assert_eq!(synthetic.stream, "synthetic");
    let e = &synthetic.events;
    assert!(e.hits[0] > 0 && e.hits[1] > 0 && e.misses > 0, "{e:?}");
    assert!(
        e.evictions > 0 && e.demotions > 0 && e.prefetch_issued > 0,
        "{e:?}"
    );
    assert!(synthetic.distinct_blocks > cfg.capacity);
}
