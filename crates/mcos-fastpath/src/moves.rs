//! The in-flight move table (the MSHR of a cache): one slot per move under way.
//!
//! A slot remembers both ends of a move, so the completion can finish it without searching,
//! and it is what merges duplicate misses: a second request for a block already moving finds
//! the slot through the frame's `move_slot` and waits on the same move. Move ids carry a
//! generation so a stale completion can never finish the wrong move.

use mcos_core::MoveOp;
use mcos_core::limits::INFLIGHT_MOVES;

/// One move under way.
#[derive(Copy, Clone, Debug)]
pub struct Move {
    /// Directory tag of the block.
    pub tag: u64,
    /// Why.
    pub op: MoveOp,
    /// Source tier and local frame index.
    pub src_tier: u8,
    /// Source local frame index.
    pub src: u32,
    /// Destination tier.
    pub dst_tier: u8,
    /// Destination local frame index.
    pub dst: u32,
    /// Callers waiting on it beyond the first (merged misses).
    pub waiters: u16,
    /// Where the block's directory entry sat when the move started (`directory::NO_POS`:
    /// unknown), so the completion repoints it without a lookup.
    pub dir_pos: u32,
}

/// Fixed table of in-flight moves.
pub struct MoveTable {
    slots: Box<[Option<Move>]>,
    generation: Box<[u32]>,
    free: Box<[u16]>,
    free_len: usize,
}

const SLOT_BITS: u32 = 16;

impl Default for MoveTable {
    fn default() -> Self {
        Self::new()
    }
}

impl MoveTable {
    /// An empty table of `INFLIGHT_MOVES` slots.
    pub fn new() -> MoveTable {
        MoveTable {
            slots: vec![None; INFLIGHT_MOVES].into_boxed_slice(),
            generation: vec![0; INFLIGHT_MOVES].into_boxed_slice(),
            free: (0..INFLIGHT_MOVES as u16).rev().collect(),
            free_len: INFLIGHT_MOVES,
        }
    }

    /// Moves in flight.
    pub fn in_flight(&self) -> usize {
        INFLIGHT_MOVES - self.free_len
    }

    /// Whether every slot is busy (`start` would refuse).
    pub fn is_full(&self) -> bool {
        self.free_len == 0
    }

    /// Starts a move; returns (slot, move id), or None when every slot is busy.
    pub fn start(&mut self, m: Move) -> Option<(u16, u32)> {
        if self.free_len == 0 {
            return None;
        }
        self.free_len -= 1;
        let slot = self.free[self.free_len];
        self.slots[usize::from(slot)] = Some(m);
        Some((slot, self.id(slot)))
    }

    /// The move id of a busy slot.
    pub fn id(&self, slot: u16) -> u32 {
        self.generation[usize::from(slot)] << SLOT_BITS | u32::from(slot)
    }

    /// The move in `slot`.
    pub fn get_mut(&mut self, slot: u16) -> Option<&mut Move> {
        self.slots
            .get_mut(usize::from(slot))
            .and_then(|m| m.as_mut())
    }

    /// Whether the move with id `id` is still in flight.
    pub fn is_pending(&self, id: u32) -> bool {
        let slot = (id & ((1 << SLOT_BITS) - 1)) as usize;
        slot < INFLIGHT_MOVES && self.id(slot as u16) == id && self.slots[slot].is_some()
    }

    /// Finishes the move with id `id`; None for an unknown or stale id.
    pub fn finish(&mut self, id: u32) -> Option<Move> {
        let slot = (id & ((1 << SLOT_BITS) - 1)) as usize;
        if slot >= INFLIGHT_MOVES || self.id(slot as u16) != id {
            return None;
        }
        let m = self.slots[slot].take()?;
        self.generation[slot] = (self.generation[slot] + 1) & 0xffff;
        self.free[self.free_len] = slot as u16;
        self.free_len += 1;
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Move {
        Move {
            tag: 1,
            op: MoveOp::Promote,
            src_tier: 1,
            src: 2,
            dst_tier: 0,
            dst: 3,
            waiters: 0,
            dir_pos: crate::directory::NO_POS,
        }
    }

    #[test]
    fn ids_are_generational_and_slots_bounded() {
        let mut t = MoveTable::new();
        let (_, id) = t.start(m()).unwrap();
        assert!(t.finish(id).is_some());
        assert!(
            t.finish(id).is_none(),
            "a stale completion finishes nothing"
        );
        let ids: Vec<u32> = (0..INFLIGHT_MOVES)
            .map(|_| t.start(m()).unwrap().1)
            .collect();
        assert!(t.start(m()).is_none(), "full table refuses");
        assert_eq!(t.in_flight(), INFLIGHT_MOVES);
        for id in ids {
            assert!(t.finish(id).is_some());
        }
        assert_eq!(t.in_flight(), 0);
    }
}
