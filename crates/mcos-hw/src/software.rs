//! The same events through the software fast path (`mcos_fastpath::Shard`, one tier, CLOCK
//! replacement): the reference the model must equal decision for decision.
//!
//! A CLASS_WRITE edits a pending copy of the table; a SWAP installs it through the shard's
//! policy cell (epoch swap), so the shard picks it up at its next event, as the pipeline
//! switches banks at the SWAP's event boundary.

use crate::HwError;
use crate::event::{Code, Decision, Event, Op};
use mcos_core::limits::MAX_TIERS;
use mcos_core::{
    AdmitFilter, ClassPolicy, MoveDescriptor, PolicyInstaller, PolicyTable, PrefetchMode,
    Replacement, TelemetrySample, TierId, policy_cell, ring,
};
use mcos_fastpath::{Access, Insert, RejectReason, Shard, ShardConfig};

/// The built-in table with CLOCK replacement: what a pipeline out of reset executes.
pub fn clock_builtin() -> PolicyTable {
    builtin_for(Replacement::Clock)
}

/// The built-in table with `replacement` (the pipeline's `HwConfig::replacement`).
pub fn builtin_for(replacement: Replacement) -> PolicyTable {
    let mut t = PolicyTable::builtin(1);
    t.replacement = replacement;
    t
}

/// Whether the pipeline executes `table` exactly: one tier, CLOCK or aged, no sketch aging, and per
/// class only what the pipeline reads (admission threshold, insertion end) plus fields that
/// cannot matter under CLOCK with one tier (eviction priority, class TTL, version).
pub fn check_scope(table: &PolicyTable) -> Result<(), HwError> {
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
            && e.floor_tier == TierId(0)
            && !e.pinned
            && e.prefetch_mode == PrefetchMode::Off
            && e.admit_filter == AdmitFilter::None
            && e.quota_blocks == 0;
        if !ok {
            return out(&format!(
                "class {c}: tiers other than 0, pins, prefetch, history filter or quota"
            ));
        }
    }
    Ok(())
}

/// A one-tier software shard under CLOCK, driven by pipeline events.
pub struct SoftwareShard {
    shard: Shard,
    installer: PolicyInstaller,
    pending: PolicyTable,
    // Kept alive: the shard's descriptor ring (one tier emits no moves).
    _engine: mcos_core::Consumer<MoveDescriptor>,
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

    fn build(frames: u32, table: PolicyTable, telemetry_shift: Option<u8>) -> SoftwareShard {
        let (installer, mut readers) = policy_cell(table.clone(), 1);
        let (tx, rx) = ring(64);
        let cfg = ShardConfig {
            shard: 0,
            tiers: vec![(0, frames)],
            block_bytes: 0,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            free_watermark: vec![0],
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
        SoftwareShard {
            shard: Shard::new(cfg, reader, vec![tx], sample_tx),
            installer,
            pending: table,
            _engine: rx,
            telemetry: sample_rx,
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
                    other => {
                        return Err(HwError::OutOfScope(format!("insert result {other:?}")));
                    }
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
                check_scope(&self.pending)?;
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
