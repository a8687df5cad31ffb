//! The disk tier: one preallocated file of fixed-size frames, opened with O_DIRECT.
//!
//! The file starts with a 4 KiB superblock ([`crate::superblock`]: magic, format version,
//! geometry) so a tier recognises its own file and never overwrites anyone else's. Same frame
//! layout and stride as the DRAM tier ([`crate::layout`]): frame `i` is at file offset
//! `4096 + i * stride`, a multiple of 4096, so the engines move a frame between the DRAM arena
//! and the file with one aligned read or write and no bounce buffer. The file is preallocated at
//! creation (`posix_fallocate`, or zeros written where the filesystem cannot) after a free-space
//! check, so a full disk shows up once, at start-up, as [`TierError::NoSpace`], rather than as
//! failed demotions later. The opener holds an exclusive `flock` on the file while the tier lives.
//!
//! The synchronous [`DiskTier::write_block`] / [`DiskTier::read_block`] go through an aligned
//! bounce buffer that each thread keeps between calls (allocated once, never zeroed again: the
//! read overwrites it and a write zeroes only the padding it sends): they serve the node's
//! in-place reads of blocks that stay on disk, tests and tools. [`DiskTier::read_block_direct`]
//! reads a frame straight into a caller's aligned buffer (the daemon's shared region) and
//! verifies it there, with no bounce at all. Moves between tiers go through the engine thread
//! (`crate::engine`).

use crate::aligned::AlignedBuf;
use crate::dram::verify_frame;
use crate::error::TierError;
use crate::header;
use crate::layout;
use crate::lock::try_lock_exclusive;
use crate::superblock::{self, Decoded, SUPERBLOCK_BYTES, Superblock};
use mcos_core::BlockKey;
use mcos_core::limits::{BLOCK_HEADER_BYTES, DISK_ALIGN};
use std::cell::RefCell;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes written per call when the filesystem cannot `fallocate` and zeros are written instead.
const ZERO_FILL_CHUNK: usize = 1 << 20;

/// Largest bounce buffer a thread keeps between synchronous reads and writes. A tier of larger
/// blocks (up to `MAX_BLOCK_BYTES`) still works, allocating per call, so that a daemon's many
/// session threads never each hold tens of MiB.
pub const BOUNCE_KEEP_BYTES_MAX: usize = 4 << 20;

thread_local! {
    /// This thread's bounce buffer (the largest one used so far, up to `BOUNCE_KEEP_BYTES_MAX`).
    /// Taken out while in use, so a nested use allocates instead of failing.
    static BOUNCE: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// Runs `f` on `len` bytes of an aligned bounce buffer: this thread's kept buffer when it is
/// large enough, else a new one (kept afterwards when it is at most `BOUNCE_KEEP_BYTES_MAX`).
/// The bytes hold whatever the previous use left: `f` must overwrite what it reads.
fn with_bounce<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TierError> {
    let kept = BOUNCE.with(|b| b.borrow_mut().take());
    let mut buf = match kept {
        Some(b) if b.len() >= len => b,
        _ => AlignedBuf::zeroed(len)?,
    };
    let r = f(&mut buf.as_mut_slice()[..len]);
    if buf.len() <= BOUNCE_KEEP_BYTES_MAX {
        BOUNCE.with(|b| *b.borrow_mut() = Some(buf));
    }
    Ok(r)
}

/// Address of this thread's kept bounce buffer, if it has one (tests: reuse is observable).
#[cfg(test)]
fn kept_bounce_addr() -> Option<usize> {
    BOUNCE.with(|b| b.borrow().as_ref().map(|a| a.as_ptr() as usize))
}

/// How a [`DiskTier::read_block_direct`] read reached the caller's buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DirectRead {
    /// Straight from the file into the buffer (no bounce).
    Direct,
    /// Through the bounce buffer: the buffer did not meet the alignment or the kernel refused
    /// the direct transfer (EINVAL).
    Bounced,
}

/// A preallocated file of `frames` frames holding blocks of up to `block_bytes` payload.
///
/// `Send + Sync`: positional I/O (`pread`/`pwrite`, io_uring with explicit offsets) needs no
/// shared file position. Two movers writing the same frame at once would leave a torn block,
/// which the header checksum catches on read; the fast path never does that. Disk frames carry
/// no claims: the node reads one without its shard lock and relies on that check when the
/// frame is reused during the read (it then decides again under the lock).
#[derive(Debug)]
pub struct DiskTier {
    /// Descriptor all frame I/O goes through (O_DIRECT unless the filesystem refused it).
    file: File,
    path: PathBuf,
    frames: u32,
    block_bytes: u32,
    stride: usize,
    file_bytes: u64,
    direct_io: bool,
    /// The descriptor holding the `flock` when `file` is a second (O_DIRECT) descriptor; the
    /// lock lasts as long as the tier.
    _lock: Option<File>,
    /// Whether `open` created the file (only then may the tier remove it).
    created: bool,
    /// The topmost parent directory `open` created for the file, if any (removed with it
    /// when empty).
    created_dir: Option<PathBuf>,
    /// Injected device faults (tests only).
    #[cfg(feature = "fault-injection")]
    faults: std::sync::Mutex<FaultPlan>,
}

