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
use crate::trace::Request;

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
    let arrival = |i: usize| requests[i].timestamp_ms as f64 / 1000.0;
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut next = 0usize;
    let mut free_at = 0.0f64;
    let (mut busy, mut wait_total, mut max_q) = (0.0f64, 0.0f64, 0usize);
    let first = if requests.is_empty() { 0.0 } else { arrival(0) };
    while next < requests.len() || !queue.is_empty() {
        if queue.is_empty() {
            free_at = free_at.max(arrival(next));
        }
        // Everything that arrived by the time the engine starts the next request is queued.
        while next < requests.len() && arrival(next) <= free_at {
            max_q = max_q.max(queue.len());
            queue.push_back(next);
            if cfg.queue_intents {
                policy.request_queued(&requests[next].hash_ids);
            }
            next += 1;
        }
        let Some(i) = queue.pop_front() else { continue };
        let start = free_at.max(arrival(i));
        wait_total += start - arrival(i);
        if cfg.queue_intents {
            policy.request_started(&requests[i].hash_ids);
        }
        let before = counts.hit_tokens;
        let tokens_before = counts.prompt_tokens;
        counts.record(policy, &requests[i], cfg.block_tokens);
        let missed = (counts.prompt_tokens - tokens_before) - (counts.hit_tokens - before);
        let service = missed as f64 / tps;
        busy += service;
        free_at = start + service;
        if let Some(s) = &sess {
            if s.last[i] {
                policy.session_ended(&s.owned[i]);
            }
        }
    }
    let span = (free_at - first).max(1e-9);
    let n = requests.len().max(1) as f64;
    let stats = ServeStats {
        utilisation: busy / span,
        mean_queue_len: wait_total / span,
        max_queue_len: max_q,
        mean_wait_s: wait_total / n,
        prefill_s: busy,
        span_s: span,
    };
    (counts, stats)
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
}
