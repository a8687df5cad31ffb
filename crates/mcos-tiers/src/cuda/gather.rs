//! The gather/scatter kernel path: one launch moves a whole batch of scattered spans.
//!
//! A span is (source address, destination address, length), any mix of host-mapped and device
//! addresses: host -> HBM gathers scattered pinned frames into HBM frames, HBM -> host scatters
//! them back, HBM -> HBM compacts. The span list lives in pinned, device-mapped memory, so the
//! kernel reads it straight from the host (no extra copy before the launch), and writes its
//! folds back the same way. One CPU call per batch, none per block: on an H100 this moved
//! 16 KiB blocks at 47-50 GB/s where one copy call per block reached 5 GB/s.

use super::kernels::{self, Kernels};
use super::pinned::PinnedBuf;
use super::{GpuDevice, Stream};
use crate::error::TierError;
use std::ffi::c_void;
use std::sync::Arc;

/// One move for the kernels (the layout of `McosSpan` in `kernels.cu`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Device-visible source address (16-byte aligned).
    pub src: u64,
    /// Device-visible destination address (16-byte aligned).
    pub dst: u64,
    /// Bytes, a multiple of 16.
    pub len: u32,
    /// [`REREAD_DST`] or 0.
    pub flags: u32,
}

const _: () = assert!(std::mem::size_of::<Span>() == 24);

/// Span flag: re-read the destination after the copy and fold it (HBM destinations).
pub const REREAD_DST: u32 = 1;

impl Span {
    /// A span, checked for the kernel's 16-byte vectors.
    pub fn new(src: u64, dst: u64, len: usize, flags: u32) -> Span {
        assert!(
            src.is_multiple_of(16) && dst.is_multiple_of(16) && len.is_multiple_of(16),
            "spans move 16-byte vectors"
        );
        assert!(u32::try_from(len).is_ok());
        Span {
            src,
            dst,
            len: len as u32,
            flags,
        }
    }
}

/// A span list with its fold results, in pinned mapped memory.
///
/// Contract: between a launch and the completion of the stream it was launched on, the list
/// must not be changed or read (`clear`, `push`, `sums`, `mismatches` take `&mut self` or are
/// called by the owner only after it waited).
pub struct SpanList {
    spans: PinnedBuf,
    sums: PinnedBuf,
    cap: usize,
    len: usize,
}

impl SpanList {
    /// A list of up to `cap` spans.
    pub fn new(device: &Arc<GpuDevice>, cap: usize) -> Result<SpanList, TierError> {
        Ok(SpanList {
            spans: PinnedBuf::new(device, cap.max(1) * std::mem::size_of::<Span>())?,
            sums: PinnedBuf::new(device, cap.max(1) * 16)?,
            cap: cap.max(1),
            len: 0,
        })
    }

    /// Spans in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `span`; returns its index.
    pub fn push(&mut self, span: Span) -> Result<usize, TierError> {
        if self.len == self.cap {
            return Err(TierError::Config(format!(
                "span list full ({} spans)",
                self.cap
            )));
        }
        let i = self.len;
        // SAFETY: `i < cap`, so the 24 bytes are inside the buffer; no launch is in flight
        // (contract); `Span` is plain old data with the kernel's layout.
        unsafe {
            std::ptr::write_unaligned(
                self.spans
                    .host_ptr()
                    .add(i * std::mem::size_of::<Span>())
                    .cast::<Span>(),
                span,
            );
        }
        self.len += 1;
        Ok(i)
    }

    /// The span at `i`.
    pub fn get(&self, i: usize) -> Span {
        assert!(i < self.len);
        // SAFETY: in bounds; written by `push`; the GPU only reads spans.
        unsafe {
            std::ptr::read_unaligned(
                self.spans
                    .host_ptr()
                    .add(i * std::mem::size_of::<Span>())
                    .cast::<Span>(),
            )
        }
    }

    /// Bytes the spans move.
    pub fn bytes(&self) -> u64 {
        (0..self.len).map(|i| u64::from(self.get(i).len)).sum()
    }

    /// (read fold, re-read fold) of span `i` after a completed launch.
    pub fn sums(&self, i: usize) -> (u64, u64) {
        assert!(i < self.len);
        // SAFETY: in bounds; the owner waited for the launch (contract).
        let b = unsafe { self.sums.bytes(16 * i, 16) };
        let mut a = [0u8; 8];
        let mut c = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        c.copy_from_slice(&b[8..]);
        (u64::from_le_bytes(a), u64::from_le_bytes(c))
    }

