//! The pipeline's geometry: frames, directory sets, sketch width, tag width; and the on-chip
//! bits each table takes.

use mcos_core::limits::{SKETCH_WIDTH, SKETCH_WIDTH_MAX, VICTIM_SCAN_MAX};
use mcos_core::{AGE_BITS, Replacement};

/// Ways per directory set (one RAM per way, read in parallel). Eight, not four: with two
/// choices of set and deletions under churn, four ways at half load overflowed about once per
/// thousand inserts on the Mooncake trace (an insert the software's cuckoo directory places);
/// eight ways at the same load and the same bits did not in 10 M events.
pub const WAYS: u32 = 8;
/// Directory banks (two-choice hashing: a key may sit in its set of either bank).
pub const BANKS: u32 = 2;
/// Frames the CLOCK scan inspects per victim (the software's `VICTIM_SCAN_MAX`).
pub const SCAN: u32 = VICTIM_SCAN_MAX as u32;
/// Classes per table bank.
pub const CLASSES: u32 = 256;

/// Geometry of one pipeline instance; the RTL takes the same values as parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HwConfig {
    /// Frames of tier 0, the tier blocks are inserted into (any count, not only powers of two).
    pub frames: u32,
    /// Frames of tier 1, which tier 0's victims are demoted to (0: one tier, the victim is
    /// dropped). Tier-1 frames have the global ids `frames..frames + frames1`.
    pub frames1: u32,
    /// Width of a (global) frame index.
    pub frame_bits: u32,
    /// log2 of the sets per directory bank.
    pub set_bits: u32,
    /// log2 of the counters per sketch row.
    pub sketch_bits: u32,
    /// Tag width (64: the software's directory tag; a narrower tag is only for fitting a
    /// small FPGA, and is not checked against the software).
    pub tag_bits: u32,
    /// Replacement the pipeline executes: `Replacement::Clock` (one reference bit per frame)
    /// or `Replacement::Aged` (a 7-bit age stamp per frame); fixed by the build, a table
    /// install does not change it.
    pub replacement: Replacement,
    /// log2 of the telemetry ring's depth in records (`crate::telemetry`).
    pub tel_depth_bits: u32,
}

fn log2_ceil(n: u64) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

impl HwConfig {
    /// The geometry for `frames` frames that the software shard of the same size matches: the
    /// directory has at least two entries per frame (load at most 50 %), and the sketch rows are
    /// as wide as the software sizes them (`Sketch::sized_for`).
    pub fn for_frames(frames: u32) -> HwConfig {
        assert!(frames >= 1, "a pipeline needs at least one frame");
        let set_bits = log2_ceil(u64::from(frames).div_ceil(u64::from(WAYS))).max(1);
        let width = u64::from(frames)
            .next_power_of_two()
            .clamp(SKETCH_WIDTH as u64, SKETCH_WIDTH_MAX as u64);
        HwConfig {
            frames,
            frames1: 0,
            frame_bits: log2_ceil(u64::from(frames)).max(1),
            set_bits,
            sketch_bits: width.trailing_zeros(),
            tag_bits: 64,
            replacement: Replacement::Clock,
            tel_depth_bits: crate::telemetry::DEPTH_BITS_DEFAULT,
        }
    }

    /// Two tiers: `frames` in tier 0 and `frames1` (at least one) in tier 1, which tier 0's
    /// victims are demoted to. One directory holds both tiers' blocks, so it is sized for all
    /// of them, as the software's is; the sketch is sized for tier 0, as the software's is.
    pub fn two_tier(frames: u32, frames1: u32) -> HwConfig {
        assert!(frames1 >= 1, "a second tier needs at least one frame");
        let all = frames + frames1;
        let one = HwConfig::for_frames(frames);
        HwConfig {
            frames1,
            frame_bits: log2_ceil(u64::from(all)).max(1),
            set_bits: log2_ceil(u64::from(all).div_ceil(u64::from(WAYS))).max(1),
            ..one
        }
    }

    /// Tiers: 1 or 2.
    pub fn tiers(&self) -> u32 {
        if self.frames1 > 0 { 2 } else { 1 }
    }

    /// Frames of both tiers.
    pub fn all_frames(&self) -> u32 {
        self.frames + self.frames1
    }

    /// As [`HwConfig::for_frames`], executing `replacement`.
    pub fn with_replacement(self, replacement: Replacement) -> HwConfig {
        HwConfig {
            replacement,
            ..self
        }
    }

    /// Bits of per-frame replacement state: 1 (CLOCK's reference bit) or `AGE_BITS`.
    pub fn replacement_bits(&self) -> u32 {
        if self.replacement == Replacement::Aged {
            AGE_BITS
        } else {
            1
        }
    }

    /// Directory sets per bank.
    pub fn sets(&self) -> u32 {
        1 << self.set_bits
    }

    /// Bits of one directory entry: valid, the tag bits the set index does not imply, frame.
    pub fn dir_entry_bits(&self) -> u32 {
        1 + (self.tag_bits - self.set_bits) + self.frame_bits
    }

