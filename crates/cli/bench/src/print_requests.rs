//! `--print-requests` (bench_serving's, sglang-oai-chat only): a line on stdout as each
//! request starts and as it ends, in upstream's words:
//!
//! ```text
//! rid=<uuid4> time=<epoch s> message="request start" request_func_input="RequestFuncInput(...)"
//! rid=<uuid4> time=<epoch s> time_delta=<s> message="request end" output="RequestFuncOutput(...)"
//! ```
//!
//! The inputs and outputs are written as Python's dataclass reprs of what loupe has: the
//! prompt and the generated text are `'...'` as upstream elides them, and so is the base64 of
//! each image (upstream prints it whole).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use loupe_bench::observer::RequestSent;
use loupe_bench::record::RequestRecord;
use rand::RngExt;
use serde_json::{Map, Value};

/// Seconds since the epoch, as Python's `time.time()`.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A random version-4 UUID, as `str(uuid.uuid4())`.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Python's repr of a float (always a decimal point or an exponent).
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    format!("{x:?}")
}

/// Python's repr of a string (single quotes unless the text holds one and no double quote).
pub fn py_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Python's repr of a JSON value (dicts, lists, True/False/None).
pub fn py_value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_str(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_floats(xs: impl Iterator<Item = f64>) -> String {
    format!("[{}]", xs.map(py_float).collect::<Vec<_>>().join(", "))
}

/// The printer: each request's rid and start time between its two lines.
pub struct RequestPrinter {
    /// `--extra-request-body`, shown as upstream's `extra_request_body`.
    extra: Map<String, Value>,
    open: Mutex<HashMap<u64, (String, f64)>>,
}

impl RequestPrinter {
    pub fn new(extra: Map<String, Value>) -> Self {
        RequestPrinter {
            extra,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The "request start" line.
    pub fn start_line(&self, r: &RequestSent<'_>) -> String {
        let rid = uuid4();
        let t = now();
        self.open
            .lock()
            .expect("print-requests lock")
            .insert(r.seq, (rid.clone(), t));
        let body: Value = serde_json::from_slice(r.body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or_default();
        let lora = match &body["lora_path"] {
            Value::String(s) => py_str(s),
            _ => "None".into(),
        };
        let images: Vec<String> = body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .filter_map(|p| p["image_url"]["url"].as_str())
            .map(|u| {
                let head = u.split_once(',').map_or(u, |(h, _)| h);
                py_str(&format!("{head},..."))
            })
            .collect();
        let image_data = if images.is_empty() {
            "None".to_string()
        } else {
            format!("[{}]", images.join(", "))
        };
        let routing = "None";
        let input = format!(
            "RequestFuncInput(prompt='...', api_url={}, prompt_len={}, output_len={}, \
             model={}, lora_name={lora}, image_data={image_data}, extra_request_body={}, \
             timestamp=None, routing_key={routing})",
            py_str(r.url),
            r.prompt_len,
            r.output_len,
            py_str(model),
            py_value(&Value::Object(self.extra.clone())),
        );
        format!(
            "rid={rid} time={} message=\"request start\" request_func_input=\"{input}\"",
            py_float(t)
        )
    }

    /// The "request end" line (None: its start was never seen).
    pub fn end_line(&self, seq: u64, rec: &RequestRecord) -> Option<String> {
        let (rid, t0) = self
            .open
            .lock()
            .expect("print-requests lock")
            .remove(&seq)?;
        let t = now();
        let tpot = rec.tpot().map_or("None".to_string(), py_float);
        let output = format!(
            "RequestFuncOutput(generated_text='...', success={}, latency={}, ttft={}, \
             tpot={tpot}, itl={}, text_chunks=[], prompt_len={}, error={}, output_len={}, \
             start_time={}, cached_tokens={}, cached_tokens_details=None, \
             spec_accept_length=0.0, spec_cap_length=0.0, spec_block_accept_length=0.0, \
             spec_cap_lens_histogram=[])",
            if rec.ok { "True" } else { "False" },
            py_float(rec.latency),
            py_float(rec.ttft),
            py_floats(rec.gaps.iter().copied()),
            rec.prompt_len,
            py_str(&rec.error),
            rec.output_len,
            py_float(rec.start),
            rec.cached_tokens.unwrap_or(0),
        );
        Some(format!(
            "rid={rid} time={} time_delta={} message=\"request end\" output=\"{output}\"",
            py_float(t),
            py_float(t - t0)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_reprs() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.25), "0.25");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'b\"c\n"), "'a\\'b\"c\\n'");
        assert_eq!(
            py_value(&json!({"a": [1, 2.5, true, null], "b": "x"})),
            "{'a': [1, 2.5, True, None], 'b': 'x'}"
        );
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_start_and_its_end_share_the_rid() {
        let p = RequestPrinter::new(Map::new());
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "hi"}]}]});
        let body = serde_json::to_vec(&body).unwrap();
        let start = p.start_line(&RequestSent {
            seq: 7,
            url: "http://h/v1/chat/completions",
            body: &body,
            prompt_len: 3,
            output_len: 4,
        });
        assert!(start.contains(" message=\"request start\" request_func_input=\"RequestFuncInput(prompt='...', api_url='http://h/v1/chat/completions', prompt_len=3, output_len=4, model='m', lora_name=None, image_data=['data:image/png;base64,...'], extra_request_body={}"), "{start}");
        let rec = RequestRecord {
            ok: true,
            output_len: 4,
            ttft: 0.5,
            latency: 1.0,
            ..Default::default()
        };
        let end = p.end_line(7, &rec).unwrap();
        let rid = |l: &str| l.split(' ').next().unwrap().to_string();
        assert_eq!(rid(&start), rid(&end));
        assert!(end.contains("message=\"request end\" output=\"RequestFuncOutput(generated_text='...', success=True, latency=1.0, ttft=0.5"), "{end}");
        assert!(p.end_line(7, &rec).is_none());
    }
}
