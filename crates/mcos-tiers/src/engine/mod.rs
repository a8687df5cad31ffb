//! Engines: the movers that execute movement descriptors between tiers.
//!
//! One trait, [`IoBackend`], for the disk I/O backends, one file per implementation (foyer's
//! `io/engine/{psync,uring}.rs` pattern): [`uring::UringBackend`] submits a whole batch as one
//! io_uring submission; [`psync::PsyncBackend`] does one `pread`/`pwrite` per operation and is the
//! fallback where io_uring cannot be set up (seccomp, `kernel.io_uring_disabled`). Moves between
//! two DRAM tiers are plain copies ([`memcpy`]). [`batch`] turns a batch of descriptors into
//! verified moves and completions; [`thread`] is the dedicated engine thread that drains the
//! fast path's descriptor rings and answers on its completion rings.

pub mod batch;
pub mod memcpy;
pub mod psync;
pub mod route;
pub mod thread;
pub mod uring;

use crate::error::TierError;
use mcos_core::{MoveCompletion, MoveDescriptor, MoveStatus};
use std::os::fd::RawFd;

/// Direction of one disk I/O.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// File -> memory.
    Read,
    /// Memory -> file.
    Write,
}

/// One positional disk I/O between a memory buffer and a file offset. For O_DIRECT files `buf`,
/// `len` and `offset` are multiples of `DISK_ALIGN` (frames guarantee it).
#[derive(Copy, Clone, Debug)]
pub struct IoOp {
    /// Direction.
    pub kind: IoKind,
    /// Open file descriptor of the disk tier.
    pub fd: RawFd,
    /// Memory side of the transfer.
    pub buf: *mut u8,
    /// Bytes to transfer.
    pub len: u32,
    /// File offset.
    pub offset: u64,
}

impl IoOp {
    /// A placeholder that is never executed (fills fixed-size arrays).
    pub const EMPTY: IoOp = IoOp {
        kind: IoKind::Read,
        fd: -1,
        buf: std::ptr::null_mut(),
        len: 0,
        offset: 0,
    };
}

/// A disk I/O backend: executes a batch of positional reads and writes.
///
/// Implementations MUST NOT return from [`IoBackend::execute`] while the device may still touch
/// a buffer, and MUST store exactly one result per operation.
pub trait IoBackend: Send {
    /// Short name for reports (`"io_uring"`, `"psync"`). May change once if a backend retires
    /// itself at run time (io_uring falling back to psync).
    fn name(&self) -> &'static str;

    /// Executes `ops` (at most `ENGINE_BATCH` at a time is the intended use) and stores into
    /// `results[i]` the bytes op `i` transferred, or a negative errno. `results` is at least as
    /// long as `ops`; extra operations without a result slot are not executed.
    ///
    /// # Safety
    /// Until this returns, for every op: `buf` is valid for `len` bytes; for `Read` nothing else
    /// reads or writes those bytes, for `Write` nothing writes them; `fd` is an open descriptor.
    unsafe fn execute(&mut self, ops: &[IoOp], results: &mut [i32]);
}

/// What an engine thread runs: executes batches of descriptors, one outcome each.
///
/// The CPU engines ([`batch::TierMover`]: disk I/O and memcpy) and the GPU engine
/// (`cuda::GpuMover`, feature `cuda`) implement it; the engine thread around them, its rings,
/// ordering and completions are the same.
pub trait Mover: Send {
    /// Short name for reports (`"io_uring"`, `"psync"`, `"gpu"`).
    fn name(&self) -> &'static str;

    /// Most descriptors one `execute` call should get (the engine takes up to this many per
    /// shard per round).
    fn max_batch(&self) -> usize {
        mcos_core::limits::ENGINE_BATCH
    }

    /// Called once on the engine thread before the first batch (a GPU mover binds its context
    /// here). An error stops the engine before it serves anything.
    fn start(&mut self) -> Result<(), TierError> {
        Ok(())
    }

    /// Executes `descs` and stores one outcome per descriptor in `out` (at least as long).
    fn execute(&mut self, descs: &[MoveDescriptor], out: &mut [Outcome]) -> batch::BatchTally;
}

/// Which disk backend an engine runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when it can be set up, else pread/pwrite.
    #[default]
    Auto,
    /// pread/pwrite only (tests, and hosts where io_uring misbehaves).
    Psync,
}

