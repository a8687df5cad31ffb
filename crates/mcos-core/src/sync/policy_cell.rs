//! Atomic policy install: two banks, one control word, a grace period (hardware-anchors.md 6.4).
//!
//! The brain writes the full table into the shadow bank and publishes it with one release
//! store of `{epoch, bank}`. Each fast-path shard acquire-loads the control word at an event
//! boundary, uses only that bank until its next boundary, and publishes the epoch it has seen.
//! The old bank is rewritten only after every shard has seen the newest epoch (an RCU grace
//! period), so a shard never reads a half-written table and never waits for the brain.

use super::{Arc, AtomicU64, CachePadded, Ordering, UnsafeCell};
use crate::policy::{ClassPolicy, PolicyTable};

struct Shared {
    /// `epoch << 1 | bank`. Written by the installer only (release), read by every reader.
    control: CachePadded<AtomicU64>,
    /// Per reader, the newest epoch it has started an event with. Written by that reader only
    /// (release), read by the installer (acquire).
    seen: Box<[CachePadded<AtomicU64>]>,
    banks: [UnsafeCell<PolicyTable>; 2],
}

// SAFETY: a bank is written only by the installer, and only while no reader can be reading it:
// the bank is not the published one, and every reader has published (release) an epoch at least
// as new as the one that retired it, which it does only after its last use of that bank.
unsafe impl Sync for Shared {}
// SAFETY: as above; `PolicyTable` is plain data.
unsafe impl Send for Shared {}

/// Why an install did not happen. Nothing changed; the fast path keeps the table it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// A reader still uses the bank that would be overwritten (it has not passed an event
    /// boundary since the previous install). Retry later.
    ReadersBehind {
        /// Reader that is behind.
        reader: usize,
        /// Epoch that reader has seen.
        seen: u64,
        /// Epoch currently published.
        current: u64,
    },
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::ReadersBehind {
                reader,
                seen,
                current,
            } => write!(
                f,
                "shard {reader} has seen epoch {seen}, not yet the current epoch {current}; \
                 retry once it has passed an event boundary"
            ),
        }
    }
}

impl std::error::Error for InstallError {}

/// Creates the install channel with `initial` in force at epoch 1, and one reader per shard.
pub fn policy_cell(initial: PolicyTable, readers: usize) -> (PolicyInstaller, Vec<PolicyReader>) {
    let shared = Arc::new(Shared {
        control: CachePadded(AtomicU64::new(1 << 1)),
        seen: (0..readers)
            .map(|_| CachePadded(AtomicU64::new(1)))
            .collect(),
        banks: [UnsafeCell::new(initial.clone()), UnsafeCell::new(initial)],
    });
    let readers = (0..readers)
        .map(|id| PolicyReader {
            shared: shared.clone(),
            id,
            control: 1 << 1,
        })
        .collect();
    (PolicyInstaller { shared }, readers)
}

/// The writing side: held by the brain (or whoever installs tables). Not `Clone`.
pub struct PolicyInstaller {
    shared: Arc<Shared>,
}

impl PolicyInstaller {
    /// Epoch currently published.
    pub fn epoch(&self) -> u64 {
        self.shared.control.load(Ordering::Acquire) >> 1
    }

    /// Whether every reader has started an event with the current epoch (commit has taken
    /// effect everywhere).
    pub fn all_seen(&self) -> bool {
        self.first_behind(self.epoch()).is_none()
    }

    fn first_behind(&self, epoch: u64) -> Option<(usize, u64)> {
        self.shared
            .seen
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.load(Ordering::Acquire)))
            .find(|&(_, s)| s < epoch)
    }

    /// Installs `table` (already validated by the caller) as the next epoch; returns the epoch.
    pub fn try_install(&mut self, table: &PolicyTable) -> Result<u64, InstallError> {
        let control = self.shared.control.load(Ordering::Acquire);
        let (epoch, bank) = (control >> 1, (control & 1) as usize);
        if let Some((reader, seen)) = self.first_behind(epoch) {
            return Err(InstallError::ReadersBehind {
                reader,
                seen,
                current: epoch,
            });
        }
        let shadow = 1 - bank;
        // SAFETY: every reader has seen `epoch`, which publishes bank `bank`; a reader publishes
        // a seen epoch only at an event boundary, after its last read of the older bank
        // (`shadow`). No reader can load the shadow bank until the store below.
        self.shared.banks[shadow].with_mut(|p| unsafe { (*p).clone_from(table) });
        let next = epoch + 1;
        self.shared
            .control
            .store(next << 1 | shadow as u64, Ordering::Release);
        Ok(next)
    }
}

/// One shard's reading side. Not `Clone`: exactly one per shard.
pub struct PolicyReader {
    shared: Arc<Shared>,
    id: usize,
    /// Control word this reader is using (private copy).
    control: u64,
}

impl PolicyReader {
    /// Call at every event boundary: picks up a newer table if one was published. Returns
    /// true when the table changed. One acquire load in the common case.
    pub fn refresh(&mut self) -> bool {
        let control = self.shared.control.load(Ordering::Acquire);
        if control == self.control {
            return false;
        }
        self.control = control;
        self.shared.seen[self.id].store(control >> 1, Ordering::Release);
        true
    }

    /// Epoch of the table this reader is using.
    pub fn epoch(&self) -> u64 {
        self.control >> 1
    }

    fn bank(&self) -> usize {
        (self.control & 1) as usize
    }

    /// Copy of one class entry of the table in use.
    pub fn class(&self, class: u8) -> ClassPolicy {
        // SAFETY: the installer does not write the bank this reader uses until this reader
        // publishes a newer epoch, which only `refresh` (taking `&mut self`) does.
        self.shared.banks[self.bank()].with(|p| unsafe { *(*p).class(class) })
    }

    /// Runs `f` on the whole table in use.
    pub fn with_table<R>(&self, f: impl FnOnce(&PolicyTable) -> R) -> R {
        // SAFETY: as in `class`.
        self.shared.banks[self.bank()].with(|p| f(unsafe { &*p }))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn install_waits_for_every_reader_to_pass_a_boundary() {
        let (mut installer, mut readers) = policy_cell(PolicyTable::builtin(1), 2);
        let mut t = PolicyTable::builtin(1);
        t.version = 7;
        t.classes[3].admit_threshold = 2;
        assert_eq!(installer.try_install(&t), Ok(2));
        assert!(!installer.all_seen());
        // Reader 0 picks it up, reader 1 has not yet: a second install must wait.
        assert!(readers[0].refresh());
        assert_eq!(readers[0].class(3).admit_threshold, 2);
        assert_eq!(
            readers[1].class(3).admit_threshold,
            0,
            "reader 1 still on the old bank"
        );
        let mut t2 = t.clone();
        t2.version = 8;
        let err = installer.try_install(&t2).unwrap_err();
        assert!(
            matches!(err, InstallError::ReadersBehind { reader: 1, .. }),
            "{err}"
        );
        assert!(readers[1].refresh());
        assert!(installer.all_seen());
        assert_eq!(installer.try_install(&t2), Ok(3));
        assert!(!readers[1].refresh() || readers[1].with_table(|t| t.version) == 8);
        assert!(readers[0].refresh());
        assert_eq!(readers[0].with_table(|t| t.version), 8);
        assert!(!readers[0].refresh(), "no change, no refresh");
    }
}
