//! Per-tier frame tables: one fixed-width entry per frame, and intrusive lists over them.
//!
//! Each frame is on exactly one of: the free list, the probation list, the protected list, the
//! window list, or no list (reserved for a fill, or leaving in a move). Probation and protected
//! form a segmented LRU (Karedla et al. 1994): new blocks enter probation, a hit in probation
//! moves a block to protected, and protected overflow falls back to probation. With a protected
//! share of zero the tier is exact LRU. When a table asks for an admission window (W-TinyLFU),
//! new blocks enter the window list first and join probation when they leave it. Lists link by 32-bit frame index, so the table is a flat
//! array that hardware can hold in SRAM or DRAM.

/// End-of-list marker.
pub const NIL: u32 = u32::MAX;

/// Which list a frame is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ListId {
    /// Holds no block.
    Free = 0,
    /// Resident, not hit since admission (or demoted from protected).
    Probation = 1,
    /// Resident and hit since admission.
    Protected = 2,
    /// On no list: being filled, or leaving in a move.
    Detached = 3,
    /// Resident in the admission window (only when the table asks for one).
    Window = 4,
}

/// Frame flag: a move involving this frame is in flight (`move_slot` names it).
pub const FLAG_MOVING: u8 = 1;
/// Frame flag: reserved for a fill the caller has not committed yet (invisible to lookups).
pub const FLAG_FILLING: u8 = 2;
/// Frame flag: arrived by prefetch and not yet accessed.
pub const FLAG_PREFETCHED: u8 = 4;
/// Frame flag (while filling): the block was found in the admission history, so it enters the
/// protected segment when committed.
pub const FLAG_FROM_HISTORY: u8 = 8;

/// Frame flag: CLOCK reference bit (set by a hit, cleared by a passing victim scan; only
/// under `Replacement::Clock`).
pub const FLAG_REFERENCED: u8 = 16;

/// One frame's state (32 bytes).
#[derive(Copy, Clone, Debug)]
pub struct Frame {
    /// Directory tag of the block held (0 when free).
    pub tag: u64,
    /// Previous frame on the same list (towards the MRU end).
    pub prev: u32,
    /// Next frame on the same list (towards the LRU end).
    pub next: u32,
    /// Tick of the last access (for class TTLs).
    pub last_tick: u32,
    /// Tick until which the block is soft-pinned (pins with a TTL).
    pub soft_pin_until: u32,
    /// Priority class.
    pub class: u8,
    /// List the frame is on.
    pub list: ListId,
    /// Hard pins (each needs an unpin).
    pub pins: u8,
    /// FLAG_* bits.
    pub flags: u8,
    /// In-flight move slot while FLAG_MOVING is set.
    pub move_slot: u16,
    /// Age stamp under `Replacement::Aged`: the tier's age epoch at the last hit or fill
    /// (`AGE_BITS` bits).
    pub age_stamp: u8,
}

impl Frame {
    const EMPTY: Frame = Frame {
        tag: 0,
        prev: NIL,
        next: NIL,
        last_tick: 0,
        soft_pin_until: 0,
        class: 0,
        list: ListId::Free,
        pins: 0,
        flags: 0,
        move_slot: 0,
        age_stamp: 0,
    };
}

#[derive(Copy, Clone, Debug)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// The frames of one tier owned by one shard: global ids `base..base + len`.
pub struct TierFrames {
    base: u32,
    frames: Box<[Frame]>,
    /// Indexed by `ListId as usize`; the `Detached` slot stays empty.
    lists: [List; 5],
}

impl TierFrames {
    /// Frames `base..base + count`, all free.
    pub fn new(base: u32, count: u32) -> TierFrames {
        let mut t = TierFrames {
            base,
            frames: crate::table::table(count as usize, Frame::EMPTY),
            lists: [EMPTY_LIST; 5],
        };
        for i in 0..count {
            t.push(ListId::Free, i, true);
        }
        t
    }

    /// Frames in the table.
    pub fn capacity(&self) -> u32 {
        self.frames.len() as u32
    }

    /// Global frame id of local index `i`.
    pub fn global(&self, i: u32) -> u32 {
        self.base + i
    }

    /// Local index of global frame id `f`, if this table owns it.
    pub fn local(&self, f: u32) -> Option<u32> {
        f.checked_sub(self.base).filter(|&i| i < self.capacity())
    }

    /// Frame entry by local index.
    pub fn get(&self, i: u32) -> &Frame {
        &self.frames[i as usize]
    }

    /// Starts loading the entry of local index `i` into the cache (a hint; out of range: none).
    #[inline]
    pub fn prefetch(&self, i: u32) {
        if let Some(f) = self.frames.get(i as usize) {
            crate::table::prefetch_line(f);
        }
    }

