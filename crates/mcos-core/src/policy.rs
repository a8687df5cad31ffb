//! The policy table: the interface between the brain (which writes it) and the fast path (which
//! executes it on every event).
//!
//! One entry per priority class, each packed into 128 bits so that the same table can live in
//! SRAM next to a hardware pipeline (layout below; hardware-anchors.md section 6.1 is the model),
//! plus a few table-wide fields. A table is validated before it is installed; the fast path
//! never sees an invalid one.
//!
//! Class entry layout (bit ranges inclusive, little end first):
//!
//! | bits      | field             |
//! |-----------|-------------------|
//! | 2:0       | preferred_tier    |
//! | 5:3       | floor_tier        |
//! | 9:6       | admit_threshold   |
//! | 13:10     | evict_priority    |
//! | 14        | pinned            |
//! | 16:15     | insert_position   |
//! | 19:17     | prefetch_mode     |
//! | 22:20     | prefetch_degree   |
//! | 24:23     | admit_filter      |
//! | 30:25     | reserved (0)      |
//! | 62:31     | quota_blocks      |
//! | 94:63     | ttl_ticks         |
//! | 110:95    | entry_version     |
//! | 127:111   | reserved (0)      |
//!
//! Table-wide fields: `version`, `ttl_ticks`, `protected_share` (per tier), `sketch_window`,
//! [`Replacement`] (list LRU or the hardware-friendly CLOCK), and [`GpuRoutes`], which tells the
//! GPU engine which of its movement paths serves a move (by block size and by the link state the
//! engine measures).

use crate::error::ContractError;
use crate::limits;
use crate::topology::{TierId, Topology};

/// Where a newly admitted block enters its tier's recency order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InsertPosition {
    /// Most recently used end: the block survives a full pass of the tier (plain LRU).
    Mru = 0,
    /// Least recently used end: evicted next unless it is hit first (scan resistance, the
    /// RRIP "distant" insertion).
    Lru = 1,
}

/// What the fast path prefetches when a block of this class is accessed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PrefetchMode {
    /// No prefetch.
    Off = 0,
    /// The next `prefetch_degree` blocks of the same sequence (from sequence intents).
    Sequential = 1,
}

/// How a tier orders its resident blocks for eviction (table-wide).
///
/// A doubly linked recency list does not pipeline: every hit unlinks and relinks a frame (four
/// dependent writes). CLOCK (Corbató 1968) keeps one reference bit per frame instead: a hit
/// sets it, nothing moves. The victim scan is bounded as hardware needs it: from the tier's
/// hand it inspects at most `limits::VICTIM_SCAN_MAX` consecutive frames (a window that stops at
/// the last frame, so the next scan starts again at frame 0), clears the reference bit of each
/// evictable frame it passes, and takes the first evictable frame whose bit was already clear;
/// when every one was set, the first evictable frame of the window. The hand then points past
/// the victim. A new block starts with its bit clear; when its class inserts at the LRU end,
/// the hand is also pointed at it, so it is the next victim unless hit first (scan resistance,
/// as RRIP's distant insertion). Under CLOCK the victim is chosen
/// by reference bit alone: protected/window segments must be 0 and eviction priorities and
/// class TTLs do not rank victims (pins still protect). The same rule runs in the software
/// shard, in the cycle model and in the RTL of `mcos-hw`, and they are checked decision for
/// decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Replacement {
    /// Segmented LRU over intrusive lists (exact LRU with no protected segment).
    #[default]
    Lru = 0,
    /// CLOCK with a bounded scan: one reference bit per frame, no list moves on hits.
    Clock = 1,
    /// Sampled LRU by coarse age (hardware-friendly, no list moves on hits): every frame
    /// keeps a 7-bit stamp of the tier's age epoch (`AGE_BITS`), written by a hit or a fill;
    /// the epoch advances once every `max(1, frames / AGE_EPOCHS_PER_TIER)` stamp writes, and a
    /// frame's age is `(epoch - stamp) mod 128`. Each victim scan sweeps the
    /// `limits::VICTIM_SCAN_MAX` frames from the hand (stopping at the last frame; the hand
    /// then points past the window, or at frame 0) and compares them with one carried
    /// candidate, the runner-up of the previous scan: the oldest evictable one is the victim
    /// (ties: the carried candidate, then the lowest frame), the oldest of the rest is carried
    /// to the next scan. The comparison is a tree of 17 seven-bit compares. A class that
    /// inserts at the LRU end stamps its new block with the oldest age and makes it the
    /// carried candidate. Segments, priorities and TTLs do not apply, as under CLOCK.
    Aged = 2,
}

