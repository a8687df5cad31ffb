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
    /// Miss-ratio curves: each policy's hit and miss ratio over a range of capacities (LRU
    /// exact by stack distances, the others sampled or in parallel exact runs, MIN as the
    /// bound).
    Mrc(crate::mrc::MrcArgs),
    /// One self-contained HTML page about a trace (inline SVG, no script, no network):
    /// miss-ratio curves with MIN, the brain's switches and tables over the trace, tiered
    /// results and the served replay's queue and utilisation.
    Report(crate::html_report::ReportArgs),
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
    /// A live view of a running daemon, refreshed every second: tiers, links, operations,
    /// the policy epoch and the brain's choice (`q` quits; plain lines when not a terminal).
    Top(crate::top::TopArgs),
    /// The rack-scale pool: `mcos cluster up` (etcd and N daemons on this host), `mcos
    /// cluster status`.
    Cluster(crate::cluster::ClusterArgs),
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
    /// Capacity of tier 0 for the replay: 5% (of the unique blocks), 0.05, a block count
    /// (1828) or a size (128MiB, in 16 KiB blocks).
    #[arg(long, default_value = "5%", value_parser = parse_capacity, allow_hyphen_values = true)]
    pub capacity: Capacity,
    /// Tokens per block in the trace.
    #[arg(long, default_value_t = 512, value_parser = parse_positive_u32, allow_hyphen_values = true)]
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
    #[arg(long, default_value_t = 6000, value_parser = parse_positive_usize, allow_hyphen_values = true)]
    pub requests: usize,
    /// Seed of the built-in workload.
    #[arg(long, default_value_t = 0x4D43_4F53)]
    pub seed: u64,
    /// Workload preset: mixed, chat, agent or rag.
    #[arg(long, default_value = "mixed")]
    pub preset: String,
    /// Bytes per KV block stored by the real node (default 16 KiB: one layer's K+V of 16
    /// tokens at 8 KV heads x 128 dims in bf16 is 64 KiB; 16 KiB is the design's worst case).
    /// Not with --config (set block_bytes in the file).
    #[arg(long, value_parser = parse_positive_u32, allow_hyphen_values = true)]
    pub block_bytes: Option<u32>,
    /// DRAM tier size (default 5%): a percentage of the workload's unique blocks (5%), a
    /// fraction below 1 (0.05), a block count (1828) or a size (128MiB). Not with --config.
    #[arg(long, value_parser = parse_capacity, allow_hyphen_values = true)]
    pub dram: Option<Capacity>,
    /// Disk tier size (default 25%), as --dram; 0 or none: no disk tier. Not with --config.
    #[arg(long, value_parser = parse_disk_capacity, allow_hyphen_values = true)]
    pub disk: Option<DiskCapacity>,
    /// Directory for the disk tier's file (default: a fresh directory under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Node configuration (TOML) instead of the --dram/--disk/--block-bytes defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use pread/pwrite instead of io_uring for the disk tier. Not with --config (set
    /// disk_io = "psync" in the file).
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
    /// Trace file: Mooncake JSONL, or an object trace in one of libCacheSim's formats
    /// (see --trace-format).
    #[arg(long)]
    pub trace: PathBuf,
    /// Also write this run's chart as SVG: hit ratio by capacity per policy, or with --tiers
    /// the prefill seconds saved per policy against the bound.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// simulate: policies without payloads; real: a node with real bytes.
    #[arg(long, value_enum, default_value_t = Mode::Simulate)]
    pub mode: Mode,
    /// Comma-separated policies: mcos, lru, lru-tail, s3fifo, sieve, arc, wtinylfu, min,
    /// lru-ref, clock, aged, mcos-hw (simulate); mcos, lru (real). mcos-hw is mcos with the
    /// brain's replacement order on auto ([brain] replacement = "auto"): it installs the aged
    /// order the hardware pipeline executes where that scores within 0.005 of the list LRU
    /// order, and keeps the list otherwise or while queued intents rank victims. Default: mcos,lru,s3fifo,sieve,arc,wtinylfu,min in
    /// simulate mode, mcos,lru in real mode. Object traces: lru, fifo, clock, slru, arc, lirs,
    /// sieve, s3fifo, qdlp, lfu, gdsf, hyperbolic, belady, beladysize, with parameters as
    /// name:key=value,... (s3fifo:small=0.1,threshold=2, slru:segments=5); default all.
    #[arg(long)]
    pub policy: Option<String>,
    /// Comma-separated capacities: percentages of the trace's unique blocks (5%), fractions
    /// below 1 (0.05), block counts (1828) or sizes (128MiB, in --block-bytes blocks). In real
    /// mode this sizes the DRAM tier. Object traces: sizes in bytes (128MiB,1GiB) or shares
    /// of the working-set bytes (10%, 0.1).
    #[arg(long, default_value = "1%,5%,10%,25%", allow_hyphen_values = true)]
    pub capacity: String,
    /// Tokens per block in the trace (Mooncake: 512).
    #[arg(long, default_value_t = 512, value_parser = parse_positive_u32, allow_hyphen_values = true)]
    pub block_tokens: u32,
    /// Bytes per block (real mode stores this many; simulate mode models bytes with it).
    #[arg(long, default_value_t = DEFAULT_BLOCK_BYTES, value_parser = parse_positive_u32, allow_hyphen_values = true)]
    pub block_bytes: u32,
    /// Real mode: a disk tier under DRAM of this capacity (as --capacity); none if absent.
    #[arg(long, value_parser = parse_capacity, allow_hyphen_values = true)]
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
    #[arg(long, allow_negative_numbers = true)]
    pub prefill_tps: Option<f64>,
    /// Simulate mode: as --prefill-tps, with the throughput at which prefilling every prompt
    /// token would keep the engine busy this fraction of the trace's span (0.8: busy, not
    /// overloaded; hits lower the real utilisation, which is reported).
    #[arg(long, conflicts_with = "prefill_tps", allow_negative_numbers = true)]
    pub load: Option<f64>,
    /// With a prefill engine: intent variants to run for `mcos`, comma-separated: none,
    /// queue (queued requests' blocks), sessions (ended conversations' blocks), all (queue
    /// and sessions), stage (with --tiers: queue, and queued requests' blocks are moved up to
    /// tier 0 while they wait; LRU with the same staging runs beside it). With --tiers, any
    /// value but none serves the trace (as --load 0.8 unless --load is given). Default: none.
    #[arg(long)]
    pub intents: Option<String>,
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
    /// Default: llama-3-8b.
    #[arg(long)]
    pub model: Option<String>,
    /// With --tiers: bandwidth of each link up the hierarchy in GB/s (DRAM->HBM, disk->DRAM).
    /// Defaults: 50 (a GPU gather over PCIe Gen5, DESIGN.md) and 5 (an NVMe drive).
    #[arg(long, allow_hyphen_values = true)]
    pub link_gbps: Option<String>,
    /// Trace format: mooncake (JSONL), or one of libCacheSim's object-trace formats:
    /// oracleGeneral (also .zst), csv (with --csv-columns), txt, vscsi. Default: from the file
    /// name (.oracleGeneral/.bin[.zst], .csv, .txt, .vscsi; anything else is Mooncake JSONL).
    #[arg(long)]
    pub trace_format: Option<String>,
    /// CSV object trace: 1-based columns, e.g. time=1,key=2,size=3 (key required; optional
    /// header=true|false, default guessed, and delim=<char>).
    #[arg(long)]
    pub csv_columns: Option<String>,
    /// Object traces: libCacheSim's conventions: a bare --capacity number is bytes, and the
    /// default policies are libCacheSim's eviction-test set with that test's parameters.
    #[arg(long, value_enum)]
    pub compat: Option<Compat>,
    /// Object traces: read every object as size 1 (libCacheSim's --ignore-obj-size): a bare
    /// --capacity number counts objects, and the KV-block policies (mcos, lru-tail, wtinylfu,
    /// the fast path's lru and clock) run beside the object policies.
    #[arg(long)]
    pub ignore_obj_size: bool,
    /// Object traces: read the trace once more before the runs for its statistics (unique
    /// objects, working-set bytes, size changes) even when every --capacity is absolute; a
    /// fractional capacity always makes this pass.
    #[arg(long)]
    pub trace_stats: bool,
    /// Object traces: runs at a time (each streams the trace itself). Default: one per core.
    #[arg(long, value_parser = parse_positive_usize)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Another simulator's conventions.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compat {
    /// libCacheSim (github.com/1a1a11a/libCacheSim).
    Libcachesim,
}

