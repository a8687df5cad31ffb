//! The off-chip mapping: a tier whose directory and frame table do not fit on chip.
//!
//! Mapping. On chip stay what every event or every victim scan touches in bulk and what is
//! small per block: the per-frame replacement state (CLOCK bit or 7-bit age stamp, read 16
//! frames at a time by the scan), the count-min sketch (4 x 4-bit counters per row slot, a
//! fixed size that need not grow with the tier), the class table and the registers. Off
//! chip (DRAM or HBM beside the pipeline) go the two tables that grow with the tier and are
//! touched once per event at one address: the directory (an event reads its two candidate
//! sets, 2 banks x 8 ways, one burst) and the frame table (a fill that evicts reads the
//! victim's directory location, a second, dependent read, and writes the new block's).
//!
//! Timing. A read takes `latency` cycles; at most `mshrs` events with a read outstanding are
//! in flight (the miss-status holding registers); decisions leave in order. An event is
//! accepted when an MSHR is free. An in-flight fill that writes one of its directory sets is
//! a hazard (its read returns the directory before the fill): either stage B merges the
//! in-flight fills from a write buffer compared by set (`forward`, no stall: decisions leave
//! in order, so the fill's is already made), or the later event stalls until the fill's
//! decision. An ACCESS writes no directory entry, so the INSERT that follows a miss on the
//! same key is no hazard. An INSERT
//! keeps the issue slot a second cycle, as on chip; CLASS_WRITE and SWAP read nothing off
//! chip and pass in order. A fill that evicts holds its MSHR for a second read. The
//! victim's invalidation is a posted write (a later event that reads its set is corrected
//! from the write buffer, as the on-chip pipeline forwards it). With `latency` 1 and enough
//! MSHRs this is the on-chip timing less its fixed stages.
//!
//! The decisions are the on-chip pipeline's (the order of events and of their directory
//! updates is unchanged); what this model adds is when each decision leaves: II and latency.

use crate::config::HwConfig;
use crate::event::{Code, Decision, Event, Op};
use std::collections::VecDeque;

/// Off-chip memory seen from the pipeline.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OffchipConfig {
    /// Cycles from a read's issue to its data (at least 1).
    pub latency: u32,
    /// Events with an off-chip read in flight at once (at least 1).
    pub mshrs: u32,
    /// Same-set hazards: `true` forwards (stage B merges the in-flight fills of its sets from
    /// a write buffer of `mshrs` entries, compared by set), `false` stalls the later event
    /// until the fill's decision.
    pub forward: bool,
}

/// Timing of one stream through the off-chip mapping.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct OffchipStats {
    /// Events.
    pub events: u64,
    /// Cycles from the first accept to the last decision.
    pub cycles: u64,
    /// Cycles per event (issue to issue, averaged over the stream).
    pub ii: f64,
    /// Largest accept-to-decision latency, cycles.
    pub latency_max: u64,
    /// Mean accept-to-decision latency, cycles.
    pub latency_mean: f64,
    /// Off-chip reads issued.
    pub reads: u64,
    /// Cycles an event waited for a free MSHR.
    pub mshr_stall_cycles: u64,
    /// Cycles an event waited for an in-flight fill of one of its directory sets (stalling).
    pub hazard_stall_cycles: u64,
    /// Events whose directory sets an in-flight fill was writing (forwarded or stalled).
    pub hazards: u64,
}

struct InFlight {
    sets: [u32; 2],
    /// A fill: it writes a directory entry in one of `sets`.
    writes: bool,
    done: u64,
}