/// Bits of a frame's age stamp under [`Replacement::Aged`].
pub const AGE_BITS: u32 = 7;
/// Age epochs per tier capacity under [`Replacement::Aged`]: the epoch advances every
/// `max(1, frames / AGE_EPOCHS_PER_TIER)` stamp writes, so a 7-bit age spans four tiers' worth
/// of hits and fills before it wraps.
pub const AGE_EPOCHS_PER_TIER: u32 = 32;

impl Replacement {
    /// Whether hits move nothing (CLOCK or aged): one unordered list, a hand, no segments.
    pub fn is_hardware_friendly(self) -> bool {
        self != Replacement::Lru
    }
}

/// A filter on admission beyond the sketch threshold.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AdmitFilter {
    /// No filter: the sketch threshold alone decides.
    None = 0,
    /// Admit only a block found in the shard's history of recently evicted or refused blocks
    /// (a "seen before" filter, the ghost queue of 2Q and S3-FIFO); a refused block enters the
    /// history, so its next miss within the history's length is admitted.
    History = 1,
}

/// The policy for one priority class.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassPolicy {
    /// Tier new blocks of this class are admitted into.
    pub preferred_tier: TierId,
    /// Slowest tier a block of this class is demoted to on eviction; evicted from there, it is
    /// dropped. Equal to `preferred_tier`: no demotion.
    pub floor_tier: TierId,
    /// Admission: the block's estimated access count (4-bit sketch) must reach this value.
    /// 0 admits everything.
    pub admit_threshold: u8,
    /// Eviction order between classes: among victim candidates the highest priority goes first.
    pub evict_priority: u8,
    /// Blocks of this class are never evicted.
    pub pinned: bool,
    /// Where new blocks enter the recency order.
    pub insert_position: InsertPosition,
    /// Prefetch behaviour.
    pub prefetch_mode: PrefetchMode,
    /// Blocks prefetched per access (at most `limits::PREFETCH_DEGREE_MAX`).
    pub prefetch_degree: u8,
    /// Admission filter applied after the sketch threshold.
    pub admit_filter: AdmitFilter,
    /// Most blocks of this class resident in its preferred tier per shard; 0: no quota.
    pub quota_blocks: u32,
    /// Ticks without access after which a block of this class is evicted first; 0: never.
    pub ttl_ticks: u32,
    /// Version of this entry, bumped by the brain on every change.
    pub entry_version: u16,
}

impl ClassPolicy {
    /// The built-in default: admit everything into tier 0 at the MRU end, demote down to the
    /// slowest tier, no prefetch, no quota. With one tier this is exact LRU.
    pub const fn default_for(floor_tier: TierId) -> ClassPolicy {
        ClassPolicy {
            preferred_tier: TierId(0),
            floor_tier,
            admit_threshold: 0,
            evict_priority: 0,
            pinned: false,
            insert_position: InsertPosition::Mru,
            prefetch_mode: PrefetchMode::Off,
            prefetch_degree: 0,
            admit_filter: AdmitFilter::None,
            quota_blocks: 0,
            ttl_ticks: 0,
            entry_version: 0,
        }
    }

    /// Packs the entry into its 128-bit hardware layout.
    pub fn to_bits(&self) -> u128 {
        let mut w: u128 = 0;
        w |= u128::from(self.preferred_tier.0 & 0x7);
        w |= u128::from(self.floor_tier.0 & 0x7) << 3;
        w |= u128::from(self.admit_threshold & 0xf) << 6;
        w |= u128::from(self.evict_priority & 0xf) << 10;
        w |= u128::from(self.pinned) << 14;
        w |= u128::from(self.insert_position as u8 & 0x3) << 15;
        w |= u128::from(self.prefetch_mode as u8 & 0x7) << 17;
        w |= u128::from(self.prefetch_degree & 0x7) << 20;
        w |= u128::from(self.admit_filter as u8 & 0x3) << 23;
        w |= u128::from(self.quota_blocks) << 31;
        w |= u128::from(self.ttl_ticks) << 63;
        w |= u128::from(self.entry_version) << 95;
        w
    }

