//! `mcos bench gpu`: every GPU check and benchmark in one run, results as JSON.
//!
//! 1. **Device and kernels**: what the driver reports, how the kernels were built.
//! 2. **Pinned peak**: one large copy host -> HBM and HBM -> host, the link's reference.
//! 3. **Scattered blocks** (16 and 64 KiB by default, 1024 per batch, scattered over arenas four
//!    times larger), both directions, three ways: one `cuMemcpyAsync` per block (the baseline),
//!    the copy-engine batch path, and the gather kernel; each as a fraction of the pinned peak
//!    measured in the same run. Before every repetition the destinations are poisoned; after
//!    the run every moved block is verified (header, key, xxh3) and the kernel's folds are checked.
//! 4. **Decision to first byte**: descriptors pushed into an engine's ring (the moment the fast
//!    path decided) until the gather kernel's first block reports, through mapped host memory,
//!    that it starts moving bytes; p50/p99 over many batches. An upper bound: it includes the
//!    PCIe write that carries the report back.
//! 5. **Disk -> HBM**: through GPUDirect Storage where it can be set up, else through the pinned
//!    bounce buffer; the report says which path ran, and the blocks are verified.
//! 6. **Decode loop**: Llama-3-8B-shaped decode steps (32 layers; per layer a bf16 GEMV over
//!    the layer's weights and attention over its KV blocks) with everything in HBM, then with
//!    part of the KV cache in pinned host memory fetched on demand, and prefetched one layer
//!    ahead; tokens/s next to what the link bandwidth predicts. Outputs of every mode must
//!    match the all-in-HBM outputs, and the streamed blocks are verified.
//!
//! Every CUDA call's status is checked; a failure ends the run with the call named.

use super::config::GpuBenchConfig;
use super::decode_plan::{DecodePlan, DecodeShape, predict};
use mcos_core::{
    BlockKey, GpuRoutes, MoveCompletion, MoveDescriptor, MoveOp, MoveStatus, Urgency, ring,
};
use mcos_tiers::cuda::copy_batch::{CopyBatch, CopyMode};
use mcos_tiers::cuda::gather::{GatherArgs, REREAD_DST, Span, SpanList, launch_gather_raw};
use mcos_tiers::cuda::hbm::HbmTier;
use mcos_tiers::cuda::kernels::{self, Kernels};
use mcos_tiers::cuda::mover::{GpuMover, GpuMoverConfig, GpuTier};
use mcos_tiers::cuda::pinned::{PinnedBuf, PinnedHostTier};
use mcos_tiers::cuda::{DeviceBuf, Event, GpuDevice, Stream, check};
use mcos_tiers::disk::DiskTier;
use mcos_tiers::dram::{DramTier, verify_frame};
use mcos_tiers::engine::route::RouteCell;
use mcos_tiers::engine::thread::{EngineConfig, EngineThread, ShardRings};
use mcos_tiers::error::TierError;
use mcos_tiers::header::{KeyCheck, encode_block};
use mcos_tiers::layout::{frame_stride, gpu_transfer_len};
use serde_json::{Value, json};
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Byte written over destinations before a move, so a block that did not arrive cannot pass
/// as one that did.
const POISON: u8 = 0xA5;

/// Runs everything `cfg` asks for on one device; `progress` gets a line per stage.
pub fn run(cfg: &GpuBenchConfig, progress: &mut dyn FnMut(&str)) -> Result<Value, TierError> {
    cfg.validate().map_err(TierError::Config)?;
    let device = GpuDevice::open(cfg.device)?;
    progress(&format!(
        "device: {} (driver {})",
        device.info().name,
        device.info().driver_version
    ));
    let kernels = Arc::new(Kernels::load(&device)?);
    progress(&format!("kernels: {}", kernels.how()));
    let stream = Stream::new(&device)?;
    let mut report = json!({
        "device": device_json(&device),
        "kernels": kernels.how(),
        "copy_engine_batch": CopyBatch::new(&device, 1).mode().name(),
    });

    progress("pinned peak and scattered blocks...");
    let mut transfers = Vec::new();
    let mut link_64k_h2d = None;
    for &block in &cfg.block_sizes {
        let t = scattered(&device, &kernels, &stream, cfg, block)?;
        if block == 64 << 10 {
            link_64k_h2d = t["h2d"]["gather_kernel"]["gb_per_s"].as_f64();
        }
        progress(&format!(
            "  {} KiB: h2d kernel {:.1} GB/s ({:.0} % of peak), per-block {:.1} GB/s; d2h kernel {:.1} GB/s",
            block >> 10,
            t["h2d"]["gather_kernel"]["gb_per_s"]
                .as_f64()
                .unwrap_or(0.0),
            100.0
                * t["h2d"]["gather_kernel"]["fraction_of_pinned_peak"]
                    .as_f64()
                    .unwrap_or(0.0),
            t["h2d"]["per_block_copy"]["gb_per_s"]
                .as_f64()
                .unwrap_or(0.0),
            t["d2h"]["gather_kernel"]["gb_per_s"]
                .as_f64()
                .unwrap_or(0.0),
        ));
        transfers.push(t);
    }
    report["scattered"] = Value::Array(transfers);

    progress("decision to first byte...");
    report["decision_to_first_byte"] = latency(&device, &kernels, cfg)?;

    progress("disk -> HBM...");
    report["disk_to_hbm"] = disk_to_hbm(&device, &kernels, cfg)?;

    progress("decode loop...");
    report["decode"] = decode(&device, &kernels, cfg, link_64k_h2d, progress)?;
    report["checks_passed"] = Value::Bool(all_checks_pass(&report));
    Ok(report)
}

