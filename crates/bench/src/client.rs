//! One streaming request, timed the way bench_serving times it (the clock starts just before
//! the request is sent), but with every timestamp read when a network read completes, before
//! any JSON is parsed. Request bodies are serialized before the run starts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value, json};

use crate::chunk::StreamState;
use crate::dataset::{Prompt, PromptInput};
use crate::http1::{Endpoint, Receiver, Sink};
use crate::plan::Api;
use crate::record::RequestRecord;
use crate::sse::{SseData, SseSplitter};

/// The header bench_serving's generated-shared-prefix dataset routes by.
pub const ROUTING_KEY_HEADER: &str = "X-SMG-Routing-Key";

/// Streams asked for fewer tokens than this are read by their own task, not the receive thread.
const HAND_OFF_MIN_TOKENS: usize = 16;

/// Everything fixed for a run's request bodies.
#[derive(Debug, Clone)]
pub struct BodyOptions {
    pub api: Api,
    pub model: String,
    pub temperature: f64,
    pub top_p: f64,
    pub ignore_eos: bool,
    pub continuous_usage: bool,
    /// SGLang's `return_cached_tokens_details` (--cache-report on sglang-oai routes).
    pub cached_details: bool,
    /// false: --disable-stream.
    pub stream: bool,
    /// `--extra-request-body`, merged last (it overrides loupe's fields, as in bench_serving).
    pub extra: Map<String, Value>,
}

/// A request ready to send: serialized body and what the metrics need to know about it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: Bytes,
    pub prompt_len: usize,
    pub output_len: usize,
    pub routing_key: Option<HeaderValue>,
}

impl BodyOptions {
    /// The JSON body for `prompt`, asking for `output_len` tokens.
    pub fn body(&self, prompt: &Prompt, output_len: usize) -> Result<Bytes, String> {
        self.body_with(prompt, output_len, None)
    }

