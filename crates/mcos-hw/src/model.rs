//! The cycle-level model: the executable specification of `hw/rtl/mcos_hw_pipeline.sv`,
//! cycle for cycle at its ports. Its state is the RTL's architectural state (memories, stage
//! registers, forward registers); the RTL adds timing-only registers (the CLOCK window read a
//! stage early, the forward comparisons made in stage A, the scanned reference bits cleared the
//! cycle after an eviction's B, an aged fill's stamp written the cycle after its B) that do not
//! change any output.
//!
//! Each call of [`Pipeline::step`] is one clock cycle: first everything the RTL computes
//! combinationally from the current registers and memory read ports (the decision of the event
//! in stage B, the write-back of stage C, `in_ready`), then the clock edge: memory reads
//! return the contents from before this cycle's writes (read-first, as the RTL's
//! `always_ff` memories do), then every write lands.
//!
//! Stages, hazards and timing (also in the RTL's header):
//! - A: accept; issue reads of both directory banks, the four sketch rows, the class table.
//! - B: decide (compare 2 x 8 directory ways, count-min estimate, CLOCK scan); write the new directory entry, sketch counters and reference bits; the
//!   decision is registered and visible the next cycle (latency 2 cycles for every event).
//! - C: only after an INSERT that fills: read back the victim's directory location (the
//!   frame-table read B issued) and invalidate it; record the new block's location.
//! - II: 1 cycle for ACCESS, CLASS_WRITE and SWAP; 2 for INSERT (`in_ready` is low while an
//!   INSERT is in B, so its C never shares a cycle with another event's B: one write port
//!   per memory suffices).
//! - Hazards, two events on one set or counter: the directory way C invalidates in the cycle
//!   the next event's A reads it is masked in that event's B (forward register); a sketch
//!   counter B writes in the cycle the next event's A reads it is forwarded to that event's B.
//!   Reference bits are flip-flops, read and written in B only. Nothing stalls but the INSERT
//!   slot.
//! - Two tiers (`HwConfig::frames1 > 0`): one directory holds both tiers' blocks (an entry's
//!   frame is a global id, tier 1's after tier 0's); each tier has its own frame table, hand,
//!   free count and (aged) epoch and carried candidate. An INSERT that finds tier 0 full
//!   decides DEMOTE in B: tier 0's victim (its scan as for an eviction) is to move to a tier-1
//!   frame (a never-used one, else tier 1's own scan's victim, dropped); the block is not
//!   inserted (the software's retry). C invalidates the tier-1 victim's entry and reads the
//!   demoted block's entry through A's port (`in_ready` low: II 3); D emits the descriptor
//!   (move id, tag rebuilt from the entry and its set, frames, table epoch), one cycle after
//!   the decision. One move in flight: an INSERT that finds tier 0 full meanwhile decides
//!   WAIT. The block stays readable in tier 0 (a hit touches no reference bit or stamp of
//!   it). COMPLETE with the move's id (else STALE) repoints the entry to the tier-1 frame in
//!   B, records it in tier 1's frame table and frees the tier-0 frame, the next fill's
//!   (`in_ready` low while a COMPLETE is in B: II 2, the next A reads the written entry). No
//!   promotion (tier 1 is read in place) and no telemetry of tier-1 events.
//! - Telemetry port (`crate::telemetry`): a record decided in B (hit, miss, reject, evict) or
//!   C (admit) is staged and written into the ring the next cycle, or dropped and counted when
//!   the ring is full; B and C never share a cycle, so one staging register and one ring
//!   write port suffice. It adds no stall and no stage.

// The loops index several arrays by one bank, way or row number, as the RTL's do; iterators
// over one of them would hide the correspondence.
#![allow(clippy::needless_range_loop)]

use crate::config::{HwConfig, SCAN, WAYS};
use crate::event::{CODES, Code, Decision, Descriptor, Event, Op, Output};
use crate::telemetry::{self, PortIn, Record, Reg, Regs};
use mcos_core::{AGE_BITS, AGE_EPOCHS_PER_TIER, Replacement, SampleKind};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct DirEntry {
    valid: bool,
    rem: u64,
    frame: u32,
}

