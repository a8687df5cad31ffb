//! The io_uring backend: a batch of operations becomes one submission on a ring owned by the
//! engine thread (foyer's `io/engine/uring.rs` design), then one wait for all completions.
//!
//! The ring is created with `ENGINE_BATCH` entries, so a batch always fits in the submission
//! queue. If entering the ring ever fails with an error other than EINTR/EAGAIN/EBUSY, the
//! backend waits for whatever the kernel already took, retires the ring for good and runs the
//! rest (and every later batch) with pread/pwrite; [`UringBackend::name`] then says `psync`.

use super::{IoBackend, IoKind, IoOp, psync};
use io_uring::{IoUring, opcode, types};
use mcos_core::limits::ENGINE_BATCH;
use std::io;
use std::time::Duration;

/// Submission-queue entries of the ring: one batch.
const RING_ENTRIES: u32 = ENGINE_BATCH as u32;

/// How long to wait before polling the completion queue again when entering the ring fails.
const RETRY_PAUSE: Duration = Duration::from_micros(100);

/// A ring owned by one engine thread.
pub struct UringBackend {
    ring: IoUring,
    /// Set when entering the ring failed for good: the ring is never entered again (entries it
    /// did not take stay unsubmitted) and every op runs with pread/pwrite.
    retired: bool,
    /// Test hook: the next enter fails with this errno before reaching the kernel.
    #[cfg(test)]
    fail_next_enter: Option<i32>,
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("retired", &self.retired)
            .finish()
    }
}

impl UringBackend {
    /// Sets up a ring of `ENGINE_BATCH` entries. Fails where io_uring is unavailable.
    pub fn new() -> io::Result<UringBackend> {
        UringBackend::with_entries(RING_ENTRIES)
    }

    /// A ring of `entries` submission entries (tests use fewer than a batch).
    fn with_entries(entries: u32) -> io::Result<UringBackend> {
        Ok(UringBackend {
            ring: IoUring::new(entries)?,
            retired: false,
            #[cfg(test)]
            fail_next_enter: None,
        })
    }

    fn enter(&mut self, want: usize) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(errno) = self.fail_next_enter.take() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.ring.submit_and_wait(want)
    }

    fn reap(&mut self, results: &mut [i32], done: &mut [bool], pending: &mut usize) {
        for cqe in self.ring.completion() {
            let i = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
            if let (Some(r), Some(d)) = (results.get_mut(i), done.get_mut(i))
                && !*d
            {
                *r = cqe.result();
                *d = true;
                *pending -= 1;
            }
        }
    }

    /// One submission of at most `RING_ENTRIES` ops.
    ///
    /// # Safety
    /// As [`IoBackend::execute`].
    unsafe fn execute_chunk(&mut self, ops: &[IoOp], results: &mut [i32]) {
        // `execute` passes chunks of at most RING_ENTRIES == ENGINE_BATCH ops.
        let n = ops.len().min(results.len()).min(ENGINE_BATCH);
        let mut done = [false; ENGINE_BATCH];
        let mut pushed = 0usize;
        {
            let mut sq = self.ring.submission();
            for (i, op) in ops[..n].iter().enumerate() {
                let entry = match op.kind {
                    IoKind::Read => opcode::Read::new(types::Fd(op.fd), op.buf, op.len)
                        .offset(op.offset)
                        .build(),
                    IoKind::Write => opcode::Write::new(types::Fd(op.fd), op.buf, op.len)
                        .offset(op.offset)
                        .build(),
                }
                .user_data(i as u64);
                // SAFETY: the entry's buffer stays valid and unshared until `execute` returns
                // (caller's contract), and this function returns only after the kernel has
                // completed every entry it took.
                if unsafe { sq.push(&entry) }.is_err() {
                    break;
                }
                pushed += 1;
            }
        }
        // Does not happen with `new()` (the queue is empty between batches and holds a whole
        // batch), but if the queue were smaller, the ops that did not fit run synchronously
        // rather than being lost.
        for i in pushed..n {
            // SAFETY: the caller's contract covers op `i`.
            results[i] = unsafe { psync::transfer(&ops[i]) };
            done[i] = true;
        }
        let mut pending = pushed;
        while pending > 0 {
            match self.enter(pending) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => {
                    std::thread::yield_now();
                }
                Err(_) => {
                    self.retire(&ops[..pushed], results, &mut done, &mut pending);
                    return;
                }
            }
            self.reap(results, &mut done, &mut pending);
        }
    }

    /// Entering the ring failed for good: wait for the entries the kernel took, then run the
    /// ones it did not take with pread/pwrite, and never enter the ring again. `pushed` are the
    /// ops that were queued on the ring, in order.
    fn retire(
        &mut self,
        pushed: &[IoOp],
        results: &mut [i32],
        done: &mut [bool],
        pending: &mut usize,
    ) {
        self.retired = true;
        let unsubmitted = self.ring.submission().len().min(pushed.len());
        // The kernel takes entries in order: the last `unsubmitted` pushed ones are still queued.
        let first_unsubmitted = pushed.len() - unsubmitted;
        for (i, op) in pushed.iter().enumerate().skip(first_unsubmitted) {
            if !done[i] {
                // SAFETY: the caller's contract covers op `i`; the kernel never saw it.
                results[i] = unsafe { psync::transfer(op) };
                done[i] = true;
                *pending -= 1;
            }
        }
        // Entries in flight complete into the shared completion queue without entering the
        // ring (task work runs on the return from any system call, such as this sleep).
        while *pending > 0 {
            std::thread::sleep(RETRY_PAUSE);
            self.reap(results, done, pending);
        }
    }
}

