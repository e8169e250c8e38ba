//! SGLang-style continuous batching for one data-parallel group: a waiting queue and a running
//! batch; each step is either an EXTEND batch (new prompts, chunked by `--chunked-prefill-size`
//! and bounded by `--max-prefill-tokens`) or a DECODE batch of every running request. KV comes
//! from the page pool through the radix cache; when decode runs out of KV, requests are
//! retracted to the queue (SGLang's `num_retractions`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::kv::{KvPool, PrefixHandle, RadixCache};
use crate::model::{ForwardBatch, SeqInput};
use crate::observer::{
    ForwardMode, OpEvent, OpKind, SchedulerPhase, StepInfo, StepObserver, StepReport,
};
use crate::parallel::TpGroup;
use crate::request::{FinishReason, GenerateRequest, RequestOutput};
use crate::sampling::{SamplerState, SamplingParams};
use crate::tokenizer::{IncrementalDetokenizer, Tokenizer};

/// Longest new-token reservation counted per request when admitting (SGLang's CLIP_MAX_NEW_TOKENS).
const CLIP_MAX_NEW_TOKENS: usize = 4096;
/// Decode steps between two "Decode batch." log lines (SGLang's `--decode-log-interval`).
const DECODE_LOG_INTERVAL: u64 = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// First come, first served.
    Fcfs,
    /// Longest prefix match first (better cache reuse).
    Lpm,
}

impl SchedulePolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fcfs" => Some(Self::Fcfs),
            "lpm" => Some(Self::Lpm),
            _ => None,
        }
    }
}

/// The scheduler's knobs, named after SGLang's flags.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub max_total_tokens: usize,
    pub page_size: usize,
    /// `None` disables chunking (SGLang's `-1`).
    pub chunked_prefill_size: Option<usize>,
    pub max_prefill_tokens: usize,
    pub max_running_requests: usize,
    pub disable_radix_cache: bool,
    pub schedule_policy: SchedulePolicy,
    pub schedule_conservativeness: f64,
    pub stream_interval: usize,
    pub context_length: usize,
    pub random_seed: u64,
}

/// Live counters of one scheduler, read by `/metrics`, `/server_info` and the router.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub running: AtomicUsize,
    pub queued: AtomicUsize,
    /// Submitted and not yet finished (router load).
    pub inflight: AtomicUsize,
    pub kv_used_tokens: AtomicUsize,
    pub kv_total_tokens: AtomicUsize,
    pub cache_evictable_tokens: AtomicUsize,
    pub prompt_tokens_total: AtomicU64,
    pub cached_tokens_total: AtomicU64,
    pub generation_tokens_total: AtomicU64,
    pub requests_finished_total: AtomicU64,
    pub retractions_total: AtomicU64,
    pub steps_total: AtomicU64,
    /// Wall time inside steps and inside the model's forward (the rest is scheduler overhead).
    pub step_ns_total: AtomicU64,
    pub forward_ns_total: AtomicU64,
    /// Tokens/s of the last decode log interval, as f64 bits.
    pub last_gen_throughput: AtomicU64,
}

impl SchedulerStats {
    pub fn gen_throughput(&self) -> f64 {
        f64::from_bits(self.last_gen_throughput.load(Ordering::Relaxed))
    }
}

/// Messages to the scheduler thread.
pub enum Command {
    Generate(Box<GenerateRequest>),
    /// A batch that arrived as one request: queued together, before the next step is planned.
    GenerateBatch(Vec<GenerateRequest>),
    Abort(String),
    /// Drop the prefix cache if idle; answers whether it did.
    FlushCache(tokio::sync::oneshot::Sender<Result<(), String>>),
}

struct Req {
    rid: String,
    prompt: Vec<u32>,
    output: Vec<u32>,
    params: SamplingParams,
    stream: bool,
    stream_interval: Option<usize>,
    log_metrics: bool,
    tx: tokio::sync::mpsc::UnboundedSender<RequestOutput>,
    sampler: SamplerState,
    slots: Vec<u32>,
    kv_len: usize,
    /// Positions `0..cached_len` belong to the radix cache (locked through `handle`).
    cached_len: usize,
    handle: PrefixHandle,
    cached_tokens: usize,
    detok: IncrementalDetokenizer,
    text: String,
    sent_text: usize,
    sent_ids: usize,
    num_retractions: u32,
    finish: Option<FinishReason>,
}

