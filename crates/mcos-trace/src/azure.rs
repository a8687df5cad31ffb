//! Azure LLM inference traces (2023) turned into KV-block traces with synthesised block ids.
//!
//! The Azure CSVs (`TIMESTAMP,ContextTokens,GeneratedTokens`, one row per request, about an
//! hour each, Azure/AzurePublicDataset) give real arrival times and prompt sizes but no block
//! identities. This module keeps those two exactly and **synthesises** prefix sharing on top,
//! deterministically from a seed, so that the trace has another shape than Mooncake's and the
//! generator's: hit ratios on it measure policies on a plausible structure, not on Azure's
//! real reuse, which is unknown.
//!
//! Synthesis, per request in timestamp order, with a ChaCha8 stream seeded by `seed`:
//! - with probability `continue_prob`, the request continues a conversation from a bounded pool
//!   of open ones (`open_max`, drawn uniformly) whose context is not longer than this prompt:
//!   it re-sends that conversation's full blocks and appends new ones (multi-turn chat);
//! - otherwise it opens a new conversation that starts with one of `system_prompts` shared
//!   system prompts (Zipf popularity, s = `zipf_s`, lengths log-spaced from `block_tokens` to
//!   16 blocks, cut to the prompt), then new blocks;
//! - after each request the conversation closes with probability `end_prob`; the pool drops
//!   its oldest conversation when full.
//!
//! Block ids chain over the prefix as in Mooncake (equal ids if and only if equal prefixes).

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::trace::{Request, TraceError};

/// How block ids are synthesised. The defaults are the ones the benchmarks use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AzureSynthesis {
    /// Tokens per block.
    pub block_tokens: u32,
    /// Probability that a request continues an open conversation.
    pub continue_prob: f64,
    /// Probability that a conversation ends after a request.
    pub end_prob: f64,
    /// Open conversations kept.
    pub open_max: usize,
    /// Shared system prompts.
    pub system_prompts: usize,
    /// Zipf exponent of system-prompt popularity.
    pub zipf_s: f64,
    /// Seed of the synthesis.
    pub seed: u64,
}

impl Default for AzureSynthesis {
    fn default() -> Self {
        Self {
            block_tokens: 64,
            continue_prob: 0.5,
            end_prob: 0.25,
            open_max: 512,
            system_prompts: 16,
            zipf_s: 1.2,
            seed: 0x415A_5552,
        }
    }
}

struct Conversation {
    /// Full blocks of the last prompt.
    blocks: Vec<u64>,
    tokens: u64,
}

/// Reads an Azure CSV and synthesises block ids; timestamps become milliseconds from the first
/// row. A malformed row is an error naming the file and line.
pub fn read_azure(
    path: impl AsRef<Path>,
    syn: &AzureSynthesis,
) -> Result<Vec<Request>, TraceError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| TraceError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, why: String| TraceError::Parse {
        path: path.to_path_buf(),
        line: line as u64,
        reason: why,
    };
    if syn.block_tokens == 0 {
        return Err(bad(0, "block_tokens must be at least 1".into()));
    }
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, e.to_string()))?;
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("TIMESTAMP")) {
            continue;
        }
        let mut f = line.split(',');
        let (Some(ts), Some(ctx), Some(gen_tokens)) = (f.next(), f.next(), f.next()) else {
            return Err(bad(i + 1, format!("expected 3 fields, got `{line}`")));
        };
        let ms =
            parse_timestamp_ms(ts).ok_or_else(|| bad(i + 1, format!("bad timestamp `{ts}`")))?;
        let ctx: u32 = ctx
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, format!("bad ContextTokens `{ctx}`")))?;
        let out: u32 = gen_tokens
            .trim()
            .parse()
            .map_err(|_| bad(i + 1, format!("bad GeneratedTokens `{gen_tokens}`")))?;
        rows.push((ms, ctx, out));
    }
    let t0 = rows.iter().map(|r| r.0).min().unwrap_or(0);
    Ok(synthesise(
        rows.into_iter().map(|(ms, c, o)| (ms - t0, c, o)),
        syn,
    ))
}

/// `YYYY-MM-DD HH:MM:SS.fffffff` to milliseconds since an arbitrary epoch (days counted from
/// year 0 well enough to order one trace).
fn parse_timestamp_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<u64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<u64>().ok()?,
        t.next()?.parse::<u64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    let days = y * 372 + mo * 31 + da;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + (sec * 1000.0) as u64)
}

