//! Seeded KV-block workload generator writing the Mooncake trace format.
//!
//! Needs no external data: everything is drawn from a ChaCha8 stream seeded by
//! [`GeneratorConfig::seed`], so a seed and a config name a trace exactly. The output is a
//! `Vec<Request>` sorted by timestamp, or a JSONL file via [`write_trace`].
//!
//! # What is modelled
//!
//! A prompt is a sequence of text *segments* (a system prompt, a document, a user message, an
//! answer, a tool output), each a run of tokens with its own identity. The prompt is cut into
//! `block_tokens` blocks (the last one partial), and each block gets the id interned for
//! `(parent block id, block content)`, where the content is the list of segment slices it covers.
//! Hence equal ids if and only if equal prefixes, as in Mooncake's `hash_ids` and vLLM's block
//! hashes. Sessions of three kinds start at modulated Poisson times and emit requests:
//!
//! - **Chat** ([`ChatConfig`]): multi-turn. Turn 1 is a shared system prompt plus the user's first
//!   message; turn k+1 re-sends turn k's prompt plus its answer plus a new user message, so its ids
//!   extend turn k's (all but the partial last block). Turns are geometric (mean 4), and the think
//!   time between turns is log-normal with a 25 s median, spanning seconds to minutes. The first
//!   message is long (median 1,200 tokens) because users paste code and documents; follow-ups are
//!   short (median 120). Answers have a 350-token median, like Mooncake's `output_length`.
//! - **Agent** ([`AgentConfig`]): a tool-use loop. An agent framework prompt with tool schemas
//!   (a few shared ones, ~3,000 tokens) plus a task, then steps that each append the model's action
//!   (~120 tokens, the request's output) and the tool's output (median 500, heavy-tailed), re-sending
//!   the growing context after a short tool time (median 1.5 s). Mean 8 steps: agents produce long,
//!   fast-growing, quickly reused prefixes, the pattern KVFlow targets.
//! - **RAG** ([`RagConfig`]): a shared system prompt, `docs_per_query` documents drawn from a
//!   corpus by Zipf popularity (a few documents are very popular, RAGCache's premise), then the
//!   question; sometimes a follow-up. Documents are placed in retrieval order, so two queries share
//!   blocks only when they share the leading documents, which is what prefix caching can reuse.
//!
//! Shared system prompts ([`SystemPromptConfig`]): a few prompts with log-spaced lengths (200 to
//! 4,000 tokens) shared by chat and RAG sessions with Zipf popularity (s = 1.2), so the head blocks
//! of most requests are hot, as in Bailian's to-B trace where shared system prompts give most hits.
//!
//! Arrivals ([`ArrivalConfig`]): sessions start as a non-homogeneous Poisson process (thinning)
//! with rate `sessions_per_s * (1 + diurnal_amplitude * sin(2 pi t / diurnal_period_s))`,
//! multiplied by `burst_factor` inside bursts that start every `burst_gap_s` on average and last
//! `burst_duration_s` on average (defaults: 0.5 sessions/s, amplitude 0.5, 30 s bursts at 4x every
//! 5 minutes on average). The default period is one hour, a compressed day, so that a 6,000-request
//! trace (about 40 minutes) sees both a peak and a trough; set 86,400 for wall-clock days. Within a
//! session, the next request arrives after the previous one's service time ([`ServiceConfig`]:
//! prefill at 20,000 tokens/s, decode at 25 ms/token) plus the think time.
//!
//! Mixtures ([`Mixture`]): session-kind weights. `chat`, `agent` and `rag` use one kind; `mixed`
//! (the default) starts 50% chat, 10% agent and 40% RAG sessions, which gives roughly 60% of the
//! requests from chat, a quarter from agents and the rest from RAG.
//!
//! Size and reuse of the default trace: 6,000 requests, about 80,000 block accesses over about
//! 21,000 unique blocks; an infinite cache would hit about 74% of block accesses (agent loops and
//! multi-turn re-sends dominate). That is above Mooncake's conversation trace (37%) and Bailian's
//! reported ideal (54-62%); lower the `agent` weight (or use the `rag` preset, about 46%) for less
//! reuse. A replay of
//! every baseline at several capacities takes well under a second. The generator stops starting
//! sessions once the first `requests` requests by timestamp are complete, then keeps exactly those,
//! as a trace window.

use std::collections::HashMap;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::trace::{DEFAULT_BLOCK_TOKENS, Request, TraceError, TraceWriter};