/// Location of a directory entry: bank, way, set.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Loc {
    bank: u32,
    way: u32,
    set: u32,
}

/// Counts of what the pipeline did, for II and utilisation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Cycles stepped.
    pub cycles: u64,
    /// Events accepted, per `Op as usize`.
    pub accepted: [u64; 5],
    /// Cycles an event was offered but `in_ready` was low.
    pub stall_cycles: u64,
    /// Decisions per `Code as usize`.
    pub decisions: [u64; CODES],
    /// Descriptors emitted.
    pub descriptors: u64,
}

/// The move in flight (two tiers; at most one).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct MoveReg {
    busy: bool,
    /// Generation: the move id is `gen << 16` (slot 0, as the software's move table numbers
    /// its first slot).
    generation: u16,
    /// Source frame (tier 0) and destination frame (global id, tier 1).
    src: u32,
    dst: u32,
    /// Where the block's directory entry sits (read from tier 0's frame table in C).
    loc: Loc,
    /// Table epoch when decided.
    epoch: u16,
}

/// One tier's victim scan: what it found and where it leaves the hand.
#[derive(Copy, Clone, Debug)]
struct Scan {
    /// CLOCK: offset from the hand of the first unreferenced frame in the window.
    found: Option<u32>,
    /// Victim (local index in the tier).
    victim: u32,
    /// One past the window's last frame (local).
    window_end: u32,
    /// Aged: the runner-up, carried to the next scan.
    carry_next: Option<u32>,
}

/// One shard's decision pipeline.
pub struct Pipeline {
    cfg: HwConfig,
    rem_bits: u32,
    // Memories.
    dir: Vec<DirEntry>,
    frame_table: Vec<Loc>,
    // Tier 1's frame table (two tiers).
    frame_table1: Vec<Loc>,
    sketch: [Vec<u8>; 4],
    classes: [u8; 512],
    // Memory read registers.
    dir_q: [[DirEntry; WAYS as usize]; 2],
    sk_q: [u8; 4],
    cls_q: u8,
    ft_q: Loc,
    ft1_q: Loc,
    // Stage B.
    b_valid: bool,
    b_op: Op,
    b_tag: u64,
    b_set: [u32; 2],
    b_sk: [u32; 4],
    b_move_id: u32,
    // Stage C.
    c_valid: bool,
    c_evict: bool,
    c_frame: u32,
    c_loc: Loc,
    // Stage C of a demoting INSERT (tier 1's victim evicted with it), and stage D with the
    // directory entry C read at the demoted block's location.
    c_demote: bool,
    c_evict1: bool,
    d_valid: bool,
    d_entry: DirEntry,
    mv: MoveReg,
    // Tier 0's frame released by the last completion (the software's free-list head).
    rel: Option<u32>,
    // Policy-table epoch (the descriptors' field): 1 out of reset, +1 per SWAP.
    table_epoch: u16,
    // Forward registers.
    inv_q: bool,
    inv_loc_q: Loc,
    skw_q: bool,
    skw_addr_q: [u32; 4],
    skw_data_q: [u8; 4],
    // State: per frame (global id) a reference bit or aged stamp; per tier the aged epoch,
    // writes towards the next epoch, the candidate carried from the last scan (local), the
    // hand and the never-used frames left.
    refbits: Vec<bool>,
    stamps: Vec<u8>,
    epoch: [u8; 2],
    age_writes: [u32; 2],
    carry: [Option<u32>; 2],
    hand: [u32; 2],
    free_cnt: [u32; 2],
    active_bank: bool,
    out: Option<Decision>,
    stats: PipelineStats,
    // Telemetry: per frame, whether its block's key is sampled; the event in B's sample
    // zeros and class; B's sampled decision carried to C; the kinds mask, shift and table
    // epoch; the staged record; the ring, its registers and the read port's register.
    samp: Vec<bool>,
    b_sz: u8,
    b_class: u8,
    c_samp: bool,
    tel_kinds: u8,
    tel_shift: u8,
    tel_epoch: u8,
    tel_stage: Option<(u128, Option<u32>)>,
    ring: Vec<u128>,
    head: u32,
    tail: u32,
    dropped: u32,
    rd_q: u128,
}

