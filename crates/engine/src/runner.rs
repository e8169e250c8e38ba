//! The model without a scheduler: SGLang's `ModelRunner` as `bench_one_batch` drives it. The
//! caller builds each [`ForwardBatch`] itself (its own KV slots, no prefix cache, no queue) and
//! gets rank 0's logits back; the model is loaded exactly as [`crate::Engine::start`] loads it.

use std::sync::Arc;

use crate::config::{ModelConfig, ModelSource};
use crate::engine::{EngineArgs, LoadedModel};
use crate::error::EngineError;
use crate::model::{ForwardBatch, RankModel};
use crate::parallel::{ForwardOutput, TpGroup};
use crate::tokenizer::Tokenizer;

/// One tensor-parallel group of ranks and its KV cache of `max_total_tokens` slots, driven
/// one forward at a time by its owner.
pub struct ModelRunner {
    config: Arc<ModelConfig>,
    tokenizer: Option<Arc<Tokenizer>>,
    tp: TpGroup,
    context_length: usize,
    max_total_tokens: usize,
    threads_per_rank: usize,
    pub model_source: ModelSource,
    pub eos_token_ids: Vec<u32>,
}

impl ModelRunner {
    /// Load the model of `args` (its scheduler settings are not used). There is no router, so
    /// `dp_size` must be 1.
    pub fn load(args: &EngineArgs) -> Result<ModelRunner, EngineError> {
        if args.dp_size != 1 {
            return Err(EngineError::Config(format!(
                "--dp-size {}: a model runner is one data-parallel group; use --dp-size 1",
                args.dp_size
            )));
        }
        let m = LoadedModel::load(args)?;
        let ranks = RankModel::load_all(
            m.config.clone(),
            &m.weights,
            args.tp_size,
            m.max_total_tokens,
            m.threads_per_rank,
            m.dtype,
        )?;
        Ok(ModelRunner {
            config: m.config,
            tokenizer: m.tokenizer,
            tp: TpGroup::new(ranks, 0),
            context_length: m.context_length,
            max_total_tokens: m.max_total_tokens,
            threads_per_rank: m.threads_per_rank,
            model_source: m.source,
            eos_token_ids: m.eos_token_ids,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `None` with `--skip-tokenizer-init`.
    pub fn tokenizer(&self) -> Option<&Arc<Tokenizer>> {
        self.tokenizer.as_ref()
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// KV slots of every rank: a batch's slots must be below this.
    pub fn max_total_tokens(&self) -> usize {
        self.max_total_tokens
    }

    pub fn tp_size(&self) -> usize {
        self.tp.tp_size()
    }

    pub fn threads_per_rank(&self) -> usize {
        self.threads_per_rank
    }

    /// Run one batch on every rank; rank 0's logits come back (one row per sequence that
    /// wants them, `vocab_size` wide), and every rank's op timings when the batch asked.
    pub fn forward(&mut self, batch: ForwardBatch) -> ForwardOutput {
        self.tp.forward(batch)
    }
}