/// Why a trace could not be generated.
#[derive(Debug, Error)]
pub enum GeneratorError {
    /// A configuration field is out of range.
    #[error("invalid generator config: {0}")]
    InvalidConfig(String),
    /// Writing the trace failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// A log-normal distribution given by its median and the standard deviation of its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// Median (50th percentile).
    pub median: f64,
    /// Standard deviation of `ln(x)`; 0 makes it constant.
    pub sigma: f64,
}

impl LogNormal {
    const fn new(median: f64, sigma: f64) -> Self {
        Self { median, sigma }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        self.median * (self.sigma * standard_normal(rng)).exp()
    }

    fn validate(&self, what: &str) -> Result<(), GeneratorError> {
        if !(self.median.is_finite()
            && self.median > 0.0
            && self.sigma.is_finite()
            && self.sigma >= 0.0)
        {
            return invalid(format!(
                "{what}: median must be positive and sigma non-negative, got {self:?}"
            ));
        }
        Ok(())
    }
}

/// Session-kind weights: the probability that a new session is chat, agent or RAG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixture {
    /// Weight of multi-turn chat sessions.
    pub chat: f64,
    /// Weight of agent tool loops.
    pub agent: f64,
    /// Weight of RAG queries.
    pub rag: f64,
}

impl Mixture {
    /// Names accepted by [`Mixture::from_name`].
    pub const NAMES: [&'static str; 4] = ["chat", "agent", "rag", "mixed"];

    /// Chat sessions only.
    pub const fn chat() -> Self {
        Self {
            chat: 1.0,
            agent: 0.0,
            rag: 0.0,
        }
    }

    /// Agent loops only.
    pub const fn agent() -> Self {
        Self {
            chat: 0.0,
            agent: 1.0,
            rag: 0.0,
        }
    }

    /// RAG queries only.
    pub const fn rag() -> Self {
        Self {
            chat: 0.0,
            agent: 0.0,
            rag: 1.0,
        }
    }

    /// The default blend: 50% chat, 10% agent, 40% RAG sessions.
    pub const fn mixed() -> Self {
        Self {
            chat: 0.5,
            agent: 0.1,
            rag: 0.4,
        }
    }

    /// The preset called `name` (see [`Mixture::NAMES`]).
    pub fn from_name(name: &str) -> Result<Self, GeneratorError> {
        match name {
            "chat" => Ok(Self::chat()),
            "agent" => Ok(Self::agent()),
            "rag" => Ok(Self::rag()),
            "mixed" => Ok(Self::mixed()),
            _ => invalid(format!(
                "unknown mixture `{name}`; valid names: {}",
                Self::NAMES.join(", ")
            )),
        }
    }

    fn validate(&self) -> Result<(), GeneratorError> {
        let w = [self.chat, self.agent, self.rag];
        if w.iter().any(|x| !x.is_finite() || *x < 0.0) || w.iter().sum::<f64>() <= 0.0 {
            return invalid(format!(
                "mixture weights must be non-negative with a positive sum, got {self:?}"
            ));
        }
        Ok(())
    }
}

impl Default for Mixture {
    fn default() -> Self {
        Self::mixed()
    }
}

/// Session arrival process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalConfig {
    /// Mean session start rate (sessions per second) before modulation.
    pub sessions_per_s: f64,
    /// Period of the diurnal modulation, seconds.
    pub diurnal_period_s: f64,
    /// Relative swing of the rate, in `[0, 1)`: 0.5 swings between 0.5x and 1.5x.
    pub diurnal_amplitude: f64,
    /// Mean time between burst starts, seconds.
    pub burst_gap_s: f64,
    /// Mean burst length, seconds.
    pub burst_duration_s: f64,
    /// Rate multiplier inside a burst (1 disables bursts).
    pub burst_factor: f64,
}

impl Default for ArrivalConfig {
    fn default() -> Self {
        Self {
            sessions_per_s: 0.5,
            diurnal_period_s: 3_600.0,
            diurnal_amplitude: 0.5,
            burst_gap_s: 300.0,
            burst_duration_s: 30.0,
            burst_factor: 4.0,
        }
    }
}

/// Shared system prompts used by chat and RAG sessions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemPromptConfig {
    /// How many distinct system prompts exist.
    pub count: usize,
    /// Shortest prompt, tokens.
    pub min_tokens: u32,
    /// Longest prompt, tokens (lengths are log-spaced between the two).
    pub max_tokens: u32,
    /// Zipf exponent of their popularity.
    pub zipf_s: f64,
}