    /// Spans with [`REREAD_DST`] whose two folds differ, after a completed launch.
    pub fn mismatches(&self) -> u32 {
        (0..self.len)
            .filter(|&i| self.get(i).flags & REREAD_DST != 0)
            .filter(|&i| {
                let (read, back) = self.sums(i);
                read != back
            })
            .count() as u32
    }

    /// Launches `mcos_gather` over the list on `stream` with at most `grid_cap` CUDA blocks.
    /// `probe`: (device-visible address, value) written by the kernel as it starts.
    ///
    /// # Safety
    /// Every span's source and destination are valid for its length until the stream completes,
    /// nothing else writes the destinations or the sources meanwhile, and the list is not
    /// touched until then.
    pub unsafe fn launch_gather(
        &self,
        k: &Kernels,
        stream: &Stream,
        grid_cap: u32,
        probe: Option<(u64, u32)>,
    ) -> Result<(), TierError> {
        let args = GatherArgs {
            spans: self.spans.dev_ptr(),
            n: self.len as u32,
            sums: self.sums.dev_ptr(),
            // No device counter: the host counts mismatches from the folds (`mismatches`).
            mismatches: 0,
        };
        // SAFETY: the list's own buffers hold `len` spans and `2 * len` folds; the caller's
        // contract covers the spans' memory.
        unsafe { launch_gather_raw(k, stream, args, grid_cap, probe) }
    }

    /// Launches `mcos_fold` over the list (each span's source is folded).
    ///
    /// # Safety
    /// As for [`SpanList::launch_gather`] (sources only).
    pub unsafe fn launch_fold(
        &self,
        k: &Kernels,
        stream: &Stream,
        grid_cap: u32,
    ) -> Result<(), TierError> {
        let (mut spans, mut n) = (self.spans.dev_ptr(), self.len as u32);
        let mut sums = self.sums.dev_ptr();
        let mut params: [*mut c_void; 3] = [
            (&raw mut spans).cast(),
            (&raw mut n).cast(),
            (&raw mut sums).cast(),
        ];
        // SAFETY: the arguments match `mcos_fold(spans, n, sums)`; see the caller's contract.
        unsafe {
            kernels::launch(
                k.fold,
                n.min(grid_cap),
                stream.raw(),
                &mut params,
                "launching the fold kernel",
            )
        }
    }
}

/// Device-visible addresses of a span list kept elsewhere (the decode benchmark keeps its span
/// lists in device memory, built once).
#[derive(Copy, Clone, Debug)]
pub struct GatherArgs {
    /// `n` spans.
    pub spans: u64,
    /// Span count.
    pub n: u32,
    /// `2 * n` u64 folds.
    pub sums: u64,
    /// One u32 mismatch counter in device memory, or 0 for none.
    pub mismatches: u64,
}

/// Launches `mcos_gather` over `args` with at most `grid_cap` CUDA blocks.
///
/// # Safety
/// Every address in `args` is valid for its size, and every span's source and destination for
/// its length, until the launch completes on `stream`; nothing else writes them meanwhile.
pub unsafe fn launch_gather_raw(
    k: &Kernels,
    stream: &Stream,
    args: GatherArgs,
    grid_cap: u32,
    probe: Option<(u64, u32)>,
) -> Result<(), TierError> {
    let (mut spans, mut n) = (args.spans, args.n);
    let (mut sums, mut mism) = (args.sums, args.mismatches);
    let (mut probe_ptr, mut probe_val) = probe.unwrap_or((0, 0));
    let mut params: [*mut c_void; 6] = [
        (&raw mut spans).cast(),
        (&raw mut n).cast(),
        (&raw mut sums).cast(),
        (&raw mut mism).cast(),
        (&raw mut probe_ptr).cast(),
        (&raw mut probe_val).cast(),
    ];
    // SAFETY: the arguments match `mcos_gather(spans, n, sums, mismatches, probe, value)`; the
    // caller keeps every address valid until the launch completes.
    unsafe {
        kernels::launch(
            k.gather,
            n.min(grid_cap),
            stream.raw(),
            &mut params,
            "launching the gather kernel",
        )
    }
}
