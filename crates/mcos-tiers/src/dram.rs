//! The DRAM tier: a preallocated, 4096-aligned arena of fixed-size frames.
//!
//! Frame `i` is at `base + i * stride` (see [`crate::layout`]), so the disk engine can read and
//! write a frame with O_DIRECT straight from the arena. The arena is allocated once, zeroed, at
//! start-up; nothing here allocates afterwards.
//!
//! Concurrency: the fast path's frame state machine (free, moving in, resident, moving out) hands
//! each frame to one mover at a time. The tier does not trust that blindly: every access through
//! this API takes a per-frame claim (one atomic read-modify-write). Readers share a frame, a
//! writer holds it alone; a writer waits out readers that are still copying the frame's previous
//! block (bounded, see [`crate::claims`]), and any other conflict is refused with
//! [`TierError::FrameBusy`] instead of racing. So the safe API is sound whatever the caller
//! does; a caller that breaks the state machine gets errors, never torn bytes or memory outside
//! the arena. Only [`DramTier::frame_ptr`] hands out a raw address (for DMA/GPU movers), and
//! dereferencing it is the caller's `unsafe` responsibility.

use crate::aligned::AlignedBuf;
use crate::claims::FrameClaims;
use crate::error::TierError;
use crate::header::{self, KeyCheck};
use crate::layout;
use mcos_core::BlockKey;
use mcos_core::limits::BLOCK_HEADER_BYTES;

/// A preallocated arena of `frames` frames holding blocks of up to `block_bytes` payload.
///
/// `Send + Sync`: share it in an `Arc` between the node, the fast path and the engines.
pub struct DramTier {
    arena: AlignedBuf,
    /// Per-frame claims (see [`crate::claims`]).
    claims: FrameClaims,
    frames: u32,
    block_bytes: u32,
    stride: usize,
}

impl std::fmt::Debug for DramTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DramTier")
            .field("frames", &self.frames)
            .field("block_bytes", &self.block_bytes)
            .field("stride", &self.stride)
            .finish()
    }
}

impl DramTier {
    /// Allocates and zeroes `frames` frames for blocks of up to `block_bytes` payload. Sizes
    /// outside the limits or memory that cannot be had are errors, not aborts.
    pub fn new(frames: u32, block_bytes: u32) -> Result<DramTier, TierError> {
        let (stride, total) = layout::check_geometry(frames, block_bytes)?;
        let bytes = usize::try_from(total).map_err(|_| TierError::Alloc { bytes: usize::MAX })?;
        let arena = AlignedBuf::zeroed(bytes)?;
        let claims = FrameClaims::new(frames);
        Ok(DramTier {
            arena,
            claims,
            frames,
            block_bytes,
            stride,
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

    /// Bytes from one frame to the next (a multiple of `DISK_ALIGN`).
    pub fn frame_stride(&self) -> usize {
        self.stride
    }

    /// Bytes of the whole arena.
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

    /// Start of `frame`; in bounds once `check_frame` passed.
    fn frame_base(&self, frame: u32) -> *mut u8 {
        // `wrapping_add` keeps this free of `unsafe`; callers check the frame first, so the
        // result is inside the arena.
        self.arena
            .as_ptr()
            .wrapping_add(frame as usize * self.stride)
    }

    /// Raw address of `frame` (4096-aligned, `frame_stride()` bytes), for movers that copy with
    /// hardware (DMA, GPU). Valid while the tier lives. The pointer bypasses the frame claims:
    /// whoever dereferences it must hold the frame per the fast-path state machine.
    pub fn frame_ptr(&self, frame: u32) -> Result<*mut u8, TierError> {
        self.check_frame(frame)?;
        Ok(self.frame_base(frame))
    }

    /// Shares `frame` for reading; refused with `FrameBusy` while a writer holds it.
    pub fn claim_read(&self, frame: u32) -> Result<FrameRead<'_>, TierError> {
        self.check_frame(frame)?;
        self.claims.read(frame)?;
        Ok(FrameRead { tier: self, frame })
    }

    /// Takes `frame` for writing alone. Waits briefly for readers to finish (a reader that
    /// started before the frame was freed); refused with `FrameBusy` while another writer holds
    /// it, or if readers stay past the claims' bound.
    pub fn claim_write(&self, frame: u32) -> Result<FrameWrite<'_>, TierError> {
        self.check_frame(frame)?;
        self.claims.write(frame)?;
        Ok(FrameWrite { tier: self, frame })
    }

    /// Stores `payload` under `key` in `frame`: header, then payload. The caller holds the frame
    /// per the fast-path state machine (a concurrent access is refused with `FrameBusy`). A
    /// payload larger than `block_bytes` is refused and the frame keeps what it held.
    pub fn write_block(&self, frame: u32, key: BlockKey, payload: &[u8]) -> Result<(), TierError> {
        if payload.len() > self.block_bytes as usize {
            return Err(TierError::TooLarge {
                len: payload.len(),
                max: self.block_bytes as usize,
            });
        }
        let mut f = self.claim_write(frame)?;
        header::encode_block(f.bytes_mut(), key, payload)
    }

    /// Copies the payload of the block `key` in `frame` into `out` and returns its length, after
    /// verifying header, key and checksum (a mismatch is `Corrupt`). The caller holds the frame
    /// per the fast-path state machine (a concurrent write is refused with `FrameBusy`).
    pub fn read_block(
        &self,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
    ) -> Result<usize, TierError> {
        self.claim_read(frame)?.copy_payload(key, out)
    }
}

/// Shared access to one frame; released on drop.
pub struct FrameRead<'a> {
    tier: &'a DramTier,
    frame: u32,
}

