//! The 64-byte block header stored in front of every block in every tier.
//!
//! A block is trusted only after its header and payload verify: the header names the key, so a
//! frame reused for another block, a torn write or a flipped bit on disk is caught on read
//! (TigerBeetle's "assert on both sides of a boundary"). Layout, little-endian:
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `b"MCBK"` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 16 | block key (u128) |
//! | 24 | 4 | payload length in bytes |
//! | 28 | 4 | reserved, 0 |
//! | 32 | 8 | payload checksum: xxh3-64 of the payload |
//! | 40 | 16 | reserved, 0 |
//! | 56 | 8 | header checksum: xxh3-64 of bytes 0..56 |

use crate::error::TierError;
use mcos_core::BlockKey;
use mcos_core::limits::{BLOCK_HEADER_BYTES, MAX_BLOCK_BYTES};
use std::fmt;
use xxhash_rust::xxh3::xxh3_64;

/// First four bytes of every block header.
pub const BLOCK_MAGIC: [u8; 4] = *b"MCBK";

/// Header format written by this version. A header of another version is refused, not guessed.
pub const FORMAT_VERSION: u16 = 1;

/// Bytes of the header covered by the header checksum (everything before it).
const HEADER_CHECKED_BYTES: usize = 56;

const _: () = assert!(BLOCK_HEADER_BYTES == 64, "the layout above is 64 bytes");
const _: () = assert!(
    MAX_BLOCK_BYTES < u32::MAX as usize,
    "lengths are u32 in the header"
);

/// The decoded header of one block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Key of the block.
    pub key: BlockKey,
    /// Payload bytes following the header.
    pub payload_len: u32,
    /// xxh3-64 of the payload.
    pub payload_checksum: u64,
}

/// Which key a frame must hold: the whole key (tier API) or its low 64 bits (descriptors carry
/// only the tag, `BlockKey::tag`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// The full 128-bit key must match.
    Key(BlockKey),
    /// The low 64 bits of the key must match.
    Tag(u64),
}

impl From<BlockKey> for KeyCheck {
    fn from(key: BlockKey) -> KeyCheck {
        KeyCheck::Key(key)
    }
}

impl KeyCheck {
    fn matches(self, found: BlockKey) -> bool {
        match self {
            KeyCheck::Key(k) => k == found,
            KeyCheck::Tag(t) => found.tag() == t,
        }
    }
}

impl fmt::Display for KeyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyCheck::Key(k) => write!(f, "key {k}"),
            KeyCheck::Tag(t) => write!(f, "key tag {t:016x}"),
        }
    }
}

/// What is wrong with a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CorruptReason {
    /// Fewer bytes than a header were given.
    Truncated {
        /// Bytes given.
        len: usize,
    },
    /// The magic is wrong: the frame was never written, or something else overwrote it.
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The header's own checksum does not match: a header byte changed.
    HeaderChecksum {
        /// Checksum stored in the header.
        stored: u64,
        /// Checksum of the header bytes as read.
        computed: u64,
    },
    /// A header of a format this version does not read.
    UnsupportedVersion {
        /// Version found.
        found: u16,
    },
    /// The frame holds another block.
    KeyMismatch {
        /// The key asked for.
        expected: KeyCheck,
        /// The key in the header.
        found: BlockKey,
    },
    /// The stored length does not fit in the frame (or in the bytes that were moved).
    LengthOutOfBounds {
        /// Length in the header.
        len: u32,
        /// Largest payload the frame bytes can hold.
        max: usize,
    },
    /// The payload checksum does not match: a payload byte changed.
    PayloadChecksum {
        /// Checksum stored in the header.
        stored: u64,
        /// Checksum of the payload as read.
        computed: u64,
    },
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptReason::Truncated { len } => {
                write!(
                    f,
                    "only {len} bytes, shorter than the {BLOCK_HEADER_BYTES}-byte header"
                )
            }
            CorruptReason::BadMagic { found } => write!(
                f,
                "no block header (magic {found:02x?}): the frame was never written or was overwritten"
            ),
            CorruptReason::HeaderChecksum { stored, computed } => write!(
                f,
                "header checksum mismatch (stored {stored:016x}, computed {computed:016x})"
            ),
            CorruptReason::UnsupportedVersion { found } => write!(
                f,
                "header format version {found}, this build reads version {FORMAT_VERSION}"
            ),
            CorruptReason::KeyMismatch { expected, found } => {
                write!(f, "expected {expected}, found key {found}")
            }
            CorruptReason::LengthOutOfBounds { len, max } => {
                write!(f, "payload length {len} exceeds the {max} bytes available")
            }
            CorruptReason::PayloadChecksum { stored, computed } => write!(
                f,
                "payload checksum mismatch (stored {stored:016x}, computed {computed:016x})"
            ),
        }
    }
}

/// A block that failed verification. A value, never a panic.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt block: {reason}")]
pub struct CorruptBlock {
    /// What failed.
    pub reason: CorruptReason,
}

impl From<CorruptReason> for CorruptBlock {
    fn from(reason: CorruptReason) -> CorruptBlock {
        CorruptBlock { reason }
    }
}

