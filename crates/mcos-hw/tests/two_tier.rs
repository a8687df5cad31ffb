//! Two tiers: a tier-0 victim is demoted to tier 1 (a MoveDescriptor), a tier-1 victim is
//! dropped, COMPLETE events finish the move. The model equals the software `Shard` (two
//! tiers, tier 1 its home tier) decision for decision and descriptor for descriptor, and the
//! RTL equals the model cycle for cycle.

use mcos_core::Replacement;
use mcos_hw::stream::{self, Stream};
use mcos_hw::{Code, Decision, Descriptor, HwConfig, Op, run_model_full};

mod common;
use common::{harness_with, trace};
use std::sync::OnceLock;

/// Tier sizes of the two-tier tests: not powers of two (the hands' wraps and the windows'
/// cuts at each tier's last frame), tier 1 smaller than tier 0 so that it fills and evicts.
const FRAMES: u32 = 300;
const FRAMES1: u32 = 100;

fn decisions(out: &[mcos_hw::Output]) -> Vec<Decision> {
    out.iter().map(|o| o.decision).collect()
}

fn count(d: &[Decision], code: Code) -> usize {
    d.iter().filter(|x| x.code == code).count()
}

/// Runs `s` through the model of `cfg` and checks it against the software: every decision,
/// every descriptor (in order, each one cycle after its DEMOTE decision left). Returns the
/// model's decisions.
fn check(what: &str, cfg: HwConfig, s: &Stream) -> Vec<Decision> {
    let r = run_model_full(cfg, &s.events);
    let model = decisions(&r.outputs);
    let (n, first) = mcos_hw::mismatches(&model, &s.software);
    if let Some(i) = first {
        panic!(
            "{what}: {n} mismatches, first at event {i} ({:?}): model {:?}, software {:?}",
            s.events.get(i).map(|e| e.op),
            model.get(i),
            s.software.get(i)
        );
    }
    let sw: Vec<Descriptor> = s.descriptors.iter().map(|&(_, d)| d).collect();
    let hw: Vec<Descriptor> = r.descriptors.iter().map(|&(_, d)| d).collect();
    assert_eq!(hw.len(), sw.len(), "{what}: descriptor count");
    for (k, (a, b)) in hw.iter().zip(&sw).enumerate() {
        assert_eq!(a, b, "{what}: descriptor {k}");
    }
    // Each descriptor leaves the cycle after its DEMOTE decision.
    let demotes: Vec<u64> = r
        .outputs
        .iter()
        .filter(|o| o.decision.code == Code::Demote)
        .map(|o| o.cycle)
        .collect();
    assert_eq!(
        demotes.len(),
        r.descriptors.len(),
        "{what}: a descriptor per DEMOTE"
    );
    for (c, (dc, _)) in demotes.iter().zip(&r.descriptors) {
        assert_eq!(c + 1, *dc, "{what}: descriptor one cycle after its DEMOTE");
    }
    model
}

#[test]
fn model_equals_software_on_random_two_tier_streams() {
    for replacement in [Replacement::Clock, Replacement::Aged] {
        for (frames, frames1, seed) in
            [(FRAMES, FRAMES1, 11), (37, 19, 12), (16, 5, 13), (3, 1, 14)]
        {
            let s =
                stream::random_two_tier(replacement, frames, frames1, 30_000, seed, 900).unwrap();
            let what = format!("{replacement:?} {frames}+{frames1}");
            let model = check(
                &what,
                HwConfig::two_tier(frames, frames1).with_replacement(replacement),
                &s,
            );
            // The stream reached every decision two tiers add (a check that can fail).
            for code in [
                Code::Demote,
                Code::Wait,
                Code::Stale,
                Code::Ack,
                Code::Hit,
                Code::Fill,
            ] {
                assert!(count(&model, code) > 0, "{what}: no {code:?}");
            }
            // Tier 1 filled and evicted: a descriptor names a tier-1 frame twice.
            let mut dst: Vec<u32> = s.descriptors.iter().map(|(_, d)| d.dst_frame).collect();
            let n = dst.len();
            dst.sort_unstable();
            dst.dedup();
            assert!(dst.len() < n, "{what}: no tier-1 frame was reused");
            assert!(
                model
                    .iter()
                    .any(|d| d.code == Code::Hit && d.frame >= frames),
                "{what}: no hit in tier 1"
            );
        }
    }
}

#[test]
fn model_equals_software_on_the_two_tier_hazard_stream() {
    for replacement in [Replacement::Clock, Replacement::Aged] {
        let s = stream::hazards_two_tier(replacement, 64, 24, 40_000, 21).unwrap();
        let model = check(
            &format!("hazards {replacement:?}"),
            HwConfig::two_tier(64, 24).with_replacement(replacement),
            &s,
        );
        // A COMPLETE right behind its DEMOTE (the smallest delay) happened.
        let back_to_back = s.events.windows(2).enumerate().any(|(i, w)| {
            w[1].op == Op::Complete
                && model[i].code == Code::Demote
                && model[i + 1].code == Code::Ack
        });
        assert!(
            back_to_back,
            "{replacement:?}: no COMPLETE right after its DEMOTE"
        );
    }
}

#[test]
fn model_timing_demote_three_cycles_complete_two() {
    let s = stream::random_two_tier(Replacement::Clock, 64, 16, 5_000, 5, 0).unwrap();
    let r = run_model_full(HwConfig::two_tier(64, 16), &s.events);
    // Issue cycles: ACCESS 1, INSERT 2 (3 when it demotes), COMPLETE 2.
    let model = decisions(&r.outputs);
    let mut gap = Vec::new();
    for i in 1..s.events.len() {
        gap.push((
            s.events[i - 1].op,
            model[i - 1].code,
            r.accepted[i] - r.accepted[i - 1],
        ));
    }
    for &(op, code, g) in &gap {
        let want = match (op, code) {
            (Op::Insert, Code::Demote) => 3,
            (Op::Insert, _) | (Op::Complete, _) => 2,
            _ => 1,
        };
        assert_eq!(g, want, "{op:?} {code:?}");
    }
    for (o, a) in r.outputs.iter().zip(&r.accepted) {
        assert_eq!(o.cycle - a, 2, "latency 2 for every event");
    }
}