/// Exclusive access to one frame; released on drop.
pub struct FrameWrite<'a> {
    tier: &'a DramTier,
    frame: u32,
}

impl FrameRead<'_> {
    /// The frame index.
    pub fn frame(&self) -> u32 {
        self.frame
    }

    /// The frame's bytes (`frame_stride()` of them).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the frame is in the arena (checked at claim) and spans `stride` initialised
        // bytes; the read claim excludes every writer through this API until it is dropped, and
        // the slice cannot outlive the claim.
        unsafe { std::slice::from_raw_parts(self.tier.frame_base(self.frame), self.tier.stride) }
    }

    /// Copies the payload of the block `key` into `out` and returns its length, after verifying
    /// header, key and checksum (a mismatch is `Corrupt`). An `out` shorter than the payload is
    /// `BufferTooSmall`, and `out` is left as it was.
    pub fn copy_payload(&self, key: BlockKey, out: &mut [u8]) -> Result<usize, TierError> {
        let len = self.verify(key)? as usize;
        let out_len = out.len();
        let dst = out.get_mut(..len).ok_or(TierError::BufferTooSmall {
            needed: len,
            len: out_len,
        })?;
        dst.copy_from_slice(&self.bytes()[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
        Ok(len)
    }

    /// Raw start of the frame, for an I/O that reads from it while this claim is held.
    pub fn as_ptr(&self) -> *const u8 {
        self.tier.frame_base(self.frame)
    }

    /// Verifies the stored block against `expected` (header, key, length within `block_bytes`,
    /// payload checksum); returns the payload length.
    pub fn verify(&self, expected: impl Into<KeyCheck>) -> Result<u32, TierError> {
        verify_frame(self.bytes(), self.tier.block_bytes, self.frame, expected)
    }

    /// As [`FrameRead::verify`], with the payload bounded by `max_len` as well (a descriptor's
    /// `len`): a longer block is `Corrupt` (`LengthOutOfBounds`).
    pub fn verify_at_most(
        &self,
        max_len: u32,
        expected: impl Into<KeyCheck>,
    ) -> Result<u32, TierError> {
        let bound = max_len.min(self.tier.block_bytes);
        verify_frame(self.bytes(), bound, self.frame, expected)
    }
}

impl FrameWrite<'_> {
    /// The frame index.
    pub fn frame(&self) -> u32 {
        self.frame
    }

    /// The frame's bytes (`frame_stride()` of them).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: in the arena (checked at claim); the write claim excludes every other access
        // through this API, and `&self` excludes `bytes_mut` for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.tier.frame_base(self.frame), self.tier.stride) }
    }

    /// The frame's bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: in the arena (checked at claim); the write claim makes this the only access
        // through this API, and `&mut self` makes this the only slice.
        unsafe {
            std::slice::from_raw_parts_mut(self.tier.frame_base(self.frame), self.tier.stride)
        }
    }

    /// Raw start of the frame, for an I/O that writes into it while this claim is held.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.tier.frame_base(self.frame)
    }

    /// As [`FrameRead::verify`].
    pub fn verify(&self, expected: impl Into<KeyCheck>) -> Result<u32, TierError> {
        verify_frame(self.bytes(), self.tier.block_bytes, self.frame, expected)
    }
}

impl Drop for FrameRead<'_> {
    fn drop(&mut self) {
        self.tier.claims.release_read(self.frame);
    }
}

impl Drop for FrameWrite<'_> {
    fn drop(&mut self) {
        self.tier.claims.release_write(self.frame);
    }
}

