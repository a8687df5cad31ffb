//! The knobs the brain sets, and how they compile into a policy table.
//!
//! A [`Knobs`] value is one point of the fast path's policy space for the tier that serves hits
//! (tier 0): segment shares, the admission history and its use, and the sketch window. The
//! brain evaluates a fixed grid of them ([`candidates`]) on shadow caches and compiles the one
//! the evidence favours into a full [`PolicyTable`] with [`Knobs::compile`]. The grid holds the
//! fast-path forms of the policies serving stacks ship (LRU; segmented LRU; the ghost admission
//! of 2Q, ARC and S3-FIFO; W-TinyLFU's window and frequency duel): no constant in it is tuned
//! to a trace, and the same grid serves every workload.

use mcos_core::limits::{self, CLASSES};
use mcos_core::{AdmitFilter, InsertPosition, PolicyTable, PriorityClass, SampleKind, TierId};

/// One point of the policy space (tier 0's replacement and admission).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Knobs {
    /// Protected segment share of tier 0, out of 256.
    pub protected_share: u8,
    /// Admission window share of tier 0, out of 256 (W-TinyLFU).
    pub window_share: u8,
    /// History length in quarters of tier 0's frames.
    pub history_quarters: u8,
    /// Admit only blocks found in the history.
    pub history_admit: bool,
    /// Sketch window in multiples of tier 0's frames (accesses between halvings).
    pub sketch_window_x: u8,
}

impl Knobs {
    /// Plain LRU: what the built-in table does.
    pub const LRU: Knobs = Knobs {
        protected_share: 0,
        window_share: 0,
        history_quarters: 0,
        history_admit: false,
        sketch_window_x: 0,
    };

    /// A short readable name (`lru`, `slru50+h2`, `hadm1`, `wtlfu1/p80/s10`).
    pub fn label(&self) -> String {
        let pct = |s: u8| (u32::from(s) * 100).div_ceil(256);
        let h = f32::from(self.history_quarters) / 4.0;
        if self.window_share > 0 {
            let hist = if self.history_quarters > 0 {
                format!("+h{h}")
            } else {
                String::new()
            };
            return format!(
                "wtlfu{}/p{}/s{}{hist}",
                pct(self.window_share),
                pct(self.protected_share),
                self.sketch_window_x
            );
        }
        if self.history_admit {
            return format!("hadm{h}");
        }
        match (self.protected_share, self.history_quarters) {
            (0, 0) => "lru".into(),
            (p, 0) => format!("slru{}", pct(p)),
            (p, _) => format!("slru{}+h{h}", pct(p)),
        }
    }

    /// These knobs with the settings that have no effect on a shadow cleared: the history's
    /// length when nothing reads the history (no history admission and no protected segment
    /// for its hits to enter), the sketch window when there is no admission window to duel
    /// with. Shadows of knobs with the same behaviour make the same decision on every access.
    pub fn behaviour(&self) -> Knobs {
        let mut k = *self;
        if !k.history_admit && k.protected_share == 0 {
            k.history_quarters = 0;
        }
        if k.window_share == 0 {
            k.sketch_window_x = 0;
        }
        k
    }

    /// The full table for a node whose tier 0 holds `tier0_frames_per_shard` frames in each
    /// shard: these knobs on tier 0, every other field as the built-in table has it. `base`
    /// supplies the class entries (so intents' classes keep their settings).
    pub fn compile(&self, base: &PolicyTable, tier0_frames_per_shard: u64) -> PolicyTable {
        let mut t = base.clone();
        t.protected_share[0] = self.protected_share;
        t.window_share[0] = self.window_share;
        t.history_quarters = self.history_quarters.min(limits::HISTORY_QUARTERS_MAX);
        t.sketch_window = (u64::from(self.sketch_window_x) * tier0_frames_per_shard)
            .min(u64::from(u32::MAX)) as u32;
        let filter = if self.history_admit && t.history_quarters > 0 {
            AdmitFilter::History
        } else {
            AdmitFilter::None
        };
        for c in 0..CLASSES {
            // The conventional classes (queued, ended, precious) keep their own admission;
            // the default class and every application class follow the learned filter unless
            // pinned or given their own threshold.
            if (1..=3).contains(&c) {
                continue;
            }
            let e = &mut t.classes[c];
            if e.preferred_tier == TierId(0) && !e.pinned && e.admit_threshold == 0 {
                e.admit_filter = filter;
            }
        }
        t
    }
}

