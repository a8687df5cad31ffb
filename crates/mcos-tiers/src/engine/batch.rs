//! Executing a batch of movement descriptors: the semantics every engine shares.
//!
//! Per descriptor, by the kinds of its source and destination tiers:
//! - DRAM -> disk: the source frame is verified (header, key tag, payload checksum, payload at
//!   most `len` bytes) before anything is written; a bad source is `Corrupt` and the disk frame is
//!   not written. The aligned span holding header and payload is then written to the file.
//! - disk -> DRAM: the aligned span for `len` payload bytes is read into the destination frame,
//!   which is then verified the same way; a block that fails is `Corrupt`.
//! - DRAM -> DRAM: [`super::memcpy::copy_block`].
//! - disk -> disk: not supported (`IoError`, `EOPNOTSUPP`); the fast path never routes it.
//!
//! A descriptor that names a tier the engine lacks, a frame past a tier's end, or a `len` above
//! either tier's `block_bytes` is `IoError` with `EINVAL`; a frame another mover holds is
//! `IoError` with `EBUSY` (a fast-path bug: the state machine hands frames out exclusively). A
//! destination frame that a node reader is still copying its previous block out of is waited
//! out, not failed (the frame claims' bounded wait, [`crate::claims`]).
//! All disk I/O of a chunk of up to `ENGINE_BATCH` descriptors goes to the backend in one call,
//! with DRAM frames held by their claims until the backend returns.

use super::{IoBackend, IoKind, IoOp, Outcome, memcpy};
use crate::dram::{FrameRead, FrameWrite, verify_frame};
use crate::error::TierError;
use crate::header::KeyCheck;
use crate::layout::transfer_len;
use crate::store::{TierSet, TierStore};
use mcos_core::limits::ENGINE_BATCH;
use mcos_core::{MoveDescriptor, MoveStatus, TierId};
use std::os::fd::AsRawFd;

/// What a batch cost, for the engine's counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchTally {
    /// Backend calls made (one per chunk of up to `ENGINE_BATCH` descriptors with disk I/O).
    pub submissions: u64,
    /// Bytes the backend transferred.
    pub io_bytes: u64,
}

/// A disk transfer waiting for its result, holding the DRAM frame it uses.
enum Pending<'a> {
    /// DRAM -> disk; the read claim keeps the source frame unchanged during the write.
    Write {
        _src: FrameRead<'a>,
        payload_len: u32,
    },
    /// disk -> DRAM; the write claim keeps everyone else off the destination frame.
    Read { dst: FrameWrite<'a> },
}

enum Step<'a> {
    Finished(Outcome),
    Io(IoOp, Pending<'a>),
}

enum Plan<'a> {
    Finished(Outcome),
    Io { pending: Pending<'a>, op: usize },
}

/// The CPU mover: disk I/O through an [`IoBackend`] and memcpy between DRAM tiers.
pub struct TierMover {
    tiers: TierSet,
    backend: Box<dyn IoBackend>,
}

impl TierMover {
    /// A mover over `tiers` doing disk I/O with `backend`.
    pub fn new(tiers: TierSet, backend: Box<dyn IoBackend>) -> TierMover {
        TierMover { tiers, backend }
    }
}

impl super::Mover for TierMover {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn execute(&mut self, descs: &[MoveDescriptor], out: &mut [Outcome]) -> BatchTally {
        execute_batch(&self.tiers, self.backend.as_mut(), descs, out)
    }
}

/// Executes `descs` and stores one outcome per descriptor in `out` (which must be at least as
/// long; descriptors without an outcome slot are not executed). Any number of descriptors;
/// they go to the backend in chunks of `ENGINE_BATCH`.
pub fn execute_batch(
    tiers: &TierSet,
    backend: &mut dyn IoBackend,
    descs: &[MoveDescriptor],
    out: &mut [Outcome],
) -> BatchTally {
    let mut tally = BatchTally::default();
    for (descs, out) in descs.chunks(ENGINE_BATCH).zip(out.chunks_mut(ENGINE_BATCH)) {
        execute_chunk(tiers, backend, descs, out, &mut tally);
    }
    tally
}