impl ReplayArgs {
    /// `--intents`, default `none`.
    pub fn intents(&self) -> &str {
        self.intents.as_deref().unwrap_or("none")
    }

    /// `--model`, default `llama-3-8b`.
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or("llama-3-8b")
    }

    /// `--link-gbps`, default `50,5`.
    pub fn link_gbps(&self) -> &str {
        self.link_gbps.as_deref().unwrap_or("50,5")
    }

    /// Refuses flags that do not apply to the chosen mode, before any work starts.
    pub fn check_flags(&self) -> Result<()> {
        let given = |on: bool, flag: &'static str| on.then_some(flag);
        if let Some(l) = self.load.filter(|l| !(l.is_finite() && *l > 0.0)) {
            bail!("--load {l} must be positive: a share of the trace's span, such as 0.8");
        }
        if let Some(t) = self.prefill_tps.filter(|t| !(t.is_finite() && *t > 0.0)) {
            bail!("--prefill-tps {t} must be a positive number of tokens/s");
        }
        match self.mode {
            Mode::Simulate => {
                let real_only = [
                    given(self.disk_capacity.is_some(), "--disk-capacity"),
                    given(self.dir.is_some(), "--dir"),
                    given(self.config.is_some(), "--config"),
                    given(self.psync, "--psync"),
                ];
                if let Some(flag) = real_only.into_iter().flatten().next() {
                    bail!(
                        "{flag} applies to --mode real only (a real node); drop it or add --mode real"
                    );
                }
                let tiers = self.tiers.is_some();
                let served = self.load.is_some() || self.prefill_tps.is_some();
                if !tiers {
                    if let Some(flag) = [
                        given(self.model.is_some(), "--model"),
                        given(self.link_gbps.is_some(), "--link-gbps"),
                    ]
                    .into_iter()
                    .flatten()
                    .next()
                    {
                        bail!("{flag} applies with --tiers only (a modelled tier hierarchy)");
                    }
                    if self.intents.is_some() && !served {
                        bail!(
                            "--intents needs a prefill engine: give --load or --prefill-tps (or --tiers)"
                        );
                    }
                }
                if self.shadow.is_some() && (tiers || served) {
                    bail!(
                        "--shadow runs on a plain simulated sweep: drop --tiers, --load and --prefill-tps"
                    );
                }
            }
            Mode::Real => {
                let sim_only = [
                    given(self.tiers.is_some(), "--tiers"),
                    given(self.load.is_some(), "--load"),
                    given(self.prefill_tps.is_some(), "--prefill-tps"),
                    given(self.intents.is_some(), "--intents"),
                    given(self.shadow.is_some(), "--shadow"),
                    given(self.model.is_some(), "--model"),
                    given(self.link_gbps.is_some(), "--link-gbps"),
                ];
                if let Some(flag) = sim_only.into_iter().flatten().next() {
                    bail!(
                        "{flag} applies to --mode simulate only; real mode takes --capacity, \
                         --disk-capacity, --dir, --config and --psync"
                    );
                }
                if self.config.is_some()
                    && let Some(flag) = [
                        given(self.disk_capacity.is_some(), "--disk-capacity"),
                        given(self.psync, "--psync"),
                    ]
                    .into_iter()
                    .flatten()
                    .next()
                {
                    bail!(
                        "{flag} does not apply with --config: the file sets the tiers (disk_io = \"psync\" for --psync)"
                    );
                }
            }
        }
        Ok(())
    }
}

