//! `GET /profile_status`: loupe's answer to SGLang's silent auto-stop (upstream has no status
//! route and no completion notice). loupe's server serializes this type and its clients read
//! it; an SGLang server answers 404.

use serde::{Deserialize, Serialize};

/// Where the server's profiler is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileState {
    /// Nothing armed; the last profile's files (if any) are complete.
    Idle,
    /// Waiting for the first step of its window.
    Armed,
    /// Recording steps.
    Active,
    /// Recording is over; files are being written.
    Exporting,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ProfileState {
    pub fn name(self) -> &'static str {
        match self {
            ProfileState::Idle => "idle",
            ProfileState::Armed => "armed",
            ProfileState::Active => "active",
            ProfileState::Exporting => "exporting",
            ProfileState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ProfileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `/profile_status` body. Every key is always present (null or empty when unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileStatus {
    pub state: ProfileState,
    /// The profile running, or the last one once idle.
    #[serde(default)]
    pub profile_id: Option<String>,
    /// Stage being captured in by-stage mode (`EXTEND`/`DECODE`, or `prefill`/`decode`).
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub steps_captured: u64,
    #[serde(default)]
    pub output_dir: Option<String>,
    /// Files written so far (for the last profile once idle).
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl ProfileStatus {
    /// Idle with nothing recorded yet.
    pub fn idle() -> Self {
        ProfileStatus {
            state: ProfileState::Idle,
            profile_id: None,
            stage: None,
            steps_captured: 0,
            output_dir: None,
            files: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Are the files of `profile_id` (of whatever profile ran last, when `None`) complete?
    pub fn finished(&self, profile_id: Option<&str>) -> bool {
        self.state == ProfileState::Idle
            && profile_id.is_none_or(|id| self.profile_id.as_deref() == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_round_trips() {
        let st = ProfileStatus {
            state: ProfileState::Exporting,
            profile_id: Some("p1".into()),
            stage: Some("DECODE".into()),
            steps_captured: 4,
            output_dir: Some("/t".into()),
            files: vec!["/t/p1-TP-0-EXTEND.trace.json.gz".into()],
            errors: vec![],
        };
        let text = serde_json::to_string(&st).unwrap();
        assert_eq!(
            text,
            r#"{"state":"exporting","profile_id":"p1","stage":"DECODE","steps_captured":4,"output_dir":"/t","files":["/t/p1-TP-0-EXTEND.trace.json.gz"],"errors":[]}"#
        );
        assert_eq!(serde_json::from_str::<ProfileStatus>(&text).unwrap(), st);
        assert_eq!(
            serde_json::to_string(&ProfileStatus::idle()).unwrap(),
            r#"{"state":"idle","profile_id":null,"stage":null,"steps_captured":0,"output_dir":null,"files":[],"errors":[]}"#
        );
    }

    #[test]
    fn missing_keys_and_new_states_are_tolerated() {
        let st: ProfileStatus = serde_json::from_str(r#"{"state": "flushing"}"#).unwrap();
        assert_eq!(st.state, ProfileState::Unknown);
        assert!(st.files.is_empty() && st.profile_id.is_none());
    }

    #[test]
    fn finished_means_idle_and_ours() {
        let mut st = ProfileStatus::idle();
        st.profile_id = Some("a".into());
        assert!(st.finished(None) && st.finished(Some("a")));
        assert!(!st.finished(Some("b")), "another profile ran last");
        st.state = ProfileState::Exporting;
        assert!(!st.finished(Some("a")));
    }
}
