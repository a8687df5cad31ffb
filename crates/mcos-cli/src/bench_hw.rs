//! `mcos bench hw`: the fast path as hardware. Replays a stream (the Mooncake trace looped to
//! `--events`, or a random stream with table installs when no trace is given) through the
//! software shard (CLOCK, or aged with `--replacement aged`), the cycle model and the RTL under Verilator; counts mismatches;
//! reports the model's II and latency, yosys and nextpnr figures, decisions per second at the
//! measured iCE40 fmax and at a stated ASIC-class clock, beside the software fast path's
//! decisions per second on the same events measured in this run (CLOCK and list LRU).
//!
//! `--tier1-frames N` adds a second tier of N frames: tier 0's victims are demoted there (the
//! pipeline emits MoveDescriptors, checked field for field against the software shard's and
//! cycle for cycle against the RTL's), the stream carries COMPLETE events, and the synthesis
//! runs the two-tier configurations. The telemetry port is not checked then (no tier-1
//! telemetry).

use crate::args::Format;
use anyhow::{Context, Result};
use clap::Args;
use mcos_hw::software::SoftwareShard;
use mcos_hw::stream::{self, Stream};
use mcos_hw::{Code, HwConfig, Op, synth, verilator};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// The clock the ASIC-class figure assumes (not measured: a 7 nm-class standard-cell design of
/// this depth; hardware-anchors.md section 6.6 uses 500 MHz).
const ASIC_CLOCK_MHZ: f64 = 500.0;

/// Most frames `--frames` takes (the directory then has 2 Mi entries in the simulator).
const MAX_FRAMES: u32 = 1 << 20;

#[derive(Args, Debug)]
pub struct HwArgs {
    /// Mooncake-format trace to replay (looped); without it, a random stream with table
    /// installs.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Events in the checked stream.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Frames of the pipeline's tier 0 (the only tier without `--tier1-frames`), 1 to
    /// 1,048,576: the RTL simulator holds every on-chip table in memory; larger tiers are the
    /// off-chip mapping's (`--offchip-latency`).
    #[arg(long, default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FRAMES)))]
    pub frames: u32,
    /// Frames of a second tier that tier 0's victims are demoted to (0: one tier; at most
    /// 1,048,576, as `--frames`).
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_FRAMES)))]
    pub tier1_frames: u32,
    /// Timed runs of the software shard (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub sw_runs: usize,
    /// Replacement the pipeline, the model and the software shard execute (`clock`: one
    /// reference bit per frame; `aged`: 7-bit age stamps, `Replacement::Aged`).
    #[arg(long, value_enum, default_value_t = HwReplacement::Clock)]
    pub replacement: HwReplacement,
    /// Off-chip read latency in cycles for the off-chip mapping's timing (directory and frame
    /// table off chip; `mcos_hw::offchip`).
    #[arg(long, default_value_t = 100)]
    pub offchip_latency: u32,
    /// Skip yosys and nextpnr (minutes on 2 cores).
    #[arg(long)]
    pub no_synth: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The hardware-friendly replacements `mcos bench hw` can build.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwReplacement {
    /// CLOCK: one reference bit per frame.
    Clock,
    /// Aged: 7-bit age stamps, a sweeping window and one carried candidate.
    Aged,
}

