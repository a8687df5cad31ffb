//! The telemetry-sample port, shaped like a CXL hotness monitoring unit (CHMU, CXL 3.x): the
//! pipeline writes one record per sampled decision into an on-chip ring, a hotlist with a
//! head register the hardware advances and a tail register the consumer
//! writes; a full ring drops the record and counts it, and the pipeline never stalls. It
//! samples by the software shard's rule (`Shard::sample`): the kind's bit in the kinds mask,
//! and the key in the spatial sample at the configured shift (`is_sampled`).
//!
//! Configuration: the kinds mask comes through the table-install port (a SWAP carries the
//! installed table's `telemetry_kinds`, in force from the next event, as the software takes
//! it at its next event boundary); the shift and the tail are register writes
//! ([`Reg`], one write per cycle). The shift is meant to be written once after reset, as the
//! software's is fixed per shard (`ShardConfig::telemetry_shift`): an eviction is sampled on
//! a bit each frame keeps from its fill (the victim's key is not on chip when it is evicted),
//! so a later shift applies to evictions only as frames refill.
//!
//! Record (`record_bits` wide; low bits first): the key tag (`tag_bits`: the tag the pipeline
//! holds; 0 for an eviction, whose key the pipeline does not hold), the frame (hit, admitted,
//! or evicted; 0 for a miss or a reject), the value (2 bits: the reject reason,
//! `RejectReason as u64`: 0 admission, 3 directory), the table epoch (8 bits: its low bits;
//! 1 out of reset, one more per SWAP, as `PolicyReader::epoch`), the class (8 bits: the
//! INSERT's class for an admission or a reject, 0 otherwise: a resident block's class is not
//! on chip) and the kind (3 bits, `SampleKind`). The tier is implied by the kind (one tier:
//! 0 for hit, admit and evict, 7 for miss and reject); the software's tick and shard are not
//! recorded (ring order is event order; one port per pipeline).
//!
//! Timing: a record is decided in B (hit, miss, reject, evict) or C (admit, after the evict
//! of the same INSERT, as the software samples them) and written into the ring the cycle
//! after (a staging register, off the decision's paths); the full test uses the head and
//! tail of that cycle. A consumer read (`read`: a ring index) returns the record the next
//! cycle. The port adds no stall and no stage: II and latency are unchanged.

use crate::HwConfig;
use crate::event::{Decision, Event, Output};
use crate::model::Pipeline;
use mcos_core::{SampleKind, TelemetrySample};

/// Default log2 of the ring depth (64 records).
pub const DEPTH_BITS_DEFAULT: u32 = 6;
/// Bits of the kind field.
pub const KIND_BITS: u32 = 3;
/// Bits of the class field.
pub const CLASS_BITS: u32 = 8;
/// Bits of the table epoch kept in a record (the brain tells recent installs apart; 256
/// installs between a record's write and its read do not happen).
pub const EPOCH_BITS: u32 = 8;
/// Bits of the value field (the reject reason).
pub const VALUE_BITS: u32 = 2;
/// Bits of the shift register (the software clamps a shift to 40).
pub const SHIFT_BITS: u32 = 6;
/// Kinds the pipeline decides: hit, miss, admit, reject, evict (bits 0..5 of the mask).
pub const KINDS: u32 = 5;
/// Bits of the dropped-record counter (wraps; a reader takes differences).
pub const DROPPED_BITS: u32 = 32;

/// Bits of one record.
pub fn record_bits(cfg: &HwConfig) -> u32 {
    KIND_BITS + CLASS_BITS + EPOCH_BITS + VALUE_BITS + cfg.frame_bits + cfg.tag_bits
}

/// Bits of the port's registers: head and tail (a wrap bit above the index), dropped, shift,
/// kinds, table epoch.
pub fn register_bits(cfg: &HwConfig) -> u64 {
    u64::from(2 * (cfg.tel_depth_bits + 1) + DROPPED_BITS + SHIFT_BITS + KINDS + EPOCH_BITS)
}

/// A register the consumer writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    /// Ring position after the last record consumed (index plus a wrap bit).
    Tail = 0,
    /// Spatial-sample shift (keys sampled at rate 2^-shift; clamped to 40 like the software).
    Shift = 1,
}

