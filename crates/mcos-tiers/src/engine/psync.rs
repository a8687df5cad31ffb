//! The pread/pwrite backend: one system call (or a few, for partial transfers) per operation.
//! The fallback where io_uring cannot be set up, and a baseline for measuring it.

use super::{IoBackend, IoKind, IoOp};

/// Executes each operation with `pread`/`pwrite` on the calling thread.
#[derive(Debug, Default)]
pub struct PsyncBackend;

impl IoBackend for PsyncBackend {
    fn name(&self) -> &'static str {
        "psync"
    }

    unsafe fn execute(&mut self, ops: &[IoOp], results: &mut [i32]) {
        for (op, res) in ops.iter().zip(results.iter_mut()) {
            // SAFETY: the caller's contract for `execute` covers each op.
            *res = unsafe { transfer(op) };
        }
    }
}

/// Runs one op to completion, retrying partial transfers and EINTR. Returns the bytes moved
/// (fewer than `len` only at end of file) or `-errno`.
///
/// # Safety
/// As [`IoBackend::execute`] for this op.
pub(crate) unsafe fn transfer(op: &IoOp) -> i32 {
    let len = op.len as usize;
    let mut done = 0usize;
    while done < len {
        let Ok(offset) = libc::off_t::try_from(op.offset + done as u64) else {
            return -libc::EINVAL;
        };
        let ptr = op.buf.wrapping_add(done).cast::<libc::c_void>();
        let rc = match op.kind {
            // SAFETY: `ptr` stays within `buf[..len]` (done < len), which the caller keeps valid
            // and unshared for the call; `fd` is open.
            IoKind::Read => unsafe { libc::pread(op.fd, ptr, len - done, offset) },
            // SAFETY: as above; a write only reads the buffer.
            IoKind::Write => unsafe { libc::pwrite(op.fd, ptr, len - done, offset) },
        };
        if rc < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            if errno == libc::EINTR {
                continue;
            }
            return -errno;
        }
        if rc == 0 {
            break;
        }
        done += rc.unsigned_abs();
    }
    // In range: len is a u32 frame transfer of at most MAX_BLOCK_BYTES + 4 KiB.
    done as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aligned::AlignedBuf;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_writes_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("p"))
            .unwrap();
        let mut src = AlignedBuf::zeroed(8192).unwrap();
        src.as_mut_slice().fill(0xab);
        let dst = AlignedBuf::zeroed(8192).unwrap();
        let ops = [
            IoOp {
                kind: IoKind::Write,
                fd: f.as_raw_fd(),
                buf: src.as_ptr(),
                len: 8192,
                offset: 4096,
            },
            IoOp {
                kind: IoKind::Read,
                fd: f.as_raw_fd(),
                buf: dst.as_ptr(),
                len: 8192,
                offset: 4096,
            },
            // Past the end: a short (zero-byte) read.
            IoOp {
                kind: IoKind::Read,
                fd: f.as_raw_fd(),
                buf: dst.as_ptr(),
                len: 4096,
                offset: 1 << 20,
            },
            IoOp {
                kind: IoKind::Write,
                fd: -1,
                buf: src.as_ptr(),
                len: 4096,
                offset: 0,
            },
        ];
        let mut res = [0i32; 4];
        // SAFETY: both buffers live to the end of the test and are not otherwise accessed
        // during the call; the file is open (fd -1 is refused by the kernel, not dereferenced).
        unsafe { PsyncBackend.execute(&ops, &mut res) };
        assert_eq!(res, [8192, 8192, 0, -libc::EBADF]);
        assert!(dst.as_slice().iter().all(|&b| b == 0xab));
    }
}
