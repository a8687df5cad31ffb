//! The brain's replacement order on one trace: `mcos` (list order) against `mcos-hw` (the
//! brain on `replacement = "auto"`), per capacity: hit ratios, the order `mcos-hw` ended on, its
//! order changes (with the sampled access of each), the aged shadow's last measured shortfall,
//! and the brain's CPU time in each.
//!
//! ```text
//! cargo run --release -p mcos-workload --example brain_order -- TRACE.jsonl 0.01,0.05,0.10,0.25
//! ```
//!
//! The hit ratios are those of `mcos replay --mode simulate --policy mcos,mcos-hw` (the same
//! policies, driven the same way: every access, then `request_done` per request).

use mcos_brain::ReplacementChoice;
use mcos_workload::policy::{CachePolicy, McosPolicy};
use mcos_workload::{Request, TraceReader};

fn run(p: &mut McosPolicy, reqs: &[Request]) -> f64 {
    let mut n = 0u64;
    let mut h = 0u64;
    for r in reqs {
        for &id in &r.hash_ids {
            if p.access(id, n) {
                h += 1;
            }
            n += 1;
        }
        p.request_done(&r.hash_ids);
    }
    h as f64 / n.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: brain_order TRACE FRACTION[,FRACTION...]")?;
    let fracs: Vec<f64> = args
        .next()
        .unwrap_or_else(|| "0.01,0.05,0.10,0.25".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let reqs: Vec<Request> = TraceReader::open(&path)?.collect::<Result<_, _>>()?;
    let mut uniq = std::collections::HashSet::new();
    reqs.iter().flat_map(|r| r.hash_ids.iter()).for_each(|&i| {
        uniq.insert(i);
    });
    println!(
        "| capacity | blocks | mcos (list) | mcos-hw (auto) | auto - list | order at end | order changes | aged shortfall (last) | brain busy s: list / auto |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in fracs {
        let cap = ((uniq.len() as f64 * f).round() as usize).max(1);
        let mut list = McosPolicy::with_replacement(cap, ReplacementChoice::List);
        let mut auto = McosPolicy::with_replacement(cap, ReplacementChoice::Auto);
        let hl = run(&mut list, &reqs);
        let ha = run(&mut auto, &reqs);
        let b = auto.brain();
        let log: Vec<String> = b
            .stats()
            .order_log
            .iter()
            .map(|(at, o)| format!("{o}@{at}"))
            .collect();
        let shortfall = b
            .aged_shortfall()
            .map_or("-".to_string(), |(g, w)| format!("{g:+.4} (w {w:.0})"));
        println!(
            "| {:.0} % | {cap} | {hl:.4} | {ha:.4} | {:+.4} | {:?} | {} {} | {shortfall} | {:.2} / {:.2} |",
            f * 100.0,
            ha - hl,
            b.replacement(),
            b.stats().order_switches,
            if log.is_empty() {
                String::new()
            } else {
                format!("({})", log.join(", "))
            },
            list.brain().stats().busy.as_secs_f64(),
            b.stats().busy.as_secs_f64(),
        );
    }
    Ok(())
}