/// The port's inputs in one cycle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PortIn {
    /// A register write (lands at the clock edge).
    pub write: Option<(Reg, u32)>,
    /// A ring index to read (its record is on the read port the next cycle).
    pub read: Option<u32>,
}

/// The port's registers as the consumer sees them in a cycle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// Ring position the next record goes to (index plus a wrap bit).
    pub head: u32,
    /// As last written by the consumer.
    pub tail: u32,
    /// Records dropped because the ring was full.
    pub dropped: u32,
}

/// One record, its fields decoded.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `SampleKind as u8`.
    pub kind: u8,
    /// Key tag (`tag_bits` of it); 0 for an eviction.
    pub tag: u64,
    /// Frame hit, admitted into or evicted from; 0 for a miss or a reject.
    pub frame: u32,
    /// INSERT's class for an admission or a reject, else 0.
    pub class: u8,
    /// Low `EPOCH_BITS` of the table epoch.
    pub epoch: u8,
    /// Reject reason, else 0.
    pub value: u8,
}

fn mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

impl Record {
    /// The record as the ring stores it: `{kind, class, epoch, value, frame, tag}`.
    pub fn to_bits(&self, cfg: &HwConfig) -> u128 {
        let (t, f) = (cfg.tag_bits, cfg.frame_bits);
        (u128::from(self.tag) & mask(t))
            | ((u128::from(self.frame) & mask(f)) << t)
            | ((u128::from(self.value) & mask(VALUE_BITS)) << (t + f))
            | (u128::from(self.epoch) << (t + f + VALUE_BITS))
            | (u128::from(self.class) << (t + f + VALUE_BITS + EPOCH_BITS))
            | ((u128::from(self.kind) & mask(KIND_BITS))
                << (t + f + VALUE_BITS + EPOCH_BITS + CLASS_BITS))
    }

    /// Decodes [`Record::to_bits`].
    pub fn from_bits(bits: u128, cfg: &HwConfig) -> Record {
        let (t, f) = (cfg.tag_bits, cfg.frame_bits);
        let field = |at: u32, n: u32| (bits >> at) & mask(n);
        Record {
            tag: field(0, t) as u64,
            frame: field(t, f) as u32,
            value: field(t + f, VALUE_BITS) as u8,
            epoch: field(t + f + VALUE_BITS, EPOCH_BITS) as u8,
            class: field(t + f + VALUE_BITS + EPOCH_BITS, CLASS_BITS) as u8,
            kind: field(t + f + VALUE_BITS + EPOCH_BITS + CLASS_BITS, KIND_BITS) as u8,
        }
    }

    /// The record the pipeline writes for the software's `sample`, taken at an event whose
    /// decision was `decision`: the frame of a hit, an admission or an eviction is the
    /// decision's (a fill that evicts takes the victim's frame); the fields the pipeline does
    /// not hold (an eviction's key, a resident block's class, the tick and shard) are 0.
    pub fn expected(sample: &TelemetrySample, decision: Decision, cfg: &HwConfig) -> Record {
        let tag_mask = mask(cfg.tag_bits) as u64;
        let kind = sample.kind as u8;
        let (tag, frame, class) = match sample.kind {
            SampleKind::Hit => (sample.key_tag, decision.frame, 0),
            SampleKind::Admit => (sample.key_tag, decision.frame, sample.class),
            SampleKind::Evict => (0, decision.frame, 0),
            SampleKind::Miss => (sample.key_tag, 0, 0),
            SampleKind::Reject => (sample.key_tag, 0, sample.class),
            SampleKind::MoveDone => (sample.key_tag, 0, sample.class),
        };
        Record {
            kind,
            tag: tag & tag_mask,
            frame,
            class,
            epoch: sample.epoch as u8,
            value: if sample.kind == SampleKind::Reject {
                sample.value as u8
            } else {
                0
            },
        }
    }
}

/// A consumer of the ring: every `period` cycles (0: never) it reads the record at its own
/// read position when there is one (head differs), and in the cycle the record arrives it
/// writes the tail past it. At `period` 1 it drains a record a cycle, as fast as the pipeline
/// writes them. `hw/tb/harness.cpp` runs the same consumer against the RTL.
#[derive(Clone, Debug)]
pub struct Consumer {
    period: u32,
    countdown: u32,
    next: u32,
    inflight: Option<u32>,
    ptr_mask: u32,
    index_mask: u32,
}

