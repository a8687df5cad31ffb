//! Per-frame claims: the check every memory tier makes that one mover at a time holds a frame.
//!
//! The fast path's frame state machine already hands each frame to one mover at a time; the
//! claims make the tiers' safe API sound even when a caller breaks it. One 32-bit word per
//! frame: `WRITER`, or the number of readers. Claiming is one atomic read-modify-write.
//!
//! A read claim never waits: a frame a writer holds is refused with [`TierError::FrameBusy`].
//! A write claim waits out readers, for at most [`READER_WAIT`]: the node copies a block out
//! of its frame after it dropped the shard lock, so the fast path may meanwhile have freed the
//! frame and handed it to a new block (an engine's move destination, a put's fill). That
//! reader started before the frame was freed and finishes one copy without waiting for
//! anything, so the writer waits a copy's time and then proceeds; failing the move instead
//! would cost a demotion or promotion for nothing. No new reader can arrive meanwhile (the
//! frame holds no visible block until the writer is done), so the wait cannot starve. A frame
//! held by another writer is still refused at once: that is two movers on one frame, a bug.

use crate::error::TierError;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a write claim waits for readers to leave before it is refused. A reader holds a
/// frame for one block copy (microseconds); this bound is far above that, even for a reader
/// thread descheduled on a loaded machine, and short of what a user would call a hang. Only
/// a claim leaked by a bug reaches it.
pub(crate) const READER_WAIT: Duration = Duration::from_millis(100);

/// Claim word bit held by the one writer of a frame; the bits below count readers.
const WRITER: u32 = 1 << 31;

/// One claim word per frame. Written and read (atomic read-modify-write) by whichever thread
/// claims or releases the frame; acquire on claim, release on release, so a frame's bytes
/// written under one claim are visible under the next.
pub(crate) struct FrameClaims {
    words: Box<[AtomicU32]>,
}

impl FrameClaims {
    pub(crate) fn new(frames: u32) -> FrameClaims {
        FrameClaims {
            words: (0..frames).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Shares `frame` for reading; `FrameBusy` while a writer holds it. `frame` is in range.
    pub(crate) fn read(&self, frame: u32) -> Result<(), TierError> {
        let word = &self.words[frame as usize];
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            // Bounded: each failed exchange means another thread claimed or released meanwhile,
            // and readers are bounded by the threads that exist.
            if cur & WRITER != 0 || cur == WRITER - 1 {
                return Err(TierError::FrameBusy { frame });
            }
            match word.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Takes `frame` for writing alone. Waits while only readers hold it (at most
    /// [`READER_WAIT`], then `FrameBusy`); `FrameBusy` at once while another writer holds it.
    pub(crate) fn write(&self, frame: u32) -> Result<(), TierError> {
        let word = &self.words[frame as usize];
        let mut since: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            match word.compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) if now & WRITER != 0 => return Err(TierError::FrameBusy { frame }),
                Err(_) => {}
            }
            // Readers only: they are copying a block out and leave without waiting on anyone.
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > READER_WAIT {
                return Err(TierError::FrameBusy { frame });
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else if spins < 128 {
                std::thread::yield_now();
            } else {
                // Let a descheduled reader have the core.
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }

    /// Releases one read claim taken by [`FrameClaims::read`].
    pub(crate) fn release_read(&self, frame: u32) {
        let before = self.words[frame as usize].fetch_sub(1, Ordering::Release);
        debug_assert!(before & !WRITER > 0, "read release without a read claim");
    }

    /// Releases the write claim taken by [`FrameClaims::write`].
    pub(crate) fn release_write(&self, frame: u32) {
        let before = self.words[frame as usize].swap(0, Ordering::Release);
        debug_assert_eq!(before, WRITER, "write release without the write claim");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_exclude() {
        let c = FrameClaims::new(2);
        c.read(0).unwrap();
        c.read(0).unwrap();
        let t = Instant::now();
        assert!(matches!(c.write(0), Err(TierError::FrameBusy { frame: 0 })));
        assert!(
            t.elapsed() >= READER_WAIT,
            "a writer waits readers out before refusing"
        );
        c.write(1).unwrap();
        assert!(matches!(c.read(1), Err(TierError::FrameBusy { frame: 1 })));
        assert!(c.write(1).is_err());
        c.release_read(0);
        assert!(c.write(0).is_err(), "one reader left");
        c.release_read(0);
        c.write(0).unwrap();
        c.release_write(0);
        c.release_write(1);
        c.read(1).unwrap();
    }

    #[test]
    fn a_writer_refused_by_a_writer_does_not_wait() {
        let c = FrameClaims::new(1);
        c.write(0).unwrap();
        let t = Instant::now();
        assert!(matches!(c.write(0), Err(TierError::FrameBusy { frame: 0 })));
        assert!(t.elapsed() < READER_WAIT);
    }

    #[test]
    fn a_writer_waits_out_a_reader_that_leaves() {
        let c = std::sync::Arc::new(FrameClaims::new(1));
        c.read(0).unwrap();
        let r = c.clone();
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            r.release_read(0);
        });
        c.write(0).unwrap();
        assert!(c.read(0).is_err(), "the writer holds it now");
        c.release_write(0);
        reader.join().unwrap();
    }
}
