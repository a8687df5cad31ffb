//! Placement across tiers by time saved.
//!
//! A block kept in tier `t` saves, when it is read again, the prefill time of its tokens minus
//! the time to bring it up to tier 0 (tier 0 itself costs nothing: the engine reads it in
//! place). The brain keeps a block only where that is positive: the class entries' floor tier
//! is the slowest tier whose fetch beats recompute, so an evicted block is demoted while
//! keeping it saves time and dropped below that; on a lookup the same comparison decides fetch
//! versus recompute. Fetch time over a link is `bytes / bandwidth + latency`, hop by hop down
//! the tiers when there is no direct link; bandwidths start from the topology's links and
//! follow measured transfers (an exponentially weighted mean, so a congested or degraded link
//! moves the floor).

use mcos_core::{TierId, Topology};

/// What a block costs to recompute and to move.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct CostModel {
    /// Prefill throughput of the engine that would recompute a block, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// KV-cache bytes per token of the model (Llama-3-8B in bf16: 128 KiB).
    pub kv_bytes_per_token: u64,
    /// Tokens per block.
    pub block_tokens: u32,
}

/// Per-tier fetch times and the recompute time of one block.
#[derive(Clone, Debug)]
pub struct Placement {
    cost: CostModel,
    /// Per hop `t -> t - 1` (index t, t >= 1): bytes per second and latency in seconds.
    hops: Vec<(f64, f64)>,
    /// Direct links `t -> 0`, when the topology has them.
    direct: Vec<Option<(f64, f64)>>,
    /// Weight of a new measurement in the bandwidth means.
    alpha: f64,
}

impl Placement {
    /// Fetch costs from `topology`'s links. A hop without a link is taken as free (the
    /// built-in behaviour: always demote), so an unknown link never drops a block.
    pub fn new(topology: &Topology, cost: CostModel) -> Placement {
        let n = topology.tiers.len();
        let link = |a: usize, b: usize| {
            topology
                .link(TierId(a as u8), TierId(b as u8))
                .map(|l| (l.bandwidth_bytes_per_s as f64, l.latency_ns as f64 * 1e-9))
        };
        Placement {
            cost,
            hops: (0..n)
                .map(|t| {
                    if t == 0 {
                        (f64::INFINITY, 0.0)
                    } else {
                        link(t, t - 1).unwrap_or((f64::INFINITY, 0.0))
                    }
                })
                .collect(),
            direct: (0..n)
                .map(|t| if t == 0 { None } else { link(t, 0) })
                .collect(),
            alpha: 0.2,
        }
    }

    /// The cost model.
    pub fn cost(&self) -> CostModel {
        self.cost
    }

    /// Bytes of one block.
    pub fn block_bytes(&self) -> f64 {
        self.cost.kv_bytes_per_token as f64 * f64::from(self.cost.block_tokens)
    }

    /// Seconds to prefill `tokens` tokens.
    pub fn recompute_seconds(&self, tokens: u32) -> f64 {
        f64::from(tokens) / self.cost.prefill_tokens_per_s.max(1e-9)
    }

    /// Seconds to bring a block of `tokens` tokens from `tier` up to tier 0.
    pub fn fetch_seconds(&self, tier: usize, tokens: u32) -> f64 {
        if tier == 0 || tier >= self.hops.len() {
            return 0.0;
        }
        let bytes = self.cost.kv_bytes_per_token as f64 * f64::from(tokens);
        let over = |(bw, lat): (f64, f64)| bytes / bw + lat;
        match self.direct[tier] {
            Some(l) => over(l),
            None => (1..=tier).map(|t| over(self.hops[t])).sum(),
        }
    }

    /// Seconds a hit in `tier` saves over recomputing `tokens` tokens (0 when recomputing is
    /// faster: the engine recomputes instead).
    pub fn saved_seconds(&self, tier: usize, tokens: u32) -> f64 {
        (self.recompute_seconds(tokens) - self.fetch_seconds(tier, tokens)).max(0.0)
    }