impl RunArgs {
    /// Refuses flags that the node configuration file would override, before any work starts.
    pub fn check_flags(&self) -> Result<()> {
        if self.config.is_some() {
            let given = |on: bool, flag: &'static str| on.then_some(flag);
            if let Some(flag) = [
                given(self.dram.is_some(), "--dram"),
                given(self.disk.is_some(), "--disk"),
                given(self.block_bytes.is_some(), "--block-bytes"),
                given(self.psync, "--psync"),
            ]
            .into_iter()
            .flatten()
            .next()
            {
                bail!(
                    "{flag} does not apply with --config: the file sets the tiers, block_bytes and \
                     disk_io"
                );
            }
        }
        Ok(())
    }
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
    #[arg(long, default_value_t = 6000, value_parser = parse_positive_usize, allow_hyphen_values = true)]
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
    #[arg(long, default_value_t = 64, value_parser = parse_positive_u32, allow_hyphen_values = true)]
    pub block_tokens: u32,
}

/// Block size when none is given (16 KiB).
pub const DEFAULT_BLOCK_BYTES: u32 = 16 << 10;

/// One capacity (see [`Capacity::parse`]: `5%`, `0.05`, `1828` blocks, `128MiB`).
pub fn parse_capacity(s: &str) -> Result<Capacity, String> {
    Capacity::parse(s)
}