/// Device faults a test injects into a disk tier's synchronous reads and writes
/// (feature `fault-injection`): what a failing sector, a pulled cable or a full device does.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Reads of these frames fail with EIO.
    pub fail_reads: Vec<u32>,
    /// Writes of these frames fail with EIO.
    pub fail_writes: Vec<u32>,
    /// Every write fails with ENOSPC.
    pub no_space: bool,
}

impl DiskTier {
    /// Opens the tier file at `path` for `frames` frames of up to `block_bytes` payload:
    /// [`DiskTier::open`] without `recreate`.
    pub fn create(
        path: impl AsRef<Path>,
        frames: u32,
        block_bytes: u32,
    ) -> Result<DiskTier, TierError> {
        Self::open(path, frames, block_bytes, false)
    }

    /// Opens the tier file at `path`, which this process then owns (an exclusive `flock`;
    /// another owner is [`TierError::Locked`], naming its pid).
    ///
    /// - No file there: creates it, checks the filesystem has room (else [`TierError::NoSpace`]
    ///   with the real free space, and the file is removed), preallocates it and writes the
    ///   superblock. Only such a file is removed by [`DiskTier::remove_created`].
    /// - An MCOS tier file of the same geometry: reused as it is (its frames are kept).
    /// - An MCOS tier file of another geometry or format, or with a damaged superblock:
    ///   [`TierError::TierFileMismatch`], unless `recreate`, which reinitialises it.
    /// - Anything else (a file holding other data, a directory, a device):
    ///   [`TierError::NotATierFile`]; it is never written. An empty file is taken over.
    ///
    /// Opens the file with O_DIRECT; where the filesystem refuses it (EINVAL), I/O is buffered
    /// and [`DiskTier::direct_io`] says so.
    pub fn open(
        path: impl AsRef<Path>,
        frames: u32,
        block_bytes: u32,
        recreate: bool,
    ) -> Result<DiskTier, TierError> {
        let path = path.as_ref().to_path_buf();
        let (stride, frames_bytes) = layout::check_geometry(frames, block_bytes)?;
        let file_bytes = frames_bytes + SUPERBLOCK_BYTES as u64;
        let wanted = Superblock::new(block_bytes, frames, stride);
        let created_dir = create_parent_dirs(&path)?;
        let remove_dirs = || {
            if let Some(d) = &created_dir {
                remove_empty_dirs(&path, d);
            }
        };
        let (setup, created) = open_or_create(&path).inspect_err(|_| remove_dirs())?;
        // From here on, a file (and directories) this call created are removed again on
        // every error.
        let fail = |e: TierError| {
            if created {
                let _ = std::fs::remove_file(&path);
            }
            remove_dirs();
            e
        };
        if !try_lock_exclusive(&setup)
            .map_err(|e| fail(TierError::io(format!("cannot lock {}", path.display()), e)))?
        {
            return Err(fail(TierError::Locked {
                holder_pid: holder_pid(&setup),
                path: path.clone(),
            }));
        }
        let meta = setup
            .metadata()
            .map_err(|e| fail(TierError::io(format!("cannot stat {}", path.display()), e)))?;
        let existing_len = meta.len();
        let emptied = !created
            && existing_len > 0
            && check_existing(&setup, &path, &wanted, existing_len, recreate)?;
        // Room is checked before reserving: posix_fallocate on a filesystem without room
        // briefly takes all of its free space (and other writers see a full disk).
        let allocated = if created || emptied {
            0
        } else {
            (meta.blocks() * 512).min(file_bytes)
        };
        let needed = file_bytes.saturating_sub(allocated);
        if let Some(free) = free_bytes(&path)
            && needed > free
        {
            return Err(fail(TierError::NoSpace {
                path: path.clone(),
                needed_bytes: needed,
                free_bytes: free,
            }));
        }
        if let Err(e) = preallocate(&setup, file_bytes, &path) {
            // Give the space back, then measure (the failed call may have held it all).
            if created {
                let _ = std::fs::remove_file(&path);
            } else if existing_len == 0 {
                let _ = setup.set_len(0);
            }
            remove_dirs();
            return Err(match e {
                Prealloc::NoSpace => TierError::NoSpace {
                    path: path.clone(),
                    needed_bytes: needed,
                    free_bytes: free_bytes(&path).unwrap_or(0),
                },
                Prealloc::Failed(e) => e,
            });
        }
        setup
            .write_all_at(&wanted.encode(), 0)
            .and_then(|()| setup.sync_data())
            .map_err(|e| {
                fail(TierError::io(
                    format!("cannot write the superblock of {}", path.display()),
                    e,
                ))
            })?;
        let direct = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        {
            Ok(f) => Some(f),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
            Err(e) => {
                return Err(fail(TierError::io(
                    format!("cannot reopen disk tier file {} for I/O", path.display()),
                    e,
                )));
            }
        };
        let direct_io = direct.is_some();
        let (file, lock) = match direct {
            Some(f) => (f, Some(setup)),
            None => (setup, None),
        };
        Ok(DiskTier {
            file,
            _lock: lock,
            path,
            frames,
            block_bytes,
            stride,
            file_bytes,
            direct_io,
            created,
            created_dir,
            #[cfg(feature = "fault-injection")]
            faults: std::sync::Mutex::new(FaultPlan::default()),
        })
    }

