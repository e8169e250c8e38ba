//! Attention for one query token over its sequence's KV slots, all query heads of one rank.
//! Grouped-query heads that share a KV head are computed together so each K and V row is
//! loaded once per group. With AVX-512 and common head shapes the whole row runs in
//! registers (vectorised exp included); otherwise a portable path gives the same numbers to
//! rounding.

/// Shapes of one rank's attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub head_dim: usize,
    /// Local query heads.
    pub n_q: usize,
    /// Floats per KV slot on this rank (`local kv heads * head_dim`).
    pub kv_width: usize,
    /// Global index of the first local query head / KV head, and query heads per KV head.
    pub q_head0: usize,
    pub kv_head0: usize,
    pub q_per_kv: usize,
    pub scale: f32,
}

impl Heads {
    /// Local KV head read by local query head `lh`.
    fn kv_of(&self, lh: usize) -> usize {
        (self.q_head0 + lh) / self.q_per_kv - self.kv_head0
    }
}

/// `out[h] = softmax(q[h] . K^T * scale) V` for every local head `h`, over the first `ctx`
/// positions of `slots`.
#[allow(clippy::too_many_arguments)]
pub fn attend_row(
    heads: &Heads,
    q_row: &[f32],
    slots: &[u32],
    ctx: usize,
    kc: &[f32],
    vc: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let hd = heads.head_dim;
    // Local heads come in runs sharing one KV head.
    let mut lh = 0;
    while lh < heads.n_q {
        let g = heads.kv_of(lh);
        let mut end = lh + 1;
        while end < heads.n_q && heads.kv_of(end) == g {
            end += 1;
        }
        let q = &q_row[lh * hd..end * hd];
        let o = &mut out[lh * hd..end * hd];
        #[cfg(target_arch = "x86_64")]
        if crate::simd::avx512::available()
            && avx512::group(heads, q, end - lh, g, &slots[..ctx], kc, vc, o, scores)
        {
            lh = end;
            continue;
        }
        portable_group(heads, q, end - lh, g, &slots[..ctx], kc, vc, o, scores);
        lh = end;
    }
}