    /// As [`BodyOptions::body`], with `extra` merged after `--extra-request-body` (a dataset
    /// line's own request keys).
    pub fn body_with(
        &self,
        prompt: &Prompt,
        output_len: usize,
        extra: Option<&Map<String, Value>>,
    ) -> Result<Bytes, String> {
        let mut v = match (self.api, &prompt.input) {
            (Api::Native | Api::Completions, PromptInput::Messages(_)) => {
                return Err("a chat history reached a text route unrendered".into());
            }
            (
                Api::Native,
                PromptInput::Multimodal {
                    text,
                    templated,
                    images,
                    ..
                },
            ) => {
                let mut sp = json!({"temperature": self.temperature, "max_new_tokens": output_len, "ignore_eos": self.ignore_eos});
                if self.top_p < 1.0 {
                    sp["top_p"] = json!(self.top_p);
                }
                json!({"text": templated.as_deref().unwrap_or(text), "image_data": &images[..],
                       "sampling_params": sp, "stream": self.stream})
            }
            (Api::Chat, PromptInput::Multimodal { text, images, .. }) => {
                let mut parts: Vec<Value> = images
                    .iter()
                    .map(|u| json!({"type": "image_url", "image_url": {"url": u}}))
                    .collect();
                parts.push(json!({"type": "text", "text": text}));
                json!({
                    "model": self.model,
                    "messages": [{"role": "user", "content": parts}],
                    "max_completion_tokens": output_len,
                })
            }
            (_, PromptInput::Multimodal { .. }) => {
                return Err(
                    "images go only to /generate and chat backends (sglang, sglang-native, \
                     *-chat)"
                        .into(),
                );
            }
            (Api::Native, input) => {
                let mut sp = json!({"temperature": self.temperature, "max_new_tokens": output_len, "ignore_eos": self.ignore_eos});
                if self.top_p < 1.0 {
                    sp["top_p"] = json!(self.top_p);
                }
                let mut b = json!({"sampling_params": sp, "stream": self.stream});
                if let PromptInput::Ids(ids) = input {
                    b["input_ids"] = json!(ids);
                } else if let PromptInput::Text(t) = input {
                    b["text"] = json!(t);
                }
                b
            }
            (Api::Completions, input) => {
                let prompt = match input {
                    PromptInput::Ids(ids) => json!(ids),
                    PromptInput::Text(t) => json!(t),
                    PromptInput::Messages(_) | PromptInput::Multimodal { .. } => Value::Null,
                };
                json!({"model": self.model, "prompt": prompt, "best_of": 1, "max_tokens": output_len})
            }
            (Api::Chat, PromptInput::Text(t)) => json!({
                "model": self.model,
                "messages": [{"role": "user", "content": t}],
                "max_completion_tokens": output_len,
            }),
            (Api::Chat, PromptInput::Messages(m)) => json!({
                "model": self.model,
                "messages": m,
                "max_completion_tokens": output_len,
            }),
            (Api::Embeddings, input) => {
                let text_or_ids = match input {
                    PromptInput::Ids(ids) => json!(ids),
                    PromptInput::Text(t) => json!(t),
                    PromptInput::Messages(_) | PromptInput::Multimodal { .. } => {
                        return Err("embedding backends take single text prompts".into());
                    }
                };
                json!({"model": self.model, "input": text_or_ids})
            }
            // bench_serving's Triton body: near-zero temperature, EOS pushed out of reach
            // unless --disable-ignore-eos.
            (Api::Trt, PromptInput::Text(t)) => {
                let mut b = json!({"accumulate_tokens": true, "text_input": t,
                                   "temperature": 0.000001, "top_p": 1.0,
                                   "max_tokens": output_len, "stream": true});
                if self.ignore_eos {
                    b["min_length"] = json!(output_len);
                    b["end_id"] = json!(1048576);
                }
                b
            }
            (Api::Truss, PromptInput::Text(t)) => json!({
                "model": self.model, "prompt": t, "temperature": 0.0, "best_of": 1,
                "max_tokens": output_len, "stream": self.stream, "ignore_eos": self.ignore_eos,
            }),
            (Api::Trt | Api::Truss, _) => {
                return Err(
                    "trt and truss take text prompts: give a --tokenizer to turn \
                            token ids into text"
                        .into(),
                );
            }
            (Api::Chat, PromptInput::Ids(_)) => {
                return Err(
                    "chat backends need text prompts; this prompt is token ids only \
                     (give a --tokenizer, or use --backend sglang or sglang-oai)"
                        .into(),
                );
            }
        };
        if matches!(self.api, Api::Completions | Api::Chat) {
            v["stream"] = json!(self.stream);
            v["temperature"] = json!(self.temperature);
            v["ignore_eos"] = json!(self.ignore_eos);
            if self.top_p < 1.0 {
                v["top_p"] = json!(self.top_p);
            }
            let mut opts = json!({"include_usage": true});
            if self.continuous_usage {
                opts["continuous_usage_stats"] = json!(true);
            }
            if self.stream {
                v["stream_options"] = opts;
            }
            if self.cached_details {
                v["return_cached_tokens_details"] = json!(true);
            }
        }
        let obj = v.as_object_mut().expect("bodies are objects");
        for (k, val) in self.extra.iter().chain(extra.into_iter().flatten()) {
            obj.insert(k.clone(), val.clone());
        }
        serde_json::to_vec(&v)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }

    pub fn prepare(&self, prompt: &Prompt, output_len: usize) -> Result<Prepared, String> {
        self.prepare_with(prompt, output_len, None)
    }

    pub fn prepare_with(
        &self,
        prompt: &Prompt,
        output_len: usize,
        extra: Option<&Map<String, Value>>,
    ) -> Result<Prepared, String> {
        let prompt_len = match &prompt.input {
            PromptInput::Multimodal { native_len, .. } if self.api == Api::Native => *native_len,
            _ => prompt.prompt_len,
        };
        Ok(Prepared {
            body: self.body_with(prompt, output_len, extra)?,
            prompt_len,
            output_len,
            routing_key: match &prompt.routing_key {
                Some(k) => Some(HeaderValue::from_str(k).map_err(|e| format!("routing key: {e}"))?),
                None => None,
            },
        })
    }
}

/// Where and how requests go.
pub struct Target {
    /// The generation route and its pool of connections.
    pub endpoint: Endpoint,
    /// The generation endpoint's full URL.
    pub url: String,
    pub api: Api,
    /// The whole request, from send to the end of the stream.
    pub timeout: Duration,
    /// Longest silence inside a response.
    pub read_timeout: Option<Duration>,
    /// The thread that reads the response bodies (None: each request's task reads its own).
    pub recv: Option<Receiver>,
    /// Responses are one JSON body, not a stream (embeddings, --disable-stream).
    pub whole_body: bool,
    /// Told as each request is sent and as it ends (None: nobody follows them).
    pub observer: Option<std::sync::Arc<dyn crate::observer::BenchObserver>>,
    /// The next request's number for the observer.
    seq: std::sync::atomic::AtomicU64,
}

