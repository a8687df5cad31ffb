//! The disk tier: one preallocated file of fixed-size frames, opened with O_DIRECT.
//!
//! Same frame layout and stride as the DRAM tier ([`crate::layout`]): frame `i` is at file offset
//! `i * stride`, a multiple of 4096, so the engines move a frame between the DRAM arena and the
//! file with one aligned read or write and no bounce buffer. The file is preallocated at creation
//! (`posix_fallocate`, or zeros written where the filesystem cannot), so a full disk shows up once,
//! at start-up, as [`TierError::NoSpace`], rather than as failed demotions later.
//!
//! The synchronous [`DiskTier::write_block`] / [`DiskTier::read_block`] go through an aligned
//! bounce buffer allocated per call: they are for tests, tools and the node's fallback, not for
//! the hot path, which is the engine thread (`crate::engine`).

use crate::aligned::AlignedBuf;
use crate::dram::verify_frame;
use crate::error::TierError;
use crate::header;
use crate::layout;
use mcos_core::BlockKey;
use mcos_core::limits::BLOCK_HEADER_BYTES;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes written per call when the filesystem cannot `fallocate` and zeros are written instead.
const ZERO_FILL_CHUNK: usize = 1 << 20;

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
}

impl DiskTier {
    /// Creates (or truncates) the file at `path` and preallocates `frames` frames for blocks of
    /// up to `block_bytes` payload. When the filesystem lacks room the error is
    /// [`TierError::NoSpace`] naming the path, the bytes needed and the bytes free, and a file
    /// this call created is removed again. Opens the file with O_DIRECT; where the filesystem
    /// refuses it (EINVAL), I/O is buffered and [`DiskTier::direct_io`] says so.
    pub fn create(
        path: impl AsRef<Path>,
        frames: u32,
        block_bytes: u32,
    ) -> Result<DiskTier, TierError> {
        let path = path.as_ref().to_path_buf();
        let (stride, file_bytes) = layout::check_geometry(frames, block_bytes)?;
        let existed = path.symlink_metadata().is_ok();
        let setup = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| {
                TierError::io(
                    format!(
                        "cannot create disk tier file {}: check that its directory exists and is writable",
                        path.display()
                    ),
                    e,
                )
            })?;
        if let Err(e) = preallocate(&setup, file_bytes, &path) {
            // Give the space back; remove the file only if this call created it.
            if existed {
                let _ = setup.set_len(0);
            } else {
                let _ = std::fs::remove_file(&path);
            }
            return Err(e);
        }
        let (file, direct_io) = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (setup, false),
            Err(e) => {
                return Err(TierError::io(
                    format!("cannot reopen disk tier file {} for I/O", path.display()),
                    e,
                ));
            }
        };
        Ok(DiskTier {
            file,
            path,
            frames,
            block_bytes,
            stride,
            file_bytes,
            direct_io,
        })
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

    /// Size of the preallocated file.
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
            Ok(u64::from(frame) * self.stride as u64)
        } else {
            Err(TierError::FrameOutOfRange {
                frame,
                frames: self.frames,
            })
        }
    }

    /// Removes the tier's file from its directory. `Drop` never does: whether the file outlives
    /// the process is the node's decision. Open descriptors keep working until dropped.
    pub fn remove_file(&self) -> Result<(), TierError> {
        std::fs::remove_file(&self.path).map_err(|e| {
            TierError::io(
                format!("cannot remove disk tier file {}", self.path.display()),
                e,
            )
        })
    }

    /// Stores `payload` under `key` in `frame` (synchronous `pwrite` through an aligned bounce
    /// buffer). A payload larger than `block_bytes` is refused and the frame keeps what it held.
    pub fn write_block(&self, frame: u32, key: BlockKey, payload: &[u8]) -> Result<(), TierError> {
        if payload.len() > self.block_bytes as usize {
            return Err(TierError::TooLarge {
                len: payload.len(),
                max: self.block_bytes as usize,
            });
        }
        let offset = self.frame_offset(frame)?;
        // In range: payload.len() <= block_bytes <= MAX_BLOCK_BYTES < u32::MAX.
        let mut buf = AlignedBuf::zeroed(layout::transfer_len(payload.len() as u32))?;
        header::encode_block(buf.as_mut_slice(), key, payload)?;
        self.file
            .write_all_at(buf.as_slice(), offset)
            .map_err(|e| self.write_error(frame, buf.len() as u64, e))
    }

    /// Copies the payload of the block `key` in `frame` into `out` and returns its length, after
    /// verifying header, key and checksum (a mismatch is `Corrupt`).
    pub fn read_block(
        &self,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
    ) -> Result<usize, TierError> {
        let offset = self.frame_offset(frame)?;
        let mut buf = AlignedBuf::zeroed(self.stride)?;
        self.file
            .read_exact_at(buf.as_mut_slice(), offset)
            .map_err(|e| self.read_error(frame, e))?;
        let len = verify_frame(buf.as_slice(), self.block_bytes, frame, key)? as usize;
        let out_len = out.len();
        let dst = out.get_mut(..len).ok_or(TierError::BufferTooSmall {
            needed: len,
            len: out_len,
        })?;
        dst.copy_from_slice(&buf.as_slice()[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
        Ok(len)
    }

    fn write_error(&self, frame: u32, needed_bytes: u64, e: io::Error) -> TierError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return TierError::NoSpace {
                path: self.path.clone(),
                needed_bytes,
                free_bytes: free_bytes(&self.path),
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

/// Reserves `len` bytes for `file`: `posix_fallocate`, or zeros written where the filesystem
/// does not support it. Lack of room is `NoSpace`.
fn preallocate(file: &File, len: u64, path: &Path) -> Result<(), TierError> {
    let no_space = || TierError::NoSpace {
        path: path.to_path_buf(),
        needed_bytes: len,
        free_bytes: free_bytes(path),
    };
    let off_len = libc::off_t::try_from(len).map_err(|_| TierError::TooLarge {
        len: usize::try_from(len).unwrap_or(usize::MAX),
        max: libc::off_t::MAX as usize,
    })?;
    loop {
        // SAFETY: plain system call on a descriptor `file` keeps open for the call's duration; no
        // memory is passed.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, off_len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            libc::ENOSPC | libc::EFBIG => return Err(no_space()),
            libc::EOPNOTSUPP | libc::EINVAL => break,
            errno => {
                return Err(TierError::io(
                    format!(
                        "cannot preallocate {len} bytes for disk tier file {}",
                        path.display()
                    ),
                    io::Error::from_raw_os_error(errno),
                ));
            }
        }
    }
    write_zeros(file, len).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            no_space()
        } else {
            TierError::io(
                format!(
                    "cannot fill disk tier file {} with {len} zero bytes",
                    path.display()
                ),
                e,
            )
        }
    })
}