fn execute_chunk(
    tiers: &TierSet,
    backend: &mut dyn IoBackend,
    descs: &[MoveDescriptor],
    out: &mut [Outcome],
    tally: &mut BatchTally,
) {
    let placeholder = Outcome::failed(MoveStatus::IoError, libc::EINVAL);
    let mut plans: [Plan<'_>; ENGINE_BATCH] = std::array::from_fn(|_| Plan::Finished(placeholder));
    let mut ops = [IoOp::EMPTY; ENGINE_BATCH];
    let mut results = [0i32; ENGINE_BATCH];
    let mut n_ops = 0;
    for (d, plan) in descs.iter().zip(plans.iter_mut()) {
        *plan = match step(tiers, d) {
            Ok(Step::Finished(o)) => Plan::Finished(o),
            Ok(Step::Io(op, pending)) => {
                ops[n_ops] = op;
                n_ops += 1;
                Plan::Io {
                    pending,
                    op: n_ops - 1,
                }
            }
            Err(e) => Plan::Finished(Outcome::from_error(&e)),
        };
    }
    if n_ops > 0 {
        // SAFETY: every op's buffer is a DRAM frame (in an arena that `tiers` keeps alive) held
        // by the claim stored next to it in `plans`, which lives past this call: a read claim
        // for writes to disk (nobody writes the frame), a write claim for reads from disk (nobody
        // else touches it). Each fd belongs to a `DiskTier` that `tiers` keeps open.
        unsafe { backend.execute(&ops[..n_ops], &mut results[..n_ops]) };
        tally.submissions += 1;
    }
    for ((d, plan), o) in descs.iter().zip(plans.iter_mut()).zip(out.iter_mut()) {
        *o = match plan {
            Plan::Finished(o) => *o,
            Plan::Io { pending, op } => {
                let res = results[*op];
                tally.io_bytes += u64::try_from(res).unwrap_or(0);
                match Outcome::from_io_result(res, &ops[*op]) {
                    Err(failed) => failed,
                    Ok(()) => match pending {
                        Pending::Write { payload_len, .. } => Outcome::done(*payload_len),
                        Pending::Read { dst } => {
                            match verify_frame(
                                dst.bytes(),
                                d.len,
                                d.dst_frame,
                                KeyCheck::Tag(d.key_tag),
                            ) {
                                Ok(len) => Outcome::done(len),
                                Err(e) => Outcome::from_error(&e),
                            }
                        }
                    },
                }
            }
        };
    }
    // `plans` drops here, releasing every frame claim after the backend is done with it.
}

fn tier(tiers: &TierSet, id: u8) -> Result<&TierStore, TierError> {
    tiers.get(TierId(id)).ok_or_else(|| {
        TierError::Config(format!(
            "descriptor names tier {id}, the engine has {} tiers",
            tiers.len()
        ))
    })
}

/// Checks a descriptor, runs it if it is a memory copy, or prepares its disk I/O.
fn step<'a>(tiers: &'a TierSet, d: &MoveDescriptor) -> Result<Step<'a>, TierError> {
    let src = tier(tiers, d.src_tier)?;
    let dst = tier(tiers, d.dst_tier)?;
    let max = src.block_bytes().min(dst.block_bytes());
    if d.len > max {
        return Err(TierError::TooLarge {
            len: d.len as usize,
            max: max as usize,
        });
    }
    let expected = KeyCheck::Tag(d.key_tag);
    match (src, dst) {
        (TierStore::Dram(s), TierStore::Dram(t)) => {
            let len = memcpy::copy_block(s, d.src_frame, t, d.dst_frame, expected, d.len)?;
            Ok(Step::Finished(Outcome::done(len)))
        }
        (TierStore::Dram(s), TierStore::Disk(t)) => {
            let offset = t.frame_offset(d.dst_frame)?;
            let src = s.claim_read(d.src_frame)?;
            let payload_len = src.verify_at_most(d.len, expected)?;
            let op = IoOp {
                kind: IoKind::Write,
                fd: t.as_raw_fd(),
                buf: src.as_ptr().cast_mut(),
                // In range: at most MAX_BLOCK_BYTES + DISK_ALIGN.
                len: transfer_len(payload_len) as u32,
                offset,
            };
            #[cfg(feature = "fault-injection")]
            if let Some(failed) = t.injected_errno(d.dst_frame, true) {
                return Ok(Step::Finished(failed_io(failed, &op)));
            }
            Ok(Step::Io(
                op,
                Pending::Write {
                    _src: src,
                    payload_len,
                },
            ))
        }
        (TierStore::Disk(s), TierStore::Dram(t)) => {
            let offset = s.frame_offset(d.src_frame)?;
            let mut dst = t.claim_write(d.dst_frame)?;
            let op = IoOp {
                kind: IoKind::Read,
                fd: s.as_raw_fd(),
                buf: dst.as_mut_ptr(),
                len: transfer_len(d.len) as u32,
                offset,
            };
            #[cfg(feature = "fault-injection")]
            if let Some(failed) = s.injected_errno(d.src_frame, false) {
                return Ok(Step::Finished(failed_io(failed, &op)));
            }
            Ok(Step::Io(op, Pending::Read { dst }))
        }
        (TierStore::Disk(_), TierStore::Disk(_)) => Ok(Step::Finished(Outcome::failed(
            MoveStatus::IoError,
            libc::EOPNOTSUPP,
        ))),
        // HBM frames move only through the GPU engine (`cuda::GpuMover`).
        #[cfg(feature = "cuda")]
        (TierStore::Hbm(_), _) | (_, TierStore::Hbm(_)) => Ok(Step::Finished(Outcome::failed(
            MoveStatus::IoError,
            libc::EOPNOTSUPP,
        ))),
    }
}