impl Default for SystemPromptConfig {
    fn default() -> Self {
        Self {
            count: 8,
            min_tokens: 200,
            max_tokens: 4_000,
            zipf_s: 1.2,
        }
    }
}

/// Multi-turn chat sessions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatConfig {
    /// Mean number of turns (geometric, at least 1).
    pub mean_turns: f64,
    /// Most turns in a session.
    pub max_turns: u32,
    /// Length of the first user message, tokens.
    pub first_user_tokens: LogNormal,
    /// Length of follow-up user messages, tokens.
    pub user_tokens: LogNormal,
    /// Length of answers (the request's `output_length`), tokens.
    pub answer_tokens: LogNormal,
    /// Longest answer, tokens.
    pub max_answer_tokens: u32,
    /// Time the user takes between reading an answer and sending the next turn, seconds.
    pub think_time_s: LogNormal,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            mean_turns: 4.0,
            max_turns: 24,
            first_user_tokens: LogNormal::new(1_200.0, 1.2),
            user_tokens: LogNormal::new(120.0, 1.0),
            answer_tokens: LogNormal::new(350.0, 0.7),
            max_answer_tokens: 2_000,
            think_time_s: LogNormal::new(25.0, 1.1),
        }
    }
}

/// Agent tool-use loops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentConfig {
    /// How many distinct agent framework prompts (tool schemas) exist.
    pub framework_prompts: usize,
    /// Length of a framework prompt, tokens.
    pub framework_prompt_tokens: LogNormal,
    /// Zipf exponent of framework popularity.
    pub zipf_s: f64,
    /// Mean number of steps (geometric, at least 1).
    pub mean_steps: f64,
    /// Most steps in a loop.
    pub max_steps: u32,
    /// Length of the task description, tokens.
    pub task_tokens: LogNormal,
    /// Length of each action the model emits (the request's `output_length`), tokens.
    pub action_tokens: LogNormal,
    /// Length of each tool output appended to the context, tokens.
    pub tool_output_tokens: LogNormal,
    /// Tool execution time between steps, seconds.
    pub tool_time_s: LogNormal,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            framework_prompts: 4,
            framework_prompt_tokens: LogNormal::new(3_000.0, 0.4),
            zipf_s: 1.0,
            mean_steps: 8.0,
            max_steps: 40,
            task_tokens: LogNormal::new(250.0, 0.8),
            action_tokens: LogNormal::new(120.0, 0.6),
            tool_output_tokens: LogNormal::new(500.0, 1.2),
            tool_time_s: LogNormal::new(1.5, 0.8),
        }
    }
}

/// Retrieval-augmented queries over a shared document corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RagConfig {
    /// Documents in the corpus.
    pub documents: usize,
    /// Length of a document chunk, tokens.
    pub doc_tokens: LogNormal,
    /// Zipf exponent of document popularity.
    pub zipf_s: f64,
    /// Distinct documents retrieved per query.
    pub docs_per_query: usize,
    /// Length of the question, tokens.
    pub question_tokens: LogNormal,
    /// Length of the answer, tokens.
    pub answer_tokens: LogNormal,
    /// Probability of each follow-up question on the same context.
    pub follow_up_prob: f64,
    /// Think time before a follow-up, seconds.
    pub think_time_s: LogNormal,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            documents: 2_000,
            doc_tokens: LogNormal::new(1_000.0, 0.5),
            zipf_s: 1.0,
            docs_per_query: 3,
            question_tokens: LogNormal::new(60.0, 0.7),
            answer_tokens: LogNormal::new(250.0, 0.6),
            follow_up_prob: 0.3,
            think_time_s: LogNormal::new(20.0, 1.0),
        }
    }
}

/// Serving-time model used to space a session's requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceConfig {
    /// Prefill throughput, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Decode time per output token, milliseconds.
    pub decode_ms_per_token: f64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            prefill_tokens_per_s: 20_000.0,
            decode_ms_per_token: 25.0,
        }
    }
}

/// Everything that defines a generated trace.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of the ChaCha8 stream; the same seed and config give the same trace.
    pub seed: u64,
    /// Requests in the trace.
    pub requests: usize,
    /// Tokens per block.
    pub block_tokens: u32,
    /// Session-kind weights.
    pub mixture: Mixture,
    /// Longest prompt, tokens; a session ends before its context would exceed it.
    pub max_context_tokens: u32,
    /// Session arrivals.
    pub arrivals: ArrivalConfig,
    /// Shared system prompts.
    pub system_prompts: SystemPromptConfig,
    /// Chat sessions.
    pub chat: ChatConfig,
    /// Agent loops.
    pub agent: AgentConfig,
    /// RAG queries.
    pub rag: RagConfig,
    /// Serving-time model.
    pub service: ServiceConfig,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 0x4D43_4F53,
            requests: 6_000,
            block_tokens: DEFAULT_BLOCK_TOKENS,
            mixture: Mixture::default(),
            max_context_tokens: 65_536,
            arrivals: ArrivalConfig::default(),
            system_prompts: SystemPromptConfig::default(),
            chat: ChatConfig::default(),
            agent: AgentConfig::default(),
            rag: RagConfig::default(),
            service: ServiceConfig::default(),
        }
    }
}

