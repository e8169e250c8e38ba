//! Model configuration: Hugging Face `config.json` for the Llama family, the built-in presets,
//! and SGLang's `--json-model-override-args` merge rules.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::EngineError;

/// The architectures the reference engine implements. Mistral shares Llama's arithmetic;
/// Qwen2 adds a bias to the q/k/v projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
}

impl Architecture {
    fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "LlamaForCausalLM" => Some(Self::Llama),
            "MistralForCausalLM" => Some(Self::Mistral),
            "Qwen2ForCausalLM" => Some(Self::Qwen2),
            _ => None,
        }
    }

    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// RoPE frequency scaling as in transformers' `ROPE_INIT_FUNCTIONS`.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// A resolved model configuration. `raw` keeps the merged JSON so that `/model_info` and
/// `/server_info` show exactly what the user configured (overrides included).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on the q, k and v projections (Qwen2 always; Llama when `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (Llama's `attention_bias` covers o_proj too).
    pub o_bias: bool,
    /// Bias on the MLP projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` (or transformers 5's `dtype`): how the checkpoint's weights are stored.
    pub torch_dtype: Option<String>,
    pub raw: Value,
}

/// Where a model came from: a directory on disk or a built-in preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Dir(PathBuf),
    Preset(Preset),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Fast enough that a few hundred requests finish in seconds on two cores.
    Tiny,
    /// hidden 1024, 8 layers: big enough that the projections dominate a step.
    Small,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Tiny, Preset::Small];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's `config.json` as Hugging Face would write it.
    pub fn config_json(self) -> Value {
        let (hidden, inter, layers, heads, kv_heads, vocab) = match self {
            Preset::Tiny => (128, 384, 4, 4, 2, 512),
            Preset::Small => (1024, 2816, 8, 16, 4, 32000),
        };
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": hidden,
            "intermediate_size": inter,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": hidden / heads,
            "vocab_size": vocab,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": false,
            "attention_bias": false,
            "mlp_bias": false,
            "hidden_act": "silu",
            "bos_token_id": crate::tokenizer::BYTE_BOS,
            "eos_token_id": crate::tokenizer::BYTE_EOS,
            "torch_dtype": "bfloat16",
        })
    }
}

impl ModelSource {
    /// Resolve `--model-path`: an existing directory wins; otherwise a preset name.
    pub fn resolve(model_path: &str) -> Result<Self, EngineError> {
        let path = Path::new(model_path);
        if path.is_dir() {
            return Ok(ModelSource::Dir(path.to_path_buf()));
        }
        if let Some(p) = Preset::from_name(model_path) {
            return Ok(ModelSource::Preset(p));
        }
        Err(EngineError::Config(format!(
            "--model-path '{model_path}' is neither a directory holding config.json nor a preset \
             (presets: {})",
            Preset::ALL.map(|p| p.name()).join(", ")
        )))
    }
}

