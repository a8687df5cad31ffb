//! The same events through the software fast path (`mcos_fastpath::Shard`, CLOCK or aged
//! replacement): the reference the model must equal decision for decision.
//!
//! Two tiers (`HwConfig::frames1 > 0`): every class prefers tier 0 and has tier 1 as its floor,
//! so a tier-0 victim is demoted (the shard emits a `MoveDescriptor`, which this wrapper takes
//! from its engine ring) and a tier-1 victim is dropped. Tier 1 is the shard's home tier
//! (`Shard::set_home_tier`): its blocks are read in place, never promoted, the pipeline's
//! scope. A COMPLETE is a `MoveCompletion` with status done.
//!
//! A CLASS_WRITE edits a pending copy of the table; a SWAP installs it through the shard's
//! policy cell (epoch swap), so the shard picks it up at its next event, as the pipeline
//! switches banks at the SWAP's event boundary.

use crate::HwError;
use crate::event::{Code, Decision, Event, Op};
use mcos_core::limits::MAX_TIERS;
use mcos_core::{
    AdmitFilter, ClassPolicy, MoveCompletion, MoveDescriptor, MoveStatus, PolicyInstaller,
    PolicyTable, PrefetchMode, Replacement, TelemetrySample, TierId, policy_cell, ring,
};
use mcos_fastpath::{Access, Insert, RejectReason, Shard, ShardConfig};

/// The built-in table with CLOCK replacement: what a pipeline out of reset executes.
pub fn clock_builtin() -> PolicyTable {
    builtin_for(Replacement::Clock)
}

/// The built-in table with `replacement` (the pipeline's `HwConfig::replacement`).
pub fn builtin_for(replacement: Replacement) -> PolicyTable {
    builtin_tiers(replacement, 1)
}

/// The built-in table for `tiers` tiers (1 or 2) with `replacement`: with two, every class
/// prefers tier 0 and falls to tier 1 (the built-in floor is the last tier).
pub fn builtin_tiers(replacement: Replacement, tiers: u32) -> PolicyTable {
    let mut t = PolicyTable::builtin(tiers as usize);
    t.replacement = replacement;
    t
}

/// Whether the pipeline executes `table` exactly: one tier, CLOCK or aged, no sketch aging, and per
/// class only what the pipeline reads (admission threshold, insertion end) plus fields that
/// cannot matter under CLOCK with one tier (eviction priority, class TTL, version).
pub fn check_scope(table: &PolicyTable) -> Result<(), HwError> {
    check_scope_tiers(table, 1)
}

/// As [`check_scope`] for a pipeline of `tiers` tiers: with two, every class must prefer
/// tier 0 and have tier 1 as its floor (so every tier-0 victim is demoted, as the pipeline
/// demotes it, and every tier-1 victim dropped).
pub fn check_scope_tiers(table: &PolicyTable, tiers: u32) -> Result<(), HwError> {
    let floor = TierId(tiers.saturating_sub(1) as u8);
    let out = |why: &str| Err(HwError::OutOfScope(why.to_owned()));
    if !table.replacement.is_hardware_friendly() {
        return out("replacement must be CLOCK or aged (a list LRU does not pipeline)");
    }
    if table.sketch_window != 0 {
        return out("sketch aging (sketch_window > 0) is not in the pipeline");
    }
    if table.history_quarters != 0 {
        return out("the admission history is not in the pipeline");
    }
    for (c, e) in table.classes.iter().enumerate() {
        let ok = e.preferred_tier == TierId(0)
            && e.floor_tier == floor
            && !e.pinned
            && e.prefetch_mode == PrefetchMode::Off
            && e.admit_filter == AdmitFilter::None
            && e.quota_blocks == 0;
        if !ok {
            return out(&format!(
                "class {c}: a preferred tier other than 0, a floor tier other than {}, pins, \
                 prefetch, history filter or quota",
                floor.0
            ));
        }
    }
    Ok(())
}

/// A software shard of one or two tiers under CLOCK or aged replacement, driven by pipeline
/// events.
pub struct SoftwareShard {
    shard: Shard,
    installer: PolicyInstaller,
    pending: PolicyTable,
    tiers: u32,
    // The shard's descriptor ring (one tier emits no moves).
    engine: mcos_core::Consumer<MoveDescriptor>,
    // The descriptor of the move in flight (its destination names a completion's frame).
    in_flight: Option<MoveDescriptor>,
    descriptors: Vec<MoveDescriptor>,
    telemetry: Option<mcos_core::Consumer<TelemetrySample>>,
}

/// Telemetry ring depth of a software shard built with telemetry: more than one event ever
/// samples (at most two: an eviction and an admission), drained after every event.
const TELEMETRY_RING: usize = 16;

impl SoftwareShard {
    /// `frames` frames, the CLOCK built-in table.
    pub fn new(frames: u32) -> SoftwareShard {
        SoftwareShard::with_table(frames, clock_builtin())
    }

    /// `frames` frames under `table` (any table: for timing the list LRU on the same events),
    /// no telemetry.
    pub fn with_table(frames: u32, table: PolicyTable) -> SoftwareShard {
        SoftwareShard::build(frames, table, None)
    }

    /// As [`SoftwareShard::with_table`], sampling telemetry at `shift` into a ring that
    /// [`SoftwareShard::drain_telemetry`] empties.
    pub fn with_telemetry(frames: u32, table: PolicyTable, shift: u8) -> SoftwareShard {
        SoftwareShard::build(frames, table, Some(shift))
    }

