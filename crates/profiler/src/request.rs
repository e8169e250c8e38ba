//! `/start_profile` bodies, read as leniently as SGLang reads them (numbers sent as strings,
//! unknown keys ignored, no body means defaults) but with SGLang's silent failures turned into
//! errors: unknown activities, by-stage without a step count, and activities this build
//! cannot record are refused at request time.

use serde_json::{Map, Value};

use crate::error::ProfileError;

/// What to record (`activities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Host spans: scheduler phases, step spans, tokenizer work.
    Cpu,
    /// The compute lane of every rank: per-layer ops with flows from the host.
    Gpu,
    /// KV-pool and queue counters, plus a memory snapshot file.
    Mem,
    /// A rocpd-schema SQLite file.
    Rpd,
}

impl Activity {
    pub fn name(self) -> &'static str {
        match self {
            Activity::Cpu => "CPU",
            Activity::Gpu => "GPU",
            Activity::Mem => "MEM",
            Activity::Rpd => "RPD",
        }
    }
}

/// A start request, resolved (environment defaults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub output_dir: Option<String>,
    pub start_step: Option<u64>,
    pub num_steps: Option<u64>,
    pub activities: Vec<Activity>,
    pub profile_by_stage: bool,
    /// Stages to capture in by-stage mode (`prefill`/`EXTEND`, `decode`/`DECODE`).
    pub profile_stages: Option<Vec<String>>,
    pub with_stack: bool,
    pub record_shapes: bool,
    pub merge_profiles: bool,
    pub profile_prefix: Option<String>,
    pub profile_id: Option<String>,
}

/// SGLang's boolean environment reading: "true"/"1" are true, anything else false.
pub fn env_bool(name: &str, default: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"),
        Err(_) => default,
    }
}

fn field_err(key: &str, what: &str, v: &Value) -> ProfileError {
    ProfileError::BadRequest(format!("{key}: {what}, got {v}"))
}

/// Pydantic's lax mode: integers, integral floats and numeric strings; `0` and `null` are unset.
fn lax_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ProfileError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(0) => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(field_err(key, "must be a non-negative integer", v)),
    }
}

fn lax_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ProfileError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(field_err(key, "must be true or false", &obj[key])),
        },
        Some(v) => Err(field_err(key, "must be true or false", v)),
    }
}

fn lax_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ProfileError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ Value::Number(_)) => Ok(Some(v.to_string())),
        Some(v) => Err(field_err(key, "must be a string", v)),
    }
}

fn str_list(obj: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, ProfileError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| field_err(key, "must be a list of strings", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(field_err(key, "must be a list of strings", v)),
    }
}

