//! Images in requests (chat `image_url` content parts, native `image_data`). loupe's models
//! read text only, but a multimodal benchmark should still cost the server what an image
//! costs: each image becomes placeholder tokens in the prompt, as many as Qwen2-VL's
//! processor would make of its size (one per 28x28-pixel patch after its resize, between 4
//! and 16384), so they are prefilled, cached and counted in `prompt_tokens` like a real
//! vision model's. The placeholders are drawn from a hash of the image's bytes (as SGLang pads
//! image tokens with a hash of the image), so one image repeated hits the prefix cache and two
//! different images do not. Only `data:image/...;base64,` URIs are read: the server fetches
//! nothing from the network.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Qwen2-VL's patch (14 pixels) times its 2x2 merge.
const PATCH: u64 = 28;
/// Qwen2-VL's preprocessor defaults.
const MIN_PIXELS: u64 = 56 * 56;
const MAX_PIXELS: u64 = 12_845_056;

/// Width and height from a PNG's IHDR or a JPEG's start-of-frame marker.
pub fn dimensions(b: &[u8]) -> Result<(u32, u32), String> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        if b.len() < 24 || &b[12..16] != b"IHDR" {
            return Err("a PNG without its IHDR header".into());
        }
        let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
        let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
        return Ok((w, h));
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 4 <= b.len() {
            if b[i] != 0xFF {
                return Err("a JPEG whose markers are out of step".into());
            }
            let m = b[i + 1];
            if m == 0xFF {
                i += 1;
                continue;
            }
            let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
            // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
            if (0xC0..=0xCF).contains(&m) && !matches!(m, 0xC4 | 0xC8 | 0xCC) {
                if i + 9 > b.len() {
                    break;
                }
                let h = u32::from(u16::from_be_bytes([b[i + 5], b[i + 6]]));
                let w = u32::from(u16::from_be_bytes([b[i + 7], b[i + 8]]));
                return Ok((w, h));
            }
            i += 2 + len;
        }
        return Err("a JPEG without a frame header".into());
    }
    Err("not a PNG or JPEG image".into())
}

/// Qwen2-VL's token count for an image of `w` x `h` pixels (its `smart_resize`).
pub fn token_count(w: u32, h: u32) -> usize {
    let (w, h) = (u64::from(w.max(1)), u64::from(h.max(1)));
    let round = |x: f64| ((x / PATCH as f64).round() as u64).max(1) * PATCH;
    let (mut hb, mut wb) = (round(h as f64), round(w as f64));
    if hb * wb > MAX_PIXELS {
        let beta = ((h * w) as f64 / MAX_PIXELS as f64).sqrt();
        let floor = |x: f64| ((x / beta / PATCH as f64).floor() as u64).max(1) * PATCH;
        hb = floor(h as f64);
        wb = floor(w as f64);
    } else if hb * wb < MIN_PIXELS {
        let beta = (MIN_PIXELS as f64 / (h * w) as f64).sqrt();
        let ceil = |x: f64| ((x * beta / PATCH as f64).ceil() as u64) * PATCH;
        hb = ceil(h as f64);
        wb = ceil(w as f64);
    }
    ((hb / PATCH) * (wb / PATCH)) as usize
}

/// An FNV-1a hash of the image's bytes: its placeholder tokens' seed.
fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The placeholder tokens of one image given as a data URI. The error says what is wrong
/// with it, for a 400 that names the field.
pub fn image_tokens(uri: &str, vocab: usize) -> Result<Vec<u32>, String> {
    let Some(rest) = uri.strip_prefix("data:") else {
        let shown: String = uri.chars().take(40).collect();
        return Err(format!(
            "only data:image/...;base64, URIs are accepted (loupe serve fetches no URLs), got \
             {shown:?}"
        ));
    };
    let (mime, b64) = rest
        .split_once(";base64,")
        .ok_or("a data URI must be base64 (data:image/<format>;base64,...)")?;
    if !mime.starts_with("image/") {
        return Err(format!("the data URI is {mime:?}, not an image"));
    }
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the image's base64 is invalid: {e}"))?;
    let (w, h) = dimensions(&bytes)?;
    if w == 0 || h == 0 {
        return Err(format!("the image is {w}x{h} pixels"));
    }
    let n = token_count(w, h);
    let vocab = vocab.max(1) as u64;
    let seed = hash(&bytes);
    Ok((0..n as u64)
        .map(|i| (seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % vocab) as u32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 2, 0, 0, 0]);
        b
    }

    #[test]
    fn sizes_from_headers_and_qwen2_vl_counts() {
        assert_eq!(dimensions(&png(640, 360)).unwrap(), (640, 360));
        // SOI, an APP0 of 4 bytes, SOF0 with height 16 and width 32.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0, 16, 0, 32, 3,
        ];
        assert_eq!(dimensions(&jpeg).unwrap(), (32, 16));
        assert!(dimensions(b"GIF89a").unwrap_err().contains("not a PNG"));
        // 1080p: 39 x 69 patches of 28 pixels.
        assert_eq!(token_count(1920, 1080), 39 * 69);
        assert_eq!(token_count(8, 8), 4);
        assert!(token_count(3840 * 4, 2160 * 4) <= 16384);
    }

    #[test]
    fn data_uris_only_and_the_same_image_the_same_tokens() {
        let uri = format!("data:image/png;base64,{}", STANDARD.encode(png(56, 56)));
        let a = image_tokens(&uri, 100).unwrap();
        assert_eq!(a.len(), 4);
        assert!(a.iter().all(|&t| t < 100));
        assert_eq!(a, image_tokens(&uri, 100).unwrap());
        let other = format!("data:image/png;base64,{}", STANDARD.encode(png(57, 56)));
        assert_ne!(a, image_tokens(&other, 100).unwrap());
        let e = image_tokens("https://example.com/cat.png", 100).unwrap_err();
        assert!(e.contains("fetches no URLs"), "{e}");
        assert!(
            image_tokens("data:text/plain;base64,aGk=", 100)
                .unwrap_err()
                .contains("not an image")
        );
        assert!(
            image_tokens("data:image/png;base64,!!", 100)
                .unwrap_err()
                .contains("base64")
        );
    }
}
