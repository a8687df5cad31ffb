//! Memory-to-memory moves between two DRAM-kind tiers: verify the source, copy header and
//! payload, verify the destination.

use crate::dram::{DramTier, verify_frame};
use crate::error::TierError;
use crate::header::KeyCheck;
use mcos_core::limits::BLOCK_HEADER_BYTES;

/// Copies the block in `src_frame` of `src` to `dst_frame` of `dst`. The source must hold a
/// block matching `expected` whose payload is at most `max_len` bytes (else `Corrupt`, and the
/// destination is not written); the destination is verified after the copy. Returns the
/// payload length. Holds a read claim on the source and a write claim on the destination for
/// the duration (`FrameBusy` if another writer holds either; readers of the destination are
/// waited out, see [`crate::claims`]).
pub fn copy_block(
    src: &DramTier,
    src_frame: u32,
    dst: &DramTier,
    dst_frame: u32,
    expected: KeyCheck,
    max_len: u32,
) -> Result<u32, TierError> {
    let s = src.claim_read(src_frame)?;
    let len = verify_frame(
        s.bytes(),
        max_len.min(src.block_bytes()),
        src_frame,
        expected,
    )?;
    if len > dst.block_bytes() {
        return Err(TierError::TooLarge {
            len: len as usize,
            max: dst.block_bytes() as usize,
        });
    }
    let mut d = dst.claim_write(dst_frame)?;
    let n = BLOCK_HEADER_BYTES + len as usize;
    d.bytes_mut()[..n].copy_from_slice(&s.bytes()[..n]);
    drop(s);
    verify_frame(d.bytes(), len, dst_frame, expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CorruptReason;
    use mcos_core::BlockKey;

    #[test]
    fn copies_between_tiers_and_within_one() {
        let a = DramTier::new(2, 100).unwrap();
        let b = DramTier::new(2, 200).unwrap();
        let k = BlockKey(5);
        a.write_block(0, k, b"block").unwrap();
        assert_eq!(copy_block(&a, 0, &b, 1, k.into(), 100).unwrap(), 5);
        let mut out = [0u8; 200];
        assert_eq!(b.read_block(1, k, &mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"block");
        assert_eq!(
            copy_block(&a, 0, &a, 1, KeyCheck::Tag(k.tag()), 5).unwrap(),
            5
        );
        assert_eq!(a.read_block(1, k, &mut out).unwrap(), 5);
        // Same frame: the write claim conflicts with the read claim.
        assert!(matches!(
            copy_block(&a, 0, &a, 0, k.into(), 100),
            Err(TierError::FrameBusy { frame: 0 })
        ));
    }

    #[test]
    fn corrupt_or_oversized_source_leaves_destination_alone() {
        let a = DramTier::new(1, 100).unwrap();
        let b = DramTier::new(1, 10).unwrap();
        let k = BlockKey(5);
        b.write_block(0, BlockKey(9), b"old").unwrap();
        a.write_block(0, k, &[1u8; 50]).unwrap();
        // Wrong key.
        let err = copy_block(&a, 0, &b, 0, BlockKey(6).into(), 100).unwrap_err();
        assert!(matches!(
            err,
            TierError::Corrupt {
                reason: CorruptReason::KeyMismatch { .. },
                ..
            }
        ));
        // Longer than the descriptor said.
        let err = copy_block(&a, 0, &b, 0, k.into(), 49).unwrap_err();
        assert!(matches!(
            err,
            TierError::Corrupt {
                reason: CorruptReason::LengthOutOfBounds { .. },
                ..
            }
        ));
        // Does not fit the destination's frames.
        assert!(matches!(
            copy_block(&a, 0, &b, 0, k.into(), 100),
            Err(TierError::TooLarge { .. })
        ));
        let mut out = [0u8; 10];
        assert_eq!(b.read_block(0, BlockKey(9), &mut out).unwrap(), 3);
    }
}