    /// Two tiers, `frames` and `frames1` frames (tier-1 global ids after tier 0's), under
    /// `table` (`builtin_tiers(.., 2)` or a table that passes `check_scope_tiers(.., 2)`), no
    /// telemetry.
    pub fn two_tier(frames: u32, frames1: u32, table: PolicyTable) -> SoftwareShard {
        SoftwareShard::build_tiers(frames, frames1, table, None)
    }

    fn build(frames: u32, table: PolicyTable, telemetry_shift: Option<u8>) -> SoftwareShard {
        SoftwareShard::build_tiers(frames, 0, table, telemetry_shift)
    }

    fn build_tiers(
        frames: u32,
        frames1: u32,
        table: PolicyTable,
        telemetry_shift: Option<u8>,
    ) -> SoftwareShard {
        let (installer, mut readers) = policy_cell(table.clone(), 1);
        let (tx, rx) = ring(64);
        let mut tiers = vec![(0, frames)];
        if frames1 > 0 {
            tiers.push((frames, frames1));
        }
        let cfg = ShardConfig {
            shard: 0,
            free_watermark: vec![0; tiers.len()],
            tiers,
            block_bytes: 0,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            telemetry_shift: telemetry_shift.unwrap_or(0),
        };
        let (sample_tx, sample_rx) = match telemetry_shift {
            Some(_) => {
                let (t, r) = ring(TELEMETRY_RING);
                (Some(t), Some(r))
            }
            None => (None, None),
        };
        let reader = readers.remove(0);
        let mut shard = Shard::new(cfg, reader, vec![tx], sample_tx);
        if frames1 > 0 {
            shard.set_home_tier(TierId(1));
        }
        SoftwareShard {
            shard,
            installer,
            pending: table,
            tiers: if frames1 > 0 { 2 } else { 1 },
            engine: rx,
            in_flight: None,
            descriptors: Vec::new(),
            telemetry: sample_rx,
        }
    }

    /// Hands the descriptors the shard emitted since the last call to `f`, in order.
    pub fn drain_descriptors(&mut self, mut f: impl FnMut(MoveDescriptor)) {
        for d in self.descriptors.drain(..) {
            f(d);
        }
    }

    /// Hands the telemetry samples taken since the last call to `f`, in order.
    pub fn drain_telemetry(&mut self, mut f: impl FnMut(TelemetrySample)) {
        if let Some(rx) = self.telemetry.as_mut() {
            while let Some(s) = rx.pop() {
                f(s);
            }
        }
    }

    /// The shard.
    pub fn shard(&self) -> &Shard {
        &self.shard
    }

    /// Executes one event; the decision as the pipeline encodes it.
    pub fn apply(&mut self, e: &Event) -> Result<Decision, HwError> {
        let d = |code, frame| Decision { code, frame };
        Ok(match e.op {
            Op::Access => match self.shard.access(e.key, None) {
                Access::Hit { frame, .. } => d(Code::Hit, frame),
                Access::Miss => d(Code::Miss, 0),
                Access::Wait { .. } => {
                    return Err(HwError::OutOfScope(
                        "a move in flight (one tier has none)".into(),
                    ));
                }
            },
            Op::Insert => {
                let evictions = self.shard.counters().evictions;
                match self.shard.insert(e.key, e.class) {
                    Insert::Fill { tier, frame } => {
                        self.shard.commit_fill(e.key, tier, frame, true);
                        let evicted = self.shard.counters().evictions > evictions;
                        d(if evicted { Code::FillEvict } else { Code::Fill }, frame)
                    }
                    Insert::Present => {
                        let frame = self.shard.peek(e.key).map_or(0, |(_, f)| f);
                        d(Code::Present, frame)
                    }
                    Insert::Rejected(RejectReason::Admission) => d(Code::RejectAdmission, 0),
                    Insert::Rejected(RejectReason::Directory) => d(Code::RejectDirectory, 0),
                    // Tier 0 is full: its victim's demotion started (a descriptor), or one is
                    // in flight (none).
                    Insert::Retry if self.tiers == 2 => match self.engine.pop() {
                        Some(m) => {
                            if self.engine.pop().is_some() {
                                return Err(HwError::OutOfScope(
                                    "an insert emitted two moves".into(),
                                ));
                            }
                            self.in_flight = Some(m);
                            self.descriptors.push(m);
                            d(Code::Demote, m.src_frame)
                        }
                        None => d(Code::Wait, 0),
                    },
                    other => {
                        return Err(HwError::OutOfScope(format!("insert result {other:?}")));
                    }
                }
            }
            Op::Complete => {
                let stale = self.shard.counters().stale_completions;
                self.shard.complete(MoveCompletion {
                    move_id: e.move_id(),
                    detail: 0,
                    bytes: 0,
                    status: MoveStatus::Done,
                    engine: 0,
                });
                if self.shard.counters().stale_completions > stale {
                    d(Code::Stale, 0)
                } else {
                    let dst = self.in_flight.take().map_or(0, |m| m.dst_frame);
                    d(Code::Ack, dst)
                }
            }
            Op::ClassWrite => {
                let entry = ClassPolicy::from_bits(e.entry)
                    .map_err(|err| HwError::OutOfScope(err.to_string()))?;
                self.pending.classes[usize::from(e.class)] = entry;
                d(Code::Ack, 0)
            }
            Op::Swap => {
                // The one table global the pipeline reads comes with the SWAP.
                self.pending.telemetry_kinds = (e.entry as u8) & mcos_core::TELEMETRY_ALL;
                check_scope_tiers(&self.pending, self.tiers)?;
                // The shard sees every epoch at its next event; the stream has one between
                // any two swaps, so the grace period has passed.
                self.installer
                    .try_install(&self.pending)
                    .map_err(|err| HwError::OutOfScope(format!("install: {err:?}")))?;
                d(Code::Ack, 0)
            }
        })
    }
}
