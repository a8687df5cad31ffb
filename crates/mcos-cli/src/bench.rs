//! `mcos bench <target>`: the benchmarks behind the command line, one file per target.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchTarget {
    /// The fast path against the software round trip: decisions per second per core, latency
    /// per decision, allocations, system calls and context switches on the fast-path threads,
    /// the same decisions through a policy thread behind a channel (with and without one system
    /// call each), policy churn every 10 ms, 1 and 2 shards, directory bytes per block.
    Fastpath(crate::bench_fastpath::FastpathArgs),
}

pub fn run(target: BenchTarget) -> Result<()> {
    match target {
        BenchTarget::Fastpath(a) => crate::bench_fastpath::run(a),
    }
}