/// Writes `len` zero bytes from offset 0 (the fallback where `fallocate` is unsupported).
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; ZERO_FILL_CHUNK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(ZERO_FILL_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Bytes free for unprivileged users on the filesystem holding `path` (0 if unknown).
fn free_bytes(path: &Path) -> u64 {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory for one statvfs;
    // it is read only after the call reports success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        // The file may be gone already; ask its directory.
        return match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && dir != path => free_bytes(dir),
            _ => 0,
        };
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types are u64 on 64-bit Linux but narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    avail.saturating_mul(frsize)
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
        assert_eq!(t.file_bytes(), 10 * 8192);
        assert_eq!(std::fs::metadata(t.path()).unwrap().len(), 10 * 8192);
        assert_eq!(t.frame_offset(3).unwrap(), 3 * 8192);
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
    fn missing_directory_is_an_error_naming_the_path() {
        let err = DiskTier::create("/nonexistent-mcos-dir/tier", 1, 100).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-mcos-dir/tier"), "{msg}");
        assert!(msg.contains("directory exists"), "{msg}");
    }

    #[test]
    fn recreate_truncates_and_remove_file_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let a = DiskTier::create(&path, 8, 100).unwrap();
        a.write_block(0, BlockKey(5), b"old").unwrap();
        drop(a);
        assert!(path.exists(), "drop leaves the file");
        let b = DiskTier::create(&path, 2, 100).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * 4096);
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
        write_zeros(&f, ZERO_FILL_CHUNK as u64 + 12_345).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            ZERO_FILL_CHUNK as u64 + 12_345
        );
    }

    #[test]
    fn free_bytes_reports_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()) > 0);
        // A path that does not exist falls back to its directory.
        assert!(free_bytes(&dir.path().join("missing")) > 0);
        assert_eq!(free_bytes(Path::new("relative-missing")), 0);
    }
}