/// The outcome of `op` failing with `errno` (an injected device fault, tests only).
#[cfg(feature = "fault-injection")]
fn failed_io(errno: i32, op: &IoOp) -> Outcome {
    match Outcome::from_io_result(-errno, op) {
        Err(o) => o,
        Ok(()) => Outcome::failed(MoveStatus::IoError, errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskTier;
    use crate::dram::DramTier;
    use crate::engine::{BackendChoice, select_backend};
    use mcos_core::{BlockKey, MoveOp, Urgency};
    use std::sync::Arc;

    fn desc(src: (u8, u32), dst: (u8, u32), key: BlockKey, len: u32) -> MoveDescriptor {
        MoveDescriptor {
            key_tag: key.tag(),
            move_id: 0,
            src_frame: src.1,
            dst_frame: dst.1,
            len,
            op: MoveOp::Demote,
            src_tier: src.0,
            dst_tier: dst.0,
            urgency: Urgency::Evict,
            epoch: 0,
            class: 0,
            engine: 0,
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        dram: Arc<DramTier>,
        disk: Arc<DiskTier>,
        tiers: TierSet,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let dram = Arc::new(DramTier::new(4, 5000).unwrap());
        let disk = Arc::new(DiskTier::create(dir.path().join("d"), 4, 5000).unwrap());
        let tiers = TierSet::new(vec![
            TierStore::Dram(dram.clone()),
            TierStore::Disk(disk.clone()),
            TierStore::Disk(disk.clone()),
        ])
        .unwrap();
        Fixture {
            _dir: dir,
            dram,
            disk,
            tiers,
        }
    }

    fn run(f: &Fixture, descs: &[MoveDescriptor]) -> (Vec<Outcome>, BatchTally) {
        let (mut backend, _) = select_backend(BackendChoice::Auto);
        let mut out = vec![Outcome::done(0); descs.len()];
        let tally = execute_batch(&f.tiers, backend.as_mut(), descs, &mut out);
        (out, tally)
    }

    #[test]
    fn invalid_descriptors_are_einval_and_touch_nothing() {
        let f = fixture();
        let k = BlockKey(3);
        f.dram.write_block(0, k, b"abc").unwrap();
        let descs = [
            desc((0, 0), (3, 0), k, 3),    // no tier 3
            desc((0, 9), (1, 0), k, 3),    // source frame out of range
            desc((0, 0), (1, 9), k, 3),    // destination frame out of range
            desc((0, 0), (1, 0), k, 5001), // longer than block_bytes
            desc((1, 0), (2, 1), k, 3),    // disk -> disk
        ];
        let (out, tally) = run(&f, &descs);
        let einval = Outcome::failed(MoveStatus::IoError, libc::EINVAL);
        assert_eq!(&out[..4], &[einval; 4]);
        assert_eq!(
            out[4],
            Outcome::failed(MoveStatus::IoError, libc::EOPNOTSUPP)
        );
        assert_eq!(tally, BatchTally::default(), "no I/O was issued");
        let mut buf = [0u8; 5000];
        assert!(f.disk.read_block(0, k, &mut buf).is_err());
    }

    #[test]
    fn demote_and_promote_within_one_batch_use_one_submission() {
        let f = fixture();
        let (a, b) = (BlockKey(10), BlockKey(11));
        f.dram.write_block(0, a, &[1u8; 5000]).unwrap();
        f.disk.write_block(2, b, &[2u8; 100]).unwrap();
        let descs = [
            desc((0, 0), (1, 1), a, 5000), // demote frame 0 -> disk 1
            desc((1, 2), (0, 3), b, 100),  // promote disk 2 -> frame 3
        ];
        let (out, tally) = run(&f, &descs);
        assert_eq!(out, [Outcome::done(5000), Outcome::done(100)]);
        assert_eq!(tally.submissions, 1);
        assert_eq!(tally.io_bytes, 8192 + 4096);
        let mut buf = [0u8; 5000];
        assert_eq!(f.disk.read_block(1, a, &mut buf).unwrap(), 5000);
        assert_eq!(f.dram.read_block(3, b, &mut buf).unwrap(), 100);
        assert!(buf[..100].iter().all(|&x| x == 2));
    }

    #[test]
    fn descriptor_shorter_than_the_block_is_corrupt_not_a_partial_move() {
        let f = fixture();
        let k = BlockKey(12);
        f.dram.write_block(0, k, &[1u8; 4500]).unwrap();
        f.disk.write_block(0, k, &[1u8; 4500]).unwrap();
        let (out, _) = run(
            &f,
            &[desc((0, 0), (1, 1), k, 4000), desc((1, 0), (0, 1), k, 4000)],
        );
        assert_eq!(out[0].status, MoveStatus::Corrupt);
        assert_eq!(out[1].status, MoveStatus::Corrupt);
        let mut buf = [0u8; 5000];
        assert!(f.disk.read_block(1, k, &mut buf).is_err(), "not written");
    }

    #[test]
    fn frame_held_by_another_writer_is_ebusy() {
        let f = fixture();
        let k = BlockKey(13);
        f.disk.write_block(0, k, b"x").unwrap();
        let held = f.dram.claim_write(1).unwrap();
        let (out, _) = run(&f, &[desc((1, 0), (0, 1), k, 1)]);
        assert_eq!(out[0], Outcome::failed(MoveStatus::IoError, libc::EBUSY));
        drop(held);
        let (out, _) = run(&f, &[desc((1, 0), (0, 1), k, 1)]);
        assert_eq!(out[0], Outcome::done(1));
    }

    #[test]
    fn a_reader_on_the_destination_is_waited_out_not_failed() {
        // A node reader still copying the frame's previous block when the fast path reuses the
        // frame as a move's destination: the move waits for it and then lands.
        let f = fixture();
        let (old, new) = (BlockKey(15), BlockKey(16));
        f.dram.write_block(1, old, b"old block").unwrap();
        f.disk.write_block(0, new, b"new block").unwrap();
        std::thread::scope(|s| {
            let held = f.dram.claim_read(1).unwrap();
            s.spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(5));
                let mut out = [0u8; 9];
                assert_eq!(held.copy_payload(old, &mut out).unwrap(), 9);
                assert_eq!(&out, b"old block", "the reader saw the old block whole");
                drop(held);
            });
            let (out, _) = run(&f, &[desc((1, 0), (0, 1), new, 9)]);
            assert_eq!(out[0], Outcome::done(9));
        });
        let mut out = [0u8; 9];
        assert_eq!(f.dram.read_block(1, new, &mut out).unwrap(), 9);
        assert_eq!(&out, b"new block");
    }

    #[test]
    fn more_than_a_batch_is_chunked() {
        let f = fixture();
        let k = BlockKey(14);
        f.dram.write_block(0, k, b"hello").unwrap();
        let descs: Vec<_> = (0..ENGINE_BATCH + 3)
            .map(|i| desc((0, 0), (1, (i % 4) as u32), k, 5))
            .collect();
        let (out, tally) = run(&f, &descs);
        assert!(out.iter().all(|o| *o == Outcome::done(5)));
        assert_eq!(tally.submissions, 2);
    }
}
