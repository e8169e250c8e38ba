//! Body keys that bench_serving's request flags add (`--fake-prefill`, `--return-logprob` and
//! its companions, `--return-routed-experts`), and the LoRA adapter each request names
//! (`--lora-name`, by `--lora-request-distribution`), per route as upstream sends them.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, weighted::WeightedIndex};
use serde_json::{Map, Value, json};

use crate::plan::{Api, LoraDistribution, LoraPlan, RequestFlags};

/// The keys every body of a run gets from the flags (before --extra-request-body, which
/// overrides them).
pub fn flag_keys(api: Api, f: &RequestFlags) -> Map<String, Value> {
    let mut m = Map::new();
    if f.fake_prefill {
        m.insert("bootstrap_host".into(), json!("2.2.2.2"));
        m.insert("bootstrap_room".into(), json!(0));
    }
    match api {
        Api::Native => {
            if f.return_routed_experts {
                m.insert("return_routed_experts".into(), json!(true));
            }
            if f.return_logprob {
                m.insert("return_logprob".into(), json!(true));
                m.insert("logprob_start_len".into(), json!(f.logprob_start_len));
                if f.top_logprobs_num > 0 {
                    m.insert("top_logprobs_num".into(), json!(f.top_logprobs_num));
                }
                if let Some(ids) = &f.token_ids_logprob {
                    m.insert("token_ids_logprob".into(), json!(ids));
                }
            }
        }
        Api::Completions if f.return_logprob && f.top_logprobs_num > 0 => {
            m.insert("logprobs".into(), json!(f.top_logprobs_num));
        }
        _ => {}
    }
    m
}

/// Each request's adapter, in order, for `n` requests.
pub fn lora_choices(plan: &LoraPlan, n: usize, seed: u64) -> Vec<&str> {
    let names = &plan.names;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x10_4A);
    match plan.distribution {
        LoraDistribution::Uniform => (0..n)
            .map(|_| names[rng.random_range(0..names.len())].as_str())
            .collect(),
        LoraDistribution::Distinct => (0..n).map(|i| names[i % names.len()].as_str()).collect(),
        LoraDistribution::Skewed { alpha } => {
            let weights = (0..names.len()).map(|i| alpha.powi(-(i as i32)));
            match WeightedIndex::new(weights) {
                Ok(w) => (0..n).map(|_| names[w.sample(&mut rng)].as_str()).collect(),
                Err(_) => vec![names[0].as_str(); n],
            }
        }
    }
}

/// The body keys naming `adapter`: `lora_path` everywhere, and the OpenAI routes' `model`.
pub fn lora_keys(api: Api, adapter: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("lora_path".into(), json!(adapter));
    if matches!(api, Api::Completions | Api::Chat | Api::Embeddings) {
        m.insert("model".into(), json!(adapter));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_add_upstreams_keys_per_route() {
        let f = RequestFlags {
            fake_prefill: true,
            return_routed_experts: true,
            return_logprob: true,
            top_logprobs_num: 3,
            token_ids_logprob: Some(vec![7]),
            logprob_start_len: -1,
        };
        let n = flag_keys(Api::Native, &f);
        assert_eq!(n["bootstrap_host"], "2.2.2.2");
        assert_eq!(
            (n["return_logprob"].clone(), n["logprob_start_len"].clone()),
            (json!(true), json!(-1))
        );
        assert_eq!(n["token_ids_logprob"], json!([7]));
        let c = flag_keys(Api::Completions, &f);
        assert_eq!(c["logprobs"], 3);
        assert!(c.get("return_routed_experts").is_none());
        assert!(
            flag_keys(Api::Chat, &f).get("logprobs").is_none(),
            "chat sends none"
        );
    }

    #[test]
    fn adapters_by_distribution() {
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let plan = |distribution| LoraPlan {
            names: names.clone(),
            distribution,
        };
        assert_eq!(
            lora_choices(&plan(LoraDistribution::Distinct), 4, 1),
            ["a", "b", "c", "a"]
        );
        let skewed_plan = plan(LoraDistribution::Skewed { alpha: 4.0 });
        let skewed = lora_choices(&skewed_plan, 2000, 1);
        let count = |x: &str| skewed.iter().filter(|s| **s == x).count();
        assert!(count("a") > 2 * count("b") && count("b") > count("c"));
        let uniform_plan = plan(LoraDistribution::Uniform);
        let uniform = lora_choices(&uniform_plan, 300, 1);
        assert!(names.iter().all(|n| uniform.contains(&n.as_str())));
        assert_eq!(lora_keys(Api::Chat, "a")["model"], "a");
        assert!(lora_keys(Api::Native, "a").get("model").is_none());
    }
}