fn device_json(d: &GpuDevice) -> Value {
    let i = d.info();
    json!({
        "name": i.name,
        "ordinal": i.ordinal,
        "compute_capability": format!("{}.{}", i.compute_capability.0, i.compute_capability.1),
        "sm_count": i.sm_count,
        "memory_bytes": i.total_mem_bytes,
        "driver_api_version": i.driver_version,
        "pci_bus": i.pci_bus,
    })
}

/// Every `"verified"` in the report is true and no `"mismatches"` is non-zero.
pub fn all_checks_pass(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().all(|(k, x)| match (k.as_str(), x) {
            ("verified", Value::Bool(b)) => *b,
            ("fold_mismatches", Value::Number(n)) => n.as_u64() == Some(0),
            _ => all_checks_pass(x),
        }),
        Value::Array(a) => a.iter().all(all_checks_pass),
        _ => true,
    }
}

/// A deterministic permutation of `0..n` (xorshift-driven Fisher-Yates; no RNG dependency).
fn permutation(n: u32, seed: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..p.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.swap(i, (x % (i as u64 + 1)) as usize);
    }
    p
}

fn key_of(i: u64, salt: u64) -> BlockKey {
    BlockKey(u128::from(i + 1) << 32 | u128::from(salt))
}

/// Small bf16 values (|x| < 1), deterministic in (`i`, position): a real-looking KV payload
/// whose products cannot overflow.
fn fill_payload(out: &mut [u8], i: u64) {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for pair in out.chunks_mut(2) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // bf16: sign, exponent 0x70..0x7D (2^-15 .. 2^-2), 7 random mantissa bits.
        let v: u16 = ((x as u16) & 0x8000)
            | ((0x70 + (x >> 16) as u16 % 14) << 7)
            | ((x >> 32) as u16 & 0x7f);
        let b = v.to_le_bytes();
        pair.copy_from_slice(&b[..pair.len()]);
    }
}