    /// Whether a block in `tier` is worth fetching rather than recomputing.
    pub fn fetch_beats_recompute(&self, tier: usize) -> bool {
        let t = self.cost.block_tokens;
        self.fetch_seconds(tier, t) < self.recompute_seconds(t)
    }

    /// The slowest tier worth keeping a block in (tier 0 always is).
    pub fn floor_tier(&self) -> TierId {
        let deepest = (1..self.hops.len())
            .take_while(|&t| self.fetch_beats_recompute(t))
            .last()
            .unwrap_or(0);
        TierId(deepest as u8)
    }

    /// A measured transfer of `bytes` from `from` to the next faster tier `from - 1` (or to
    /// tier 0 over a direct link) that took `seconds`.
    pub fn observe_transfer(&mut self, from: usize, to: usize, bytes: u64, seconds: f64) {
        if seconds <= 0.0 || bytes == 0 || from >= self.hops.len() || from == 0 {
            return;
        }
        let bw = bytes as f64 / seconds;
        let mix = |old: f64| {
            if old.is_finite() {
                old * (1.0 - self.alpha) + bw * self.alpha
            } else {
                bw
            }
        };
        if to == 0 && self.direct[from].is_some() {
            if let Some((b, _)) = self.direct[from].as_mut() {
                *b = mix(*b);
            }
        } else if to + 1 == from {
            let b = mix(self.hops[from].0);
            self.hops[from].0 = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcos_core::{Link, TierKind, TierSpec};

    fn three_tiers(disk_bytes_per_s: u64) -> Topology {
        let tier = |kind, n| TierSpec {
            kind,
            capacity_blocks: n,
            block_bytes: 4096,
        };
        Topology {
            tiers: vec![
                tier(TierKind::Hbm, 10),
                tier(TierKind::HostDram, 50),
                tier(TierKind::Disk, 500),
            ],
            links: vec![
                Link {
                    from: TierId(1),
                    to: TierId(0),
                    bandwidth_bytes_per_s: 50_000_000_000,
                    latency_ns: 10_000,
                },
                Link {
                    from: TierId(2),
                    to: TierId(1),
                    bandwidth_bytes_per_s: disk_bytes_per_s,
                    latency_ns: 100_000,
                },
            ],
        }
    }

    const LLAMA3_8B: CostModel = CostModel {
        prefill_tokens_per_s: 20_000.0,
        kv_bytes_per_token: 128 << 10,
        block_tokens: 512,
    };

    #[test]
    fn fast_disk_is_worth_keeping_slow_disk_is_not() {
        // 512 tokens: 25.6 ms to recompute; 64 MiB: 1.3 ms from DRAM, 13 ms from a 5 GB/s
        // disk (+ the DRAM hop), 67 ms from a 1 GB/s one.
        let fast = Placement::new(&three_tiers(5_000_000_000), LLAMA3_8B);
        assert!((fast.recompute_seconds(512) - 0.0256).abs() < 1e-9);
        assert!(fast.fetch_seconds(1, 512) < 0.002);
        assert_eq!(fast.floor_tier(), TierId(2));
        assert!(fast.saved_seconds(2, 512) > 0.01);
        let slow = Placement::new(&three_tiers(1_000_000_000), LLAMA3_8B);
        assert_eq!(slow.floor_tier(), TierId(1));
        assert_eq!(slow.saved_seconds(2, 512), 0.0, "recompute instead");
        assert_eq!(slow.saved_seconds(0, 512), slow.recompute_seconds(512));
    }

    #[test]
    fn measured_bandwidth_moves_the_floor() {
        let mut p = Placement::new(&three_tiers(5_000_000_000), LLAMA3_8B);
        assert_eq!(p.floor_tier(), TierId(2));
        // The disk turns out to deliver 0.5 GB/s.
        for _ in 0..50 {
            p.observe_transfer(2, 1, 64 << 20, (64 << 20) as f64 / 0.5e9);
        }
        assert_eq!(p.floor_tier(), TierId(1));
    }
}
