//! Served replay of one trace at one capacity and prefill rate: every policy without intents,
//! and `mcos` with queue intents and with queue + session intents.
//!
//! ```text
//! cargo run --release -p mcos-workload --example serve_diag -- TRACE FRACTION TOKENS_PER_S [BLOCK_TOKENS]
//! ```

use mcos_workload::policy::by_name;
use mcos_workload::{Request, ServeConfig, TraceReader, serve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: serve_diag TRACE FRACTION TOKENS_PER_S")?;
    let frac: f64 = args.next().unwrap_or_else(|| "0.01".into()).parse()?;
    let tps: f64 = args.next().unwrap_or_else(|| "50000".into()).parse()?;
    let bt: u32 = args.next().unwrap_or_else(|| "512".into()).parse()?;
    let reqs: Vec<Request> = TraceReader::open(&path)?.collect::<Result<_, _>>()?;
    let uniq: std::collections::HashSet<u64> = reqs
        .iter()
        .flat_map(|r| r.hash_ids.iter().copied())
        .collect();
    let cap = ((uniq.len() as f64 * frac).round() as usize).max(1);
    for (name, q, s) in [
        ("lru", false, false),
        ("wtinylfu", false, false),
        ("mcos", false, false),
        ("mcos", true, false),
        ("mcos", true, true),
    ] {
        let mut p = by_name(name, cap, None)?;
        let cfg = ServeConfig {
            prefill_tokens_per_s: tps,
            block_tokens: bt,
            queue_intents: q,
            session_intents: s,
        };
        let (c, st) = serve(&reqs, p.as_mut(), &cfg);
        println!(
            "{name:<9} q={q:<5} s={s:<5} hit {:.4}  util {:.3} meanQ {:.2} maxQ {} wait {:.2}s prefill {:.0}s",
            c.block_hits as f64 / c.block_accesses as f64,
            st.utilisation,
            st.mean_queue_len,
            st.max_queue_len,
            st.mean_wait_s,
            st.prefill_s
        );
    }
    Ok(())
}
