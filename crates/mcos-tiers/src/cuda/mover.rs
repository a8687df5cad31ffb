//! The GPU engine: executes movement descriptors that touch HBM, fed by the same descriptor
//! rings as every engine (it runs inside [`crate::EngineThread`] as a [`Mover`]).
//!
//! Per batch (up to `GPU_ENGINE_BATCH` descriptors), by source and destination:
//! - pinned host -> HBM: the source's header (magic, checksum, key tag, length) is checked before
//!   the launch; its payload checksum (xxh3) is verified on the CPU while the GPU moves it (the
//!   read claim keeps it unchanged), so verification costs no latency. The move goes to the
//!   gather kernel or the copy engines, as the installed table's [`mcos_core::GpuRoutes`] say for
//!   its size and the measured link state; the destination is checked by folding what landed
//!   (the kernel re-reads it; after copy-engine copies a fold kernel reads it) against the fold
//!   of the source. It completes `Done` only if both checks pass;
//! - HBM -> pinned host: gather kernel or copy engines, then the destination is verified on the
//!   CPU (header, key tag, xxh3);
//! - HBM -> HBM: gather kernel with re-read;
//! - disk -> HBM: GPUDirect Storage (cuFile) when set up, verified by reading the block back
//!   into a pinned bounce slot; else the disk read lands in a pinned bounce slot, is verified
//!   there, and the kernel moves it up;
//! - HBM -> disk: through a bounce slot, verified before it is written.
//!
//! All kernel moves of a batch are one launch and all copy-engine moves one batched call: the
//! CPU does a fixed amount of work per batch, never a driver call per block (except on drivers
//! without `cuMemcpyBatchAsync`, where the copy-engine path is one call per block, and reported
//! as such). A transfer whose folds differ completes `IoError` (`EIO`); a block that fails its
//! checksum completes `Corrupt`.

use super::copy_batch::{CopyBatch, CopyMode};
use super::gather::{REREAD_DST, Span, SpanList};
use super::gds::{Gds, GdsStatus};
use super::hbm::{HbmRead, HbmTier, HbmWrite};
use super::kernels::Kernels;
use super::pinned::{PinnedBuf, PinnedHostTier};
use super::{Event, GpuDevice, Stream};
use crate::disk::DiskTier;
use crate::dram::{FrameRead, FrameWrite, verify_frame};
use crate::engine::batch::BatchTally;
use crate::engine::route::{GpuPath, LinkMeter, RouteCell, choose_path};
use crate::engine::{BackendChoice, IoBackend, IoKind, IoOp, Mover, Outcome, select_backend};
use crate::error::TierError;
use crate::fold::fold64;
use crate::header::KeyCheck;
use crate::layout::{frame_stride, gpu_transfer_len, transfer_len};
use mcos_core::limits::{GPU_BOUNCE_SLOTS, GPU_ENGINE_BATCH};
use mcos_core::{MoveDescriptor, MoveStatus};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One tier as the GPU engine sees it.
#[derive(Clone)]
pub enum GpuTier {
    /// Device memory.
    Hbm(Arc<HbmTier>),
    /// Pinned, device-mapped host memory.
    Host(Arc<PinnedHostTier>),
    /// A disk tier's file.
    Disk(Arc<DiskTier>),
}

impl GpuTier {
    fn block_bytes(&self) -> u32 {
        match self {
            GpuTier::Hbm(t) => t.block_bytes(),
            GpuTier::Host(t) => t.dram().block_bytes(),
            GpuTier::Disk(t) => t.block_bytes(),
        }
    }
}

/// How to build a [`GpuMover`].
pub struct GpuMoverConfig {
    /// Tiers by id (`TierId(i)` is `tiers[i]`).
    pub tiers: Vec<GpuTier>,
    /// Routes of the installed policy table (the node publishes every install).
    pub routes: Arc<RouteCell>,
    /// Disk I/O backend for bounce-buffer moves.
    pub disk_backend: BackendChoice,
    /// Try GPUDirect Storage for disk -> HBM reads.
    pub use_gds: bool,
    /// How long to poll a batch's completion before blocking on it.
    pub completion_spin: Duration,
    /// Most CUDA blocks per kernel launch (0: four per SM).
    pub grid_cap: u32,
}

impl GpuMoverConfig {
    /// Defaults: GDS on, 200 us of polling, four CUDA blocks per SM.
    pub fn new(tiers: Vec<GpuTier>, routes: Arc<RouteCell>) -> GpuMoverConfig {
        GpuMoverConfig {
            tiers,
            routes,
            disk_backend: BackendChoice::Auto,
            use_gds: true,
            completion_spin: Duration::from_micros(200),
            grid_cap: 0,
        }
    }
}

