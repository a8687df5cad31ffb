//! A serving-engine model for replays: the queue a real engine would have at a given load.
//!
//! One prefill engine serves requests first come, first served. A request arrives at its trace
//! timestamp and waits in the queue; when the engine is free it starts: its blocks are read in
//! prompt order (hits cost nothing) and the tokens of the blocks that missed are prefilled at
//! `prefill_tokens_per_s`, which is how long the engine stays busy. Decode is not modelled (a
//! disaggregated prefill instance, as in Mooncake). The order of block accesses is the trace's,
//! so a policy's hits with and without intents are comparable one to one; what the model adds
//! is the queue: with `queue_intents`, each request's block list is announced to the policy
//! when it is queued (a finite, honest future: every announced block is read when the request
//! starts), and with `session_intents`, a conversation's blocks are announced as done when its
//! last request finishes. Conversations and their ends are read from the trace (a request
//! continues the conversation whose last prompt's full blocks it re-sends; a conversation ends
//! when no later request continues it): the trace stands in for what the application knows.
//!
//! Reported: utilisation (busy time over the span from first arrival to last completion), the
//! time-average queue length (total waiting time over the span, Little's law on the sample
//! path) and the mean wait.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use crate::policy::CachePolicy;
use crate::simulate::ReplayCounts;
use crate::tiered::{TieredResult, replay_tiered};
use crate::trace::Request;
use mcos_brain::Placement;

/// The engine and which intents reach the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeConfig {
    /// Prefill throughput of the engine, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Tokens per block (for prefill work and token counts).
    pub block_tokens: u32,
    /// Announce queued requests' blocks.
    pub queue_intents: bool,
    /// Announce ended sessions' blocks.
    pub session_intents: bool,
}

/// What a served replay measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServeStats {
    /// Busy time over the span.
    pub utilisation: f64,
    /// Time-average number of requests waiting.
    pub mean_queue_len: f64,
    /// Longest queue seen at an arrival.
    pub max_queue_len: usize,
    /// Mean wait from arrival to start, seconds.
    pub mean_wait_s: f64,
    /// Prefill seconds the engine spent (tokens that missed over the throughput).
    pub prefill_s: f64,
    /// First arrival to last completion, seconds.
    pub span_s: f64,
}

/// Conversation structure read from the trace: for each request, the conversation it belongs
/// to, whether it is that conversation's last request, and the blocks the conversation owns
/// (first read by one of its requests; shared prefixes belong to whoever read them first).
struct Sessions {
    last: Vec<bool>,
    owned: Vec<Vec<u64>>,
}

fn sessions(requests: &[Request], block_tokens: u32) -> Sessions {
    let bt = u64::from(block_tokens.max(1));
    let mut conv_of_tail: HashMap<u64, usize> = HashMap::new();
    let mut conv_of_req = Vec::with_capacity(requests.len());
    let mut last_req_of_conv: Vec<usize> = Vec::new();
    let mut owner: HashMap<u64, usize> = HashMap::new();
    for (i, r) in requests.iter().enumerate() {
        let conv = r
            .hash_ids
            .iter()
            .rev()
            .find_map(|id| conv_of_tail.get(id).copied())
            .unwrap_or_else(|| {
                last_req_of_conv.push(i);
                last_req_of_conv.len() - 1
            });
        last_req_of_conv[conv] = i;
        conv_of_req.push(conv);
        for &id in &r.hash_ids {
            owner.entry(id).or_insert(conv);
        }
        let full = (u64::from(r.input_length) / bt) as usize;
        if full > 0 && full <= r.hash_ids.len() {
            conv_of_tail.insert(r.hash_ids[full - 1], conv);
        }
    }
    let mut owned = vec![Vec::new(); requests.len()];
    let mut last = vec![false; requests.len()];
    for (i, r) in requests.iter().enumerate() {
        let conv = conv_of_req[i];
        if last_req_of_conv[conv] == i {
            last[i] = true;
            owned[i] = r
                .hash_ids
                .iter()
                .copied()
                .filter(|id| owner.get(id) == Some(&conv))
                .collect();
        }
    }
    Sessions { last, owned }
}