/// `mcos run --disk`: a capacity, or no disk tier (`0`, `none`).
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum DiskCapacity {
    /// No disk tier.
    None,
    /// A disk tier of this capacity.
    Some(Capacity),
}

fn parse_disk_capacity(s: &str) -> Result<DiskCapacity, String> {
    match s.trim() {
        "0" | "none" => Ok(DiskCapacity::None),
        other => Capacity::parse(other).map(DiskCapacity::Some),
    }
}

/// A count that must be at least 1; a negative or zero one says so.
pub fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("{n} must be positive (at least 1)")),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A positive count as u64 (see `parse_positive_usize`).
pub fn parse_positive_u64(s: &str) -> Result<u64, String> {
    parse_positive_usize(s).map(|n| n as u64)
}

fn parse_positive_u32(s: &str) -> Result<u32, String> {
    parse_positive_usize(s)
        .and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is above {}", u32::MAX)))
}

/// A comma-separated capacity list given by `flag`; sizes in bytes become blocks of
/// `block_bytes`.
pub fn parse_capacities(flag: &str, s: &str, block_bytes: u32) -> Result<Vec<Capacity>> {
    let caps = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            parse_capacity(p)
                .map(|c| c.in_blocks_of(block_bytes))
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if caps.is_empty() {
        bail!("{flag} needs at least one value");
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
    fn capacities_parse_as_fractions_blocks_or_bytes() {
        assert_eq!(parse_capacity("0.05"), Ok(Capacity::Fraction(0.05)));
        assert_eq!(parse_capacity("5%"), Ok(Capacity::Fraction(0.05)));
        assert_eq!(parse_capacity("1828"), Ok(Capacity::Blocks(1828)));
        assert!(parse_capacity("0").unwrap_err().contains("capacity 0"));
        assert!(
            parse_capacity("-1")
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(
            parse_capacity("abc")
                .unwrap_err()
                .contains("not a capacity")
        );
        assert_eq!(
            parse_capacities("--capacity", "0.01, 10%, 1MiB", 16384).unwrap(),
            vec![
                Capacity::Fraction(0.01),
                Capacity::Fraction(0.1),
                Capacity::Blocks(64)
            ]
        );
        let e = parse_capacities("--tiers", "0.01,2.5", 16384).unwrap_err();
        assert!(e.to_string().starts_with("--tiers: capacity `2.5`"), "{e}");
        assert_eq!(parse_disk_capacity("none"), Ok(DiskCapacity::None));
        assert_eq!(parse_disk_capacity("0"), Ok(DiskCapacity::None));
        assert!(
            parse_positive_usize("-5")
                .unwrap_err()
                .contains("must be positive")
        );
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