    /// Unpacks a 128-bit entry; unknown enum values are errors, not guesses.
    pub fn from_bits(w: u128) -> Result<ClassPolicy, ContractError> {
        let field = |shift: u32, bits: u32| ((w >> shift) & ((1u128 << bits) - 1)) as u64;
        let insert_position = match field(15, 2) {
            0 => InsertPosition::Mru,
            1 => InsertPosition::Lru,
            v => {
                return Err(ContractError::Decode {
                    what: "insert_position",
                    value: v,
                });
            }
        };
        let prefetch_mode = match field(17, 3) {
            0 => PrefetchMode::Off,
            1 => PrefetchMode::Sequential,
            v => {
                return Err(ContractError::Decode {
                    what: "prefetch_mode",
                    value: v,
                });
            }
        };
        let admit_filter = match field(23, 2) {
            0 => AdmitFilter::None,
            1 => AdmitFilter::History,
            v => {
                return Err(ContractError::Decode {
                    what: "admit_filter",
                    value: v,
                });
            }
        };
        Ok(ClassPolicy {
            preferred_tier: TierId(field(0, 3) as u8),
            floor_tier: TierId(field(3, 3) as u8),
            admit_threshold: field(6, 4) as u8,
            evict_priority: field(10, 4) as u8,
            pinned: field(14, 1) == 1,
            insert_position,
            prefetch_mode,
            prefetch_degree: field(20, 3) as u8,
            admit_filter,
            quota_blocks: field(31, 32) as u32,
            ttl_ticks: field(63, 32) as u32,
            entry_version: field(95, 16) as u16,
        })
    }

    fn validate(&self, class: u8, tiers: usize) -> Result<(), ContractError> {
        let bad = |reason: String| Err(ContractError::PolicyClass { class, reason });
        if self.preferred_tier.index() >= tiers {
            return bad(format!(
                "preferred tier {} does not exist (the node has {tiers} tiers)",
                self.preferred_tier.0
            ));
        }
        if self.floor_tier.index() >= tiers {
            return bad(format!(
                "floor tier {} does not exist (the node has {tiers} tiers)",
                self.floor_tier.0
            ));
        }
        if self.floor_tier < self.preferred_tier {
            return bad(format!(
                "floor tier {} is faster than preferred tier {}",
                self.floor_tier.0, self.preferred_tier.0
            ));
        }
        if self.admit_threshold > limits::SKETCH_COUNTER_MAX {
            return bad(format!(
                "admit_threshold {} exceeds the sketch counter maximum {}",
                self.admit_threshold,
                limits::SKETCH_COUNTER_MAX
            ));
        }
        if self.evict_priority > 15 {
            return bad(format!("evict_priority {} exceeds 15", self.evict_priority));
        }
        if self.prefetch_degree > limits::PREFETCH_DEGREE_MAX {
            return bad(format!(
                "prefetch_degree {} exceeds {}",
                self.prefetch_degree,
                limits::PREFETCH_DEGREE_MAX
            ));
        }
        if self.ttl_ticks > limits::POLICY_TTL_TICKS_MAX {
            return bad(format!(
                "ttl_ticks {} exceeds {}",
                self.ttl_ticks,
                limits::POLICY_TTL_TICKS_MAX
            ));
        }
        Ok(())
    }
}

/// `PolicyTable::telemetry_kinds` value that samples every kind.
pub const TELEMETRY_ALL: u8 = 0x3f;

/// How the GPU engine picks a movement path for a move between host memory and HBM.
///
/// The engine has two paths over the same link: a gather/scatter kernel (one launch moves a whole
/// batch of scattered blocks; best for small blocks, 47-50 GB/s at 16 KiB on an H100 where one
/// copy call per block reaches 5 GB/s) and the copy engines (batched copy calls; as good as the
/// kernel for large blocks, and they leave the SMs to compute). Measured crossover: the kernel
/// wins up to 64 KiB and ties near 2 MiB (hardware-anchors.md section 3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct GpuRoutes {
    /// Moves whose payload is at most this many bytes go to the gather/scatter kernel; larger
    /// ones to the copy-engine batch path. 0: copy engines only. At most `MAX_BLOCK_BYTES`.
    pub gather_max_block_bytes: u32,
    /// Link state: a path whose throughput, as the engine measured it over its recent batches,
    /// falls below this many MB/s is degraded, and moves go to the other path while it is (if
    /// that one is not degraded too). 0: never reroute. At most `GPU_ROUTE_DEGRADED_MB_S_MAX`.
    pub degraded_below_mb_per_s: u32,
}

