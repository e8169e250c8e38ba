//! What a chat request's template costs the server: rendering a conversation through
//! `Tokenizer::apply_chat_template` (the template compiled once, at the first request) beside
//! building the environment and compiling the template for every request (what the engine did
//! before), side by side in one run, for the presets' short template and a longer tool-aware
//! one. Prints µs per render for both and their ratio.
//!
//!     cargo bench -p loupe-engine --bench chat_template -- [renders (default 20000)]

use std::time::Instant;

use loupe_engine::{ChatMessage, Tokenizer};

/// A template of the size and shape of today's instruction models' (system prompt, tools,
/// tool calls and results, generation prompt), written for this benchmark.
const TOOL_TEMPLATE: &str = r#"{%- if tools %}
{{- '<|im_start|>system\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}
{{- "You can call these functions. Each is described as JSON:\n<tools>" }}
{%- for tool in tools %}{{- "\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\n</tools>\n\nAnswer a call as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n" }}
{%- else %}
{%- if messages[0].role == 'system' %}
{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- else %}
{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
{{- '<|im_start|>' + message.role + '\n' + message.content.strip() + '<|im_end|>' + '\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\n' + message.content }}{%- endif %}
{{- '<|im_end|>\n' }}
{%- elif message.role == "tool" %}
{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != "tool" %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != "tool" %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"#;

fn messages() -> Vec<ChatMessage> {
    let m = |role: &str, content: &str| ChatMessage {
        role: role.into(),
        content: content.into(),
    };
    vec![
        m(
            "system",
            "You are a concise assistant for inference engineers.",
        ),
        m("user", "Why is my time to first token high under load?"),
        m(
            "assistant",
            "Prefill batches queue behind each other; look at the queue length.",
        ),
        m("user", "  How do I see the queue over the run?  "),
    ]
}

/// The old path: a fresh environment and a fresh compile of the template per request.
fn render_fresh(template: &str, messages: &[ChatMessage]) -> String {
    let env = loupe_engine::tokenizer::chat_environment(template.to_string()).unwrap();
    env.get_template("chat")
        .unwrap()
        .render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => true,
            bos_token => "",
            eos_token => "",
        })
        .unwrap()
}

fn tokenizer_with(template: &str) -> (tempfile::TempDir, Tokenizer) {
    let dir = tempfile::tempdir().unwrap();
    loupe_engine::tokenizer::write_byte_level_hf_dir(dir.path(), 512, &serde_json::json!({}))
        .unwrap();
    let cfg_path = dir.path().join("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["chat_template"] = template.into();
    cfg.as_object_mut().unwrap().remove("bos_token");
    cfg.as_object_mut().unwrap().remove("eos_token");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

fn per_render_us(renders: usize, mut f: impl FnMut() -> String) -> f64 {
    let mut bytes = 0;
    let t = Instant::now();
    for _ in 0..renders {
        bytes += f().len();
    }
    std::hint::black_box(bytes);
    t.elapsed().as_secs_f64() * 1e6 / renders as f64
}

fn main() {
    let renders: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("renders: a number"))
        .unwrap_or(20_000);
    let msgs = messages();
    let preset = Tokenizer::byte_level(512);
    // The presets' template (crates/engine/src/tokenizer/byte_level.rs).
    let preset_template = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let (_dir, tools) = tokenizer_with(TOOL_TEMPLATE);
    println!(
        "template | compiled once (us/render) | compiled per request (us/render) | per request / once"
    );
    for (name, tok, template) in [
        ("preset", &preset, preset_template),
        ("tool-aware", &tools, TOOL_TEMPLATE),
    ] {
        // Both ways render the same text.
        assert_eq!(
            tok.apply_chat_template(&msgs, true).unwrap(),
            render_fresh(template, &msgs)
        );
        let mut once = f64::INFINITY;
        let mut fresh = f64::INFINITY;
        for _ in 0..3 {
            once = once.min(per_render_us(renders, || {
                tok.apply_chat_template(&msgs, true).unwrap()
            }));
            fresh = fresh.min(per_render_us(renders, || render_fresh(template, &msgs)));
        }
        println!("{name} | {once:.2} | {fresh:.2} | {:.2}", fresh / once);
    }
}
