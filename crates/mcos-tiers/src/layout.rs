//! Frame layout shared by every tier, so a frame moves between DRAM and disk as one aligned span.
//!
//! Frame `i` of a tier starts at `i * stride` (in the DRAM arena and in the disk file alike).
//! A frame is the 64-byte block header, then up to `block_bytes` of payload, then zero padding
//! up to the stride, a multiple of `DISK_ALIGN` (4096). Moves transfer only the aligned prefix
//! that holds header and payload ([`transfer_len`]), so O_DIRECT I/O can go straight between a
//! DRAM frame and the file with no bounce buffer.

use crate::error::TierError;
use mcos_core::limits::{BLOCK_HEADER_BYTES, DISK_ALIGN, MAX_BLOCK_BYTES, MAX_FRAMES_PER_TIER};

/// Bytes from one frame to the next for blocks of `block_bytes` payload: header + payload rounded
/// up to `DISK_ALIGN`.
pub fn frame_stride(block_bytes: u32) -> usize {
    transfer_len(block_bytes)
}

/// Bytes a move transfers for a payload of `payload_len` bytes: header + payload rounded up to
/// `DISK_ALIGN` (never more than the stride when `payload_len <= block_bytes`).
pub fn transfer_len(payload_len: u32) -> usize {
    (BLOCK_HEADER_BYTES + payload_len as usize).next_multiple_of(DISK_ALIGN)
}

/// Alignment of every GPU transfer: the gather kernel moves 16-byte vectors.
pub const GPU_ALIGN: usize = 16;

/// Bytes a GPU move transfers for a payload of `payload_len` bytes: header + payload rounded up
/// to `GPU_ALIGN` (no disk is involved, so no 4096 rounding: a 16 KiB block moves 16,448 bytes,
/// not 20,480).
pub fn gpu_transfer_len(payload_len: u32) -> usize {
    (BLOCK_HEADER_BYTES + payload_len as usize).next_multiple_of(GPU_ALIGN)
}

/// Bytes of an arena of `frames` frames for blocks of `block_bytes` (HBM and pinned arenas use
/// the same stride as DRAM and disk, so a frame moves between any two tiers as one span and
/// GPUDirect Storage can read a disk frame straight into an HBM frame).
pub fn arena_bytes(frames: u32, block_bytes: u32) -> Result<u64, TierError> {
    check_geometry(frames, block_bytes).map(|(_, total)| total)
}

/// Checks a tier's geometry against the limits; returns the stride and the total bytes.
pub(crate) fn check_geometry(frames: u32, block_bytes: u32) -> Result<(usize, u64), TierError> {
    if frames == 0 || frames >= MAX_FRAMES_PER_TIER {
        return Err(TierError::Config(format!(
            "a tier needs 1..{MAX_FRAMES_PER_TIER} frames, {frames} given"
        )));
    }
    if block_bytes == 0 {
        return Err(TierError::Config(
            "block size 0: give the tier a block size of at least 1 byte".into(),
        ));
    }
    if block_bytes as usize > MAX_BLOCK_BYTES {
        return Err(TierError::TooLarge {
            len: block_bytes as usize,
            max: MAX_BLOCK_BYTES,
        });
    }
    let stride = frame_stride(block_bytes);
    // At most 2^28 frames of at most 64 MiB + 4 KiB: fits in u64.
    let total = u64::from(frames) * stride as u64;
    Ok((stride, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stride_is_aligned_and_holds_header_and_payload() {
        assert_eq!(frame_stride(1), 4096);
        assert_eq!(frame_stride(4096 - 64), 4096);
        assert_eq!(frame_stride(4096 - 63), 8192);
        assert_eq!(frame_stride(16 << 10), 20480);
        assert_eq!(transfer_len(0), 4096);
        for b in [1u32, 100, 4032, 4033, 65536] {
            assert_eq!(frame_stride(b) % DISK_ALIGN, 0);
            assert!(frame_stride(b) >= BLOCK_HEADER_BYTES + b as usize);
        }
    }

    #[test]
    fn gpu_spans_are_vector_aligned_and_fit_the_frame() {
        assert_eq!(gpu_transfer_len(16 << 10), 16448);
        assert_eq!(gpu_transfer_len(64 << 10), 65600);
        assert_eq!(gpu_transfer_len(0), 64);
        assert_eq!(gpu_transfer_len(1), 80);
        for b in [1u32, 15, 16, 17, 4032, 4033, 16 << 10, 64 << 10, 1 << 20] {
            let len = gpu_transfer_len(b);
            assert_eq!(len % GPU_ALIGN, 0);
            assert!(len >= BLOCK_HEADER_BYTES + b as usize);
            assert!(len <= frame_stride(b), "a span never leaves its frame");
        }
        assert_eq!(arena_bytes(1024, 16 << 10).unwrap(), 1024 * 20480);
        assert!(arena_bytes(0, 16 << 10).is_err());
    }

    #[test]
    fn geometry_outside_the_limits_is_refused() {
        assert!(matches!(check_geometry(0, 10), Err(TierError::Config(_))));
        assert!(matches!(
            check_geometry(MAX_FRAMES_PER_TIER, 10),
            Err(TierError::Config(_))
        ));
        assert!(matches!(check_geometry(1, 0), Err(TierError::Config(_))));
        assert!(matches!(
            check_geometry(1, MAX_BLOCK_BYTES as u32 + 1),
            Err(TierError::TooLarge { .. })
        ));
        assert_eq!(check_geometry(3, 100).unwrap(), (4096, 3 * 4096));
    }
}
