//! A shard wired to a zero-latency engine: every descriptor completes at once, successfully
//! unless the test says otherwise. Enough to drive the real executor without bytes.
#![allow(dead_code)]

use mcos_core::limits::MAX_TIERS;
use mcos_core::{
    BlockKey, Consumer, MoveCompletion, MoveDescriptor, MoveStatus, Namespace, PolicyInstaller,
    PolicyTable, policy_cell, ring,
};
use mcos_fastpath::{Access, Insert, Shard, ShardConfig};

pub struct Rig {
    pub shard: Shard,
    pub engine: Consumer<MoveDescriptor>,
    pub installer: PolicyInstaller,
    pub fail_next: Option<MoveStatus>,
    buf: Vec<MoveDescriptor>,
}

pub fn key(id: u64) -> BlockKey {
    static ROOT: std::sync::OnceLock<BlockKey> = std::sync::OnceLock::new();
    BlockKey::from_trace_id_under(
        *ROOT.get_or_init(|| Namespace::for_model("test").root()),
        id,
    )
}

impl Rig {
    pub fn new(tier_frames: &[u32]) -> Rig {
        Rig::with_table(tier_frames, PolicyTable::builtin(tier_frames.len()))
    }

    pub fn with_table(tier_frames: &[u32], table: PolicyTable) -> Rig {
        Rig::with_watermark(tier_frames, table, &vec![0; tier_frames.len()])
    }

    /// A rig whose tiers keep `free_watermark` frames free by demoting early.
    pub fn with_watermark(tier_frames: &[u32], table: PolicyTable, free_watermark: &[u32]) -> Rig {
        let (installer, mut readers) = policy_cell(table, 1);
        let (tx, rx) = ring(1024);
        let cfg = ShardConfig {
            shard: 0,
            tiers: tier_frames.iter().map(|&n| (0, n)).collect(),
            block_bytes: 4096,
            routes: [[0; MAX_TIERS]; MAX_TIERS],
            free_watermark: free_watermark.to_vec(),
            telemetry_shift: 0,
        };
        let shard = Shard::new(cfg, readers.remove(0), vec![tx], None);
        Rig {
            shard,
            engine: rx,
            installer,
            fail_next: None,
            buf: vec![MoveDescriptor::EMPTY; 64],
        }
    }

    /// Completes every pending descriptor.
    pub fn pump(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.engine.pop_batch(&mut self.buf);
            if n == 0 {
                return total;
            }
            total += n;
            for j in 0..n {
                let d = self.buf[j];
                let status = self.fail_next.take().unwrap_or(MoveStatus::Done);
                self.shard.complete(MoveCompletion {
                    move_id: d.move_id,
                    detail: 0,
                    bytes: d.len,
                    status,
                    engine: 0,
                });
            }
        }
    }

    /// Looks `id` up; on a miss inserts it (retrying while room is being made). Returns hit.
    pub fn touch(&mut self, id: u64) -> bool {
        let k = key(id);
        match self.shard.access(k, None) {
            Access::Hit { .. } => return true,
            Access::Wait { .. } => {
                self.pump();
                return true;
            }
            Access::Miss => {}
        }
        for _ in 0..8 {
            match self.shard.insert(k, 0) {
                Insert::Fill { tier, frame } => {
                    self.shard.commit_fill(k, tier, frame, true);
                    return false;
                }
                Insert::Retry => {
                    self.pump();
                }
                Insert::Present | Insert::Rejected(_) => return false,
            }
        }
        panic!("insert of {id} kept asking to retry");
    }
}