/// Schedules `events` (with the decisions the pipeline makes for them, in order) through the
/// off-chip mapping of `cfg`'s tables.
pub fn schedule(
    cfg: &HwConfig,
    oc: OffchipConfig,
    events: &[Event],
    decisions: &[Decision],
) -> OffchipStats {
    let latency = u64::from(oc.latency.max(1));
    let mshrs = oc.mshrs.max(1) as usize;
    let mut s = OffchipStats {
        events: events.len() as u64,
        ..OffchipStats::default()
    };
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut cycle = 0u64; // the earliest cycle the next event can be accepted
    let mut last_done = 0u64;
    let mut lat_sum = 0u64;
    for (e, d) in events.iter().zip(decisions) {
        let reads = match e.op {
            Op::Access => 1,
            Op::Insert if d.code == Code::FillEvict => 2,
            Op::Insert => 1,
            // A completion rewrites an entry whose location the move register holds.
            Op::ClassWrite | Op::Swap | Op::Complete => 0,
        };
        // Decisions leave in order: an MSHR is free once the oldest in-flight decision left.
        while let Some(f) = inflight.front() {
            if f.done < cycle {
                inflight.pop_front();
            } else {
                break;
            }
        }
        let mut accept = cycle;
        if reads > 0 {
            let sets = crate::model::directory_sets(cfg, e.tag());
            if inflight.len() >= mshrs {
                // Waits for the oldest to leave (in order, so the front frees first).
                let free_at = inflight[inflight.len() - mshrs].done + 1;
                s.mshr_stall_cycles += free_at.saturating_sub(accept);
                accept = accept.max(free_at);
            }
            let conflict = inflight
                .iter()
                .filter(|f| f.writes && f.done >= accept && f.sets.iter().any(|x| sets.contains(x)))
                .map(|f| f.done + 1)
                .max();
            if let Some(at) = conflict {
                s.hazards += 1;
                if !oc.forward {
                    s.hazard_stall_cycles += at.saturating_sub(accept);
                    accept = accept.max(at);
                }
            }
            s.reads += reads;
            // Reads issue in the accept cycle; the decision (stage B) follows the data.
            let ready = accept + latency * reads + 1;
            let done = ready.max(last_done + 1);
            let writes = matches!(d.code, Code::Fill | Code::FillEvict);
            inflight.push_back(InFlight { sets, writes, done });
            last_done = done;
        } else {
            // Install-port events: stage B the next cycle, in order.
            last_done = (accept + 1).max(last_done + 1);
        }
        lat_sum += last_done - accept;
        s.latency_max = s.latency_max.max(last_done - accept);
        cycle = accept + if e.op == Op::Insert { 2 } else { 1 };
    }
    s.cycles = last_done + 1;
    s.ii = cycle as f64 / events.len().max(1) as f64;
    s.latency_mean = lat_sum as f64 / events.len().max(1) as f64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream;

    fn run(frames: u32, oc: OffchipConfig, s: &stream::Stream) -> OffchipStats {
        schedule(&HwConfig::for_frames(frames), oc, &s.events, &s.software)
    }

    const FWD: OffchipConfig = OffchipConfig {
        latency: 100,
        mshrs: 4,
        forward: true,
    };

    #[test]
    fn enough_mshrs_keep_the_on_chip_issue_rate() {
        let s = stream::random(4096, 20_000, 5, 0).unwrap();
        let mix = stream::mix(&s.events);
        let on_chip = (mix[0] + 2 * mix[1]) as f64 / s.events.len() as f64;
        let fast = run(4096, OffchipConfig { latency: 1, ..FWD }, &s);
        assert!(fast.ii >= on_chip && fast.ii < on_chip * 1.05, "{fast:?}");
        let deep = run(4096, OffchipConfig { mshrs: 256, ..FWD }, &s);
        assert!(deep.ii < on_chip * 1.15, "{deep:?} vs {on_chip}");
        assert!(deep.latency_max >= 101);
        assert_eq!(deep.mshr_stall_cycles, 0);
    }

    #[test]
    fn few_mshrs_bound_the_rate_by_latency_over_mshrs() {
        let s = stream::random(4096, 20_000, 6, 0).unwrap();
        let st = run(4096, FWD, &s);
        // Each event holds an MSHR for at least `latency` cycles: at most 4 per 100 cycles.
        assert!(st.ii >= 100.0 / 4.0, "{st:?}");
        assert!(st.mshr_stall_cycles > 0);
        let more = run(4096, OffchipConfig { mshrs: 16, ..FWD }, &s);
        assert!(more.ii < st.ii / 3.0, "{more:?} vs {st:?}");
    }

    #[test]
    fn same_set_events_stall_or_forward() {
        // The hazard stream has INSERTs followed by an ACCESS of the same key.
        let s = stream::hazards(64, 5_000, 7).unwrap();
        let stall_cfg = OffchipConfig {
            latency: 20,
            mshrs: 64,
            forward: false,
        };
        let stall = run(64, stall_cfg, &s);
        assert!(stall.hazard_stall_cycles > 0, "{stall:?}");
        assert!(stall.latency_max >= 21);
        // Forwarding removes those stalls.
        let fwd = run(
            64,
            OffchipConfig {
                forward: true,
                ..stall_cfg
            },
            &s,
        );
        assert_eq!(fwd.hazard_stall_cycles, 0);
        assert!(fwd.hazards > 0);
        assert!(fwd.ii < stall.ii, "{fwd:?} vs {stall:?}");
    }
}