/// Verifies a frame whose payload may be up to `block_bytes`, naming the frame in the error.
pub fn verify_frame(
    bytes: &[u8],
    block_bytes: u32,
    frame: u32,
    expected: impl Into<KeyCheck>,
) -> Result<u32, TierError> {
    let end = (BLOCK_HEADER_BYTES + block_bytes as usize).min(bytes.len());
    header::verify(&bytes[..end], expected).map_err(|c| TierError::Corrupt {
        frame,
        reason: c.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CorruptReason;
    use mcos_core::limits::DISK_ALIGN;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn arena_is_aligned_and_frames_are_strided() {
        let t = DramTier::new(5, 5000).unwrap();
        assert_eq!(t.frame_stride(), 8192);
        assert_eq!(t.arena_bytes(), 5 * 8192);
        let p0 = t.frame_ptr(0).unwrap() as usize;
        assert_eq!(p0 % DISK_ALIGN, 0);
        assert_eq!(t.frame_ptr(4).unwrap() as usize - p0, 4 * 8192);
        assert!(matches!(
            t.frame_ptr(5),
            Err(TierError::FrameOutOfRange {
                frame: 5,
                frames: 5
            })
        ));
    }

    #[test]
    fn write_read_round_trip() {
        let t = DramTier::new(4, 1000).unwrap();
        let k = BlockKey(42);
        t.write_block(2, k, b"kv block bytes").unwrap();
        let mut out = vec![0u8; 1000];
        assert_eq!(t.read_block(2, k, &mut out).unwrap(), 14);
        assert_eq!(&out[..14], b"kv block bytes");
        // Overwrite with a longer and then a shorter block: the last write wins.
        t.write_block(2, k, &[3u8; 1000]).unwrap();
        t.write_block(2, k, b"xy").unwrap();
        assert_eq!(t.read_block(2, k, &mut out).unwrap(), 2);
        assert_eq!(&out[..2], b"xy");
    }

    #[test]
    fn misuse_is_an_error_and_leaves_the_frame_intact() {
        let t = DramTier::new(2, 16).unwrap();
        let k = BlockKey(7);
        t.write_block(0, k, b"keep").unwrap();
        assert!(matches!(
            t.write_block(0, k, &[0u8; 17]),
            Err(TierError::TooLarge { len: 17, max: 16 })
        ));
        assert!(matches!(
            t.write_block(2, k, b"x"),
            Err(TierError::FrameOutOfRange { .. })
        ));
        let mut small = [0u8; 2];
        assert!(matches!(
            t.read_block(0, k, &mut small),
            Err(TierError::BufferTooSmall { needed: 4, len: 2 })
        ));
        let mut out = [0u8; 16];
        assert_eq!(t.read_block(0, k, &mut out).unwrap(), 4);
        assert_eq!(&out[..4], b"keep");
        let err = t.read_block(0, BlockKey(8), &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                TierError::Corrupt {
                    frame: 0,
                    reason: CorruptReason::KeyMismatch { .. }
                }
            ),
            "{err}"
        );
        let err = t.read_block(1, k, &mut out).unwrap_err();
        assert!(matches!(
            err,
            TierError::Corrupt {
                frame: 1,
                reason: CorruptReason::BadMagic { .. }
            }
        ));
    }

    #[test]
    fn flipped_byte_in_the_arena_is_caught() {
        let t = DramTier::new(1, 64).unwrap();
        let k = BlockKey(1);
        t.write_block(0, k, &[5u8; 64]).unwrap();
        t.claim_write(0).unwrap().bytes_mut()[BLOCK_HEADER_BYTES + 10] ^= 1;
        let mut out = [0u8; 64];
        let err = t.read_block(0, k, &mut out).unwrap_err();
        assert!(matches!(
            err,
            TierError::Corrupt {
                reason: CorruptReason::PayloadChecksum { .. },
                ..
            }
        ));
    }

    #[test]
    fn claims_share_readers_and_exclude_writers() {
        let t = DramTier::new(2, 8).unwrap();
        let r1 = t.claim_read(0).unwrap();
        let r2 = t.claim_read(0).unwrap();
        assert!(matches!(
            t.claim_write(0),
            Err(TierError::FrameBusy { frame: 0 })
        ));
        assert!(matches!(
            t.write_block(0, BlockKey(1), b"x"),
            Err(TierError::FrameBusy { frame: 0 })
        ));
        // Other frames are independent.
        t.write_block(1, BlockKey(1), b"x").unwrap();
        drop(r1);
        assert!(t.claim_write(0).is_err(), "one reader still holds it");
        drop(r2);
        let w = t.claim_write(0).unwrap();
        assert!(matches!(t.claim_read(0), Err(TierError::FrameBusy { .. })));
        let mut out = [0u8; 8];
        assert!(matches!(
            t.read_block(0, BlockKey(1), &mut out),
            Err(TierError::FrameBusy { .. })
        ));
        drop(w);
        t.write_block(0, BlockKey(1), b"y").unwrap();
        assert_eq!(t.read_block(0, BlockKey(1), &mut out).unwrap(), 1);
    }

    #[test]
    fn threads_on_disjoint_frames_do_not_interfere() {
        let t = Arc::new(DramTier::new(8, 256).unwrap());
        let handles: Vec<_> = (0..4u32)
            .map(|id| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut out = [0u8; 256];
                    for round in 0..500u32 {
                        for frame in [id * 2, id * 2 + 1] {
                            let key = BlockKey(u128::from(frame) << 64 | u128::from(round));
                            let payload = [(round as u8) ^ (frame as u8); 200];
                            t.write_block(frame, key, &payload).unwrap();
                            assert_eq!(t.read_block(frame, key, &mut out).unwrap(), 200);
                            assert_eq!(&out[..200], &payload[..]);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn contended_frame_gives_busy_or_a_whole_block_never_torn_bytes() {
        // Two threads fight over one frame: each access either gets the frame or FrameBusy, and
        // every successful read sees one writer's whole block.
        let t = Arc::new(DramTier::new(1, 1024).unwrap());
        let k = BlockKey(9);
        t.write_block(0, k, &[0u8; 1024]).unwrap();
        let writers: Vec<_> = (1..=2u8)
            .map(|v| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut out = [0u8; 1024];
                    let mut ok_reads = 0;
                    for _ in 0..2000 {
                        let _ = t.write_block(0, k, &[v; 1024]);
                        match t.read_block(0, k, &mut out) {
                            Ok(n) => {
                                assert_eq!(n, 1024);
                                let first = out[0];
                                assert!(out.iter().all(|&b| b == first), "torn block");
                                ok_reads += 1;
                            }
                            Err(TierError::FrameBusy { .. }) => {}
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                    ok_reads
                })
            })
            .collect();
        let total: u32 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(total > 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write {
            frame: u32,
            key: u8,
            len: usize,
            fill: u8,
        },
        Read {
            frame: u32,
            key: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..9u32, 0..3u8, 0..300usize, any::<u8>()).prop_map(|(frame, key, len, fill)| {
                Op::Write {
                    frame,
                    key,
                    len,
                    fill,
                }
            }),
            (0..9u32, 0..3u8).prop_map(|(frame, key)| Op::Read { frame, key }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against a HashMap model: every read returns exactly the last bytes written to the
        /// frame, or the key-mismatch / never-written error; refused writes change nothing.
        #[test]
        fn dram_matches_hashmap_model(ops in proptest::collection::vec(op(), 1..80)) {
            const FRAMES: u32 = 8;
            const BLOCK: usize = 256;
            let t = DramTier::new(FRAMES, BLOCK as u32).unwrap();
            let mut model: HashMap<u32, (BlockKey, Vec<u8>)> = HashMap::new();
            let mut out = vec![0u8; BLOCK];
            for op in ops {
                match op {
                    Op::Write { frame, key, len, fill } => {
                        let key = BlockKey(u128::from(key) + 1);
                        let payload: Vec<u8> =
                            (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                        let r = t.write_block(frame, key, &payload);
                        // The length is checked before the frame.
                        if len > BLOCK {
                            let too_large = matches!(r, Err(TierError::TooLarge { .. }));
                            prop_assert!(too_large);
                        } else if frame >= FRAMES {
                            let out_of_range = matches!(r, Err(TierError::FrameOutOfRange { .. }));
                            prop_assert!(out_of_range);
                        } else {
                            prop_assert!(r.is_ok());
                            model.insert(frame, (key, payload));
                        }
                    }
                    Op::Read { frame, key } => {
                        let key = BlockKey(u128::from(key) + 1);
                        let r = t.read_block(frame, key, &mut out);
                        match (frame < FRAMES, model.get(&frame)) {
                            (false, _) => {
                                let out_of_range =
                                    matches!(r, Err(TierError::FrameOutOfRange { .. }));
                                prop_assert!(out_of_range);
                            }
                            (true, None) => {
                                let never_written = matches!(r, Err(TierError::Corrupt {
                                    reason: CorruptReason::BadMagic { .. }, ..
                                }));
                                prop_assert!(never_written);
                            }
                            (true, Some((k, bytes))) if *k == key => {
                                let n = r.unwrap();
                                prop_assert_eq!(&out[..n], &bytes[..]);
                            }
                            (true, Some(_)) => {
                                let mismatch = matches!(r, Err(TierError::Corrupt {
                                    reason: CorruptReason::KeyMismatch { .. }, ..
                                }));
                                prop_assert!(mismatch);
                            }
                        }
                    }
                }
            }
        }
    }
}
