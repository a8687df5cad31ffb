//! Command-line arguments: every option with its default and a line of help.

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mcos_workload::Capacity;
use std::path::PathBuf;

/// Policies a simulated sweep runs when none are named.
pub const DEFAULT_POLICIES: [&str; 7] =
    ["mcos", "lru", "s3fifo", "sieve", "arc", "wtinylfu", "min"];
/// Policies the real node executes: the fast path's built-in table (`lru`) or the tables its
/// brain installs (`mcos`).
pub const REAL_POLICIES: [&str; 2] = ["mcos", "lru"];

/// MCOS: a memory control system for AI state across GPU, DRAM and disk tiers.
#[derive(Parser, Debug)]
#[command(name = "mcos", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the main job on the built-in workload (no external data): a policy sweep in
    /// simulation, then a replay through a real node with real bytes in DRAM and on disk.
    Run(RunArgs),
    /// Replay a Mooncake-format trace (JSONL with timestamp, input_length, output_length,
    /// hash_ids) in simulation or through a real node.
    Replay(ReplayArgs),
    /// Write the built-in workload as a Mooncake-format trace.
    Generate(GenerateArgs),
    /// Benchmarks (`mcos bench fastpath`, `mcos bench gpu`).
    #[command(subcommand)]
    Bench(crate::bench::BenchTarget),
    /// Policy tables: `mcos policy show` prints the table the brain installs.
    Policy(PolicyArgs),
    /// Serve a node to other processes: the mcosd daemon (Unix socket, optional TCP and
    /// metrics) until SIGTERM or SIGINT.
    Serve(mcos_server::ServeArgs),
    /// A running daemon's statistics (the figures /metrics serves).
    Stats(crate::stats::StatsArgs),
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print a policy table readably: the built-in table, or with --trace the table the
    /// brain had installed at the end of a simulated replay (with its decisions).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Replay this trace (simulate mode) under the brain first.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Capacity of tier 0 for the replay (fraction of unique blocks or block count).
    #[arg(long, default_value = "0.05", value_parser = parse_capacity)]
    pub capacity: Capacity,
    /// Tokens per block in the trace.
    #[arg(long, default_value_t = 512)]
    pub block_tokens: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// One JSON object on stdout (field names are stable).
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The fast path (and baseline policies) without payloads: fast capacity sweeps.
    Simulate,
    /// A running node moving real bytes through DRAM and disk tiers.
    Real,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Requests in the built-in workload.
    #[arg(long, default_value_t = 6000)]
    pub requests: usize,
    /// Seed of the built-in workload.
    #[arg(long, default_value_t = 0x4D43_4F53)]
    pub seed: u64,
    /// Workload preset: mixed, chat, agent or rag.
    #[arg(long, default_value = "mixed")]
    pub preset: String,
    /// Bytes per KV block stored by the real node (16 KiB: one layer's K+V of 16 tokens at
    /// 8 KV heads x 128 dims in bf16 is 64 KiB; 16 KiB is the design's worst case).
    #[arg(long, default_value_t = 16 << 10)]
    pub block_bytes: u32,
    /// DRAM tier size as a fraction of the workload's unique blocks.
    #[arg(long, default_value_t = 0.05)]
    pub dram: f64,
    /// Disk tier size as a fraction of the unique blocks (0: no disk tier).
    #[arg(long, default_value_t = 0.25)]
    pub disk: f64,
    /// Directory for the disk tier's file (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Node configuration (TOML) instead of the --dram/--disk/--block-bytes defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use pread/pwrite instead of io_uring for the disk tier.
    #[arg(long)]
    pub psync: bool,
    /// Policies the real node runs, comma-separated: mcos (the brain on its own thread
    /// installing tables) and lru (the built-in table).
    #[arg(long, default_value = "mcos,lru")]
    pub policy: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Trace file (Mooncake JSONL).
    #[arg(long)]
    pub trace: PathBuf,
    /// simulate: policies without payloads; real: a node with real bytes.
    #[arg(long, value_enum, default_value_t = Mode::Simulate)]
    pub mode: Mode,
    /// Comma-separated policies: mcos, lru, lru-tail, s3fifo, sieve, arc, wtinylfu, min
    /// (simulate); mcos, lru (real). Default: mcos,lru,s3fifo,sieve,arc,wtinylfu,min in
    /// simulate mode, mcos,lru in real mode.
    #[arg(long)]
    pub policy: Option<String>,
    /// Comma-separated capacities: fractions of the trace's unique blocks (0.05) or block
    /// counts (1828). In real mode this sizes the DRAM tier.
    #[arg(long, default_value = "0.01,0.05,0.10,0.25")]
    pub capacity: String,
    /// Tokens per block in the trace (Mooncake: 512).
    #[arg(long, default_value_t = 512)]
    pub block_tokens: u32,
    /// Bytes per block (real mode stores this many; simulate mode models bytes with it).
    #[arg(long, default_value_t = 16 << 10)]
    pub block_bytes: u32,
    /// Real mode: a disk tier under DRAM of this capacity (fraction or blocks); none if absent.
    #[arg(long, value_parser = parse_capacity)]
    pub disk_capacity: Option<Capacity>,
    /// Real mode: directory for the disk tier's file.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Real mode: node configuration (TOML) instead of the sizes above.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Real mode: pread/pwrite instead of io_uring.
    #[arg(long)]
    pub psync: bool,
    /// Simulate mode: serve the trace through a prefill engine of this throughput (tokens/s),
    /// arrivals at the trace's timestamps, first come first served; reports utilisation and
    /// queue length, and lets `--intents` reach the policies. With --tiers: the recompute rate
    /// that fetches are weighed against (default 20,000 tokens/s), and the engine's rate when
    /// --intents serves the trace.
    #[arg(long)]
    pub prefill_tps: Option<f64>,
    /// Simulate mode: as --prefill-tps, with the throughput at which prefilling every prompt
    /// token would keep the engine busy this fraction of the trace's span (0.8: busy, not
    /// overloaded; hits lower the real utilisation, which is reported).
    #[arg(long, conflicts_with = "prefill_tps")]
    pub load: Option<f64>,
    /// With a prefill engine: intent variants to run for `mcos`, comma-separated: none,
    /// queue (queued requests' blocks), sessions (ended conversations' blocks), all (queue
    /// and sessions), stage (with --tiers: queue, and queued requests' blocks are moved up to
    /// tier 0 while they wait; LRU with the same staging runs beside it). With --tiers, any
    /// value but none serves the trace (as --load 0.8 unless --load is given).
    #[arg(long, default_value = "none")]
    pub intents: String,
    /// Simulate mode: score a candidate on the same access stream without letting it act: a
    /// policy name or a brain knob label (lru, slru50+h1, hadm2, wtlfu2/p50/s10, ...). Reports,
    /// per capacity, the hits it would have added and lost against each policy that acted.
    #[arg(long)]
    pub shadow: Option<String>,
    /// Simulate mode: a tier hierarchy instead of one tier, comma-separated capacities fastest
    /// first (fractions or blocks): 2 tiers are HBM + DRAM, 3 are HBM + DRAM + disk. Reports
    /// hits per tier and modelled prefill seconds saved for `mcos` and LRU over these tiers and
    /// for every policy over tier 0 alone.
    #[arg(long)]
    pub tiers: Option<String>,
    /// With --tiers: model preset for KV bytes per token (llama-3-8b, llama-3-70b, qwen2.5-7b).
    #[arg(long, default_value = "llama-3-8b")]
    pub model: String,
    /// With --tiers: bandwidth of each link up the hierarchy in GB/s (DRAM->HBM, disk->DRAM).
    /// Defaults: 50 (a GPU gather over PCIe Gen5, DESIGN.md) and 5 (an NVMe drive).
    #[arg(long, default_value = "50,5")]
    pub link_gbps: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Which intents a served replay delivers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IntentSet {
    pub queue: bool,
    pub sessions: bool,
    /// Stage queued requests' blocks up the tiers (implies `queue`; --tiers only).
    pub stage: bool,
}

