//! MCOS fast path as hardware (DESIGN.md stage 3): one shard's per-event decision pipeline.
//!
//! - `model`: the cycle-level model, the executable specification of `hw/rtl/*.sv`;
//! - `software`: the same events through the software fast path (`mcos_fastpath::Shard`, one
//!   or two tiers, CLOCK or aged replacement), which the model must equal decision for
//!   decision and descriptor for descriptor;
//! - `verilator`: builds the RTL with Verilator and runs it on an event file, for the
//!   cycle-for-cycle comparison with the model;
//! - `synth`: yosys statistics (generic and iCE40) and nextpnr-ice40 place and route;
//! - `stream`: random and trace-replay event streams;
//! - `offchip`: the mapping of the directory and frame table off chip for tiers larger than
//!   on-chip memory, and its timing (latency, outstanding reads) on a stream;
//! - `telemetry`: the telemetry-sample port (a CHMU-shaped hotlist ring with head, tail and
//!   dropped registers): its record, registers, a consumer, and the model run the Verilator
//!   harness mirrors.
//!
//! Scope: ACCESS (directory lookup, sketch count, reference bit or age stamp), INSERT
//! (admission against the class threshold, a free frame or the bounded CLOCK or aged victim,
//! `HwConfig::replacement`), the table-install port
//! (class entries into a shadow bank, swapped at an event boundary) and the telemetry-sample
//! port (the software shard's samples of hit, miss, admit, reject and evict, by the same
//! kinds mask and spatial sample, into an on-chip ring). Optionally a second tier
//! (`HwConfig::two_tier`, the RTL's `FRAMES1`): a tier-0 victim is demoted to tier 1 (decision
//! DEMOTE, then a MoveDescriptor on the descriptor port), a tier-1 victim dropped; COMPLETE
//! events finish the move (STALE for an id in flight nowhere; WAIT for an INSERT while the
//! move is in flight). Limits of the second tier: one move in flight, no promotion (tier 1 is
//! read in place), no tier-1 telemetry. Not in the pipeline: more than two tiers, prefetch,
//! pins, quotas, the admission history and sketch aging (`software::check_scope_tiers`
//! refuses tables that use them).

#![warn(missing_docs)]

pub mod config;
pub mod event;
pub mod model;
pub mod offchip;
pub mod software;
pub mod stream;
pub mod synth;
pub mod telemetry;
pub mod verilator;

pub use config::HwConfig;
pub use event::{Code, Decision, Descriptor, Event, Op, Output};
pub use model::{Cycle, Pipeline, PipelineStats};

use thiserror::Error;

/// What can go wrong outside the pipeline's own logic.
#[derive(Debug, Error)]
pub enum HwError {
    /// A table or event the pipeline does not implement.
    #[error("outside the hardware pipeline's scope: {0}")]
    OutOfScope(String),
    /// A trace that cannot be read (the project's Mooncake reader: file and line named).
    #[error(transparent)]
    Trace(#[from] mcos_trace::TraceError),
    /// A tool (verilator, a C++ compiler, yosys, nextpnr) failed or is missing.
    #[error("{tool}: {why}")]
    Tool {
        /// Which.
        tool: &'static str,
        /// Its error output or the reason.
        why: String,
    },
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Runs `events` through the model back to back (each offered as soon as the previous one
/// was accepted) until every decision has left; returns the outputs and the counters.
pub fn run_model(cfg: HwConfig, events: &[Event]) -> (Vec<Output>, PipelineStats) {
    let (out, stats, _) = run_model_timed(cfg, events);
    (out, stats)
}

/// As [`run_model`], also returning the cycle each event was accepted in (latency of event
/// `i` is `outputs[i].cycle - accepted[i]`).
pub fn run_model_timed(cfg: HwConfig, events: &[Event]) -> (Vec<Output>, PipelineStats, Vec<u64>) {
    let r = run_model_full(cfg, events);
    (r.outputs, r.stats, r.accepted)
}

/// Everything a model run produced.
pub struct ModelRun {
    /// Decisions as they left, with their cycles.
    pub outputs: Vec<Output>,
    /// Descriptors as they left (two tiers), with their cycles.
    pub descriptors: Vec<(u64, Descriptor)>,
    /// Counters.
    pub stats: PipelineStats,
    /// The cycle each event was accepted in.
    pub accepted: Vec<u64>,
}

/// As [`run_model_timed`], also collecting the descriptors.
pub fn run_model_full(cfg: HwConfig, events: &[Event]) -> ModelRun {
    let mut p = Pipeline::new(cfg);
    let mut out = Vec::with_capacity(events.len());
    let mut descriptors = Vec::new();
    let mut accepted = Vec::with_capacity(events.len());
    let mut next = 0usize;
    // Bounded: at most three cycles per event plus the drain.
    for _ in 0..(3 * events.len() + 8) {
        let cycle = p.stats().cycles;
        let c = p.step(events.get(next));
        if c.accepted {
            accepted.push(cycle);
            next += 1;
        }
        if let Some(o) = c.output {
            out.push(o);
        }
        if let Some(d) = c.descriptor {
            descriptors.push((cycle, d));
        }
        if next == events.len() && p.idle() {
            break;
        }
    }
    ModelRun {
        outputs: out,
        descriptors,
        stats: p.stats(),
        accepted,
    }
}

/// Counts positions where two sequences (decisions, outputs, descriptors, telemetry records)
/// differ, plus their length difference, and the first position that differs.
pub fn mismatches<T: PartialEq>(a: &[T], b: &[T]) -> (u64, Option<usize>) {
    let mut n = a.len().abs_diff(b.len()) as u64;
    let mut first = (a.len() != b.len()).then_some(a.len().min(b.len()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            n += 1;
            first = Some(first.map_or(i, |f| f.min(i)));
        }
    }
    (n, first)
}