/// Replays `requests` (sorted by timestamp) through the engine model against `policy`.
pub fn serve(
    requests: &[Request],
    policy: &mut dyn CachePolicy,
    cfg: &ServeConfig,
) -> (ReplayCounts, ServeStats) {
    let tps = cfg.prefill_tokens_per_s.max(1.0);
    let sess = cfg
        .session_intents
        .then(|| sessions(requests, cfg.block_tokens));
    let mut counts = ReplayCounts::default();
    let mut engine = Fcfs::new(requests);
    while let Some((i, start)) = engine.start_next(|q, _| {
        if cfg.queue_intents {
            policy.request_queued(&requests[q].hash_ids);
        }
    }) {
        if cfg.queue_intents {
            policy.request_started(&requests[i].hash_ids);
        }
        let before = counts.hit_tokens;
        let tokens_before = counts.prompt_tokens;
        counts.record(policy, &requests[i], cfg.block_tokens);
        let missed = (counts.prompt_tokens - tokens_before) - (counts.hit_tokens - before);
        engine.finish(start, missed as f64 / tps);
        if let Some(s) = &sess
            && s.last[i]
        {
            policy.session_ended(&s.owned[i]);
        }
    }
    (counts, engine.stats())
}

/// One FCFS prefill engine over requests sorted by arrival: its queue, its clock and the
/// statistics of both (shared by [`serve`] and [`serve_tiered`]).
struct Fcfs<'a> {
    requests: &'a [Request],
    queue: VecDeque<usize>,
    /// The next request not yet arrived in the queue.
    next: usize,
    /// When the engine is next free, seconds.
    free_at: f64,
    busy: f64,
    wait_total: f64,
    max_queue: usize,
    first_arrival: f64,
}

impl<'a> Fcfs<'a> {
    fn new(requests: &'a [Request]) -> Fcfs<'a> {
        let mut e = Fcfs {
            requests,
            queue: VecDeque::new(),
            next: 0,
            free_at: 0.0,
            busy: 0.0,
            wait_total: 0.0,
            max_queue: 0,
            first_arrival: 0.0,
        };
        if !requests.is_empty() {
            e.first_arrival = e.arrival(0);
        }
        e
    }

    fn arrival(&self, i: usize) -> f64 {
        self.requests[i].timestamp_ms as f64 / 1000.0
    }

    /// Queues every request that arrived by the time the engine is next free (calling
    /// `queued(index, arrival)` for each, in arrival order), then starts the oldest queued one:
    /// its index and start time. None once every request was served.
    fn start_next(&mut self, mut queued: impl FnMut(usize, f64)) -> Option<(usize, f64)> {
        if self.queue.is_empty() {
            if self.next >= self.requests.len() {
                return None;
            }
            self.free_at = self.free_at.max(self.arrival(self.next));
        }
        while self.next < self.requests.len() && self.arrival(self.next) <= self.free_at {
            self.max_queue = self.max_queue.max(self.queue.len());
            self.queue.push_back(self.next);
            queued(self.next, self.arrival(self.next));
            self.next += 1;
        }
        // Not empty: it held a request, or the engine waited for the next arrival.
        let i = self.queue.pop_front()?;
        let start = self.free_at.max(self.arrival(i));
        self.wait_total += start - self.arrival(i);
        Some((i, start))
    }

    /// The request started at `start` kept the engine busy for `service` seconds.
    fn finish(&mut self, start: f64, service: f64) {
        self.busy += service;
        self.free_at = start + service;
    }

    fn stats(&self) -> ServeStats {
        let span = (self.free_at - self.first_arrival).max(1e-9);
        ServeStats {
            utilisation: self.busy / span,
            mean_queue_len: self.wait_total / span,
            max_queue_len: self.max_queue,
            mean_wait_s: self.wait_total / self.requests.len().max(1) as f64,
            prefill_s: self.busy,
            span_s: span,
        }
    }
}

/// Staging in a served tiered replay (SGLang HiCache's prefetch for queued requests).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageConfig {
    /// Move queued requests' blocks up from lower tiers while they wait.
    pub enabled: bool,
    /// Most staged blocks not yet read (a quarter of tier 0, as mcos's lookahead window).
    pub budget_blocks: usize,
}

