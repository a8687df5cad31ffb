//! Events into the pipeline and the decisions out of it, with the fixed binary records the
//! Verilator harness (hw/tb/harness.cpp) reads and writes.

use mcos_core::BlockKey;

/// What an event asks for (the RTL's `in_op`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Directory lookup; a hit sets the frame's reference bit; the sketch counts the key.
    Access = 0,
    /// Admission and, when admitted, a frame (free, or the CLOCK victim's).
    Insert = 1,
    /// Table-install port: write one class entry into the shadow bank.
    ClassWrite = 2,
    /// Table-install port: the shadow bank becomes active at this event boundary.
    Swap = 3,
    /// A move engine finished the move whose id the event carries (the software's
    /// `MoveCompletion`, status done); two tiers only.
    Complete = 4,
}

/// One event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Kind.
    pub op: Op,
    /// Class (INSERT, CLASS_WRITE).
    pub class: u8,
    /// The key (the pipeline sees its directory tag, `BlockKey::tag`; the software shard the
    /// whole key).
    pub key: BlockKey,
    /// Sketch hash of the tag (`mcos_fastpath::sketch::sketch_hash`), computed by whoever
    /// forms the event, as the key's own hash is.
    pub sketch_hash: u64,
    /// CLASS_WRITE: the 128-bit class entry (`ClassPolicy::to_bits`). SWAP: the low 8 bits
    /// are the installed table's `telemetry_kinds` (the one table global the pipeline reads).
    pub entry: u128,
    /// Trailing zero bits of `mcos_core::telemetry::sample_hash(tag)`, at most 63: the key is
    /// in the spatial sample at shift `s` when this is at least `s`. Computed by whoever
    /// forms the event, as the sketch hash is (the hash is a 64-bit multiply, which on an
    /// iCE40 without multipliers would cost thousands of LUTs and a stage).
    pub sample_zeros: u8,
}

impl Event {
    /// ACCESS of `key`.
    pub fn access(key: BlockKey) -> Event {
        Event::keyed(Op::Access, key, 0)
    }

    /// INSERT of `key` into `class`.
    pub fn insert(key: BlockKey, class: u8) -> Event {
        Event::keyed(Op::Insert, key, class)
    }

    fn keyed(op: Op, key: BlockKey, class: u8) -> Event {
        Event {
            op,
            class,
            key,
            sketch_hash: mcos_fastpath::sketch::sketch_hash(key.tag()),
            entry: 0,
            sample_zeros: sample_zeros(key.tag()),
        }
    }

    /// CLASS_WRITE of `entry` for `class`.
    pub fn class_write(class: u8, entry: u128) -> Event {
        Event {
            op: Op::ClassWrite,
            class,
            key: BlockKey::NONE,
            sketch_hash: 0,
            entry,
            sample_zeros: 0,
        }
    }

    /// COMPLETE of the move `move_id` (a `MoveDescriptor::move_id`, or any other value: a
    /// stale completion).
    pub fn complete(move_id: u32) -> Event {
        Event {
            op: Op::Complete,
            class: 0,
            key: BlockKey::NONE,
            sketch_hash: 0,
            entry: u128::from(move_id),
            sample_zeros: 0,
        }
    }

    /// The move id a COMPLETE carries.
    pub fn move_id(&self) -> u32 {
        self.entry as u32
    }

    /// SWAP of a table that samples every kind.
    pub fn swap() -> Event {
        Event::swap_with_kinds(mcos_core::TELEMETRY_ALL)
    }

    /// SWAP of a table whose `telemetry_kinds` is `kinds`.
    pub fn swap_with_kinds(kinds: u8) -> Event {
        Event {
            op: Op::Swap,
            class: 0,
            key: BlockKey::NONE,
            sketch_hash: 0,
            entry: u128::from(kinds),
            sample_zeros: 0,
        }
    }

    /// The directory tag the pipeline sees.
    pub fn tag(&self) -> u64 {
        self.key.tag()
    }

    /// Bytes of one record in the harness's input file.
    pub const RECORD_BYTES: usize = 40;

    /// The harness record: op, class, sample zeros, 5 bytes of zero, tag, sketch hash, entry
    /// low, entry high (little endian).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.op as u8);
        out.push(self.class);
        out.push(self.sample_zeros);
        out.extend_from_slice(&[0; 5]);
        out.extend_from_slice(&self.tag().to_le_bytes());
        out.extend_from_slice(&self.sketch_hash.to_le_bytes());
        out.extend_from_slice(&(self.entry as u64).to_le_bytes());
        out.extend_from_slice(&((self.entry >> 64) as u64).to_le_bytes());
    }
}

/// Trailing zeros of the key's sample hash, capped at 63 (the event's `sample_zeros`).
pub fn sample_zeros(tag: u64) -> u8 {
    mcos_core::telemetry::sample_hash(tag)
        .trailing_zeros()
        .min(63) as u8
}

/// The decision for one event (the RTL's `out_code`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    /// ACCESS: not resident.
    Miss = 0,
    /// ACCESS: resident at the frame.
    Hit = 1,
    /// INSERT: already resident at the frame.
    Present = 2,
    /// INSERT: admitted into a free frame.
    Fill = 3,
    /// INSERT: admitted into the frame of the CLOCK victim, evicted.
    FillEvict = 4,
    /// INSERT: the sketch has not counted the key often enough for its class.
    RejectAdmission = 5,
    /// INSERT: both of the key's directory sets are full (hardware only; the software's cuckoo
    /// directory would have placed it, so it counts as a mismatch).
    RejectDirectory = 6,
    /// CLASS_WRITE or SWAP done; COMPLETE of the move in flight (the frame names its
    /// destination).
    Ack = 7,
    /// INSERT (two tiers): tier 0 is full, its victim is being demoted to tier 1 (the frame
    /// names the victim's tier-0 frame) and a descriptor follows; the block is not inserted
    /// (the software's `Insert::Retry`: retry after the completion).
    Demote = 8,
    /// INSERT (two tiers): tier 0 is full and a demotion is already in flight: retry after
    /// its completion (the software's `Insert::Retry` with no descriptor).
    Wait = 9,
    /// COMPLETE of an id that names no move in flight (the software counts a stale
    /// completion and changes nothing).
    Stale = 10,
}