/// What the GPU engine did, by path. Written by the engine thread, read by anyone (`Relaxed`:
/// monotonic counts).
#[derive(Debug, Default)]
pub struct GpuCounters {
    /// Moves done by the gather kernel.
    pub kernel_moves: AtomicU64,
    /// Moves done by the copy engines.
    pub copy_engine_moves: AtomicU64,
    /// Kernel launches (gather and fold).
    pub launches: AtomicU64,
    /// Copy-engine calls (one per batch when batched, one per block otherwise).
    pub copy_calls: AtomicU64,
    /// disk -> HBM reads through GPUDirect Storage.
    pub gds_reads: AtomicU64,
    /// disk -> HBM reads through a bounce slot.
    pub bounce_reads: AtomicU64,
    /// HBM -> disk writes through a bounce slot.
    pub bounce_writes: AtomicU64,
    /// Transfers whose destination fold differed from the source fold.
    pub fold_mismatches: AtomicU64,
}

/// Where a move's span went.
#[derive(Copy, Clone)]
enum SpanAt {
    Kernel(usize),
    Copy(usize),
}

/// One descriptor's state within a batch; holds the claims of the frames it uses until the
/// batch is answered.
enum Plan<'a> {
    Finished(Outcome),
    /// Host frame or bounce slot -> HBM frame.
    ToHbm {
        /// Host source frame (None: a bounce slot, verified before the launch).
        src: Option<FrameRead<'a>>,
        /// The CPU's verdict on the host source, reached while the GPU moved it.
        cpu_check: Option<Outcome>,
        _dst: HbmWrite<'a>,
        at: SpanAt,
        payload_len: u32,
        src_fold: u64,
        gds: bool,
    },
    /// HBM -> host frame.
    ToHost {
        _src: HbmRead<'a>,
        dst: FrameWrite<'a>,
    },
    /// HBM -> HBM.
    HbmToHbm {
        _src: HbmRead<'a>,
        _dst: HbmWrite<'a>,
        at: SpanAt,
    },
    /// disk -> bounce slot (I/O pending), then -> HBM.
    DiskRead {
        dst: HbmWrite<'a>,
        slot: usize,
        io: usize,
    },
    /// disk -> HBM by cuFile done; the read-back into `slot` verifies it.
    GdsCheck {
        _dst: HbmWrite<'a>,
        slot: usize,
    },
    /// HBM -> bounce slot, then -> disk once verified.
    ToDisk {
        _src: HbmRead<'a>,
        slot: usize,
        fd: i32,
        offset: u64,
        io: Option<(usize, u32)>,
    },
}

/// The GPU engine's mover.
pub struct GpuMover {
    // Field order is drop order: GPU work users first, the device last.
    gds: Option<Gds>,
    gds_status: GdsStatus,
    spans: SpanList,
    folds: SpanList,
    ce_spans: Vec<Span>,
    ce_hbm_dst: Vec<usize>,
    copy: CopyBatch,
    bounce: PinnedBuf,
    slot_stride: usize,
    backend: Box<dyn IoBackend>,
    tiers: Vec<GpuTier>,
    routes: Arc<RouteCell>,
    link: LinkMeter,
    batch_seq: u64,
    probe: Option<(u64, u32)>,
    counters: Arc<GpuCounters>,
    completion_spin: Duration,
    grid_cap: u32,
    /// Recorded after a batch's GPU work (no timing: cheaper to record and to poll).
    done: Event,
    stream: Stream,
    kernels: Arc<Kernels>,
    device: Arc<GpuDevice>,
}

