//! The `/start_profile` body: SGLang's `ProfileReq` keys (`io_struct.py`), written with only
//! the keys a client sets, and read as leniently as SGLang reads it (pydantic's lax mode:
//! numbers as strings, integral floats, `0` and `null` meaning unset, unknown keys ignored,
//! no body meaning all defaults). What a server then refuses is the server's business.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// An integer field of the body. SGLang coerces `"5"` to 5, and bench_serving sends
/// `start_step` (and `--profile-steps`' `num_steps`) as strings; a client keeps whichever
/// form it means to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaxInt {
    /// Sent as a JSON number.
    Number(u64),
    /// Sent as a JSON string of digits.
    Text(u64),
}

impl LaxInt {
    pub fn get(self) -> u64 {
        match self {
            LaxInt::Number(n) | LaxInt::Text(n) => n,
        }
    }
}

impl From<u64> for LaxInt {
    fn from(n: u64) -> Self {
        LaxInt::Number(n)
    }
}

impl Serialize for LaxInt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            LaxInt::Number(n) => s.serialize_u64(n),
            LaxInt::Text(n) => s.serialize_str(&n.to_string()),
        }
    }
}

/// A `/start_profile` body. `None` leaves a key out (the server's default applies); old
/// servers ignore keys they do not know, so sending newer fields is harmless.
///
/// Field order is the order of the serialized keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StartProfile {
    /// `CPU`, `GPU`, `MEM`, `RPD`, `CUDA_PROFILER`, `XPU` (server default: CPU and GPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activities: Option<Vec<String>>,
    /// Where the server writes (server default: `$SGLANG_TORCH_PROFILER_DIR`, else /tmp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    /// Steps to capture before the server stops by itself; unset: until `/stop_profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_steps: Option<LaxInt>,
    /// Absolute forward step at which capture starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_step: Option<LaxInt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_by_stage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_stages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_profiles: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_stack: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_shapes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detailed_annotations: Option<bool>,
}

/// Why a body could not be read; each names the offending key when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is not valid JSON: {message} (line {line}, column {column})")]
    Json {
        message: String,
        line: usize,
        column: usize,
    },
    #[error("the request body must be a JSON object, got {0}")]
    NotObject(String),
    #[error("{key}: {expected}, got {got}")]
    Field {
        key: &'static str,
        expected: &'static str,
        got: String,
    },
}

fn field_err(key: &'static str, expected: &'static str, v: &Value) -> BodyError {
    BodyError::Field {
        key,
        expected,
        got: v.to_string(),
    }
}

/// Pydantic's lax integers: numbers, integral floats and numeric strings; `0` and `null` are
/// unset (SGLang tests them for truth).
fn lax_int(obj: &Map<String, Value>, key: &'static str) -> Result<Option<LaxInt>, BodyError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(LaxInt::Number),
        Value::String(s) => s.trim().parse::<u64>().ok().map(LaxInt::Text),
        _ => None,
    };
    match n {
        Some(n) if n.get() == 0 => Ok(None),
        Some(n) => Ok(Some(n)),
        None => Err(field_err(key, "must be a non-negative integer", v)),
    }
}

fn lax_bool(obj: &Map<String, Value>, key: &'static str) -> Result<Option<bool>, BodyError> {
    let expected = "must be true or false";
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(v @ Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(field_err(key, expected, v)),
        },
        Some(v) => Err(field_err(key, expected, v)),
    }
}

/// A string; an empty one is unset, a number is taken as its text.
fn lax_str(obj: &Map<String, Value>, key: &'static str) -> Result<Option<String>, BodyError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ Value::Number(_)) => Ok(Some(v.to_string())),
        Some(v) => Err(field_err(key, "must be a string", v)),
    }
}

/// A list of strings; a lone string is a list of one.
fn str_list(obj: &Map<String, Value>, key: &'static str) -> Result<Option<Vec<String>>, BodyError> {
    let expected = "must be a list of strings";
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| field_err(key, expected, v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(field_err(key, expected, v)),
    }
}

impl StartProfile {
    /// Read a body as SGLang does: empty (or whitespace, or `null`) means all defaults.
    pub fn from_json(body: &[u8]) -> Result<Self, BodyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(StartProfile::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => StartProfile::from_map(&m),
            Ok(Value::Null) => Ok(StartProfile::default()),
            Ok(other) => Err(BodyError::NotObject(other.to_string())),
            Err(e) => Err(BodyError::Json {
                message: e.to_string(),
                line: e.line(),
                column: e.column(),
            }),
        }
    }

    /// Read the keys of an already parsed body; unknown keys are ignored.
    pub fn from_map(obj: &Map<String, Value>) -> Result<Self, BodyError> {
        Ok(StartProfile {
            activities: str_list(obj, "activities")?,
            output_dir: lax_str(obj, "output_dir")?,
            num_steps: lax_int(obj, "num_steps")?,
            start_step: lax_int(obj, "start_step")?,
            profile_by_stage: lax_bool(obj, "profile_by_stage")?,
            profile_stages: str_list(obj, "profile_stages")?,
            profile_prefix: lax_str(obj, "profile_prefix")?,
            profile_id: lax_str(obj, "profile_id")?,
            merge_profiles: lax_bool(obj, "merge_profiles")?,
            with_stack: lax_bool(obj, "with_stack")?,
            record_shapes: lax_bool(obj, "record_shapes")?,
            detailed_annotations: lax_bool(obj, "detailed_annotations")?,
        })
    }

    /// The body as JSON text (what goes on the wire).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a StartProfile always serializes")
    }
}

