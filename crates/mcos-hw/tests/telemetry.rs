//! The telemetry-sample port (`mcos_hw::telemetry`): the model's ring, drained by a fast
//! consumer, holds exactly the software shard's samples (fields mapped as
//! `Record::expected` states) in order; the RTL's drained records and its head, tail and
//! dropped registers equal the model's cycle for cycle, with a consumer slow enough that the
//! ring fills and drops, and with a fast one that never drops.

use mcos_core::{Replacement, SampleKind};
use mcos_hw::stream::{self, Stream, TELEMETRY_SHIFT};
use mcos_hw::telemetry::{PortRun, Record, run_model_with_consumer};
use mcos_hw::{HwConfig, run_model};
use std::sync::OnceLock;

mod common;
use common::{harness_with, trace};

const FRAMES: u32 = 2000;
const SMALL_FRAMES: u32 = 64;
/// A consumer that reads a record every cycle (never behind the pipeline).
const FAST: u32 = 1;
/// One that reads a record every 6 cycles: slower than a stream of misses samples.
const SLOW: u32 = 6;

fn trace_ids() -> Option<Vec<u64>> {
    trace().map(|p| stream::trace_ids(&p, 60_000).expect("the Mooncake trace reads"))
}

/// Runs the model with a fast consumer and checks its ring against the software's samples;
/// returns the run.
fn model_equals_software(what: &str, cfg: HwConfig, s: &Stream) -> PortRun {
    let run = run_model_with_consumer(cfg, &s.events, TELEMETRY_SHIFT, FAST);
    // The port is a side effect: the decisions and their cycles are those of the model
    // without it.
    let (plain, _) = run_model(cfg, &s.events);
    assert_eq!(
        run.outputs, plain,
        "{what}: the port changed a decision or its cycle"
    );
    let last = run.regs.last().copied().unwrap_or_default();
    assert_eq!(last.dropped, 0, "{what}: a fast consumer drops nothing");
    let got = run.records(&cfg);
    let want = s.expected_records(&cfg);
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{what}: ring record {i} differs from the software's sample (event {:?}): {:?} vs {:?}",
            s.telemetry.get(i).map(|t| t.0),
            got.get(i),
            want.get(i)
        );
    }
    // Sampling took place: not every decision has a record, and every kind the pipeline
    // writes appears (tiny tiers have no rejects once the sketch has counted every key).
    let decisions = s.software.iter().filter(|d| d.code as u8 <= 6).count();
    assert!(
        got.len() < decisions,
        "{what}: {} records for {decisions} decisions",
        got.len()
    );
    for k in [
        SampleKind::Hit,
        SampleKind::Miss,
        SampleKind::Admit,
        SampleKind::Evict,
    ] {
        assert!(
            got.iter().any(|r| r.kind == k as u8),
            "{what}: no {k:?} record"
        );
    }
    run
}

#[test]
fn model_ring_equals_software_samples_under_clock_and_aged() {
    for repl in [Replacement::Clock, Replacement::Aged] {
        for (frames, seed) in [(FRAMES, 51), (37, 52), (16, 53), (1, 54)] {
            let s = stream::random_with(repl, frames, 40_000, seed, 700).unwrap();
            let cfg = HwConfig::for_frames(frames).with_replacement(repl);
            let run = model_equals_software(&format!("{repl:?} random, {frames} frames"), cfg, &s);
            if frames == FRAMES {
                let rejects = run
                    .records(&cfg)
                    .iter()
                    .filter(|r| r.kind == SampleKind::Reject as u8)
                    .count();
                assert!(rejects > 0, "{repl:?}: no reject record");
            }
        }
        let s = stream::hazards_with(repl, SMALL_FRAMES, 40_000, 55).unwrap();
        let cfg = HwConfig::for_frames(SMALL_FRAMES).with_replacement(repl);
        model_equals_software(&format!("{repl:?} hazards"), cfg, &s);
        if let Some(ids) = trace_ids() {
            let s = stream::replay_with(repl, FRAMES, &ids, 100_000).unwrap();
            let cfg = HwConfig::for_frames(FRAMES).with_replacement(repl);
            model_equals_software(&format!("{repl:?} trace"), cfg, &s);
        }
    }
}

/// The kinds mask and the epoch come through the install port: a stream whose installs
/// switch kinds off yields fewer records than the same events sampled for every kind, and
/// records carry more than one epoch.
#[test]
fn installs_change_the_kinds_and_the_epoch() {
    let s = stream::random(FRAMES, 40_000, 56, 700).unwrap();
    let cfg = HwConfig::for_frames(FRAMES);
    let masked = run_model_with_consumer(cfg, &s.events, TELEMETRY_SHIFT, FAST).records(&cfg);
    let all: Vec<_> = s
        .events
        .iter()
        .map(|e| match e.op {
            mcos_hw::Op::Swap => mcos_hw::Event::swap(),
            _ => *e,
        })
        .collect();
    let unmasked = run_model_with_consumer(cfg, &all, TELEMETRY_SHIFT, FAST).records(&cfg);
    assert!(
        masked.len() < unmasked.len(),
        "{} vs {}",
        masked.len(),
        unmasked.len()
    );
    let epochs: std::collections::HashSet<u8> = masked.iter().map(|r| r.epoch).collect();
    assert!(epochs.len() > 10, "{} epochs", epochs.len());
    // Shift 0 samples every key: more records again.
    let every = run_model_with_consumer(cfg, &all, 0, FAST).records(&cfg);
    assert!(every.len() > unmasked.len());
}

