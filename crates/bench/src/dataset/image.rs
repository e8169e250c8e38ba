//! bench_serving's multimodal datasets: `image` (images generated here, random or blank, JPEG
//! or PNG, with random-token text) and `mmmu` (MMMU/MMMU rows read from the repository's
//! parquet files, feature `parquet` through `mmmu_parquet`, or from a local JSONL export:
//! `image_1` and `Question: {question}\n\nAnswer: `). Each prompt carries its images as
//! `data:image/{fmt};base64,...` URIs, made before the run: nothing is encoded while streams
//! are timed.
//!
//! Prompt lengths: `prompt_len` is the text's tokens (through the chat template when the
//! tokenizer has one, as upstream's text-only count; on /generate, the templated text's). Upstream adds the vision tokens its
//! model processor counts; loupe has no processor, so the vision tokens come from the server's
//! reported `prompt_tokens` after the run (see `metrics::Summary::vision`).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::Value;

use super::lines::{Line, each_json_line, string};
use super::{DatasetConfig, Prompt, PromptInput, draw_len};
use crate::error::{BenchError, Result};
use crate::plan::{ImageContent, ImageFormat, ImagePlan, ImageResolution};
use crate::tokenizer::BenchTokenizer;

/// One image as upstream sends it.
pub fn data_uri(format: &str, bytes: &[u8]) -> String {
    format!("data:image/{format};base64,{}", STANDARD.encode(bytes))
}

/// `width` x `height` RGB pixels encoded as `format` (JPEG at quality 85, as PIL's call).
pub fn encode(rgb: &[u8], width: u32, height: u32, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
                (Ok(w), Ok(h)) => (w, h),
                _ => {
                    return Err(BenchError::Usage(format!(
                        "--image-resolution: JPEG images are at most 65535 pixels a side, not \
                         {width}x{height} (use --image-format png)"
                    )));
                }
            };
            jpeg_encoder::Encoder::new(&mut out, 85)
                .encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| BenchError::Usage(format!("JPEG encoding failed: {e}")))?;
        }
        ImageFormat::Png => {
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()
                .and_then(|mut w| {
                    w.write_image_data(rgb)?;
                    w.finish()
                })
                .map_err(|e| BenchError::Usage(format!("PNG encoding failed: {e}")))?;
        }
    }
    Ok(out)
}

/// One generated image's pixels: random RGB bytes or white.
fn pixels(rng: &mut StdRng, width: u32, height: u32, content: ImageContent) -> Vec<u8> {
    let n = width as usize * height as usize * 3;
    match content {
        ImageContent::Blank => vec![255; n],
        ImageContent::Random => {
            let mut v = vec![0u8; n];
            rng.fill_bytes(&mut v);
            v
        }
    }
}

fn size(rng: &mut StdRng, r: ImageResolution) -> (u32, u32) {
    match r {
        ImageResolution::Fixed { width, height } => (width, height),
        ImageResolution::Random { min, max } => (
            rng.random_range(min.0..=max.0),
            rng.random_range(min.1..=max.1),
        ),
    }
}

/// The text through the chat template when the tokenizer has one (what the native route
/// sends), its tokens as a chat route counts them (upstream's text-only `text_prompt_len`)
/// and as /generate counts the text it is sent.
fn text_forms(tok: &BenchTokenizer, raw: &str) -> Result<(Option<String>, usize, usize)> {
    let chat = tok.chat_len(raw)?;
    if tok.has_chat_template() {
        let t = tok.chat(raw)?;
        let native = tok.encode(&t)?.len();
        Ok((Some(t), chat, native))
    } else {
        Ok((None, chat, tok.encode(raw)?.len()))
    }
}