/// Builds the backend for `choice`; for `Auto` the second value says why io_uring was not used.
pub fn select_backend(choice: BackendChoice) -> (Box<dyn IoBackend>, Option<String>) {
    match choice {
        BackendChoice::Psync => (Box::new(psync::PsyncBackend), None),
        BackendChoice::Auto => match uring::UringBackend::new() {
            Ok(b) => (Box::new(b), None),
            Err(e) => (
                Box::new(psync::PsyncBackend),
                Some(format!(
                    "io_uring unavailable ({e}); using pread/pwrite. Check seccomp and the \
                     kernel.io_uring_disabled sysctl to get io_uring back"
                )),
            ),
        },
    }
}

/// How a move ended, before it becomes a `MoveCompletion`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Status to report.
    pub status: MoveStatus,
    /// errno for `IoError` and `NoSpace`, else 0.
    pub detail: u32,
    /// Header + payload bytes moved (0 unless `Done`).
    pub bytes: u32,
}

impl Outcome {
    /// The move completed and verified, `payload_len` payload bytes.
    pub fn done(payload_len: u32) -> Outcome {
        Outcome {
            status: MoveStatus::Done,
            detail: 0,
            // In range: payload_len <= MAX_BLOCK_BYTES, far below u32::MAX.
            bytes: payload_len + mcos_core::limits::BLOCK_HEADER_BYTES as u32,
        }
    }

    /// The move failed with `status` and `detail`.
    pub fn failed(status: MoveStatus, detail: i32) -> Outcome {
        Outcome {
            status,
            detail: detail.unsigned_abs(),
            bytes: 0,
        }
    }

    /// The completion answering `desc`, from engine `engine`.
    pub fn completion(self, desc: &MoveDescriptor, engine: u8) -> MoveCompletion {
        MoveCompletion {
            move_id: desc.move_id,
            detail: self.detail,
            bytes: self.bytes,
            status: self.status,
            engine,
        }
    }

    /// The outcome of the disk I/O `op` from its kernel-style result (`res` bytes or `-errno`).
    /// `Ok` means the whole transfer happened. `-ENOSPC` is `NoSpace`. An errno that says the
    /// device failed under the frame (EIO, a media or checksum error: [`device_fault`]) names
    /// the side: a failed read is `SourceFailed` (the disk frame is the move's source), a
    /// failed write `DestinationFailed`, and the fast path takes that frame out of service. Any
    /// other errno, or a short transfer (`EIO` in `detail`), is `IoError`: nothing says the
    /// frame is bad.
    pub fn from_io_result(res: i32, op: &IoOp) -> Result<(), Outcome> {
        if res < 0 {
            let errno = -res;
            let status = if errno == libc::ENOSPC {
                MoveStatus::NoSpace
            } else if device_fault(errno) {
                match op.kind {
                    IoKind::Read => MoveStatus::SourceFailed,
                    IoKind::Write => MoveStatus::DestinationFailed,
                }
            } else {
                MoveStatus::IoError
            };
            return Err(Outcome::failed(status, errno));
        }
        if res.unsigned_abs() != op.len {
            return Err(Outcome::failed(MoveStatus::IoError, libc::EIO));
        }
        Ok(())
    }

    /// The completion status for a tier error: corrupt blocks are `Corrupt`, a full device is
    /// `NoSpace`, everything else is `IoError` with the closest errno (`EINVAL` for a descriptor
    /// that names frames or lengths outside the tiers, `EBUSY` for a frame someone else holds).
    pub fn from_error(e: &TierError) -> Outcome {
        match e {
            TierError::Corrupt { .. } => Outcome::failed(MoveStatus::Corrupt, 0),
            TierError::NoSpace { .. } => Outcome::failed(MoveStatus::NoSpace, libc::ENOSPC),
            TierError::FrameBusy { .. } => Outcome::failed(MoveStatus::IoError, libc::EBUSY),
            TierError::Io { source, .. } => Outcome::failed(
                MoveStatus::IoError,
                source.raw_os_error().unwrap_or(libc::EIO),
            ),
            TierError::Alloc { .. } => Outcome::failed(MoveStatus::IoError, libc::ENOMEM),
            TierError::FrameOutOfRange { .. }
            | TierError::TooLarge { .. }
            | TierError::BufferTooSmall { .. }
            | TierError::Config(_) => Outcome::failed(MoveStatus::IoError, libc::EINVAL),
            TierError::EnginePanicked { .. } | TierError::Gpu { .. } => {
                Outcome::failed(MoveStatus::IoError, libc::EIO)
            }
            TierError::NoGpu(_) => Outcome::failed(MoveStatus::IoError, libc::ENODEV),
            // Open-time refusals; a move never produces them.
            TierError::Locked { .. } => Outcome::failed(MoveStatus::IoError, libc::EWOULDBLOCK),
            TierError::NotATierFile { .. } | TierError::TierFileMismatch { .. } => {
                Outcome::failed(MoveStatus::IoError, libc::EINVAL)
            }
        }
    }
}