/// The directory set of `tag` in each bank: its low and its high `set_bits` bits.
pub(crate) fn directory_sets(cfg: &HwConfig, tag: u64) -> [u32; 2] {
    let tag = if cfg.tag_bits >= 64 {
        tag
    } else {
        tag & ((1u64 << cfg.tag_bits) - 1)
    };
    let s = cfg.set_bits;
    let mask = (1u64 << s) - 1;
    [
        (tag & mask) as u32,
        ((tag >> (cfg.tag_bits - s)) & mask) as u32,
    ]
}

/// What one cycle did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The offered event was accepted (the caller offers the next one next cycle).
    pub accepted: bool,
    /// `out_valid` was high this cycle with this decision.
    pub output: Option<Output>,
    /// `desc_valid` was high this cycle with this descriptor.
    pub descriptor: Option<Descriptor>,
}

impl Pipeline {
    /// A pipeline just out of reset: every frame free, the built-in class entries active.
    pub fn new(cfg: HwConfig) -> Pipeline {
        let sets = cfg.sets() as usize;
        let width = 1usize << cfg.sketch_bits;
        Pipeline {
            cfg,
            rem_bits: cfg.tag_bits - cfg.set_bits,
            dir: vec![DirEntry::default(); 2 * WAYS as usize * sets],
            frame_table: vec![Loc::default(); cfg.frames as usize],
            frame_table1: vec![Loc::default(); cfg.frames1 as usize],
            sketch: [
                vec![0; width],
                vec![0; width],
                vec![0; width],
                vec![0; width],
            ],
            classes: [0; 512],
            dir_q: [[DirEntry::default(); WAYS as usize]; 2],
            sk_q: [0; 4],
            cls_q: 0,
            ft_q: Loc::default(),
            ft1_q: Loc::default(),
            b_valid: false,
            b_op: Op::Access,
            b_tag: 0,
            b_set: [0; 2],
            b_sk: [0; 4],
            b_move_id: 0,
            c_valid: false,
            c_evict: false,
            c_frame: 0,
            c_loc: Loc::default(),
            c_demote: false,
            c_evict1: false,
            d_valid: false,
            d_entry: DirEntry::default(),
            mv: MoveReg::default(),
            rel: None,
            table_epoch: 1,
            inv_q: false,
            inv_loc_q: Loc::default(),
            skw_q: false,
            skw_addr_q: [0; 4],
            skw_data_q: [0; 4],
            refbits: vec![false; cfg.all_frames() as usize],
            stamps: vec![0; cfg.all_frames() as usize],
            epoch: [0; 2],
            age_writes: [0; 2],
            carry: [None; 2],
            hand: [0; 2],
            free_cnt: [cfg.frames, cfg.frames1],
            active_bank: false,
            out: None,
            stats: PipelineStats::default(),
            samp: vec![false; cfg.frames as usize],
            b_sz: 0,
            b_class: 0,
            c_samp: false,
            tel_kinds: (1 << telemetry::KINDS) - 1,
            tel_shift: 0,
            tel_epoch: 1,
            tel_stage: None,
            ring: vec![0; cfg.tel_depth() as usize],
            head: 0,
            tail: 0,
            dropped: 0,
            rd_q: 0,
        }
    }

    /// The telemetry port's registers this cycle.
    pub fn tel_regs(&self) -> Regs {
        Regs {
            head: self.head,
            tail: self.tail,
            dropped: self.dropped,
        }
    }

    /// The telemetry read port's data this cycle (the record at the index read last cycle).
    pub fn tel_read_data(&self) -> u128 {
        self.rd_q
    }