impl Req {
    fn fill_len(&self) -> usize {
        self.prompt.len() + self.output.len()
    }
    fn fill(&self, range: std::ops::Range<usize>) -> Vec<u32> {
        range
            .map(|i| {
                if i < self.prompt.len() {
                    self.prompt[i]
                } else {
                    self.output[i - self.prompt.len()]
                }
            })
            .collect()
    }
    fn remaining_new_tokens(&self) -> usize {
        self.params
            .max_new_tokens
            .saturating_sub(self.output.len())
            .min(CLIP_MAX_NEW_TOKENS)
    }
}

/// One entry of the batch being run: which request and how many tokens it computes.
struct Planned {
    idx: usize,
    extend: usize,
    last_chunk: bool,
}

pub struct Scheduler {
    dp_rank: usize,
    cfg: SchedulerConfig,
    tp: TpGroup,
    tokenizer: Arc<Tokenizer>,
    eos_ids: Vec<u32>,
    vocab_size: usize,
    pool: KvPool,
    cache: RadixCache,
    waiting: VecDeque<Req>,
    running: Vec<Req>,
    /// The request whose prefill is being chunked; it leads the next EXTEND batch.
    chunked: Option<Req>,
    rx: Receiver<Command>,
    observer: Option<Arc<dyn StepObserver>>,
    stats: Arc<SchedulerStats>,
    step: u64,
    new_token_ratio: f64,
    min_new_token_ratio: f64,
    new_token_ratio_decay: f64,
    seed_counter: u64,
    log_tokens: u64,
    log_since: Instant,
}

pub struct SchedulerParts {
    pub dp_rank: usize,
    pub cfg: SchedulerConfig,
    pub tp: TpGroup,
    pub tokenizer: Arc<Tokenizer>,
    pub eos_ids: Vec<u32>,
    pub vocab_size: usize,
    pub rx: Receiver<Command>,
    pub observer: Option<Arc<dyn StepObserver>>,
    pub stats: Arc<SchedulerStats>,
}

impl Scheduler {
    pub fn new(p: SchedulerParts) -> Self {
        let pool = KvPool::new(p.cfg.max_total_tokens, p.cfg.page_size);
        let cache = RadixCache::new(p.cfg.page_size, p.cfg.disable_radix_cache);
        p.stats
            .kv_total_tokens
            .store(pool.total_tokens(), Ordering::Relaxed);
        let init = (0.7 * p.cfg.schedule_conservativeness).min(1.0);
        let min = (0.1 * p.cfg.schedule_conservativeness).min(init);
        Scheduler {
            dp_rank: p.dp_rank,
            seed_counter: p.cfg.random_seed,
            cfg: p.cfg,
            tp: p.tp,
            tokenizer: p.tokenizer,
            eos_ids: p.eos_ids,
            vocab_size: p.vocab_size,
            pool,
            cache,
            waiting: VecDeque::new(),
            running: Vec::new(),
            chunked: None,
            rx: p.rx,
            observer: p.observer,
            stats: p.stats,
            step: 0,
            new_token_ratio: init,
            min_new_token_ratio: min,
            new_token_ratio_decay: (init - min) / 600.0,
            log_tokens: 0,
            log_since: Instant::now(),
        }
    }

