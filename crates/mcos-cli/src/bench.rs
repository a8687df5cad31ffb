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
    /// GPU tiers and movers: pinned peak, scattered 16/64 KiB blocks host<->HBM (one copy per
    /// block vs batched copy engines vs the gather kernel), decision-to-first-byte latency,
    /// disk->HBM (GPUDirect Storage or bounce), and the decode loop (all in HBM, on demand,
    /// MCOS prefetch). Every moved block is verified. Needs `--features cuda` and a GPU.
    Gpu(crate::bench_gpu::GpuBenchArgs),
    /// The memory service: K client processes (90 % get / 10 % put, batches of 32, every get
    /// verified) against mcosd's local zero-bounce path and TCP, redis-server over its Unix
    /// socket and TCP, the in-process Node and one core's memcpy, in one run.
    Serve(crate::bench_serve::ServeBenchArgs),
    /// Crash safety: SIGKILL the daemon at random moments while a client writes, restart it
    /// over its persistent tier, and check every key ever written (found byte-exact or
    /// missing, never wrong; every key acknowledged durable found).
    Crash(crate::bench_crash::CrashArgs),
    /// Soak: K clients, mixed operations with every get verified, for N seconds; the daemon's
    /// RSS and open descriptors sampled; durable blocks read back and pins counted at the end.
    Soak(crate::bench_soak::SoakArgs),
    /// The rack-scale pool: the Mooncake trace with real bytes through three pooled daemons
    /// (etcd membership, rendezvous placement), three isolated ones and one with all the
    /// capacity, round-robin routing; then kill -9 of one member: detection time, blocks lost
    /// per replication class, wrong bytes.
    Cluster(crate::bench_cluster::ClusterBenchArgs),
    /// One client process of `mcos bench serve` (started by it).
    #[command(hide = true)]
    ServeClient(crate::bench_serve::ServeClientArgs),
    /// The fast path as hardware: the software shard (CLOCK), the cycle model and the RTL under
    /// Verilator on one stream (mismatches counted), II and latency, yosys and nextpnr-ice40
    /// figures, decisions per second in hardware and in software on the same events.
    Hw(crate::bench_hw::HwArgs),
    /// Miss-ratio curves against one replay per point: both timed in one run, every point of
    /// the curves checked against its exact replay.
    Mrc(crate::mrc::MrcBenchArgs),
}

pub fn run(target: BenchTarget) -> Result<()> {
    match target {
        BenchTarget::Fastpath(a) => crate::bench_fastpath::run(a),
        BenchTarget::Gpu(a) => crate::bench_gpu::run(a),
        BenchTarget::Serve(a) => crate::bench_serve::run(a),
        BenchTarget::Crash(a) => crate::bench_crash::run(a),
        BenchTarget::Soak(a) => crate::bench_soak::run(a),
        BenchTarget::ServeClient(a) => crate::bench_serve::run_client(a),
        BenchTarget::Hw(a) => crate::bench_hw::run(a),
        BenchTarget::Mrc(a) => crate::mrc::bench(a),
        BenchTarget::Cluster(a) => crate::bench_cluster::run(a),
    }
}
