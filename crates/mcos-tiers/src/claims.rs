//! Per-frame claims: the check every memory tier makes that one mover at a time holds a frame.
//!
//! The fast path's frame state machine already hands each frame to one mover at a time; the
//! claims make the tiers' safe API sound even when a caller breaks it. One 32-bit word per
//! frame: `WRITER`, or the number of readers. Claiming is one atomic read-modify-write and
//! never waits: a conflicting claim is refused with [`TierError::FrameBusy`].

use crate::error::TierError;
use std::sync::atomic::{AtomicU32, Ordering};

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

    /// Takes `frame` for writing alone; `FrameBusy` while anyone else holds it.
    pub(crate) fn write(&self, frame: u32) -> Result<(), TierError> {
        self.words[frame as usize]
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| TierError::FrameBusy { frame })
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
        assert!(matches!(c.write(0), Err(TierError::FrameBusy { frame: 0 })));
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
}
