//! The disk tier file's superblock: the first 4 KiB of the file say that it is an MCOS tier
//! file, in which format, and of which geometry.
//!
//! It lets a tier recognise its own file (and reuse it: warm restart) and refuse everything else
//! instead of overwriting it. One `DISK_ALIGN` region, so frame `i` starts at
//! `SUPERBLOCK_BYTES + i * stride` and every frame stays 4096-aligned for O_DIRECT.
//!
//! Layout (little-endian): magic `MCOSTIER` (8 bytes), format version (u32), superblock bytes
//! (u32), block_bytes (u32), frames (u32), stride (u64), data offset (u64), flags (u32), holder
//! pid (u32), reserved to byte 56, then an xxh3-64 of bytes 0..56. The rest of the region is zero.

use mcos_core::limits::DISK_ALIGN;
use xxhash_rust::xxh3::xxh3_64;

/// Bytes reserved at the start of a tier file (one aligned region).
pub const SUPERBLOCK_BYTES: usize = DISK_ALIGN;
/// First bytes of every MCOS tier file.
pub const MAGIC: [u8; 8] = *b"MCOSTIER";
/// Format of the superblock and frames this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Flag: the file was closed cleanly after its last write (reserved for persistent tiers).
pub const FLAG_CLEAN_SHUTDOWN: u32 = 1;
/// Flag: the tier's blocks are meant to outlive the process (reserved for persistent tiers).
pub const FLAG_PERSIST: u32 = 1 << 1;

const CHECKSUM_AT: usize = 56;
/// Bytes the checksum covers and the reader needs.
pub const ENCODED_BYTES: usize = CHECKSUM_AT + 8;

/// What a tier file's superblock records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Format version that wrote the file.
    pub version: u32,
    /// Payload bytes per block.
    pub block_bytes: u32,
    /// Frames in the file.
    pub frames: u32,
    /// Bytes from one frame to the next.
    pub stride: u64,
    /// File offset of frame 0.
    pub data_offset: u64,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Pid of the process that last opened the file for writing (0: none recorded).
    pub holder_pid: u32,
}

/// Why the first bytes of a file are not a usable superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid MCOS superblock.
    Tier(Superblock),
    /// The MCOS magic, but the checksum does not match: a damaged or half-written superblock.
    Damaged,
    /// Not an MCOS tier file; the text says what the bytes look like.
    Foreign(String),
}

impl Superblock {
    /// The superblock of a fresh tier of this geometry, held by this process.
    pub fn new(block_bytes: u32, frames: u32, stride: usize) -> Superblock {
        Superblock {
            version: FORMAT_VERSION,
            block_bytes,
            frames,
            stride: stride as u64,
            data_offset: SUPERBLOCK_BYTES as u64,
            flags: 0,
            holder_pid: std::process::id(),
        }
    }

    /// The whole superblock region, ready to write at offset 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SUPERBLOCK_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SUPERBLOCK_BYTES as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.block_bytes.to_le_bytes());
        b[20..24].copy_from_slice(&self.frames.to_le_bytes());
        b[24..32].copy_from_slice(&self.stride.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_offset.to_le_bytes());
        b[40..44].copy_from_slice(&self.flags.to_le_bytes());
        b[44..48].copy_from_slice(&self.holder_pid.to_le_bytes());
        let sum = xxh3_64(&b[..CHECKSUM_AT]);
        b[CHECKSUM_AT..ENCODED_BYTES].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Reads the first bytes of a file (`bytes` may be shorter than [`ENCODED_BYTES`]).
    pub fn decode(bytes: &[u8]) -> Decoded {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Decoded::Foreign(describe_foreign(bytes));
        }
        if bytes.len() < ENCODED_BYTES {
            return Decoded::Damaged;
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(w)
        };
        if u64_at(CHECKSUM_AT) != xxh3_64(&bytes[..CHECKSUM_AT]) {
            return Decoded::Damaged;
        }
        Decoded::Tier(Superblock {
            version: u32_at(8),
            block_bytes: u32_at(16),
            frames: u32_at(20),
            stride: u64_at(24),
            data_offset: u64_at(32),
            flags: u32_at(40),
            holder_pid: u32_at(44),
        })
    }

    /// Whether a tier of this geometry can use the file as it is.
    pub fn same_geometry(&self, other: &Superblock) -> bool {
        self.version == other.version
            && self.block_bytes == other.block_bytes
            && self.frames == other.frames
            && self.stride == other.stride
            && self.data_offset == other.data_offset
    }

    /// The geometry in words, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "format version {}, {} frames of {} payload bytes (stride {})",
            self.version, self.frames, self.block_bytes, self.stride
        )
    }
}

/// A short description of a file's first bytes: printable text quoted, anything else in hex.
fn describe_foreign(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    if head.is_empty() {
        return "it is empty".into();
    }
    let printable = head
        .iter()
        .all(|&c| c.is_ascii_graphic() || c == b' ' || c == b'\n' || c == b'\t');
    if printable {
        let text: String = head
            .iter()
            .map(|&c| if c.is_ascii_graphic() { c as char } else { ' ' })
            .collect();
        format!("it starts with the text \"{}\"", text.trim_end())
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let sb = Superblock::new(16384, 100, 20480);
        let mut b = sb.encode();
        assert_eq!(b.len(), SUPERBLOCK_BYTES);
        assert_eq!(Superblock::decode(&b), Decoded::Tier(sb));
        b[20] ^= 1;
        assert_eq!(Superblock::decode(&b), Decoded::Damaged);
        assert!(matches!(
            Superblock::decode(b"hello world, this is mine"),
            Decoded::Foreign(s) if s.contains("\"hello world, th")
        ));
        assert!(matches!(
            Superblock::decode(&[0, 1, 2, 0xff, 9, 9, 9, 9, 9]),
            Decoded::Foreign(s) if s.contains("00 01 02 ff")
        ));
        assert_eq!(Superblock::decode(&MAGIC), Decoded::Damaged);
    }
}