impl Consumer {
    /// A consumer for `cfg`'s ring reading once per `period` cycles.
    pub fn new(cfg: &HwConfig, period: u32) -> Consumer {
        Consumer {
            period,
            countdown: 0,
            next: 0,
            inflight: None,
            ptr_mask: (2 << cfg.tel_depth_bits) - 1,
            index_mask: (1 << cfg.tel_depth_bits) - 1,
        }
    }

    /// One cycle: the registers and the read port's data as they are in it; returns the
    /// port's inputs for the cycle and the record that arrived, if any.
    pub fn cycle(&mut self, regs: Regs, read_data: u128) -> (PortIn, Option<u128>) {
        let mut port = PortIn::default();
        let mut got = None;
        if let Some(pos) = self.inflight.take() {
            got = Some(read_data);
            port.write = Some((Reg::Tail, (pos + 1) & self.ptr_mask));
        }
        if self.period > 0 {
            if self.countdown == 0 {
                if self.next != regs.head {
                    port.read = Some(self.next & self.index_mask);
                    self.inflight = Some(self.next);
                    self.next = (self.next + 1) & self.ptr_mask;
                    self.countdown = self.period - 1;
                }
            } else {
                self.countdown -= 1;
            }
        }
        (port, got)
    }

    /// Whether it has read everything up to `head`.
    pub fn caught_up(&self, head: u32) -> bool {
        self.period == 0 || (self.inflight.is_none() && self.next == head)
    }
}

/// What a run with a consumer saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRun {
    /// The decisions, cycle stamped.
    pub outputs: Vec<Output>,
    /// The registers in every cycle.
    pub regs: Vec<Regs>,
    /// Records the consumer drained: the cycle each arrived and its bits.
    pub drained: Vec<(u64, u128)>,
    /// Movement descriptors (two tiers), cycle stamped.
    pub descriptors: Vec<(u64, crate::event::Descriptor)>,
}

impl PortRun {
    /// The drained records, decoded.
    pub fn records(&self, cfg: &HwConfig) -> Vec<Record> {
        self.drained
            .iter()
            .map(|&(_, b)| Record::from_bits(b, cfg))
            .collect()
    }
}

/// At most this many cycles past the stream for the consumer to drain the ring.
pub fn drain_cycles(cfg: &HwConfig, period: u32) -> u64 {
    (u64::from(cfg.tel_depth()) + 8) * u64::from(period.max(1)) * 2
}

/// Runs `events` through the model as the harness runs them through the RTL: events offered
/// back to back from cycle 0, `shift` written in cycle 0, a [`Consumer`] of `period`, until
/// every event was accepted, the consumer has caught up and five cycles passed with no
/// decision out.
pub fn run_model_with_consumer(cfg: HwConfig, events: &[Event], shift: u8, period: u32) -> PortRun {
    let mut p = Pipeline::new(cfg);
    let mut consumer = Consumer::new(&cfg, period);
    let mut run = PortRun::default();
    let mut next = 0usize;
    let mut idle = 0u32;
    let limit = 3 * events.len() as u64 + 16 + drain_cycles(&cfg, period);
    for cycle in 0..limit {
        let regs = p.tel_regs();
        run.regs.push(regs);
        let (mut port, got) = consumer.cycle(regs, p.tel_read_data());
        if let Some(bits) = got {
            run.drained.push((cycle, bits));
        }
        if cycle == 0 {
            port.write = Some((Reg::Shift, u32::from(shift)));
        }
        let c = p.step_port(events.get(next), port);
        if let Some(o) = c.output {
            run.outputs.push(o);
        }
        if let Some(d) = c.descriptor {
            run.descriptors.push((cycle, d));
        }
        // As the harness: `next` counts the events accepted before this cycle.
        if c.output.is_some() || c.descriptor.is_some() || !consumer.caught_up(regs.head) {
            idle = 0;
        } else if next >= events.len() {
            idle += 1;
            if idle > 4 {
                break;
            }
        }
        if c.accepted {
            next += 1;
        }
    }
    run
}
