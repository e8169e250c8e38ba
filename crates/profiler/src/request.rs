//! `/start_profile` bodies resolved for this engine. The body is loupe-client's wire type,
//! read as leniently as SGLang reads it (numbers sent as strings, unknown keys ignored, no
//! body means defaults); SGLang's silent failures become errors here: unknown activities,
//! by-stage without a step count, and activities this build cannot record are refused at
//! request time.

use loupe_client::{LaxInt, StartProfile};

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

fn activity(name: &str) -> Result<Activity, ProfileError> {
    Ok(match name {
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
    })
}

impl StartRequest {
    /// Parse a body (empty means all defaults).
    pub fn parse(body: &[u8]) -> Result<Self, ProfileError> {
        let wire =
            StartProfile::from_json(body).map_err(|e| ProfileError::BadRequest(e.to_string()))?;
        StartRequest::resolve(wire)
    }

    /// Apply the defaults (SGLang's, and its environment variables) and refuse what this
    /// engine cannot do or SGLang would mishandle.
    pub fn resolve(wire: StartProfile) -> Result<Self, ProfileError> {
        let activities = match wire.activities {
            None => vec![Activity::Cpu, Activity::Gpu],
            Some(names) if names.is_empty() => vec![Activity::Cpu, Activity::Gpu],
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    let a = activity(&n)?;
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                out
            }
        };
        let profile_by_stage = wire.profile_by_stage.unwrap_or(false);
        let num_steps = wire.num_steps.map(LaxInt::get);
        if profile_by_stage && num_steps.is_none() {
            // Upstream crashes its scheduler loop on `None += 1` here.
            return Err(ProfileError::BadRequest(
                "profile_by_stage needs num_steps (the number of batches to capture per stage)"
                    .into(),
            ));
        }
        if let Some(stages) = &wire.profile_stages {
            for s in stages {
                if crate::window::Stage::parse(s).is_none() {
                    return Err(ProfileError::BadRequest(format!(
                        "profile_stages: unknown stage '{s}' (prefill, decode)"
                    )));
                }
            }
        }
        let with_stack =
            wire.with_stack != Some(false) && env_bool("SGLANG_PROFILE_WITH_STACK", true);
        let record_shapes =
            wire.record_shapes != Some(false) && env_bool("SGLANG_PROFILE_RECORD_SHAPES", true);
        Ok(StartRequest {
            output_dir: wire.output_dir,
            start_step: wire.start_step.map(LaxInt::get),
            num_steps,
            activities,
            profile_by_stage,
            profile_stages: wire.profile_stages,
            with_stack,
            record_shapes,
            merge_profiles: wire.merge_profiles.unwrap_or(false),
            profile_prefix: wire.profile_prefix,
            profile_id: wire.profile_id,
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
