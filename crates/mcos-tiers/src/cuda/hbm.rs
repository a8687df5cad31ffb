//! The HBM tier: a device-memory arena of frames.
//!
//! Same layout as every other tier ([`crate::layout`]): frame `i` at `base + i * stride`, a
//! 64-byte block header then the payload. So a frame moves between HBM, pinned host memory and
//! disk as one span, and GPUDirect Storage can read a disk frame straight into an HBM frame.
//! The arena is allocated and zeroed once at start-up. Frames carry the same claims as DRAM
//! frames ([`crate::claims`]): movers hold a read claim on a source and a write claim on a
//! destination for the duration of a move, and a conflicting access is `FrameBusy`.
//!
//! `write_block` and `read_block` are the node's control path (a `put` into HBM, a `get` out of
//! it): synchronous copies through a host staging vector. Moves between tiers go through the
//! GPU mover instead.

use super::{DeviceBuf, GpuDevice, Stream};
use crate::claims::FrameClaims;
use crate::dram::verify_frame;
use crate::error::TierError;
use crate::header::{self, KeyCheck};
use crate::layout::{self, gpu_transfer_len};
use mcos_core::BlockKey;
use mcos_core::limits::BLOCK_HEADER_BYTES;
use std::sync::Arc;

/// A preallocated device-memory arena of `frames` frames for blocks of up to `block_bytes`.
pub struct HbmTier {
    arena: DeviceBuf,
    claims: FrameClaims,
    frames: u32,
    block_bytes: u32,
    stride: usize,
}

impl std::fmt::Debug for HbmTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HbmTier")
            .field("frames", &self.frames)
            .field("block_bytes", &self.block_bytes)
            .field("stride", &self.stride)
            .finish()
    }
}

impl HbmTier {
    /// Allocates and zeroes the arena on `device`. Sizes outside the limits, or more than the
    /// device has free, are errors.
    pub fn new(
        device: &Arc<GpuDevice>,
        frames: u32,
        block_bytes: u32,
    ) -> Result<HbmTier, TierError> {
        let total = layout::arena_bytes(frames, block_bytes)?;
        let (free, _) = device.mem_info()?;
        if total > free {
            return Err(TierError::Alloc {
                bytes: usize::try_from(total).unwrap_or(usize::MAX),
            });
        }
        let bytes = usize::try_from(total).map_err(|_| TierError::Alloc { bytes: usize::MAX })?;
        let arena = DeviceBuf::new(device, bytes)?;
        let stream = Stream::new(device)?;
        arena.fill(0, bytes, 0, &stream)?;
        stream.synchronize()?;
        Ok(HbmTier {
            arena,
            claims: FrameClaims::new(frames),
            frames,
            block_bytes,
            stride: layout::frame_stride(block_bytes),
        })
    }

    /// Frames in the tier.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Largest payload one frame holds.
    pub fn block_bytes(&self) -> u32 {
        self.block_bytes
    }

    /// Bytes from one frame to the next.
    pub fn frame_stride(&self) -> usize {
        self.stride
    }

    /// Device address of the arena.
    pub fn base_dptr(&self) -> u64 {
        self.arena.ptr()
    }