/// Whether `errno` says the device failed under the frame it was reading or writing (what a bad
/// sector, a failing drive or a pulled cable report), rather than that the request was wrong or
/// a resource ran out.
pub fn device_fault(errno: i32) -> bool {
    matches!(
        errno,
        libc::EIO | libc::ENXIO | libc::ENODATA | libc::EBADMSG | libc::EREMOTEIO | libc::EILSEQ
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CorruptReason;

    #[test]
    fn io_results_map_to_statuses() {
        let op = |kind| IoOp {
            kind,
            fd: 0,
            buf: std::ptr::null_mut(),
            len: 4096,
            offset: 0,
        };
        let (read, write) = (op(IoKind::Read), op(IoKind::Write));
        assert_eq!(Outcome::from_io_result(4096, &read), Ok(()));
        assert_eq!(
            Outcome::from_io_result(-libc::ENOSPC, &write),
            Err(Outcome::failed(MoveStatus::NoSpace, libc::ENOSPC))
        );
        let e = Outcome::from_io_result(-libc::EBADF, &read).unwrap_err();
        assert_eq!(
            (e.status, e.detail),
            (MoveStatus::IoError, libc::EBADF as u32)
        );
        // A device fault names the failing side: the disk frame read (the move's source) or
        // written (its destination).
        let e = Outcome::from_io_result(-libc::EIO, &read).unwrap_err();
        assert_eq!(
            (e.status, e.detail),
            (MoveStatus::SourceFailed, libc::EIO as u32)
        );
        let e = Outcome::from_io_result(-libc::EIO, &write).unwrap_err();
        assert_eq!(e.status, MoveStatus::DestinationFailed);
        let short = Outcome::from_io_result(100, &read).unwrap_err();
        assert_eq!(
            (short.status, short.detail),
            (MoveStatus::IoError, libc::EIO as u32)
        );
        assert_eq!(Outcome::done(10).bytes, 74);
    }

    #[test]
    fn tier_errors_map_to_statuses() {
        let c = TierError::Corrupt {
            frame: 1,
            reason: CorruptReason::Truncated { len: 0 },
        };
        assert_eq!(Outcome::from_error(&c).status, MoveStatus::Corrupt);
        let busy = Outcome::from_error(&TierError::FrameBusy { frame: 0 });
        assert_eq!(
            (busy.status, busy.detail),
            (MoveStatus::IoError, libc::EBUSY as u32)
        );
        let range = Outcome::from_error(&TierError::FrameOutOfRange {
            frame: 9,
            frames: 1,
        });
        assert_eq!(range.detail, libc::EINVAL as u32);
        let io = Outcome::from_error(&TierError::Io {
            context: String::new(),
            source: std::io::Error::from_raw_os_error(libc::EROFS),
        });
        assert_eq!(io.detail, libc::EROFS as u32);
        let gpu = Outcome::from_error(&TierError::Gpu {
            call: "cuLaunchKernel",
            context: String::new(),
            detail: "CUDA_ERROR_LAUNCH_FAILED".into(),
        });
        assert_eq!(
            (gpu.status, gpu.detail),
            (MoveStatus::IoError, libc::EIO as u32)
        );
        let none = Outcome::from_error(&TierError::NoGpu(String::new()));
        assert_eq!(none.detail, libc::ENODEV as u32);
    }

    #[test]
    fn forced_psync_is_honoured() {
        let (b, why) = select_backend(BackendChoice::Psync);
        assert_eq!(b.name(), "psync");
        assert!(why.is_none());
    }
}

/// Test-only engine faults (feature `fault-injection`): a slow device, as a delay before every
/// batch every engine in the process executes.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use std::sync::atomic::AtomicU64;
    /// Microseconds every engine sleeps before executing a batch (0: none).
    pub static BATCH_DELAY_US: AtomicU64 = AtomicU64::new(0);
}