/// Apply `--json-model-override-args` the way SGLang does: a dict value replacing a dict is
/// merged one level deep (sub-configs, `rope_scaling`); anything else replaces the key.
pub fn apply_overrides(config: &mut Value, overrides: &Value) -> Result<(), EngineError> {
    let Some(over) = overrides.as_object() else {
        return Err(EngineError::Config(format!(
            "--json-model-override-args must be a JSON object, got {overrides}"
        )));
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| EngineError::Config("config.json is not a JSON object".into()))?;
    for (key, value) in over {
        match (obj.get_mut(key), value) {
            (Some(Value::Object(current)), Value::Object(patch)) => {
                for (k, v) in patch {
                    current.insert(k.clone(), v.clone());
                }
            }
            _ => {
                obj.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// Parse `--json-model-override-args`' text.
pub fn parse_overrides(text: &str) -> Result<Value, EngineError> {
    serde_json::from_str(text).map_err(|e| {
        EngineError::Config(format!(
            "--json-model-override-args is not valid JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a str,
}

impl Fields<'_> {
    fn err(&self, key: &str, what: &str) -> EngineError {
        EngineError::Config(format!("{}: field '{key}' {what}", self.origin))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str) -> Result<usize, EngineError> {
        self.opt_usize(key)?
            .ok_or_else(|| self.err(key, "is missing"))
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>, EngineError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(0) => Err(self.err(key, "must be positive, got 0")),
                Some(n) => Ok(Some(n as usize)),
                None => Err(self.err(key, &format!("must be a positive integer, got {v}"))),
            },
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(key, &format!("must be a number, got {v}"))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, EngineError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(key, &format!("must be true or false, got {v}"))),
        }
    }

    fn token_ids(&self, key: &str) -> Result<Vec<u32>, EngineError> {
        let bad = || self.err(key, "must be a token id or a list of token ids");
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_u64().map(|n| n as u32).ok_or_else(bad))
                .collect(),
            Some(v) => v.as_u64().map(|n| vec![n as u32]).ok_or_else(bad),
        }
    }
}

impl ModelConfig {
    /// Read `dir/config.json`, apply overrides and resolve.
    pub fn from_dir(dir: &Path, overrides: &Value) -> Result<Self, EngineError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::Io {
            path: path.clone(),
            source: e,
        })?;
        let mut raw: Value = serde_json::from_str(&text).map_err(|e| {
            EngineError::Config(format!(
                "{}: invalid JSON at line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        // transformers keeps eos ids for generation in generation_config.json; SGLang reads both.
        let gen_path = dir.join("generation_config.json");
        if let Ok(gen_text) = std::fs::read_to_string(&gen_path) {
            let gen_cfg: Value = serde_json::from_str(&gen_text).map_err(|e| {
                EngineError::Config(format!("{}: invalid JSON: {e}", gen_path.display()))
            })?;
            if let (Some(obj), Some(eos)) = (raw.as_object_mut(), gen_cfg.get("eos_token_id")) {
                obj.entry("eos_token_id").or_insert_with(|| eos.clone());
            }
        }
        apply_overrides(&mut raw, overrides)?;
        Self::from_json(raw, &path.display().to_string())
    }

    pub fn from_preset(preset: Preset, overrides: &Value) -> Result<Self, EngineError> {
        let mut raw = preset.config_json();
        apply_overrides(&mut raw, overrides)?;
        Self::from_json(raw, &format!("preset '{}'", preset.name()))
    }

    pub fn load(source: &ModelSource, overrides: &Value) -> Result<Self, EngineError> {
        match source {
            ModelSource::Dir(dir) => Self::from_dir(dir, overrides),
            ModelSource::Preset(p) => Self::from_preset(*p, overrides),
        }
    }

    /// Resolve a merged `config.json` value. `origin` names the file in error messages.
    pub fn from_json(raw: Value, origin: &str) -> Result<Self, EngineError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| EngineError::Config(format!("{origin}: not a JSON object")))?;
        let f = Fields { obj, origin };
        let arch_names: Vec<&str> = match f.get("architectures") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let architecture = arch_names
            .iter()
            .find_map(|n| Architecture::from_hf_name(n))
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "{origin}: field 'architectures' is {:?}; loupe implements \
                     LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM",
                    arch_names
                ))
            })?;
        if let Some(act) = f.get("hidden_act").and_then(|v| v.as_str())
            && act != "silu"
        {
            return Err(f.err(
                "hidden_act",
                &format!("is '{act}'; only 'silu' is implemented"),
            ));
        }
        let hidden_size = f.usize("hidden_size")?;
        let num_attention_heads = f.usize("num_attention_heads")?;
        let num_key_value_heads = f
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        let head_dim = match f.opt_usize("head_dim")? {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(f.err(
                        "hidden_size",
                        &format!(
                            "({hidden_size}) is not divisible by num_attention_heads \
                             ({num_attention_heads}) and no head_dim is given"
                        ),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(f.err(
                "head_dim",
                &format!("must be even for RoPE, got {head_dim}"),
            ));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(f.err(
                "num_key_value_heads",
                &format!(
                    "({num_key_value_heads}) must divide num_attention_heads ({num_attention_heads})"
                ),
            ));
        }
        // Newer transformers nest RoPE settings under `rope_parameters`.
        let rope_obj = f.get("rope_parameters").and_then(|v| v.as_object());
        let rope_theta = match rope_obj.and_then(|o| o.get("rope_theta")) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| f.err("rope_parameters.rope_theta", "must be a number"))?,
            None => f.f64_or("rope_theta", 10000.0)?,
        };
        let scaling_obj = rope_obj.or_else(|| f.get("rope_scaling").and_then(|v| v.as_object()));
        let rope_scaling = match scaling_obj {
            None => None,
            Some(s) => parse_rope_scaling(s, origin)?,
        };
        let attention_bias = f.bool_or("attention_bias", false)?;
        let qwen = architecture == Architecture::Qwen2;
        let model_type = f
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or(match architecture {
                Architecture::Llama => "llama",
                Architecture::Mistral => "mistral",
                Architecture::Qwen2 => "qwen2",
            })
            .to_string();
        let bos_token_id = f.token_ids("bos_token_id")?.first().copied();
        let cfg = ModelConfig {
            architecture,
            model_type,
            hidden_size,
            intermediate_size: f.usize("intermediate_size")?,
            num_hidden_layers: f.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            vocab_size: f.usize("vocab_size")?,
            rms_norm_eps: f.f64_or("rms_norm_eps", 1e-6)? as f32,
            rope_theta,
            rope_scaling,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(4096),
            tie_word_embeddings: f.bool_or("tie_word_embeddings", false)?,
            qkv_bias: qwen || attention_bias,
            o_bias: !qwen && attention_bias,
            mlp_bias: f.bool_or("mlp_bias", false)?,
            bos_token_id,
            eos_token_ids: f.token_ids("eos_token_id")?,
            torch_dtype: f
                .get("torch_dtype")
                .or_else(|| f.get("dtype"))
                .and_then(|v| v.as_str())
                .map(str::to_string),
            raw: raw.clone(),
        };
        Ok(cfg)
    }

    /// Weight storage for `--dtype` (`auto` follows `torch_dtype`; f32 when it is absent or
    /// names a type loupe does not store).
    pub fn weight_dtype(
        &self,
        requested: Option<crate::matmul::WeightDtype>,
    ) -> crate::matmul::WeightDtype {
        requested.unwrap_or_else(|| {
            self.torch_dtype
                .as_deref()
                .and_then(crate::matmul::WeightDtype::parse)
                .unwrap_or(crate::matmul::WeightDtype::F32)
        })
    }

    /// Floats of KV cache per token on one rank holding `kv_heads` heads, all layers.
    pub fn kv_floats_per_token(&self, kv_heads: usize) -> usize {
        2 * self.num_hidden_layers * kv_heads * self.head_dim
    }
}