impl GpuMover {
    /// Builds the mover: a stream and events, span lists, bounce slots, the disk backend and,
    /// when asked and possible, GPUDirect Storage between the first disk and HBM tiers.
    pub fn new(
        device: &Arc<GpuDevice>,
        kernels: Arc<Kernels>,
        cfg: GpuMoverConfig,
    ) -> Result<GpuMover, TierError> {
        device.bind()?;
        let slot_stride = cfg
            .tiers
            .iter()
            .map(|t| frame_stride(t.block_bytes()))
            .max()
            .ok_or_else(|| TierError::Config("the GPU engine needs at least one tier".into()))?;
        let hbm = cfg.tiers.iter().find_map(|t| match t {
            GpuTier::Hbm(h) => Some(h.clone()),
            _ => None,
        });
        let disk = cfg.tiers.iter().find_map(|t| match t {
            GpuTier::Disk(d) => Some(d.clone()),
            _ => None,
        });
        let (gds, gds_status) = match (cfg.use_gds, disk, hbm) {
            (false, _, _) => (
                None,
                GdsStatus::Bounce("GPUDirect Storage not requested".into()),
            ),
            (true, Some(d), Some(h)) => match Gds::open(&d, &h) {
                Ok(g) => {
                    let s = g.status().clone();
                    (Some(g), s)
                }
                Err(why) => (None, GdsStatus::Bounce(why)),
            },
            (true, _, _) => (
                None,
                GdsStatus::Bounce("no disk tier next to an HBM tier".into()),
            ),
        };
        let (backend, _) = select_backend(cfg.disk_backend);
        let grid_cap = if cfg.grid_cap == 0 {
            device.info().sm_count * 4
        } else {
            cfg.grid_cap
        };
        Ok(GpuMover {
            gds,
            gds_status,
            spans: SpanList::new(device, GPU_ENGINE_BATCH)?,
            folds: SpanList::new(device, GPU_ENGINE_BATCH)?,
            ce_spans: Vec::with_capacity(GPU_ENGINE_BATCH),
            ce_hbm_dst: Vec::with_capacity(GPU_ENGINE_BATCH),
            copy: CopyBatch::new(device, GPU_ENGINE_BATCH),
            bounce: PinnedBuf::new(device, GPU_BOUNCE_SLOTS * slot_stride)?,
            slot_stride,
            backend,
            tiers: cfg.tiers,
            routes: cfg.routes,
            link: LinkMeter::default(),
            batch_seq: 0,
            probe: None,
            counters: Arc::new(GpuCounters::default()),
            completion_spin: cfg.completion_spin,
            grid_cap,
            done: Event::new(device, false)?,
            stream: Stream::new(device)?,
            kernels,
            device: device.clone(),
        })
    }

    /// Which path disk -> HBM reads take, and why.
    pub fn gds_status(&self) -> &GdsStatus {
        &self.gds_status
    }

    /// How copy-engine batches are issued.
    pub fn copy_mode(&self) -> CopyMode {
        self.copy.mode()
    }

    /// Live counters (share them before handing the mover to an engine thread).
    pub fn counters(&self) -> Arc<GpuCounters> {
        self.counters.clone()
    }

    /// The link state measured so far.
    pub fn link(&self) -> LinkMeter {
        self.link
    }

    /// Makes every gather launch write an increasing value at `dptr` (device-visible address of
    /// mapped host memory) as it starts: the benchmark's decision-to-first-byte probe.
    pub fn set_start_probe(&mut self, dptr: Option<u64>) {
        self.probe = dptr.map(|p| (p, 0));
    }

    /// The value the next probed launch writes.
    pub fn next_probe_value(&self) -> u32 {
        self.probe.map(|(_, v)| v.wrapping_add(1)).unwrap_or(0)
    }

    /// Number of descriptors from `descs` that fit one internal chunk: at most the span-list
    /// capacity and at most `GPU_BOUNCE_SLOTS` moves that need a bounce slot.
    fn chunk_len(&self, descs: &[MoveDescriptor]) -> usize {
        let mut slots = 0;
        for (i, d) in descs.iter().enumerate().take(GPU_ENGINE_BATCH) {
            let needs_slot = matches!(
                (
                    self.tiers.get(usize::from(d.src_tier)),
                    self.tiers.get(usize::from(d.dst_tier))
                ),
                (Some(GpuTier::Disk(_)), _) | (_, Some(GpuTier::Disk(_)))
            );
            if needs_slot {
                if slots == GPU_BOUNCE_SLOTS {
                    return i;
                }
                slots += 1;
            }
        }
        descs.len().min(GPU_ENGINE_BATCH)
    }
}

impl Mover for GpuMover {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn max_batch(&self) -> usize {
        GPU_ENGINE_BATCH
    }

    fn start(&mut self) -> Result<(), TierError> {
        self.device.bind()
    }

    fn execute(&mut self, descs: &[MoveDescriptor], out: &mut [Outcome]) -> BatchTally {
        let mut tally = BatchTally::default();
        let mut start = 0;
        while start < descs.len().min(out.len()) {
            let n = self.chunk_len(&descs[start..]).max(1);
            let end = (start + n).min(descs.len()).min(out.len());
            let t = execute_chunk(self, &descs[start..end], &mut out[start..end]);
            tally.submissions += t.submissions;
            tally.io_bytes += t.io_bytes;
            start = end;
        }
        tally
    }
}