    /// Replaces the injected faults (feature `fault-injection`, tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_faults(&self, plan: FaultPlan) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }

    /// The injected errno for an I/O on `frame`, if any: the synchronous paths here and the
    /// engines' batched I/O (`engine::batch`) both fail through it.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn injected_errno(&self, frame: u32, write: bool) -> Option<i32> {
        let p = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        if write && p.no_space {
            return Some(libc::ENOSPC);
        }
        let list = if write { &p.fail_writes } else { &p.fail_reads };
        list.contains(&frame).then_some(libc::EIO)
    }

    /// The injected error for an I/O on `frame`, if any.
    #[cfg(feature = "fault-injection")]
    fn injected(&self, frame: u32, write: bool) -> Option<io::Error> {
        self.injected_errno(frame, write)
            .map(io::Error::from_raw_os_error)
    }

    /// The tier's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames in the tier.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Largest payload one frame holds.
    pub fn block_bytes(&self) -> u32 {
        self.block_bytes
    }

    /// Bytes from one frame to the next (a multiple of `DISK_ALIGN`).
    pub fn frame_stride(&self) -> usize {
        self.stride
    }

    /// Whether this tier created its file (rather than reusing or taking over one).
    pub fn created_file(&self) -> bool {
        self.created
    }

    /// Size of the preallocated file (superblock and frames).
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Whether I/O bypasses the page cache (O_DIRECT). False where the filesystem refused it.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    /// File offset of `frame`.
    pub fn frame_offset(&self, frame: u32) -> Result<u64, TierError> {
        if frame < self.frames {
            Ok(SUPERBLOCK_BYTES as u64 + u64::from(frame) * self.stride as u64)
        } else {
            Err(TierError::FrameOutOfRange {
                frame,
                frames: self.frames,
            })
        }
    }

    /// Removes the tier's file if this tier created it; a file it reused or took over stays.
    /// Returns whether it removed the file. A file already gone is
    /// [`TierError::Io`] with `NotFound` (callers may treat it as a warning).
    pub fn remove_created(&self) -> Result<bool, TierError> {
        if !self.created {
            return Ok(false);
        }
        let removed = self.remove_file();
        if let Some(d) = &self.created_dir {
            remove_empty_dirs(&self.path, d);
        }
        removed.map(|()| true)
    }

    /// Removes the tier's file from its directory, whoever created it. `Drop` never does:
    /// whether the file outlives the process is the node's decision. Open descriptors keep
    /// working until dropped.
    pub fn remove_file(&self) -> Result<(), TierError> {
        std::fs::remove_file(&self.path).map_err(|e| {
            TierError::io(
                format!("cannot remove disk tier file {}", self.path.display()),
                e,
            )
        })
    }

    /// Stores `payload` under `key` in `frame` (synchronous `pwrite` through this thread's
    /// aligned bounce buffer). A payload larger than `block_bytes` is refused and the frame
    /// keeps what it held.
    pub fn write_block(&self, frame: u32, key: BlockKey, payload: &[u8]) -> Result<(), TierError> {
        if payload.len() > self.block_bytes as usize {
            return Err(TierError::TooLarge {
                len: payload.len(),
                max: self.block_bytes as usize,
            });
        }
        let offset = self.frame_offset(frame)?;
        // In range: payload.len() <= block_bytes <= MAX_BLOCK_BYTES < u32::MAX.
        let len = layout::transfer_len(payload.len() as u32);
        with_bounce(len, |buf| {
            header::encode_block(buf, key, payload)?;
            // The padding goes to disk too: zeros, never what the buffer held before.
            buf[BLOCK_HEADER_BYTES + payload.len()..].fill(0);
            #[cfg(feature = "fault-injection")]
            if let Some(e) = self.injected(frame, true) {
                return Err(self.write_error(frame, len as u64, e));
            }
            self.file
                .write_all_at(buf, offset)
                .map_err(|e| self.write_error(frame, len as u64, e))
        })?
    }

    /// Copies the payload of the block `key` in `frame` into `out` and returns its length, after
    /// verifying header, key and checksum (a mismatch is `Corrupt`). `out` is written only when
    /// the block verifies and fits.
    pub fn read_block(
        &self,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
    ) -> Result<usize, TierError> {
        let offset = self.frame_offset(frame)?;
        with_bounce(self.stride, |buf| {
            #[cfg(feature = "fault-injection")]
            if let Some(e) = self.injected(frame, false) {
                return Err(self.read_error(frame, e));
            }
            self.file
                .read_exact_at(buf, offset)
                .map_err(|e| self.read_error(frame, e))?;
            let len = verify_frame(buf, self.block_bytes, frame, key)? as usize;
            let out_len = out.len();
            let dst = out.get_mut(..len).ok_or(TierError::BufferTooSmall {
                needed: len,
                len: out_len,
            })?;
            dst.copy_from_slice(&buf[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
            Ok(len)
        })?
    }

    /// Bytes a [`DiskTier::read_block_direct`] buffer must hold: one whole frame (header,
    /// `block_bytes` of payload, padding to `DISK_ALIGN`), the frame stride.
    pub fn direct_read_bytes(&self) -> usize {
        self.stride
    }

    /// Whether `buf` can take a direct read: at least [`DiskTier::direct_read_bytes`] long and,
    /// when the tier uses O_DIRECT, starting at a `DISK_ALIGN`-aligned address.
    pub fn direct_fits(&self, buf: &[u8]) -> bool {
        buf.len() >= self.stride
            && (!self.direct_io || (buf.as_ptr() as usize).is_multiple_of(DISK_ALIGN))
    }

    /// Reads the block `key` in `frame` into `slot` and verifies it there: on success the
    /// payload is `slot[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]` and every other byte of
    /// the frame's span (`slot[..direct_read_bytes()]`) is zero, so a slot never shows the
    /// header or padding, which may hold bytes of a block that used the frame before. When
    /// `slot` fits ([`DiskTier::direct_fits`]) the file is read straight into it (O_DIRECT
    /// into the caller's pages: no bounce buffer, no copy); otherwise, or when the kernel
    /// refuses the transfer (EINVAL), through the bounce buffer as [`DiskTier::read_block`],
    /// into `slot[BLOCK_HEADER_BYTES..]`. The second value says which.
    ///
    /// On any error (`Corrupt`, `Io`, `BufferTooSmall`) the span read into is zeroed: a
    /// caller never finds a torn or foreign block in `slot`.
    pub fn read_block_direct(
        &self,
        frame: u32,
        key: BlockKey,
        slot: &mut [u8],
    ) -> Result<(usize, DirectRead), TierError> {
        let offset = self.frame_offset(frame)?;
        if !self.direct_fits(slot) {
            return self.read_block_bounced(frame, key, slot);
        }
        let span = &mut slot[..self.stride];
        #[cfg(feature = "fault-injection")]
        if let Some(e) = self.injected(frame, false) {
            return Err(self.read_error(frame, e));
        }
        if let Err(e) = self.file.read_exact_at(span, offset) {
            span.fill(0);
            if e.raw_os_error() == Some(libc::EINVAL) {
                // The device wants a stricter alignment than DISK_ALIGN: bounce instead.
                return self.read_block_bounced(frame, key, slot);
            }
            return Err(self.read_error(frame, e));
        }
        match verify_frame(span, self.block_bytes, frame, key) {
            Ok(len) => {
                let end = BLOCK_HEADER_BYTES + len as usize;
                span[..BLOCK_HEADER_BYTES].fill(0);
                span[end..].fill(0);
                Ok((len as usize, DirectRead::Direct))
            }
            Err(e) => {
                span.fill(0);
                Err(e)
            }
        }
    }

    /// `read_block_direct`'s fallback: the payload through the bounce buffer into
    /// `slot[BLOCK_HEADER_BYTES..]`, the header room zeroed.
    fn read_block_bounced(
        &self,
        frame: u32,
        key: BlockKey,
        slot: &mut [u8],
    ) -> Result<(usize, DirectRead), TierError> {
        let Some((head, payload)) = slot.split_at_mut_checked(BLOCK_HEADER_BYTES) else {
            return Err(TierError::BufferTooSmall {
                needed: BLOCK_HEADER_BYTES,
                len: slot.len(),
            });
        };
        head.fill(0);
        let len = self.read_block(frame, key, payload)?;
        Ok((len, DirectRead::Bounced))
    }

    /// Flushes the file's written frames to stable storage (`fdatasync`): after it returns, the
    /// blocks written before the call survive a power cut.
    pub fn sync_data(&self) -> Result<(), TierError> {
        self.file.sync_data().map_err(|e| {
            TierError::io(
                format!("cannot fdatasync disk tier file {}", self.path.display()),
                e,
            )
        })
    }

    fn write_error(&self, frame: u32, needed_bytes: u64, e: io::Error) -> TierError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return TierError::NoSpace {
                path: self.path.clone(),
                needed_bytes,
                free_bytes: free_bytes(&self.path).unwrap_or(0),
            };
        }
        TierError::io(
            format!(
                "cannot write frame {frame} of disk tier {}",
                self.path.display()
            ),
            e,
        )
    }

    fn read_error(&self, frame: u32, e: io::Error) -> TierError {
        let context = if e.kind() == io::ErrorKind::UnexpectedEof {
            format!(
                "disk tier file {} is shorter than its {} frames (frame {frame} is past the end): \
                 was it truncated? recreate the tier",
                self.path.display(),
                self.frames
            )
        } else {
            format!(
                "cannot read frame {frame} of disk tier {}",
                self.path.display()
            )
        };
        TierError::io(context, e)
    }
}