fn parse_rope_scaling(
    s: &Map<String, Value>,
    origin: &str,
) -> Result<Option<RopeScaling>, EngineError> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |key: &str, default: Option<f64>| -> Result<f64, EngineError> {
        match s.get(key).filter(|v| !v.is_null()) {
            Some(v) => v.as_f64().ok_or_else(|| {
                EngineError::Config(format!("{origin}: rope_scaling.{key} must be a number"))
            }),
            None => default.ok_or_else(|| {
                EngineError::Config(format!(
                    "{origin}: rope_scaling.{key} is required for rope type '{kind}'"
                ))
            }),
        }
    };
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: num("factor", None)?,
        })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: num("factor", None)?,
            low_freq_factor: num("low_freq_factor", Some(1.0))?,
            high_freq_factor: num("high_freq_factor", Some(4.0))?,
            original_max_position_embeddings: num("original_max_position_embeddings", None)?,
        })),
        other => Err(EngineError::Config(format!(
            "{origin}: rope_scaling type '{other}' is not implemented (loupe supports linear and llama3)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_replace_scalars_and_merge_dicts() {
        let mut cfg =
            json!({"num_hidden_layers": 8, "rope_scaling": {"type": "linear", "factor": 2.0}});
        apply_overrides(
            &mut cfg,
            &json!({"num_hidden_layers": 2, "rope_scaling": {"factor": 4.0}}),
        )
        .unwrap();
        assert_eq!(cfg["num_hidden_layers"], 2);
        assert_eq!(
            cfg["rope_scaling"],
            json!({"type": "linear", "factor": 4.0})
        );
    }

    #[test]
    fn preset_override_is_visible_in_the_resolved_config() {
        let cfg =
            ModelConfig::from_preset(Preset::Small, &json!({"num_hidden_layers": 2})).unwrap();
        assert_eq!(cfg.num_hidden_layers, 2);
        assert_eq!(cfg.raw["num_hidden_layers"], 2);
        assert_eq!(cfg.hidden_size, 1024);
    }

    #[test]
    fn qwen2_has_qkv_bias_only() {
        let mut raw = Preset::Tiny.config_json();
        raw["architectures"] = json!(["Qwen2ForCausalLM"]);
        let cfg = ModelConfig::from_json(raw, "t").unwrap();
        assert!(cfg.qkv_bias && !cfg.o_bias);
    }

    #[test]
    fn errors_name_the_field() {
        let mut raw = Preset::Tiny.config_json();
        raw["num_key_value_heads"] = json!(3);
        let err = ModelConfig::from_json(raw, "x/config.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x/config.json") && err.contains("num_key_value_heads"),
            "{err}"
        );

        let mut raw = Preset::Tiny.config_json();
        raw["architectures"] = json!(["GPT2LMHeadModel"]);
        let err = ModelConfig::from_json(raw, "c").unwrap_err().to_string();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");

        let mut raw = Preset::Tiny.config_json();
        raw["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        let err = ModelConfig::from_json(raw, "c").unwrap_err().to_string();
        assert!(err.contains("yarn"), "{err}");
    }

    #[test]
    fn llama3_rope_scaling_parses_with_defaults() {
        let mut raw = Preset::Tiny.config_json();
        raw["rope_scaling"] =
            json!({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192});
        let cfg = ModelConfig::from_json(raw, "c").unwrap();
        assert_eq!(
            cfg.rope_scaling,
            Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0
            })
        );
    }

    #[test]
    fn unknown_model_path_is_a_clear_error() {
        let err = ModelSource::resolve("no-such-model-xyz")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no-such-model-xyz") && err.contains("tiny"),
            "{err}"
        );
    }
}
