//! vLLM's side of the profiling conversation (vLLM 0.32, `entrypoints/serve/profile`): its
//! strict `/start_profile` body, where its traces go and what they are called.
//!
//! vLLM validates the body with pydantic's strict mode, so `"max_iterations":"5"` is a 400:
//! integers go out as JSON numbers and nothing else is sent. Its output directory is fixed
//! at launch (`--profiler-config`'s `torch_profiler_dir`); no request can move it.

use serde::Serialize;
use serde_json::Value;

use crate::start::StartProfile;

/// The body of vLLM's `/start_profile`: only the three keys it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VllmStart {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_prefix: Option<String>,
    /// Recording starts on this step (the ones before it are skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_iterations: Option<u64>,
    /// Exactly this many steps are recorded, then the workers stop by themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u64>,
}

/// A field of SGLang's body that vLLM has no equivalent for, so cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untranslatable {
    #[error(
        "vLLM has no absolute start step (start_step); its delay_iterations counts from the \
         start request: leave --profile-start-step out, or bound the capture with --profile-num-steps"
    )]
    StartStep,
    #[error("vLLM cannot capture by stage (profile_by_stage / profile_stages)")]
    ByStage,
    #[error(
        "vLLM writes to the torch_profiler_dir it was launched with; output_dir cannot be sent \
         (the directory is only used to find the files)"
    )]
    OutputDir,
}

impl VllmStart {
    /// SGLang's body as vLLM's: `num_steps` -> `max_iterations`, `profile_prefix` kept.
    /// `activities`, `with_stack`, `record_shapes`, `merge_profiles` and `profile_id` are
    /// launch-time settings in vLLM (or loupe's own), and are left out. `output_dir` is not
    /// an error here: callers use it to know where to look, see [`Untranslatable::OutputDir`].
    pub fn from_sglang(body: &StartProfile) -> Result<Self, Untranslatable> {
        if body.start_step.is_some() {
            return Err(Untranslatable::StartStep);
        }
        if body.profile_by_stage == Some(true) || body.profile_stages.is_some() {
            return Err(Untranslatable::ByStage);
        }
        Ok(VllmStart {
            profile_prefix: body.profile_prefix.clone(),
            delay_iterations: None,
            max_iterations: body.num_steps.map(|n| n.get()),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain fields serialize")
    }
}

/// `torch_profiler_dir` from vLLM's dev-mode `/server_info?config_format=json`
/// (`VLLM_SERVER_DEV_MODE=1`); `None` when the answer does not have it.
pub fn profiler_dir(server_info: &Value) -> Option<String> {
    let dir = server_info["vllm_config"]["profiler_config"]["torch_profiler_dir"].as_str()?;
    (!dir.is_empty()).then(|| dir.to_string())
}

/// Is `name` a file vLLM's torch profiler writes: a worker's or the API server's trace
/// (`dp0_pp0_tp0_dcp0_ep0_rank0.<ns>.pt.trace.json.gz`,
/// `<host>_<pid>.async_llm.<ns>.pt.trace.json.gz`) or rank 0's `key_averages` table
/// (`<worker>.profiler_out.txt`)?
pub fn is_output(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".pt.trace.json.gz")
            || name.ends_with(".pt.trace.json")
            || name.ends_with(".profiler_out.txt"))
}

/// What one of vLLM's files is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VllmFile {
    /// One worker's trace, with its global rank.
    Worker { rank: u32 },
    /// The API server's (AsyncLLM's) CPU trace.
    Frontend,
    /// The `key_averages` table.
    Table,
}

impl VllmFile {
    pub fn of(name: &str) -> Option<VllmFile> {
        if !is_output(name) {
            return None;
        }
        if name.ends_with(".profiler_out.txt") {
            return Some(VllmFile::Table);
        }
        if name.contains(".async_llm.") {
            return Some(VllmFile::Frontend);
        }
        // `dp0_pp0_tp0_dcp0_ep0_rank0` in multi-worker layouts; plain `rank0` is what
        // vLLM 0.32's single CPU worker writes.
        let stem = name.split('.').next()?;
        let digits = stem.rsplit_once("rank")?;
        let before_ok = digits.0.is_empty() || digits.0.ends_with('_');
        let rank = digits.1.parse().ok().filter(|_| before_ok)?;
        Some(VllmFile::Worker { rank })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LaxInt;
    use serde_json::json;

    #[test]
    fn the_body_has_only_vllms_keys_as_integers() {
        let sg = StartProfile {
            activities: Some(vec!["CPU".into()]),
            output_dir: Some("/d".into()),
            num_steps: Some(LaxInt::Text(20)),
            profile_prefix: Some("run1".into()),
            profile_id: Some("1.5".into()),
            with_stack: Some(false),
            ..Default::default()
        };
        let v = VllmStart::from_sglang(&sg).unwrap();
        assert_eq!(
            v.to_json(),
            r#"{"profile_prefix":"run1","max_iterations":20}"#
        );
        assert_eq!(VllmStart::default().to_json(), "{}");
        let start = StartProfile {
            start_step: Some(LaxInt::Number(3)),
            ..Default::default()
        };
        assert_eq!(
            VllmStart::from_sglang(&start),
            Err(Untranslatable::StartStep)
        );
        let staged = StartProfile {
            profile_by_stage: Some(true),
            ..Default::default()
        };
        assert_eq!(
            VllmStart::from_sglang(&staged),
            Err(Untranslatable::ByStage)
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(
            VllmFile::of("dp0_pp0_tp1_dcp0_ep0_rank1.1764000000000000000.pt.trace.json.gz"),
            Some(VllmFile::Worker { rank: 1 })
        );
        assert_eq!(
            VllmFile::of("run1_dp1_pp0_tp0_dcp0_ep0_rank2.17.pt.trace.json"),
            Some(VllmFile::Worker { rank: 2 })
        );
        assert_eq!(
            VllmFile::of("host-a_4242.async_llm.17.pt.trace.json.gz"),
            Some(VllmFile::Frontend)
        );
        assert_eq!(
            VllmFile::of("dp0_pp0_tp0_dcp0_ep0_rank0.profiler_out.txt"),
            Some(VllmFile::Table)
        );
        assert_eq!(
            VllmFile::of("rank0.1796175945546204143.pt.trace.json.gz"),
            Some(VllmFile::Worker { rank: 0 })
        );
        assert_eq!(
            VllmFile::of("vm_17949.async_llm.profiler_out.txt"),
            Some(VllmFile::Table)
        );
        assert_eq!(VllmFile::of("myrank0.17.pt.trace.json.gz"), None);
        assert_eq!(VllmFile::of(".dp0_rank0.17.pt.trace.json.gz.tmp"), None);
        assert_eq!(VllmFile::of("1-TP-0.trace.json.gz"), None);
    }

    #[test]
    fn the_directory_from_dev_mode_server_info() {
        let info = json!({"vllm_config": {"profiler_config": {"profiler": "torch", "torch_profiler_dir": "/srv/t"}}});
        assert_eq!(profiler_dir(&info).as_deref(), Some("/srv/t"));
        assert_eq!(profiler_dir(&json!({"vllm_config": "text form"})), None);
    }
}
