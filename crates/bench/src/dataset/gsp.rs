//! bench_serving's `generated-shared-prefix`: `--gsp-num-groups` groups, each a random system
//! prompt shared by `--gsp-prompts-per-group` prompts with their own random question; groups
//! assigned uniformly or by Zipf rank; shuffled unless `--gsp-ordered`. The request count is
//! groups x prompts per group (`--num-prompts` does not apply, as upstream).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, weighted::WeightedIndex};

use super::{DatasetConfig, Prompt, PromptInput, draw_len};
use crate::error::{BenchError, Result};
use crate::plan::GroupDistribution;
use crate::session::{Conversation, Message, Turn};
use crate::tokenizer::BenchTokenizer;

/// Random token ids from the whole vocabulary (bench_serving's `gen_prompt_ids`).
fn random_ids(rng: &mut StdRng, vocab: usize, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab) as u32).collect()
}

pub fn generate(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    server_vocab: Option<usize>,
) -> Result<Vec<Prompt>> {
    let g = cfg.gsp;
    let ids_mode = cfg.tokenize_prompt;
    let tok_for_text = match (ids_mode, tok) {
        (true, _) => None,
        (false, Some(t)) => Some(t),
        (false, None) => {
            return Err(BenchError::Tokenizer(
                "generated-shared-prefix builds text prompts and needs a tokenizer: pass \
                 --tokenizer, or --tokenize-prompt to send token ids"
                    .into(),
            ));
        }
    };
    let vocab = tok
        .map(BenchTokenizer::vocab_size)
        .or(server_vocab)
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            BenchError::Usage(
                "generated-shared-prefix needs the vocabulary size; pass --tokenizer".into(),
            )
        })?;
    if g.num_groups == 0 || g.prompts_per_group == 0 {
        return Err(BenchError::Usage(
            "--gsp-num-groups and --gsp-prompts-per-group must be at least 1".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let r = g.range_ratio;
    let sem = cfg.semantics;
    let slots = g.num_groups * g.prompts_per_group;
    let sys_lens: Vec<usize> = (0..g.num_groups)
        .map(|_| draw_len(&mut rng, g.system_prompt_len, r, sem))
        .collect();
    let q_lens: Vec<usize> = (0..slots)
        .map(|_| draw_len(&mut rng, g.question_len, r, sem))
        .collect();
    let out_lens: Vec<usize> = (0..slots)
        .map(|_| draw_len(&mut rng, g.output_len, r, sem))
        .collect();
    let text = |ids: &[u32]| -> Result<String> { tok_for_text.expect("text mode").decode(ids) };
    let systems: Vec<Vec<u32>> = sys_lens
        .iter()
        .map(|&n| random_ids(&mut rng, vocab, n))
        .collect();
    let system_texts: Vec<String> = match tok_for_text {
        Some(_) => systems.iter().map(|s| text(s)).collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let assignment: Vec<usize> = match g.distribution {
        GroupDistribution::Uniform => (0..slots).map(|s| s / g.prompts_per_group).collect(),
        GroupDistribution::Zipf { alpha } => {
            let weights = (1..=g.num_groups).map(|rank| 1.0 / (rank as f64).powf(alpha));
            let dist = WeightedIndex::new(weights)
                .map_err(|e| BenchError::Usage(format!("--gsp-zipf-alpha: {e}")))?;
            // A separate stream, so the prompts match the uniform mode's for the same seed.
            let mut zrng = StdRng::seed_from_u64(cfg.seed ^ 0x5A1F);
            (0..slots).map(|_| dist.sample(&mut zrng)).collect()
        }
    };
    let run_key = format!(
        "{:08x}_{}",
        rng.random::<u32>(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let mut prompts = Vec::with_capacity(slots);
    for (slot, &group) in assignment.iter().enumerate() {
        let question = random_ids(&mut rng, vocab, q_lens[slot]);
        let (input, prompt_len) = match tok_for_text {
            None => {
                let mut ids = systems[group].clone();
                ids.extend_from_slice(&question);
                let n = ids.len();
                (PromptInput::Ids(ids), n)
            }
            Some(t) => {
                let p = format!("{}\n\n{}", system_texts[group], text(&question)?);
                let n = t.encode(&p)?.len();
                (PromptInput::Text(p), n)
            }
        };
        prompts.push(Prompt {
            input,
            prompt_len,
            output_len: out_lens[slot],
            routing_key: g.send_routing_key.then(|| format!("{run_key}_{group}")),
        });
    }
    if !g.ordered {
        prompts.shuffle(&mut rng);
    }
    Ok(prompts)
}

/// `--gsp-num-turns T > 1`: each generated prompt opens a conversation (`{system}\n\n{q0}`
/// as its first user message), followed by T - 1 more random questions of the question
/// length, as bench_serving; no system role, the group's routing key on every round.
pub fn conversations(
    cfg: &DatasetConfig<'_>,
    tok: Option<&BenchTokenizer>,
    server_vocab: Option<usize>,
) -> Result<Vec<Conversation>> {
    let Some(t) = tok.filter(|_| !cfg.tokenize_prompt) else {
        return Err(BenchError::Usage(
            "--gsp-num-turns > 1 sends chat histories as text: it needs a tokenizer and no \
             --tokenize-prompt"
                .into(),
        ));
    };
    let firsts = generate(cfg, tok, server_vocab)?;
    let vocab = server_vocab.map_or(t.vocab_size(), |v| v.min(t.vocab_size()));
    let g = cfg.gsp;
    // Its own stream, so the first rounds are the single-turn dataset's prompts.
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x7_0125);
    firsts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let PromptInput::Text(first) = p.input else {
                return Err(BenchError::Usage(
                    "generated-shared-prefix: text expected".into(),
                ));
            };
            let mut turns = vec![Turn {
                messages: vec![Message::new("user", first)],
                output_len: p.output_len,
                prompt_len: None,
            }];
            for _ in 1..g.num_turns {
                let n = draw_len(&mut rng, g.question_len, g.range_ratio, cfg.semantics);
                let q = t.decode(&random_ids(&mut rng, vocab, n))?;
                turns.push(Turn {
                    messages: vec![Message::new("user", q)],
                    output_len: p.output_len,
                    prompt_len: None,
                });
            }
            Ok(Conversation {
                turns,
                routing_key: p.routing_key,
                session: i as u32,
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        DatasetName, MooncakePlan, RangeSemantics, SharedPrefixPlan, TraceDatasetPlan,
    };
    use std::sync::LazyLock;

    static MOONCAKE: LazyLock<MooncakePlan> = LazyLock::new(|| MooncakePlan {
        workload: "conversation".into(),
        slowdown_factor: 1.0,
        num_rounds: 1,
        history: crate::session::History::Real,
        block_tokens: 512,
    });
    static TRACES: LazyLock<TraceDatasetPlan> = LazyLock::new(TraceDatasetPlan::default);

    fn gsp(distribution: GroupDistribution) -> SharedPrefixPlan {
        SharedPrefixPlan {
            num_groups: 4,
            prompts_per_group: 5,
            system_prompt_len: 40,
            question_len: 8,
            output_len: 16,
            range_ratio: 1.0,
            send_routing_key: true,
            ordered: true,
            distribution,
            num_turns: 1,
        }
    }

    fn cfg(g: &SharedPrefixPlan) -> DatasetConfig<'_> {
        DatasetConfig {
            name: DatasetName::GeneratedSharedPrefix,
            path: "",
            num: 0,
            input_len: 0,
            output_len: 0,
            range_ratio: 0.0,
            semantics: RangeSemantics::Sglang,
            tokenize_prompt: true,
            sharegpt_output_len: None,
            sharegpt_context_len: None,
            apply_chat_template: false,
            prompt_suffix: "",
            gsp: g,
            mooncake: &MOONCAKE,
            traces: &TRACES,
            image: Box::leak(Box::default()),
            seed: 7,
            scenario: None,
        }
    }

    #[test]
    fn groups_share_their_system_prompt() {
        let g = gsp(GroupDistribution::Uniform);
        let p = generate(&cfg(&g), None, Some(1000)).unwrap();
        assert_eq!(p.len(), 20);
        let ids = |i: usize| match &p[i].input {
            PromptInput::Ids(v) => v.clone(),
            other => panic!("ids expected, got {other:?}"),
        };
        assert_eq!(ids(0)[..40], ids(4)[..40], "same group, same prefix");
        assert_ne!(ids(0)[..40], ids(5)[..40], "next group, another prefix");
        assert!(p.iter().all(|x| x.prompt_len == 48 && x.output_len == 16));
        let keys: std::collections::HashSet<_> = p.iter().map(|x| x.routing_key.clone()).collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn zipf_makes_the_first_group_hottest() {
        let mut g = gsp(GroupDistribution::Zipf { alpha: 1.5 });
        g.prompts_per_group = 200;
        let p = generate(&cfg(&g), None, Some(1000)).unwrap();
        let count = |grp: usize| {
            p.iter()
                .filter(|x| {
                    x.routing_key
                        .as_deref()
                        .unwrap()
                        .ends_with(&format!("_{grp}"))
                })
                .count()
        };
        assert!(
            count(0) > 2 * count(1) && count(1) > count(3),
            "{} {} {}",
            count(0),
            count(1),
            count(3)
        );
    }
}