impl<'de> Deserialize<'de> for StartProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(StartProfile::default()),
            Value::Object(m) => StartProfile::from_map(&m).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(BodyError::NotObject(
                other.to_string(),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_keys_set_are_sent_with_sglang_names() {
        let b = StartProfile {
            activities: Some(vec!["CPU".into(), "GPU".into()]),
            num_steps: Some(3.into()),
            profile_by_stage: Some(true),
            ..Default::default()
        };
        assert_eq!(
            b.to_json(),
            r#"{"activities":["CPU","GPU"],"num_steps":3,"profile_by_stage":true}"#
        );
        assert_eq!(StartProfile::default().to_json(), "{}");
    }

    #[test]
    fn every_key_is_sglangs() {
        let b = StartProfile {
            activities: Some(vec!["MEM".into()]),
            output_dir: Some("/x".into()),
            num_steps: Some(LaxInt::Text(7)),
            start_step: Some(LaxInt::Text(3)),
            profile_by_stage: Some(false),
            profile_stages: Some(vec!["prefill".into()]),
            profile_prefix: Some("exp".into()),
            profile_id: Some("1.5".into()),
            merge_profiles: Some(true),
            with_stack: Some(false),
            record_shapes: Some(false),
            detailed_annotations: Some(true),
        };
        let v: Value = serde_json::from_str(&b.to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "activities",
                "output_dir",
                "num_steps",
                "start_step",
                "profile_by_stage",
                "profile_stages",
                "profile_prefix",
                "profile_id",
                "merge_profiles",
                "with_stack",
                "record_shapes",
                "detailed_annotations"
            ]
        );
        // bench_serving's string-typed steps stay strings on the wire.
        assert_eq!(
            (&v["num_steps"], &v["start_step"]),
            (&json!("7"), &json!("3"))
        );
        // And the body reads back as itself.
        assert_eq!(StartProfile::from_json(b.to_json().as_bytes()).unwrap(), b);
    }

    #[test]
    fn reading_is_lenient_as_sglang() {
        let b = StartProfile::from_json(
            br#"{"num_steps": "5", "start_step": 12.0, "activities": "GPU", "whatever": 1,
                 "with_stack": "off", "profile_prefix": "", "profile_id": 17,
                 "merge_profiles": 1, "output_dir": null}"#,
        )
        .unwrap();
        assert_eq!(b.num_steps, Some(LaxInt::Text(5)));
        assert_eq!(b.start_step, Some(LaxInt::Number(12)));
        assert_eq!(b.activities, Some(vec!["GPU".to_string()]));
        assert_eq!(b.with_stack, Some(false));
        assert_eq!(b.merge_profiles, Some(true));
        assert_eq!(b.profile_prefix, None, "an empty string is unset");
        assert_eq!(b.profile_id.as_deref(), Some("17"));
        assert_eq!(b.output_dir, None);
        // 0 is falsy upstream: unset.
        let z = StartProfile::from_json(br#"{"num_steps": 0, "start_step": "0"}"#).unwrap();
        assert_eq!((z.num_steps, z.start_step), (None, None));
        for empty in [&b""[..], b"  \n", b"null"] {
            assert_eq!(
                StartProfile::from_json(empty).unwrap(),
                StartProfile::default()
            );
        }
        // Through serde too (a server's extractor).
        let s: StartProfile = serde_json::from_str(r#"{"num_steps": "2"}"#).unwrap();
        assert_eq!(s.num_steps.map(LaxInt::get), Some(2));
    }

    #[test]
    fn bad_fields_are_named() {
        for (body, msg) in [
            (
                &br#"{"num_steps": -3}"#[..],
                "num_steps: must be a non-negative integer, got -3",
            ),
            (
                br#"{"num_steps": "many"}"#,
                r#"num_steps: must be a non-negative integer, got "many""#,
            ),
            (
                br#"{"profile_by_stage": "maybe"}"#,
                r#"profile_by_stage: must be true or false, got "maybe""#,
            ),
            (
                br#"{"activities": ["CPU", 3]}"#,
                "activities: must be a list of strings, got 3",
            ),
            (
                br#"{"output_dir": ["a"]}"#,
                r#"output_dir: must be a string, got ["a"]"#,
            ),
            (br#"[1]"#, "the request body must be a JSON object, got [1]"),
        ] {
            assert_eq!(StartProfile::from_json(body).unwrap_err().to_string(), msg);
        }
        let e = StartProfile::from_json(br#"{"num_steps": 3"#).unwrap_err();
        assert!(
            matches!(&e, BodyError::Json { line: 1, .. })
                && e.to_string().contains("not valid JSON"),
            "{e}"
        );
    }
}