/// As [`serve`], over a tier hierarchy with time accounted by `placement`: a request's service
/// time is the recompute time of its missed tokens plus the fetch time of its hits below tier
/// 0 (what a hit costs, consistent with `saved_seconds`: a fetch slower than recomputing is
/// recomputed). With staging, each queued request's blocks found below tier 0 are moved up
/// when it arrives, within the budget. Each link (tier t to t-1) is a serial resource with a
/// time it is free: a staged block lands hop by hop at max(arrival, link free) plus the hop's
/// transfer time; a demand fetch at a request's start also occupies the links (it is not
/// delayed by staging: the engine's fetch is charged at the link's full speed). A staged block
/// counts as a tier-0 hit only if it landed by the request's start; otherwise as a hit at the
/// tier it came from. The engine's rate must be `placement`'s recompute rate.
pub fn serve_tiered(
    requests: &[Request],
    policy: &mut dyn CachePolicy,
    cfg: &ServeConfig,
    tiers: usize,
    placement: &Placement,
    stage: &StageConfig,
) -> (TieredResult, ServeStats) {
    debug_assert_eq!(
        cfg.prefill_tokens_per_s,
        placement.cost().prefill_tokens_per_s,
        "the engine's rate is the recompute rate fetches are weighed against"
    );
    let n_tiers = tiers.max(1);
    let sess = cfg
        .session_intents
        .then(|| sessions(requests, cfg.block_tokens));
    let mut r = replay_tiered(&[], policy, cfg.block_tokens, n_tiers, placement);
    // Seconds of hop t (tier t to t-1) for a block of `tokens`.
    let hop = |t: usize, tokens: u32| {
        placement.fetch_seconds(t, tokens) - placement.fetch_seconds(t - 1, tokens)
    };
    let mut link_free = vec![0.0f64; n_tiers];
    // Staged block -> (time its move lands, tier it came from).
    let mut staged: HashMap<u64, (f64, usize)> = HashMap::new();
    let mut engine = Fcfs::new(requests);
    loop {
        let started = engine.start_next(|q, now| {
            let req = &requests[q];
            if cfg.queue_intents {
                policy.request_queued(&req.hash_ids);
            }
            if stage.enabled {
                for (i, &id) in req.hash_ids.iter().enumerate() {
                    if staged.len() >= stage.budget_blocks {
                        break;
                    }
                    let Some((from, to)) = policy.stage(id) else {
                        continue;
                    };
                    let tokens = req.tokens_in_block(i, cfg.block_tokens);
                    let mut at = now;
                    for t in (to + 1..=from.min(n_tiers - 1)).rev() {
                        at = at.max(link_free[t]) + hop(t, tokens);
                        link_free[t] = at;
                    }
                    staged.insert(id, (at, from));
                    r.staged += 1;
                }
            }
        });
        let Some((k, start)) = started else { break };
        let req = &requests[k];
        if cfg.queue_intents {
            policy.request_started(&req.hash_ids);
        }
        let mut service = 0.0f64;
        for (i, &id) in req.hash_ids.iter().enumerate() {
            let tokens = req.tokens_in_block(i, cfg.block_tokens);
            let recompute = placement.recompute_seconds(tokens);
            r.prefill_all_s += recompute;
            let now = r.block_accesses;
            r.block_accesses += 1;
            let landing = staged.remove(&id);
            if !policy.access(id, now) {
                service += recompute;
                continue;
            }
            let mut t = policy.hit_tier().min(n_tiers - 1);
            if let Some((at, from)) = landing
                && at > start
                && from > t
            {
                t = from.min(n_tiers - 1);
                r.staged_late += 1;
            }
            r.hits_per_tier[t] += 1;
            r.hits_recompute_s += recompute;
            let saved = placement.saved_seconds(t, tokens);
            if saved == 0.0 {
                r.hits_recomputed += 1;
            } else {
                let mut at = start;
                for h in (1..=t).rev() {
                    at = at.max(link_free[h]) + hop(h, tokens);
                    link_free[h] = link_free[h].max(at);
                }
            }
            r.saved_s += saved;
            service += recompute - saved;
        }
        policy.request_done(&req.hash_ids);
        engine.finish(start, service);
        if let Some(s) = &sess
            && s.last[k]
        {
            policy.session_ended(&s.owned[k]);
        }
    }
    (r, engine.stats())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::by_name;

    fn req(ts: u64, ids: &[u64]) -> Request {
        Request {
            timestamp_ms: ts,
            input_length: 100 * ids.len() as u32,
            output_length: 1,
            hash_ids: ids.to_vec(),
        }
    }

    #[test]
    fn queue_forms_when_arrivals_outpace_prefill() {
        // Ten requests of 10 blocks x 100 tokens, arriving 100 ms apart; the engine prefills
        // 5,000 tokens/s, so each takes 200 ms: the queue grows.
        let reqs: Vec<Request> = (0..10)
            .map(|i| req(i * 100, &(i * 10..i * 10 + 10).collect::<Vec<u64>>()))
            .collect();
        let mut p = by_name("lru", 100, None).unwrap();
        let cfg = ServeConfig {
            prefill_tokens_per_s: 5_000.0,
            block_tokens: 100,
            queue_intents: false,
            session_intents: false,
        };
        let (counts, s) = serve(&reqs, p.as_mut(), &cfg);
        assert_eq!(counts.block_accesses, 100);
        assert!((s.prefill_s - 2.0).abs() < 1e-9);
        assert!((s.span_s - 2.0).abs() < 1e-9, "{s:?}");
        assert!((s.utilisation - 1.0).abs() < 1e-9);
        // Request i waits 100 * i ms: mean 0.45 s.
        assert!((s.mean_wait_s - 0.45).abs() < 1e-9, "{s:?}");
        assert!(s.max_queue_len >= 4);
        // A fast engine: no queue.
        let fast = ServeConfig {
            prefill_tokens_per_s: 1e9,
            ..cfg
        };
        let mut p = by_name("lru", 100, None).unwrap();
        let (_, s) = serve(&reqs, p.as_mut(), &fast);
        assert!(s.mean_queue_len < 1e-6 && s.utilisation < 0.01);
    }

    #[test]
    fn hits_shorten_prefill_and_sessions_are_found() {
        // A conversation of three turns, each re-sending the last one, then a new one.
        let reqs = vec![
            req(0, &[1, 2]),
            req(1000, &[1, 2, 3]),
            req(2000, &[1, 2, 3, 4]),
            req(3000, &[9]),
        ];
        let s = sessions(&reqs, 100);
        assert_eq!(s.last, vec![false, false, true, true]);
        assert_eq!(s.owned[2], vec![1, 2, 3, 4]);
        let mut p = by_name("lru", 100, None).unwrap();
        let cfg = ServeConfig {
            prefill_tokens_per_s: 1000.0,
            block_tokens: 100,
            queue_intents: true,
            session_intents: true,
        };
        let (counts, st) = serve(&reqs, p.as_mut(), &cfg);
        assert_eq!(counts.block_hits, 5);
        // Misses: 2 + 1 + 1 + 1 blocks of 100 tokens at 1000 tokens/s.
        assert!((st.prefill_s - 0.5).abs() < 1e-9, "{st:?}");
    }

    /// HBM 2 + DRAM 2 (one usable each: one frame is kept free) + disk 4 blocks; 100-token blocks of 1 KiB per token over 1 MB/s
    /// links: 0.1024 s a hop, 0.2048 s from disk; recompute 1 s a block.
    fn three_tiers() -> (Vec<u32>, Placement) {
        use mcos_brain::CostModel;
        use mcos_core::{Link, TierId, TierKind, TierSpec, Topology};
        let caps = vec![2u32, 2, 4];
        let kinds = [TierKind::Hbm, TierKind::HostDram, TierKind::Disk];
        let topo = Topology {
            tiers: caps
                .iter()
                .zip(kinds)
                .map(|(&n, kind)| TierSpec {
                    kind,
                    capacity_blocks: n,
                    block_bytes: 1,
                })
                .collect(),
            links: (1..3u8)
                .map(|t| Link {
                    from: TierId(t),
                    to: TierId(t - 1),
                    bandwidth_bytes_per_s: 1_000_000,
                    latency_ns: 0,
                })
                .collect(),
        };
        let cost = CostModel {
            prefill_tokens_per_s: 100.0,
            kv_bytes_per_token: 1024,
            block_tokens: 100,
        };
        (caps, Placement::new(&topo, cost))
    }

    fn staged_run(last_arrival_ms: u64, enabled: bool) -> TieredResult {
        use crate::policy::FastPathPolicy;
        use mcos_core::PolicyTable;
        let (caps, placement) = three_tiers();
        // Four 1-s misses from t = 0 push block 1 down to disk; the engine starts the last
        // request, which re-reads block 1, at t = 4 s.
        let reqs = vec![
            req(0, &[1]),
            req(0, &[2]),
            req(0, &[3]),
            req(0, &[4]),
            req(last_arrival_ms, &[1]),
        ];
        let mut p = FastPathPolicy::new("lru", &caps, PolicyTable::builtin(3));
        let cfg = ServeConfig {
            prefill_tokens_per_s: 100.0,
            block_tokens: 100,
            queue_intents: true,
            session_intents: false,
        };
        let stage = StageConfig {
            enabled,
            budget_blocks: 1,
        };
        let (r, st) = serve_tiered(&reqs, &mut p, &cfg, 3, &placement, &stage);
        // Service: three recomputes, then the hit's fetch (none from tier 0).
        let fetch =
            placement.fetch_seconds(r.hits_per_tier.iter().rposition(|&h| h > 0).unwrap(), 100);
        assert!((st.prefill_s - (4.0 + fetch)).abs() < 1e-9, "{st:?} {r:?}");
        r
    }

    #[test]
    fn staging_lands_a_disk_block_in_tier0_only_when_the_wait_covers_the_transfer() {
        // Without staging the re-read is a disk hit.
        let r = staged_run(3500, false);
        assert_eq!(r.hits_per_tier, vec![0, 0, 1]);
        assert_eq!(r.staged, 0);
        // Queued at 3.5 s, the move (0.2048 s over two hops) lands by the start at 4 s.
        let r = staged_run(3500, true);
        assert_eq!((r.staged, r.staged_late), (1, 0));
        assert_eq!(r.hits_per_tier, vec![1, 0, 0]);
        assert!((r.saved_s - 1.0).abs() < 1e-9, "{r:?}");
        // Queued at 3.9 s, it would land at 4.1048 s: read at disk cost.
        let r = staged_run(3900, true);
        assert_eq!((r.staged, r.staged_late), (1, 1));
        assert_eq!(r.hits_per_tier, vec![0, 0, 1]);
        assert!((r.saved_s - (1.0 - 0.2048)).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn the_links_are_serial() {
        use crate::policy::FastPathPolicy;
        use mcos_core::PolicyTable;
        let (_, placement) = three_tiers();
        // HBM holds 3 blocks (one frame kept free): the second request's three misses push
        // blocks 1 and 2 down to DRAM and keep the engine busy until 5 s. The third request,
        // queued at 4.85 s, has both staged over the one DRAM link: the first lands at
        // 4.9524 s, the second waits for it and lands at 5.0548 s, after the start: late.
        let caps = [4u32, 8, 8];
        let reqs = vec![req(0, &[1, 2]), req(0, &[3, 4, 5]), req(4850, &[1, 2])];
        let mut p = FastPathPolicy::new("lru", &caps, PolicyTable::builtin(3));
        let cfg = ServeConfig {
            prefill_tokens_per_s: 100.0,
            block_tokens: 100,
            queue_intents: true,
            session_intents: false,
        };
        let stage = StageConfig {
            enabled: true,
            budget_blocks: 8,
        };
        let (r, _) = serve_tiered(&reqs, &mut p, &cfg, 3, &placement, &stage);
        assert_eq!((r.staged, r.staged_late), (2, 1), "{r:?}");
        assert_eq!(r.hits_per_tier, vec![1, 1, 0]);
    }

    #[test]
    fn staging_keeps_the_hits_of_a_generated_trace() {
        use crate::generator::{GeneratorConfig, Mixture, generate};
        use crate::policy::FastPathPolicy;
        use mcos_core::PolicyTable;
        let reqs = generate(&GeneratorConfig {
            requests: 400,
            ..GeneratorConfig::preset(Mixture::chat())
        })
        .unwrap();
        let (_, placement) = three_tiers();
        let caps = [20u32, 60, 300];
        let total = |enabled: bool| {
            let mut p = FastPathPolicy::new("lru", &caps, PolicyTable::builtin(3));
            let cfg = ServeConfig {
                prefill_tokens_per_s: 100.0,
                block_tokens: 16,
                queue_intents: true,
                session_intents: false,
            };
            let stage = StageConfig {
                enabled,
                budget_blocks: 5,
            };
            serve_tiered(&reqs, &mut p, &cfg, 3, &placement, &stage).0
        };
        // Staging moves blocks up, it does not add any: over exclusive LRU tiers the union
        // holds the same blocks, except that the up-move is a read refreshing a block's
        // recency before its request's own read, which can push another block out of the
        // last tier. On this trace it does not cost a hit.
        let (plain, staged) = (total(false), total(true));
        let hits = |r: &TieredResult| r.hits_per_tier.iter().sum::<u64>();
        assert!(staged.staged > 0);
        assert!(hits(&staged) >= hits(&plain), "{plain:?} {staged:?}");
        assert!(staged.hits_per_tier[0] > plain.hits_per_tier[0]);
    }
}