    /// Bits of one frame-table entry: where its block's directory entry sits (bank, way, set).
    pub fn frame_entry_bits(&self) -> u32 {
        1 + WAYS.trailing_zeros() + self.set_bits
    }

    /// Records the telemetry ring holds.
    pub fn tel_depth(&self) -> u32 {
        1 << self.tel_depth_bits
    }

    /// On-chip bits per table.
    pub fn bits(&self) -> TableBits {
        TableBits {
            sample_bits: u64::from(self.frames),
            telemetry_ring: u64::from(self.tel_depth())
                * u64::from(crate::telemetry::record_bits(self)),
            telemetry_registers: crate::telemetry::register_bits(self),
            directory: u64::from(BANKS * WAYS * self.sets()) * u64::from(self.dir_entry_bits()),
            frame_table: u64::from(self.all_frames()) * u64::from(self.frame_entry_bits()),
            reference_bits: u64::from(self.all_frames()) * u64::from(self.replacement_bits()),
            sketch: 4 * (1u64 << self.sketch_bits) * 4,
            class_table: 2 * u64::from(CLASSES) * 5,
            registers: u64::from(self.frame_bits) * 2
                + 1
                + if self.replacement == Replacement::Aged {
                    // Carried candidate and its valid bit, epoch, writes in the epoch.
                    u64::from(self.frame_bits) * 2 + 1 + u64::from(AGE_BITS)
                } else {
                    0
                }
                + if self.frames1 > 0 {
                    // Tier 1's hand, free count (and aged: carried candidate, epoch, writes);
                    // the move in flight: busy, generation, source, destination, directory
                    // location, entry remainder, epoch; tier 0's released frame.
                    u64::from(self.frame_bits) * 2
                        + if self.replacement == Replacement::Aged {
                            u64::from(self.frame_bits) * 3 + 1 + u64::from(AGE_BITS)
                        } else {
                            0
                        }
                        + 1
                        + 16
                        + u64::from(self.frame_bits) * 3
                        + u64::from(self.frame_entry_bits())
                        + u64::from(self.tag_bits - self.set_bits)
                        + 16
                        + 1
                } else {
                    0
                },
        }
    }
}

/// On-chip storage of one pipeline, in bits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TableBits {
    /// Directory: banks x ways x sets entries.
    pub directory: u64,
    /// Frame table (directory location per frame, both tiers).
    pub frame_table: u64,
    /// CLOCK reference bits or aged stamps (flip-flops, both tiers).
    pub reference_bits: u64,
    /// Count-min sketch: 4 rows of 4-bit counters.
    pub sketch: u64,
    /// Class table: 2 banks (active and shadow) x 256 x {threshold 4, LRU insertion 1}.
    pub class_table: u64,
    /// Hand, free-frame count, active bank (aged: also the carried candidate, the epoch and
    /// the writes counted towards the next one).
    pub registers: u64,
    /// Telemetry: one bit per frame, whether its block's key is in the spatial sample (an
    /// eviction is sampled on the victim's key, which is not on chip at eviction time).
    pub sample_bits: u64,
    /// Telemetry ring: depth x record bits (fixed size, not per block).
    pub telemetry_ring: u64,
    /// Telemetry registers: head, tail, dropped, shift, kinds, table epoch.
    pub telemetry_registers: u64,
}

impl TableBits {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.directory
            + self.frame_table
            + self.reference_bits
            + self.sketch
            + self.class_table
            + self.registers
            + self.sample_bits
            + self.telemetry_ring
            + self.telemetry_registers
    }

    /// Per-block state (directory, frame table, reference bit, sketch, telemetry sample bit)
    /// in bytes per frame: the figure that scales with the tier. The class table, the
    /// telemetry ring and the registers are fixed-size and not included.
    pub fn per_block_bytes(&self, frames: u32) -> f64 {
        (self.directory + self.frame_table + self.reference_bits + self.sketch + self.sample_bits)
            as f64
            / 8.0
            / f64::from(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_frames() {
        let c = HwConfig::for_frames(2000);
        assert_eq!(c.frame_bits, 11);
        assert_eq!(c.sketch_bits, 12);
        assert!(BANKS * WAYS * c.sets() >= 2 * c.frames);
        let big = HwConfig::for_frames(1 << 16);
        assert_eq!(big.sketch_bits, 16);
        assert!(big.bits().per_block_bytes(big.frames) <= 24.0);
        assert_eq!(HwConfig::for_frames(2000).set_bits, 8);
    }

    #[test]
    fn two_tiers_size_the_directory_for_both_and_the_sketch_for_tier_0() {
        let c = HwConfig::two_tier(2000, 2000);
        assert_eq!((c.tiers(), c.all_frames()), (2, 4000));
        assert_eq!(c.frame_bits, 12, "global frame ids");
        assert!(BANKS * WAYS * c.sets() >= 2 * c.all_frames());
        assert_eq!(c.sketch_bits, HwConfig::for_frames(2000).sketch_bits);
        assert_eq!(HwConfig::for_frames(2000).tiers(), 1);
        let one = HwConfig::for_frames(300).bits();
        let two = HwConfig::two_tier(300, 100).bits();
        assert!(two.frame_table > one.frame_table && two.registers > one.registers);
    }
}