#[test]
fn model_equals_software_on_the_mooncake_trace_two_tiers() {
    let Some(path) = trace() else { return };
    let ids = stream::trace_ids(&path, 400_000).unwrap();
    // Tier 0 holds 1 % of the trace's blocks' worth, tier 1 as much again.
    for replacement in [Replacement::Clock, Replacement::Aged] {
        let s = stream::replay_two_tier(replacement, 2000, 2000, &ids, 200_000, 7).unwrap();
        let model = check(
            &format!("trace {replacement:?}"),
            HwConfig::two_tier(2000, 2000).with_replacement(replacement),
            &s,
        );
        eprintln!(
            "trace {replacement:?}: {} events, {} demotions, {} waits, {} hits",
            s.events.len(),
            count(&model, Code::Demote),
            count(&model, Code::Wait),
            count(&model, Code::Hit)
        );
        assert!(
            count(&model, Code::Demote) > 1000,
            "{replacement:?}: demotions"
        );
        assert_eq!(count(&model, Code::RejectDirectory), 0);
    }
}

/// Runs `s` through the RTL built for `cfg` and checks it against the model: every output and
/// every descriptor, with its cycle.
fn rtl_equals_model(h: &mcos_hw::verilator::Harness, cfg: HwConfig, name: &str, s: &Stream) {
    let r = run_model_full(cfg, &s.events);
    let rtl = h
        .run_port(&s.events, name, 0, 0)
        .expect("the RTL harness ran");
    assert_eq!(
        rtl.outputs.len(),
        s.events.len(),
        "{name}: one RTL output per event"
    );
    if let Some(i) = rtl.outputs.iter().zip(&r.outputs).position(|(a, b)| a != b) {
        panic!(
            "{name}: RTL and model differ at output {i} ({:?}): {:?} vs {:?}",
            s.events[i].op, rtl.outputs[i], r.outputs[i]
        );
    }
    assert_eq!(
        rtl.descriptors.len(),
        r.descriptors.len(),
        "{name}: descriptor count"
    );
    if let Some(i) = rtl
        .descriptors
        .iter()
        .zip(&r.descriptors)
        .position(|(a, b)| a != b)
    {
        panic!(
            "{name}: RTL and model differ at descriptor {i}: {:?} vs {:?}",
            rtl.descriptors[i], r.descriptors[i]
        );
    }
    assert!(
        !r.descriptors.is_empty(),
        "{name}: descriptors were emitted"
    );
}

fn harness(replacement: Replacement) -> Option<&'static mcos_hw::verilator::Harness> {
    static CLOCK: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    static AGED: OnceLock<Option<mcos_hw::verilator::Harness>> = OnceLock::new();
    let cell = if replacement == Replacement::Aged {
        &AGED
    } else {
        &CLOCK
    };
    harness_with(
        cell,
        HwConfig::two_tier(FRAMES, FRAMES1).with_replacement(replacement),
    )
}

/// The RTL (FRAMES1 > 0) equals the model cycle for cycle, decisions and descriptors, on a
/// random stream with table installs, the hazard stream and the Mooncake trace, under CLOCK
/// and aged replacement.
#[test]
fn rtl_equals_model_cycle_for_cycle_two_tiers() {
    for replacement in [Replacement::Clock, Replacement::Aged] {
        let Some(h) = harness(replacement) else {
            return;
        };
        let cfg = HwConfig::two_tier(FRAMES, FRAMES1).with_replacement(replacement);
        let s = stream::random_two_tier(replacement, FRAMES, FRAMES1, 60_000, 51, 900).unwrap();
        check("random", cfg, &s);
        rtl_equals_model(h, cfg, &format!("two-tier random {replacement:?}"), &s);
        let s = stream::hazards_two_tier(replacement, FRAMES, FRAMES1, 60_000, 52).unwrap();
        check("hazards", cfg, &s);
        rtl_equals_model(h, cfg, &format!("two-tier hazards {replacement:?}"), &s);
        let Some(path) = trace() else { continue };
        let ids = stream::trace_ids(&path, 60_000).unwrap();
        let s = stream::replay_two_tier(replacement, FRAMES, FRAMES1, &ids, 100_000, 53).unwrap();
        check("trace", cfg, &s);
        rtl_equals_model(h, cfg, &format!("two-tier trace {replacement:?}"), &s);
    }
}

/// Long soak (`cargo test -p mcos-hw --release --test two_tier -- --ignored`): a million
/// events per order and seed through software, model and RTL, decisions and descriptors.
#[test]
#[ignore = "minutes: run by hand"]
fn soak_two_tiers_a_million_events() {
    for replacement in [Replacement::Clock, Replacement::Aged] {
        let cfg = HwConfig::two_tier(FRAMES, FRAMES1).with_replacement(replacement);
        for seed in [61, 62] {
            let s = stream::random_two_tier(replacement, FRAMES, FRAMES1, 1_000_000, seed, 5000)
                .unwrap();
            check(&format!("soak {replacement:?} {seed}"), cfg, &s);
            if let Some(h) = harness(replacement) {
                rtl_equals_model(h, cfg, &format!("soak {replacement:?} {seed}"), &s);
            }
        }
    }
}
