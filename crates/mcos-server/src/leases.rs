//! Pin leases: every pin a client takes through the daemon is one node pin held under a lease
//! that ends at its unpin, at its deadline, or when the client's session ends, whichever comes
//! first, and is released exactly once. A client that dies mid-batch therefore leaves no pin
//! behind (the failure LMCache's leaked pins cause: an engine hung hours later).

use mcos_core::BlockKey;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Live leases: id -> (session, key, deadline).
    live: HashMap<u64, (u64, BlockKey, Instant)>,
    /// Lease ids per (session, key), newest last.
    held: HashMap<(u64, BlockKey), Vec<u64>>,
    /// Live lease ids per session (its pin count is the set's size).
    by_session: HashMap<u64, HashSet<u64>>,
    /// Deadlines, earliest first (entries of released leases are skipped when popped).
    expiry: BinaryHeap<Reverse<(Instant, u64)>>,
}

/// All leases of the daemon.
#[derive(Default)]
pub struct Leases {
    inner: Mutex<Inner>,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pins `session` holds.
    pub fn held_by(&self, session: u64) -> usize {
        self.lock().by_session.get(&session).map_or(0, HashSet::len)
    }

    /// Pins held by all sessions.
    pub fn total(&self) -> usize {
        self.lock().live.len()
    }

    /// Records a node pin `session` took on `key`, lapsing at `deadline`.
    pub fn add(&self, session: u64, key: BlockKey, deadline: Instant) {
        let mut g = self.lock();
        let id = g.next_id;
        g.next_id += 1;
        g.live.insert(id, (session, key, deadline));
        g.held.entry((session, key)).or_default().push(id);
        g.by_session.entry(session).or_default().insert(id);
        g.expiry.push(Reverse((deadline, id)));
    }

    fn forget(g: &mut Inner, id: u64) -> Option<BlockKey> {
        let (session, key, _) = g.live.remove(&id)?;
        if let Some(v) = g.held.get_mut(&(session, key)) {
            v.retain(|&x| x != id);
            if v.is_empty() {
                g.held.remove(&(session, key));
            }
        }
        if let Some(ids) = g.by_session.get_mut(&session) {
            ids.remove(&id);
            if ids.is_empty() {
                g.by_session.remove(&session);
            }
        }
        Some(key)
    }

    /// Ends one of `session`'s leases on `key`; false if it holds none (the caller unpins the
    /// node only when this returns true).
    pub fn release_one(&self, session: u64, key: BlockKey) -> bool {
        let mut g = self.lock();
        let Some(id) = g.held.get(&(session, key)).and_then(|v| v.last().copied()) else {
            return false;
        };
        Self::forget(&mut g, id).is_some()
    }

    /// Ends every lease of `session`; returns the keys to unpin (one entry per pin).
    pub fn release_session(&self, session: u64) -> Vec<BlockKey> {
        let mut g = self.lock();
        let ids: Vec<u64> = g
            .by_session
            .get(&session)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| Self::forget(&mut g, id))
            .collect()
    }

    /// Ends every lease whose deadline passed; returns the keys to unpin.
    pub fn expire(&self, now: Instant) -> Vec<BlockKey> {
        let mut g = self.lock();
        let mut out = Vec::new();
        while let Some(&Reverse((deadline, id))) = g.expiry.peek() {
            if deadline > now {
                break;
            }
            g.expiry.pop();
            if let Some(k) = Self::forget(&mut g, id) {
                out.push(k);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_pin_released_once() {
        let l = Leases::default();
        let now = Instant::now();
        let (k1, k2) = (BlockKey(1), BlockKey(2));
        l.add(7, k1, now + Duration::from_secs(10));
        l.add(7, k1, now + Duration::from_secs(10));
        l.add(7, k2, now + Duration::from_millis(1));
        l.add(8, k1, now + Duration::from_secs(10));
        assert_eq!((l.held_by(7), l.held_by(8), l.total()), (3, 1, 4));
        assert!(l.release_one(7, k1));
        assert!(!l.release_one(8, k2), "session 8 never pinned k2");
        assert_eq!(l.expire(now + Duration::from_millis(2)), vec![k2]);
        assert!(
            l.expire(now + Duration::from_millis(3)).is_empty(),
            "released once"
        );
        assert_eq!(l.release_session(7), vec![k1]);
        assert_eq!(l.release_session(7), vec![]);
        assert_eq!(l.held_by(8), 1, "another session's pin stays");
        assert_eq!(l.expire(now + Duration::from_secs(11)), vec![k1]);
        assert_eq!(l.total(), 0);
    }
}