impl AsFd for DiskTier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for DiskTier {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Why [`preallocate`] failed.
enum Prealloc {
    /// The filesystem lacks room.
    NoSpace,
    /// Anything else, as the error to report.
    Failed(TierError),
}

/// Reserves `len` bytes for `file`: `posix_fallocate`, or zeros written where the filesystem
/// does not support it (only past the current end, so a reused file keeps its frames).
fn preallocate(file: &File, len: u64, path: &Path) -> Result<(), Prealloc> {
    let off_len = libc::off_t::try_from(len).map_err(|_| {
        Prealloc::Failed(TierError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: libc::off_t::MAX as usize,
        })
    })?;
    loop {
        // SAFETY: plain system call on a descriptor `file` keeps open for the call's duration; no
        // memory is passed.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            libc::ENOSPC | libc::EFBIG => return Err(Prealloc::NoSpace),
            libc::EOPNOTSUPP | libc::EINVAL => break,
            errno => {
                return Err(Prealloc::Failed(TierError::io(
                    format!(
                        "cannot preallocate {len} bytes for disk tier file {}",
                        path.display()
                    ),
                    io::Error::from_raw_os_error(errno),
                )));
            }
        }
    }
    let from = file.metadata().map(|m| m.len()).unwrap_or(0).min(len);
    write_zeros(file, from, len).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            Prealloc::NoSpace
        } else {
            Prealloc::Failed(TierError::io(
                format!(
                    "cannot fill disk tier file {} with {len} zero bytes",
                    path.display()
                ),
                e,
            ))
        }
    })
}

