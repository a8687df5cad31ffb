//! Replays over a tier hierarchy (for example HBM, host DRAM and disk) with time accounting.
//!
//! A hit in tier `t` saves the prefill time of the block's tokens minus the time to bring the
//! block up to tier 0 (`mcos_brain::Placement`: link bandwidth and latency, hop by hop); when
//! fetching is slower than recomputing, the engine recomputes and the hit saves nothing (it is
//! counted apart). KV bytes per token come from a model preset (default Llama-3-8B, 128 KiB
//! per token in bf16). Baselines in the same run: LRU over the same tiers (LMCache's design:
//! LRU per tier, an evicted block demoted to the next tier, exclusive) and every policy over
//! tier 0 alone.

use serde::Serialize;

use mcos_brain::Placement;

use crate::policy::CachePolicy;
use crate::simulate::SimError;
use crate::trace::Request;

/// A model's KV-cache footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPreset {
    /// Name accepted by `--model`.
    pub name: &'static str,
    /// KV bytes per token (K and V, every layer, bf16).
    pub kv_bytes_per_token: u64,
}

/// Presets (DESIGN.md: Llama-3-8B 128 KiB, Llama-3-70B 320 KiB, Qwen2.5-7B 56 KiB per token).
pub const MODEL_PRESETS: [ModelPreset; 3] = [
    ModelPreset {
        name: "llama-3-8b",
        kv_bytes_per_token: 128 << 10,
    },
    ModelPreset {
        name: "llama-3-70b",
        kv_bytes_per_token: 320 << 10,
    },
    ModelPreset {
        name: "qwen2.5-7b",
        kv_bytes_per_token: 56 << 10,
    },
];

/// The preset called `name`.
pub fn model_preset(name: &str) -> Result<ModelPreset, SimError> {
    MODEL_PRESETS
        .iter()
        .find(|m| m.name == name)
        .copied()
        .ok_or_else(|| {
            SimError::InvalidCapacity(format!(
                "unknown model `{name}`; presets: {}",
                MODEL_PRESETS.map(|m| m.name).join(", ")
            ))
        })
}

/// What a tiered replay measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TieredResult {
    /// Block accesses.
    pub block_accesses: u64,
    /// Hits by the tier they were found in.
    pub hits_per_tier: Vec<u64>,
    /// Hits whose fetch would have been slower than recomputing (recomputed instead).
    pub hits_recomputed: u64,
    /// Prefill seconds of the hits' tokens: what they would save were every one served from
    /// tier 0 (for MIN at the total capacity, an upper bound on any policy's saving).
    pub hits_recompute_s: f64,
    /// Prefill seconds of every prompt token (no cache).
    pub prefill_all_s: f64,
    /// Prefill seconds the cache saved, net of fetch time.
    pub saved_s: f64,
    /// Served replays with staging: blocks moved up for queued requests.
    pub staged: u64,
    /// Of those, found in tier 0 before their move had landed (counted at their old tier).
    pub staged_late: u64,
}

/// Replays `requests` in order against `policy` (which reports the tier of each hit) and
/// accounts time with `placement`.
pub fn replay_tiered(
    requests: &[Request],
    policy: &mut dyn CachePolicy,
    block_tokens: u32,
    tiers: usize,
    placement: &Placement,
) -> TieredResult {
    let mut r = TieredResult {
        block_accesses: 0,
        hits_per_tier: vec![0; tiers.max(1)],
        hits_recomputed: 0,
        hits_recompute_s: 0.0,
        prefill_all_s: 0.0,
        saved_s: 0.0,
        staged: 0,
        staged_late: 0,
    };
    for req in requests {
        for (i, &id) in req.hash_ids.iter().enumerate() {
            let tokens = req.tokens_in_block(i, block_tokens);
            r.prefill_all_s += placement.recompute_seconds(tokens);
            let now = r.block_accesses;
            r.block_accesses += 1;
            if policy.access(id, now) {
                let t = policy.hit_tier().min(r.hits_per_tier.len() - 1);
                r.hits_per_tier[t] += 1;
                r.hits_recompute_s += placement.recompute_seconds(tokens);
                let saved = placement.saved_seconds(t, tokens);
                if saved == 0.0 {
                    r.hits_recomputed += 1;
                }
                r.saved_s += saved;
            }
        }
        policy.request_done(&req.hash_ids);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FastPathPolicy;
    use mcos_brain::CostModel;
    use mcos_core::{Link, PolicyTable, TierId, TierKind, TierSpec, Topology};

    #[test]
    fn hits_are_credited_by_tier_net_of_fetch() {
        let topo = Topology {
            tiers: vec![
                TierSpec {
                    kind: TierKind::Hbm,
                    capacity_blocks: 1,
                    block_bytes: 1,
                },
                TierSpec {
                    kind: TierKind::HostDram,
                    capacity_blocks: 4,
                    block_bytes: 1,
                },
            ],
            links: vec![Link {
                from: TierId(1),
                to: TierId(0),
                bandwidth_bytes_per_s: 1_000_000,
                latency_ns: 0,
            }],
        };
        // 100 tokens x 1 KiB = 102,400 bytes: 0.1024 s to fetch, 1 s to recompute.
        let p = Placement::new(
            &topo,
            CostModel {
                prefill_tokens_per_s: 100.0,
                kv_bytes_per_token: 1024,
                block_tokens: 100,
            },
        );
        let reqs = vec![
            Request {
                timestamp_ms: 0,
                input_length: 200,
                output_length: 1,
                hash_ids: vec![1, 2],
            },
            Request {
                timestamp_ms: 1,
                input_length: 200,
                output_length: 1,
                hash_ids: vec![1, 2],
            },
        ];
        let mut pol = FastPathPolicy::new("lru", &[1, 4], PolicyTable::builtin(2));
        let r = replay_tiered(&reqs, &mut pol, 100, 2, &p);
        assert_eq!(r.block_accesses, 4);
        // Block 1 was demoted to DRAM by block 2; its hit there makes room in HBM by
        // demoting block 2, which is then found in DRAM too.
        assert_eq!(r.hits_per_tier, vec![0, 2]);
        assert!((r.prefill_all_s - 4.0).abs() < 1e-9);
        assert!((r.saved_s - 2.0 * (1.0 - 0.1024)).abs() < 1e-9, "{r:?}");
        // A hit in HBM saves the whole recompute.
        assert!((p.saved_seconds(0, 100) - 1.0).abs() < 1e-12);
        assert!(model_preset("llama-3-8b").is_ok() && model_preset("gpt-9").is_err());
    }
}
