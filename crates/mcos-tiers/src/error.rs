//! Errors of the tiers and engines. I/O failures and corrupt blocks are values, never panics;
//! each message says what the user can do about it.

use crate::header::CorruptReason;
use std::path::PathBuf;
use thiserror::Error;

/// Why a tier or an engine refused or failed an operation. Nothing already stored is lost by a
/// failed call: a write that is refused (too large, out of range, busy) leaves the frame as it was.
#[derive(Debug, Error)]
pub enum TierError {
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or frame.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The filesystem lacks room for the tier's file (or a write to it).
    #[error(
        "not enough disk space for {}: {needed_bytes} bytes needed, {free_bytes} bytes free; \
         free space on that filesystem, pick another directory, or lower the tier's capacity",
        path.display()
    )]
    NoSpace {
        /// The tier's file.
        path: PathBuf,
        /// Bytes the operation needed.
        needed_bytes: u64,
        /// Bytes free for unprivileged users on that filesystem (statvfs `f_bavail`), 0 if unknown.
        free_bytes: u64,
    },
    /// Another process (or another opener in this one) holds the file or directory.
    #[error(
        "{} is in use by {}: one process owns a tier file or run directory at a time; \
         stop that process or pick another path",
        path.display(),
        holder_pid.map_or_else(|| "another process".to_owned(), |p| format!("process {p}"))
    )]
    Locked {
        /// The tier file or directory.
        path: PathBuf,
        /// The holder's pid, as it recorded it (absent if it could not be read).
        holder_pid: Option<u32>,
    },
    /// The path names an existing file that is not an MCOS tier file: it is never overwritten.
    #[error(
        "refusing to use {} as a disk tier: it already exists and is not an MCOS tier file \
         ({found}); it was left untouched: move it away or give the tier another path",
        path.display()
    )]
    NotATierFile {
        /// The existing file.
        path: PathBuf,
        /// What was found there.
        found: String,
    },
    /// An MCOS tier file that this tier cannot reuse as it is (another geometry or format
    /// version, or a damaged superblock).
    #[error(
        "disk tier file {} {found}, but this tier needs {wanted}; it was left untouched: \
         set `recreate = true` on the tier to overwrite it, or give the tier another path",
        path.display()
    )]
    TierFileMismatch {
        /// The existing tier file.
        path: PathBuf,
        /// What its superblock says.
        found: String,
        /// What the tier asked for.
        wanted: String,
    },
    /// The frame does not hold a valid block with the expected key.
    #[error(
        "frame {frame} does not hold a valid block ({reason}); drop it from the directory and \
         treat the block as a miss"
    )]
    Corrupt {
        /// Frame that failed verification.
        frame: u32,
        /// What failed.
        reason: CorruptReason,
    },
    /// A payload or a configured block size is larger than allowed.
    #[error(
        "{len} bytes is larger than the limit of {max} bytes: split the block or configure a larger block size"
    )]
    TooLarge {
        /// Length given.
        len: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The output buffer cannot hold the stored payload.
    #[error(
        "the block holds {needed} payload bytes but the buffer has room for {len}: pass a buffer of at least block_bytes"
    )]
    BufferTooSmall {
        /// Payload bytes stored.
        needed: usize,
        /// Buffer length given.
        len: usize,
    },
    /// A frame index beyond the tier.
    #[error("frame {frame} is out of range: the tier has {frames} frames (0..{frames})")]
    FrameOutOfRange {
        /// Frame asked for.
        frame: u32,
        /// Frames in the tier.
        frames: u32,
    },
    /// Another thread holds the frame: the fast path handed it out twice (a bug in the caller).
    #[error(
        "frame {frame} is in use by another thread: a frame must be held by one mover at a time \
         (fast-path state machine); retry after the other move completes"
    )]
    FrameBusy {
        /// Frame that is busy.
        frame: u32,
    },
    /// Memory for a tier or a buffer could not be allocated.
    #[error(
        "cannot allocate {bytes} bytes of 4096-aligned memory: lower the tier's capacity or free memory"
    )]
    Alloc {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A tier or engine configuration that does not hold together.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No usable GPU: the crate was built without the `cuda` feature, the CUDA driver cannot be
    /// loaded, no device is visible, or NVRTC (the run-time kernel compiler) is missing. The
    /// message says which and what to do.
    #[error("{0}")]
    NoGpu(String),
    /// A CUDA call failed. CUDA failures are values: the move or the setup step fails, nothing
    /// already stored is lost.
    #[error("CUDA call {call} failed while {context}: {detail}")]
    Gpu {
        /// The driver, NVRTC or cuFile entry point.
        call: &'static str,
        /// What was being done.
        context: String,
        /// CUDA's error name (`CUDA_ERROR_...`) and, where known, its description.
        detail: String,
    },
    /// The engine thread panicked (a bug); its moves have no completion.
    #[error("engine thread {name} panicked; restart the engine and report the bug")]
    EnginePanicked {
        /// Thread name.
        name: String,
    },
}

impl TierError {
    /// An I/O error with what was being done (`context`).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> TierError {
        TierError::Io {
            context: context.into(),
            source,
        }
    }
}