impl StartRequest {
    /// Parse a body (empty means all defaults).
    pub fn parse(body: &[u8]) -> Result<Self, ProfileError> {
        let obj: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                Ok(Value::Null) => Map::new(),
                Ok(other) => {
                    return Err(ProfileError::BadRequest(format!(
                        "the request body must be a JSON object, got {other}"
                    )));
                }
                Err(e) => {
                    return Err(ProfileError::BadRequest(format!(
                        "the request body is not valid JSON: {e} (line {}, column {})",
                        e.line(),
                        e.column()
                    )));
                }
            }
        };
        let activities = match str_list(&obj, "activities")? {
            None => vec![Activity::Cpu, Activity::Gpu],
            Some(names) if names.is_empty() => vec![Activity::Cpu, Activity::Gpu],
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    let a = match n.as_str() {
                        "CPU" => Activity::Cpu,
                        "GPU" => Activity::Gpu,
                        "MEM" => Activity::Mem,
                        "RPD" => Activity::Rpd,
                        "CUDA_PROFILER" => {
                            return Err(ProfileError::BadRequest(
                                "activity CUDA_PROFILER starts cudaProfilerStart for an nsys session; \
                                 loupe's reference engine runs on the CPU and has no CUDA context. \
                                 Use CPU, GPU, MEM or RPD, or profile a CUDA server under nsys."
                                    .into(),
                            ));
                        }
                        "XPU" => {
                            return Err(ProfileError::BadRequest(
                                "activity XPU needs an Intel GPU build; loupe's reference engine \
                                 runs on the CPU. Use CPU, GPU, MEM or RPD."
                                    .into(),
                            ));
                        }
                        other => {
                            return Err(ProfileError::BadRequest(format!(
                                "activities: unknown activity '{other}' (known: CPU, GPU, MEM, RPD, \
                                 CUDA_PROFILER, XPU)"
                            )));
                        }
                    };
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                out
            }
        };
        let profile_by_stage = lax_bool(&obj, "profile_by_stage")?.unwrap_or(false);
        let num_steps = lax_u64(&obj, "num_steps")?;
        if profile_by_stage && num_steps.is_none() {
            // Upstream crashes its scheduler loop on `None += 1` here.
            return Err(ProfileError::BadRequest(
                "profile_by_stage needs num_steps (the number of batches to capture per stage)"
                    .into(),
            ));
        }
        let profile_stages = str_list(&obj, "profile_stages")?;
        if let Some(stages) = &profile_stages {
            for s in stages {
                if crate::window::Stage::parse(s).is_none() {
                    return Err(ProfileError::BadRequest(format!(
                        "profile_stages: unknown stage '{s}' (prefill, decode)"
                    )));
                }
            }
        }
        let with_stack = lax_bool(&obj, "with_stack")? != Some(false)
            && env_bool("SGLANG_PROFILE_WITH_STACK", true);
        let record_shapes = lax_bool(&obj, "record_shapes")? != Some(false)
            && env_bool("SGLANG_PROFILE_RECORD_SHAPES", true);
        Ok(StartRequest {
            output_dir: lax_str(&obj, "output_dir")?,
            start_step: lax_u64(&obj, "start_step")?,
            num_steps,
            activities,
            profile_by_stage,
            profile_stages,
            with_stack,
            record_shapes,
            merge_profiles: lax_bool(&obj, "merge_profiles")?.unwrap_or(false),
            profile_prefix: lax_str(&obj, "profile_prefix")?,
            profile_id: lax_str(&obj, "profile_id")?,
        })
    }

    pub fn has(&self, a: Activity) -> bool {
        self.activities.contains(&a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_body_means_defaults() {
        let r = StartRequest::parse(b"").unwrap();
        assert_eq!(r.activities, [Activity::Cpu, Activity::Gpu]);
        assert_eq!(
            (r.num_steps, r.start_step, r.profile_by_stage),
            (None, None, false)
        );
        assert!(r.with_stack && r.record_shapes);
    }

    #[test]
    fn numbers_as_strings_and_unknown_keys_are_accepted() {
        let r = StartRequest::parse(
            br#"{"num_steps": "5", "start_step": "12", "activities": ["GPU"], "whatever": 1,
                 "with_stack": false, "profile_prefix": "exp", "merge_profiles": "true"}"#,
        )
        .unwrap();
        assert_eq!((r.num_steps, r.start_step), (Some(5), Some(12)));
        assert_eq!(r.activities, [Activity::Gpu]);
        assert!(!r.with_stack && r.merge_profiles);
        assert_eq!(r.profile_prefix.as_deref(), Some("exp"));
    }

    #[test]
    fn zero_steps_means_unset_as_upstream() {
        let r = StartRequest::parse(br#"{"num_steps": 0, "start_step": 0}"#).unwrap();
        assert_eq!((r.num_steps, r.start_step), (None, None));
    }

    #[test]
    fn silent_upstream_failures_are_errors() {
        for (body, needle) in [
            (
                &br#"{"activities": ["CPU", "TPU"]}"#[..],
                "unknown activity 'TPU'",
            ),
            (br#"{"profile_by_stage": true}"#, "needs num_steps"),
            (br#"{"activities": ["CUDA_PROFILER"]}"#, "CUDA"),
            (br#"{"num_steps": -3}"#, "num_steps"),
            (br#"{"num_steps": "many"}"#, "num_steps"),
            (
                br#"{"profile_stages": ["warmup"], "profile_by_stage": true, "num_steps": 2}"#,
                "warmup",
            ),
            (br#"{"num_steps": 3"#, "not valid JSON"),
        ] {
            let e = StartRequest::parse(body).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
