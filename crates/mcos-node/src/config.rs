//! Node configuration: the tiers, their sizes and the knobs of the data plane. Read from TOML
//! (unknown fields are errors) and checked against `mcos_core::limits` before anything starts.

use crate::error::NodeError;
use mcos_core::limits;
use mcos_core::{Link, TierId, TierKind, TierSpec, Topology};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How the disk engine does I/O.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskIo {
    /// io_uring where the kernel allows it, else pread/pwrite.
    #[default]
    Auto,
    /// pread/pwrite only.
    Psync,
}

/// One tier of the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// `dram` or `disk`.
    pub kind: TierKind,
    /// Frames (blocks) the tier holds.
    pub capacity_blocks: u32,
    /// File backing a disk tier: created and preallocated at open, or an MCOS tier file of the
    /// same geometry reused. Any other existing file is refused untouched.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Disk tier: overwrite an MCOS tier file of another geometry or format at `path` instead of
    /// refusing it (its blocks are lost). Never applies to files that are not tier files.
    #[serde(default)]
    pub recreate: bool,
    /// Disk tier: the blocks outlive the process (warm restart). The file is never removed at
    /// close, the directory is rebuilt from the block headers at open, blocks in it are read
    /// in place (never moved out), and durable puts land in it.
    #[serde(default)]
    pub persist: bool,
    /// With `persist`: a durable put is acknowledged only after `fdatasync` (survives a power
    /// cut); `false` acknowledges after the write reached the kernel (survives a process crash
    /// or SIGKILL, not a power cut).
    #[serde(default = "yes")]
    pub sync: bool,
    /// Link bandwidth from the tier above, bytes/s (for the brain's cost model).
    #[serde(default)]
    pub bandwidth_bytes_per_s: Option<u64>,
    /// Latency of one transfer from the tier above, ns.
    #[serde(default)]
    pub latency_ns: Option<u64>,
}

/// A node's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Payload bytes per block (every tier stores blocks of this size).
    pub block_bytes: u32,
    /// Fast-path shards (each owns a slice of every tier). 1 keeps exact single-order
    /// semantics; more spread callers over independent shards.
    #[serde(default = "one")]
    pub shards: usize,
    /// Tiers, fastest first.
    pub tiers: Vec<TierConfig>,
    /// Share of each tier kept free by demoting early, so inserts rarely wait (0 to 0.5).
    #[serde(default = "default_watermark")]
    pub free_watermark: f64,
    /// Disk I/O backend.
    #[serde(default)]
    pub disk_io: DiskIo,
    /// Telemetry samples keys whose hash has this many low zero bits (0: all events). With
    /// the brain on, the shards sample at the rate the brain's shadows model instead.
    #[serde(default = "default_telemetry_shift")]
    pub telemetry_shift: u8,
    /// Remove disk tier files when the node closes (only files the node created).
    #[serde(default = "yes")]
    pub remove_files_on_close: bool,
    /// CUDA device of the `hbm` tier (feature `cuda`).
    #[serde(default)]
    pub gpu_device: i32,
    /// Read disk -> HBM with GPUDirect Storage (cuFile) where the system supports it; else, or
    /// when false, through a pinned bounce buffer.
    #[serde(default = "yes")]
    pub gpu_direct_storage: bool,
    /// The brain: off by default (the node runs the built-in table or what is installed).
    #[serde(default)]
    pub brain: BrainSettings,
    /// Publish KV events (BlockStored / BlockRemoved) for `Node::kv_events` readers. Costs a
    /// key map entry per resident block and a short lock per put or removal; off by default.
    #[serde(default)]
    pub kv_events: bool,
}

