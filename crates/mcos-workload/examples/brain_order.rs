//! The brain's replacement order on one trace: `mcos` (list order) against `mcos-hw` (the
//! brain on `replacement = "auto"`), per capacity: hit ratios, the order `mcos-hw` ended on, its
//! order changes (with the sampled access of each), the aged shadow's last measured shortfall,
//! and the brain's own time per million accesses in each (the median of `REPEATS` runs of
//! each, alternating list and auto so that both see the same machine state).
//!
//! ```text
//! cargo run --release -p mcos-workload --example brain_order -- TRACE.jsonl 0.01,0.05,0.10,0.25 [REPEATS]
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
    let repeats: usize = args.next().map_or(Ok(1), |r| r.parse())?;
    let reqs: Vec<Request> = TraceReader::open(&path)?.collect::<Result<_, _>>()?;
    let accesses: usize = reqs.iter().map(|r| r.hash_ids.len()).sum();
    let per_m = |p: &McosPolicy| {
        p.brain().stats().busy.as_secs_f64() * 1e3 / (accesses.max(1) as f64 / 1e6)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut uniq = std::collections::HashSet::new();
    reqs.iter().flat_map(|r| r.hash_ids.iter()).for_each(|&i| {
        uniq.insert(i);
    });
    println!(
        "| capacity | blocks | mcos (list) | mcos-hw (auto) | auto - list | order at end | order changes | aged shortfall (last) | brain ms per M accesses: list / auto |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in fracs {
        let cap = ((uniq.len() as f64 * f).round() as usize).max(1);
        let (mut busy_list, mut busy_auto) = (Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..repeats.max(1) {
            let mut list = McosPolicy::with_replacement(cap, ReplacementChoice::List);
            let mut auto = McosPolicy::with_replacement(cap, ReplacementChoice::Auto);
            let hl = run(&mut list, &reqs);
            let ha = run(&mut auto, &reqs);
            busy_list.push(per_m(&list));
            busy_auto.push(per_m(&auto));
            last = Some((hl, ha, auto));
        }
        let Some((hl, ha, auto)) = last else {
            continue;
        };
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
            "| {:.0} % | {cap} | {hl:.4} | {ha:.4} | {:+.4} | {:?} | {} {} | {shortfall} | {:.0} / {:.0} |",
            f * 100.0,
            ha - hl,
            b.replacement(),
            b.stats().order_switches,
            if log.is_empty() {
                String::new()
            } else {
                format!("({})", log.join(", "))
            },
            median(busy_list),
            median(busy_auto),
        );
    }
    Ok(())
}