fn slot_ptr(bounce: &PinnedBuf, slot_stride: usize, slot: usize) -> (*mut u8, u64) {
    let off = slot * slot_stride;
    // In bounds: slot < GPU_BOUNCE_SLOTS and the buffer holds that many slots.
    (
        bounce.host_ptr().wrapping_add(off),
        bounce.dev_ptr() + off as u64,
    )
}

/// Pushes a span to the path `path`; returns where it went.
fn push_span(
    spans: &mut SpanList,
    ce: &mut Vec<Span>,
    path: GpuPath,
    span: Span,
) -> Result<SpanAt, TierError> {
    match path {
        GpuPath::Kernel => spans.push(span).map(SpanAt::Kernel),
        GpuPath::CopyEngine => {
            ce.push(span);
            Ok(SpanAt::Copy(ce.len() - 1))
        }
    }
}

fn einval() -> Outcome {
    Outcome::failed(MoveStatus::IoError, libc::EINVAL)
}

#[allow(clippy::too_many_lines)]
fn execute_chunk(m: &mut GpuMover, descs: &[MoveDescriptor], out: &mut [Outcome]) -> BatchTally {
    let GpuMover {
        gds,
        spans,
        folds,
        ce_spans,
        ce_hbm_dst,
        copy,
        bounce,
        slot_stride,
        backend,
        tiers,
        routes,
        link,
        batch_seq,
        probe,
        counters,
        completion_spin,
        grid_cap,
        done,
        stream,
        kernels,
        ..
    } = m;
    let slot_stride = *slot_stride;
    let tiers: &[GpuTier] = tiers;
    let routes = routes.load();
    *batch_seq += 1;
    spans.clear();
    folds.clear();
    ce_spans.clear();
    ce_hbm_dst.clear();
    let mut tally = BatchTally::default();
    let mut next_slot = 0usize;
    let mut io_ops: Vec<IoOp> = Vec::new();
    let mut plans: Vec<Plan<'_>> = Vec::with_capacity(descs.len());

    // 1. Claims, source checks, spans; disk reads queued.
    for d in descs {
        let plan = plan_one(
            d,
            tiers,
            gds.as_ref(),
            spans,
            ce_spans,
            ce_hbm_dst,
            bounce,
            slot_stride,
            &mut next_slot,
            &mut io_ops,
            &routes,
            link,
            *batch_seq,
            counters,
        );
        plans.push(plan.unwrap_or_else(|e| Plan::Finished(Outcome::from_error(&e))));
    }

    // 2. Disk reads into bounce slots, verified, then moved up.
    if !io_ops.is_empty() {
        let mut results = vec![0i32; io_ops.len()];
        // SAFETY: every read's buffer is a distinct bounce slot of `bounce` (pinned, 4096-aligned,
        // `slot_stride` bytes, alive for the call) and no GPU work touches the slots yet; every
        // fd belongs to a disk tier that `tiers` keeps open.
        unsafe { backend.execute(&io_ops, &mut results) };
        tally.submissions += 1;
        for (d, plan) in descs.iter().zip(plans.iter_mut()) {
            let Plan::DiskRead { slot, io, .. } = *plan else {
                continue;
            };
            let res = results[io];
            tally.io_bytes += u64::try_from(res).unwrap_or(0);
            let next = match Outcome::from_io_result(res, &io_ops[io]) {
                Err(failed) => Plan::Finished(failed),
                Ok(()) => {
                    let (host, dev) = slot_ptr(bounce, slot_stride, slot);
                    // SAFETY: the slot was just filled by the completed read and no GPU work
                    // uses it yet; in bounds of the buffer.
                    let bytes = unsafe { std::slice::from_raw_parts(host, slot_stride) };
                    match verify_frame(bytes, d.len, d.src_frame, KeyCheck::Tag(d.key_tag)) {
                        Err(e) => Plan::Finished(Outcome::from_error(&e)),
                        Ok(len) => {
                            let Plan::DiskRead { dst, .. } =
                                std::mem::replace(plan, Plan::Finished(einval()))
                            else {
                                continue;
                            };
                            let span_len = gpu_transfer_len(len);
                            let path = choose_path(len, &routes, link, *batch_seq);
                            let span = Span::new(dev, dst.dptr(), span_len, REREAD_DST);
                            let src_fold = if path == GpuPath::CopyEngine {
                                fold64(&bytes[..span_len])
                            } else {
                                0
                            };
                            counters.bounce_reads.fetch_add(1, Ordering::Relaxed);
                            match push_span(spans, ce_spans, path, span) {
                                Ok(at) => {
                                    if let SpanAt::Copy(i) = at {
                                        ce_hbm_dst.push(i);
                                    }
                                    Plan::ToHbm {
                                        src: None,
                                        cpu_check: None,
                                        _dst: dst,
                                        at,
                                        payload_len: len,
                                        src_fold,
                                        gds: false,
                                    }
                                }
                                Err(e) => Plan::Finished(Outcome::from_error(&e)),
                            }
                        }
                    }
                }
            };
            *plan = next;
        }
    }

    // 3. The GPU work of the batch: one gather launch, one copy-engine batch, one fold launch
    //    over the copy engines' HBM destinations; the CPU verifies host sources meanwhile.
    let launch_at = std::time::Instant::now();
    let launched = launch_all(
        spans, folds, ce_spans, ce_hbm_dst, copy, stream, kernels, done, *grid_cap, probe,
        counters, &mut tally,
    );
    if launched.is_ok() {
        verify_sources(descs, &mut plans);
    }
    let waited = launched.and_then(|()| done.wait(*completion_spin));
    if let Err(e) = waited {
        let failed = Outcome::from_error(&e);
        // Wait for whatever did get enqueued before releasing the frames it may still touch.
        let _ = stream.synchronize();
        for o in out.iter_mut() {
            *o = failed;
        }
        return tally;
    }
    // Link state from the host clock (launch to completion seen): no timing events on the path
    // from decision to first byte. A batch that used both paths is not attributed to either.
    let took_ns = launch_at.elapsed().as_nanos() as u64;
    let kb: u64 = spans.bytes();
    let cb: u64 = ce_spans.iter().map(|s| u64::from(s.len)).sum();
    match (kb, cb) {
        (k, 0) if k > 0 => link.record(GpuPath::Kernel, k, took_ns),
        (0, c) if c > 0 => link.record(GpuPath::CopyEngine, c, took_ns),
        _ => {}
    }
    tally.io_bytes += kb + cb;

    // 4. Check every move; queue the disk writes of verified bounce slots.
    let mut writes: Vec<IoOp> = Vec::new();
    for ((d, plan), o) in descs.iter().zip(plans.iter_mut()).zip(out.iter_mut()) {
        *o = match plan {
            Plan::Finished(o) => *o,
            Plan::DiskRead { .. } => einval(),
            Plan::ToHbm {
                cpu_check: Some(bad),
                ..
            } if bad.status != MoveStatus::Done => *bad,
            Plan::ToHbm {
                at,
                payload_len,
                src_fold,
                gds,
                ..
            } => {
                let ok = transfer_ok(*at, spans, folds, ce_hbm_dst, *src_fold);
                if !ok {
                    counters.fold_mismatches.fetch_add(1, Ordering::Relaxed);
                    Outcome::failed(MoveStatus::IoError, libc::EIO)
                } else {
                    if *gds {
                        counters.gds_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::done(*payload_len)
                }
            }
            Plan::HbmToHbm { at, .. } => {
                if transfer_ok(*at, spans, folds, ce_hbm_dst, 0) {
                    Outcome::done(d.len)
                } else {
                    counters.fold_mismatches.fetch_add(1, Ordering::Relaxed);
                    Outcome::failed(MoveStatus::IoError, libc::EIO)
                }
            }
            Plan::ToHost { dst, .. } => match dst.verify(KeyCheck::Tag(d.key_tag)) {
                Ok(len) if len <= d.len => Outcome::done(len),
                Ok(_) => Outcome::failed(MoveStatus::Corrupt, 0),
                Err(e) => Outcome::from_error(&e),
            },
            Plan::GdsCheck { slot, .. } => {
                let (host, _) = slot_ptr(bounce, slot_stride, *slot);
                // SAFETY: the batch's GPU work completed (waited above); in bounds.
                let bytes = unsafe { std::slice::from_raw_parts(host, slot_stride) };
                match verify_frame(bytes, d.len, d.dst_frame, KeyCheck::Tag(d.key_tag)) {
                    Ok(len) => {
                        counters.gds_reads.fetch_add(1, Ordering::Relaxed);
                        Outcome::done(len)
                    }
                    Err(e) => Outcome::from_error(&e),
                }
            }
            Plan::ToDisk {
                slot,
                fd,
                offset,
                io,
                ..
            } => {
                let (host, _) = slot_ptr(bounce, slot_stride, *slot);
                // SAFETY: as above.
                let bytes = unsafe { std::slice::from_raw_parts(host, slot_stride) };
                match verify_frame(bytes, d.len, d.src_frame, KeyCheck::Tag(d.key_tag)) {
                    Ok(len) => {
                        *io = Some((writes.len(), len));
                        writes.push(IoOp {
                            kind: IoKind::Write,
                            fd: *fd,
                            buf: host,
                            len: transfer_len(len) as u32,
                            offset: *offset,
                        });
                        Outcome::done(len)
                    }
                    Err(e) => Outcome::from_error(&e),
                }
            }
        };
    }

    // 5. Disk writes of verified blocks.
    if !writes.is_empty() {
        let mut results = vec![0i32; writes.len()];
        // SAFETY: each write's buffer is a distinct bounce slot, verified, no GPU work pending;
        // every fd belongs to a disk tier `tiers` keeps open.
        unsafe { backend.execute(&writes, &mut results) };
        tally.submissions += 1;
        for (plan, o) in plans.iter().zip(out.iter_mut()) {
            if let Plan::ToDisk {
                io: Some((i, _)), ..
            } = plan
            {
                let res = results[*i];
                tally.io_bytes += u64::try_from(res).unwrap_or(0);
                if let Err(failed) = Outcome::from_io_result(res, &writes[*i]) {
                    *o = failed;
                } else {
                    counters.bounce_writes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    // `plans` drops here and releases every claim, after the GPU and the disk are done.
    drop(plans);
    tally
}

/// The payload length a host source frame's header declares, checked against the descriptor:
/// magic, header checksum, version, key tag, and a length within `d.len` and the frame.
fn header_len(frame: &[u8], d: &MoveDescriptor, max: u32) -> Result<u32, TierError> {
    let corrupt = |reason| TierError::Corrupt {
        frame: d.src_frame,
        reason,
    };
    let h = crate::header::BlockHeader::decode(frame).map_err(|c| corrupt(c.reason))?;
    if h.key.tag() != d.key_tag {
        return Err(corrupt(crate::header::CorruptReason::KeyMismatch {
            expected: KeyCheck::Tag(d.key_tag),
            found: h.key,
        }));
    }
    let bound = d.len.min(max);
    if h.payload_len > bound {
        return Err(corrupt(crate::header::CorruptReason::LengthOutOfBounds {
            len: h.payload_len,
            max: bound as usize,
        }));
    }
    Ok(h.payload_len)
}

/// While the GPU moves the batch: verifies every host source's payload checksum, and folds the
/// sources of copy-engine moves (the fold kernel's result is compared with it afterwards).
fn verify_sources(descs: &[MoveDescriptor], plans: &mut [Plan<'_>]) {
    for (d, plan) in descs.iter().zip(plans.iter_mut()) {
        if let Plan::ToHbm {
            src: Some(src),
            cpu_check,
            at,
            payload_len,
            src_fold,
            ..
        } = plan
        {
            *cpu_check = Some(match src.verify_at_most(d.len, KeyCheck::Tag(d.key_tag)) {
                Ok(len) if len == *payload_len => Outcome::done(len),
                Ok(_) => Outcome::failed(MoveStatus::Corrupt, 0),
                Err(e) => Outcome::from_error(&e),
            });
            if let SpanAt::Copy(_) = at {
                *src_fold = fold64(&src.bytes()[..gpu_transfer_len(*payload_len)]);
            }
        }
    }
}

/// Whether a transfer into HBM landed intact: the kernel's two folds agree, or, after the copy
/// engines, the fold kernel's fold of the destination equals the source's fold.
fn transfer_ok(
    at: SpanAt,
    spans: &SpanList,
    folds: &SpanList,
    ce_hbm_dst: &[usize],
    src_fold: u64,
) -> bool {
    match at {
        SpanAt::Kernel(i) => {
            let (read, back) = spans.sums(i);
            read == back
        }
        SpanAt::Copy(i) => match ce_hbm_dst.iter().position(|&c| c == i) {
            Some(f) => folds.sums(f).0 == src_fold,
            None => true,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn launch_all(
    spans: &SpanList,
    folds: &mut SpanList,
    ce_spans: &[Span],
    ce_hbm_dst: &[usize],
    copy: &mut CopyBatch,
    stream: &Stream,
    kernels: &Kernels,
    done: &Event,
    grid_cap: u32,
    probe: &mut Option<(u64, u32)>,
    counters: &GpuCounters,
    tally: &mut BatchTally,
) -> Result<(), TierError> {
    if !spans.is_empty() {
        let p = probe.as_mut().map(|(ptr, v)| {
            *v = v.wrapping_add(1);
            (*ptr, *v)
        });
        // SAFETY: every span's frames are claimed by the plans, which live until the batch is
        // answered after the stream completes; bounce slots are distinct per move; the list is
        // not touched until the wait.
        unsafe { spans.launch_gather(kernels, stream, grid_cap, p)? };
        counters.launches.fetch_add(1, Ordering::Relaxed);
        counters
            .kernel_moves
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        tally.submissions += 1;
    }
    if !ce_spans.is_empty() {
        // SAFETY: as above.
        let mode = unsafe { copy.enqueue(ce_spans, stream, CopyMode::Batched)? };
        let calls = if mode == CopyMode::Batched {
            1
        } else {
            ce_spans.len() as u64
        };
        counters.copy_calls.fetch_add(calls, Ordering::Relaxed);
        counters
            .copy_engine_moves
            .fetch_add(ce_spans.len() as u64, Ordering::Relaxed);
        tally.submissions += calls;
        for &i in ce_hbm_dst {
            let s = ce_spans[i];
            folds.push(Span::new(s.dst, s.dst, s.len as usize, 0))?;
        }
        if !folds.is_empty() {
            // SAFETY: the fold reads HBM destinations claimed by the plans, after the copies on
            // the same stream.
            unsafe { folds.launch_fold(kernels, stream, grid_cap)? };
            counters.launches.fetch_add(1, Ordering::Relaxed);
        }
    }
    done.record(stream)
}

#[allow(clippy::too_many_arguments)]
fn plan_one<'a>(
    d: &MoveDescriptor,
    tiers: &'a [GpuTier],
    gds: Option<&Gds>,
    spans: &mut SpanList,
    ce: &mut Vec<Span>,
    ce_hbm_dst: &mut Vec<usize>,
    bounce: &PinnedBuf,
    slot_stride: usize,
    next_slot: &mut usize,
    io_ops: &mut Vec<IoOp>,
    routes: &mcos_core::GpuRoutes,
    link: &LinkMeter,
    batch_seq: u64,
    _counters: &GpuCounters,
) -> Result<Plan<'a>, TierError> {
    let tier = |id: u8| {
        tiers.get(usize::from(id)).ok_or_else(|| {
            TierError::Config(format!(
                "descriptor names tier {id}, the GPU engine has {}",
                tiers.len()
            ))
        })
    };
    let (src, dst) = (tier(d.src_tier)?, tier(d.dst_tier)?);
    let max = src.block_bytes().min(dst.block_bytes());
    if d.len > max {
        return Err(TierError::TooLarge {
            len: d.len as usize,
            max: max as usize,
        });
    }
    let mut take_slot = || {
        let s = *next_slot;
        *next_slot += 1;
        debug_assert!(s < GPU_BOUNCE_SLOTS, "chunk_len bounds the slots");
        s
    };
    match (src, dst) {
        (GpuTier::Host(s), GpuTier::Hbm(t)) => {
            let dst = t.claim_write(d.dst_frame)?;
            let src = s.dram().claim_read(d.src_frame)?;
            // Only the header before the launch (tens of nanoseconds): the payload's checksum
            // is verified while the GPU moves it (`verify_sources`), off the path from decision
            // to first byte. The read claim keeps the source unchanged until the batch ends.
            let len = header_len(src.bytes(), d, max)?;
            let span_len = gpu_transfer_len(len);
            let path = choose_path(len, routes, link, batch_seq);
            let src_fold = 0;
            let span = Span::new(s.frame_dptr(d.src_frame)?, dst.dptr(), span_len, REREAD_DST);
            let at = push_span(spans, ce, path, span)?;
            if let SpanAt::Copy(i) = at {
                ce_hbm_dst.push(i);
            }
            Ok(Plan::ToHbm {
                src: Some(src),
                cpu_check: None,
                _dst: dst,
                at,
                payload_len: len,
                src_fold,
                gds: false,
            })
        }
        (GpuTier::Hbm(s), GpuTier::Host(t)) => {
            let src = s.claim_read(d.src_frame)?;
            let dst = t.dram().claim_write(d.dst_frame)?;
            let span = Span::new(
                src.dptr(),
                t.frame_dptr(d.dst_frame)?,
                gpu_transfer_len(d.len),
                0,
            );
            push_span(spans, ce, choose_path(d.len, routes, link, batch_seq), span)?;
            Ok(Plan::ToHost { _src: src, dst })
        }
        (GpuTier::Hbm(s), GpuTier::Hbm(t)) => {
            let src = s.claim_read(d.src_frame)?;
            let dst = t.claim_write(d.dst_frame)?;
            let span = Span::new(src.dptr(), dst.dptr(), gpu_transfer_len(d.len), REREAD_DST);
            let at = SpanAt::Kernel(spans.push(span)?);
            Ok(Plan::HbmToHbm {
                _src: src,
                _dst: dst,
                at,
            })
        }
        (GpuTier::Disk(s), GpuTier::Hbm(t)) => {
            let offset = s.frame_offset(d.src_frame)?;
            let dst = t.claim_write(d.dst_frame)?;
            let slot = take_slot();
            let (host, dev) = slot_ptr(bounce, slot_stride, slot);
            if let Some(g) = gds {
                let base = t.base_dptr();
                let dst_off = dst.dptr() - base;
                // SAFETY: the destination frame is inside the registered arena and claimed for
                // writing; the read length fits the frame (transfer_len(len) <= stride).
                unsafe { g.read(base, transfer_len(d.len), offset, dst_off)? };
                let back = Span::new(dst.dptr(), dev, gpu_transfer_len(d.len), 0);
                spans.push(back)?;
                return Ok(Plan::GdsCheck { _dst: dst, slot });
            }
            io_ops.push(IoOp {
                kind: IoKind::Read,
                fd: s.as_raw_fd(),
                buf: host,
                len: transfer_len(d.len) as u32,
                offset,
            });
            Ok(Plan::DiskRead {
                dst,
                slot,
                io: io_ops.len() - 1,
            })
        }
        (GpuTier::Hbm(s), GpuTier::Disk(t)) => {
            let offset = t.frame_offset(d.dst_frame)?;
            let src = s.claim_read(d.src_frame)?;
            let slot = take_slot();
            let (_, dev) = slot_ptr(bounce, slot_stride, slot);
            let span = Span::new(src.dptr(), dev, gpu_transfer_len(d.len), 0);
            spans.push(span)?;
            Ok(Plan::ToDisk {
                _src: src,
                slot,
                fd: t.as_raw_fd(),
                offset,
                io: None,
            })
        }
        _ => Ok(Plan::Finished(Outcome::failed(
            MoveStatus::IoError,
            libc::EOPNOTSUPP,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{CorruptReason, encode_block};
    use mcos_core::{BlockKey, MoveOp, Urgency};

    fn desc(key: BlockKey, len: u32) -> MoveDescriptor {
        MoveDescriptor {
            key_tag: key.tag(),
            move_id: 0,
            src_frame: 3,
            dst_frame: 0,
            len,
            op: MoveOp::Promote,
            src_tier: 0,
            dst_tier: 1,
            urgency: Urgency::Demand,
            epoch: 0,
            class: 0,
            engine: 0,
        }
    }

    #[test]
    fn the_pre_launch_header_check_refuses_what_must_not_move() {
        let k = BlockKey(41);
        let mut frame = vec![0u8; 8192];
        encode_block(&mut frame, k, &[7u8; 1000]).unwrap();
        assert_eq!(header_len(&frame, &desc(k, 4096), 4096).unwrap(), 1000);
        let reason = |r: Result<u32, TierError>| match r {
            Err(TierError::Corrupt { frame: 3, reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            reason(header_len(&frame, &desc(BlockKey(42), 4096), 4096)),
            CorruptReason::KeyMismatch { .. }
        ));
        assert!(matches!(
            reason(header_len(&frame, &desc(k, 999), 4096)),
            CorruptReason::LengthOutOfBounds {
                len: 1000,
                max: 999
            }
        ));
        assert!(matches!(
            reason(header_len(&frame, &desc(k, 4096), 500)),
            CorruptReason::LengthOutOfBounds { .. }
        ));
        frame[10] ^= 1;
        assert!(matches!(
            reason(header_len(&frame, &desc(k, 4096), 4096)),
            CorruptReason::HeaderChecksum { .. }
        ));
        assert!(matches!(
            reason(header_len(&[0u8; 64], &desc(k, 4096), 4096)),
            CorruptReason::BadMagic { .. }
        ));
    }
}