/// Creates the missing parent directories of `path`; returns the topmost one it created.
fn create_parent_dirs(path: &Path) -> Result<Option<PathBuf>, TierError> {
    let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let topmost = parent
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last()
        .map(Path::to_path_buf);
    if topmost.is_some() {
        std::fs::create_dir_all(parent).map_err(|e| {
            TierError::io(
                format!("creating directory {} for the disk tier", parent.display()),
                e,
            )
        })?;
    }
    Ok(topmost)
}

/// Removes the directories between `path`'s parent and `topmost` (inclusive) that are empty.
fn remove_empty_dirs(path: &Path, topmost: &Path) {
    for d in path.ancestors().skip(1) {
        if std::fs::remove_dir(d).is_err() || d == topmost {
            break;
        }
    }
}

/// Opens the file at `path`, creating it if there is none; says whether it created it. Only
/// regular files are opened: a directory, device or socket there is refused untouched.
fn open_or_create(path: &Path) -> Result<(File, bool), TierError> {
    let create_err = |e| {
        TierError::io(
            format!(
                "cannot create disk tier file {}: check that its directory exists and is writable",
                path.display()
            ),
            e,
        )
    };
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => return Ok((f, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create_err(e)),
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| TierError::io(format!("cannot stat {}", path.display()), e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "it is a directory"
        } else {
            "it is not a regular file"
        };
        return Err(TierError::NotATierFile {
            path: path.to_path_buf(),
            found: what.into(),
        });
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| TierError::io(format!("cannot open disk tier file {}", path.display()), e))?;
    Ok((f, false))
}