impl GpuRoutes {
    /// Built-in routes: the kernel up to 1 MiB, the copy engines above; no rerouting.
    pub const BUILTIN: GpuRoutes = GpuRoutes {
        gather_max_block_bytes: 1 << 20,
        degraded_below_mb_per_s: 0,
    };

    fn validate(&self) -> Result<(), ContractError> {
        if self.gather_max_block_bytes as usize > limits::MAX_BLOCK_BYTES {
            return Err(ContractError::Policy(format!(
                "gpu_routes.gather_max_block_bytes {} exceeds the largest block, {} bytes",
                self.gather_max_block_bytes,
                limits::MAX_BLOCK_BYTES
            )));
        }
        if self.degraded_below_mb_per_s > limits::GPU_ROUTE_DEGRADED_MB_S_MAX {
            return Err(ContractError::Policy(format!(
                "gpu_routes.degraded_below_mb_per_s {} exceeds {} (no link is that fast)",
                self.degraded_below_mb_per_s,
                limits::GPU_ROUTE_DEGRADED_MB_S_MAX
            )));
        }
        Ok(())
    }
}

/// A complete policy table: one entry per class plus table-wide fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTable {
    /// Version the brain gave this table (reported by `mcos policy show`).
    pub version: u32,
    /// Ticks this table stays in force without a refresh before the fast path falls back to
    /// the built-in default; 0: forever (the built-in default itself).
    pub ttl_ticks: u32,
    /// Per tier, the share of frames (out of 256) kept for blocks that were hit after
    /// admission (segmented LRU's protected segment). 0: plain LRU order.
    pub protected_share: [u8; limits::MAX_TIERS],
    /// Accesses between halvings of the admission sketch (TinyLFU's reset); 0: never halve.
    pub sketch_window: u32,
    /// Which GPU movement path serves a host <-> HBM move (by size and link state).
    pub gpu_routes: GpuRoutes,
    /// Per tier, the share of frames (out of 256) of the admission window (W-TinyLFU, Einziger
    /// et al. 2017): new blocks enter the window; when the tier is full, the window's LRU block
    /// competes with the main segments' victim and the one the sketch counts less often is
    /// evicted. 0: no window (new blocks enter probation).
    pub window_share: [u8; limits::MAX_TIERS],
    /// Length of each shard's history of blocks recently evicted from the node or refused
    /// admission, in quarters of its tier-0 frames (4: as many entries as frames); 0: no history.
    /// A block admitted while in the history enters the protected segment directly (the ghost
    /// hit of ARC and S3-FIFO); classes with `AdmitFilter::History` admit only such blocks.
    pub history_quarters: u8,
    /// Telemetry kinds the fast path samples, one bit per `SampleKind` (bit `kind as u8`);
    /// `TELEMETRY_ALL` samples every kind. A brain that models accesses asks for hits and
    /// misses only, so a sample is pushed per sampled access and not three.
    pub telemetry_kinds: u8,
    /// Replacement order of every tier: list LRU (the default) or bounded-scan CLOCK.
    pub replacement: Replacement,
    /// One entry per class.
    pub classes: [ClassPolicy; limits::CLASSES],
}

impl PolicyTable {
    /// The built-in default table for a node with `tiers` tiers: exact LRU in tier 0, blocks
    /// demoted tier by tier down to the slowest, admit all, no prefetch, never expires.
    pub fn builtin(tiers: usize) -> PolicyTable {
        let floor = TierId(tiers.saturating_sub(1).min(limits::MAX_TIERS - 1) as u8);
        PolicyTable {
            version: 0,
            ttl_ticks: 0,
            protected_share: [0; limits::MAX_TIERS],
            sketch_window: 0,
            gpu_routes: GpuRoutes::BUILTIN,
            window_share: [0; limits::MAX_TIERS],
            history_quarters: 0,
            telemetry_kinds: TELEMETRY_ALL,
            replacement: Replacement::Lru,
            classes: [ClassPolicy::default_for(floor); limits::CLASSES],
        }
    }

