//! Simulated capacity sweeps with progress output.

use crate::report::{self, ResultRow};
use anyhow::Result;
use mcos_workload::{Capacity, Simulator};

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