    /// Bytes of the arena.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    fn check_frame(&self, frame: u32) -> Result<(), TierError> {
        if frame < self.frames {
            Ok(())
        } else {
            Err(TierError::FrameOutOfRange {
                frame,
                frames: self.frames,
            })
        }
    }

    /// Device address of `frame`. Whoever moves bytes through it must hold the frame (claims
    /// or the fast-path state machine).
    pub fn frame_dptr(&self, frame: u32) -> Result<u64, TierError> {
        self.check_frame(frame)?;
        Ok(self.arena.ptr() + frame as u64 * self.stride as u64)
    }

    /// Shares `frame` for reading (as a move's source).
    pub fn claim_read(&self, frame: u32) -> Result<HbmRead<'_>, TierError> {
        self.check_frame(frame)?;
        self.claims.read(frame)?;
        Ok(HbmRead { tier: self, frame })
    }

    /// Takes `frame` for writing alone (as a move's destination); waits out readers briefly
    /// (see [`crate::claims`]), refused with `FrameBusy` while another writer holds it.
    pub fn claim_write(&self, frame: u32) -> Result<HbmWrite<'_>, TierError> {
        self.check_frame(frame)?;
        self.claims.write(frame)?;
        Ok(HbmWrite { tier: self, frame })
    }

    /// Stores `payload` under `key` in `frame` (synchronous copy; the node's `put` path).
    pub fn write_block(&self, frame: u32, key: BlockKey, payload: &[u8]) -> Result<(), TierError> {
        if payload.len() > self.block_bytes as usize {
            return Err(TierError::TooLarge {
                len: payload.len(),
                max: self.block_bytes as usize,
            });
        }
        let w = self.claim_write(frame)?;
        // In range: payload.len() <= block_bytes <= MAX_BLOCK_BYTES < u32::MAX.
        let mut staged = vec![0u8; gpu_transfer_len(payload.len() as u32)];
        header::encode_block(&mut staged, key, payload)?;
        self.arena.upload(frame as usize * self.stride, &staged)?;
        drop(w);
        Ok(())
    }

    /// Copies the payload of block `key` in `frame` into `out` after verifying header, key
    /// and checksum on the host (synchronous copy; the node's `get` path).
    pub fn read_block(
        &self,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
    ) -> Result<usize, TierError> {
        let r = self.claim_read(frame)?;
        let mut staged = vec![0u8; gpu_transfer_len(self.block_bytes)];
        self.arena
            .download(frame as usize * self.stride, &mut staged)?;
        drop(r);
        let len = verify_frame(&staged, self.block_bytes, frame, KeyCheck::Key(key))? as usize;
        let out_len = out.len();
        let dst = out.get_mut(..len).ok_or(TierError::BufferTooSmall {
            needed: len,
            len: out_len,
        })?;
        dst.copy_from_slice(&staged[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
        Ok(len)
    }

    /// Fills `frame` with `byte` (benchmarks poison destinations before a move).
    pub fn poison(&self, frame: u32, byte: u8, stream: &Stream) -> Result<(), TierError> {
        self.check_frame(frame)?;
        self.arena
            .fill(frame as usize * self.stride, self.stride, byte, stream)
    }

    /// Copies `len` bytes of `frame` to host memory synchronously (verification read-back).
    pub fn download_frame(&self, frame: u32, out: &mut [u8]) -> Result<(), TierError> {
        self.check_frame(frame)?;
        assert!(out.len() <= self.stride);
        self.arena.download(frame as usize * self.stride, out)
    }

    /// The device memory behind every frame (for benchmarks that address the arena directly).
    pub fn arena(&self) -> &DeviceBuf {
        &self.arena
    }
}

/// A read claim on an HBM frame; released on drop.
pub struct HbmRead<'a> {
    tier: &'a HbmTier,
    frame: u32,
}

/// A write claim on an HBM frame; released on drop.
pub struct HbmWrite<'a> {
    tier: &'a HbmTier,
    frame: u32,
}

impl HbmRead<'_> {
    /// Device address of the frame.
    pub fn dptr(&self) -> u64 {
        self.tier.arena.ptr() + self.frame as u64 * self.tier.stride as u64
    }
}

impl HbmWrite<'_> {
    /// Device address of the frame.
    pub fn dptr(&self) -> u64 {
        self.tier.arena.ptr() + self.frame as u64 * self.tier.stride as u64
    }

    /// The frame index.
    pub fn frame(&self) -> u32 {
        self.frame
    }
}

impl Drop for HbmRead<'_> {
    fn drop(&mut self) {
        self.tier.claims.release_read(self.frame);
    }
}

impl Drop for HbmWrite<'_> {
    fn drop(&mut self) {
        self.tier.claims.release_write(self.frame);
    }
}
