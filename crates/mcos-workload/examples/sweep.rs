//! Capacity sweep of every baseline policy, with the wall time of each replay.
//!
//! ```text
//! cargo run --release -p mcos-workload --example sweep -- [TRACE.jsonl | gen:MIXTURE] [FRACTIONS]
//! ```
//! Default trace: the staged Mooncake conversation trace; `gen:mixed` (or chat, agent, rag)
//! replays the built-in generator's default trace instead. Default fractions: 0.01,0.05,0.10,0.25.

use std::path::PathBuf;
use std::time::Instant;

use mcos_workload::{
    Capacity, GeneratorConfig, Mixture, POLICY_NAMES, SimError, Simulator, generate,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let source = args.next().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/traces/mooncake-conversation/conversation_trace.jsonl")
            .display()
            .to_string()
    });
    let fractions: Vec<f64> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![0.01, 0.05, 0.10, 0.25],
    };
    let t0 = Instant::now();
    let sim = match source.strip_prefix("gen:") {
        Some(mixture) => {
            let cfg = GeneratorConfig::preset(Mixture::from_name(mixture)?);
            Simulator::from_requests(generate(&cfg)?, cfg.block_tokens)?
        }
        None => Simulator::open(&source, 512)?,
    };
    let s = sim.stats();
    println!(
        "{source}: {} requests, {} block accesses, {} unique blocks, infinite-cache hit ratio {:.4} (loaded in {:.0} ms)",
        s.requests,
        s.block_accesses,
        s.unique_blocks,
        s.infinite_cache_hit_ratio(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "| policy | capacity | blocks | block hit ratio | token hit ratio | evictions | rejected | ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in POLICY_NAMES {
        for &f in &fractions {
            let t = Instant::now();
            let r = sim
                .run(name, Capacity::Fraction(f))
                .map_err(|e: SimError| e.to_string())?;
            println!(
                "| {} | {:.0}% | {} | {:.4} | {:.4} | {} | {} | {:.0} |",
                r.policy,
                f * 100.0,
                r.capacity_blocks,
                r.block_hit_ratio,
                r.token_hit_ratio,
                r.evictions,
                r.admissions_rejected,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
