//! Reading request bodies field by field, so that every complaint names its field
//! (`sampling_params.temperature: must be a number, got "hot"`).

use serde_json::{Map, Value};

use crate::error::{ApiError, Surface};

/// Parse a body as a JSON object, reporting where it broke.
pub fn json_object(body: &[u8], surface: Surface) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest {
        surface,
        param: None,
        message: format!(
            "the request body is not valid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::BadRequest {
            surface,
            param: None,
            message: format!(
                "the request body must be a JSON object, got {}",
                kind(&other)
            ),
        }),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being read, with the path of its fields for error messages.
pub struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    prefix: String,
    surface: Surface,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: &str, surface: Surface) -> Self {
        Fields {
            map,
            prefix: prefix.to_string(),
            surface,
        }
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn err(&self, key: &str, message: impl Into<String>) -> ApiError {
        let path = self.path(key);
        ApiError::BadRequest {
            surface: self.surface,
            message: format!("{path}: {}", message.into()),
            param: Some(path),
        }
    }

    /// The value, with `null` treated as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn f32(&self, key: &str) -> Result<Option<f32>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| self.err(key, format!("must be a number, got {}", kind(v)))),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match (v.as_u64(), v.as_i64()) {
                (Some(n), _) => Ok(Some(n)),
                (None, Some(n)) => Err(self.err(key, format!("must be >= 0, got {n}"))),
                _ => Err(self.err(key, format!("must be an integer, got {v}"))),
            },
        }
    }

    pub fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be an integer, got {v}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be true or false, got {}", kind(v)))),
        }
    }

    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be a string, got {}", kind(v)))),
        }
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_object()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("must be an object, got {}", kind(v)))),
        }
    }

    /// A string or a list of strings (`stop`).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        self.err(
                            &format!("{key}[{i}]"),
                            format!("must be a string, got {}", kind(v)),
                        )
                    })
                })
                .collect(),
            Some(v) => Err(self.err(
                key,
                format!("must be a string or a list of strings, got {}", kind(v)),
            )),
        }
    }

    /// A list of token ids.
    pub fn token_ids(&self, key: &str) -> Result<Vec<u32>, ApiError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => token_list(v).map_err(|m| self.err(key, m)),
        }
    }
}

/// `[int, ...]` with every id a non-negative 32-bit integer.
pub fn token_list(v: &Value) -> Result<Vec<u32>, String> {
    let Some(items) = v.as_array() else {
        return Err(format!("must be a list of token ids, got {}", kind(v)));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .map(|n| n as u32)
                .ok_or_else(|| format!("item {i} must be a token id (integer >= 0), got {t}"))
        })
        .collect()
}

/// Reject keys the engine does not implement, instead of silently ignoring them.
pub fn reject_unsupported(f: &Fields<'_>, keys: &[(&str, &str)]) -> Result<(), ApiError> {
    for (key, why) in keys {
        if let Some(v) = f.get(key)
            && v != &Value::Bool(false)
        {
            return Err(f.err(
                key,
                format!("is not supported by loupe's reference engine ({why})"),
            ));
        }
    }
    Ok(())
}
