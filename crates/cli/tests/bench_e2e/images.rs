//! bench_serving's image and mmmu datasets against `loupe serve`: images made in-process and
//! sent as data URIs (chat image_url parts, native image_data), the server counting each as
//! Qwen2-VL-sized placeholder tokens, and the vision tokens reported as the server's prompt
//! tokens less the text's; MMMU rows from a small JSONL export written here.

use std::io::Write;

use crate::common::*;
use base64::Engine as _;

/// Qwen2-VL's count for a w x h image of a multiple of 28 pixels a side, at least 56x56.
fn patches(w: u64, h: u64) -> u64 {
    (w / 28) * (h / 28)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_images_reach_the_server_and_are_counted_as_vision_tokens() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let out = s.jsonl();
    // Chat: two 112x56 PNGs per request (height first in the flag): 2 x 8 vision tokens.
    let o = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang-oai-chat",
        "--dataset-name",
        "image",
        "--num-prompts",
        "3",
        "--random-input-len",
        "12",
        "--random-output-len",
        "4",
        "--random-range-ratio",
        "1",
        "--image-count",
        "2",
        "--image-resolution",
        "56x112",
        "--image-format",
        "png",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(
        o.success(),
        "{:?}",
        o.runs[0].first_failure().map(|r| &r.error)
    );
    // Native: 1..3 random-size JPEGs of 56..84 x 56 pixels, blank.
    let o = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang",
        "--dataset-name",
        "image",
        "--num-prompts",
        "4",
        "--random-input-len",
        "8",
        "--random-output-len",
        "3",
        "--image-count",
        "3",
        "--random-image-count",
        "--image-resolution",
        "random:56x56-56x84",
        "--image-content",
        "blank",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(
        o.success(),
        "{:?}",
        o.runs[0].first_failure().map(|r| &r.error)
    );
    let recs = s.records();
    let (chat, native) = (&recs[0], &recs[1]);
    assert_eq!(chat["dataset_name"], "image");
    assert_eq!(u(chat, "completed"), 3);
    assert_eq!(
        u(chat, "total_input_vision_tokens"),
        3 * 2 * patches(112, 56)
    );
    assert_eq!(
        u(chat, "total_input_tokens"),
        u(chat, "total_input_text_tokens") + u(chat, "total_input_vision_tokens")
    );
    assert!(u(chat, "total_input_text_tokens") > 0);
    // Between one 56x56 image (4 tokens) and three 84x56 ones (6 each) per request.
    let v = u(native, "total_input_vision_tokens");
    assert!((4 * 4..=4 * 3 * 6).contains(&v), "{v}");
    assert_eq!(
        u(native, "total_input_tokens"),
        u(native, "total_input_text_tokens") + v
    );
    // The server's prompt tokens include the images: no prompt-length warning for them.
    assert!(
        chat.get("prompt_len_check")
            .is_none_or(|c| c["off"].as_u64().unwrap_or(0) == 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_only_to_backends_that_carry_them() {
    let e = bench(&[
        "--base-url",
        "http://127.0.0.1:9",
        "--backend",
        "sglang-oai",
        "--dataset-name",
        "image",
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("--backend sglang-oai cannot send images"), "{e}");
    let e = bench(&["--dataset-name", "mmmu"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("mmmu needs --dataset-path"), "{e}");
}

/// A small RGBA PNG, as MMMU's image_1 often is.
fn rgba_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    let mut wr = e.write_header().unwrap();
    wr.write_image_data(&vec![200; (w * h * 4) as usize])
        .unwrap();
    wr.finish().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mmmu_rows_from_a_jsonl_export() {
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let b64 = base64::engine::general_purpose::STANDARD.encode(rgba_png(56, 84));
    let rows = [
        format!(
            r#"{{"id": "a", "question": "What is 1+1?", "image_1": {{"bytes": "{b64}", "path": null}}}}"#
        ),
        r#"{"id": "b", "question": "No image here", "image_1": null}"#.to_string(),
        format!(
            r#"{{"id": "c", "question": "And 2+2?", "image_1": "data:image/png;base64,{b64}"}}"#
        ),
    ];
    let p = s.path("mmmu.jsonl");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(rows.join("\n").as_bytes())
        .unwrap();
    let path = p.display().to_string();
    let out = s.jsonl();
    let o = bench(&[
        "--base-url",
        &url,
        "--backend",
        "vllm-chat",
        "--dataset-name",
        "mmmu",
        "--dataset-path",
        &path,
        "--num-prompts",
        "5",
        "--random-output-len",
        "3",
        "--output-file",
        &out,
    ])
    .await
    .unwrap();
    assert!(o.success());
    let r = s.record();
    assert_eq!(
        (r["dataset_name"].as_str(), u(&r, "completed")),
        (Some("mmmu"), 2)
    );
    assert_eq!(u(&r, "total_input_vision_tokens"), 2 * patches(56, 84));
    assert_eq!(u(&r, "total_output_tokens"), 6);
    // A row whose image is not an image is named by file and line.
    std::fs::write(&p, r#"{"question": "q", "image_1": {"bytes": "aGVsbG8="}}"#).unwrap();
    let e = bench(&[
        "--base-url",
        &url,
        "--backend",
        "vllm-chat",
        "--dataset-name",
        "mmmu",
        "--dataset-path",
        &path,
        "--output-file",
        &out,
    ])
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("mmmu.jsonl:1") && e.contains("neither PNG nor JPEG"),
        "{e}"
    );
}

/// MMMU/MMMU's own layout (`Math/test-00000-of-00001.parquet`, the repository's schema),
/// read by a loupe built with `--features parquet`: the same prompts as the JSONL export's,
/// the images' placeholder tokens counted as vision tokens, in the record and in the page
/// `loupe report` rebuilds from the request timings.
#[cfg(feature = "parquet")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mmmu_rows_from_the_repositorys_parquet_file() {
    use loupe_bench::dataset::mmmu_parquet::{MmmuRow, write_sample};
    let server = server(|_| {}).await;
    let url = server.url();
    let s = Scratch::new();
    let math = s.path("MMMU/Math");
    std::fs::create_dir_all(&math).unwrap();
    let rows = vec![
        MmmuRow {
            question: "What is 1+1?".into(),
            image_1: Some(rgba_png(56, 84)),
        },
        MmmuRow {
            question: "No image here".into(),
            image_1: None,
        },
        MmmuRow {
            question: "And 2+2?".into(),
            image_1: Some(rgba_png(112, 56)),
        },
    ];
    write_sample(&math.join("test-00000-of-00001.parquet"), &rows).unwrap();
    let repo = s.path("MMMU").display().to_string();
    let out = s.jsonl();
    let page = s.path("mmmu.html");
    let o = bench(&[
        "--base-url",
        &url,
        "--backend",
        "sglang",
        "--dataset-name",
        "mmmu",
        "--dataset-path",
        &repo,
        "--num-prompts",
        "5",
        "--random-output-len",
        "3",
        "--output-file",
        &out,
        "--html",
        &page.display().to_string(),
    ])
    .await
    .unwrap();
    assert!(
        o.success(),
        "{:?}",
        o.runs[0].first_failure().map(|r| &r.error)
    );
    let r = s.record();
    assert_eq!(
        (r["dataset_name"].as_str(), u(&r, "completed")),
        (Some("mmmu"), 2)
    );
    let vision = patches(56, 84) + patches(112, 56);
    assert_eq!(u(&r, "total_input_vision_tokens"), vision);
    // `loupe report` rebuilds the run from its request timings: the same vision tokens.
    let timings = s.path("mmmu.requests.jsonl");
    let runs = loupe_bench::timings::read(&timings).unwrap();
    assert_eq!(runs[0].summary.total_input_vision_tokens, vision as usize);
    assert_eq!(
        runs[0].summary.total_input_tokens,
        u(&r, "total_input_tokens") as usize
    );
    let rebuilt = loupe_bench::report::record(&runs[0], false);
    assert_eq!(u(&rebuilt, "total_input_vision_tokens"), vision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_names_a_bad_image_part() {
    let server = server(|_| {}).await;
    let url = format!("{}/v1/chat/completions", server.url());
    let body = serde_json::json!({"model": "tiny", "max_tokens": 2, "messages": [{"role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "hi"}]}]});
    let r = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let t = r.text().await.unwrap();
    assert!(
        t.contains("messages[0].content[0].image_url.url") && t.contains("fetches no URLs"),
        "{t}"
    );
}
