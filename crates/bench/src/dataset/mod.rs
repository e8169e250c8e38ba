//! Datasets: the prompts to send, with bench_serving's sampling rules (`random`, `random-ids`,
//! `sharegpt`, `custom`, `generated-shared-prefix`) and genai-bench's traffic scenarios.
//! Everything here happens before the run; nothing is tokenized while streams are timed.

mod agentic;
mod gsp;
pub mod image;
mod lines;
mod longbench;
#[cfg(feature = "parquet")]
pub mod mmmu_parquet;
mod mooncake;
mod openai;
mod random;
pub mod scenario;
mod sharegpt;
mod speed_bench;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::error::{BenchError, Result};
use crate::plan::{
    DatasetName, ImagePlan, MooncakePlan, RangeSemantics, SharedPrefixPlan, TraceDatasetPlan,
};
use crate::session::Conversation;
use crate::tokenizer::BenchTokenizer;

pub use scenario::Scenario;
pub use sharegpt::{load_conversations, sharegpt_path};

/// What a request carries as its prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    /// Token ids (`--tokenize-prompt`, or no tokenizer to turn them into text).
    Ids(Vec<u32>),
    /// A chat history, sent as is to chat routes (multi-turn rounds, openai lines).
    Messages(Vec<crate::session::Message>),
    /// Text with images (data URIs): chat routes send one user message of image_url parts
    /// then the text; /generate sends `templated` (else `text`) with `image_data`.
    Multimodal {
        text: String,
        /// The text through the tokenizer's chat template (None: it has none).
        templated: Option<String>,
        /// The text's tokens as /generate counts what it is sent (`prompt_len` is the chat
        /// routes' count).
        native_len: usize,
        images: std::sync::Arc<[String]>,
    },
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub input: PromptInput,
    /// The prompt's length in tokens as the dataset counted it.
    pub prompt_len: usize,
    pub output_len: usize,
    /// `X-SMG-Routing-Key` (generated-shared-prefix with --gsp-send-routing-key).
    pub routing_key: Option<String>,
}

/// The dataset flags, resolved.
pub struct DatasetConfig<'a> {
    pub name: DatasetName,
    pub path: &'a str,
    pub num: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub range_ratio: f64,
    pub semantics: RangeSemantics,
    pub tokenize_prompt: bool,
    pub sharegpt_output_len: Option<usize>,
    pub sharegpt_context_len: Option<usize>,
    pub apply_chat_template: bool,
    pub prompt_suffix: &'a str,
    pub gsp: &'a SharedPrefixPlan,
    pub mooncake: &'a MooncakePlan,
    pub traces: &'a TraceDatasetPlan,
    pub image: &'a ImagePlan,
    pub seed: u64,
    /// A genai-bench scenario replaces the dataset's lengths (prompts as random-ids).
    pub scenario: Option<&'a Scenario>,
}

/// The prompts, and anything the user should know about how they were made.
#[derive(Default)]
pub struct Dataset {
    /// Single requests (empty when the dataset is conversations).
    pub prompts: Vec<Prompt>,
    /// Conversations, each sent round by round (multi-turn datasets, openai lines).
    pub sessions: Vec<Conversation>,
    pub notes: Vec<String>,
    /// The warmup request, where bench_serving's is not made from the first prompt or
    /// conversation (mooncake with canned history).
    pub warmup: Option<Prompt>,
}

impl Dataset {
    fn single(prompts: Vec<Prompt>, notes: Vec<String>) -> Self {
        Dataset {
            prompts,
            notes,
            ..Dataset::default()
        }
    }

    /// The conversations carry their own start times (a trace replay).
    pub fn timed(&self) -> bool {
        !self.sessions.is_empty() && self.sessions.iter().all(|c| c.at.is_some())
    }
}

/// A length drawn around `len` with `--random-range-ratio r`.
pub fn draw_len(rng: &mut StdRng, len: usize, r: f64, semantics: RangeSemantics) -> usize {
    if len == 0 {
        return 0;
    }
    let (lo, hi) = match semantics {
        // bench_serving: np.random.randint(max(int(L*r), 1), L + 1).
        RangeSemantics::Sglang => (((len as f64 * r) as usize).max(1), len),
        // vLLM: uniform on [L*(1-r), L*(1+r)].
        RangeSemantics::Vllm => (
            ((len as f64 * (1.0 - r)) as usize).max(1),
            ((len as f64 * (1.0 + r)) as usize).max(1),
        ),
    };
    if lo >= hi {
        lo.max(1)
    } else {
        rng.random_range(lo..=hi)
    }
}