/// `--dataset-name image`.
pub fn generate(
    cfg: &DatasetConfig<'_>,
    tok: &BenchTokenizer,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    let img: &ImagePlan = cfg.image;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let vocab = tok.vocab_size().max(1);
    let (mut images_total, mut bytes_total) = (0usize, 0usize);
    let mut out = Vec::with_capacity(cfg.num);
    for _ in 0..cfg.num {
        let n_in = draw_len(&mut rng, cfg.input_len, cfg.range_ratio, cfg.semantics);
        let n_out = draw_len(&mut rng, cfg.output_len, cfg.range_ratio, cfg.semantics);
        let count = if img.random_count {
            rng.random_range(1..=img.count)
        } else {
            img.count
        };
        // Random tokens of the vocabulary, special tokens left out of the text.
        let ids: Vec<u32> = (0..n_in)
            .map(|_| rng.random_range(0..vocab) as u32)
            .collect();
        let raw = tok.decode_plain(&ids)?;
        let mut uris = Vec::with_capacity(count);
        for _ in 0..count {
            let (w, h) = size(&mut rng, img.resolution);
            let px = pixels(&mut rng, w, h, img.content);
            let bytes = encode(&px, w, h, img.format)?;
            let uri = data_uri(img.format.name(), &bytes);
            bytes_total += uri.len();
            uris.push(uri);
        }
        images_total += count;
        let (templated, text_len, native_len) = text_forms(tok, &raw)?;
        out.push(Prompt {
            input: PromptInput::Multimodal {
                text: raw,
                templated,
                native_len,
                images: Arc::from(uris),
            },
            prompt_len: text_len,
            output_len: n_out,
            routing_key: None,
        });
    }
    let (mw, mh) = img.resolution.max();
    if u64::from(mw) * u64::from(mh) >= 1920 * 1080 && images_total >= 100 {
        notes.push(format!(
            "{images_total} images of up to {mw}x{mh}: the request bodies are large (consider \
             a smaller --image-resolution or --image-count)"
        ));
    }
    notes.push(format!(
        "{images_total} {} {} images, {} bytes of data URIs per request on average; vision \
         tokens are the server's prompt_tokens less the text's",
        match img.content {
            ImageContent::Random => "random",
            ImageContent::Blank => "blank",
        },
        img.format.name(),
        bytes_total / cfg.num.max(1)
    ));
    Ok(out)
}

/// An MMMU image as the export holds it: PNG or JPEG bytes.
fn image_bytes(v: &Value, dir: &Path) -> std::result::Result<Vec<u8>, String> {
    let from_text = |s: &str| -> std::result::Result<Vec<u8>, String> {
        if let Some(rest) = s.strip_prefix("data:") {
            let (_, b64) = rest
                .split_once(";base64,")
                .ok_or("a data URI without ;base64,")?;
            return STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("bad base64: {e}"));
        }
        if let Ok(b) = STANDARD.decode(s.trim()) {
            return Ok(b);
        }
        let p = dir.join(s);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    match v {
        Value::String(s) => from_text(s),
        // Hugging Face datasets' Image feature: {"bytes": ..., "path": ...}.
        Value::Object(m) => match (m.get("bytes"), m.get("path")) {
            (Some(Value::String(b)), _) => from_text(b),
            (Some(Value::Array(a)), _) => a
                .iter()
                .map(|x| x.as_u64().filter(|&n| n < 256).map(|n| n as u8))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| "\"bytes\" must be base64 text or a list of bytes".into()),
            (_, Some(Value::String(p))) => from_text(p),
            _ => Err("an image object needs \"bytes\" or \"path\"".into()),
        },
        other => Err(format!(
            "must be an image (base64, data URI, path or {{\"bytes\"}}), got {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Array(_) => "a list",
                _ => "something else",
            }
        )),
    }
}

/// The image as upstream sends it: PNG, RGBA turned into RGB. PNGs of other color types go
/// as they are (already PNG); JPEGs go as JPEG (returned as such, counted in the notes).
fn mmmu_uri(bytes: &[u8]) -> std::result::Result<(String, bool), String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok((data_uri("jpeg", bytes), true));
    }
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("neither PNG nor JPEG".into());
    }
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let (color, depth) = reader.output_color_type();
    if color != png::ColorType::Rgba || depth != png::BitDepth::Eight {
        return Ok((data_uri("png", bytes), false));
    }
    let size = reader.output_buffer_size().ok_or("the PNG is too large")?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let rgba = &buf[..info.buffer_size()];
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let png = encode(&rgb, info.width, info.height, ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok((data_uri("png", &png), false))
}

/// MMMU rows as read: each usable row's question and image URI, and what was left out.
#[derive(Default)]
struct MmmuFound {
    rows: Vec<(String, String)>,
    no_image: usize,
    jpegs: usize,
}