impl Target {
    /// `headers`: auth and --header headers; the JSON content type is added.
    pub async fn new(
        url: String,
        api: Api,
        mut headers: HeaderMap,
        timeout: Duration,
        read_timeout: Option<Duration>,
        stream: bool,
    ) -> Result<Self, String> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Target {
            endpoint: Endpoint::new(&url, &headers).await?,
            url,
            api,
            timeout,
            read_timeout,
            recv: receive_thread(),
            // Triton streams whatever the flag says (bench_serving ignores it there).
            whole_body: api == Api::Embeddings || (!stream && api != Api::Trt),
            observer: None,
            seq: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Send `req` and time its stream. `rec` arrives with the schedule times filled in;
    /// `t0` is the run's start. The observer hears of it just before it is sent and once it
    /// has ended (outside the timed span: the clock starts inside).
    pub async fn send(&self, req: &Prepared, t0: Instant, rec: RequestRecord) -> RequestRecord {
        let Some(o) = &self.observer else {
            return self.send_timed(req, t0, rec).await;
        };
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        o.request_sent(&crate::observer::RequestSent {
            seq,
            url: &self.url,
            body: &req.body,
            prompt_len: req.prompt_len,
            output_len: req.output_len,
        });
        let rec = self.send_timed(req, t0, rec).await;
        o.request_ended(seq, &rec);
        rec
    }

    async fn send_timed(
        &self,
        req: &Prepared,
        t0: Instant,
        mut rec: RequestRecord,
    ) -> RequestRecord {
        rec.prompt_len = req.prompt_len;
        rec.output_len = req.output_len;
        let bytes = self.endpoint.request(
            &req.body,
            req.routing_key.as_ref().map(|k| (ROUTING_KEY_HEADER, k)),
        );
        let fail = |mut rec: RequestRecord, msg: String| {
            rec.ok = false;
            rec.error = msg;
            rec
        };
        let mut sent = Instant::now();
        let deadline = sent + self.timeout;
        let resp = self
            .endpoint
            .send(&bytes, deadline, self.read_timeout, |at| sent = at)
            .await;
        rec.start = (sent - t0).as_secs_f64();
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return fail(rec, e.to_string()),
        };
        if !resp.status.is_success() {
            let status = resp.status;
            let text = resp.text().await;
            let text = text.trim();
            let cut = (0..=text.len().min(500))
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            return fail(rec, format!("HTTP {status}: {}", &text[..cut]));
        }
        // Kept for the report if the receive thread dies with the stream's state.
        let fallback = rec.clone();
        let timing = Timing {
            api: self.api,
            sent,
            splitter: SseSplitter::default(),
            state: StreamState::default(),
            rec,
            done: false,
            bad: None,
            whole: self.whole_body,
        };
        // Handing a socket to the receive thread and back costs two thread wake-ups and four
        // epoll changes; short streams are read here, where that would cost more than it saves.
        let recv = self
            .recv
            .as_ref()
            .filter(|_| req.output_len >= HAND_OFF_MIN_TOKENS);
        let streamed = match resp.stream(recv, timing).await {
            Ok(s) => s,
            Err(e) => return fail(fallback, e),
        };
        let Timing {
            api,
            mut state,
            mut rec,
            done,
            bad,
            ..
        } = streamed.sink;
        if let Some(e) = bad {
            return fail(rec, e);
        }
        if let Err(e) = streamed.outcome {
            let chunks = rec.gaps.len() + usize::from(rec.ttft > 0.0);
            return fail(
                rec,
                format!(
                    "stream broke after {chunks} content chunk{}: {e}",
                    if chunks == 1 { "" } else { "s" },
                ),
            );
        }
        if !done && !api.ends_without_done() && !self.whole_body {
            return fail(
                rec,
                "the server closed the stream before [DONE]".to_string(),
            );
        }
        let whole = match api {
            _ if !self.whole_body => Ok(()),
            Api::Embeddings => state.embedding(&mut rec),
            // bench_serving without a stream: the one body is the first and last "chunk",
            // TTFT is the whole latency.
            _ => state.whole_response(api, &mut rec),
        };
        if let Err(e) = whole {
            return fail(rec, e);
        }
        state.finish(api, &mut rec);
        rec.ok = true;
        rec
    }
}