#[test]
fn a_record_round_trips_through_its_bits() {
    for cfg in [HwConfig::for_frames(FRAMES), mcos_hw::synth::ice40_config()] {
        let r = Record {
            kind: 4,
            tag: 0xABCD_EF01_2345_6789 & ((1u128 << cfg.tag_bits) - 1) as u64,
            frame: (1 << cfg.frame_bits) - 1,
            class: 200,
            epoch: 77,
            value: 3,
        };
        assert_eq!(Record::from_bits(r.to_bits(&cfg), &cfg), r);
        assert!(r.to_bits(&cfg) < 1u128 << mcos_hw::telemetry::record_bits(&cfg));
    }
}

/// RTL vs model with a consumer of `period`: decisions, every cycle's head, tail and dropped,
/// and every drained record with its cycle. Returns the records dropped.
fn rtl_equals_model(
    h: &mcos_hw::verilator::Harness,
    cfg: HwConfig,
    name: &str,
    s: &Stream,
    period: u32,
) -> u32 {
    let model = run_model_with_consumer(cfg, &s.events, TELEMETRY_SHIFT, period);
    let rtl = h
        .run_port(&s.events, name, TELEMETRY_SHIFT, period)
        .expect("the RTL harness ran");
    if let Some(i) = (0..rtl.outputs.len().max(model.outputs.len()))
        .find(|&i| rtl.outputs.get(i) != model.outputs.get(i))
    {
        panic!(
            "{name}: output {i}: RTL {:?} vs model {:?}",
            rtl.outputs.get(i),
            model.outputs.get(i)
        );
    }
    if let Some(c) =
        (0..rtl.regs.len().max(model.regs.len())).find(|&c| rtl.regs.get(c) != model.regs.get(c))
    {
        panic!(
            "{name}: telemetry registers at cycle {c}: RTL {:?} vs model {:?}",
            rtl.regs.get(c),
            model.regs.get(c)
        );
    }
    if let Some(i) = (0..rtl.drained.len().max(model.drained.len()))
        .find(|&i| rtl.drained.get(i) != model.drained.get(i))
    {
        let dec = |x: Option<&(u64, u128)>| x.map(|&(c, b)| (c, Record::from_bits(b, &cfg)));
        panic!(
            "{name}: drained record {i}: RTL {:?} vs model {:?}",
            dec(rtl.drained.get(i)),
            dec(model.drained.get(i))
        );
    }
    let last = model.regs.last().copied().unwrap_or_default();
    // Every record written was drained (the run ends with the consumer caught up).
    assert_eq!(
        u64::from(last.head) % u64::from(2 * cfg.tel_depth()),
        model.drained.len() as u64 % u64::from(2 * cfg.tel_depth())
    );
    last.dropped
}

fn check_both_consumers(h: &mcos_hw::verilator::Harness, cfg: HwConfig, name: &str, s: &Stream) {
    let fast = rtl_equals_model(h, cfg, &format!("{name}, fast consumer"), s, FAST);
    assert_eq!(fast, 0, "{name}: the fast consumer dropped records");
    let slow = rtl_equals_model(h, cfg, &format!("{name}, slow consumer"), s, SLOW);
    assert!(
        slow > 0,
        "{name}: the slow consumer never let the ring fill"
    );
    eprintln!("{name}: slow consumer, {slow} records dropped");
}

#[test]
fn rtl_telemetry_equals_model_cycle_for_cycle_under_clock() {
    static H: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    static S: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    let cfg = HwConfig::for_frames(SMALL_FRAMES);
    if let Some(h) = harness_with(&S, cfg) {
        let s = stream::hazards(SMALL_FRAMES, 40_000, 61).unwrap();
        check_both_consumers(h, cfg, "hazards", &s);
    }
    let cfg = HwConfig::for_frames(FRAMES);
    let Some(h) = harness_with(&H, cfg) else {
        return;
    };
    let s = stream::random(FRAMES, 60_000, 62, 900).unwrap();
    check_both_consumers(h, cfg, "random", &s);
    if let Some(ids) = trace_ids() {
        let s = stream::replay(FRAMES, &ids, 100_000).unwrap();
        check_both_consumers(h, cfg, "trace", &s);
    }
}

#[test]
fn rtl_telemetry_equals_model_cycle_for_cycle_under_aged() {
    static H: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    static S: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    let aged = Replacement::Aged;
    let cfg = HwConfig::for_frames(SMALL_FRAMES).with_replacement(aged);
    if let Some(h) = harness_with(&S, cfg) {
        let s = stream::hazards_with(aged, SMALL_FRAMES, 40_000, 64).unwrap();
        check_both_consumers(h, cfg, "aged hazards", &s);
    }
    let cfg = HwConfig::for_frames(FRAMES).with_replacement(aged);
    let Some(h) = harness_with(&H, cfg) else {
        return;
    };
    let s = stream::random_with(aged, FRAMES, 60_000, 63, 900).unwrap();
    check_both_consumers(h, cfg, "aged random", &s);
    if let Some(ids) = trace_ids() {
        let s = stream::replay_with(aged, FRAMES, &ids, 100_000).unwrap();
        check_both_consumers(h, cfg, "aged trace", &s);
    }
}