/// The pid the current holder wrote into the superblock, if readable.
fn holder_pid(file: &File) -> Option<u32> {
    let mut head = [0u8; superblock::ENCODED_BYTES];
    file.read_exact_at(&mut head, 0).ok()?;
    match Superblock::decode(&head) {
        Decoded::Tier(sb) if sb.holder_pid != 0 => Some(sb.holder_pid),
        _ => None,
    }
}

/// Decides whether an existing, non-empty file may become this tier (see [`DiskTier::open`]);
/// returns whether it emptied the file to recreate it.
fn check_existing(
    file: &File,
    path: &Path,
    wanted: &Superblock,
    len: u64,
    recreate: bool,
) -> Result<bool, TierError> {
    let mut head = vec![0u8; (len as usize).min(superblock::ENCODED_BYTES)];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| TierError::io(format!("cannot read {}", path.display()), e))?;
    let found = match Superblock::decode(&head) {
        Decoded::Foreign(what) => {
            return Err(TierError::NotATierFile {
                path: path.to_path_buf(),
                found: format!("{len} bytes; {what}"),
            });
        }
        Decoded::Damaged => "has a damaged superblock".to_owned(),
        Decoded::Tier(sb) if sb.version != wanted.version => format!(
            "was written in tier format version {} (this build uses {})",
            sb.version, wanted.version
        ),
        Decoded::Tier(sb) if !sb.same_geometry(wanted) => format!("holds {}", sb.describe()),
        Decoded::Tier(sb) => {
            let need = sb.data_offset + u64::from(sb.frames) * sb.stride;
            if len >= need {
                return Ok(false);
            }
            format!("is truncated ({len} of its {need} bytes)")
        }
    };
    if recreate {
        // An MCOS tier file: reinitialised at the new geometry (its old blocks are dropped).
        return file
            .set_len(0)
            .map(|()| true)
            .map_err(|e| TierError::io(format!("cannot truncate {}", path.display()), e));
    }
    Err(TierError::TierFileMismatch {
        path: path.to_path_buf(),
        found,
        wanted: wanted.describe(),
    })
}