impl GeneratorConfig {
    /// The default config with another mixture preset.
    pub fn preset(mixture: Mixture) -> Self {
        Self {
            mixture,
            ..Self::default()
        }
    }

    /// Checks every field; generation refuses a config that fails.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        if self.requests == 0 {
            return invalid("requests must be at least 1".to_owned());
        }
        if self.block_tokens == 0 {
            return invalid("block_tokens must be at least 1".to_owned());
        }
        if self.max_context_tokens < 4 * self.block_tokens {
            return invalid(format!(
                "max_context_tokens {} must hold at least 4 blocks of {} tokens",
                self.max_context_tokens, self.block_tokens
            ));
        }
        self.mixture.validate()?;
        let a = &self.arrivals;
        let positive = [
            ("arrivals.sessions_per_s", a.sessions_per_s),
            ("arrivals.diurnal_period_s", a.diurnal_period_s),
            ("arrivals.burst_gap_s", a.burst_gap_s),
            ("arrivals.burst_duration_s", a.burst_duration_s),
            (
                "service.prefill_tokens_per_s",
                self.service.prefill_tokens_per_s,
            ),
        ];
        for (what, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return invalid(format!("{what} must be positive, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&a.diurnal_amplitude) {
            return invalid(format!(
                "arrivals.diurnal_amplitude must be in [0, 1), got {}",
                a.diurnal_amplitude
            ));
        }
        if !(a.burst_factor.is_finite() && a.burst_factor >= 1.0) {
            return invalid(format!(
                "arrivals.burst_factor must be at least 1, got {}",
                a.burst_factor
            ));
        }
        if !(self.service.decode_ms_per_token.is_finite()
            && self.service.decode_ms_per_token >= 0.0)
        {
            return invalid("service.decode_ms_per_token must be non-negative".to_owned());
        }
        let s = &self.system_prompts;
        if s.count == 0 || s.min_tokens == 0 || s.min_tokens > s.max_tokens {
            return invalid(format!(
                "system_prompts needs count >= 1 and 1 <= min_tokens <= max_tokens, got {s:?}"
            ));
        }
        let zipfs = [
            ("system_prompts.zipf_s", s.zipf_s),
            ("agent.zipf_s", self.agent.zipf_s),
            ("rag.zipf_s", self.rag.zipf_s),
        ];
        for (what, v) in zipfs {
            if !(v.is_finite() && v >= 0.0) {
                return invalid(format!("{what} must be non-negative, got {v}"));
            }
        }
        let c = &self.chat;
        if !(c.mean_turns >= 1.0 && c.max_turns >= 1 && c.max_answer_tokens >= 1) {
            return invalid(format!(
                "chat needs mean_turns >= 1, max_turns >= 1, max_answer_tokens >= 1, got {c:?}"
            ));
        }
        let g = &self.agent;
        if !(g.framework_prompts >= 1 && g.mean_steps >= 1.0 && g.max_steps >= 1) {
            return invalid(format!(
                "agent needs framework_prompts >= 1, mean_steps >= 1, max_steps >= 1, got {g:?}"
            ));
        }
        let r = &self.rag;
        if r.documents == 0 || r.docs_per_query == 0 || r.docs_per_query > r.documents {
            return invalid(format!(
                "rag needs 1 <= docs_per_query <= documents, got {r:?}"
            ));
        }
        if !(0.0..=1.0).contains(&r.follow_up_prob) {
            return invalid(format!(
                "rag.follow_up_prob must be in [0, 1], got {}",
                r.follow_up_prob
            ));
        }
        let dists = [
            ("chat.first_user_tokens", c.first_user_tokens),
            ("chat.user_tokens", c.user_tokens),
            ("chat.answer_tokens", c.answer_tokens),
            ("chat.think_time_s", c.think_time_s),
            ("agent.framework_prompt_tokens", g.framework_prompt_tokens),
            ("agent.task_tokens", g.task_tokens),
            ("agent.action_tokens", g.action_tokens),
            ("agent.tool_output_tokens", g.tool_output_tokens),
            ("agent.tool_time_s", g.tool_time_s),
            ("rag.doc_tokens", r.doc_tokens),
            ("rag.question_tokens", r.question_tokens),
            ("rag.answer_tokens", r.answer_tokens),
            ("rag.think_time_s", r.think_time_s),
        ];
        for (what, d) in dists {
            d.validate(what)?;
        }
        Ok(())
    }
}

