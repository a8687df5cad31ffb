//! Slab-backed doubly-linked queues of sized objects, shared by the object-cache policies.
//!
//! Nodes live in one slab and are addressed by `u32` index; a policy keeps one or more
//! [`Queue`]s over the same slab (head = most recently inserted). Each node carries the fields
//! the list-based policies need: a frequency counter and a small tag naming its queue.

pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) size: u64,
    pub(crate) freq: i64,
    pub(crate) tag: u8,
    prev: u32,
    next: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Slab {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Slab {
    pub(crate) fn alloc(&mut self, id: u64, size: u64, tag: u8) -> u32 {
        let node = Node {
            id,
            size,
            freq: 0,
            tag,
            prev: NIL,
            next: NIL,
        };
        if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 resident objects");
            self.nodes.push(node);
            i
        }
    }

    pub(crate) fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    pub(crate) fn get(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    pub(crate) fn get_mut(&mut self, i: u32) -> &mut Node {
        &mut self.nodes[i as usize]
    }

    /// Starts loading node `i` (a hint only).
    #[inline]
    pub(crate) fn prefetch(&self, i: u32) {
        if let Some(n) = self.nodes.get(i as usize) {
            super::index::prefetch_read(n);
        }
    }

    /// Starts loading the neighbours of node `i`, which unlinking it writes.
    #[inline]
    pub(crate) fn prefetch_links(&self, i: u32) {
        if let Some(n) = self.nodes.get(i as usize) {
            self.prefetch(n.prev);
            self.prefetch(n.next);
        }
    }
}

/// [`ObjectPolicy::prefetch`](super::ObjectPolicy::prefetch) for a policy that keeps its
/// objects (and ghosts) in one slab under one [`SlotIndex`](super::index::SlotIndex), and
/// evicts or demotes from the tails of `queues`.
pub(crate) fn prefetch_listed(
    index: &super::index::SlotIndex,
    slab: &Slab,
    queues: &[Queue],
    id: u64,
    stage: super::Prefetch,
) {
    use super::Prefetch;
    match stage {
        Prefetch::Index => index.prefetch(id),
        Prefetch::Node => {
            if let Some(i) = index.get(id) {
                slab.prefetch(i);
            }
        }
        Prefetch::Links => {
            if let Some(i) = index.get(id) {
                slab.prefetch_links(i);
            }
            // A miss evicts or demotes tails: the new tail (the tail's predecessor) is written
            // and an evicted id leaves the index.
            for q in queues {
                if let Some(t) = q.tail() {
                    let n = slab.get(t);
                    slab.prefetch(n.prev);
                    index.prefetch(n.id);
                }
            }
        }
    }
}

/// One queue: head is the newest end, tail the oldest. Tracks its object count and bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queue {
    head: u32,
    tail: u32,
    pub(crate) len: usize,
    pub(crate) bytes: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }
}

impl Queue {
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    pub(crate) fn head(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The node nearer the head than `i` (newer), if any.
    pub(crate) fn newer(slab: &Slab, i: u32) -> Option<u32> {
        let p = slab.get(i).prev;
        (p != NIL).then_some(p)
    }

    pub(crate) fn push_head(&mut self, slab: &mut Slab, i: u32) {
        let old = self.head;
        {
            let n = slab.get_mut(i);
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            slab.get_mut(old).prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
        self.len += 1;
        self.bytes += slab.get(i).size;
    }

    pub(crate) fn unlink(&mut self, slab: &mut Slab, i: u32) {
        let (prev, next) = {
            let n = slab.get(i);
            (n.prev, n.next)
        };
        if prev != NIL {
            slab.get_mut(prev).next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            slab.get_mut(next).prev = prev;
        } else {
            self.tail = prev;
        }
        let n = slab.get_mut(i);
        n.prev = NIL;
        n.next = NIL;
        self.len -= 1;
        self.bytes -= n.size;
    }

    pub(crate) fn move_to_head(&mut self, slab: &mut Slab, i: u32) {
        self.unlink(slab, i);
        self.push_head(slab, i);
    }
}

/// A queue with its own slab and id index: libCacheSim's single-list LRU/FIFO "cache" used as a
/// building block (an id may sit in several such queues at once, each with its own entry).
#[derive(Debug)]
pub(crate) struct IdQueue {
    slab: Slab,
    q: Queue,
    index: crate::policy::IdMap<u32>,
}

impl Default for IdQueue {
    fn default() -> Self {
        Self {
            slab: Slab::default(),
            q: Queue::default(),
            index: crate::policy::id_map(1024),
        }
    }
}

impl IdQueue {
    pub(crate) fn bytes(&self) -> u64 {
        self.q.bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.q.len
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Node> {
        self.index.get(&id).map(|&i| self.slab.get(i))
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Node> {
        self.index.get(&id).map(|&i| self.slab.get_mut(i))
    }

    /// Inserts at the head (an id already present is first removed).
    pub(crate) fn push_head(&mut self, id: u64, size: u64, tag: u8) {
        self.remove(id);
        let i = self.slab.alloc(id, size, tag);
        self.q.push_head(&mut self.slab, i);
        self.index.insert(id, i);
    }

    /// Moves a present id to the head; returns whether it was present.
    pub(crate) fn touch(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&i) => {
                self.q.move_to_head(&mut self.slab, i);
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<Node> {
        let i = self.index.remove(&id)?;
        self.q.unlink(&mut self.slab, i);
        let n = *self.slab.get(i);
        self.slab.release(i);
        Some(n)
    }

    pub(crate) fn tail(&self) -> Option<&Node> {
        self.q.tail().map(|i| self.slab.get(i))
    }

    pub(crate) fn head_id(&self) -> Option<u64> {
        self.q.head().map(|i| self.slab.get(i).id)
    }

    pub(crate) fn pop_tail(&mut self) -> Option<Node> {
        let id = self.tail()?.id;
        self.remove(id)
    }
}