/// Writes valid blocks into `frames` frames of a host buffer of stride `stride`.
fn fill_frames(
    host: &mut [u8],
    frames: u32,
    stride: usize,
    payload: u32,
    salt: u64,
) -> Result<(), TierError> {
    let mut body = vec![0u8; payload as usize];
    for f in 0..frames as usize {
        fill_payload(&mut body, f as u64 ^ salt);
        encode_block(
            &mut host[f * stride..(f + 1) * stride],
            key_of(f as u64, salt),
            &body,
        )?;
    }
    Ok(())
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `enqueue` on `stream` `reps` times (after `prepare` each time, outside the timing);
/// returns the median GB/s for `bytes` per repetition.
fn time_reps(
    device: &Arc<GpuDevice>,
    stream: &Stream,
    reps: u32,
    bytes: u64,
    prepare: &mut dyn FnMut() -> Result<(), TierError>,
    enqueue: &mut dyn FnMut() -> Result<(), TierError>,
) -> Result<f64, TierError> {
    let (a, b) = (Event::new(device, true)?, Event::new(device, true)?);
    let mut gbs = Vec::with_capacity(reps as usize);
    // One untimed warm-up: first launches and first batched calls pay set-up costs.
    for rep in 0..=reps {
        prepare()?;
        stream.synchronize()?;
        a.record(stream)?;
        enqueue()?;
        b.record(stream)?;
        b.wait(Duration::from_millis(50))?;
        let ms = f64::from(b.elapsed_ms_since(&a)?);
        if rep > 0 && ms > 0.0 {
            gbs.push(bytes as f64 / (ms * 1e-3) / 1e9);
        }
    }
    Ok(median(&mut gbs))
}

fn result_json(gb_per_s: f64, peak: f64, verified: bool, extra: Value) -> Value {
    let mut v = json!({
        "gb_per_s": gb_per_s,
        "fraction_of_pinned_peak": if peak > 0.0 { gb_per_s / peak } else { 0.0 },
        "verified": verified,
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

/// The scattered-block runs for one block size, both directions.
fn scattered(
    device: &Arc<GpuDevice>,
    kernels: &Kernels,
    stream: &Stream,
    cfg: &GpuBenchConfig,
    block: u32,
) -> Result<Value, TierError> {
    let n = cfg.transfer_blocks;
    let frames = cfg.scatter_frames;
    let stride = frame_stride(block);
    let span_len = gpu_transfer_len(block);
    let bytes = u64::from(n) * span_len as u64;
    let host = PinnedBuf::new(device, frames as usize * stride)?;
    let hbm = HbmTier::new(device, frames, block)?;
    let dev_contig = DeviceBuf::new(device, bytes as usize)?;
    let salt = u64::from(block);
    // SAFETY: no GPU work uses `host` yet.
    fill_frames(
        unsafe { host.bytes_mut(0, host.len()) },
        frames,
        stride,
        block,
        salt,
    )?;
    let src_frames = permutation(frames, 0x1234 ^ salt);
    let dst_frames = permutation(frames, 0x9876 ^ salt);
    let pairs: Vec<(u32, u32)> = (0..n as usize)
        .map(|i| (src_frames[i], dst_frames[i]))
        .collect();
    let host_at = |f: u32| host.dev_ptr() + u64::from(f) * stride as u64;
    let hbm_at = |f: u32| hbm.base_dptr() + u64::from(f) * stride as u64;

    // Pinned peak: one contiguous copy of the same bytes, each way.
    let peak_h2d = time_reps(device, stream, cfg.reps, bytes, &mut || Ok(()), &mut || {
        // SAFETY: both ranges lie inside live allocations (bytes <= frames * stride).
        check(
            unsafe {
                cudarc::driver::sys::cuMemcpyAsync(
                    dev_contig.ptr(),
                    host.dev_ptr(),
                    bytes as usize,
                    stream.raw(),
                )
            },
            "cuMemcpyAsync",
            "timing the pinned peak",
        )
    })?;
    let peak_d2h = time_reps(device, stream, cfg.reps, bytes, &mut || Ok(()), &mut || {
        // SAFETY: as above; the host buffer's contents are rewritten below before use.
        check(
            unsafe {
                cudarc::driver::sys::cuMemcpyAsync(
                    host.dev_ptr(),
                    dev_contig.ptr(),
                    bytes as usize,
                    stream.raw(),
                )
            },
            "cuMemcpyAsync",
            "timing the pinned peak",
        )
    })?;
    // The D2H peak overwrote host frames: write the blocks again.
    // SAFETY: the stream is idle (time_reps waited).
    fill_frames(
        unsafe { host.bytes_mut(0, host.len()) },
        frames,
        stride,
        block,
        salt,
    )?;

    let mut out = json!({
        "block_bytes": block,
        "blocks": n,
        "span_bytes": span_len,
        "pinned_peak": { "h2d_gb_per_s": peak_h2d, "d2h_gb_per_s": peak_d2h },
    });
    let mut copy = CopyBatch::new(device, n as usize);
    let mut list = SpanList::new(device, n as usize)?;
    let grid = device.info().sm_count * 4;

    for dir in ["h2d", "d2h"] {
        let h2d = dir == "h2d";
        let peak = if h2d { peak_h2d } else { peak_d2h };
        let spans: Vec<Span> = pairs
            .iter()
            .map(|&(s, d)| {
                if h2d {
                    Span::new(host_at(s), hbm_at(d), span_len, REREAD_DST)
                } else {
                    Span::new(hbm_at(s), host_at(d), span_len, 0)
                }
            })
            .collect();
        if !h2d {
            // HBM holds the blocks at the source frames: upload the host arena whole.
            // SAFETY: the stream is idle.
            let all = unsafe { host.bytes(0, host.len()) };
            hbm.arena().upload(0, all)?;
        }
        // Destinations are poisoned before every repetition.
        let mut poison = || -> Result<(), TierError> {
            if h2d {
                hbm.arena().fill(0, hbm.arena_bytes(), POISON, stream)
            } else {
                stream.synchronize()?;
                for &(_, d) in &pairs {
                    // SAFETY: the stream is idle; frame `d` is inside the buffer.
                    unsafe { host.bytes_mut(d as usize * stride, stride) }.fill(POISON);
                }
                Ok(())
            }
        };
        let verify = || -> Result<bool, TierError> {
            stream.synchronize()?;
            let mut frame = vec![0u8; stride];
            for &(s, d) in &pairs {
                let bytes: &[u8] = if h2d {
                    hbm.download_frame(d, &mut frame)?;
                    &frame
                } else {
                    // SAFETY: the stream is idle.
                    unsafe { host.bytes(d as usize * stride, stride) }
                };
                if verify_frame(bytes, block, d, KeyCheck::Key(key_of(u64::from(s), salt))).is_err()
                {
                    return Ok(false);
                }
            }
            Ok(true)
        };

        let per_block = time_reps(device, stream, cfg.reps, bytes, &mut poison, &mut || {
            // SAFETY: every span lies in live allocations owned by this function.
            unsafe { copy.enqueue(&spans, stream, CopyMode::PerBlock) }.map(|_| ())
        })?;
        let per_block_ok = verify()?;
        let mut mode = CopyMode::Batched;
        let batched = time_reps(device, stream, cfg.reps, bytes, &mut poison, &mut || {
            // SAFETY: as above.
            mode = unsafe { copy.enqueue(&spans, stream, CopyMode::Batched) }?;
            Ok(())
        })?;
        let batched_ok = verify()?;
        list.clear();
        for s in &spans {
            list.push(*s)?;
        }
        let mut mismatches = 0u32;
        let kernel = time_reps(device, stream, cfg.reps, bytes, &mut poison, &mut || {
            // SAFETY: as above; the list is not touched until time_reps waited.
            unsafe { list.launch_gather(kernels, stream, grid, None) }
        })?;
        stream.synchronize()?;
        mismatches += list.mismatches();
        let kernel_ok = verify()? && mismatches == 0;
        out[dir] = json!({
            "per_block_copy": result_json(per_block, peak, per_block_ok, json!({"calls_per_batch": n})),
            "copy_engine_batch": result_json(batched, peak, batched_ok, json!({"mode": mode.name()})),
            "gather_kernel": result_json(kernel, peak, kernel_ok, json!({
                "launches_per_batch": 1,
                "fold_mismatches": mismatches,
                "speedup_over_per_block": if per_block > 0.0 { kernel / per_block } else { 0.0 },
                "target_90pct_of_peak_met": kernel >= 0.9 * peak,
            })),
        });
    }
    Ok(out)
}

/// Decision to first byte through a real engine thread and a real GPU mover.
fn latency(
    device: &Arc<GpuDevice>,
    kernels: &Arc<Kernels>,
    cfg: &GpuBenchConfig,
) -> Result<Value, TierError> {
    let block = 16u32 << 10;
    let frames = cfg.latency_batch * 2;
    let dram = Arc::new(DramTier::new(frames, block)?);
    let mut body = vec![0u8; block as usize];
    for f in 0..frames {
        fill_payload(&mut body, u64::from(f));
        dram.write_block(f, key_of(u64::from(f), 7), &body)?;
    }
    let host = Arc::new(PinnedHostTier::register(device, dram)?);
    let hbm = Arc::new(HbmTier::new(device, frames, block)?);
    let routes = Arc::new(RouteCell::new(GpuRoutes::BUILTIN));
    let mut mcfg =
        GpuMoverConfig::new(vec![GpuTier::Host(host), GpuTier::Hbm(hbm.clone())], routes);
    mcfg.use_gds = false;
    let mut mover = GpuMover::new(device, kernels.clone(), mcfg)?;
    let probe = PinnedBuf::new(device, 64)?;
    mover.set_start_probe(Some(probe.dev_ptr()));
    let counters = mover.counters();
    let (mut dtx, drx) = ring::<MoveDescriptor>(mcos_core::limits::DESCRIPTOR_RING_DEPTH);
    let (ctx, mut crx) = ring::<MoveCompletion>(mcos_core::limits::COMPLETION_RING_DEPTH);
    let tiers = mcos_tiers::store::TierSet::new(vec![mcos_tiers::store::TierStore::Dram(
        Arc::new(DramTier::new(1, 1)?),
    )])?;
    let mut engine = EngineThread::spawn(
        EngineConfig::new(
            0,
            tiers,
            vec![ShardRings {
                descriptors: drx,
                completions: ctx,
            }],
        )
        .with_mover(Box::new(mover))
        .with_name("mcos-gpu-bench-engine")
        .with_spin_before_park(mcos_tiers::engine::thread::MAX_IDLE_PARK),
    )?;
    let mut samples = Vec::with_capacity(cfg.latency_samples as usize);
    let mut done = vec![MoveCompletion::EMPTY; cfg.latency_batch as usize];
    let mut failed = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let read_probe = || {
        // SAFETY: the probe is 64 bytes of pinned memory the kernel writes with one 4-byte
        // store; a volatile read sees either the old or the new value.
        unsafe { std::ptr::read_volatile(probe.host_ptr().cast::<u32>()) }
    };
    for sample in 0..cfg.latency_samples {
        let before = read_probe();
        let base = (sample % 2) * cfg.latency_batch;
        // The decision is made when the first descriptor enters the ring; a polling engine may
        // start on it before the rest of the batch is pushed (then the first launch is the
        // first byte moving, and later launches of the batch do not count).
        let t0 = Instant::now();
        for i in 0..cfg.latency_batch {
            let d = MoveDescriptor {
                key_tag: key_of(u64::from(i), 7).tag(),
                move_id: i,
                src_frame: i,
                dst_frame: base + i,
                len: block,
                op: MoveOp::Promote,
                src_tier: 0,
                dst_tier: 1,
                urgency: Urgency::Demand,
                epoch: 0,
                class: 0,
                engine: 0,
            };
            if dtx.push(d).is_err() {
                return Err(TierError::Config("latency ring full".into()));
            }
        }
        engine.doorbell();
        while read_probe() == before {
            if Instant::now() > deadline {
                return Err(TierError::Config(
                    "the GPU engine never reported a kernel start".into(),
                ));
            }
            std::hint::spin_loop();
        }
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
        let mut got = 0usize;
        while got < cfg.latency_batch as usize {
            let k = crx.pop_batch(&mut done[got..]);
            for c in &done[got..got + k] {
                if c.status != MoveStatus::Done {
                    failed += 1;
                }
            }
            got += k;
            if Instant::now() > deadline {
                return Err(TierError::Config("the GPU engine stopped answering".into()));
            }
        }
    }
    engine.shutdown()?;
    samples.sort_by(f64::total_cmp);
    let p99 = percentile(&samples, 0.99);
    Ok(json!({
        "samples": samples.len(),
        "descriptors_per_sample": cfg.latency_batch,
        "p50_us": percentile(&samples, 0.5),
        "p99_us": p99,
        "max_us": samples.last().copied().unwrap_or(0.0),
        "target_p99_5us_met": p99 <= 5.0,
        "verified": failed == 0,
        "failed_moves": failed,
        "launches": counters.launches.load(std::sync::atomic::Ordering::Relaxed),
        "measures": "descriptor batch pushed into the engine's ring -> gather kernel's first block reports its start through mapped host memory (includes the PCIe write back: an upper bound)",
    }))
}

/// disk -> HBM through cuFile when possible, else the bounce buffer; both when cuFile runs.
fn disk_to_hbm(
    device: &Arc<GpuDevice>,
    kernels: &Arc<Kernels>,
    cfg: &GpuBenchConfig,
) -> Result<Value, TierError> {
    let block = 64u32 << 10;
    let n = cfg.disk_blocks;
    std::fs::create_dir_all(&cfg.disk_dir)
        .map_err(|e| TierError::io(format!("creating {}", cfg.disk_dir.display()), e))?;
    let path = cfg
        .disk_dir
        .join(format!("mcos-gpu-bench-{}.bin", std::process::id()));
    let disk = Arc::new(DiskTier::create(&path, n, block)?);
    let mut body = vec![0u8; block as usize];
    for f in 0..n {
        fill_payload(&mut body, u64::from(f) ^ 0xD15C);
        disk.write_block(f, key_of(u64::from(f), 0xD15C), &body)?;
    }
    let hbm = Arc::new(HbmTier::new(device, n, block)?);
    let mut runs = Vec::new();
    for use_gds in [true, false] {
        let routes = Arc::new(RouteCell::new(GpuRoutes::BUILTIN));
        let mut mcfg = GpuMoverConfig::new(
            vec![GpuTier::Hbm(hbm.clone()), GpuTier::Disk(disk.clone())],
            routes,
        );
        mcfg.use_gds = use_gds;
        let mut mover = GpuMover::new(device, kernels.clone(), mcfg)?;
        let status = mover.gds_status().clone();
        if use_gds && status.path() == "bounce" {
            // cuFile could not be set up; the bounce run below is the only path.
            continue;
        }
        let stream = Stream::new(device)?;
        hbm.arena().fill(0, hbm.arena_bytes(), POISON, &stream)?;
        stream.synchronize()?;
        let descs: Vec<MoveDescriptor> = (0..n)
            .map(|f| MoveDescriptor {
                key_tag: key_of(u64::from(f), 0xD15C).tag(),
                move_id: f,
                src_frame: f,
                dst_frame: f,
                len: block,
                op: MoveOp::Promote,
                src_tier: 1,
                dst_tier: 0,
                urgency: Urgency::Demand,
                epoch: 0,
                class: 0,
                engine: 0,
            })
            .collect();
        let mut outs = vec![mcos_tiers::engine::Outcome::done(0); descs.len()];
        let t = Instant::now();
        use mcos_tiers::engine::Mover;
        for (d, o) in descs
            .chunks(mover.max_batch())
            .zip(outs.chunks_mut(mover.max_batch()))
        {
            mover.execute(d, o);
        }
        let secs = t.elapsed().as_secs_f64();
        let moved_ok = outs.iter().all(|o| o.status == MoveStatus::Done);
        // Independent check: read every HBM frame back and verify it.
        let mut frame = vec![0u8; gpu_transfer_len(block)];
        let mut readback_ok = true;
        for f in 0..n {
            hbm.download_frame(f, &mut frame)?;
            readback_ok &= verify_frame(
                &frame,
                block,
                f,
                KeyCheck::Key(key_of(u64::from(f), 0xD15C)),
            )
            .is_ok();
        }
        let c = mover.counters();
        runs.push(json!({
            "path": status.path(),
            "status": format!("{status:?}"),
            "blocks": n,
            "block_bytes": block,
            "gb_per_s": f64::from(n) * f64::from(block) / secs / 1e9,
            "gds_reads": c.gds_reads.load(std::sync::atomic::Ordering::Relaxed),
            "bounce_reads": c.bounce_reads.load(std::sync::atomic::Ordering::Relaxed),
            "verified": moved_ok && readback_ok,
        }));
    }
    drop(disk);
    let _ = std::fs::remove_file(&path);
    Ok(Value::Array(runs))
}

/// Device arrays for one decode mode: per layer, the frame addresses its attention reads and
/// the spans that stream its host blocks in.
struct ModeArrays {
    ptrs: DeviceBuf,
    spans: DeviceBuf,
    host_spans: Vec<Vec<Span>>,
    sums: DeviceBuf,
    mismatches: DeviceBuf,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Mode {
    AllHbm,
    OnDemand,
    Prefetch,
    PrefetchCopyEngine,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::AllHbm => "all_in_hbm",
            Mode::OnDemand => "on_demand",
            Mode::Prefetch => "mcos_prefetch",
            Mode::PrefetchCopyEngine => "mcos_prefetch_copy_engine",
        }
    }
}

struct DecodeBufs {
    hbm: HbmTier,
    host: PinnedBuf,
    weights: DeviceBuf,
    x: DeviceBuf,
    y: DeviceBuf,
    q: DeviceBuf,
    out: DeviceBuf,
    rows: u32,
    staging_base: u32,
}

const HIDDEN: u32 = 4096;
const KV_HEADS: u32 = 8;
const HEAD_DIM: u32 = 128;

fn decode(
    device: &Arc<GpuDevice>,
    kernels: &Kernels,
    cfg: &GpuBenchConfig,
    link_gb_per_s: Option<f64>,
    progress: &mut dyn FnMut(&str),
) -> Result<Value, TierError> {
    let shape = DecodeShape::llama3_8b(cfg.context_tokens);
    let layers = shape.layers;
    let bpl = shape.blocks_per_layer();
    let stride = shape.frame_bytes() as usize;
    let all = layers * bpl;
    let staging_base = all;
    let bufs = DecodeBufs {
        hbm: HbmTier::new(device, all + 2 * bpl, shape.block_payload_bytes)?,
        host: PinnedBuf::new(device, all as usize * stride)?,
        weights: DeviceBuf::new(device, cfg.weights_bytes_per_layer as usize)?,
        x: DeviceBuf::new(device, HIDDEN as usize * 4)?,
        y: DeviceBuf::new(
            device,
            (cfg.weights_bytes_per_layer / 2 / u64::from(HIDDEN)) as usize * 4,
        )?,
        q: DeviceBuf::new(device, (KV_HEADS * HEAD_DIM) as usize * 4)?,
        out: DeviceBuf::new(device, (layers * KV_HEADS * (HEAD_DIM + 1)) as usize * 4)?,
        rows: (cfg.weights_bytes_per_layer / 2 / u64::from(HIDDEN)) as u32,
        staging_base,
    };
    let compute = Stream::new(device)?;
    let copy_stream = Stream::new(device)?;
    // Values: weights, x and q all 0x3C bytes (bf16 0.0115, f32 0.0115); KV blocks from
    // `fill_payload`, written once on the host and uploaded.
    bufs.weights.fill(0, bufs.weights.len(), 0x3C, &compute)?;
    bufs.x.fill(0, bufs.x.len(), 0x3C, &compute)?;
    bufs.q.fill(0, bufs.q.len(), 0x3C, &compute)?;
    compute.synchronize()?;
    // SAFETY: no GPU work touches `host` yet.
    fill_frames(
        unsafe { bufs.host.bytes_mut(0, bufs.host.len()) },
        all,
        stride,
        shape.block_payload_bytes,
        0xDEC0,
    )?;
    // SAFETY: as above.
    bufs.hbm
        .arena()
        .upload(0, unsafe { bufs.host.bytes(0, bufs.host.len()) })?;
    progress(&format!(
        "  KV cache: {layers} layers x {bpl} blocks of 64 KiB ({} MiB)",
        (u64::from(all) * 65536) >> 20
    ));

    let reference_plan =
        DecodePlan::with_resident_fraction(shape, 1.0).map_err(|e| TierError::Config(e.0))?;
    let (ref_tps, ref_out, ref_json) = run_mode(
        device,
        kernels,
        &bufs,
        &compute,
        &copy_stream,
        cfg,
        &reference_plan,
        Mode::AllHbm,
    )?;
    progress(&format!("  all in HBM: {ref_tps:.1} tokens/s"));
    let compute_layer_s = 1.0 / ref_tps / f64::from(layers);
    let link = link_gb_per_s.filter(|g| *g > 0.0).unwrap_or(50.0) * 1e9;
    let mut rows = vec![json!({"resident_fraction": 1.0, "modes": [ref_json]})];
    for &f in &cfg.resident_fractions {
        let plan =
            DecodePlan::with_resident_fraction(shape, f).map_err(|e| TierError::Config(e.0))?;
        let pred = predict(&plan, compute_layer_s, link);
        let mut modes = Vec::new();
        for mode in [Mode::OnDemand, Mode::Prefetch, Mode::PrefetchCopyEngine] {
            let (tps, out, mut j) = run_mode(
                device,
                kernels,
                &bufs,
                &compute,
                &copy_stream,
                cfg,
                &plan,
                mode,
            )?;
            let same = outputs_match(&ref_out, &out);
            j["outputs_match_all_in_hbm"] = Value::Bool(same);
            j["verified"] = Value::Bool(j["verified"].as_bool().unwrap_or(false) && same);
            j["vs_all_in_hbm"] = json!(tps / ref_tps);
            if mode != Mode::OnDemand {
                j["within_10pct_of_all_in_hbm"] = Value::Bool(tps >= 0.9 * ref_tps);
            }
            progress(&format!(
                "  resident {f}: {} {tps:.1} tokens/s ({:.0} % of all-in-HBM)",
                mode.name(),
                100.0 * tps / ref_tps
            ));
            modes.push(j);
        }
        rows.push(json!({
            "resident_fraction": f,
            "resident_blocks_per_layer": plan.resident_per_layer,
            "streamed_blocks_per_layer": plan.streamed_per_layer,
            "hbm_kv_frames_used": plan.hbm_frames,
            "hbm_kv_frames_all_resident": plan.all_resident_frames(),
            "streamed_bytes_per_token": plan.streamed_bytes_per_step(),
            "prediction": {
                "link_gb_per_s": link / 1e9,
                "compute_per_layer_us": pred.compute_layer_s * 1e6,
                "transfer_per_layer_us": pred.transfer_layer_s * 1e6,
                "link_carries_working_set": pred.link_carries,
                "max_hidden_blocks_per_layer": pred.max_hidden_blocks_per_layer,
                "on_demand_tokens_per_s": 1.0 / pred.on_demand_step_s,
                "prefetch_tokens_per_s": 1.0 / pred.prefetch_step_s,
                "prefetch_vs_all_in_hbm": pred.prefetch_ratio(),
            },
            "modes": modes,
        }));
    }
    Ok(json!({
        "model_shape": "Llama-3-8B: 32 layers, 8 KV heads x 128 dims, bf16, 16-token blocks (64 KiB per layer per block)",
        "context_tokens": cfg.context_tokens,
        "weights_bytes_per_layer": cfg.weights_bytes_per_layer,
        "weights_note": "one weight buffer of a layer's size, read by every layer (larger than L2, so each layer reads it from HBM)",
        "timed_tokens": cfg.decode_tokens,
        "sweep": rows,
    }))
}

/// Element-wise equal within float reordering noise (atomics add in any order): 1e-3 of the
/// largest magnitude, plus a floor.
fn outputs_match(a: &[f32], b: &[f32]) -> bool {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.is_finite() && y.is_finite() && (x - y).abs() <= 1e-3 * scale + 1e-4)
}

/// Builds the mode's per-layer arrays.
fn mode_arrays(
    device: &Arc<GpuDevice>,
    bufs: &DecodeBufs,
    plan: &DecodePlan,
    mode: Mode,
) -> Result<ModeArrays, TierError> {
    let layers = plan.shape.layers;
    let bpl = plan.blocks_per_layer;
    let (r, s) = (plan.resident_per_layer, plan.streamed_per_layer);
    let stride = plan.shape.frame_bytes();
    let span_len = gpu_transfer_len(plan.shape.block_payload_bytes);
    let hbm_at = |f: u32| bufs.hbm.base_dptr() + u64::from(f) * stride;
    let host_at = |f: u32| bufs.host.dev_ptr() + u64::from(f) * stride;
    let mut ptrs: Vec<u8> = Vec::with_capacity((layers * bpl) as usize * 8);
    let mut spans: Vec<u8> = Vec::new();
    let mut host_spans = Vec::with_capacity(layers as usize);
    for l in 0..layers {
        let set = match mode {
            Mode::Prefetch | Mode::PrefetchCopyEngine => l % 2,
            _ => 0,
        };
        let mut layer_spans = Vec::with_capacity(s as usize);
        for j in 0..bpl {
            let canonical = l * bpl + j;
            let at = if j < r {
                canonical
            } else {
                let staged = bufs.staging_base + set * s + (j - r);
                layer_spans.push(Span::new(
                    host_at(canonical),
                    hbm_at(staged),
                    span_len,
                    REREAD_DST,
                ));
                staged
            };
            ptrs.extend_from_slice(&hbm_at(at).to_le_bytes());
        }
        for sp in &layer_spans {
            spans.extend_from_slice(&sp.src.to_le_bytes());
            spans.extend_from_slice(&sp.dst.to_le_bytes());
            spans.extend_from_slice(&sp.len.to_le_bytes());
            spans.extend_from_slice(&sp.flags.to_le_bytes());
        }
        host_spans.push(layer_spans);
    }
    let ptr_buf = DeviceBuf::new(device, ptrs.len())?;
    ptr_buf.upload(0, &ptrs)?;
    let span_buf = DeviceBuf::new(device, spans.len().max(24))?;
    if !spans.is_empty() {
        span_buf.upload(0, &spans)?;
    }
    let sums = DeviceBuf::new(device, (layers * s.max(1)) as usize * 16)?;
    let mismatches = DeviceBuf::new(device, 64)?;
    mismatches.upload(0, &[0u8; 64])?;
    Ok(ModeArrays {
        ptrs: ptr_buf,
        spans: span_buf,
        host_spans,
        sums,
        mismatches,
    })
}

/// Enqueues layer `l`'s compute on `stream`: the weights GEMV and attention over its blocks.
fn enqueue_layer(
    k: &Kernels,
    bufs: &DecodeBufs,
    arrays: &ModeArrays,
    plan: &DecodePlan,
    l: u32,
    stream: &Stream,
    sms: u32,
) -> Result<(), TierError> {
    let bpl = plan.blocks_per_layer;
    let (mut w, mut x, mut y) = (bufs.weights.ptr(), bufs.x.ptr(), bufs.y.ptr());
    let (mut rows, mut cols) = (bufs.rows, HIDDEN);
    let mut p: [*mut c_void; 5] = [
        (&raw mut w).cast(),
        (&raw mut x).cast(),
        (&raw mut y).cast(),
        (&raw mut rows).cast(),
        (&raw mut cols).cast(),
    ];
    // SAFETY: arguments match `mcos_gemv_bf16(w, x, y, rows, cols)`; the buffers hold rows x cols
    // bf16, cols floats and rows floats, and live until the benchmark synchronizes.
    unsafe { kernels::launch(k.gemv, sms * 8, stream.raw(), &mut p, "launching the GEMV")? };
    let mut blocks = arrays.ptrs.ptr() + u64::from(l) * u64::from(bpl) * 8;
    let mut n = bpl;
    let mut q = bufs.q.ptr();
    let mut out = bufs.out.ptr() + u64::from(l * KV_HEADS * (HEAD_DIM + 1)) * 4;
    let (mut tokens, mut heads, mut dim) = (plan.shape.block_tokens, KV_HEADS, HEAD_DIM);
    let mut a: [*mut c_void; 7] = [
        (&raw mut blocks).cast(),
        (&raw mut n).cast(),
        (&raw mut q).cast(),
        (&raw mut out).cast(),
        (&raw mut tokens).cast(),
        (&raw mut heads).cast(),
        (&raw mut dim).cast(),
    ];
    // SAFETY: arguments match `mcos_attend`; `blocks` holds bpl frame addresses whose frames
    // hold 64 KiB KV payloads; `out` has heads x (dim + 1) floats for this layer.
    unsafe { kernels::launch(k.attend, bpl, stream.raw(), &mut a, "launching attention") }
}

/// Enqueues layer `l`'s transfer on `stream` (kernel or copy engines).
#[allow(clippy::too_many_arguments)]
fn enqueue_fetch(
    k: &Kernels,
    arrays: &ModeArrays,
    copy: &mut CopyBatch,
    plan: &DecodePlan,
    l: u32,
    stream: &Stream,
    mode: Mode,
    grid: u32,
) -> Result<(), TierError> {
    let s = plan.streamed_per_layer;
    if s == 0 {
        return Ok(());
    }
    if mode == Mode::PrefetchCopyEngine {
        // SAFETY: the spans point into the host and HBM arenas, alive until the benchmark
        // synchronizes; the staging set is not read meanwhile (events order it).
        unsafe { copy.enqueue(&arrays.host_spans[l as usize], stream, CopyMode::Batched)? };
        return Ok(());
    }
    let args = GatherArgs {
        spans: arrays.spans.ptr() + u64::from(l) * u64::from(s) * 24,
        n: s,
        sums: arrays.sums.ptr() + u64::from(l) * u64::from(s) * 16,
        mismatches: arrays.mismatches.ptr(),
    };
    // SAFETY: as above; the span list, folds and counter live in `arrays`.
    unsafe { launch_gather_raw(k, stream, args, grid, None) }
}

#[allow(clippy::too_many_arguments)]
fn run_mode(
    device: &Arc<GpuDevice>,
    k: &Kernels,
    bufs: &DecodeBufs,
    compute: &Stream,
    copy_stream: &Stream,
    cfg: &GpuBenchConfig,
    plan: &DecodePlan,
    mode: Mode,
) -> Result<(f64, Vec<f32>, Value), TierError> {
    let arrays = mode_arrays(device, bufs, plan, mode)?;
    let layers = plan.shape.layers;
    let sms = device.info().sm_count;
    let mut copy = CopyBatch::new(device, plan.streamed_per_layer.max(1) as usize);
    let fetched = [Event::new(device, false)?, Event::new(device, false)?];
    let computed = [Event::new(device, false)?, Event::new(device, false)?];
    let warmup = 2u32;
    let mut started = Instant::now();
    for token in 0..warmup + cfg.decode_tokens {
        if token == warmup {
            compute.synchronize()?;
            copy_stream.synchronize()?;
            started = Instant::now();
        }
        bufs.out.fill(0, bufs.out.len(), 0, compute)?;
        match mode {
            Mode::AllHbm => {
                for l in 0..layers {
                    enqueue_layer(k, bufs, &arrays, plan, l, compute, sms)?;
                }
            }
            Mode::OnDemand => {
                for l in 0..layers {
                    enqueue_fetch(k, &arrays, &mut copy, plan, l, compute, mode, sms * 4)?;
                    enqueue_layer(k, bufs, &arrays, plan, l, compute, sms)?;
                }
            }
            Mode::Prefetch | Mode::PrefetchCopyEngine => {
                // Layer 0 of each token is fetched at the start of the token (its staging set
                // was last read by layer 30 of the previous token: wait for that).
                copy_stream.wait(&computed[0])?;
                enqueue_fetch(k, &arrays, &mut copy, plan, 0, copy_stream, mode, sms)?;
                fetched[0].record(copy_stream)?;
                for l in 0..layers {
                    let set = (l % 2) as usize;
                    if l + 1 < layers {
                        let next = ((l + 1) % 2) as usize;
                        // The next layer's staging set was last read by layer l - 1.
                        copy_stream.wait(&computed[next])?;
                        enqueue_fetch(k, &arrays, &mut copy, plan, l + 1, copy_stream, mode, sms)?;
                        fetched[next].record(copy_stream)?;
                    }
                    compute.wait(&fetched[set])?;
                    enqueue_layer(k, bufs, &arrays, plan, l, compute, sms)?;
                    computed[set].record(compute)?;
                }
            }
        }
    }
    compute.synchronize()?;
    copy_stream.synchronize()?;
    let secs = started.elapsed().as_secs_f64();
    let tps = f64::from(cfg.decode_tokens) / secs;
    let mut raw = vec![0u8; bufs.out.len()];
    bufs.out.download(0, &mut raw)?;
    let out: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut m = [0u8; 4];
    arrays.mismatches.download(0, &mut m)?;
    let mismatches = u32::from_le_bytes(m);
    // The staging sets hold the last layers' streamed blocks: verify them with their checksums.
    let staged_ok = verify_staging(bufs, plan, mode)?;
    let json = json!({
        "mode": mode.name(),
        "tokens_per_s": tps,
        "step_ms": 1e3 / tps,
        "fold_mismatches": mismatches,
        "verified": mismatches == 0 && staged_ok,
    });
    Ok((tps, out, json))
}

fn verify_staging(bufs: &DecodeBufs, plan: &DecodePlan, mode: Mode) -> Result<bool, TierError> {
    let (r, s, bpl, layers) = (
        plan.resident_per_layer,
        plan.streamed_per_layer,
        plan.blocks_per_layer,
        plan.shape.layers,
    );
    if s == 0 {
        return Ok(true);
    }
    let last: Vec<u32> = match mode {
        Mode::AllHbm => return Ok(true),
        Mode::OnDemand => vec![layers - 1],
        Mode::Prefetch | Mode::PrefetchCopyEngine => vec![layers - 2, layers - 1],
    };
    let payload = plan.shape.block_payload_bytes;
    let mut frame = vec![0u8; gpu_transfer_len(payload)];
    for l in last {
        let set = if mode == Mode::OnDemand { 0 } else { l % 2 };
        for j in r..bpl {
            let staged = bufs.staging_base + set * s + (j - r);
            bufs.hbm.download_frame(staged, &mut frame)?;
            let key = key_of(u64::from(l * bpl + j), 0xDEC0);
            if verify_frame(&frame, payload, staged, KeyCheck::Key(key)).is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_permutations() {
        let p = permutation(1000, 42);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn payload_values_are_small_finite_bf16() {
        let mut b = vec![0u8; 4096];
        fill_payload(&mut b, 3);
        for c in b.chunks(2) {
            let bits = u32::from(u16::from_le_bytes([c[0], c[1]])) << 16;
            let v = f32::from_bits(bits);
            assert!(v.is_finite() && v.abs() < 1.0, "{v}");
        }
    }

    #[test]
    fn outputs_compare_within_reordering_noise_only() {
        let a = vec![10.0f32, -3.0, 0.001, 7.5];
        let mut b = a.clone();
        b[2] += 0.005; // 5e-4 of the largest magnitude: reordering noise
        assert!(outputs_match(&a, &b));
        b[1] += 0.5; // a wrong block read gives differences like this
        assert!(!outputs_match(&a, &b));
        assert!(!outputs_match(&a, &a[..3]));
        assert!(!outputs_match(&[f32::NAN], &[f32::NAN]));
    }

    #[test]
    fn check_walker_finds_failures_anywhere() {
        assert!(all_checks_pass(
            &json!({"a": {"verified": true}, "b": [{"fold_mismatches": 0}]})
        ));
        assert!(!all_checks_pass(
            &json!({"a": [{"x": {"verified": false}}]})
        ));
        assert!(!all_checks_pass(&json!({"fold_mismatches": 2})));
    }

    #[test]
    fn no_driver_is_an_error_not_a_panic() {
        if driver_present_for_tests() {
            eprintln!("skipped: a CUDA driver is present; this checks the no-GPU path");
            return;
        }
        let cfg = GpuBenchConfig::quick(std::env::temp_dir());
        let err = run(&cfg, &mut |_| {}).unwrap_err();
        assert!(matches!(err, TierError::NoGpu(_)), "{err}");
        assert!(err.to_string().contains("libcuda"), "{err}");
    }

    fn driver_present_for_tests() -> bool {
        mcos_tiers::cuda::driver_present()
    }
}