/// A stream's timing state, fed with each payload as its bytes arrive (on the receive thread
/// when there is one).
struct Timing {
    api: Api,
    /// When the request was written out.
    sent: Instant,
    splitter: SseSplitter,
    state: StreamState,
    rec: RequestRecord,
    /// `[DONE]` seen.
    done: bool,
    /// The first chunk that could not be used; reading stops there.
    bad: Option<String>,
    /// One JSON body, read whole.
    whole: bool,
}

impl Sink for Timing {
    fn data(&mut self, at: Instant, payload: &[u8]) -> bool {
        let t = (at - self.sent).as_secs_f64();
        if self.whole {
            // One JSON body: its latency is when its last byte came.
            self.state.body(payload);
            self.rec.latency = t;
            return true;
        }
        let mut events = 0;
        let (api, state, rec, done, bad) = (
            self.api,
            &mut self.state,
            &mut self.rec,
            &mut self.done,
            &mut self.bad,
        );
        self.splitter.push(payload, &mut |data| {
            events += 1;
            match data {
                SseData::Done => *done = true,
                SseData::Json(bytes) if bad.is_none() => {
                    if let Err(e) = state.on_event(api, bytes, t, rec) {
                        *bad = Some(e);
                    }
                }
                SseData::Json(_) => {}
            }
        });
        if events > 0 {
            self.rec.latency = t;
        }
        self.bad.is_none()
    }
}

/// The receive thread, where there is one; without it each request's task reads its body.
#[cfg(target_os = "linux")]
fn receive_thread() -> Option<Receiver> {
    match Receiver::start() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("no receive thread ({e}); each request reads its own response");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn receive_thread() -> Option<Receiver> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(api: Api) -> BodyOptions {
        BodyOptions {
            api,
            model: "m".into(),
            temperature: 0.0,
            top_p: 1.0,
            ignore_eos: true,
            continuous_usage: false,
            cached_details: false,
            stream: true,
            extra: Map::new(),
        }
    }

    fn body(o: &BodyOptions, input: PromptInput) -> Value {
        let p = Prompt {
            input,
            prompt_len: 3,
            output_len: 9,
            routing_key: None,
        };
        serde_json::from_slice(&o.body(&p, 9).unwrap()).unwrap()
    }

    #[test]
    fn images_go_as_chat_parts_or_native_image_data() {
        let prompt = Prompt {
            input: PromptInput::Multimodal {
                text: "hi".into(),
                templated: Some("<user>hi<assistant>".into()),
                native_len: 5,
                images: std::sync::Arc::from(vec!["data:image/png;base64,AA".to_string()]),
            },
            prompt_len: 1,
            output_len: 2,
            routing_key: None,
        };
        let mut o = opts(Api::Chat);
        let b: Value = serde_json::from_slice(&o.body(&prompt, 2).unwrap()).unwrap();
        assert_eq!(
            b["messages"],
            json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "text", "text": "hi"}]}])
        );
        o.api = Api::Native;
        let b: Value = serde_json::from_slice(&o.body(&prompt, 2).unwrap()).unwrap();
        assert_eq!(b["text"], "<user>hi<assistant>");
        assert_eq!(b["image_data"], json!(["data:image/png;base64,AA"]));
        o.api = Api::Completions;
        assert!(o.body(&prompt, 2).unwrap_err().contains("images go only"));
    }

    #[test]
    fn bodies_follow_bench_serving() {
        let n = body(&opts(Api::Native), PromptInput::Ids(vec![1, 2, 3]));
        assert_eq!(n["input_ids"], json!([1, 2, 3]));
        assert_eq!(n["sampling_params"]["max_new_tokens"], 9);
        assert_eq!(n["sampling_params"]["ignore_eos"], true);
        let c = body(&opts(Api::Completions), PromptInput::Text("hi".into()));
        assert_eq!(
            (c["prompt"].clone(), c["max_tokens"].clone()),
            (json!("hi"), json!(9))
        );
        assert_eq!(c["stream_options"]["include_usage"], true);
        let mut o = opts(Api::Chat);
        o.extra.insert("ignore_eos".into(), json!(false));
        let ch = body(&o, PromptInput::Text("hi".into()));
        assert_eq!(ch["messages"][0]["content"], "hi");
        assert_eq!(ch["max_completion_tokens"], 9);
        assert_eq!(ch["ignore_eos"], false, "--extra-request-body overrides");
        let p = Prompt {
            input: PromptInput::Ids(vec![1]),
            prompt_len: 1,
            output_len: 1,
            routing_key: None,
        };
        assert!(opts(Api::Chat).body(&p, 1).is_err());
    }
}
