//! Simulated capacity sweeps with progress output.

use crate::args::IntentSet;
use crate::report::{self, ResultRow, ServingRow};
use anyhow::Result;
use mcos_workload::{Capacity, ServeConfig, Simulator};

/// Runs every policy at every capacity (policies outermost), one report row each.
pub fn simulate(
    sim: &Simulator,
    policies: &[&str],
    capacities: &[Capacity],
    block_bytes: u32,
    quiet: bool,
) -> Result<Vec<ResultRow>> {
    let bar = report::progress_bar(
        (policies.len() * capacities.len()) as u64,
        "simulating",
        quiet,
    );
    let mut rows = Vec::with_capacity(policies.len() * capacities.len());
    for p in policies {
        for &c in capacities {
            bar.set_message(p.to_string());
            let r = sim.run(p, c)?;
            rows.push(ResultRow::simulated(&r, block_bytes));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Every policy at every capacity through the prefill-engine model. Policies that take no
/// advice run once; `mcos` runs once per intent set (`mcos`, `mcos+queue`, ...).
#[allow(clippy::too_many_arguments)]
pub fn serve(
    sim: &Simulator,
    policies: &[&str],
    capacities: &[Capacity],
    intents: &[IntentSet],
    prefill_tokens_per_s: f64,
    block_tokens: u32,
    block_bytes: u32,
    quiet: bool,
) -> Result<Vec<ResultRow>> {
    let runs: Vec<(&str, IntentSet)> = policies
        .iter()
        .flat_map(|&p| {
            let sets: Vec<IntentSet> = if p == "mcos" {
                intents.to_vec()
            } else {
                vec![IntentSet {
                    queue: false,
                    sessions: false,
                    stage: false,
                }]
            };
            sets.into_iter().map(move |i| (p, i))
        })
        .collect();
    let bar = report::progress_bar((runs.len() * capacities.len()) as u64, "serving", quiet);
    let mut rows = Vec::new();
    for (p, set) in runs {
        for &c in capacities {
            bar.set_message(format!("{p}{}", set.suffix()));
            let cfg = ServeConfig {
                prefill_tokens_per_s,
                block_tokens,
                queue_intents: set.queue,
                session_intents: set.sessions,
            };
            let (r, s) = sim.run_served(p, c, &cfg)?;
            let mut row = ResultRow::simulated(&r, block_bytes);
            row.policy = format!("{p}{}", set.suffix());
            row.serving = Some(ServingRow::new(prefill_tokens_per_s, set.suffix(), &s));
            rows.push(row);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}