impl MmmuFound {
    /// One row: its question and `image_1`'s bytes (None: the row has none, skipped as
    /// upstream skips it). The image is converted here, so a bad one is named by its row.
    fn add(&mut self, question: &str, image: Option<Vec<u8>>) -> std::result::Result<(), String> {
        match image {
            None => self.no_image += 1,
            Some(bytes) => {
                let (uri, jpeg) = mmmu_uri(&bytes).map_err(|e| format!("image_1: {e}"))?;
                self.jpegs += usize::from(jpeg);
                self.rows.push((question.to_string(), uri));
            }
        }
        Ok(())
    }
}

/// Whether `--dataset-path` names MMMU's parquet files rather than a JSONL export: a
/// `.parquet` file or a folder.
fn is_parquet_path(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

#[cfg(feature = "parquet")]
fn read_parquet(
    path: &Path,
    skip_bad: bool,
    notes: &mut Vec<String>,
    found: &mut MmmuFound,
) -> Result<()> {
    for file in super::mmmu_parquet::files(path)? {
        super::mmmu_parquet::each_row(&file, skip_bad, notes, |row| {
            found.add(&row.question, row.image_1)
        })?;
    }
    Ok(())
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(path: &Path, _: bool, _: &mut Vec<String>, _: &mut MmmuFound) -> Result<()> {
    Err(BenchError::Dataset {
        path: path.display().to_string(),
        message: "MMMU's parquet files need a loupe built with `--features parquet` \
                  (`cargo build --release --features parquet`); this build reads the JSONL \
                  export (one row a line with question and image_1, the README shows how)"
            .into(),
    })
}

/// `--dataset-name mmmu`: MMMU/MMMU (config Math, split test) from the repository's parquet
/// files (a `.parquet` file or the repository's folder, feature `parquet`) or from a JSONL
/// export, one row a line with `question` and `image_1`; rows without an image are skipped,
/// as upstream does.
pub fn mmmu(
    cfg: &DatasetConfig<'_>,
    tok: &BenchTokenizer,
    notes: &mut Vec<String>,
) -> Result<Vec<Prompt>> {
    if cfg.path.is_empty() {
        return Err(BenchError::Usage(
            "--dataset-name mmmu needs --dataset-path: MMMU/MMMU's Math/test-*.parquet (or \
             the folder holding Math/), or a JSONL export of it with question and image_1 \
             per line (loupe does not download; the README shows where the file comes from)"
                .into(),
        ));
    }
    let path = Path::new(cfg.path);
    let mut found = MmmuFound::default();
    let skip_bad = cfg.traces.skip_bad_lines;
    if is_parquet_path(path) {
        read_parquet(path, skip_bad, notes, &mut found)?;
    } else {
        let dir = path.parent().unwrap_or(Path::new("."));
        each_json_line(cfg.path, skip_bad, notes, |v| {
            let q = string(&v, "question")?;
            let image = match v.get("image_1") {
                None | Some(Value::Null) => None,
                Some(img) => Some(image_bytes(img, dir).map_err(|e| format!("image_1: {e}"))?),
            };
            found.add(q, image)?;
            Ok(Line::Keep)
        })?;
    }
    mmmu_prompts(cfg, tok, notes, found)
}

/// The prompts of the rows read: upstream's `random.sample` of `--num-prompts` rows when
/// there are more, `Question: {question}\n\nAnswer: ` with `image_1`.
fn mmmu_prompts(
    cfg: &DatasetConfig<'_>,
    tok: &BenchTokenizer,
    notes: &mut Vec<String>,
    found: MmmuFound,
) -> Result<Vec<Prompt>> {
    let MmmuFound {
        rows: mut found,
        no_image,
        jpegs,
    } = found;
    if no_image > 0 {
        notes.push(format!("{no_image} rows without image_1 were skipped"));
    }
    // Upstream: random.sample when the dataset has more rows than asked for.
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    if found.len() > cfg.num {
        found.shuffle(&mut rng);
        found.truncate(cfg.num);
    }
    let mut out = Vec::with_capacity(found.len());
    for (q, uri) in found {
        let raw = format!("Question: {q}\n\nAnswer: ");
        let (templated, text_len, native_len) = text_forms(tok, &raw)?;
        out.push(Prompt {
            input: PromptInput::Multimodal {
                text: raw,
                templated,
                native_len,
                images: Arc::from(vec![uri]),
            },
            prompt_len: text_len,
            output_len: cfg.output_len,
            routing_key: None,
        });
    }
    if jpegs > 0 {
        notes.push(format!(
            "{jpegs} image_1 values are JPEG and were sent as JPEG (upstream re-encodes them \
             as PNG)"
        ));
    }
    if out.len() < cfg.num {
        notes.push(format!(
            "{} has {} usable rows: {} prompts instead of {}",
            cfg.path,
            out.len(),
            out.len(),
            cfg.num
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_images_decode_to_their_size() {
        let mut rng = StdRng::seed_from_u64(3);
        let px = pixels(&mut rng, 40, 30, ImageContent::Random);
        let png_bytes = encode(&px, 40, 30, ImageFormat::Png).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(&png_bytes[..]));
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (40, 30));
        let jpg = encode(&px, 40, 30, ImageFormat::Jpeg).unwrap();
        assert!(jpg.starts_with(&[0xFF, 0xD8, 0xFF]));
        let blank = pixels(&mut rng, 2, 2, ImageContent::Blank);
        assert!(blank.iter().all(|&b| b == 255));
        assert!(data_uri("png", b"ab").starts_with("data:image/png;base64,YWI="));
    }

    #[test]
    fn rgba_pngs_become_rgb_and_others_pass() {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, 2, 1);
            e.set_color(png::ColorType::Rgba);
            e.set_depth(png::BitDepth::Eight);
            let mut w = e.write_header().unwrap();
            w.write_image_data(&[1, 2, 3, 255, 4, 5, 6, 0]).unwrap();
        }
        let (uri, jpeg) = mmmu_uri(&out).unwrap();
        assert!(!jpeg);
        let b = STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        let mut r = png::Decoder::new(std::io::Cursor::new(&b[..]))
            .read_info()
            .unwrap();
        assert_eq!(r.output_color_type().0, png::ColorType::Rgb);
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        assert_eq!(&buf[..6], &[1, 2, 3, 4, 5, 6]);
        assert!(
            mmmu_uri(b"GIF89a")
                .unwrap_err()
                .contains("neither PNG nor JPEG")
        );
        let dir = Path::new(".");
        assert_eq!(
            image_bytes(&serde_json::json!({"bytes": "YWI="}), dir).unwrap(),
            b"ab"
        );
        assert_eq!(
            image_bytes(&serde_json::json!({"bytes": [97, 98]}), dir).unwrap(),
            b"ab"
        );
        assert!(
            image_bytes(&serde_json::json!(3), dir)
                .unwrap_err()
                .contains("a number")
        );
    }

    /// A PNG of `w` x `h` pixels, RGBA (as MMMU's images often are) or RGB.
    #[cfg(feature = "parquet")]
    fn png_bytes(w: u32, h: u32, rgba: bool, shade: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        let (color, n) = if rgba {
            (png::ColorType::Rgba, 4)
        } else {
            (png::ColorType::Rgb, 3)
        };
        e.set_color(color);
        e.set_depth(png::BitDepth::Eight);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(&vec![shade; (w * h * n) as usize])
            .unwrap();
        wr.finish().unwrap();
        out
    }

    #[cfg(feature = "parquet")]
    fn mmmu_cfg<'a>(path: &'a str, num: usize, traces: &'a TraceDatasetPlan) -> DatasetConfig<'a> {
        let plan: &'static crate::BenchPlan = Box::leak(Box::new(crate::plan::tests::plan()));
        DatasetConfig {
            name: crate::plan::DatasetName::Mmmu,
            path,
            num,
            input_len: 0,
            output_len: 5,
            range_ratio: 0.0,
            semantics: crate::plan::RangeSemantics::Sglang,
            tokenize_prompt: false,
            sharegpt_output_len: None,
            sharegpt_context_len: None,
            apply_chat_template: true,
            prompt_suffix: "",
            gsp: &plan.dataset.shared_prefix,
            mooncake: &plan.dataset.mooncake,
            traces,
            image: &plan.dataset.image,
            seed: 11,
            scenario: None,
        }
    }

    #[cfg(feature = "parquet")]
    use crate::dataset::mmmu_parquet::{self, MmmuRow};
    #[cfg(feature = "parquet")]
    use crate::plan::TraceDatasetPlan;

    /// A byte-level tokenizer written under `dir`.
    #[cfg(feature = "parquet")]
    fn byte_tokenizer(dir: &Path) -> BenchTokenizer {
        let tok_dir = dir.join("tok");
        loupe_engine::tokenizer::write_byte_level_hf_dir(&tok_dir, 512, &serde_json::json!({}))
            .unwrap();
        BenchTokenizer::load(&tok_dir).unwrap()
    }

    #[cfg(feature = "parquet")]
    fn sample_rows() -> Vec<MmmuRow> {
        let row = |q: &str, img: Option<Vec<u8>>| MmmuRow {
            question: q.into(),
            image_1: img,
        };
        vec![
            row("What is 1+1? <image 1>", Some(png_bytes(56, 84, true, 200))),
            row("No picture", None),
            row("Area of the circle?", Some(png_bytes(84, 56, false, 9))),
            row(
                "Which angle \"x\"?\nPick one.",
                Some(png_bytes(28, 28, true, 1)),
            ),
            row("Last one", Some(png_bytes(56, 56, false, 77))),
        ]
    }

    /// The same rows as the JSONL export writes them (`{"bytes": base64, "path": null}`).
    #[cfg(feature = "parquet")]
    fn as_jsonl(rows: &[MmmuRow]) -> String {
        rows.iter()
            .map(|r| {
                let img = r.image_1.as_ref().map_or(
                    Value::Null,
                    |b| serde_json::json!({"bytes": STANDARD.encode(b), "path": null}),
                );
                serde_json::json!({"id": "x", "question": r.question, "image_1": img}).to_string()
                    + "\n"
            })
            .collect()
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn parquet_rows_make_the_prompts_the_jsonl_export_makes() {
        let dir = tempfile::tempdir().unwrap();
        let tok = byte_tokenizer(dir.path());
        let rows = sample_rows();
        // The repository's layout: DIR/Math/test-00000-of-00001.parquet.
        std::fs::create_dir(dir.path().join("Math")).unwrap();
        let pq = dir.path().join("Math/test-00000-of-00001.parquet");
        mmmu_parquet::write_sample(&pq, &rows).unwrap();
        let jl = dir.path().join("mmmu.jsonl");
        std::fs::write(&jl, as_jsonl(&rows)).unwrap();
        let traces = TraceDatasetPlan::default();
        let build = |path: &Path, num: usize| {
            let p = path.display().to_string();
            let mut notes = Vec::new();
            let prompts = mmmu(&mmmu_cfg(&p, num, &traces), &tok, &mut notes).unwrap();
            let shown: Vec<(PromptInput, usize, usize)> = prompts
                .into_iter()
                .map(|p| (p.input, p.prompt_len, p.output_len))
                .collect();
            (shown, notes.len())
        };
        // All four rows with an image (fewer than asked), then a random sample of two.
        for num in [10, 2] {
            let from_jsonl = build(&jl, num);
            assert_eq!(from_jsonl.0.len(), num.min(4));
            assert_eq!(build(&pq, num), from_jsonl, "the file, num {num}");
            assert_eq!(build(dir.path(), num), from_jsonl, "the folder, num {num}");
            assert_eq!(
                build(&dir.path().join("Math"), num),
                from_jsonl,
                "the Math folder, num {num}"
            );
        }
        let (all, _) = build(&pq, 10);
        let PromptInput::Multimodal { text, images, .. } = &all[0].0 else {
            panic!("a multimodal prompt expected, got {:?}", all[0].0);
        };
        assert_eq!(text, "Question: What is 1+1? <image 1>\n\nAnswer: ");
        // RGBA became RGB, re-encoded as PNG.
        let b = STANDARD
            .decode(images[0].strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        let r = png::Decoder::new(std::io::Cursor::new(&b[..]))
            .read_info()
            .unwrap();
        assert_eq!(r.output_color_type().0, png::ColorType::Rgb);
        assert_eq!((r.info().width, r.info().height), (56, 84));
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn parquet_errors_name_the_file_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let tok = byte_tokenizer(dir.path());
        let mut rows = sample_rows();
        rows[2].image_1 = Some(b"GIF89a not an image".to_vec());
        let pq = dir.path().join("bad.parquet");
        mmmu_parquet::write_sample(&pq, &rows).unwrap();
        let p = pq.display().to_string();
        let mut traces = TraceDatasetPlan::default();
        let e = mmmu(&mmmu_cfg(&p, 10, &traces), &tok, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.parquet: row 3: image_1: neither PNG nor JPEG"),
            "{e}"
        );
        // --skip-bad-lines skips the row and says so.
        traces.skip_bad_lines = true;
        let mut notes = Vec::new();
        let ok = mmmu(&mmmu_cfg(&p, 10, &traces), &tok, &mut notes).unwrap();
        assert_eq!(ok.len(), 3);
        assert!(
            notes.iter().any(|n| n.contains("skipped 1 bad row: 3")),
            "{notes:?}"
        );
        // Not parquet at all; a folder without the layout.
        let junk = dir.path().join("junk.parquet");
        std::fs::write(&junk, "id,question\n").unwrap();
        let j = junk.display().to_string();
        let e = mmmu(&mmmu_cfg(&j, 1, &traces), &tok, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("junk.parquet: not a readable parquet file"),
            "{e}"
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let d = empty.display().to_string();
        let e = mmmu(&mmmu_cfg(&d, 1, &traces), &tok, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("without Math/test-*.parquet"), "{e}");
        // A file of another table: the missing column is named.
        let other = dir.path().join("other.parquet");
        write_other(&other);
        let o = other.display().to_string();
        let e = mmmu(&mmmu_cfg(&o, 1, &traces), &tok, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column `image_1`"), "{e}");
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn a_damaged_parquet_page_ends_the_read_even_when_skipping_bad_rows() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let tok = byte_tokenizer(dir.path());
        let pq = dir.path().join("damaged.parquet");
        mmmu_parquet::write_sample(&pq, &sample_rows()).unwrap();
        // Overwrite the page header that opens the `question` column chunk: the reader cannot
        // decode the page, so every later row of that column is out of reach.
        let start = {
            let r = SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
            let rg = r.metadata().row_group(0);
            let col = (0..rg.num_columns())
                .map(|i| rg.column(i))
                .find(|c| c.column_path().string() == "question")
                .unwrap();
            col.byte_range().0 as usize
        };
        let mut bytes = std::fs::read(&pq).unwrap();
        bytes[start..start + 24].fill(0xFF);
        std::fs::write(&pq, &bytes).unwrap();
        let p = pq.display().to_string();
        for skip in [false, true] {
            let traces = TraceDatasetPlan {
                skip_bad_lines: skip,
                ..Default::default()
            };
            let mut notes = Vec::new();
            // Before, with --skip-bad-lines this asked the reader for the same row forever.
            let e = mmmu(&mmmu_cfg(&p, 10, &traces), &tok, &mut notes)
                .unwrap_err()
                .to_string();
            assert!(e.contains("damaged.parquet: "), "skip {skip}: {e}");
            assert!(
                e.contains("reading row 1") || e.contains("reading question and image_1"),
                "skip {skip}: {e}"
            );
            assert!(notes.is_empty(), "skip {skip}: {notes:?}");
        }
    }

    /// A parquet file with a `question` column but no `image_1`.
    #[cfg(feature = "parquet")]
    fn write_other(path: &Path) {
        use parquet::data_type::{ByteArray, ByteArrayType};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        let schema = parquet::schema::parser::parse_message_type(
            "message schema { required binary question (STRING); }",
        )
        .unwrap();
        let f = std::fs::File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(
            f,
            std::sync::Arc::new(schema),
            std::sync::Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let mut g = w.next_row_group().unwrap();
        let mut c = g.next_column().unwrap().unwrap();
        c.typed::<ByteArrayType>()
            .write_batch(&[ByteArray::from("q")], None, None)
            .unwrap();
        c.close().unwrap();
        g.close().unwrap();
        w.close().unwrap();
    }

    #[test]
    fn parquet_paths_are_told_apart_from_jsonl() {
        assert!(is_parquet_path(Path::new("x/test-00000-of-00001.parquet")));
        assert!(is_parquet_path(Path::new("X.PARQUET")));
        assert!(is_parquet_path(&std::env::temp_dir()));
        assert!(!is_parquet_path(Path::new("mmmu.jsonl")));
    }

    #[cfg(not(feature = "parquet"))]
    #[test]
    fn parquet_without_the_feature_says_how_to_build_it() {
        let e = read_parquet(
            Path::new("Math/test-00000-of-00001.parquet"),
            false,
            &mut Vec::new(),
            &mut MmmuFound::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("test-00000-of-00001.parquet") && e.contains("--features parquet"),
            "{e}"
        );
        assert!(e.contains("JSONL"), "{e}");
    }
}