impl HwReplacement {
    fn core(self) -> mcos_core::Replacement {
        match self {
            HwReplacement::Clock => mcos_core::Replacement::Clock,
            HwReplacement::Aged => mcos_core::Replacement::Aged,
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Decisions per second of a fresh software shard (one tier of `frames`, or two with
/// `frames1 > 0`) executing `events` (median of `runs`).
fn software_rate(
    frames: u32,
    frames1: u32,
    table: &mcos_core::PolicyTable,
    s: &Stream,
    runs: usize,
) -> f64 {
    let decisions = s
        .events
        .iter()
        .filter(|e| matches!(e.op, Op::Access | Op::Insert))
        .count() as f64;
    let mut rates = Vec::new();
    for _ in 0..runs.max(1) {
        let mut sw = if frames1 > 0 {
            SoftwareShard::two_tier(frames, frames1, table.clone())
        } else {
            SoftwareShard::with_table(frames, table.clone())
        };
        let t = Instant::now();
        let mut hits = 0u64;
        for e in &s.events {
            if let Ok(d) = sw.apply(e) {
                hits += u64::from(d.code == Code::Hit);
            }
        }
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(hits);
        rates.push(decisions / secs);
    }
    median(rates)
}

pub fn run(a: HwArgs) -> Result<()> {
    let repl = a.replacement.core();
    let two = a.tier1_frames > 0;
    let tiers = if two { 2 } else { 1 };
    let cfg = if two {
        HwConfig::two_tier(a.frames, a.tier1_frames)
    } else {
        HwConfig::for_frames(a.frames)
    }
    .with_replacement(repl);
    let t0 = Instant::now();
    const SEED: u64 = 0x4D43_4F53;
    let (s, source) = match &a.trace {
        Some(p) => {
            let ids = stream::trace_ids(p, usize::MAX).context("reading the trace")?;
            let s = if two {
                stream::replay_two_tier(repl, a.frames, a.tier1_frames, &ids, a.events, SEED)?
            } else {
                stream::replay_with(repl, a.frames, &ids, a.events)?
            };
            (s, format!("{} (looped)", p.display()))
        }
        None => {
            let s = if two {
                stream::random_two_tier(repl, a.frames, a.tier1_frames, a.events, SEED, 2000)?
            } else {
                stream::random_with(repl, a.frames, a.events, SEED, 2000)?
            };
            (s, "random (table install every 2000 requests)".to_owned())
        }
    };
    let gen_s = t0.elapsed().as_secs_f64();
    let mix = stream::mix(&s.events);

    // Model vs software.
    let run = mcos_hw::run_model_full(cfg, &s.events);
    let (model, stats, accepted) = (&run.outputs, run.stats, &run.accepted);
    let model_decisions: Vec<_> = model.iter().map(|o| o.decision).collect();
    let (model_vs_sw, _) = mcos_hw::mismatches(&model_decisions, &s.software);
    // Descriptors, model vs software, field for field in order.
    fn fields<C>(v: &[(C, mcos_hw::event::Descriptor)]) -> Vec<mcos_hw::event::Descriptor> {
        v.iter().map(|(_, d)| *d).collect()
    }
    let (desc_model_vs_sw, _) =
        mcos_hw::mismatches(&fields(&run.descriptors), &fields(&s.descriptors));
    let demotes = stats.decisions[Code::Demote as usize];
    let mut lat_max = [0u64; 5];
    for ((e, o), acc) in s.events.iter().zip(model).zip(accepted) {
        let l = o.cycle - acc;
        lat_max[e.op as usize] = lat_max[e.op as usize].max(l);
    }
    // ACCESS, CLASS_WRITE, SWAP 1; INSERT 2 (3 when it demotes); COMPLETE 2.
    let issue_cycles = mix[0] + 2 * mix[1] + mix[2] + mix[3] + 2 * mix[4] + demotes;
    let decisions = mix[0] + mix[1];
    let ii = issue_cycles as f64 / s.events.len().max(1) as f64;
    let ii_hits = 1.0;
    let hits = model_decisions
        .iter()
        .filter(|d| d.code == Code::Hit)
        .count();

    // Telemetry port, model vs software: the ring drained by a consumer that reads a record a
    // cycle holds the software shard's samples, in order.
    let tel_shift = stream::TELEMETRY_SHIFT;
    let model_port = mcos_hw::telemetry::run_model_with_consumer(cfg, &s.events, tel_shift, 1);
    // Two tiers: no telemetry is checked (the streams are made without it).
    let tel_checked = !two;
    let tel_records = model_port.records(&cfg);
    let tel_expected = s.expected_records(&cfg);
    let (tel_model_vs_sw, _) = mcos_hw::mismatches(&tel_records, &tel_expected);

    // RTL vs model, cycle for cycle: decisions, and the telemetry port's registers every cycle
    // and drained records.
    let mut desc_rtl_vs_model = None;
    let (rtl_vs_model, tel_rtl_vs_model, rtl_note, build_s, rtl_s) = match verilator::build(&cfg) {
        Ok(h) => {
            let t = Instant::now();
            let rtl = h.run_port(&s.events, "bench", tel_shift, 1)?;
            let secs = t.elapsed().as_secs_f64();
            let (differ, _) = mcos_hw::mismatches(&rtl.outputs, model);
            desc_rtl_vs_model = Some(mcos_hw::mismatches(&rtl.descriptors, &run.descriptors).0);
            let tel_differ = mcos_hw::mismatches(&rtl.regs, &model_port.regs).0
                + mcos_hw::mismatches(&rtl.drained, &model_port.drained).0;
            (Some(differ), Some(tel_differ), None, h.build_seconds, secs)
        }
        Err(e) => (None, None, Some(e.to_string()), 0.0, 0.0),
    };

    // Software on the same events: the stream's own policy (CLOCK or aged) and list LRU.
    let sw_clock = software_rate(
        a.frames,
        a.tier1_frames,
        &mcos_hw::software::builtin_tiers(repl, tiers),
        &s,
        a.sw_runs,
    );
    let sw_lru = software_rate(
        a.frames,
        a.tier1_frames,
        &mcos_core::PolicyTable::builtin(tiers as usize),
        &s,
        a.sw_runs,
    );

    // Synthesis.
    let (ice_cfg, generic_cfg) = if two {
        (
            synth::ice40_two_tier_config(),
            synth::generic_two_tier_config(),
        )
    } else {
        (synth::ice40_config(), synth::generic_config())
    };
    let (ice_cfg, generic_cfg) = (
        ice_cfg.with_replacement(repl),
        generic_cfg.with_replacement(repl),
    );
    let (generic, ice, pnr, synth_note) = if a.no_synth {
        (None, None, None, Some("skipped (--no-synth)".to_owned()))
    } else {
        match synth::generic(&generic_cfg)
            .and_then(|g| synth::ice40(&ice_cfg).map(|(i, p)| (g, i, p)))
        {
            Ok((g, i, p)) => (Some(g), Some(i), Some(p), None),
            Err(e) => (None, None, None, Some(e.to_string())),
        }
    };
    let fmax = pnr.as_ref().map(|p| p.fmax_mhz);
    let hw_rate = fmax.map(|f| f * 1e6 / ii);
    // The off-chip mapping's timing on the same events and decisions: MSHRs swept, same-set
    // hazards forwarded, and one stalling row.
    let offchip: Vec<_> = [
        (8u32, true),
        (32, true),
        (128, true),
        (256, true),
        (256, false),
    ]
    .into_iter()
    .map(|(mshrs, forward)| {
        let oc = mcos_hw::offchip::OffchipConfig {
            latency: a.offchip_latency,
            mshrs,
            forward,
        };
        let st = mcos_hw::offchip::schedule(&cfg, oc, &s.events, &model_decisions);
        // (One tier's mapping: with two tiers a DEMOTE and a COMPLETE read no more than a
        // FILL_EVICT and a SWAP, a lower bound.)
        json!({"latency_cycles": oc.latency, "mshrs": mshrs, "forward": forward,
                "ii_cycles": st.ii, "latency_max_cycles": st.latency_max,
                "latency_mean_cycles": st.latency_mean, "reads": st.reads,
                "hazards": st.hazards, "hazard_stall_cycles": st.hazard_stall_cycles,
                "mshr_stall_cycles": st.mshr_stall_cycles,
                "hw_decisions_per_s_asic": ASIC_CLOCK_MHZ * 1e6 / st.ii})
    })
    .collect();
    let bits = cfg.bits();
    let big = HwConfig::for_frames(1 << 16).with_replacement(repl);
    let tel_json = json!({"checked": tel_checked, "shift": tel_shift, "records": tel_records.len(),
        "model_vs_software_mismatches": tel_checked.then_some(tel_model_vs_sw),
        "rtl_vs_model_mismatches": tel_rtl_vs_model.filter(|_| tel_checked),
        "ring_depth": cfg.tel_depth(),
        "record_bits": mcos_hw::telemetry::record_bits(&cfg),
        "onchip_bits": {"sample_bits": bits.sample_bits, "ring": bits.telemetry_ring,
            "registers": bits.telemetry_registers}});
    let mut report = json!({
        "stream": source,
        "frames": a.frames,
        "replacement": format!("{repl:?}"),
        "events_checked": s.events.len(),
        "events_per_kind": {"access": mix[0], "insert": mix[1], "class_write": mix[2], "swap": mix[3], "complete": mix[4]},
        "hit_ratio_of_accesses": hits as f64 / mix[0].max(1) as f64,
        "rtl_vs_model_mismatches": rtl_vs_model,
        "rtl_note": rtl_note,
        "model_vs_software_mismatches": model_vs_sw,
        "ii_cycles": ii,
        "ii_cycles_per_kind": {"access": 1, "insert": 2, "insert_demote": 3, "class_write": 1, "swap": 1, "complete": 2},
        "ii_cycles_hits": ii_hits,
        "latency_cycles": lat_max.iter().max().copied().unwrap_or(0),
        "latency_cycles_per_kind": {"access": lat_max[0], "insert": lat_max[1], "class_write": lat_max[2], "swap": lat_max[3], "complete": lat_max[4]},
        "model_cycles": stats.cycles,
        "fmax_mhz": fmax,
        "fmax_device": pnr.as_ref().map(|p| p.device.clone()),
        "fmax_routed": pnr.as_ref().map(|p| p.routed),
        "hw_decisions_per_s": hw_rate,
        "asic_clock_mhz": ASIC_CLOCK_MHZ,
        "hw_decisions_per_s_asic": ASIC_CLOCK_MHZ * 1e6 / ii,
        "sw_decisions_per_s": sw_clock,
        "sw_decisions_per_s_lru": sw_lru,
        "hw_over_sw": hw_rate.map(|h| h / sw_clock),
        "decisions": decisions,
        "luts": ice.as_ref().map(|i| i.luts),
        "ffs": ice.as_ref().map(|i| i.ffs),
        "ram_bits": ice.as_ref().map(|i| i.ram_bits),
        "ice40": ice.as_ref().map(|i| json!({"luts": i.luts, "ffs": i.ffs, "carries": i.carries,
            "brams": i.brams, "ram_bits": i.ram_bits, "cells": i.cells,
            "logic_cells": pnr.as_ref().map(|p| p.logic_cells),
            "bram_used": pnr.as_ref().map(|p| p.brams),
            "config": format!("{ice_cfg:?}")})),
        "generic": generic.as_ref().map(|g| json!({"cells": g.cells, "ffs": g.ffs, "ram_bits": g.ram_bits,
            "config": format!("{generic_cfg:?}")})),
        "synth_note": synth_note,
        "offchip": offchip,
        "onchip_bytes_per_block": bits.per_block_bytes(cfg.all_frames()),
        "onchip_bytes_per_block_65536_frames": big.bits().per_block_bytes(big.frames),
        "onchip_bits": {"directory": bits.directory, "frame_table": bits.frame_table,
            "reference_bits": bits.reference_bits, "sketch": bits.sketch,
            "class_table": bits.class_table, "registers": bits.registers},
        "seconds": {"stream": gen_s, "verilator_build": build_s, "rtl_run": rtl_s,
            "total": t0.elapsed().as_secs_f64()},
    });
    // Added apart: one more key in the macro above passes serde_json's recursion limit.
    report["telemetry"] = tel_json;
    report["tier1_frames"] = json!(a.tier1_frames);
    report["descriptors"] = json!({"emitted": run.descriptors.len(),
        "software": s.descriptors.len(),
        "model_vs_software_mismatches": desc_model_vs_sw,
        "rtl_vs_model_mismatches": desc_rtl_vs_model,
        "demote": demotes, "wait": stats.decisions[Code::Wait as usize],
        "stale": stats.decisions[Code::Stale as usize]});
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => {
            let f = |v: Option<f64>, d: usize| v.map_or("-".to_owned(), |x| format!("{x:.d$}"));
            println!("stream                      {source}");
            println!(
                "events checked              {} (access {}, insert {}, class write {}, swap {})",
                s.events.len(),
                mix[0],
                mix[1],
                mix[2],
                mix[3]
            );
            println!(
                "RTL vs model mismatches     {}",
                rtl_vs_model.map_or_else(
                    || format!("not run: {}", rtl_note.unwrap_or_default()),
                    |m| m.to_string()
                )
            );
            println!("model vs software           {model_vs_sw}");
            if two {
                println!(
                    "descriptors                 {} (demote {demotes}, wait {}, stale {}); model vs software {desc_model_vs_sw}, RTL vs model {}",
                    run.descriptors.len(),
                    stats.decisions[Code::Wait as usize],
                    stats.decisions[Code::Stale as usize],
                    desc_rtl_vs_model.map_or("-".to_owned(), |m| m.to_string())
                );
            }
            if tel_checked {
                println!(
                    "telemetry records           {} (shift {tel_shift}); model vs software {tel_model_vs_sw}, RTL vs model {}",
                    tel_records.len(),
                    tel_rtl_vs_model.map_or("-".to_owned(), |m| m.to_string())
                );
            } else {
                println!(
                    "telemetry                   not checked (two tiers: no tier-1 telemetry)"
                );
            }
            println!(
                "II (cycles/event, mix)      {ii:.3}  (access 1, insert 2{})",
                if two {
                    ", demoting insert 3, complete 2"
                } else {
                    ""
                }
            );
            println!(
                "latency (cycles)            access {}, insert {}",
                lat_max[0], lat_max[1]
            );
            println!(
                "iCE40 fmax (MHz)            {}{}",
                f(fmax, 2),
                match pnr.as_ref().map(|p| p.routed) {
                    Some(false) => " (post-placement estimate: routing did not complete)",
                    _ => "",
                }
            );
            println!(
                "hardware decisions/s        {} at fmax, {:.0} at {ASIC_CLOCK_MHZ} MHz (assumed)",
                f(hw_rate, 0),
                ASIC_CLOCK_MHZ * 1e6 / ii
            );
            println!("software decisions/s        {sw_clock:.0} {repl:?}, {sw_lru:.0} list LRU");
            println!(
                "iCE40 LUTs / FFs / RAM bits {} / {} / {}",
                ice.as_ref().map_or("-".into(), |i| i.luts.to_string()),
                ice.as_ref().map_or("-".into(), |i| i.ffs.to_string()),
                ice.as_ref().map_or("-".into(), |i| i.ram_bits.to_string())
            );
            if let Some(g) = &generic {
                println!(
                    "generic cells / FFs / mem   {} / {} / {} bits",
                    g.cells, g.ffs, g.ram_bits
                );
            }
            if let Some(n) = &synth_note {
                println!("synthesis                   {n}");
            }
            for o in &offchip {
                println!(
                    "off-chip (latency {}, {} MSHRs, {}) II {:.3}, latency max {} mean {:.1}",
                    o["latency_cycles"],
                    o["mshrs"],
                    if o["forward"] == true {
                        "forward"
                    } else {
                        "stall"
                    },
                    o["ii_cycles"].as_f64().unwrap_or(0.0),
                    o["latency_max_cycles"],
                    o["latency_mean_cycles"].as_f64().unwrap_or(0.0)
                );
            }
            println!(
                "on-chip bytes per block     {:.2} ({} frames), {:.2} (65536 frames)",
                bits.per_block_bytes(cfg.all_frames()),
                cfg.all_frames(),
                big.bits().per_block_bytes(big.frames)
            );
        }
    }
    Ok(())
}
