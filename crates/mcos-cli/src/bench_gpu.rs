//! `mcos bench gpu`: the GPU checks and benchmarks (crates/mcos-bench/src/gpu/bench.rs) behind
//! the command line. Arguments are checked on every build; the run itself needs the `cuda`
//! feature and a GPU, and says clearly which one is missing.

use crate::args::Format;
use anyhow::{Result, bail};
use clap::Args;
use mcos_bench::gpu::config::GpuBenchConfig;
use std::path::PathBuf;

/// Message of a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub const NO_CUDA_FEATURE: &str = "built without the cuda feature: rebuild with --features cuda \
     (cargo build --release -p mcos-cli --features cuda)";

#[derive(Args, Debug)]
pub struct GpuBenchArgs {
    /// A short run of every path (smoke test) instead of the full targets.
    #[arg(long)]
    pub quick: bool,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub device: i32,
    /// Scattered blocks per batch.
    #[arg(long)]
    pub blocks: Option<u32>,
    /// Comma-separated block payload sizes in bytes.
    #[arg(long)]
    pub block_sizes: Option<String>,
    /// Frames the blocks are scattered over.
    #[arg(long)]
    pub scatter_frames: Option<u32>,
    /// Timed repetitions per transfer run.
    #[arg(long)]
    pub reps: Option<u32>,
    /// Decision-to-first-byte samples.
    #[arg(long)]
    pub latency_samples: Option<u32>,
    /// Context tokens of the decode loop.
    #[arg(long)]
    pub context_tokens: Option<u32>,
    /// Timed decode steps per mode.
    #[arg(long)]
    pub decode_tokens: Option<u32>,
    /// Comma-separated resident fractions of the KV cache (each below 1).
    #[arg(long)]
    pub resident: Option<String>,
    /// Weight MiB each decode layer reads (Llama-3-8B: 416).
    #[arg(long)]
    pub weights_mib: Option<u64>,
    /// Blocks of the disk -> HBM run.
    #[arg(long)]
    pub disk_blocks: Option<u32>,
    /// Directory for the disk -> HBM run's file (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit non-zero when any target is missed (a `..._met: false` in the report), besides a
    /// failed verification, which always does.
    #[arg(long)]
    pub check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>()
                .map_err(|_| anyhow::anyhow!("`{p}` is not a valid {what}"))
        })
        .collect()
}

impl GpuBenchArgs {
    /// The benchmark configuration, validated.
    pub fn config(&self) -> Result<GpuBenchConfig> {
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut c = if self.quick {
            GpuBenchConfig::quick(dir)
        } else {
            GpuBenchConfig::full(dir)
        };
        c.device = self.device;
        if let Some(v) = self.blocks {
            c.transfer_blocks = v;
            c.scatter_frames = c.scatter_frames.max(v.saturating_mul(4));
        }
        if let Some(s) = &self.block_sizes {
            c.block_sizes = list(s, "block size")?;
        }
        if let Some(v) = self.scatter_frames {
            c.scatter_frames = v;
        }
        if let Some(v) = self.reps {
            c.reps = v;
        }
        if let Some(v) = self.latency_samples {
            c.latency_samples = v;
        }
        if let Some(v) = self.context_tokens {
            c.context_tokens = v;
        }
        if let Some(v) = self.decode_tokens {
            c.decode_tokens = v;
        }
        if let Some(s) = &self.resident {
            c.resident_fractions = list(s, "resident fraction")?;
        }
        if let Some(v) = self.weights_mib {
            c.weights_bytes_per_layer = v.saturating_mul(1 << 20);
        }
        if let Some(v) = self.disk_blocks {
            c.disk_blocks = v;
        }
        c.validate().map_err(anyhow::Error::msg)?;
        Ok(c)
    }
}

/// `mcos bench gpu`.
pub fn run(a: GpuBenchArgs) -> Result<()> {
    gpu(a)
}

#[cfg(not(feature = "cuda"))]
fn gpu(a: GpuBenchArgs) -> Result<()> {
    a.config()?;
    bail!("{NO_CUDA_FEATURE}")
}

