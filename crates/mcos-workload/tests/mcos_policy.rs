//! `mcos` (the real fast path under the real brain) against the classic policies in the same
//! run: on the built-in generator's traces it must not lose to the best of them by more than
//! the margin, and at 1 % capacity it must beat them all; on the Mooncake
//! conversation trace (read where it is staged; skipped with a reason outside CI) the same at
//! 1 % and 25 %. These are behaviour checks with margins, not timing checks.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use mcos_workload::{Capacity, GeneratorConfig, Mixture, Simulator, generate};

const CLASSIC: [&str; 5] = ["lru", "s3fifo", "sieve", "arc", "wtinylfu"];
const MARGIN: f64 = 0.005;

fn check(sim: &Simulator, fraction: f64, must_lead: bool) {
    let cap = Capacity::Fraction(fraction);
    let mcos = sim.run("mcos", cap).unwrap().block_hit_ratio;
    let (best, best_ratio) = CLASSIC
        .iter()
        .map(|p| (*p, sim.run(p, cap).unwrap().block_hit_ratio))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert!(
        mcos >= best_ratio - MARGIN,
        "at {fraction}: mcos {mcos:.4} trails {best} {best_ratio:.4} by more than {MARGIN}"
    );
    if must_lead {
        assert!(
            mcos > best_ratio,
            "at {fraction}: mcos {mcos:.4} does not lead {best} {best_ratio:.4}"
        );
    }
}

#[test]
fn mcos_matches_or_beats_the_classics_on_the_built_in_workloads() {
    for mixture in [Mixture::mixed(), Mixture::chat()] {
        let mut cfg = GeneratorConfig::preset(mixture);
        cfg.requests = 3000;
        let sim = Simulator::from_requests(generate(&cfg).unwrap(), cfg.block_tokens).unwrap();
        check(&sim, 0.01, true);
        check(&sim, 0.10, false);
    }
}

#[test]
fn mcos_on_the_mooncake_conversation_trace() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces/mooncake-conversation/conversation_trace.jsonl");
    if !path.is_file() {
        let reason = format!("Mooncake trace not found at {}", path.display());
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{reason}; CI must run with shared/ beside the repository"
        );
        eprintln!("skipping: {reason}");
        return;
    }
    let sim = Simulator::open(&path, 512).unwrap();
    check(&sim, 0.01, true);
    check(&sim, 0.25, false);
}

#[test]
fn queue_intents_never_cost_hits_at_a_busy_load() {
    let mut cfg = GeneratorConfig::preset(Mixture::mixed());
    cfg.requests = 3000;
    let sim = Simulator::from_requests(generate(&cfg).unwrap(), cfg.block_tokens).unwrap();
    let tps = sim.prefill_rate_for_load(0.8).unwrap();
    for fraction in [0.01, 0.05] {
        let run = |queue: bool, sessions: bool| {
            let serve = mcos_workload::ServeConfig {
                prefill_tokens_per_s: tps,
                block_tokens: cfg.block_tokens,
                queue_intents: queue,
                session_intents: sessions,
            };
            sim.run_served("mcos", Capacity::Fraction(fraction), &serve)
                .unwrap()
        };
        let (plain, stats) = run(false, false);
        assert!(
            stats.utilisation > 0.1 && stats.utilisation < 1.0,
            "busy, not overloaded: {stats:?}"
        );
        let (queued, _) = run(true, false);
        assert!(
            queued.block_hits >= plain.block_hits,
            "at {fraction}: queue intents cost hits ({} < {})",
            queued.block_hits,
            plain.block_hits
        );
        let (all, _) = run(true, true);
        assert!(all.block_hits >= plain.block_hits, "at {fraction}");
        // Served in trace order: without intents the hits are the plain replay's.
        let unserved = sim.run("mcos", Capacity::Fraction(fraction)).unwrap();
        assert_eq!(unserved.block_hits, plain.block_hits);
    }
}