/// Decision codes, in `Code as usize` order.
pub const CODES: usize = 11;

impl Code {
    /// From the RTL's 4-bit code; None for a value no decision has (11 to 15, or wider).
    pub fn from_bits(v: u32) -> Option<Code> {
        Some(match v {
            0 => Code::Miss,
            1 => Code::Hit,
            2 => Code::Present,
            3 => Code::Fill,
            4 => Code::FillEvict,
            5 => Code::RejectAdmission,
            6 => Code::RejectDirectory,
            7 => Code::Ack,
            8 => Code::Demote,
            9 => Code::Wait,
            10 => Code::Stale,
            _ => return None,
        })
    }
}

/// A movement descriptor as the pipeline emits it on its `desc_*` port: the fields of the
/// software's `MoveDescriptor` that vary (op demote, tier 0 to 1, urgency evict, engine 0 and
/// length are fixed by the two-tier scope).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// Move id (generation in the high 16 bits, slot 0: one move in flight).
    pub move_id: u32,
    /// Directory tag of the demoted block.
    pub tag: u64,
    /// Source frame (tier 0, global id).
    pub src_frame: u32,
    /// Destination frame (tier 1, global id: tier-0 frames first).
    pub dst_frame: u32,
    /// Policy-table epoch when the move was decided.
    pub epoch: u16,
}

impl Descriptor {
    /// The fields the pipeline emits of a software descriptor.
    pub fn of(d: &mcos_core::MoveDescriptor) -> Descriptor {
        Descriptor {
            move_id: d.move_id,
            tag: d.key_tag,
            src_frame: d.src_frame,
            dst_frame: d.dst_frame,
            epoch: d.epoch,
        }
    }

    /// Bytes of one record in the harness's descriptor file: cycle u64, tag u64, move id
    /// u32, src frame u32, dst frame u32, epoch u32 (little endian).
    pub const RECORD_BYTES: usize = 32;

    /// Decodes the harness's descriptor file into (cycle, descriptor).
    pub fn decode_all(bytes: &[u8]) -> Vec<(u64, Descriptor)> {
        bytes
            .chunks_exact(Self::RECORD_BYTES)
            .map(|r| {
                let word = |a: usize, b: usize| {
                    r[a..b]
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
                };
                (
                    word(0, 8),
                    Descriptor {
                        tag: word(8, 16),
                        move_id: word(16, 20) as u32,
                        src_frame: word(20, 24) as u32,
                        dst_frame: word(24, 28) as u32,
                        epoch: word(28, 32) as u16,
                    },
                )
            })
            .collect()
    }
}

/// A decision with the frame it names (0 when it names none).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What was decided.
    pub code: Code,
    /// Frame of a hit, a present block or a fill (with two tiers a global id: tier-1 frames
    /// follow tier 0's), of a demoted victim, or of a completed move's destination.
    pub frame: u32,
}

/// A decision as it leaves the pipeline: the cycle `out_valid` was high.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Output {
    /// Cycle since reset released (the first cycle an event may be accepted is 0).
    pub cycle: u64,
    /// The decision.
    pub decision: Decision,
}

impl Output {
    /// Bytes of one record in the harness's output file: cycle u64, code u32, frame u32.
    pub const RECORD_BYTES: usize = 16;

    /// Decodes the harness's output file; a code no decision has is an error naming the
    /// record (the RTL drove a value the model cannot produce, or the file is damaged).
    pub fn decode_all(bytes: &[u8]) -> Result<Vec<Output>, String> {
        bytes
            .chunks_exact(Self::RECORD_BYTES)
            .enumerate()
            .map(|(i, r)| {
                let word = |a: usize, b: usize| {
                    r[a..b]
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
                };
                let bits = word(8, 12) as u32;
                let code = Code::from_bits(bits).ok_or_else(|| {
                    format!(
                        "output {i} (cycle {}): code {bits} is no decision",
                        word(0, 8)
                    )
                })?;
                Ok(Output {
                    cycle: word(0, 8),
                    decision: Decision {
                        code,
                        frame: word(12, 16) as u32,
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_no_other_value_is_a_decision() {
        for v in 0..=10u32 {
            let c = Code::from_bits(v).expect("a decision");
            assert_eq!(c as u32, v);
        }
        for v in [11, 12, 15, 16, 26, u32::MAX] {
            assert_eq!(Code::from_bits(v), None, "{v}");
        }
        let record = |code: u32| {
            let mut r = vec![0u8; Output::RECORD_BYTES];
            r[0..8].copy_from_slice(&7u64.to_le_bytes());
            r[8..12].copy_from_slice(&code.to_le_bytes());
            r[12..16].copy_from_slice(&3u32.to_le_bytes());
            r
        };
        let mut file = record(8);
        let ok = Output::decode_all(&file).unwrap();
        assert_eq!(
            ok[0].decision,
            Decision {
                code: Code::Demote,
                frame: 3
            }
        );
        file.extend(record(12));
        let e = Output::decode_all(&file).unwrap_err();
        assert!(e.contains("output 1") && e.contains("code 12"), "{e}");
    }
}
