//! Warm restart of a persistent disk tier: the directory rebuilt from the block headers.
//!
//! Every frame's header is read (`mcos_tiers::rebuild::scan_headers`: 64 bytes per frame, no
//! payloads) and every block whose header verifies is handed to the shard that owns its key,
//! at the frame it was found in. What cannot be restored is discarded and counted: a header
//! that does not verify (a write torn by the crash, a damaged or foreign frame), a block in a
//! frame its shard does not own (the shard count changed), and older copies of a key already
//! restored (blocks are immutable, so any copy is the block; the first in frame order wins).
//! Payload checksums are verified on every read, so a restored block whose payload was torn is
//! a counted miss at its first read, never a wrong byte.

use crate::error::NodeError;
use mcos_core::{BlockKey, TierId};
use mcos_fastpath::RestoreError;
use mcos_tiers::DiskTier;
use mcos_tiers::rebuild::scan_headers;

/// What a warm restart found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct RebuildStats {
    /// The persistent tier.
    pub tier: TierId,
    /// Frames whose header was read.
    pub frames_scanned: u64,
    /// Blocks restored into the directory.
    pub blocks_restored: u64,
    /// Frames never written.
    pub empty_frames: u64,
    /// Frames whose header did not verify (torn, partial or foreign): discarded.
    pub discarded_corrupt: u64,
    /// Verified blocks in a frame their key's shard does not own: discarded.
    pub discarded_misplaced: u64,
    /// Older copies of a key already restored: their frames are free again.
    pub duplicates: u64,
    /// Bytes of the tier file covered by the scan.
    pub file_bytes: u64,
    /// Wall time of the scan and restore.
    pub seconds: f64,
}

impl RebuildStats {
    /// Bytes of tier file covered per second.
    pub fn bytes_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.file_bytes as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Headers read per second.
    pub fn headers_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames_scanned as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Scans `disk` (tier `tier` of a node of `shards` shards) and restores each verified block
/// through `restore(shard, key, frame)`.
pub(crate) fn rebuild(
    disk: &DiskTier,
    tier: TierId,
    shards: usize,
    mut restore: impl FnMut(usize, BlockKey, u32) -> Result<(), RestoreError>,
) -> Result<RebuildStats, NodeError> {
    let start = std::time::Instant::now();
    let scan = scan_headers(disk)?;
    let mut stats = RebuildStats {
        tier,
        frames_scanned: scan.frames_scanned,
        empty_frames: scan.empty_frames,
        discarded_corrupt: scan.discarded_frames,
        file_bytes: scan.file_bytes_covered,
        blocks_restored: 0,
        discarded_misplaced: 0,
        duplicates: 0,
        seconds: 0.0,
    };
    for b in &scan.blocks {
        match restore(b.key.shard(shards), b.key, b.frame) {
            Ok(()) => stats.blocks_restored += 1,
            Err(RestoreError::Duplicate) => stats.duplicates += 1,
            Err(RestoreError::NotOwned | RestoreError::FrameInUse) => {
                stats.discarded_misplaced += 1
            }
            // The directory holds every frame of the tiers; a full bucket pair drops the block
            // (a miss), as a put would be refused.
            Err(RestoreError::DirectoryFull) => stats.discarded_misplaced += 1,
        }
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(stats)
}