impl BlockHeader {
    /// The header for `payload` stored under `key`; a payload over `MAX_BLOCK_BYTES` is refused.
    pub fn for_payload(key: BlockKey, payload: &[u8]) -> Result<BlockHeader, TierError> {
        if payload.len() > MAX_BLOCK_BYTES {
            return Err(TierError::TooLarge {
                len: payload.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        Ok(BlockHeader {
            key,
            // In range: MAX_BLOCK_BYTES < u32::MAX (asserted at the top).
            payload_len: payload.len() as u32,
            payload_checksum: xxh3_64(payload),
        })
    }

    /// Writes the header, its reserved fields zeroed and its checksum last.
    pub fn encode(&self, out: &mut [u8; BLOCK_HEADER_BYTES]) {
        out.fill(0);
        out[0..4].copy_from_slice(&BLOCK_MAGIC);
        out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[8..24].copy_from_slice(&self.key.0.to_le_bytes());
        out[24..28].copy_from_slice(&self.payload_len.to_le_bytes());
        out[32..40].copy_from_slice(&self.payload_checksum.to_le_bytes());
        let sum = xxh3_64(&out[..HEADER_CHECKED_BYTES]);
        out[HEADER_CHECKED_BYTES..].copy_from_slice(&sum.to_le_bytes());
    }

    /// Reads a header from the first 64 bytes of `bytes`, checking magic, header checksum and
    /// version. Does not look at the payload (see [`verify`]).
    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, CorruptBlock> {
        let Some(h) = bytes.first_chunk::<BLOCK_HEADER_BYTES>() else {
            return Err(CorruptReason::Truncated { len: bytes.len() }.into());
        };
        let magic = [h[0], h[1], h[2], h[3]];
        if magic != BLOCK_MAGIC {
            return Err(CorruptReason::BadMagic { found: magic }.into());
        }
        let stored = u64::from_le_bytes(field(h, HEADER_CHECKED_BYTES));
        let computed = xxh3_64(&h[..HEADER_CHECKED_BYTES]);
        if stored != computed {
            return Err(CorruptReason::HeaderChecksum { stored, computed }.into());
        }
        let version = u16::from_le_bytes(field(h, 4));
        if version != FORMAT_VERSION {
            return Err(CorruptReason::UnsupportedVersion { found: version }.into());
        }
        Ok(BlockHeader {
            key: BlockKey(u128::from_le_bytes(field(h, 8))),
            payload_len: u32::from_le_bytes(field(h, 24)),
            payload_checksum: u64::from_le_bytes(field(h, 32)),
        })
    }
}

/// `N` bytes of the header at `at` (in bounds by construction: callers pass constant offsets).
fn field<const N: usize>(h: &[u8; BLOCK_HEADER_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&h[at..at + N]);
    out
}

/// Verifies a stored block: header (magic, checksum, version), key, length bound and payload
/// checksum. `frame_bytes` is the header followed by the bytes available for the payload; the
/// stored length must fit in them. Returns the payload length.
pub fn verify(frame_bytes: &[u8], expected: impl Into<KeyCheck>) -> Result<u32, CorruptBlock> {
    let expected = expected.into();
    let header = BlockHeader::decode(frame_bytes)?;
    if !expected.matches(header.key) {
        return Err(CorruptReason::KeyMismatch {
            expected,
            found: header.key,
        }
        .into());
    }
    let max = frame_bytes.len() - BLOCK_HEADER_BYTES;
    let len = header.payload_len as usize;
    if len > max {
        return Err(CorruptReason::LengthOutOfBounds {
            len: header.payload_len,
            max,
        }
        .into());
    }
    let computed = xxh3_64(&frame_bytes[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
    if computed != header.payload_checksum {
        return Err(CorruptReason::PayloadChecksum {
            stored: header.payload_checksum,
            computed,
        }
        .into());
    }
    Ok(header.payload_len)
}

/// Writes header and payload at the start of `frame_bytes`; refuses a payload that does not fit.
pub fn encode_block(
    frame_bytes: &mut [u8],
    key: BlockKey,
    payload: &[u8],
) -> Result<(), TierError> {
    let max = frame_bytes.len().saturating_sub(BLOCK_HEADER_BYTES);
    if payload.len() > max {
        return Err(TierError::TooLarge {
            len: payload.len(),
            max,
        });
    }
    let header = BlockHeader::for_payload(key, payload)?;
    let (head, rest) = frame_bytes.split_at_mut(BLOCK_HEADER_BYTES);
    if let Some(head) = head.first_chunk_mut::<BLOCK_HEADER_BYTES>() {
        header.encode(head);
    }
    rest[..payload.len()].copy_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: BlockKey = BlockKey(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);

    fn block(payload: &[u8], room: usize) -> Vec<u8> {
        let mut f = vec![0u8; BLOCK_HEADER_BYTES + room];
        encode_block(&mut f, KEY, payload).unwrap();
        f
    }

    #[test]
    fn header_round_trips() {
        let h = BlockHeader::for_payload(KEY, b"hello").unwrap();
        let mut buf = [0u8; BLOCK_HEADER_BYTES];
        h.encode(&mut buf);
        assert_eq!(&buf[..4], b"MCBK");
        assert_eq!(BlockHeader::decode(&buf), Ok(h));
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.payload_checksum, xxh3_64(b"hello"));
    }

    #[test]
    fn verify_accepts_full_key_and_tag() {
        let f = block(b"payload bytes", 100);
        assert_eq!(verify(&f, KEY), Ok(13));
        assert_eq!(verify(&f, KeyCheck::Tag(KEY.tag())), Ok(13));
        // An empty payload is a valid block.
        let e = block(b"", 0);
        assert_eq!(verify(&e, KEY), Ok(0));
    }

    #[test]
    fn flipped_payload_byte_is_caught() {
        let mut f = block(b"payload bytes", 100);
        f[BLOCK_HEADER_BYTES + 3] ^= 0x01;
        let err = verify(&f, KEY).unwrap_err();
        assert!(
            matches!(err.reason, CorruptReason::PayloadChecksum { .. }),
            "{err}"
        );
        // Bytes past the payload are not covered: they are padding.
        let mut g = block(b"payload bytes", 100);
        g[BLOCK_HEADER_BYTES + 50] ^= 0xff;
        assert_eq!(verify(&g, KEY), Ok(13));
    }

    #[test]
    fn every_flipped_header_byte_is_caught() {
        let f = block(b"abc", 8);
        for i in 0..BLOCK_HEADER_BYTES {
            let mut g = f.clone();
            g[i] ^= 0x40;
            let err = verify(&g, KEY).unwrap_err();
            let expected_kind = match i {
                0..4 => matches!(err.reason, CorruptReason::BadMagic { .. }),
                _ => matches!(err.reason, CorruptReason::HeaderChecksum { .. }),
            };
            assert!(expected_kind, "byte {i}: {err}");
        }
    }

    #[test]
    fn wrong_key_is_caught() {
        let f = block(b"abc", 8);
        let other = BlockKey(KEY.0 ^ (1 << 100));
        let err = verify(&f, other).unwrap_err();
        assert_eq!(
            err.reason,
            CorruptReason::KeyMismatch {
                expected: KeyCheck::Key(other),
                found: KEY
            }
        );
        // Same tag, different high bits: the tag check passes, the full-key check does not.
        assert_eq!(verify(&f, KeyCheck::Tag(other.tag())), Ok(3));
        let err = verify(&f, KeyCheck::Tag(KEY.tag() ^ 1)).unwrap_err();
        assert!(matches!(err.reason, CorruptReason::KeyMismatch { .. }));
        assert!(err.to_string().contains("expected key tag"), "{err}");
    }

    #[test]
    fn length_larger_than_frame_is_caught() {
        // A valid header (checksum included) whose length exceeds the bytes given.
        let f = block(&[7u8; 40], 40);
        let err = verify(&f[..BLOCK_HEADER_BYTES + 39], KEY).unwrap_err();
        assert_eq!(
            err.reason,
            CorruptReason::LengthOutOfBounds { len: 40, max: 39 }
        );
        // A forged header with a huge length and a recomputed header checksum.
        let mut h = BlockHeader::for_payload(KEY, &[7u8; 40]).unwrap();
        h.payload_len = u32::MAX;
        let mut forged = f.clone();
        let head: &mut [u8; BLOCK_HEADER_BYTES] =
            (&mut forged[..BLOCK_HEADER_BYTES]).try_into().unwrap();
        h.encode(head);
        let err = verify(&forged, KEY).unwrap_err();
        assert!(matches!(
            err.reason,
            CorruptReason::LengthOutOfBounds { len: u32::MAX, .. }
        ));
    }

    #[test]
    fn encode_refuses_a_payload_that_does_not_fit() {
        let mut f = vec![0u8; BLOCK_HEADER_BYTES + 4];
        let err = encode_block(&mut f, KEY, b"12345").unwrap_err();
        assert!(
            matches!(err, TierError::TooLarge { len: 5, max: 4 }),
            "{err}"
        );
        assert!(
            f.iter().all(|&b| b == 0),
            "a refused write leaves the frame as it was"
        );
    }

    #[test]
    fn never_written_and_truncated_frames_are_values() {
        let zero = vec![0u8; 4096];
        let err = verify(&zero, KEY).unwrap_err();
        assert!(matches!(err.reason, CorruptReason::BadMagic { .. }));
        assert!(err.to_string().contains("never written"), "{err}");
        let err = verify(&zero[..10], KEY).unwrap_err();
        assert_eq!(err.reason, CorruptReason::Truncated { len: 10 });
    }

    #[test]
    fn other_version_is_refused() {
        let mut f = block(b"abc", 8);
        f[4..6].copy_from_slice(&2u16.to_le_bytes());
        let sum = xxh3_64(&f[..HEADER_CHECKED_BYTES]);
        f[HEADER_CHECKED_BYTES..BLOCK_HEADER_BYTES].copy_from_slice(&sum.to_le_bytes());
        let err = verify(&f, KEY).unwrap_err();
        assert_eq!(err.reason, CorruptReason::UnsupportedVersion { found: 2 });
    }
}