    /// Checks every entry against the node's topology. A table that fails is never installed.
    pub fn validate(&self, topology: &Topology) -> Result<(), ContractError> {
        let tiers = topology.tiers.len();
        if self.ttl_ticks > limits::POLICY_TTL_TICKS_MAX {
            return Err(ContractError::Policy(format!(
                "table ttl_ticks {} exceeds {}",
                self.ttl_ticks,
                limits::POLICY_TTL_TICKS_MAX
            )));
        }
        self.gpu_routes.validate()?;
        for (class, entry) in self.classes.iter().enumerate() {
            entry.validate(class as u8, tiers)?;
            if entry.admit_filter == AdmitFilter::History && self.history_quarters == 0 {
                return Err(ContractError::PolicyClass {
                    class: class as u8,
                    reason: "admits only blocks in the history, but the table keeps none \
                             (history_quarters 0): it would refuse every block"
                        .into(),
                });
            }
            if entry.quota_blocks > 0 {
                let cap = topology
                    .tier(entry.preferred_tier)
                    .map(|t| t.capacity_blocks)
                    .unwrap_or(0);
                if entry.quota_blocks > cap {
                    return Err(ContractError::PolicyClass {
                        class: class as u8,
                        reason: format!(
                            "quota of {} blocks exceeds the preferred tier's {cap} blocks",
                            entry.quota_blocks
                        ),
                    });
                }
            }
        }
        for (t, (&p, &w)) in self
            .protected_share
            .iter()
            .zip(&self.window_share)
            .enumerate()
        {
            if u32::from(p) + u32::from(w) > 254 {
                return Err(ContractError::Policy(format!(
                    "tier {t}: protected_share {p} + window_share {w} leave no room for \
                     probation; keep their sum at most 254 (of 256)"
                )));
            }
        }
        if self.replacement.is_hardware_friendly()
            && (self.protected_share.iter().any(|&p| p > 0)
                || self.window_share.iter().any(|&w| w > 0))
        {
            return Err(ContractError::Policy(
                "CLOCK and aged replacement keep per-frame bits and no segments: set \
                 protected_share and window_share to 0, or use Replacement::Lru"
                    .into(),
            ));
        }
        if self.telemetry_kinds & !TELEMETRY_ALL != 0 {
            return Err(ContractError::Policy(format!(
                "telemetry_kinds {:#x} names a sample kind that does not exist (mask {TELEMETRY_ALL:#x})",
                self.telemetry_kinds
            )));
        }
        if self.history_quarters > limits::HISTORY_QUARTERS_MAX {
            return Err(ContractError::Policy(format!(
                "history_quarters {} exceeds {} ({}x the tier-0 frames)",
                self.history_quarters,
                limits::HISTORY_QUARTERS_MAX,
                limits::HISTORY_QUARTERS_MAX / 4
            )));
        }
        Ok(())
    }