/// Generates the trace described by `config`, sorted by timestamp.
pub fn generate(config: &GeneratorConfig) -> Result<Vec<Request>, GeneratorError> {
    config.validate()?;
    Generator::new(config).run()
}

/// Generates the trace and writes it to `path`; returns the number of requests written.
pub fn write_trace(
    config: &GeneratorConfig,
    path: impl AsRef<Path>,
) -> Result<usize, GeneratorError> {
    let requests = generate(config)?;
    let mut out = TraceWriter::create(path)?;
    for r in &requests {
        out.write(r)?;
    }
    out.finish()?;
    Ok(requests.len())
}

fn invalid<T>(reason: String) -> Result<T, GeneratorError> {
    Err(GeneratorError::InvalidConfig(reason))
}

/// Sessions started per requested request before giving up on a config that emits (almost) none.
const MAX_SESSIONS_PER_REQUEST: usize = 64;
/// Thinning draws per arrival before accepting regardless (the acceptance rate is at least
/// `(1 - amplitude) / ((1 + amplitude) * burst_factor)`, so this is never reached in practice).
const MAX_THINNING_DRAWS: usize = 1 << 20;
/// Distinct-document draws per retrieved slot before accepting a duplicate.
const MAX_DOC_DRAWS: usize = 64;

/// Segment-id namespaces (top byte) so shared texts and fresh texts never collide.
const NS_SYSTEM: u64 = 1 << 56;
const NS_FRAMEWORK: u64 = 2 << 56;
const NS_DOC: u64 = 3 << 56;
const NS_FRESH: u64 = 4 << 56;

/// Parent of a prompt's first block.
const ROOT: u64 = u64::MAX;

/// A run of tokens with one identity (a system prompt, a document, a message).
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    tokens: u32,
}

/// Zipf popularity over `n` ranks, sampled by inverting the CDF.
#[derive(Debug)]
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Self { cdf }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// Interns `(parent id, block content)` pairs into dense block ids.
#[derive(Debug, Default)]
struct BlockInterner {
    ids: HashMap<(u64, u64), u64>,
}

