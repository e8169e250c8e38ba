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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DatasetName, RangeSemantics, SharedPrefixPlan};

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
            PromptInput::Text(_) => unreachable!(),
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
