//! Reports: the stable JSON schema of `mcos replay --format json` and its table rendering.

use indicatif::{ProgressBar, ProgressStyle};
use mcos_node::{NodeConfig, NodeStats};
use mcos_workload::{RealResult, SimResult, TraceStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One (policy, capacity) result. Field names are stable: scripts depend on them.
#[derive(Serialize, Debug, Clone)]
pub struct ResultRow {
    pub policy: String,
    /// `simulate` or `real`.
    pub mode: &'static str,
    pub capacity_fraction: f64,
    pub capacity_blocks: u64,
    pub block_hit_ratio: f64,
    pub token_hit_ratio: f64,
    pub hits_per_tier: BTreeMap<String, u64>,
    /// Real mode: bytes actually moved. Simulate mode: `stored`, modelled as blocks admitted
    /// times --block-bytes.
    pub bytes_moved: BTreeMap<String, u64>,
    pub evictions: u64,
    pub admissions_rejected: u64,
    /// Real mode only: wall-clock seconds and node operations per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_per_second: Option<f64>,
    /// Real mode only: what the engines measured per route (`disk->dram`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<BTreeMap<String, mcos_workload::LinkMeasured>>,
    /// Served replays only: the prefill engine's load and the intents delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingRow>,
}

/// The prefill engine of a served replay.
#[derive(Serialize, Debug, Clone)]
pub struct ServingRow {
    pub prefill_tokens_per_s: f64,
    pub intents: String,
    pub utilisation: f64,
    pub mean_queue_len: f64,
    pub max_queue_len: usize,
    pub mean_wait_s: f64,
    pub prefill_s: f64,
}

impl ServingRow {
    pub fn new(tps: f64, intents: &str, s: &mcos_workload::ServeStats) -> ServingRow {
        ServingRow {
            prefill_tokens_per_s: tps,
            intents: if intents.is_empty() {
                "none".into()
            } else {
                intents.trim_start_matches('+').into()
            },
            utilisation: s.utilisation,
            mean_queue_len: s.mean_queue_len,
            max_queue_len: s.max_queue_len,
            mean_wait_s: s.mean_wait_s,
            prefill_s: s.prefill_s,
        }
    }
}

impl ResultRow {
    pub fn simulated(r: &SimResult, block_bytes: u32) -> ResultRow {
        let mut hits = BTreeMap::new();
        hits.insert("dram".to_owned(), r.block_hits);
        let admitted = r.block_accesses - r.block_hits - r.admissions_rejected;
        let mut bytes = BTreeMap::new();
        bytes.insert("stored".to_owned(), admitted * u64::from(block_bytes));
        ResultRow {
            policy: r.policy.clone(),
            mode: "simulate",
            capacity_fraction: r.capacity_fraction,
            capacity_blocks: r.capacity_blocks,
            block_hit_ratio: r.block_hit_ratio,
            token_hit_ratio: r.token_hit_ratio,
            hits_per_tier: hits,
            bytes_moved: bytes,
            evictions: r.evictions,
            admissions_rejected: r.admissions_rejected,
            wall_seconds: None,
            ops_per_second: None,
            links: None,
            serving: None,
        }
    }

    pub fn real(r: &RealResult, cfg: &NodeConfig, unique_blocks: u64, policy: &str) -> ResultRow {
        let dram = u64::from(cfg.tiers[0].capacity_blocks);
        ResultRow {
            policy: policy.to_owned(),
            mode: "real",
            capacity_fraction: dram as f64 / unique_blocks.max(1) as f64,
            capacity_blocks: dram,
            block_hit_ratio: r.block_hit_ratio,
            token_hit_ratio: r.token_hit_ratio,
            hits_per_tier: r.hits_per_tier.clone(),
            bytes_moved: r.bytes_moved.clone(),
            evictions: r.evictions,
            admissions_rejected: r.admissions_rejected,
            wall_seconds: Some(r.wall_seconds),
            ops_per_second: Some(r.ops_per_second),
            links: Some(r.links.clone()),
            serving: None,
        }
    }
}

/// The whole report. Field names are stable.
#[derive(Serialize, Debug)]
pub struct ReplayReport {
    pub trace: String,
    pub requests: u64,
    pub block_accesses: u64,
    pub unique_blocks: u64,
    pub infinite_cache_hit_ratio: f64,
    pub results: Vec<ResultRow>,
}

impl ReplayReport {
    pub fn new(trace: String, stats: &TraceStats, results: Vec<ResultRow>) -> ReplayReport {
        ReplayReport {
            trace,
            requests: stats.requests,
            block_accesses: stats.block_accesses,
            unique_blocks: stats.unique_blocks,
            infinite_cache_hit_ratio: stats.infinite_cache_hit_ratio(),
            results,
        }
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\ntrace: {}\n{} requests, {} block accesses, {} unique blocks (infinite-cache hit ratio {:.4})\n",
            self.trace,
            self.requests,
            self.block_accesses,
            self.unique_blocks,
            self.infinite_cache_hit_ratio
        );
        let _ = writeln!(
            s,
            "{:<9} {:<8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9}  hits per tier",
            "policy",
            "mode",
            "capacity",
            "blocks",
            "block hit",
            "token hit",
            "evictions",
            "rejected"
        );
        let served = self.results.iter().any(|r| r.serving.is_some());
        if served {
            return self.served_table(s);
        }
        for r in &self.results {
            let tiers: Vec<String> = r
                .hits_per_tier
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "{:<9} {:<8} {:>7.1}% {:>8} {:>9.4} {:>9.4} {:>10} {:>9}  {}",
                r.policy,
                r.mode,
                r.capacity_fraction * 100.0,
                r.capacity_blocks,
                r.block_hit_ratio,
                r.token_hit_ratio,
                r.evictions,
                r.admissions_rejected,
                tiers.join(", ")
            );
        }
        s
    }
}