/// The table the learned knobs are compiled onto: the built-in table plus the conventional
/// intent classes (`PriorityClass::{QUEUED, ENDED, PRECIOUS}`). The default class gets
/// eviction priority 1 so that blocks a queued request will read (priority 0) are passed over
/// among the victim candidates; ended sessions' blocks (15) go first and are re-inserted at the
/// LRU end; precious blocks are never evicted, within a quota of a quarter of each shard's
/// tier-0 frames. With no intents every block is in the default class and the order is the
/// built-in one.
pub fn base_table(tiers: usize, tier0_frames_per_shard: u64) -> PolicyTable {
    let mut t = PolicyTable::builtin(tiers);
    // The brain models accesses (hits and misses) and measures moves; admissions, refusals
    // and evictions follow from its own shadows.
    t.telemetry_kinds =
        1 << SampleKind::Hit as u8 | 1 << SampleKind::Miss as u8 | 1 << SampleKind::MoveDone as u8;
    for c in t.classes.iter_mut() {
        c.evict_priority = 1;
    }
    let q = &mut t.classes[usize::from(PriorityClass::QUEUED.0)];
    q.evict_priority = 0;
    let e = &mut t.classes[usize::from(PriorityClass::ENDED.0)];
    e.evict_priority = 15;
    e.insert_position = InsertPosition::Lru;
    let p = &mut t.classes[usize::from(PriorityClass::PRECIOUS.0)];
    p.evict_priority = 0;
    p.pinned = true;
    p.quota_blocks = (tier0_frames_per_shard / 4).max(1).min(u64::from(u32::MAX)) as u32;
    t
}

/// The grid the brain evaluates: one set of defaults for every workload.
pub fn candidates() -> Vec<Knobs> {
    let mut v = vec![Knobs::LRU];
    // Segmented LRU, with and without a history whose hits skip probation (ARC's and
    // S3-FIFO's ghost hits).
    for p in [64u8, 128, 192] {
        for h in [0u8, 4, 16] {
            v.push(Knobs {
                protected_share: p,
                history_quarters: h,
                ..Knobs::LRU
            });
        }
    }
    // "Seen before" admission (2Q's A1out, S3-FIFO's ghost as a filter) over plain LRU.
    for h in [4u8, 8, 16] {
        v.push(Knobs {
            history_quarters: h,
            history_admit: true,
            ..Knobs::LRU
        });
    }
    // W-TinyLFU: a 1 % window and the frequency duel, main as LRU or segmented, with or
    // without the history, frequencies aged over 10 (Caffeine's sample) or 40 capacities.
    for p in [0u8, 128] {
        for h in [0u8, 4] {
            for s in [10u8, 40] {
                v.push(Knobs {
                    window_share: 3,
                    protected_share: p,
                    history_quarters: h,
                    sketch_window_x: s,
                    ..Knobs::LRU
                });
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcos_core::{TierKind, TierSpec, Topology};

    #[test]
    fn every_candidate_compiles_to_a_valid_table_and_lru_to_the_builtin() {
        let topo = Topology {
            tiers: vec![
                TierSpec {
                    kind: TierKind::HostDram,
                    capacity_blocks: 1000,
                    block_bytes: 4096,
                },
                TierSpec {
                    kind: TierKind::Disk,
                    capacity_blocks: 5000,
                    block_bytes: 4096,
                },
            ],
            links: vec![],
        };
        let base = PolicyTable::builtin(2);
        let grid = candidates();
        let labels: std::collections::HashSet<String> = grid.iter().map(Knobs::label).collect();
        assert_eq!(labels.len(), grid.len(), "labels are distinct");
        for k in grid {
            k.compile(&base, 1000).validate(&topo).unwrap();
        }
        assert_eq!(Knobs::LRU.compile(&base, 1000), base);
        let intents = base_table(2, 1000);
        intents.validate(&topo).unwrap();
        let hadm = Knobs {
            history_quarters: 4,
            history_admit: true,
            ..Knobs::LRU
        }
        .compile(&intents, 1000);
        assert_eq!(hadm.classes[0].admit_filter, AdmitFilter::History);
        assert_eq!(hadm.classes[9].admit_filter, AdmitFilter::History);
        assert_eq!(
            hadm.classes[1].admit_filter,
            AdmitFilter::None,
            "queued blocks are always admitted"
        );
    }
}