impl IntentSet {
    /// Suffix of the report's policy name (`mcos+queue`).
    pub fn suffix(self) -> &'static str {
        if self.stage {
            return "+stage";
        }
        match (self.queue, self.sessions) {
            (false, false) => "",
            (true, false) => "+queue",
            (false, true) => "+sessions",
            (true, true) => "+queue+sessions",
        }
    }
}

/// `none,queue,sessions,all` into intent sets.
pub fn parse_intents(s: &str) -> Result<Vec<IntentSet>> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (queue, sessions, stage) = match p {
            "none" => (false, false, false),
            "queue" => (true, false, false),
            "sessions" => (false, true, false),
            "all" => (true, true, false),
            "stage" => (true, false, true),
            other => bail!("unknown intents `{other}`; valid: none, queue, sessions, all, stage"),
        };
        out.push(IntentSet {
            queue,
            sessions,
            stage,
        });
    }
    if out.is_empty() {
        bail!("--intents needs at least one of none, queue, sessions, all, stage");
    }
    Ok(out)
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    /// Requests.
    #[arg(long, default_value_t = 6000)]
    pub requests: usize,
    /// Seed.
    #[arg(long, default_value_t = 0x4D43_4F53)]
    pub seed: u64,
    /// Preset: mixed, chat, agent or rag.
    #[arg(long, default_value = "mixed")]
    pub preset: String,
    /// Instead of the generator: an Azure LLM inference CSV (TIMESTAMP,ContextTokens,
    /// GeneratedTokens); its arrivals and prompt sizes are kept and prefix-sharing block ids
    /// are synthesised deterministically (see mcos_workload::azure).
    #[arg(long)]
    pub azure: Option<PathBuf>,
    /// Tokens per block of the synthesised Azure trace.
    #[arg(long, default_value_t = 64)]
    pub block_tokens: u32,
}