    fn idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty() && self.chunked.is_none()
    }

    /// Run until every sender is gone.
    pub fn run(mut self) {
        loop {
            let t_recv = Instant::now();
            if !self.recv_commands() {
                break;
            }
            let t_sched = Instant::now();
            self.drop_disconnected();
            let Some((mode, plan)) = self.next_batch() else {
                self.publish_stats();
                if !self.idle() {
                    // Work is queued but nothing fits right now: wait for a command.
                    match self.rx.recv_timeout(Duration::from_millis(5)) {
                        Ok(cmd) => self.handle(cmd),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                continue;
            };
            self.run_step(mode, plan, t_recv, t_sched);
        }
        // Shutting down: tell whoever still listens.
        for r in self
            .running
            .drain(..)
            .chain(self.waiting.drain(..))
            .chain(self.chunked.take())
        {
            let _ = r.tx.send(RequestOutput {
                text: String::new(),
                token_ids: Vec::new(),
                prompt_tokens: r.prompt.len(),
                completion_tokens: r.output.len(),
                cached_tokens: r.cached_tokens,
                num_retractions: r.num_retractions,
                finish: Some(FinishReason::Abort("the server is shutting down".into())),
            });
        }
    }

    /// Drain the command channel; block while idle. False when the engine is gone.
    fn recv_commands(&mut self) -> bool {
        if self.idle() {
            match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.handle(cmd),
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Generate(g) => {
                let seed = g.params.seed.unwrap_or_else(|| {
                    self.seed_counter = self.seed_counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    self.seed_counter
                });
                let detok = IncrementalDetokenizer::new(&g.input_ids);
                if g.log_metrics {
                    self.stats
                        .prompt_tokens_total
                        .fetch_add(g.input_ids.len() as u64, Ordering::Relaxed);
                }
                self.waiting.push_back(Req {
                    rid: g.rid,
                    prompt: g.input_ids,
                    output: Vec::new(),
                    params: g.params,
                    stream: g.stream,
                    stream_interval: g.stream_interval,
                    log_metrics: g.log_metrics,
                    tx: g.output,
                    sampler: SamplerState::new(seed),
                    slots: Vec::new(),
                    kv_len: 0,
                    cached_len: 0,
                    handle: PrefixHandle::ROOT,
                    cached_tokens: 0,
                    detok,
                    text: String::new(),
                    sent_text: 0,
                    sent_ids: 0,
                    num_retractions: 0,
                    finish: None,
                });
            }
            Command::GenerateBatch(reqs) => {
                for g in reqs {
                    self.handle(Command::Generate(Box::new(g)));
                }
            }
            Command::Abort(rid) => self.abort_where(|r| r.rid == rid, "aborted by request"),
            Command::FlushCache(reply) => {
                let res = if self.idle() {
                    self.cache.flush(&mut self.pool);
                    Ok(())
                } else {
                    Err(format!(
                        "Cache not flushed because there are pending requests. #queue-req: {}, #running-req: {}",
                        self.waiting.len(),
                        self.running.len() + self.chunked.is_some() as usize
                    ))
                };
                self.publish_stats();
                let _ = reply.send(res);
            }
        }
    }

    /// Clients that went away: abort their requests and return their KV.
    fn drop_disconnected(&mut self) {
        let closed = |r: &Req| r.tx.is_closed();
        let any = self.running.iter().any(closed)
            || self.waiting.iter().any(closed)
            || self.chunked.as_ref().is_some_and(closed);
        if any {
            self.abort_where(closed, "client disconnected");
        }
    }

    fn abort_where(&mut self, pred: impl Fn(&Req) -> bool, why: &str) {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if pred(&self.running[i]) {
                gone.push(self.running.swap_remove(i));
            } else {
                i += 1;
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        for r in waiting {
            if pred(&r) {
                gone.push(r);
            } else {
                self.waiting.push_back(r);
            }
        }
        if self.chunked.as_ref().is_some_and(&pred) {
            gone.extend(self.chunked.take());
        }
        for mut r in gone {
            self.release_kv(&mut r);
            r.finish = Some(FinishReason::Abort(why.to_string()));
            Self::emit_req(&mut r);
            self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn available_tokens(&self) -> usize {
        self.pool.free_tokens() + self.cache.evictable_tokens()
    }

    /// Make `pages` free pages, evicting cached prefixes if needed.
    fn ensure_pages(&mut self, pages: usize) -> bool {
        let need = pages * self.pool.page_size();
        let free = self.pool.free_tokens();
        if free < need {
            self.cache.evict(need - free, &mut self.pool);
        }
        self.pool.free_tokens() >= need
    }

    /// Give a request's KV back: cache what can be shared, free the rest.
    fn release_kv(&mut self, r: &mut Req) {
        let kv = r.kv_len.min(r.slots.len());
        let aligned = if self.cache.disabled() {
            0
        } else {
            kv / self.pool.page_size() * self.pool.page_size()
        };
        let key = r.fill(0..kv);
        let dup = self.cache.insert(&key, &r.slots[..kv]);
        self.pool
            .release(&r.slots[..dup.max(r.cached_len)], r.cached_len);
        self.pool.release(&r.slots, aligned.max(r.cached_len));
        self.cache.unlock(r.handle);
        r.handle = PrefixHandle::ROOT;
        r.slots.clear();
        r.kv_len = 0;
        r.cached_len = 0;
    }

    /// After a non-final prefill chunk: share what was computed so far through the cache.
    fn cache_unfinished(&mut self, r: &mut Req) {
        if self.cache.disabled() {
            return;
        }
        let kv = r.kv_len;
        let key = r.fill(0..kv);
        let dup = self.cache.insert(&key, &r.slots[..kv]);
        self.pool
            .release(&r.slots[..dup.max(r.cached_len)], r.cached_len);
        let (tree_slots, h) = self.cache.match_prefix(&key);
        r.slots[..tree_slots.len()].copy_from_slice(&tree_slots);
        self.cache.lock(h);
        self.cache.unlock(r.handle);
        r.handle = h;
        r.cached_len = tree_slots.len();
    }

    /// Pick the next batch: prefill has priority, as in SGLang (without mixed chunking).
    fn next_batch(&mut self) -> Option<(ForwardMode, Vec<Planned>)> {
        if let Some(plan) = self.plan_extend() {
            return Some((ForwardMode::Extend, plan));
        }
        if self.running.is_empty() {
            return None;
        }
        self.plan_decode().map(|p| (ForwardMode::Decode, p))
    }

    /// Admit waiting requests (and continue a chunked one) into an EXTEND batch. Admitted
    /// requests move to the end of `running`; `Planned.idx` indexes `running`.
    fn plan_extend(&mut self) -> Option<Vec<Planned>> {
        if self.chunked.is_none() && self.waiting.is_empty() {
            return None;
        }
        if self.cfg.schedule_policy == SchedulePolicy::Lpm && self.waiting.len() <= 128 {
            let waiting = std::mem::take(&mut self.waiting);
            let mut scored: Vec<(usize, Req)> = waiting
                .into_iter()
                .map(|r| {
                    let key = r.fill(0..r.fill_len() - 1);
                    (self.cache_peek(&key), r)
                })
                .collect();
            scored.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
            self.waiting = scored.into_iter().map(|(_, r)| r).collect();
        }
        let reserved: f64 = self
            .running
            .iter()
            .map(|r| r.remaining_new_tokens() as f64 * self.new_token_ratio)
            .sum();
        let mut rem_total = self.available_tokens() as f64 - reserved;
        let mut rem_input = self.cfg.max_prefill_tokens as i64;
        let mut rem_chunk = self.cfg.chunked_prefill_size.map(|c| c as i64);
        let first_running = self.running.len();
        let mut plan = Vec::new();

        loop {
            let from_chunked = self.chunked.is_some();
            let mut r = match self.chunked.take() {
                Some(r) => r,
                None => {
                    if self.running.len() >= self.cfg.max_running_requests {
                        break;
                    }
                    match self.waiting.pop_front() {
                        Some(r) => r,
                        None => break,
                    }
                }
            };
            if !from_chunked {
                // Reuse the longest cached prefix, leaving at least one token to compute.
                let key = r.fill(0..r.fill_len() - 1);
                let (slots, h) = self.cache.match_prefix(&key);
                self.cache.lock(h);
                r.cached_len = slots.len();
                r.kv_len = slots.len();
                r.cached_tokens += slots.len();
                if r.log_metrics {
                    self.stats
                        .cached_tokens_total
                        .fetch_add(slots.len() as u64, Ordering::Relaxed);
                }
                r.slots = slots;
                r.handle = h;
            }
            let remaining = r.fill_len() - r.kv_len;
            let reserve = r.remaining_new_tokens() as f64 * self.new_token_ratio;
            let page = self.pool.page_size();
            let mut extend = remaining;
            let mut last_chunk = true;
            if let Some(c) = rem_chunk
                && extend as i64 > c
            {
                extend = (c.max(0) as usize) / page * page;
                last_chunk = false;
            }
            let fits_input = plan.is_empty() || extend as i64 <= rem_input;
            // With nothing running, admit as long as the tokens themselves fit: retraction
            // handles the rest, and a reservation larger than the pool must not stall forever.
            let alone =
                plan.is_empty() && self.running.len() == first_running && first_running == 0;
            let fits_memory = if last_chunk && !alone {
                (extend as f64 + reserve) < rem_total
            } else {
                (extend as f64) < rem_total
            };
            if extend == 0
                || !fits_input
                || !fits_memory
                || !self.ensure_pages(self.pool.pages_needed(r.kv_len, r.kv_len + extend))
            {
                // Put it back where it came from; nothing more fits this step.
                if from_chunked {
                    self.chunked = Some(r);
                } else {
                    self.cache.unlock(r.handle);
                    r.cached_tokens -= r.cached_len;
                    r.handle = PrefixHandle::ROOT;
                    r.slots.clear();
                    r.kv_len = 0;
                    r.cached_len = 0;
                    self.waiting.push_front(r);
                }
                break;
            }
            let target = r.kv_len + extend;
            assert!(
                self.pool.extend(&mut r.slots, target),
                "pages ensured above"
            );
            rem_total -= extend as f64 + if last_chunk { reserve } else { 0.0 };
            rem_input -= extend as i64;
            if let Some(c) = rem_chunk.as_mut() {
                *c -= extend as i64;
            }
            plan.push(Planned {
                idx: self.running.len(),
                extend,
                last_chunk,
            });
            self.running.push(r);
            if !last_chunk {
                break;
            }
            if rem_chunk.is_some_and(|c| c <= 0) || rem_input <= 0 {
                break;
            }
        }
        if plan.is_empty() {
            debug_assert_eq!(self.running.len(), first_running);
            return None;
        }
        Some(plan)
    }

    /// How many tokens of `key` the cache holds, without touching LRU order much.
    fn cache_peek(&mut self, key: &[u32]) -> usize {
        self.cache.match_prefix(key).0.len()
    }

    /// Every running request decodes one token; retract requests if KV runs out.
    fn plan_decode(&mut self) -> Option<Vec<Planned>> {
        loop {
            let pages: usize = self
                .running
                .iter()
                .map(|r| self.pool.pages_needed(r.slots.len(), r.kv_len + 1))
                .sum();
            if self.ensure_pages(pages) {
                break;
            }
            if !self.retract_one() {
                return None;
            }
        }
        for r in &mut self.running {
            let target = r.kv_len + 1;
            assert!(
                self.pool.extend(&mut r.slots, target),
                "pages ensured above"
            );
        }
        self.new_token_ratio =
            (self.new_token_ratio - self.new_token_ratio_decay).max(self.min_new_token_ratio);
        Some(
            (0..self.running.len())
                .map(|idx| Planned {
                    idx,
                    extend: 1,
                    last_chunk: true,
                })
                .collect(),
        )
    }

    /// Send the request with the fewest generated tokens (longest prompt on ties) back to
    /// the queue, SGLang's `retract_decode` order. A lone request that cannot fit is aborted.
    fn retract_one(&mut self) -> bool {
        if self.running.is_empty() {
            return false;
        }
        if self.running.len() == 1 {
            let mut r = self.running.pop().expect("one running");
            self.release_kv(&mut r);
            r.finish = Some(FinishReason::Abort(format!(
                "the request needs more KV cache than the pool holds ({} tokens); raise --max-total-tokens",
                self.pool.total_tokens()
            )));
            Self::emit_req(&mut r);
            self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
            return true;
        }
        let victim = (0..self.running.len())
            .min_by_key(|&i| {
                let r = &self.running[i];
                (r.output.len(), std::cmp::Reverse(r.prompt.len()))
            })
            .expect("non-empty");
        let mut r = self.running.swap_remove(victim);
        self.release_kv(&mut r);
        r.num_retractions += 1;
        self.stats.retractions_total.fetch_add(1, Ordering::Relaxed);
        let decoded: usize = self.running.iter().map(|r| r.output.len()).sum();
        let max_new: usize = self.running.iter().map(|r| r.params.max_new_tokens).sum();
        let steps = 20 * self.running.len();
        self.new_token_ratio = ((decoded + steps) as f64 / (max_new + 1) as f64).min(1.0);
        tracing::warn!(
            dp_rank = self.dp_rank,
            "KV cache pool is full. Retract requests. #retracted_reqs: 1, #new_token_ratio: {:.4}",
            self.new_token_ratio
        );
        self.waiting.push_front(r);
        true
    }

    fn run_step(
        &mut self,
        mode: ForwardMode,
        plan: Vec<Planned>,
        t_recv: Instant,
        t_sched: Instant,
    ) {
        self.step += 1;
        self.publish_counts();
        let num_tokens: usize = plan.iter().map(|p| p.extend).sum();
        let cached: usize = plan
            .iter()
            .map(|p| &self.running[p.idx])
            .filter(|r| r.kv_len == r.cached_len)
            .map(|r| r.cached_len)
            .sum();
        let info = StepInfo {
            dp_rank: self.dp_rank,
            step: self.step,
            mode,
            batch_size: plan.len(),
            num_tokens,
            cached_tokens: cached,
            running_requests: self.running.len(),
            queued_requests: self.waiting.len(),
            kv_used_tokens: self.kv_used(),
            kv_total_tokens: self.pool.total_tokens(),
        };
        let record = self.observer.as_ref().is_some_and(|o| o.step_begin(&info));
        let batch = ForwardBatch {
            seqs: plan
                .iter()
                .map(|p| {
                    let r = &self.running[p.idx];
                    SeqInput {
                        tokens: r.fill(r.kv_len..r.kv_len + p.extend),
                        start_pos: r.kv_len,
                        slots: r.slots[..r.kv_len + p.extend].to_vec(),
                        want_logits: p.last_chunk,
                    }
                })
                .collect(),
            record_ops: record,
            all_logits: false,
        };
        let t_run = Instant::now();
        let out = self.tp.forward(batch);
        let mut rank_ops = out.rank_ops;
        // Sampling belongs to the batch's run, as SGLang samples inside run_batch.
        let t_sample = Instant::now();
        let tokens = self.sample(&plan, out.logits.unwrap_or_default());
        let t_out = Instant::now();
        if record {
            rank_ops[0].push(OpEvent {
                kind: OpKind::Sampling,
                layer: None,
                start: t_sample,
                end: t_out,
                dims: [tokens.len(), self.vocab_size, 0],
            });
        }
        self.process_result(mode, &plan, &tokens);
        let t_end = Instant::now();

        self.stats.steps_total.fetch_add(1, Ordering::Relaxed);
        self.stats
            .step_ns_total
            .fetch_add((t_end - t_sched).as_nanos() as u64, Ordering::Relaxed);
        self.stats
            .forward_ns_total
            .fetch_add((t_out - t_run).as_nanos() as u64, Ordering::Relaxed);
        self.log_step(&info);
        self.publish_stats();
        if let Some(obs) = &self.observer {
            let phases = [
                (SchedulerPhase::RecvRequests, t_recv, t_sched),
                (SchedulerPhase::Schedule, t_sched, t_run),
                (SchedulerPhase::RunBatch, t_run, t_out),
                (SchedulerPhase::ProcessOutput, t_out, t_end),
            ];
            obs.step_end(&StepReport {
                info: &info,
                phases: &phases,
                rank_ops: if record { &rank_ops } else { &[] },
            });
        }
    }

    /// One token for every request that finished its prefill or decoded, in plan order;
    /// spread over rank 0's compute threads.
    fn sample(&mut self, plan: &[Planned], mut logits: Vec<f32>) -> Vec<u32> {
        use rayon::prelude::*;
        let vocab = self.vocab_size;
        let eos = &self.eos_ids;
        let mut wanted = plan
            .iter()
            .filter(|p| p.last_chunk)
            .map(|p| p.idx)
            .peekable();
        let mut jobs: Vec<(&mut Req, &mut [f32])> = Vec::new();
        let mut rows = logits.chunks_mut(vocab.max(1));
        for (i, r) in self.running.iter_mut().enumerate() {
            if wanted.peek() == Some(&i) {
                wanted.next();
                jobs.push((r, rows.next().expect("one logits row per sampled request")));
            }
        }
        let pick = |(r, l): &mut (&mut Req, &mut [f32])| {
            if r.output.len() < r.params.min_new_tokens {
                for &t in eos.iter().chain(&r.params.stop_token_ids) {
                    if let Some(v) = l.get_mut(t as usize) {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            let tok = r.sampler.sample(l, &r.params, &r.prompt);
            r.sampler.observe(tok, &r.params);
            tok
        };
        if jobs.len() >= 16 {
            self.tp.install(|| jobs.par_iter_mut().map(pick).collect())
        } else {
            jobs.iter_mut().map(pick).collect()
        }
    }

    fn process_result(&mut self, mode: ForwardMode, plan: &[Planned], tokens: &[u32]) {
        let mut sampled = tokens.iter();
        let mut finished_idx = Vec::new();
        for p in plan {
            let r = &mut self.running[p.idx];
            r.kv_len += p.extend;
            if !p.last_chunk {
                continue;
            }
            let tok = *sampled.next().expect("a token per sampled request");
            r.output.push(tok);
            if r.log_metrics {
                self.stats
                    .generation_tokens_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.log_tokens += 1;
            Self::check_finish(
                r,
                tok,
                &self.eos_ids,
                &self.tokenizer,
                self.cfg.context_length,
            );
            if r.finish.is_some() {
                finished_idx.push(p.idx);
            }
        }
        // The chunked request (always last in an EXTEND batch) goes back to `chunked`.
        if mode == ForwardMode::Extend
            && let Some(last) = plan.last()
            && !last.last_chunk
        {
            let mut r = self.running.remove(last.idx);
            self.cache_unfinished(&mut r);
            self.chunked = Some(r);
        }
        // Emit outputs, then retire finished requests (highest index first keeps indices valid).
        for p in plan.iter().filter(|p| p.last_chunk) {
            let r = &mut self.running[p.idx];
            let interval = r.stream_interval.unwrap_or(self.cfg.stream_interval).max(1);
            let due = r.stream && (r.output.len() - r.sent_ids >= interval || r.output.len() == 1);
            if due && r.finish.is_none() {
                Self::emit_req(r);
            }
        }
        finished_idx.sort_unstable_by(|a, b| b.cmp(a));
        for idx in finished_idx {
            let mut r = self.running.remove(idx);
            self.release_kv(&mut r);
            Self::emit_req(&mut r);
            if r.log_metrics {
                self.stats
                    .requests_finished_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// SGLang's `check_finished`, plus stop strings on the detokenized text.
    fn check_finish(r: &mut Req, tok: u32, eos: &[u32], tokenizer: &Tokenizer, context_len: usize) {
        let skip = r.params.skip_special_tokens;
        let is_eos = !r.params.ignore_eos && eos.contains(&tok);
        let is_stop_id = r.params.stop_token_ids.contains(&tok);
        // Stop ids cannot be sampled before min_new_tokens: their logits are masked.
        if is_eos || is_stop_id {
            // The stop token itself is not part of the text (SGLang trims it).
            if r.params.no_stop_trim {
                let delta = r.detok.push(tokenizer, tok, skip).unwrap_or_default();
                r.text.push_str(&delta);
            }
            r.finish = Some(FinishReason::StopToken(tok));
            return;
        }
        let delta = r.detok.push(tokenizer, tok, skip).unwrap_or_default();
        let before = r.text.len();
        r.text.push_str(&delta);
        if !r.params.stop.is_empty() && !delta.is_empty() {
            let longest = r.params.stop.iter().map(|s| s.len()).max().unwrap_or(0);
            let mut from = before.saturating_sub(longest.saturating_sub(1));
            while !r.text.is_char_boundary(from) {
                from -= 1;
            }
            let hit = r
                .params
                .stop
                .iter()
                .filter_map(|s| r.text[from..].find(s.as_str()).map(|pos| (from + pos, s)))
                .min_by_key(|(pos, _)| *pos);
            if let Some((pos, s)) = hit {
                let s = s.clone();
                let end = if r.params.no_stop_trim {
                    pos + s.len()
                } else {
                    pos
                };
                r.text.truncate(end);
                r.finish = Some(FinishReason::StopString(s));
                return;
            }
        }
        if r.output.len() >= r.params.max_new_tokens {
            r.finish = Some(FinishReason::Length(r.params.max_new_tokens));
        } else if r.fill_len() >= context_len {
            r.finish = Some(FinishReason::Length(r.output.len()));
        }
        if r.finish.is_some() {
            let rest = r.detok.flush(tokenizer, skip).unwrap_or_default();
            r.text.push_str(&rest);
        }
    }

    /// Send what the client has not seen yet. While unfinished, text that may be the start of
    /// a stop string is held back so that streamed deltas never show a stop string.
    fn emit_req(r: &mut Req) {
        let safe_end = if r.finish.is_some() {
            r.text.len()
        } else {
            r.text.len() - stop_prefix_suffix_len(&r.text, &r.params.stop)
        };
        let text = r
            .text
            .get(r.sent_text..safe_end)
            .unwrap_or_default()
            .to_string();
        r.sent_text = safe_end.max(r.sent_text);
        let token_ids = r.output[r.sent_ids..].to_vec();
        r.sent_ids = r.output.len();
        let _ = r.tx.send(RequestOutput {
            text,
            token_ids,
            prompt_tokens: r.prompt.len(),
            completion_tokens: r.output.len(),
            cached_tokens: r.cached_tokens,
            num_retractions: r.num_retractions,
            finish: r.finish.clone(),
        });
    }

    fn kv_used(&self) -> usize {
        self.pool.total_tokens() - self.pool.free_tokens() - self.cache.evictable_tokens()
    }

    /// The running and queued counts. Admission (`--max-queued-requests`) reads them, so a
    /// step publishes them before it can emit anything: a client that has seen its request's
    /// first token must also see that request counted as running.
    fn publish_counts(&self) {
        let s = &self.stats;
        s.running.store(
            self.running.len() + self.chunked.is_some() as usize,
            Ordering::Relaxed,
        );
        s.queued.store(self.waiting.len(), Ordering::Relaxed);
    }

    fn publish_stats(&self) {
        let s = &self.stats;
        self.publish_counts();
        s.kv_used_tokens.store(self.kv_used(), Ordering::Relaxed);
        s.cache_evictable_tokens
            .store(self.cache.evictable_tokens(), Ordering::Relaxed);
    }

    /// SGLang's scheduler log lines, so existing log parsers keep working.
    fn log_step(&mut self, info: &StepInfo) {
        let usage = info.kv_used_tokens as f64 / info.kv_total_tokens.max(1) as f64;
        match info.mode {
            ForwardMode::Extend => tracing::info!(
                "Prefill batch. #new-seq: {}, #new-token: {}, #cached-token: {}, token usage: {:.2}, #running-req: {}, #queue-req: {}",
                info.batch_size,
                info.num_tokens,
                info.cached_tokens,
                usage,
                info.running_requests - info.batch_size,
                info.queued_requests
            ),
            ForwardMode::Decode => {
                if self.step.is_multiple_of(DECODE_LOG_INTERVAL) {
                    let secs = self.log_since.elapsed().as_secs_f64();
                    let tput = self.log_tokens as f64 / secs.max(1e-9);
                    self.stats
                        .last_gen_throughput
                        .store(tput.to_bits(), Ordering::Relaxed);
                    self.log_tokens = 0;
                    self.log_since = Instant::now();
                    tracing::info!(
                        "Decode batch. #running-req: {}, #token: {}, token usage: {:.2}, gen throughput (token/s): {:.2}, #queue-req: {}",
                        info.batch_size,
                        info.kv_used_tokens,
                        usage,
                        tput,
                        info.queued_requests
                    );
                }
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string.
fn stop_prefix_suffix_len(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for k in (1..s.len()).rev() {
            if k <= best {
                break;
            }
            if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                best = k;
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_back_text_is_a_stop_prefix() {
        let stops = vec!["</end>".to_string(), "xy".to_string()];
        assert_eq!(stop_prefix_suffix_len("hello </e", &stops), 3);
        assert_eq!(stop_prefix_suffix_len("hello x", &stops), 1);
        assert_eq!(stop_prefix_suffix_len("hello", &stops), 0);
    }
}
