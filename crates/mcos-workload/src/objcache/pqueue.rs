//! Max-heap keyed by object id with changeable priorities.
//!
//! The operation order (1-based array, bubble-up on insert, percolate-down on pop, the choice of
//! child on ties, change-priority) is that of libpqueue (Volkan Yazıcı, BSD), the
//! heap libCacheSim's Belady and GDSF use: among equal priorities the same element comes out
//! first, which decides which of several never-again objects an offline policy evicts.

use crate::policy::{IdMap, id_map};

#[derive(Debug)]
pub(crate) struct PQueue {
    /// `d[0]` unused, as in libpqueue.
    d: Vec<(f64, u64)>,
    pos: IdMap<usize>,
}

impl PQueue {
    pub(crate) fn new() -> Self {
        Self {
            d: vec![(0.0, 0)],
            pos: id_map(1024),
        }
    }

    fn set(&mut self, i: usize, node: (f64, u64)) {
        self.d[i] = node;
        self.pos.insert(node.1, i);
    }

    /// libpqueue's `cmppri(next, curr)` for a max-heap: `next < curr`.
    fn lt(a: f64, b: f64) -> bool {
        a < b
    }

    fn bubble_up(&mut self, mut i: usize) {
        let moving = self.d[i];
        while i > 1 && Self::lt(self.d[i / 2].0, moving.0) {
            let p = self.d[i / 2];
            self.set(i, p);
            i /= 2;
        }
        self.set(i, moving);
    }

    fn max_child(&self, i: usize) -> usize {
        let c = 2 * i;
        if c >= self.d.len() {
            return 0;
        }
        if c + 1 < self.d.len() && Self::lt(self.d[c].0, self.d[c + 1].0) {
            c + 1
        } else {
            c
        }
    }

    fn percolate_down(&mut self, mut i: usize) {
        let moving = self.d[i];
        loop {
            let c = self.max_child(i);
            if c == 0 || !Self::lt(moving.0, self.d[c].0) {
                break;
            }
            let child = self.d[c];
            self.set(i, child);
            i = c;
        }
        self.set(i, moving);
    }

    pub(crate) fn insert(&mut self, id: u64, pri: f64) {
        self.d.push((pri, id));
        let i = self.d.len() - 1;
        self.bubble_up(i);
    }

    pub(crate) fn change(&mut self, id: u64, pri: f64) {
        let Some(&i) = self.pos.get(&id) else {
            return;
        };
        let old = self.d[i].0;
        self.d[i].0 = pri;
        if Self::lt(old, pri) {
            self.bubble_up(i);
        } else {
            self.percolate_down(i);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, f64)> {
        if self.d.len() <= 1 {
            return None;
        }
        let head = self.d[1];
        self.pos.remove(&head.1);
        let last = self.d.pop().unwrap_or(head);
        if self.d.len() > 1 {
            self.set(1, last);
            self.percolate_down(1);
        }
        Some((head.1, head.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_priority_order_after_changes() {
        let mut q = PQueue::new();
        for (id, p) in [(1, 5.0), (2, 9.0), (3, 1.0), (4, 7.0), (5, 3.0)] {
            q.insert(id, p);
        }
        q.change(3, 10.0);
        q.change(2, 2.0);
        q.change(4, 0.5);
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|(id, _)| id)).collect();
        assert_eq!(order, [3, 1, 5, 2, 4]);
        assert!(q.pop().is_none());
    }
}
