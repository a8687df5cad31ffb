//! Index-based doubly-linked lists over one slab of nodes, shared by the list-based policies.
//!
//! Nodes live in a `Vec` allocated once for the policy's directory size and are recycled through a
//! free list, so linking, unlinking and moving cost no allocation. Several lists (ARC's T1/T2/B1/B2,
//! S3-FIFO's small/main/ghost queues) can share one slab; each node records which list holds it.
//! Orientation: `front` is the newest end (MRU, FIFO head), `back` the oldest (LRU, FIFO tail).

pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: u64,
    prev: u32,
    next: u32,
    /// Which list holds the node (policy-defined tag).
    pub(crate) list: u8,
    /// Per-policy small counter or flag (S3-FIFO frequency, SIEVE visited bit).
    pub(crate) freq: u8,
}

/// Storage for the nodes of one or more lists.
#[derive(Debug)]
pub(crate) struct Slab {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Slab {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
        }
    }

    /// A fresh unlinked node for `id`.
    pub(crate) fn alloc(&mut self, id: u64, list: u8) -> u32 {
        let node = Node {
            id,
            prev: NIL,
            next: NIL,
            list,
            freq: 0,
        };
        if let Some(idx) = self.free.pop() {
            self.nodes[idx as usize] = node;
            idx
        } else {
            assert!(self.nodes.len() < NIL as usize, "slab full");
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Returns an unlinked node to the free list.
    pub(crate) fn release(&mut self, idx: u32) {
        debug_assert!(self.nodes[idx as usize].prev == NIL && self.nodes[idx as usize].next == NIL);
        self.free.push(idx);
    }

    pub(crate) fn node(&self, idx: u32) -> &Node {
        &self.nodes[idx as usize]
    }

    pub(crate) fn node_mut(&mut self, idx: u32) -> &mut Node {
        &mut self.nodes[idx as usize]
    }
}

/// One list threaded through a [`Slab`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    front: u32,
    back: u32,
    len: usize,
}

impl List {
    pub(crate) const fn new() -> Self {
        Self {
            front: NIL,
            back: NIL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Oldest node (LRU end, FIFO tail).
    pub(crate) fn back(&self) -> Option<u32> {
        (self.back != NIL).then_some(self.back)
    }

    /// Links an unlinked node at the front (newest end).
    pub(crate) fn push_front(&mut self, slab: &mut Slab, idx: u32) {
        let old = self.front;
        {
            let n = slab.node_mut(idx);
            debug_assert!(n.prev == NIL && n.next == NIL);
            n.next = old;
            n.prev = NIL;
        }
        if old == NIL {
            self.back = idx;
        } else {
            slab.node_mut(old).prev = idx;
        }
        self.front = idx;
        self.len += 1;
    }

    /// Unlinks a node of this list.
    pub(crate) fn unlink(&mut self, slab: &mut Slab, idx: u32) {
        let (prev, next) = {
            let n = slab.node(idx);
            (n.prev, n.next)
        };
        if prev == NIL {
            debug_assert_eq!(self.front, idx);
            self.front = next;
        } else {
            slab.node_mut(prev).next = next;
        }
        if next == NIL {
            debug_assert_eq!(self.back, idx);
            self.back = prev;
        } else {
            slab.node_mut(next).prev = prev;
        }
        let n = slab.node_mut(idx);
        n.prev = NIL;
        n.next = NIL;
        self.len -= 1;
    }

    /// Unlinks and returns the oldest node.
    pub(crate) fn pop_back(&mut self, slab: &mut Slab) -> Option<u32> {
        let idx = self.back()?;
        self.unlink(slab, idx);
        Some(idx)
    }

    /// Moves a node of this list to the front.
    pub(crate) fn move_to_front(&mut self, slab: &mut Slab, idx: u32) {
        if self.front != idx {
            self.unlink(slab, idx);
            self.push_front(slab, idx);
        }
    }

    /// The next-newer neighbour of `idx` (towards the front), if any.
    pub(crate) fn newer(slab: &Slab, idx: u32) -> Option<u32> {
        let p = slab.node(idx).prev;
        (p != NIL).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &List, slab: &Slab) -> Vec<u64> {
        // Walk from back to front.
        let mut out = Vec::new();
        let mut cur = list.back();
        while let Some(i) = cur {
            out.push(slab.node(i).id);
            cur = List::newer(slab, i);
        }
        out
    }

    #[test]
    fn push_unlink_move_and_recycle() {
        let mut slab = Slab::with_capacity(4);
        let mut l = List::new();
        let a = slab.alloc(1, 0);
        let b = slab.alloc(2, 0);
        let c = slab.alloc(3, 0);
        for i in [a, b, c] {
            l.push_front(&mut slab, i);
        }
        assert_eq!(ids(&l, &slab), vec![1, 2, 3]);
        l.move_to_front(&mut slab, a);
        assert_eq!(ids(&l, &slab), vec![2, 3, 1]);
        l.unlink(&mut slab, c);
        slab.release(c);
        assert_eq!(ids(&l, &slab), vec![2, 1]);
        let d = slab.alloc(4, 0);
        assert_eq!(d, c, "freed node is reused");
        l.push_front(&mut slab, d);
        assert_eq!(l.pop_back(&mut slab).map(|i| slab.node(i).id), Some(2));
        assert_eq!(ids(&l, &slab), vec![1, 4]);
        assert_eq!(l.len(), 2);
    }
}