/// The tokenizer a dataset cannot do without.
fn need<'t>(tok: Option<&'t BenchTokenizer>, what: &str) -> Result<&'t BenchTokenizer> {
    tok.ok_or_else(|| {
        BenchError::Tokenizer(format!(
            "{what} needs a tokenizer: pass --tokenizer (a tokenizer.json or its directory); the \
             server's /model_info gave none readable from here"
        ))
    })
}

/// Build the dataset. `vocab` is the server's vocabulary size (random-ids without a tokenizer).
pub fn build(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    vocab: Option<usize>,
) -> Result<Dataset> {
    let mut notes = Vec::new();
    let data = if let Some(sc) = cfg.scenario {
        let p = random::random_ids(cfg, tok, vocab, &mut notes, |rng| sc.draw(rng))?;
        Dataset::single(p, notes)
    } else {
        match cfg.name {
            DatasetName::RandomIds => {
                let p = random::random_ids(cfg, tok, vocab, &mut notes, |rng| {
                    (
                        draw_len(rng, cfg.input_len, cfg.range_ratio, cfg.semantics),
                        draw_len(rng, cfg.output_len, cfg.range_ratio, cfg.semantics),
                    )
                })?;
                Dataset::single(p, notes)
            }
            DatasetName::Random => {
                let p = random::random_from_sharegpt(
                    cfg,
                    need(tok, "--dataset-name random")?,
                    &mut notes,
                )?;
                Dataset::single(p, notes)
            }
            DatasetName::Sharegpt | DatasetName::Custom => {
                let p = sharegpt::conversations(cfg, need(tok, "this dataset")?, &mut notes)?;
                Dataset::single(p, notes)
            }
            DatasetName::GeneratedSharedPrefix if cfg.gsp.num_turns > 1 => Dataset {
                sessions: gsp::conversations(cfg, tok, vocab)?,
                notes,
                ..Default::default()
            },
            DatasetName::GeneratedSharedPrefix => {
                Dataset::single(gsp::generate(cfg, tok, vocab)?, notes)
            }
            DatasetName::Mooncake => {
                let m = mooncake::sessions(cfg, tok, vocab, &mut notes)?;
                Dataset {
                    sessions: m.sessions,
                    warmup: m.warmup,
                    notes,
                    ..Default::default()
                }
            }
            DatasetName::AgenticTrace => Dataset {
                sessions: agentic::sessions(cfg, &mut notes)?,
                notes,
                ..Default::default()
            },
            DatasetName::Openai => Dataset {
                sessions: openai::requests(cfg, tok, &mut notes)?,
                notes,
                ..Default::default()
            },
            DatasetName::LongbenchV2 => {
                Dataset::single(longbench::prompts(cfg, tok, &mut notes)?, notes)
            }
            DatasetName::SpeedBench => {
                Dataset::single(speed_bench::prompts(cfg, tok, &mut notes)?, notes)
            }
            DatasetName::Image => Dataset::single(
                image::generate(cfg, need(tok, "--dataset-name image")?, &mut notes)?,
                notes,
            ),
            DatasetName::Mmmu => Dataset::single(
                image::mmmu(cfg, need(tok, "--dataset-name mmmu")?, &mut notes)?,
                notes,
            ),
        }
    };
    if data.prompts.is_empty() && data.sessions.is_empty() {
        return Err(BenchError::Usage(format!(
            "--dataset-name {}: no prompts were left after filtering",
            cfg.name.name()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn range_ratio_follows_sglang() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = RangeSemantics::Sglang;
        assert!((0..50).all(|_| draw_len(&mut rng, 100, 1.0, s) == 100));
        let wide: Vec<usize> = (0..4000).map(|_| draw_len(&mut rng, 100, 0.0, s)).collect();
        assert!(wide.iter().all(|&l| (1..=100).contains(&l)));
        let mean = wide.iter().sum::<usize>() as f64 / wide.len() as f64;
        assert!((mean - 50.5).abs() < 2.0, "{mean}");
        assert_eq!(draw_len(&mut rng, 0, 0.5, s), 0);
    }

    #[test]
    fn range_ratio_follows_vllm_when_asked() {
        let mut rng = StdRng::seed_from_u64(2);
        let v = RangeSemantics::Vllm;
        assert!((0..50).all(|_| draw_len(&mut rng, 100, 0.0, v) == 100));
        let wide: Vec<usize> = (0..4000).map(|_| draw_len(&mut rng, 100, 0.5, v)).collect();
        assert!(wide.iter().all(|&l| (50..=150).contains(&l)));
        let mean = wide.iter().sum::<usize>() as f64 / wide.len() as f64;
        assert!((mean - 100.0).abs() < 2.0, "{mean}");
    }
}
