//! The engine's only window to the outside: a step observer. The scheduler tells it about
//! every step (counter, forward mode, batch shape) and, when asked, hands it the host-phase
//! timings and every rank's per-op timings. The profiler implements this trait; the engine
//! knows nothing of traces.

use std::time::Instant;

/// What kind of batch a step runs, named as SGLang's `ForwardMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    /// Prefill (possibly one chunk of a chunked prefill).
    Extend,
    Decode,
}

impl ForwardMode {
    pub fn name(self) -> &'static str {
        match self {
            ForwardMode::Extend => "EXTEND",
            ForwardMode::Decode => "DECODE",
        }
    }
}

/// One scheduler step (= one batch), described before its forward runs.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub dp_rank: usize,
    /// Absolute per-scheduler step counter; starts at 1 for the first batch after start-up.
    pub step: u64,
    pub mode: ForwardMode,
    pub batch_size: usize,
    /// Tokens computed this step (sum of extend lengths, or the batch size for decode).
    pub num_tokens: usize,
    /// Prompt tokens served from the prefix cache among this step's new sequences.
    pub cached_tokens: usize,
    pub running_requests: usize,
    pub queued_requests: usize,
    pub kv_used_tokens: usize,
    pub kv_total_tokens: usize,
}

/// Host-side phases of one scheduler iteration (SGLang's `scheduler.recv_requests`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerPhase {
    RecvRequests,
    Schedule,
    RunBatch,
    ProcessOutput,
}

impl SchedulerPhase {
    pub fn name(self) -> &'static str {
        match self {
            SchedulerPhase::RecvRequests => "scheduler.recv_requests",
            SchedulerPhase::Schedule => "scheduler.get_next_batch_to_run",
            SchedulerPhase::RunBatch => "scheduler.run_batch",
            SchedulerPhase::ProcessOutput => "scheduler.process_batch_result",
        }
    }
}

/// Operations a rank runs in a forward, in launch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Embedding,
    InputNorm,
    QkvProj,
    Rope,
    Attention,
    OProj,
    AllReduce,
    PostAttentionNorm,
    GateUpProj,
    SiluAndMul,
    DownProj,
    FinalNorm,
    LmHead,
    AllGather,
    Sampling,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Embedding => "embedding",
            OpKind::InputNorm => "input_layernorm",
            OpKind::QkvProj => "qkv_proj",
            OpKind::Rope => "rotary_emb",
            OpKind::Attention => "attention",
            OpKind::OProj => "o_proj",
            OpKind::AllReduce => "all_reduce",
            OpKind::PostAttentionNorm => "post_attention_layernorm",
            OpKind::GateUpProj => "gate_up_proj",
            OpKind::SiluAndMul => "silu_and_mul",
            OpKind::DownProj => "down_proj",
            OpKind::FinalNorm => "norm",
            OpKind::LmHead => "lm_head",
            OpKind::AllGather => "all_gather",
            OpKind::Sampling => "sampling",
        }
    }

    /// Is this a matrix multiplication (counted in achieved GFLOP/s)?
    pub fn is_projection(self) -> bool {
        matches!(
            self,
            OpKind::QkvProj
                | OpKind::OProj
                | OpKind::GateUpProj
                | OpKind::DownProj
                | OpKind::LmHead
        )
    }
}

/// One timed operation on one rank. `dims` are `[m, k, n]` for projections, `[tokens, width, 0]`
/// for elementwise ops and collectives.
#[derive(Debug, Clone, Copy)]
pub struct OpEvent {
    pub kind: OpKind,
    pub layer: Option<u32>,
    pub start: Instant,
    pub end: Instant,
    pub dims: [usize; 3],
}

impl OpEvent {
    /// Floating-point operations of a projection (`2·m·k·n`), zero otherwise.
    pub fn flops(&self) -> f64 {
        if self.kind.is_projection() {
            2.0 * self.dims[0] as f64 * self.dims[1] as f64 * self.dims[2] as f64
        } else {
            0.0
        }
    }
}

/// Everything known about a finished step.
#[derive(Debug)]
pub struct StepReport<'a> {
    pub info: &'a StepInfo,
    pub phases: &'a [(SchedulerPhase, Instant, Instant)],
    /// Per tensor-parallel rank, its ops in order; empty unless `step_begin` asked for them.
    pub rank_ops: &'a [Vec<OpEvent>],
}

/// Implemented by whoever wants to watch the scheduler (the profiler, benchmarks).
pub trait StepObserver: Send + Sync {
    /// Called before the step's forward. Return true to have every rank time its ops.
    fn step_begin(&self, info: &StepInfo) -> bool {
        let _ = info;
        false
    }
    /// Called once the step's outputs have been processed.
    fn step_end(&self, report: &StepReport<'_>) {
        let _ = report;
    }
}