#[allow(clippy::too_many_arguments)]
fn portable_group(
    heads: &Heads,
    q: &[f32],
    n_heads: usize,
    g: usize,
    slots: &[u32],
    kc: &[f32],
    vc: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let hd = heads.head_dim;
    scores.resize(slots.len(), 0.0);
    for h in 0..n_heads {
        let qh = &q[h * hd..(h + 1) * hd];
        for (sc, &slot) in scores.iter_mut().zip(slots) {
            let off = slot as usize * heads.kv_width + g * hd;
            *sc = crate::kernels::dot(qh, &kc[off..off + hd]) * heads.scale;
        }
        crate::kernels::softmax(scores);
        let o = &mut out[h * hd..(h + 1) * hd];
        o.fill(0.0);
        for (p, &slot) in scores.iter().zip(slots) {
            let off = slot as usize * heads.kv_width + g * hd;
            crate::kernels::axpy(o, *p, &vc[off..off + hd]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Heads;
    use crate::simd::avx512::exp;

    /// Shapes with a register-resident kernel: (heads per group, head_dim / 16).
    macro_rules! dispatch {
        ($g:expr, $c:expr, $call:ident; $(($gg:literal, $cc:literal)),*) => {
            match ($g, $c) {
                $(($gg, $cc) => Some($call::<$gg, $cc> as GroupFn),)*
                _ => None,
            }
        };
    }

    type GroupFn =
        unsafe fn(&Heads, &[f32], usize, &[u32], &[f32], &[f32], &mut [f32], &mut Vec<f32>);

    /// Run one KV group with AVX-512 if the shape has a kernel; false otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn group(
        heads: &Heads,
        q: &[f32],
        n_heads: usize,
        g: usize,
        slots: &[u32],
        kc: &[f32],
        vc: &[f32],
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) -> bool {
        let hd = heads.head_dim;
        if !hd.is_multiple_of(16) {
            return false;
        }
        let f = dispatch!(n_heads, hd / 16, run;
            (1, 2), (2, 2), (4, 2), (8, 2), (1, 4), (2, 4), (4, 4), (8, 4),
            (1, 6), (2, 6), (4, 6), (1, 8), (2, 8), (4, 8), (8, 8));
        let Some(f) = f else { return false };
        // Every slot's K and V rows must exist before the raw loads.
        let max_slot = slots.iter().copied().max().unwrap_or(0) as usize;
        assert!(
            (max_slot + 1) * heads.kv_width <= kc.len().min(vc.len()),
            "KV slot out of range"
        );
        assert!((g + 1) * hd <= heads.kv_width);
        // SAFETY: AVX-512F is available; the asserts bound every K/V load; q and out hold
        // n_heads * hd values (sliced by the caller).
        unsafe { f(heads, q, g, slots, kc, vc, out, scores) };
        true
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn run<const G: usize, const C: usize>(
        heads: &Heads,
        q: &[f32],
        g: usize,
        slots: &[u32],
        kc: &[f32],
        vc: &[f32],
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let hd = C * 16;
        let ctx = slots.len();
        let padded = ctx.div_ceil(16) * 16;
        scores.clear();
        scores.resize(G * padded, f32::NEG_INFINITY);
        let (kp, vp, qp) = (kc.as_ptr(), vc.as_ptr(), q.as_ptr());
        let base = g * hd;
        // SAFETY (whole body): `group` checked that every slot's row is inside kc/vc, and q/out
        // hold G * hd values; scores has G * padded entries.
        unsafe {
            let scale = _mm512_set1_ps(heads.scale);
            let mut qv = [[_mm512_setzero_ps(); C]; G];
            for (h, row) in qv.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = _mm512_mul_ps(_mm512_loadu_ps(qp.add(h * hd + c * 16)), scale);
                }
            }
            let sp = scores.as_mut_ptr();
            for (j, &slot) in slots.iter().enumerate() {
                let k = kp.add(slot as usize * heads.kv_width + base);
                let mut kv = [_mm512_setzero_ps(); C];
                for (c, v) in kv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(k.add(c * 16));
                }
                for (h, row) in qv.iter().enumerate() {
                    let mut acc = _mm512_mul_ps(row[0], kv[0]);
                    for c in 1..C {
                        acc = _mm512_fmadd_ps(row[c], kv[c], acc);
                    }
                    *sp.add(h * padded + j) = _mm512_reduce_add_ps(acc);
                }
            }
            // Softmax per head over 16-wide chunks (padding is -inf, so exp gives 0).
            let mut inv_sum = [0.0f32; G];
            for (h, inv) in inv_sum.iter_mut().enumerate() {
                let s = sp.add(h * padded);
                let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
                for c in (0..padded).step_by(16) {
                    mx = _mm512_max_ps(mx, _mm512_loadu_ps(s.add(c)));
                }
                let mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
                let mut sum = _mm512_setzero_ps();
                for c in (0..padded).step_by(16) {
                    let e = exp(_mm512_sub_ps(_mm512_loadu_ps(s.add(c)), mx));
                    _mm512_storeu_ps(s.add(c), e);
                    sum = _mm512_add_ps(sum, e);
                }
                *inv = 1.0 / _mm512_reduce_add_ps(sum);
            }
            let mut acc = [[_mm512_setzero_ps(); C]; G];
            for (j, &slot) in slots.iter().enumerate() {
                let v = vp.add(slot as usize * heads.kv_width + base);
                let mut vv = [_mm512_setzero_ps(); C];
                for (c, x) in vv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(v.add(c * 16));
                }
                for (h, row) in acc.iter_mut().enumerate() {
                    let p = _mm512_set1_ps(*sp.add(h * padded + j));
                    for (a, x) in row.iter_mut().zip(&vv) {
                        *a = _mm512_fmadd_ps(p, *x, *a);
                    }
                }
            }
            let op = out.as_mut_ptr();
            for (h, row) in acc.iter().enumerate() {
                let inv = _mm512_set1_ps(inv_sum[h]);
                for (c, a) in row.iter().enumerate() {
                    _mm512_storeu_ps(op.add(h * hd + c * 16), _mm512_mul_ps(*a, inv));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths against a direct f64 computation, for shapes with and without a kernel.
    #[test]
    fn vector_and_portable_paths_agree_with_f64() {
        for (n_q, n_kv, hd) in [(4, 2, 32), (16, 4, 64), (2, 2, 48), (3, 1, 20), (8, 1, 128)] {
            let ctx = 37;
            let kv_width = n_kv * hd;
            let slots: Vec<u32> = (0..ctx as u32).map(|i| (i * 7) % 50).collect();
            let kc: Vec<f32> = (0..50 * kv_width)
                .map(|i| ((i * 13) % 29) as f32 * 0.05 - 0.7)
                .collect();
            let vc: Vec<f32> = (0..50 * kv_width)
                .map(|i| ((i * 17) % 31) as f32 * 0.04 - 0.6)
                .collect();
            let q: Vec<f32> = (0..n_q * hd)
                .map(|i| ((i * 11) % 23) as f32 * 0.06 - 0.6)
                .collect();
            let heads = Heads {
                head_dim: hd,
                n_q,
                kv_width,
                q_head0: 0,
                kv_head0: 0,
                q_per_kv: n_q / n_kv,
                scale: 1.0 / (hd as f32).sqrt(),
            };
            let mut out = vec![0.0; n_q * hd];
            attend_row(&heads, &q, &slots, ctx, &kc, &vc, &mut out, &mut Vec::new());
            let mut portable = vec![0.0; n_q * hd];
            for h in 0..n_q {
                let g = h / (n_q / n_kv);
                portable_group(
                    &heads,
                    &q[h * hd..(h + 1) * hd],
                    1,
                    g,
                    &slots,
                    &kc,
                    &vc,
                    &mut portable[h * hd..(h + 1) * hd],
                    &mut Vec::new(),
                );
            }
            for h in 0..n_q {
                let g = h / (n_q / n_kv);
                let s: Vec<f64> = slots
                    .iter()
                    .map(|&sl| {
                        (0..hd)
                            .map(|d| {
                                q[h * hd + d] as f64
                                    * kc[sl as usize * kv_width + g * hd + d] as f64
                            })
                            .sum::<f64>()
                            * heads.scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    let want: f64 = slots
                        .iter()
                        .zip(&e)
                        .map(|(&sl, p)| p / z * vc[sl as usize * kv_width + g * hd + d] as f64)
                        .sum();
                    let i = h * hd + d;
                    assert!(
                        (out[i] as f64 - want).abs() < 1e-5,
                        "{n_q}/{n_kv}/{hd} head {h}: {} vs {want}",
                        out[i]
                    );
                    assert!((portable[i] as f64 - want).abs() < 1e-5);
                }
            }
        }
    }
}