/// Writes zero bytes from `from` up to `len` (the fallback where `fallocate` is unsupported).
fn write_zeros(file: &File, from: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_FILL_CHUNK];
    let mut off = from;
    while off < len {
        let n = (len - off).min(ZERO_FILL_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Bytes free for unprivileged users on the filesystem holding `path` (None if unknown).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory for one statvfs;
    // it is read only after the call reports success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        // The file may be gone already; ask its directory.
        return match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && dir != path => free_bytes(dir),
            _ => None,
        };
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types are u64 on 64-bit Linux but narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    Some(avail.saturating_mul(frsize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CorruptReason;
    use std::io::{Read, Seek, SeekFrom, Write};

    fn tier(dir: &tempfile::TempDir, frames: u32, block: u32) -> DiskTier {
        DiskTier::create(dir.path().join("tier.mcos"), frames, block).unwrap()
    }

    #[test]
    fn creates_preallocated_aligned_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 10, 5000);
        assert_eq!(t.frame_stride(), 8192);
        assert_eq!(t.file_bytes(), 4096 + 10 * 8192);
        assert_eq!(std::fs::metadata(t.path()).unwrap().len(), 4096 + 10 * 8192);
        assert_eq!(t.frame_offset(3).unwrap(), 4096 + 3 * 8192);
        assert!(t.created_file());
        assert!(matches!(
            t.frame_offset(10),
            Err(TierError::FrameOutOfRange { .. })
        ));
        // ext4 and tmpfs (Linux >= 6.6) take O_DIRECT; the tier must not silently fall back there.
        println!("direct_io = {}", t.direct_io());
    }

    #[test]
    fn write_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 10_000);
        let k = BlockKey(0xabc);
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        t.write_block(3, k, &payload).unwrap();
        t.write_block(0, BlockKey(1), b"small").unwrap();
        let mut out = vec![0u8; 10_000];
        assert_eq!(t.read_block(3, k, &mut out).unwrap(), 10_000);
        assert_eq!(out, payload);
        assert_eq!(t.read_block(0, BlockKey(1), &mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"small");
        let err = t.read_block(1, k, &mut out).unwrap_err();
        assert!(matches!(
            err,
            TierError::Corrupt {
                frame: 1,
                reason: CorruptReason::BadMagic { .. }
            }
        ));
        assert!(matches!(
            t.write_block(0, k, &[0u8; 10_001]),
            Err(TierError::TooLarge { .. })
        ));
        assert_eq!(t.read_block(0, BlockKey(1), &mut out).unwrap(), 5);
    }

    #[test]
    fn flipped_byte_in_the_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 1000);
        let k = BlockKey(77);
        t.write_block(2, k, &[0x5a; 1000]).unwrap();
        let off = t.frame_offset(2).unwrap() + BLOCK_HEADER_BYTES as u64 + 500;
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.path())
            .unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut b = [0u8; 1];
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&[b[0] ^ 0x10]).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let mut out = vec![0u8; 1000];
        let err = t.read_block(2, k, &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                TierError::Corrupt {
                    frame: 2,
                    reason: CorruptReason::PayloadChecksum { .. }
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("treat the block as a miss"),
            "{err}"
        );
    }

    #[test]
    fn reads_and_writes_reuse_one_bounce_buffer_per_thread() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 10_000);
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8 + 1).collect();
        t.write_block(0, BlockKey(1), &big).unwrap();
        let addr = kept_bounce_addr().expect("a write keeps its buffer");
        // A short block written after a long one: its padding must go out as zeros, not as
        // the long block's bytes still in the reused buffer.
        t.write_block(1, BlockKey(2), b"short").unwrap();
        let mut out = vec![0u8; 10_000];
        for _ in 0..3 {
            assert_eq!(t.read_block(0, BlockKey(1), &mut out).unwrap(), 10_000);
            assert_eq!(out, big);
            assert_eq!(t.read_block(1, BlockKey(2), &mut out).unwrap(), 5);
            assert_eq!(kept_bounce_addr(), Some(addr), "no allocation per call");
        }
        let mut raw = vec![0u8; t.frame_stride()];
        File::open(t.path())
            .unwrap()
            .read_exact_at(&mut raw, t.frame_offset(1).unwrap())
            .unwrap();
        assert!(raw[BLOCK_HEADER_BYTES + 5..].iter().all(|&b| b == 0));
    }

    /// An aligned buffer of `len` bytes filled with 0xaa.
    fn slot_buf(len: usize) -> AlignedBuf {
        let mut b = AlignedBuf::zeroed(len).unwrap();
        b.as_mut_slice().fill(0xaa);
        b
    }

    #[test]
    fn direct_read_lands_the_verified_payload_in_an_aligned_slot() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 10_000);
        let big = vec![0x5au8; 10_000];
        // Frame 2 held a long block, then a short one: the frame's tail still holds the long
        // block's bytes on disk, and the slot must not show them.
        t.write_block(2, BlockKey(9), &big).unwrap();
        t.write_block(2, BlockKey(7), b"seven").unwrap();
        t.write_block(3, BlockKey(8), &big).unwrap();
        let mut slot = slot_buf(t.direct_read_bytes() + 4096);
        let s = slot.as_mut_slice();
        assert!(t.direct_fits(s));
        let (len, how) = t.read_block_direct(2, BlockKey(7), s).unwrap();
        assert_eq!((len, how), (5, DirectRead::Direct));
        assert_eq!(&s[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + 5], b"seven");
        let span = t.direct_read_bytes();
        assert!(
            s[..BLOCK_HEADER_BYTES].iter().all(|&b| b == 0),
            "header zeroed"
        );
        assert!(s[BLOCK_HEADER_BYTES + 5..span].iter().all(|&b| b == 0));
        assert!(
            s[span..].iter().all(|&b| b == 0xaa),
            "nothing past the span"
        );
        let (len, how) = t.read_block_direct(3, BlockKey(8), s).unwrap();
        assert_eq!((len, how), (10_000, DirectRead::Direct));
        assert_eq!(
            &s[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + 10_000],
            &big[..]
        );
    }

    #[test]
    fn direct_read_into_an_unaligned_or_short_slot_bounces() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 2, 5000);
        let payload: Vec<u8> = (0..5000u32).map(|i| (i % 249) as u8).collect();
        t.write_block(1, BlockKey(3), &payload).unwrap();
        let mut buf = slot_buf(2 * t.direct_read_bytes());
        let unaligned = &mut buf.as_mut_slice()[512..];
        assert_eq!(t.direct_fits(unaligned), !t.direct_io());
        let (len, how) = t.read_block_direct(1, BlockKey(3), unaligned).unwrap();
        assert_eq!(len, 5000);
        if t.direct_io() {
            assert_eq!(how, DirectRead::Bounced);
        }
        assert_eq!(
            &unaligned[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + 5000],
            &payload[..]
        );
        assert!(unaligned[..BLOCK_HEADER_BYTES].iter().all(|&b| b == 0));
        // Aligned but shorter than a frame: bounced, the payload still fits.
        let short = &mut buf.as_mut_slice()[..BLOCK_HEADER_BYTES + 5000];
        assert!(!t.direct_fits(short));
        assert_eq!(
            t.read_block_direct(1, BlockKey(3), short).unwrap(),
            (5000, DirectRead::Bounced)
        );
        assert_eq!(&short[BLOCK_HEADER_BYTES..], &payload[..]);
        // Too short for the payload: an error, not a partial block.
        let tiny = &mut buf.as_mut_slice()[..BLOCK_HEADER_BYTES + 10];
        assert!(matches!(
            t.read_block_direct(1, BlockKey(3), tiny),
            Err(TierError::BufferTooSmall { needed: 5000, .. })
        ));
    }

    #[test]
    fn direct_read_of_a_corrupt_or_foreign_block_leaves_no_bytes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 1000);
        t.write_block(2, BlockKey(77), &[0x5a; 1000]).unwrap();
        let span = t.direct_read_bytes();
        let mut slot = slot_buf(span);
        // The frame holds another key's block: refused, and the slot shows none of it.
        let err = t
            .read_block_direct(2, BlockKey(78), slot.as_mut_slice())
            .unwrap_err();
        assert!(
            matches!(
                err,
                TierError::Corrupt {
                    reason: CorruptReason::KeyMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(slot.as_slice().iter().all(|&b| b == 0));
        // A flipped payload byte on disk.
        let off = t.frame_offset(2).unwrap() + BLOCK_HEADER_BYTES as u64 + 10;
        let f = OpenOptions::new().write(true).open(t.path()).unwrap();
        f.write_all_at(&[0x5b], off).unwrap();
        f.sync_all().unwrap();
        slot.as_mut_slice().fill(0xaa);
        let err = t
            .read_block_direct(2, BlockKey(77), slot.as_mut_slice())
            .unwrap_err();
        assert!(
            matches!(
                err,
                TierError::Corrupt {
                    reason: CorruptReason::PayloadChecksum { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(slot.as_slice().iter().all(|&b| b == 0));
    }

    #[test]
    fn truncated_file_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let t = tier(&dir, 4, 100);
        t.write_block(3, BlockKey(1), b"x").unwrap();
        OpenOptions::new()
            .write(true)
            .open(t.path())
            .unwrap()
            .set_len(4096)
            .unwrap();
        let mut out = [0u8; 100];
        let err = t.read_block(3, BlockKey(1), &mut out).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TierError::Io { .. }), "{msg}");
        assert!(
            msg.contains("truncated") && msg.contains("tier.mcos"),
            "{msg}"
        );
    }

    #[test]
    fn uncreatable_directory_is_an_error_naming_the_path() {
        // A parent that is a file cannot become a directory (even for root).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let path = dir.path().join("file/sub/tier");
        let err = DiskTier::create(&path, 1, 100).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().join("file/sub").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("creating directory"), "{msg}");
        assert_eq!(std::fs::read(dir.path().join("file")).unwrap(), b"x");
    }

    #[test]
    fn recreate_truncates_and_remove_file_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let a = DiskTier::create(&path, 8, 100).unwrap();
        a.write_block(0, BlockKey(5), b"old").unwrap();
        drop(a);
        assert!(path.exists(), "drop leaves the file");
        let b = DiskTier::open(&path, 2, 100, true).unwrap();
        assert!(!b.created_file());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 + 2 * 4096);
        let mut out = [0u8; 100];
        assert!(matches!(
            b.read_block(0, BlockKey(5), &mut out),
            Err(TierError::Corrupt { .. })
        ));
        b.remove_file().unwrap();
        assert!(!path.exists());
        assert!(matches!(b.remove_file(), Err(TierError::Io { .. })));
    }

    #[test]
    fn zero_fill_fallback_writes_the_whole_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z");
        let f = File::create(&path).unwrap();
        write_zeros(&f, 0, ZERO_FILL_CHUNK as u64 + 12_345).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            ZERO_FILL_CHUNK as u64 + 12_345
        );
    }

    #[test]
    fn free_bytes_reports_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        // A path that does not exist falls back to its directory.
        assert!(free_bytes(&dir.path().join("missing")).unwrap() > 0);
        assert_eq!(free_bytes(Path::new("relative-missing")), None);
    }
}