    /// Mutable frame entry by local index.
    pub fn get_mut(&mut self, i: u32) -> &mut Frame {
        &mut self.frames[i as usize]
    }

    /// Frames on `list`.
    pub fn len(&self, list: ListId) -> u32 {
        self.lists[list as usize].len
    }

    /// Frames holding a block or reserved for one (not free).
    pub fn used(&self) -> u32 {
        self.capacity() - self.len(ListId::Free)
    }

    /// The least recently used end of `list`.
    pub fn tail(&self, list: ListId) -> u32 {
        self.lists[list as usize].tail
    }

    /// Takes a free frame.
    pub fn pop_free(&mut self) -> Option<u32> {
        let i = self.lists[ListId::Free as usize].head;
        if i == NIL {
            return None;
        }
        self.unlink(i);
        Some(i)
    }

    /// Links `i` (currently on no list) onto `list` at the MRU end (`at_head`) or LRU end.
    pub fn push(&mut self, list: ListId, i: u32, at_head: bool) {
        debug_assert!(list != ListId::Detached);
        let l = self.lists[list as usize];
        {
            let f = &mut self.frames[i as usize];
            f.list = list;
            if at_head {
                f.prev = NIL;
                f.next = l.head;
            } else {
                f.prev = l.tail;
                f.next = NIL;
            }
        }
        if at_head {
            if l.head != NIL {
                self.frames[l.head as usize].prev = i;
            }
            let lm = &mut self.lists[list as usize];
            lm.head = i;
            if lm.tail == NIL {
                lm.tail = i;
            }
        } else {
            if l.tail != NIL {
                self.frames[l.tail as usize].next = i;
            }
            let lm = &mut self.lists[list as usize];
            lm.tail = i;
            if lm.head == NIL {
                lm.head = i;
            }
        }
        self.lists[list as usize].len += 1;
    }

    /// Removes `i` from its list (no-op when detached).
    pub fn unlink(&mut self, i: u32) {
        let f = self.frames[i as usize];
        if f.list == ListId::Detached {
            return;
        }
        let l = f.list as usize;
        if f.prev != NIL {
            self.frames[f.prev as usize].next = f.next;
        } else {
            self.lists[l].head = f.next;
        }
        if f.next != NIL {
            self.frames[f.next as usize].prev = f.prev;
        } else {
            self.lists[l].tail = f.prev;
        }
        self.lists[l].len -= 1;
        let fm = &mut self.frames[i as usize];
        fm.prev = NIL;
        fm.next = NIL;
        fm.list = ListId::Detached;
    }

    /// Returns `i` to the free list, clearing its state.
    pub fn release(&mut self, i: u32) {
        self.unlink(i);
        self.frames[i as usize] = Frame::EMPTY;
        self.frames[i as usize].list = ListId::Detached;
        self.push(ListId::Free, i, true);
    }

    /// Moves `i` to the MRU end of `list`.
    pub fn touch(&mut self, list: ListId, i: u32) {
        self.unlink(i);
        self.push(list, i, true);
    }
}

/// The directory checks a fingerprint match against the tag recorded in the frame it points to.
impl crate::directory::Resolve for [TierFrames] {
    #[inline]
    fn tag_at(&self, loc: crate::directory::Loc) -> u64 {
        self.get(loc.tier().index())
            .and_then(|t| t.local(loc.frame()).map(|i| t.get(i).tag))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_order_and_counts() {
        let mut t = TierFrames::new(100, 4);
        assert_eq!(t.len(ListId::Free), 4);
        let a = t.pop_free().unwrap();
        let b = t.pop_free().unwrap();
        let c = t.pop_free().unwrap();
        t.push(ListId::Probation, a, true);
        t.push(ListId::Probation, b, true);
        t.push(ListId::Probation, c, false);
        // MRU..LRU: b a c
        assert_eq!(t.tail(ListId::Probation), c);
        t.touch(ListId::Probation, c);
        assert_eq!(t.tail(ListId::Probation), a);
        t.unlink(a);
        assert_eq!(t.tail(ListId::Probation), b);
        assert_eq!(t.len(ListId::Probation), 2);
        t.release(a);
        assert_eq!(t.len(ListId::Free), 2);
        assert_eq!(t.used(), 2);
        assert_eq!(t.global(a), 100 + a);
        assert_eq!(t.local(100 + a), Some(a));
        assert_eq!(t.local(99), None);
        assert_eq!(t.local(104), None);
        assert_eq!(std::mem::size_of::<Frame>(), 32);
    }
}