impl ReplayReport {
    fn served_table(&self, mut s: String) -> String {
        s.clear();
        let _ = writeln!(
            s,
            "\ntrace: {}\n{} requests, {} block accesses, {} unique blocks (infinite-cache hit ratio {:.4})\n",
            self.trace,
            self.requests,
            self.block_accesses,
            self.unique_blocks,
            self.infinite_cache_hit_ratio
        );
        let _ = writeln!(
            s,
            "{:<22} {:>8} {:>9} {:>9} {:>11} {:>6} {:>8} {:>8} {:>10}",
            "policy",
            "capacity",
            "block hit",
            "token hit",
            "prefill tps",
            "util",
            "mean q",
            "wait s",
            "prefill s"
        );
        for r in &self.results {
            let Some(v) = &r.serving else { continue };
            let _ = writeln!(
                s,
                "{:<22} {:>7.1}% {:>9.4} {:>9.4} {:>11.0} {:>6.3} {:>8.2} {:>8.2} {:>10.0}",
                r.policy,
                r.capacity_fraction * 100.0,
                r.block_hit_ratio,
                r.token_hit_ratio,
                v.prefill_tokens_per_s,
                v.utilisation,
                v.mean_queue_len,
                v.mean_wait_s,
                v.prefill_s
            );
        }
        s
    }
}

/// A progress bar on stderr (hidden for JSON output and when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {msg} ({eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_owned());
    bar
}

/// "DRAM 1,051 blocks + disk 5,256 blocks of 16 KiB".
pub fn describe_tiers(cfg: &NodeConfig) -> String {
    let tiers: Vec<String> = cfg
        .tiers
        .iter()
        .map(|t| format!("{} {} blocks", t.kind, t.capacity_blocks))
        .collect();
    format!("{} of {} KiB", tiers.join(" + "), cfg.block_bytes / 1024)
}

/// The real node's own figures, after the table.
pub fn real_summary(r: &RealResult, stats: &NodeStats, cfg: &NodeConfig, policy: &str) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut s = String::new();
    let _ = writeln!(s, "\nreal node ({policy}): {}", describe_tiers(cfg));
    let _ = writeln!(
        s,
        "  {:.2} s wall, {:.0} node ops/s; every hit verified byte for byte ({} hits, {} corrupt blocks)",
        r.wall_seconds, r.ops_per_second, r.block_hits, r.corrupt_blocks
    );
    for (k, v) in &r.bytes_moved {
        let _ = writeln!(s, "  {:<12} {:>10.1} MiB", k, mib(*v));
    }
    let c = &stats.counters;
    let _ = writeln!(
        s,
        "  demotions {}, promotions {}, evictions {}, puts that waited for a demotion {}",
        c.demotions,
        c.moves_done - c.demotions,
        c.evictions,
        stats.puts_waited
    );
    if let Some(b) = stats.disk_backend {
        let _ = writeln!(
            s,
            "  disk engine: {b}{}",
            if stats.disk_direct_io == Some(true) {
                ", O_DIRECT"
            } else {
                ", buffered"
            }
        );
    }
    if let Some(l) = links_line(stats, cfg) {
        let _ = writeln!(s, "  {l}");
    }
    match &stats.brain {
        Some(b) => {
            let _ = writeln!(
                s,
                "  brain (own thread): {} samples, {} sampled accesses modelled, {} switches, {} installs, ended on {}; {:.1} ms busy",
                b.stats.samples,
                b.stats.sampled_accesses,
                b.stats.switches,
                b.stats.installs,
                b.knobs,
                b.stats.busy.as_secs_f64() * 1e3
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  telemetry samples delivered: {}",
                stats.telemetry_samples
            );
        }
    }
    s
}

/// "links measured: DRAM<-disk 1.8 GB/s over 120 MiB (configured 2.0); DRAM->disk ...": what
/// the engines measured per route, against the configured link; with the brain's placement
/// model, the figure it uses. None when nothing moved.
pub fn links_line(stats: &NodeStats, cfg: &NodeConfig) -> Option<String> {
    let name = |t: mcos_core::TierId| {
        cfg.tiers
            .get(t.index())
            .map_or("?".to_string(), |x| x.kind.to_string())
    };
    let gb = |b: f64| b / 1e9;
    let parts: Vec<String> = stats
        .links
        .iter()
        .filter_map(|l| {
            let bw = l.bytes_per_s()?;
            let arrow = if l.from > l.to {
                format!("{}<-{}", name(l.to), name(l.from))
            } else {
                format!("{}->{}", name(l.from), name(l.to))
            };
            let used = stats
                .brain
                .as_ref()
                .and_then(|b| b.links.iter().find(|x| x.from == l.from.0 && l.to < l.from))
                .map(|x| format!(", placement uses {:.2}", gb(x.in_use_bytes_per_s)))
                .unwrap_or_default();
            Some(format!(
                "{arrow} {:.2} GB/s over {:.1} MiB (configured {:.2}{used})",
                gb(bw),
                l.bytes as f64 / (1 << 20) as f64,
                gb(l.configured_bytes_per_s as f64),
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| format!("links measured: {}", parts.join("; ")))
}
