//! The built-in generator: deterministic for a seed, prefix-consistent ids, sorted timestamps, and
//! output the trace reader accepts.

use std::collections::HashMap;

use mcos_workload::{
    Capacity, GeneratorConfig, Mixture, Request, Simulator, TraceReader, generate, write_trace,
};

fn check_prefix_property(requests: &[Request]) {
    // Every id has exactly one parent (the id before it, or none for a first block).
    let mut parent_of: HashMap<u64, Option<u64>> = HashMap::new();
    for r in requests {
        for (i, &id) in r.hash_ids.iter().enumerate() {
            let parent = i.checked_sub(1).map(|p| r.hash_ids[p]);
            let seen = *parent_of.entry(id).or_insert(parent);
            assert_eq!(seen, parent, "id {id} appears with two different parents");
        }
    }
}

#[test]
fn default_trace_is_deterministic_sorted_and_prefix_consistent() {
    let cfg = GeneratorConfig::default();
    let a = generate(&cfg).expect("generates");
    let b = generate(&cfg).expect("generates");
    assert_eq!(a.len(), 6_000);
    assert_eq!(a, b, "same seed, same trace");
    let other = generate(&GeneratorConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    })
    .expect("generates");
    assert_ne!(a, other, "another seed, another trace");

    assert!(a.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    for r in &a {
        let blocks = r.input_length.div_ceil(cfg.block_tokens) as usize;
        assert_eq!(r.hash_ids.len(), blocks);
        assert!(r.input_length <= cfg.max_context_tokens && r.output_length >= 1);
    }
    check_prefix_property(&a);
}

#[test]
fn every_preset_has_reuse_and_min_bounds_lru() {
    for name in Mixture::NAMES {
        let cfg = GeneratorConfig {
            requests: 1_500,
            ..GeneratorConfig::preset(Mixture::from_name(name).expect("preset"))
        };
        let reqs = generate(&cfg).expect("generates");
        assert_eq!(reqs.len(), 1_500, "{name}");
        check_prefix_property(&reqs);
        let sim = Simulator::from_requests(reqs, cfg.block_tokens).expect("simulator");
        let ceiling = sim.stats().infinite_cache_hit_ratio();
        assert!(
            ceiling > 0.2 && ceiling < 0.99,
            "{name}: reuse ceiling {ceiling}"
        );
        let lru = sim.run("lru", Capacity::Fraction(0.05)).expect("lru");
        let min = sim.run("min", Capacity::Fraction(0.05)).expect("min");
        assert!(min.block_hits >= lru.block_hits, "{name}");
        assert!(min.block_hit_ratio <= ceiling + 1e-12, "{name}");
        eprintln!(
            "{name}: {} accesses, {} unique, ceiling {ceiling:.3}, lru@5% {:.3}, min@5% {:.3}",
            sim.stats().block_accesses,
            sim.stats().unique_blocks,
            lru.block_hit_ratio,
            min.block_hit_ratio
        );
    }
}

#[test]
fn written_trace_reads_back_identically() {
    let cfg = GeneratorConfig {
        requests: 500,
        ..GeneratorConfig::default()
    };
    let path = std::env::temp_dir().join(format!("mcos-workload-gen-{}.jsonl", std::process::id()));
    let written = write_trace(&cfg, &path).expect("writes");
    let back: Result<Vec<Request>, _> = TraceReader::open(&path).expect("opens").collect();
    std::fs::remove_file(&path).ok();
    let back = back.expect("every line parses");
    assert_eq!(written, 500);
    assert_eq!(back, generate(&cfg).expect("generates"));
}