/// The `[brain]` section: whether the node runs its brain thread, and what it needs to weigh
/// fetching against recomputing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrainSettings {
    /// Run the brain on its own thread: it drains every shard's telemetry ring and installs
    /// the tables it learns.
    #[serde(default)]
    pub enabled: bool,
    /// Ticks (1 ms each) a brain-installed table stays in force without a refresh; after that
    /// the shards fall back to the built-in table. The brain refreshes at a quarter of it.
    #[serde(default = "default_brain_ttl")]
    pub table_ttl_ticks: u32,
    /// Placement by time saved: the engine's prefill rate, tokens per second.
    #[serde(default)]
    pub prefill_tokens_per_s: Option<f64>,
    /// Placement by time saved: KV bytes per token of the model.
    #[serde(default)]
    pub kv_bytes_per_token: Option<u64>,
    /// Placement by time saved: tokens per block.
    #[serde(default)]
    pub block_tokens: Option<u32>,
    /// Replacement order of the brain's tables: `list` (list LRU, the default), `aged` (the
    /// aged order the hardware pipeline executes, every table) or `auto` (the aged order where
    /// the brain's aged shadow scores within 0.005 of the list's and no queued intents rank
    /// victims; `mcos_brain::ReplacementChoice`).
    #[serde(default)]
    pub replacement: BrainReplacement,
}

/// `[brain] replacement`: see `mcos_brain::ReplacementChoice`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrainReplacement {
    /// List LRU (segmented LRU over intrusive lists).
    #[default]
    List,
    /// The aged order (7-bit age stamps, a bounded victim scan) in every table.
    Aged,
    /// Chosen by the brain from its shadows.
    Auto,
}

impl From<BrainReplacement> for mcos_brain::ReplacementChoice {
    fn from(r: BrainReplacement) -> mcos_brain::ReplacementChoice {
        match r {
            BrainReplacement::List => mcos_brain::ReplacementChoice::List,
            BrainReplacement::Aged => mcos_brain::ReplacementChoice::Aged,
            BrainReplacement::Auto => mcos_brain::ReplacementChoice::Auto,
        }
    }
}

impl Default for BrainSettings {
    fn default() -> BrainSettings {
        BrainSettings {
            enabled: false,
            table_ttl_ticks: default_brain_ttl(),
            prefill_tokens_per_s: None,
            kv_bytes_per_token: None,
            block_tokens: None,
            replacement: BrainReplacement::List,
        }
    }
}