    /// The geometry.
    pub fn config(&self) -> HwConfig {
        self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    fn tag_mask(&self) -> u64 {
        if self.cfg.tag_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.cfg.tag_bits) - 1
        }
    }

    fn sets_of(&self, tag: u64) -> [u32; 2] {
        directory_sets(&self.cfg, tag)
    }

    fn rems_of(&self, tag: u64) -> [u64; 2] {
        let tag = tag & self.tag_mask();
        let rem_mask = if self.rem_bits >= 64 {
            u64::MAX
        } else {
            (1u64 << self.rem_bits) - 1
        };
        [tag >> self.cfg.set_bits, tag & rem_mask]
    }

    fn dir_index(&self, bank: u32, way: u32, set: u32) -> usize {
        ((bank * WAYS + way) * self.cfg.sets() + set) as usize
    }

    /// Valid directory entries (a check on the directory: it must equal the resident blocks).
    pub fn directory_entries(&self) -> usize {
        self.dir.iter().filter(|e| e.valid).count()
    }

    /// Whether the pipeline holds no event (every decision has left it).
    pub fn idle(&self) -> bool {
        !self.b_valid && !self.c_valid && !self.c_demote && !self.d_valid && self.out.is_none()
    }

    /// Whether a move is in flight (a descriptor emitted, its completion not yet seen).
    pub fn move_in_flight(&self) -> bool {
        self.mv.busy
    }

    /// Tier `t`'s first global frame id and its frame count.
    fn tier_span(&self, t: usize) -> (u32, u32) {
        if t == 0 {
            (0, self.cfg.frames)
        } else {
            (self.cfg.frames, self.cfg.frames1)
        }
    }

    /// Aged: writes frame `i`'s stamp (global id; the epoch of its tier, or with `old` 64
    /// epochs before it) and counts the write towards that tier's next epoch.
    fn stamp(&mut self, i: u32, old: bool) {
        let t = usize::from(i >= self.cfg.frames);
        let mask = (1u8 << AGE_BITS) - 1;
        let epoch = self.epoch[t];
        self.stamps[i as usize] = if old {
            epoch.wrapping_sub(1 << (AGE_BITS - 1)) & mask
        } else {
            epoch
        };
        self.age_writes[t] += 1;
        if self.age_writes[t] >= (self.tier_span(t).1 / AGE_EPOCHS_PER_TIER).max(1) {
            self.age_writes[t] = 0;
            self.epoch[t] = epoch.wrapping_add(1) & mask;
        }
    }

    /// Tier `t`'s bounded victim scan from its hand (CLOCK: the first unreferenced frame of
    /// the window, else the hand's; aged: the carried candidate and the window, oldest first,
    /// ties to the carried one and then the lowest frame, the runner-up carried on).
    fn scan(&self, t: usize) -> Scan {
        let (base, frames) = self.tier_span(t);
        let hand = self.hand[t];
        let window_end = (hand + SCAN).min(frames);
        if self.cfg.replacement != Replacement::Aged {
            let found =
                (0..SCAN).find(|&k| hand + k < frames && !self.refbits[(base + hand + k) as usize]);
            return Scan {
                found,
                victim: hand + found.unwrap_or(0),
                window_end,
                carry_next: None,
            };
        }
        let mask = (1u8 << AGE_BITS) - 1;
        let epoch = self.epoch[t];
        let age = |i: u32| epoch.wrapping_sub(self.stamps[(base + i) as usize]) & mask;
        let mut best: Option<(u8, u32)> = None;
        let mut second: Option<(u8, u32)> = None;
        let carried = self.carry[t].filter(|&c| !(hand..window_end).contains(&c));
        for i in carried.into_iter().chain(hand..window_end) {
            let a = age(i);
            match best {
                Some((b, _)) if a <= b => {
                    if second.is_none_or(|(s, _)| a > s) {
                        second = Some((a, i));
                    }
                }
                _ => {
                    second = best;
                    best = Some((a, i));
                }
            }
        }
        Scan {
            found: None,
            victim: best.map_or(hand, |(_, i)| i),
            window_end,
            carry_next: second.map(|(_, i)| i),
        }
    }

    /// The clock edge of an eviction by `s` from tier `t`: the hand moves on (aged: past the
    /// window, the runner-up carried; CLOCK: past the victim, the window's reference bits
    /// before it cleared).
    fn advance(&mut self, t: usize, s: &Scan) {
        let (base, frames) = self.tier_span(t);
        if self.cfg.replacement == Replacement::Aged {
            self.hand[t] = if s.window_end >= frames {
                0
            } else {
                s.window_end
            };
            self.carry[t] = s.carry_next;
            return;
        }
        let stop = s.found.unwrap_or(SCAN);
        for k in 0..stop {
            let idx = self.hand[t] + k;
            if idx < frames {
                self.refbits[(base + idx) as usize] = false;
            }
        }
        self.hand[t] = if s.victim == frames - 1 {
            0
        } else {
            s.victim + 1
        };
    }

    /// The block tag a directory entry at `loc` stands for (the set index supplies the bits
    /// the entry does not hold).
    fn tag_at(&self, e: DirEntry, loc: Loc) -> u64 {
        let s = self.cfg.set_bits;
        if loc.bank == 0 {
            (e.rem << s) | u64::from(loc.set)
        } else {
            (u64::from(loc.set) << (self.cfg.tag_bits - s)) | e.rem
        }
    }

    /// One clock cycle with `input` offered (`in_valid` high) or not, the telemetry port
    /// idle.
    pub fn step(&mut self, input: Option<&Event>) -> Cycle {
        self.step_port(input, PortIn::default())
    }

    /// One clock cycle with `input` offered or not and `port` driven on the telemetry port.
    pub fn step_port(&mut self, input: Option<&Event>, port: PortIn) -> Cycle {
        let cycle = self.stats.cycles;
        self.stats.cycles += 1;
        let output = self.out.map(|decision| Output { cycle, decision });
        // Stage D of a demotion: the descriptor, from the entry C read.
        let descriptor = self.d_valid.then(|| Descriptor {
            move_id: u32::from(self.mv.generation) << 16,
            tag: self.tag_at(self.d_entry, self.mv.loc),
            src_frame: self.mv.src,
            dst_frame: self.mv.dst,
            epoch: self.mv.epoch,
        });
        if descriptor.is_some() {
            self.stats.descriptors += 1;
        }
        // An INSERT in B holds the next event for its C; a COMPLETE in B writes the directory
        // the next event's A would read; a demotion's C reads the directory through A's port.
        let in_ready =
            !(self.c_demote || self.b_valid && matches!(self.b_op, Op::Insert | Op::Complete));
        let accept = input.filter(|_| in_ready);
        if input.is_some() && !in_ready {
            self.stats.stall_cycles += 1;
        }

        // ---- stage B (combinational), from the registers as they are this cycle.
        let (b_valid, b_op) = (self.b_valid, self.b_op);
        let mut valid = [[false; WAYS as usize]; 2];
        let mut hit = false;
        let mut hit_frame = 0u32;
        let mut cnt = [0u32; 2];
        let rem = self.rems_of(self.b_tag);
        for b in 0..2 {
            for w in 0..WAYS as usize {
                let e = self.dir_q[b][w];
                let inv = self.inv_loc_q;
                valid[b][w] = e.valid
                    && !(self.inv_q
                        && inv.bank == b as u32
                        && inv.way == w as u32
                        && inv.set == self.b_set[b]);
                if valid[b][w] && e.rem == rem[b] {
                    hit = true;
                    hit_frame |= e.frame;
                }
                cnt[b] += u32::from(valid[b][w]);
            }
        }
        let mut sk_c = [0u8; 4];
        let mut est = 15u8;
        for r in 0..4 {
            sk_c[r] = if self.skw_q && self.skw_addr_q[r] == self.b_sk[r] {
                self.skw_data_q[r]
            } else {
                self.sk_q[r]
            };
            est = est.min(sk_c[r]);
        }
        let target = if est == 15 { 15 } else { est + 1 };
        let sk_wd = sk_c.map(|c| c.max(target));

        let bank_n = if cnt[0] <= cnt[1] { 0 } else { 1 };
        let dir_full = cnt[bank_n] == WAYS;
        let way_n = (0..WAYS as usize).find(|&w| !valid[bank_n][w]).unwrap_or(0);

        let aged = self.cfg.replacement == Replacement::Aged;
        let two = self.cfg.frames1 > 0;
        let scan0 = self.scan(0);
        let victim = scan0.victim;
        // Tier 1's frame for a demotion: a never-used one, else its own scan's victim.
        let evict1 = two && self.free_cnt[1] == 0;
        let scan1 = if evict1 { Some(self.scan(1)) } else { None };
        let dst1 = match scan1 {
            Some(s) => s.victim,
            None => self.free_cnt[1].wrapping_sub(1),
        };

        let thresh = self.cls_q & 0xf;
        let is_lru = self.cls_q & 0x10 != 0;
        let need_scan = self.free_cnt[0] == 0 && self.rel.is_none();
        let admit_ok = thresh == 0 || est >= thresh;
        let mut frame = if need_scan {
            victim
        } else if let Some(r) = self.rel {
            r
        } else {
            self.free_cnt[0].wrapping_sub(1)
        };
        let mut fill = false;
        let mut demote = false;
        // COMPLETE: the id names the move in flight.
        let completes = self.mv.busy && self.b_move_id == u32::from(self.mv.generation) << 16;
        let code = match b_op {
            Op::Access => {
                frame = if hit { hit_frame } else { 0 };
                if hit { Code::Hit } else { Code::Miss }
            }
            Op::Insert => {
                let code = if hit {
                    Code::Present
                } else if !admit_ok {
                    Code::RejectAdmission
                } else if dir_full {
                    Code::RejectDirectory
                } else if need_scan && two {
                    if self.mv.busy {
                        frame = 0;
                        Code::Wait
                    } else {
                        demote = true;
                        Code::Demote
                    }
                } else {
                    fill = true;
                    if need_scan {
                        Code::FillEvict
                    } else {
                        Code::Fill
                    }
                };
                if !fill && !demote {
                    frame = if hit { hit_frame } else { 0 };
                }
                code
            }
            Op::ClassWrite | Op::Swap => {
                frame = 0;
                Code::Ack
            }
            Op::Complete => {
                if completes {
                    frame = self.mv.dst;
                    Code::Ack
                } else {
                    frame = 0;
                    Code::Stale
                }
            }
        };
        let fill = fill && b_valid;
        let demote = demote && b_valid;
        let completes = completes && b_valid && b_op == Op::Complete;
        let sk_we = b_valid && b_op == Op::Access;

        // ---- telemetry (combinational): the record B or C decides this cycle.
        let tel_sampled = self.b_sz >= self.tel_shift.min(40);
        let kind_on = |k: SampleKind| self.tel_kinds & (1 << k as u8) != 0;
        let rec = |kind: SampleKind, tag: u64, frame: u32, class: u8, value: u8| Record {
            kind: kind as u8,
            tag,
            frame,
            class,
            epoch: self.tel_epoch,
            value,
        };
        let mut tel_rec = None;
        if b_valid {
            let r = match b_op {
                Op::Access if hit => Some((
                    SampleKind::Hit,
                    tel_sampled,
                    rec(SampleKind::Hit, self.b_tag, hit_frame, 0, 0),
                )),
                Op::Access => Some((
                    SampleKind::Miss,
                    tel_sampled,
                    rec(SampleKind::Miss, self.b_tag, 0, 0, 0),
                )),
                Op::Insert => match code {
                    Code::RejectAdmission | Code::RejectDirectory => {
                        let why = if code == Code::RejectAdmission { 0 } else { 3 };
                        Some((
                            SampleKind::Reject,
                            tel_sampled,
                            rec(SampleKind::Reject, self.b_tag, 0, self.b_class, why),
                        ))
                    }
                    // Written only if the victim's key was sampled when it filled its frame:
                    // the frame's bit, read when the staged record is written (below).
                    Code::FillEvict => Some((
                        SampleKind::Evict,
                        true,
                        rec(SampleKind::Evict, 0, frame, 0, 0),
                    )),
                    _ => None,
                },
                _ => None,
            };
            tel_rec = r.filter(|&(k, s, _)| s && kind_on(k)).map(|(_, _, r)| r);
        }
        if self.c_valid && self.c_samp && kind_on(SampleKind::Admit) {
            debug_assert!(tel_rec.is_none(), "B and C never share a cycle");
            tel_rec = Some(rec(
                SampleKind::Admit,
                self.b_tag,
                self.c_frame,
                self.b_class,
                0,
            ));
        }
        let tel_rec = tel_rec.map(|r| {
            let evict = (r.kind == SampleKind::Evict as u8).then_some(r.frame);
            (r.to_bits(&self.cfg), evict)
        });

        // ---- stage C (combinational): the victim's old directory location.
        // A demotion's C invalidates tier 1's victim instead (and reads the demoted block's
        // entry for D).
        let c_inv = (self.c_valid && self.c_evict) || (self.c_demote && self.c_evict1);
        let victim_loc = if self.c_demote { self.ft1_q } else { self.ft_q };
        let epoch_now = self.table_epoch;

        let (b_set, b_sk) = (self.b_set, self.b_sk);
        // ---- clock edge, telemetry: the read port reads before the ring write lands; the
        // staged record goes in unless the ring is full; the consumer's register write.
        let depth = self.cfg.tel_depth();
        let ptr_mask = 2 * depth - 1;
        if let Some(i) = port.read {
            self.rd_q = self.ring[(i & (depth - 1)) as usize];
        }
        if let Some((r, evict)) = self.tel_stage
            && evict.is_none_or(|f| self.samp[f as usize])
        {
            if self.head.wrapping_sub(self.tail) & ptr_mask >= depth {
                self.dropped = self.dropped.wrapping_add(1);
            } else {
                self.ring[(self.head & (depth - 1)) as usize] = r;
                self.head = (self.head + 1) & ptr_mask;
            }
        }
        self.tel_stage = tel_rec;
        match port.write {
            Some((Reg::Tail, v)) => self.tail = v & ptr_mask,
            Some((Reg::Shift, v)) => {
                self.tel_shift = (v & ((1 << telemetry::SHIFT_BITS) - 1)) as u8
            }
            None => {}
        }
        // C records the new block's bit (after the staged eviction above read the old one).
        if self.c_valid {
            self.samp[self.c_frame as usize] = self.c_samp;
        }
        self.c_samp = tel_sampled;
        // ---- clock edge, stage A: memory reads, done before this cycle's writes land (the
        // RTL's memories return the old contents on a same-cycle write).
        if let Some(e) = accept {
            let sets = self.sets_of(e.tag());
            for b in 0..2 {
                for w in 0..WAYS as usize {
                    self.dir_q[b][w] = self.dir[self.dir_index(b as u32, w as u32, sets[b])];
                }
            }
            let width_mask = (1u64 << self.cfg.sketch_bits) - 1;
            let mut sk_idx = [0u32; 4];
            for (r, idx) in sk_idx.iter_mut().enumerate() {
                *idx = ((e.sketch_hash >> (16 * r)) & width_mask) as u32;
                self.sk_q[r] = self.sketch[r][*idx as usize];
            }
            self.cls_q = self.classes[usize::from(self.active_bank) * 256 + usize::from(e.class)];
            if e.op == Op::ClassWrite {
                let shadow = usize::from(!self.active_bank) * 256 + usize::from(e.class);
                let thresh = ((e.entry >> 6) & 0xf) as u8;
                let lru = ((e.entry >> 15) & 0x3) != 0;
                self.classes[shadow] = thresh | if lru { 0x10 } else { 0 };
            }
            self.b_set = sets;
            self.b_sk = sk_idx;
            self.b_tag = e.tag() & self.tag_mask();
            self.b_op = e.op;
            self.b_sz = e.sample_zeros;
            self.b_class = e.class;
            self.b_move_id = e.move_id();
            if e.op == Op::Swap {
                self.table_epoch = self.table_epoch.wrapping_add(1);
                self.active_bank = !self.active_bank;
                // The installed table's kinds mask and epoch, from the next event on.
                self.tel_kinds = (e.entry as u8) & ((1 << telemetry::KINDS) - 1);
                self.tel_epoch = self.tel_epoch.wrapping_add(1);
            }
            self.stats.accepted[e.op as usize] += 1;
        }
        let ft_read = self.frame_table.get(frame as usize).copied();
        let ft1_read = if demote {
            self.frame_table1.get(dst1 as usize).copied()
        } else {
            None
        };
        // Demotion's C: the demoted block's entry, read before this cycle's writes land.
        if self.c_demote {
            let loc = self.ft_q;
            self.d_entry = self.dir[self.dir_index(loc.bank, loc.way, loc.set)];
            self.mv.loc = loc;
        }

        // ---- clock edge: writes.
        if fill {
            let i = self.dir_index(bank_n as u32, way_n as u32, b_set[bank_n]);
            self.dir[i] = DirEntry {
                valid: true,
                rem: rem[bank_n],
                frame,
            };
        }
        if c_inv {
            let i = self.dir_index(victim_loc.bank, victim_loc.way, victim_loc.set);
            self.dir[i] = DirEntry::default();
        }
        if self.c_valid {
            self.frame_table[self.c_frame as usize] = self.c_loc;
        }
        if completes {
            // The entry stays where it is and names the tier-1 frame; tier 1's frame table
            // records it.
            let loc = self.mv.loc;
            let i = self.dir_index(loc.bank, loc.way, loc.set);
            self.dir[i] = DirEntry {
                valid: true,
                rem: self.d_entry.rem,
                frame: self.mv.dst,
            };
            self.frame_table1[(self.mv.dst - self.cfg.frames) as usize] = loc;
        }
        if sk_we {
            for r in 0..4 {
                self.sketch[r][b_sk[r] as usize] = sk_wd[r];
            }
        }
        // Forward registers.
        self.skw_q = sk_we;
        self.skw_addr_q = b_sk;
        self.skw_data_q = sk_wd;
        self.inv_q = c_inv;
        self.inv_loc_q = victim_loc;
        // Reference bits, hands, free counts. A hit on the block being demoted reads it where
        // it is and leaves its frame alone (the software touches no moving frame).
        let hit_moving = self.mv.busy && hit_frame == self.mv.src;
        if b_valid && b_op == Op::Access && hit && !hit_moving {
            if aged {
                self.stamp(hit_frame, false);
            } else {
                self.refbits[hit_frame as usize] = true;
            }
        }
        if fill {
            if need_scan {
                self.advance(0, &scan0);
            } else if self.rel.is_some() {
                self.rel = None;
            } else {
                self.free_cnt[0] -= 1;
            }
            if aged {
                // LRU-end insertion: stamped 64 epochs old and carried (the next victim).
                self.stamp(frame, is_lru);
                if is_lru {
                    self.carry[0] = Some(frame);
                }
            } else {
                // A new block starts unreferenced; LRU-end insertion makes it the next victim.
                self.refbits[frame as usize] = false;
                if is_lru {
                    self.hand[0] = frame;
                }
            }
        }
        if demote {
            self.advance(0, &scan0);
            let dst = self.cfg.frames + dst1;
            match scan1 {
                Some(s1) => {
                    // Tier 1's victim is dropped: its frame's state is cleared, as the
                    // software's release clears it.
                    self.advance(1, &s1);
                    self.refbits[dst as usize] = false;
                    self.stamps[dst as usize] = 0;
                }
                None => self.free_cnt[1] -= 1,
            }
            self.mv = MoveReg {
                busy: true,
                src: victim,
                dst,
                epoch: epoch_now,
                ..self.mv
            };
        }
        if completes {
            self.refbits[self.mv.dst as usize] = false;
            self.rel = Some(self.mv.src);
            self.mv.busy = false;
            self.mv.generation = self.mv.generation.wrapping_add(1);
        }
        // B -> C
        self.c_valid = fill;
        self.c_evict = fill && need_scan;
        self.c_frame = frame;
        self.c_loc = Loc {
            bank: bank_n as u32,
            way: way_n as u32,
            set: b_set[bank_n],
        };
        if let Some(loc) = ft_read {
            self.ft_q = loc;
        }
        if let Some(loc) = ft1_read {
            self.ft1_q = loc;
        }
        self.d_valid = self.c_demote;
        self.c_demote = demote;
        self.c_evict1 = demote && evict1;
        // Output register.
        self.out = b_valid.then_some(Decision { code, frame });
        if b_valid {
            self.stats.decisions[code as usize] += 1;
        }
        self.b_valid = accept.is_some();
        Cycle {
            accepted: accept.is_some(),
            output,
            descriptor,
        }
    }
}