    /// The entry for class `c`.
    pub fn class(&self, c: u8) -> &ClassPolicy {
        &self.classes[usize::from(c)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{TierKind, TierSpec};
    use proptest::prelude::*;

    fn topo(n: usize) -> Topology {
        Topology {
            tiers: (0..n)
                .map(|_| TierSpec {
                    kind: TierKind::HostDram,
                    capacity_blocks: 100,
                    block_bytes: 64,
                })
                .collect(),
            links: vec![],
        }
    }

    #[test]
    fn builtin_is_valid() {
        for n in 1..=limits::MAX_TIERS {
            PolicyTable::builtin(n).validate(&topo(n)).unwrap();
        }
    }

    #[test]
    fn validation_names_the_class_and_the_problem() {
        let mut t = PolicyTable::builtin(2);
        t.classes[7].preferred_tier = TierId(3);
        let e = t.validate(&topo(2)).unwrap_err().to_string();
        assert!(
            e.contains("class 7") && e.contains("preferred tier 3"),
            "{e}"
        );

        let mut t = PolicyTable::builtin(2);
        t.classes[1].admit_threshold = 16;
        assert!(t.validate(&topo(2)).is_err());

        let mut t = PolicyTable::builtin(2);
        t.classes[2].preferred_tier = TierId(1);
        t.classes[2].floor_tier = TierId(0);
        assert!(
            t.validate(&topo(2))
                .unwrap_err()
                .to_string()
                .contains("faster")
        );

        let mut t = PolicyTable::builtin(1);
        t.classes[3].quota_blocks = 101;
        assert!(t.validate(&topo(1)).is_err());
    }

    #[test]
    fn gpu_routes_are_validated() {
        let mut t = PolicyTable::builtin(2);
        t.gpu_routes.gather_max_block_bytes = limits::MAX_BLOCK_BYTES as u32;
        t.gpu_routes.degraded_below_mb_per_s = limits::GPU_ROUTE_DEGRADED_MB_S_MAX;
        t.validate(&topo(2)).unwrap();
        t.gpu_routes.gather_max_block_bytes += 1;
        let e = t.validate(&topo(2)).unwrap_err().to_string();
        assert!(e.contains("gather_max_block_bytes"), "{e}");
        let mut t = PolicyTable::builtin(2);
        t.gpu_routes.degraded_below_mb_per_s = limits::GPU_ROUTE_DEGRADED_MB_S_MAX + 1;
        let e = t.validate(&topo(2)).unwrap_err().to_string();
        assert!(e.contains("degraded_below_mb_per_s"), "{e}");
    }

    fn arb_class() -> impl Strategy<Value = ClassPolicy> {
        (
            (
                0u8..8,
                0u8..8,
                0u8..16,
                0u8..16,
                any::<bool>(),
                0u8..2,
                0u8..2,
                0u8..8,
            ),
            (any::<u32>(), any::<u32>(), any::<u16>(), 0u8..2),
        )
            .prop_map(
                |((p, f, a, e, pin, ins, pf, deg), (q, ttl, ver, af))| ClassPolicy {
                    preferred_tier: TierId(p),
                    floor_tier: TierId(f),
                    admit_threshold: a,
                    evict_priority: e,
                    pinned: pin,
                    insert_position: if ins == 0 {
                        InsertPosition::Mru
                    } else {
                        InsertPosition::Lru
                    },
                    prefetch_mode: if pf == 0 {
                        PrefetchMode::Off
                    } else {
                        PrefetchMode::Sequential
                    },
                    prefetch_degree: deg,
                    admit_filter: if af == 0 {
                        AdmitFilter::None
                    } else {
                        AdmitFilter::History
                    },
                    quota_blocks: q,
                    ttl_ticks: ttl,
                    entry_version: ver,
                },
            )
    }

    proptest! {
        #[test]
        fn class_entry_round_trips_through_its_bit_layout(c in arb_class()) {
            prop_assert_eq!(ClassPolicy::from_bits(c.to_bits()).unwrap(), c);
        }
    }

    #[test]
    fn unknown_enum_values_do_not_decode() {
        let w = 3u128 << 15;
        assert!(ClassPolicy::from_bits(w).is_err());
        assert!(ClassPolicy::from_bits(2u128 << 23).is_err());
        assert!(ClassPolicy::from_bits(3u128 << 23).is_err());
    }

    #[test]
    fn admit_filter_sits_in_bits_23_and_24_only() {
        let mut c = ClassPolicy::default_for(TierId(0));
        c.admit_filter = AdmitFilter::History;
        assert_eq!(c.to_bits(), 1u128 << 23);
    }

    #[test]
    fn clock_replacement_refuses_segments() {
        let mut t = PolicyTable::builtin(1);
        t.replacement = Replacement::Clock;
        t.validate(&topo(1)).unwrap();
        t.protected_share[0] = 10;
        let e = t.validate(&topo(1)).unwrap_err().to_string();
        assert!(e.contains("CLOCK"), "{e}");
        t.protected_share[0] = 0;
        t.window_share[0] = 1;
        assert!(t.validate(&topo(1)).is_err());
    }

    #[test]
    fn segment_shares_and_history_are_validated() {
        let mut t = PolicyTable::builtin(1);
        t.protected_share[0] = 200;
        t.window_share[0] = 54;
        t.validate(&topo(1)).unwrap();
        t.window_share[0] = 55;
        assert!(
            t.validate(&topo(1))
                .unwrap_err()
                .to_string()
                .contains("window_share")
        );
        let mut t = PolicyTable::builtin(1);
        t.history_quarters = limits::HISTORY_QUARTERS_MAX;
        t.validate(&topo(1)).unwrap();
        t.history_quarters += 1;
        assert!(t.validate(&topo(1)).is_err());
        let mut t = PolicyTable::builtin(1);
        t.classes[9].admit_filter = AdmitFilter::History;
        assert!(
            t.validate(&topo(1))
                .unwrap_err()
                .to_string()
                .contains("class 9")
        );
        t.history_quarters = 4;
        t.validate(&topo(1)).unwrap();
        t.telemetry_kinds = 0x40;
        assert!(t.validate(&topo(1)).is_err());
    }
}