fn default_brain_ttl() -> u32 {
    4000
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_watermark() -> f64 {
    0.02
}
fn default_telemetry_shift() -> u8 {
    4
}

impl NodeConfig {
    /// A DRAM tier over a disk tier whose file lives in `dir`.
    pub fn dram_and_disk(
        block_bytes: u32,
        dram_blocks: u32,
        disk_blocks: u32,
        dir: &std::path::Path,
    ) -> NodeConfig {
        NodeConfig {
            block_bytes,
            shards: 1,
            tiers: vec![
                TierConfig {
                    kind: TierKind::HostDram,
                    capacity_blocks: dram_blocks,
                    path: None,
                    bandwidth_bytes_per_s: None,
                    latency_ns: None,
                    recreate: false,
                    persist: false,
                    sync: true,
                },
                TierConfig {
                    kind: TierKind::Disk,
                    capacity_blocks: disk_blocks,
                    path: Some(dir.join("mcos-disk-tier.bin")),
                    bandwidth_bytes_per_s: None,
                    latency_ns: None,
                    recreate: false,
                    persist: false,
                    sync: true,
                },
            ],
            free_watermark: default_watermark(),
            disk_io: DiskIo::Auto,
            telemetry_shift: default_telemetry_shift(),
            remove_files_on_close: true,
            gpu_device: 0,
            gpu_direct_storage: true,
            brain: BrainSettings::default(),
            kv_events: false,
        }
    }

    /// Parses TOML; unknown keys and bad values are errors that name them.
    pub fn from_toml(text: &str) -> Result<NodeConfig, NodeError> {
        let cfg: NodeConfig = toml::from_str(text)
            .map_err(|e| NodeError::Config(format!("cannot parse node config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the configuration against the limits.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |m: String| Err(NodeError::Config(m));
        if self.block_bytes == 0 || self.block_bytes as usize > limits::MAX_BLOCK_BYTES {
            return bad(format!(
                "block_bytes {} is outside 1..={}",
                self.block_bytes,
                limits::MAX_BLOCK_BYTES
            ));
        }
        if self.shards == 0 || self.shards > limits::MAX_SHARDS {
            return bad(format!(
                "shards {} is outside 1..={}",
                self.shards,
                limits::MAX_SHARDS
            ));
        }
        if !(0.0..=0.5).contains(&self.free_watermark) {
            return bad(format!(
                "free_watermark {} is outside 0..=0.5",
                self.free_watermark
            ));
        }
        if self.brain.enabled
            && (self.brain.table_ttl_ticks < 8
                || self.brain.table_ttl_ticks > limits::POLICY_TTL_TICKS_MAX)
        {
            return bad(format!(
                "brain.table_ttl_ticks {} is outside 8..={}",
                self.brain.table_ttl_ticks,
                limits::POLICY_TTL_TICKS_MAX
            ));
        }
        if self.telemetry_shift > 20 {
            return bad(format!(
                "telemetry_shift {} is larger than 20",
                self.telemetry_shift
            ));
        }
        let hbm_tiers = self
            .tiers
            .iter()
            .filter(|t| t.kind == TierKind::Hbm)
            .count();
        for (i, t) in self.tiers.iter().enumerate() {
            match t.kind {
                TierKind::Hbm if cfg!(feature = "cuda") => {
                    if hbm_tiers > 1 || i != 0 {
                        return bad(format!(
                            "tier {i}: a node has at most one hbm tier, and it comes first \
                             (tiers are listed fastest first)"
                        ));
                    }
                }
                TierKind::HostDram if hbm_tiers > 0 => {
                    return bad(format!(
                        "tier {i} is `host-dram`, but next to an hbm tier host memory must be \
                         `host-pinned` so the GPU can reach it"
                    ));
                }
                TierKind::HostDram | TierKind::HostPinned if t.persist => {
                    return bad(format!(
                        "tier {i}: `persist` applies to a disk tier only (host memory does not outlive the process)"
                    ));
                }
                TierKind::HostDram | TierKind::HostPinned => {}
                TierKind::Disk => {
                    if t.persist
                        && (i + 1 != self.tiers.len()
                            || self.tiers.iter().filter(|t| t.persist).count() > 1)
                    {
                        return bad(format!(
                            "tier {i}: `persist` applies to one disk tier, the last (slowest) one"
                        ));
                    }
                    if t.path.is_none() {
                        return bad(format!(
                            "tier {i} is a disk tier: give it a `path` for its file"
                        ));
                    }
                }
                other => {
                    return bad(format!(
                        "tier {i}: kind `{other}` is not available in this build (dram and disk are; \
                         GPU tiers come with the `cuda` feature)"
                    ));
                }
            }
            if t.capacity_blocks == 0 {
                return bad(format!(
                    "tier {i} has capacity 0: give it at least one block"
                ));
            }
            if t.capacity_blocks < self.shards as u32 {
                return bad(format!(
                    "tier {i} has {} blocks but {} shards: every shard needs at least one frame of every tier",
                    t.capacity_blocks, self.shards
                ));
            }
        }
        self.topology()
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))
    }

    /// The topology the configuration describes.
    pub fn topology(&self) -> Topology {
        let tiers = self
            .tiers
            .iter()
            .map(|t| TierSpec {
                kind: t.kind,
                capacity_blocks: t.capacity_blocks,
                block_bytes: self.block_bytes,
            })
            .collect();
        let links = self
            .tiers
            .iter()
            .enumerate()
            .skip(1)
            .flat_map(|(i, t)| {
                let (bw, lat) = default_link(t.kind);
                let bw = t.bandwidth_bytes_per_s.unwrap_or(bw);
                let lat = t.latency_ns.unwrap_or(lat);
                let (up, down) = (TierId(i as u8 - 1), TierId(i as u8));
                [
                    Link {
                        from: up,
                        to: down,
                        bandwidth_bytes_per_s: bw,
                        latency_ns: lat,
                    },
                    Link {
                        from: down,
                        to: up,
                        bandwidth_bytes_per_s: bw,
                        latency_ns: lat,
                    },
                ]
            })
            .collect();
        Topology { tiers, links }
    }
}

/// Nominal link figures when the config gives none (order of magnitude, for cost models).
fn default_link(kind: TierKind) -> (u64, u64) {
    match kind {
        TierKind::Disk => (2_000_000_000, 100_000),
        TierKind::Remote => (12_500_000_000, 5_000),
        _ => (20_000_000_000, 1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_and_rejects_unknown_fields() {
        let text = r#"
            block_bytes = 4096
            [[tiers]]
            kind = "host-dram"
            capacity_blocks = 16
            [[tiers]]
            kind = "disk"
            capacity_blocks = 64
            path = "/tmp/x.bin"
        "#;
        let cfg = NodeConfig::from_toml(text).unwrap();
        assert_eq!(cfg.tiers.len(), 2);
        assert_eq!(cfg.shards, 1);
        assert_eq!(cfg.topology().links.len(), 2);
        let err = NodeConfig::from_toml(&format!("{text}\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn rejects_bad_values_with_a_reason() {
        let dir = std::env::temp_dir();
        let mut cfg = NodeConfig::dram_and_disk(4096, 8, 8, &dir);
        cfg.tiers[1].path = None;
        assert!(cfg.validate().unwrap_err().to_string().contains("path"));
        let mut cfg = NodeConfig::dram_and_disk(4096, 0, 8, &dir);
        assert!(cfg.validate().is_err());
        cfg.tiers[0].capacity_blocks = 8;
        cfg.free_watermark = 0.9;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("free_watermark")
        );
        let mut cfg = NodeConfig::dram_and_disk(4096, 8, 8, &dir);
        cfg.tiers[0].kind = TierKind::Hbm;
        if cfg!(feature = "cuda") {
            // An hbm tier needs pinned host memory beside it, and comes first.
            cfg.tiers.insert(
                1,
                TierConfig {
                    kind: TierKind::HostDram,
                    capacity_blocks: 8,
                    path: None,
                    bandwidth_bytes_per_s: None,
                    latency_ns: None,
                    recreate: false,
                    persist: false,
                    sync: true,
                },
            );
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("host-pinned"), "{e}");
            cfg.tiers[1].kind = TierKind::HostPinned;
            cfg.validate().unwrap();
            cfg.tiers.swap(0, 1);
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("comes first"), "{e}");
        } else {
            assert!(cfg.validate().unwrap_err().to_string().contains("cuda"));
        }
        let mut cfg = NodeConfig::dram_and_disk(4096, 8, 8, &dir);
        cfg.brain.enabled = true;
        cfg.brain.table_ttl_ticks = 2;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("table_ttl_ticks")
        );
    }

    #[test]
    fn brain_section_parses_with_defaults() {
        let text = r#"
            block_bytes = 4096
            [[tiers]]
            kind = "host-dram"
            capacity_blocks = 16
            [brain]
            enabled = true
            prefill_tokens_per_s = 20000.0
            kv_bytes_per_token = 131072
            block_tokens = 16
        "#;
        let cfg = NodeConfig::from_toml(text).unwrap();
        assert!(cfg.brain.enabled);
        assert_eq!(cfg.brain.table_ttl_ticks, 4000);
        assert_eq!(cfg.brain.kv_bytes_per_token, Some(131_072));
        let cfg = NodeConfig::from_toml(
            "block_bytes = 1\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 4\n",
        )
        .unwrap();
        assert!(!cfg.brain.enabled, "off unless asked for");
        assert_eq!(
            cfg.brain.replacement,
            BrainReplacement::List,
            "list by default"
        );
        assert!(NodeConfig::from_toml(&format!("{text}\nbogus = 1")).is_err());
        let auto = NodeConfig::from_toml(&format!("{text}\nreplacement = \"auto\"")).unwrap();
        assert_eq!(auto.brain.replacement, BrainReplacement::Auto);
        let e = NodeConfig::from_toml(&format!("{text}\nreplacement = \"clock\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("list") && e.contains("auto"), "{e}");
    }
}