/// One capacity: a fraction of unique blocks when it has a decimal point or is below 1, else a
/// block count.
pub fn parse_capacity(s: &str) -> Result<Capacity, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return if n == 0 {
            Err("capacity 0 holds nothing: give a fraction such as 0.05 or a block count of at least 1".into())
        } else {
            Ok(Capacity::Blocks(n))
        };
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(Capacity::Fraction(f)),
        Ok(f) => Err(format!(
            "capacity {f} must be positive (a fraction such as 0.05, or a block count)"
        )),
        Err(_) => Err(format!(
            "`{s}` is not a capacity: give a fraction such as 0.05 or a block count such as 1828"
        )),
    }
}

/// A comma-separated capacity list.
pub fn parse_capacities(s: &str) -> Result<Vec<Capacity>> {
    let caps = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| parse_capacity(p).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if caps.is_empty() {
        bail!("--capacity needs at least one value");
    }
    Ok(caps)
}

/// A comma-separated policy list, checked against what the mode supports.
pub fn parse_policies(s: &Option<String>, mode: Mode) -> Result<Vec<String>> {
    let names: Vec<String> = match (s, mode) {
        (Some(s), _) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        (None, Mode::Simulate) => DEFAULT_POLICIES.iter().map(|p| p.to_string()).collect(),
        (None, Mode::Real) => REAL_POLICIES.iter().map(|p| p.to_string()).collect(),
    };
    if names.is_empty() {
        bail!("--policy needs at least one policy");
    }
    for n in &names {
        let known = mcos_workload::POLICY_NAMES.contains(&n.as_str());
        match mode {
            _ if !known => bail!(
                "unknown policy `{n}`; valid policies: {}",
                mcos_workload::POLICY_NAMES.join(", ")
            ),
            Mode::Real if !REAL_POLICIES.contains(&n.as_str()) => bail!(
                "policy `{n}` runs in simulate mode only; real mode executes the fast path's \
                 table-driven policies ({}); use --mode simulate for {n}",
                REAL_POLICIES.join(", ")
            ),
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_parse_as_fractions_or_blocks() {
        assert_eq!(parse_capacity("0.05"), Ok(Capacity::Fraction(0.05)));
        assert_eq!(parse_capacity("1828"), Ok(Capacity::Blocks(1828)));
        assert!(parse_capacity("0").unwrap_err().contains("capacity 0"));
        assert!(parse_capacity("-1").is_err());
        assert!(
            parse_capacity("abc")
                .unwrap_err()
                .contains("not a capacity")
        );
        assert_eq!(parse_capacities("0.01, 0.1").unwrap().len(), 2);
    }

    #[test]
    fn policies_are_checked_per_mode() {
        assert_eq!(parse_policies(&None, Mode::Simulate).unwrap().len(), 7);
        assert!(
            parse_policies(&Some("lru,bogus".into()), Mode::Simulate)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
        assert!(
            parse_policies(&Some("sieve".into()), Mode::Real)
                .unwrap_err()
                .to_string()
                .contains("simulate")
        );
        assert_eq!(
            parse_policies(&Some("lru".into()), Mode::Real).unwrap(),
            vec!["lru"]
        );
    }
}