/// Builds requests from (timestamp ms, context tokens, generated tokens) rows.
pub fn synthesise(
    rows: impl IntoIterator<Item = (u64, u32, u32)>,
    syn: &AzureSynthesis,
) -> Vec<Request> {
    let bt = u64::from(syn.block_tokens.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(syn.seed);
    let mut intern: HashMap<(u64, u64), u64> = HashMap::new();
    let mut next_id = 0u64;
    let mut id_of = |parent: u64, content: u64, intern: &mut HashMap<(u64, u64), u64>| {
        *intern.entry((parent, content)).or_insert_with(|| {
            next_id += 1;
            next_id
        })
    };
    let weights: Vec<f64> = (1..=syn.system_prompts.max(1))
        .map(|k| 1.0 / (k as f64).powf(syn.zipf_s))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut open: VecDeque<Conversation> = VecDeque::new();
    let mut fresh = 1u64 << 40;
    let mut out = Vec::new();
    for (ms, ctx, gen_tokens) in rows {
        let tokens = u64::from(ctx.max(1));
        let n_blocks = tokens.div_ceil(bt) as usize;
        let mut ids: Vec<u64> = Vec::with_capacity(n_blocks);
        let cont = if !open.is_empty() && rng.random_bool(syn.continue_prob.clamp(0.0, 1.0)) {
            let j = rng.random_range(0..open.len());
            (open[j].tokens <= tokens).then_some(j)
        } else {
            None
        };
        let slot = match cont {
            Some(j) => {
                ids.extend(open[j].blocks.iter().take(n_blocks));
                j
            }
            None => {
                let mut x = rng.random::<f64>() * total;
                let mut p = 0;
                while p + 1 < weights.len() && x >= weights[p] {
                    x -= weights[p];
                    p += 1;
                }
                // System prompt p: log-spaced from 1 to 16 blocks.
                let len = (1usize << (p % 5)).min(n_blocks);
                let mut parent = 0;
                for b in 0..len {
                    parent = id_of(parent, (p as u64) << 32 | b as u64, &mut intern);
                    ids.push(parent);
                }
                open.push_back(Conversation {
                    blocks: Vec::new(),
                    tokens: 0,
                });
                if open.len() > syn.open_max.max(1) {
                    open.pop_front();
                }
                open.len() - 1
            }
        };
        let mut parent = ids.last().copied().unwrap_or(0);
        while ids.len() < n_blocks {
            fresh += 1;
            parent = id_of(parent, fresh, &mut intern);
            ids.push(parent);
        }
        let full = (tokens / bt) as usize;
        open[slot] = Conversation {
            blocks: ids[..full.min(ids.len())].to_vec(),
            // The next turn re-sends the answer too.
            tokens: tokens + u64::from(gen_tokens),
        };
        if rng.random_bool(syn.end_prob.clamp(0.0, 1.0)) {
            open.remove(slot);
        }
        out.push(Request {
            timestamp_ms: ms,
            input_length: ctx.max(1),
            output_length: gen_tokens,
            hash_ids: ids,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefix_chained_and_sizes_kept() {
        let rows: Vec<(u64, u32, u32)> = (0..2000)
            .map(|i| (i * 100, 100 + (i as u32 * 37) % 900, 50))
            .collect();
        let syn = AzureSynthesis::default();
        let reqs = synthesise(rows.clone(), &syn);
        assert_eq!(reqs.len(), rows.len());
        let mut parent_of: HashMap<u64, u64> = HashMap::new();
        let mut uses: HashMap<u64, u32> = HashMap::new();
        for (r, row) in reqs.iter().zip(&rows) {
            assert_eq!(r.timestamp_ms, row.0);
            assert_eq!(r.input_length, row.1);
            assert_eq!(r.hash_ids.len(), (row.1 as usize).div_ceil(64));
            let mut prev = 0;
            for &id in &r.hash_ids {
                let p = *parent_of.entry(id).or_insert(prev);
                assert_eq!(p, prev, "an id always follows the same prefix");
                *uses.entry(id).or_default() += 1;
                prev = id;
            }
        }
        let reused = uses.values().filter(|&&n| n > 1).count();
        assert!(
            reused * 10 > uses.len(),
            "prefixes are shared: {reused} of {}",
            uses.len()
        );
        assert_eq!(reqs, synthesise(rows, &syn), "deterministic");
    }

    #[test]
    fn timestamps_parse_to_milliseconds() {
        let a = parse_timestamp_ms("2023-11-16 18:15:46.6805900").unwrap();
        let b = parse_timestamp_ms("2023-11-16 18:15:50.9951690").unwrap();
        assert_eq!(
            b - a,
            4315,
            "46.680 s to 50.995 s, each truncated to the millisecond"
        );
        assert!(parse_timestamp_ms("yesterday").is_none());
    }
}