impl BlockInterner {
    /// Block ids of a prompt made of `segments`.
    fn block_ids(&mut self, segments: &[Segment], block_tokens: u32) -> Vec<u64> {
        let total: u64 = segments.iter().map(|s| u64::from(s.tokens)).sum();
        let mut out = Vec::with_capacity(total.div_ceil(u64::from(block_tokens)) as usize);
        let mut parent = ROOT;
        let mut content = 0u64;
        let mut filled = 0u32;
        for seg in segments {
            let mut offset = 0u32;
            while offset < seg.tokens {
                let take = (block_tokens - filled).min(seg.tokens - offset);
                content =
                    mix(mix(content ^ seg.id)
                        ^ (u64::from(offset) << 32 | u64::from(offset + take)));
                offset += take;
                filled += take;
                if filled == block_tokens {
                    parent = self.intern(parent, content);
                    out.push(parent);
                    content = 0;
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            out.push(self.intern(parent, content));
        }
        out
    }

    fn intern(&mut self, parent: u64, content: u64) -> u64 {
        let next = self.ids.len() as u64;
        *self.ids.entry((parent, content)).or_insert(next)
    }
}

/// SplitMix64 finaliser: a deterministic 64-bit mixer for block contents.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Geometric count in `1..=max` with the given mean (before capping).
fn geometric(rng: &mut ChaCha8Rng, mean: f64, max: u32) -> u32 {
    let stop = 1.0 / mean;
    let mut n = 1;
    while n < max && rng.random::<f64>() >= stop {
        n += 1;
    }
    n
}

/// Modulated Poisson session starts (seconds), by thinning.
#[derive(Debug)]
struct Arrivals {
    cfg: ArrivalConfig,
    rng: ChaCha8Rng,
    t_s: f64,
    burst_start_s: f64,
    burst_end_s: f64,
}

impl Arrivals {
    fn new(cfg: ArrivalConfig, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let burst_start_s = exponential(&mut rng, cfg.burst_gap_s);
        let burst_end_s = burst_start_s + exponential(&mut rng, cfg.burst_duration_s);
        Self {
            cfg,
            rng,
            t_s: 0.0,
            burst_start_s,
            burst_end_s,
        }
    }

    fn rate(&self, t: f64) -> f64 {
        let c = &self.cfg;
        let diurnal =
            1.0 + c.diurnal_amplitude * (std::f64::consts::TAU * t / c.diurnal_period_s).sin();
        let burst = if t >= self.burst_start_s && t < self.burst_end_s {
            c.burst_factor
        } else {
            1.0
        };
        c.sessions_per_s * diurnal * burst
    }

    fn next_start_s(&mut self) -> f64 {
        let c = self.cfg;
        let max_rate = c.sessions_per_s * (1.0 + c.diurnal_amplitude) * c.burst_factor;
        for _ in 0..MAX_THINNING_DRAWS {
            self.t_s += exponential(&mut self.rng, 1.0 / max_rate);
            while self.t_s >= self.burst_end_s {
                self.burst_start_s = self.burst_end_s + exponential(&mut self.rng, c.burst_gap_s);
                self.burst_end_s =
                    self.burst_start_s + exponential(&mut self.rng, c.burst_duration_s);
            }
            if self.rng.random::<f64>() * max_rate <= self.rate(self.t_s) {
                break;
            }
        }
        self.t_s
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Chat,
    Agent,
    Rag,
}

struct Generator<'a> {
    cfg: &'a GeneratorConfig,
    rng: ChaCha8Rng,
    interner: BlockInterner,
    next_fresh: u64,
    system_tokens: Vec<u32>,
    system_pop: Zipf,
    framework_tokens: Vec<u32>,
    framework_pop: Zipf,
    doc_tokens: Vec<u32>,
    doc_pop: Zipf,
    /// `(timestamp_ms, emission order, request)`.
    out: Vec<(u64, u64, Request)>,
}

impl<'a> Generator<'a> {
    fn new(cfg: &'a GeneratorConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let sp = &cfg.system_prompts;
        let mut system_tokens: Vec<u32> = (0..sp.count)
            .map(|i| {
                let frac = if sp.count > 1 {
                    i as f64 / (sp.count - 1) as f64
                } else {
                    0.0
                };
                let ratio = f64::from(sp.max_tokens) / f64::from(sp.min_tokens);
                (f64::from(sp.min_tokens) * ratio.powf(frac)).round() as u32
            })
            .collect();
        // Popularity rank is independent of length.
        system_tokens.shuffle(&mut rng);
        let mut this = Self {
            cfg,
            rng,
            interner: BlockInterner::default(),
            next_fresh: 0,
            system_tokens,
            system_pop: Zipf::new(sp.count, sp.zipf_s),
            framework_tokens: Vec::new(),
            framework_pop: Zipf::new(cfg.agent.framework_prompts, cfg.agent.zipf_s),
            doc_tokens: Vec::new(),
            doc_pop: Zipf::new(cfg.rag.documents, cfg.rag.zipf_s),
            out: Vec::with_capacity(cfg.requests + cfg.requests / 4),
        };
        let cap = this.max_segment_tokens();
        this.framework_tokens = (0..cfg.agent.framework_prompts)
            .map(|_| this.tokens(cfg.agent.framework_prompt_tokens, cap))
            .collect();
        this.doc_tokens = (0..cfg.rag.documents)
            .map(|_| this.tokens(cfg.rag.doc_tokens, cap))
            .collect();
        this
    }

    /// No single segment may take more than a quarter of the context.
    fn max_segment_tokens(&self) -> u32 {
        self.cfg.max_context_tokens / 4
    }

    fn tokens(&mut self, dist: LogNormal, max: u32) -> u32 {
        (dist.sample(&mut self.rng).round() as u32).clamp(1, max.max(1))
    }

    fn fresh(&mut self, dist: LogNormal) -> Segment {
        let tokens = self.tokens(dist, self.max_segment_tokens());
        self.fresh_of(tokens)
    }

    fn fresh_of(&mut self, tokens: u32) -> Segment {
        self.next_fresh += 1;
        Segment {
            id: NS_FRESH | self.next_fresh,
            tokens,
        }
    }

    fn system_prompt(&mut self) -> Segment {
        let k = self.system_pop.sample(&mut self.rng);
        Segment {
            id: NS_SYSTEM | k as u64,
            tokens: self.system_tokens[k],
        }
    }

    fn service_s(&self, input: u32, output: u32) -> f64 {
        let s = &self.cfg.service;
        f64::from(input) / s.prefill_tokens_per_s
            + f64::from(output) * s.decode_ms_per_token / 1_000.0
    }

    /// Emits one request for the prompt `segments` at `t_s`; returns false (and emits nothing) if
    /// the prompt exceeds the context limit.
    fn emit(&mut self, t_s: f64, segments: &[Segment], output: u32) -> bool {
        let input: u64 = segments.iter().map(|s| u64::from(s.tokens)).sum();
        if input > u64::from(self.cfg.max_context_tokens) {
            return false;
        }
        let hash_ids = self.interner.block_ids(segments, self.cfg.block_tokens);
        let timestamp_ms = (t_s * 1_000.0).round() as u64;
        let order = self.out.len() as u64;
        let request = Request {
            timestamp_ms,
            input_length: input as u32,
            output_length: output,
            hash_ids,
        };
        self.out.push((timestamp_ms, order, request));
        true
    }

    fn pick_kind(&mut self) -> Kind {
        let m = self.cfg.mixture;
        let u = self.rng.random::<f64>() * (m.chat + m.agent + m.rag);
        if u < m.chat {
            Kind::Chat
        } else if u < m.chat + m.agent {
            Kind::Agent
        } else {
            Kind::Rag
        }
    }

    fn chat_session(&mut self, start_s: f64) {
        let c = self.cfg.chat;
        let turns = geometric(&mut self.rng, c.mean_turns, c.max_turns);
        let mut segments = vec![self.system_prompt()];
        let first = self.fresh(c.first_user_tokens);
        segments.push(first);
        let mut t = start_s;
        for _ in 0..turns {
            let answer = self.tokens(c.answer_tokens, c.max_answer_tokens);
            if !self.emit(t, &segments, answer) {
                break;
            }
            let input: u32 = segments.iter().map(|s| s.tokens).sum();
            let answer_seg = self.fresh_of(answer);
            segments.push(answer_seg);
            let user = self.fresh(c.user_tokens);
            segments.push(user);
            t += self.service_s(input, answer) + c.think_time_s.sample(&mut self.rng);
        }
    }

    fn agent_session(&mut self, start_s: f64) {
        let a = self.cfg.agent;
        let steps = geometric(&mut self.rng, a.mean_steps, a.max_steps);
        let k = self.framework_pop.sample(&mut self.rng);
        let mut segments = vec![Segment {
            id: NS_FRAMEWORK | k as u64,
            tokens: self.framework_tokens[k],
        }];
        let task = self.fresh(a.task_tokens);
        segments.push(task);
        let mut t = start_s;
        let cap = self.max_segment_tokens();
        for _ in 0..steps {
            let action = self.tokens(a.action_tokens, cap);
            if !self.emit(t, &segments, action) {
                break;
            }
            let input: u32 = segments.iter().map(|s| s.tokens).sum();
            let action_seg = self.fresh_of(action);
            segments.push(action_seg);
            let tool = self.fresh(a.tool_output_tokens);
            segments.push(tool);
            t += self.service_s(input, action) + a.tool_time_s.sample(&mut self.rng);
        }
    }

    fn rag_session(&mut self, start_s: f64) {
        let r = self.cfg.rag;
        let mut segments = vec![self.system_prompt()];
        let mut picked: Vec<usize> = Vec::with_capacity(r.docs_per_query);
        for _ in 0..r.docs_per_query {
            let mut d = self.doc_pop.sample(&mut self.rng);
            for _ in 0..MAX_DOC_DRAWS {
                if !picked.contains(&d) {
                    break;
                }
                d = self.doc_pop.sample(&mut self.rng);
            }
            picked.push(d);
            segments.push(Segment {
                id: NS_DOC | d as u64,
                tokens: self.doc_tokens[d],
            });
        }
        let question = self.fresh(r.question_tokens);
        segments.push(question);
        let cap = self.max_segment_tokens();
        let mut t = start_s;
        loop {
            let answer = self.tokens(r.answer_tokens, cap);
            if !self.emit(t, &segments, answer) {
                break;
            }
            if self.rng.random::<f64>() >= r.follow_up_prob {
                break;
            }
            let input: u32 = segments.iter().map(|s| s.tokens).sum();
            let answer_seg = self.fresh_of(answer);
            segments.push(answer_seg);
            let q = self.fresh(r.question_tokens);
            segments.push(q);
            t += self.service_s(input, answer) + r.think_time_s.sample(&mut self.rng);
        }
    }

    /// Timestamp of the `n`-th earliest request emitted so far (`n` >= 1).
    fn nth_timestamp(&self, n: usize) -> u64 {
        let mut ts: Vec<u64> = self.out.iter().map(|(t, _, _)| *t).collect();
        let (_, nth, _) = ts.select_nth_unstable(n - 1);
        *nth
    }

    fn run(mut self) -> Result<Vec<Request>, GeneratorError> {
        let n = self.cfg.requests;
        let mut arrivals = Arrivals::new(self.cfg.arrivals, self.cfg.seed);
        let max_sessions = n.saturating_mul(MAX_SESSIONS_PER_REQUEST);
        let mut sessions = 0usize;
        loop {
            let start_s = arrivals.next_start_s();
            // Once n requests exist, a session starting after the n-th earliest of them cannot
            // change the first n: the window is complete.
            if self.out.len() >= n && (start_s * 1_000.0).round() as u64 > self.nth_timestamp(n) {
                break;
            }
            if sessions == max_sessions {
                return invalid(format!(
                    "{sessions} sessions produced only {} requests; raise max_context_tokens or lower the prompt lengths",
                    self.out.len()
                ));
            }
            sessions += 1;
            match self.pick_kind() {
                Kind::Chat => self.chat_session(start_s),
                Kind::Agent => self.agent_session(start_s),
                Kind::Rag => self.rag_session(start_s),
            }
        }
        self.out.sort_unstable_by_key(|(t, order, _)| (*t, *order));
        self.out.truncate(n);
        Ok(self.out.into_iter().map(|(_, _, r)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(mixture: Mixture, requests: usize) -> GeneratorConfig {
        GeneratorConfig {
            requests,
            ..GeneratorConfig::preset(mixture)
        }
    }

    #[test]
    fn chat_turns_extend_the_previous_turn() {
        let cfg = small(Mixture::chat(), 10);
        let mut g = Generator::new(&cfg);
        g.chat_session(0.0);
        let reqs: Vec<&Request> = g.out.iter().map(|(_, _, r)| r).collect();
        assert!(!reqs.is_empty());
        for w in reqs.windows(2) {
            let (prev, next) = (w[0], w[1]);
            let full = (prev.input_length / cfg.block_tokens) as usize;
            assert_eq!(&next.hash_ids[..full], &prev.hash_ids[..full]);
            assert!(next.input_length > prev.input_length + prev.output_length);
            assert!(next.timestamp_ms > prev.timestamp_ms);
        }
    }

    #[test]
    fn interner_gives_equal_ids_only_to_equal_prefixes() {
        let mut i = BlockInterner::default();
        let a = Segment { id: 1, tokens: 10 };
        let b = Segment { id: 2, tokens: 6 };
        let c = Segment { id: 3, tokens: 6 };
        let ab = i.block_ids(&[a, b], 4);
        let ac = i.block_ids(&[a, c], 4);
        assert_eq!(ab.len(), 4);
        assert_eq!(&ab[..2], &ac[..2], "blocks 0-1 cover only segment a");
        assert_ne!(ab[2], ac[2]);
        // Same content after a different prefix gets a different id.
        let ba = i.block_ids(&[b, a], 4);
        assert!(ba.iter().all(|id| !ab.contains(id)));
        // A partial last block differs from the full block that later replaces it.
        let a_only = i.block_ids(&[a], 4);
        assert_eq!(a_only.len(), 3);
        assert_ne!(a_only[2], ab[2]);
    }

    #[test]
    fn zipf_rank_zero_is_most_popular() {
        let z = Zipf::new(10, 1.2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            counts[z.sample(&mut rng)] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[4] && counts[4] > counts[9]);
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        let bad = [
            GeneratorConfig {
                requests: 0,
                ..Default::default()
            },
            GeneratorConfig {
                block_tokens: 0,
                ..Default::default()
            },
            GeneratorConfig {
                mixture: Mixture {
                    chat: 0.0,
                    agent: 0.0,
                    rag: 0.0,
                },
                ..Default::default()
            },
            GeneratorConfig {
                arrivals: ArrivalConfig {
                    diurnal_amplitude: 1.0,
                    ..Default::default()
                },
                ..Default::default()
            },
            GeneratorConfig {
                rag: RagConfig {
                    docs_per_query: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert!(
                matches!(generate(&cfg), Err(GeneratorError::InvalidConfig(_))),
                "{cfg:?}"
            );
        }
        assert!(Mixture::from_name("chaos").is_err());
        assert_eq!(Mixture::from_name("rag").unwrap(), Mixture::rag());
    }
}