#[cfg(feature = "cuda")]
fn gpu(a: GpuBenchArgs) -> Result<()> {
    use anyhow::Context;
    use mcos_tiers::cuda;
    let cfg = a.config()?;
    if !cuda::driver_present() {
        bail!("{}", cuda::NO_DRIVER);
    }
    let quiet = a.format == Format::Json;
    let mut report = mcos_bench::gpu::bench::run(&cfg, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    if !quiet {
        eprintln!("node with an HBM tier...");
    }
    report["node"] = node_check(&cfg)?;
    report["checks_passed"] =
        serde_json::Value::Bool(mcos_bench::gpu::bench::all_checks_pass(&report));
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &a.out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    match a.format {
        Format::Json => println!("{text}"),
        Format::Table => print!("{}", summary(&report)),
    }
    if !mcos_bench::gpu::bench::all_checks_pass(&report) {
        bail!("a verification failed (look for \"verified\": false in the report)");
    }
    if a.check {
        let mut missed = Vec::new();
        missed_targets(&report, "", &mut missed);
        if !missed.is_empty() {
            bail!("--check: targets missed: {}", missed.join(", "));
        }
    }
    Ok(())
}

/// Paths of every `..._met: false` in a report.
#[cfg(feature = "cuda")]
fn missed_targets(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if (k == "met" || k.ends_with("_met")) && x == &serde_json::Value::Bool(false) {
                    out.push(path);
                } else {
                    missed_targets(x, &path, out);
                }
            }
        }
        serde_json::Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                missed_targets(x, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A node with HBM over pinned host memory over disk, through the Node API: every block put is
/// read back byte for byte, after the GPU engine moved it down and up between tiers.
#[cfg(feature = "cuda")]
fn node_check(cfg: &GpuBenchConfig) -> Result<serde_json::Value> {
    use mcos_core::{BlockKey, Namespace, TierKind};
    use mcos_node::{GetOutcome, Node, NodeConfig, TierConfig};
    let block = 64u32 << 10;
    let tier = |kind, capacity_blocks, path| TierConfig {
        kind,
        capacity_blocks,
        path,
        bandwidth_bytes_per_s: None,
        latency_ns: None,
        recreate: false,
        persist: false,
        sync: true,
    };
    let dir = cfg
        .disk_dir
        .join(format!("mcos-gpu-node-{}", std::process::id()));
    let mut nc = NodeConfig::dram_and_disk(block, 1, 1, &dir);
    nc.gpu_device = cfg.device;
    nc.tiers = vec![
        tier(TierKind::Hbm, 256, None),
        tier(TierKind::HostPinned, 512, None),
        tier(TierKind::Disk, 4096, Some(dir.join("node-disk.bin"))),
    ];
    let node = Node::open(nc)?;
    let ns = Namespace::for_model("mcos-bench-gpu-node");
    let n = 2000u64;
    let body = |i: u64| -> Vec<u8> {
        (0..block as usize)
            .map(|j| (i as u8).wrapping_mul(29) ^ (j as u8))
            .collect()
    };
    let t = std::time::Instant::now();
    for i in 0..n {
        node.put(BlockKey::from_trace_id(&ns, i), &body(i))?;
    }
    node.quiesce()?;
    let mut out = Vec::new();
    let (mut same, mut hits) = (0u64, [0u64; 3]);
    for i in 0..n {
        if let GetOutcome::Hit(tier) = node.get(BlockKey::from_trace_id(&ns, i), &mut out)? {
            hits[tier.index().min(2)] += 1;
            same += u64::from(out == body(i));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let stats = node.stats();
    node.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    let stored = hits.iter().sum::<u64>();
    Ok(serde_json::json!({
        "tiers": "hbm 256 x 64 KiB, host-pinned 512, disk 4096",
        "blocks_put": n,
        "hits_per_tier": {"hbm": hits[0], "pinned": hits[1], "disk": hits[2]},
        "disk_to_hbm_path": stats.gpu_disk_path,
        "corrupt_blocks": stats.counters.corrupt_blocks,
        "seconds": secs,
        "verified": stored == n && same == n && stats.counters.corrupt_blocks == 0,
    }))
}

/// A few lines of the report's headline figures.
#[cfg(feature = "cuda")]
fn summary(r: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "device: {}  kernels: {}",
        r["device"]["name"], r["kernels"]
    );
    for t in r["scattered"].as_array().into_iter().flatten() {
        for dir in ["h2d", "d2h"] {
            let d = &t[dir];
            let _ = writeln!(
                s,
                "{:>6} B {dir}: per-block {:6.1} GB/s | copy-engine batch {:6.1} GB/s | gather kernel {:6.1} GB/s = {:3.0} % of pinned peak",
                t["block_bytes"],
                d["per_block_copy"]["gb_per_s"].as_f64().unwrap_or(0.0),
                d["copy_engine_batch"]["gb_per_s"].as_f64().unwrap_or(0.0),
                d["gather_kernel"]["gb_per_s"].as_f64().unwrap_or(0.0),
                100.0
                    * d["gather_kernel"]["fraction_of_pinned_peak"]
                        .as_f64()
                        .unwrap_or(0.0),
            );
        }
    }
    let l = &r["decision_to_first_byte"];
    let _ = writeln!(
        s,
        "decision to first byte: p50 {:.2} us, p99 {:.2} us",
        l["p50_us"].as_f64().unwrap_or(0.0),
        l["p99_us"].as_f64().unwrap_or(0.0)
    );
    for d in r["disk_to_hbm"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "disk -> HBM via {}: {:.1} GB/s",
            d["path"],
            d["gb_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    let n = &r["node"];
    let _ = writeln!(
        s,
        "node (hbm/pinned/disk): hits {} verified {}",
        n["hits_per_tier"], n["verified"]
    );
    for row in r["decode"]["sweep"].as_array().into_iter().flatten() {
        for m in row["modes"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "decode, {:5.1} % resident, {:<26} {:8.1} tokens/s",
                100.0 * row["resident_fraction"].as_f64().unwrap_or(0.0),
                m["mode"].as_str().unwrap_or(""),
                m["tokens_per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchTarget;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        b: BenchTarget,
    }

    fn parse(args: &[&str]) -> Result<GpuBenchConfig> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?;
        let BenchTarget::Gpu(a) = t.b else {
            anyhow::bail!("not the gpu target")
        };
        a.config()
    }

    #[test]
    fn options_map_onto_the_config() {
        let c = parse(&["gpu"]).unwrap();
        assert_eq!(c, GpuBenchConfig::full(std::env::temp_dir()));
        let c = parse(&[
            "gpu",
            "--quick",
            "--blocks",
            "512",
            "--block-sizes",
            "4096, 65536",
            "--resident",
            "0.9,0.5",
            "--weights-mib",
            "416",
            "--context-tokens",
            "4096",
            "--dir",
            "/x",
        ])
        .unwrap();
        assert_eq!(c.transfer_blocks, 512);
        assert_eq!(c.scatter_frames, 2048);
        assert_eq!(c.block_sizes, vec![4096, 65536]);
        assert_eq!(c.resident_fractions, vec![0.9, 0.5]);
        assert_eq!(c.weights_bytes_per_layer, 416 << 20);
        assert_eq!(c.context_tokens, 4096);
        assert_eq!(c.disk_dir, PathBuf::from("/x"));
        assert_eq!(c.reps, GpuBenchConfig::quick(PathBuf::new()).reps);
    }

    #[test]
    fn bad_options_are_refused_with_their_name() {
        let e = parse(&["gpu", "--blocks", "0"]).unwrap_err().to_string();
        assert!(e.contains("--blocks"), "{e}");
        let e = parse(&["gpu", "--resident", "1.0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("resident fraction"), "{e}");
        let e = parse(&["gpu", "--block-sizes", "16k"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("16k"), "{e}");
    }
}