impl IoBackend for UringBackend {
    fn name(&self) -> &'static str {
        if self.retired { "psync" } else { "io_uring" }
    }

    unsafe fn execute(&mut self, ops: &[IoOp], results: &mut [i32]) {
        let n = ops.len().min(results.len());
        for (ops, results) in ops[..n]
            .chunks(RING_ENTRIES as usize)
            .zip(results[..n].chunks_mut(RING_ENTRIES as usize))
        {
            if self.retired {
                // SAFETY: the caller's contract for `execute` covers these ops.
                unsafe { psync::PsyncBackend.execute(ops, results) };
            } else {
                // SAFETY: as above.
                unsafe { self.execute_chunk(ops, results) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aligned::AlignedBuf;
    use std::os::fd::AsRawFd;

    fn file(dir: &tempfile::TempDir) -> std::fs::File {
        std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("u"))
            .unwrap()
    }

    /// Writes `n` 4 KiB blocks with distinct fills, then reads them back into `dst`.
    fn round_trip(b: &mut UringBackend, f: &std::fs::File, n: usize) -> (Vec<i32>, AlignedBuf) {
        let mut src = AlignedBuf::zeroed(n * 4096).unwrap();
        for (i, c) in src.as_mut_slice().chunks_mut(4096).enumerate() {
            c.fill(i as u8 + 1);
        }
        let dst = AlignedBuf::zeroed(n * 4096).unwrap();
        let op = |kind, base: *mut u8, i: usize| IoOp {
            kind,
            fd: f.as_raw_fd(),
            buf: base.wrapping_add(i * 4096),
            len: 4096,
            offset: (i * 4096) as u64,
        };
        let writes: Vec<_> = (0..n).map(|i| op(IoKind::Write, src.as_ptr(), i)).collect();
        let reads: Vec<_> = (0..n).map(|i| op(IoKind::Read, dst.as_ptr(), i)).collect();
        let mut res = vec![0i32; 2 * n];
        // SAFETY: `src` and `dst` outlive the calls and nothing else touches them meanwhile;
        // the file is open.
        unsafe {
            b.execute(&writes, &mut res[..n]);
            b.execute(&reads, &mut res[n..]);
        }
        (res, dst)
    }

    #[test]
    fn batch_of_more_than_one_ring_round_trips() {
        let Ok(mut b) = UringBackend::new() else {
            println!("skipped: io_uring cannot be set up on this host");
            return;
        };
        assert_eq!(b.name(), "io_uring");
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let n = ENGINE_BATCH + 5;
        let (res, dst) = round_trip(&mut b, &f, n);
        assert!(res.iter().all(|&r| r == 4096), "{res:?}");
        for (i, c) in dst.as_slice().chunks(4096).enumerate() {
            assert!(c.iter().all(|&x| x == i as u8 + 1), "block {i}");
        }
        // A bad descriptor is a negative errno, not a panic.
        let bad = [IoOp {
            kind: IoKind::Write,
            fd: -1,
            buf: dst.as_ptr(),
            len: 4096,
            offset: 0,
        }];
        let mut r = [0i32];
        // SAFETY: `dst` is live; fd -1 is refused by the kernel.
        unsafe { b.execute(&bad, &mut r) };
        assert_eq!(r[0], -libc::EBADF);
        assert_eq!(b.name(), "io_uring", "an op error does not retire the ring");
    }

    #[test]
    fn failed_enter_retires_the_ring_and_falls_back_to_psync() {
        let Ok(mut b) = UringBackend::new() else {
            println!("skipped: io_uring cannot be set up on this host");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        b.fail_next_enter = Some(libc::EFAULT);
        let (res, dst) = round_trip(&mut b, &f, 3);
        assert_eq!(res, vec![4096; 6]);
        assert_eq!(b.name(), "psync");
        assert!(dst.as_slice()[8192..].iter().all(|&x| x == 3));
    }

    #[test]
    fn ops_that_do_not_fit_the_ring_run_synchronously() {
        let Ok(mut b) = UringBackend::with_entries(4) else {
            println!("skipped: io_uring cannot be set up on this host");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        let (res, dst) = round_trip(&mut b, &f, 10);
        assert_eq!(res, vec![4096; 20]);
        for (i, c) in dst.as_slice().chunks(4096).enumerate() {
            assert!(c.iter().all(|&x| x == i as u8 + 1), "block {i}");
        }
        assert_eq!(b.name(), "io_uring");
    }

    #[test]
    fn transient_enter_errors_are_retried() {
        let Ok(mut b) = UringBackend::new() else {
            println!("skipped: io_uring cannot be set up on this host");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = file(&dir);
        b.fail_next_enter = Some(libc::EINTR);
        let (res, _) = round_trip(&mut b, &f, 2);
        assert_eq!(res, vec![4096; 4]);
        assert_eq!(b.name(), "io_uring");
    }
}
