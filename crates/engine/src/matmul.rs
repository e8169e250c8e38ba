//! Projections: `x @ w.T` with `w` in Hugging Face's `[out, in]` layout, activations and
//! arithmetic in f32. Weights stay in the dtype they are stored in (f32, bf16 or f16) and are
//! widened to f32 in registers, so a bf16 checkpoint streams half the bytes of an f32 one.
//!
//! Decode-sized batches go through a register-blocked AVX-512 kernel that streams each weight
//! row once and reuses it for four activation rows; larger batches (prefill) and machines
//! without AVX-512 go through the gemm-f32 crate (16-bit weights widened into a scratch copy).

use std::cell::RefCell;

use gemm_common::Parallelism;
use rayon::prelude::*;

/// How projection weights are kept in memory (`--dtype`). Compute is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    F32,
    Bf16,
    F16,
}

impl WeightDtype {
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::Bf16 => "bfloat16",
            WeightDtype::F16 => "float16",
        }
    }

    /// A `torch_dtype` / `--dtype` name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "float32" | "float" | "fp32" => Some(Self::F32),
            "bfloat16" | "bf16" => Some(Self::Bf16),
            "float16" | "half" | "fp16" => Some(Self::F16),
            _ => None,
        }
    }
}

/// Weight storage.
#[derive(Debug, Clone)]
pub enum WeightData {
    F32(Vec<f32>),
    /// bf16 bit patterns.
    Bf16(Vec<u16>),
    /// IEEE half bit patterns.
    F16(Vec<u16>),
}

impl WeightData {
    fn from_f32(v: Vec<f32>, dtype: WeightDtype) -> Self {
        match dtype {
            WeightDtype::F32 => WeightData::F32(v),
            WeightDtype::Bf16 => WeightData::Bf16(
                v.iter()
                    .map(|x| half::bf16::from_f32(*x).to_bits())
                    .collect(),
            ),
            WeightDtype::F16 => WeightData::F16(
                v.iter()
                    .map(|x| half::f16::from_f32(*x).to_bits())
                    .collect(),
            ),
        }
    }

    fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::Bf16(v) | WeightData::F16(v) => v.len(),
        }
    }

    /// Bytes of weight memory (what a decode step streams).
    pub fn bytes(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len() * 4,
            WeightData::Bf16(v) | WeightData::F16(v) => v.len() * 2,
        }
    }

    /// Widen into `out` (f32).
    fn widen_into(&self, out: &mut Vec<f32>) {
        out.clear();
        match self {
            WeightData::F32(v) => out.extend_from_slice(v),
            WeightData::Bf16(v) => out.extend(v.iter().map(|b| half::bf16::from_bits(*b).to_f32())),
            WeightData::F16(v) => out.extend(v.iter().map(|b| half::f16::from_bits(*b).to_f32())),
        }
    }
}

/// A projection weight, `[out_features, in_features]` row-major (Hugging Face's layout).
#[derive(Debug, Clone)]
pub struct Matrix {
    pub in_features: usize,
    pub out_features: usize,
    pub data: WeightData,
}

impl Matrix {
    pub fn new(
        in_features: usize,
        out_features: usize,
        data: Vec<f32>,
        dtype: WeightDtype,
    ) -> Self {
        assert_eq!(data.len(), in_features * out_features, "matrix shape");
        Matrix {
            in_features,
            out_features,
            data: WeightData::from_f32(data, dtype),
        }
    }

    /// Stack row blocks of Hugging Face `[out, in]` weights (fused projections): each block is
    /// `(weight, out_rows_range)`.
    pub fn from_hf_row_blocks(
        in_features: usize,
        blocks: &[(&[f32], std::ops::Range<usize>)],
        dtype: WeightDtype,
    ) -> Self {
        let rows: usize = blocks.iter().map(|(_, r)| r.len()).sum();
        let mut data = Vec::with_capacity(rows * in_features);
        for (w, r) in blocks {
            data.extend_from_slice(&w[r.start * in_features..r.end * in_features]);
        }
        Matrix::new(in_features, rows, data, dtype)
    }

    /// The input-feature columns `in_range` of a Hugging Face `[out, in]` weight
    /// (row-parallel projections: o_proj, down_proj).
    pub fn from_hf_col_slice(
        w: &[f32],
        out_features: usize,
        in_features: usize,
        in_range: std::ops::Range<usize>,
        dtype: WeightDtype,
    ) -> Self {
        let mut data = Vec::with_capacity(out_features * in_range.len());
        for o in 0..out_features {
            data.extend_from_slice(
                &w[o * in_features + in_range.start..o * in_features + in_range.end],
            );
        }
        Matrix::new(in_range.len(), out_features, data, dtype)
    }
}

/// Row counts up to this use the small-batch kernel for f32 weights (faster than gemm up to
/// ~128 rows on AVX-512); 16-bit weights use it further, since gemm needs a widened copy.
pub const SMALL_M_F32: usize = 128;
pub const SMALL_M_16BIT: usize = 256;

thread_local! {
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[m, w.out_features] = x[m, w.in_features] @ w.T`, on `threads` threads of the current
/// rayon pool.
pub fn matmul(out: &mut [f32], x: &[f32], m: usize, w: &Matrix, threads: usize) {
    let (k, n) = (w.in_features, w.out_features);
    assert_eq!(x.len(), m * k, "matmul lhs");
    assert_eq!(out.len(), m * n, "matmul dst");
    assert_eq!(w.data.len(), k * n, "matmul rhs");
    if m == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let limit = match w.data {
            WeightData::F32(_) => SMALL_M_F32,
            _ => SMALL_M_16BIT,
        };
        if m <= limit && k > 0 && crate::simd::avx512::available_bw_vl() {
            small_m_avx512(out, x, m, w, threads);
            return;
        }
    }
    matmul_via_gemm(out, x, m, w, threads);
}

/// `matmul` always through the gemm crate (for benchmarks comparing the two paths).
pub fn matmul_via_gemm(out: &mut [f32], x: &[f32], m: usize, w: &Matrix, threads: usize) {
    let (k, n) = (w.in_features, w.out_features);
    assert_eq!(
        (x.len(), out.len(), w.data.len()),
        (m * k, m * n, k * n),
        "matmul shapes"
    );
    match &w.data {
        WeightData::F32(v) => matmul_gemm(out, x, m, k, n, v, threads),
        other => WIDE.with(|wide| {
            let mut wide = wide.borrow_mut();
            other.widen_into(&mut wide);
            matmul_gemm(out, x, m, k, n, &wide, threads);
        }),
    }
}

/// `out = x @ w.T` through the gemm crate, `w` f32 `[n, k]`.
fn matmul_gemm(
    out: &mut [f32],
    x: &[f32],
    m: usize,
    k: usize,
    n: usize,
    w: &[f32],
    threads: usize,
) {
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // The product is computed transposed, `out.T = w @ x.T` (n x m, column-major), which is the
    // orientation gemm's micro-kernels prefer: the gemm crate's generic front end makes the same
    // swap for a row-major destination before it dispatches to gemm-f32. Calling gemm-f32 directly
    // keeps the f64/c32/c64/f16 kernels out of the build (about 12 s of a cold release build).
    let gemm_f32 = gemm_f32::gemm::f32::get_gemm_fn();
    // SAFETY: `matmul` checked x = m*k, out = m*n and w = n*k elements, which bounds every
    // access gemm makes through these strides: out[j*n + i] for i < n, j < m; w[i*k + l] for
    // i < n, l < k; x[j*k + l] for j < m, l < k.
    unsafe {
        gemm_f32(
            n,
            m,
            k,
            out.as_mut_ptr(),
            n as isize,
            1,
            false,
            w.as_ptr(),
            1,
            k as isize,
            x.as_ptr(),
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(target_arch = "x86_64")]
struct OutPtr(*mut f32);
// SAFETY: threads write disjoint column ranges of the output.
#[cfg(target_arch = "x86_64")]
unsafe impl Send for OutPtr {}
#[cfg(target_arch = "x86_64")]
unsafe impl Sync for OutPtr {}

#[cfg(target_arch = "x86_64")]
fn small_m_avx512(out: &mut [f32], x: &[f32], m: usize, w: &Matrix, threads: usize) {
    let n = w.out_features;
    let k = w.in_features;
    let dst = OutPtr(out.as_mut_ptr());
    let dst = &dst;
    let run = |n0: usize, n1: usize| {
        // SAFETY: AVX-512 was detected; [n0, n1) is within the output's columns and the
        // slices' lengths were checked by `matmul`.
        unsafe {
            match &w.data {
                WeightData::F32(v) => {
                    avx512::panel::<avx512::F32>(x, m, k, v.as_ptr(), n0, n1, dst.0, n)
                }
                WeightData::Bf16(v) => {
                    avx512::panel::<avx512::Bf16>(x, m, k, v.as_ptr(), n0, n1, dst.0, n)
                }
                WeightData::F16(v) => {
                    avx512::panel::<avx512::F16>(x, m, k, v.as_ptr(), n0, n1, dst.0, n)
                }
            }
        }
    };
    if threads <= 1 {
        run(0, n);
    } else {
        let chunk = n.div_ceil(threads).div_ceil(avx512::NR) * avx512::NR;
        (0..threads).into_par_iter().for_each(|t| {
            let (n0, n1) = (t * chunk, ((t + 1) * chunk).min(n));
            if n0 < n1 {
                run(n0, n1);
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    pub const MR: usize = 4;
    pub const NR: usize = 4;

    /// How 16 consecutive weights of one storage type become 16 f32 lanes.
    pub trait Lanes {
        type Elem;
        /// # Safety
        /// 16 elements readable at `p`; AVX-512 F/BW/VL available.
        unsafe fn load(p: *const Self::Elem) -> __m512;
        /// # Safety
        /// The first `count_ones(mask)` elements readable at `p`; AVX-512 F/BW/VL available.
        unsafe fn load_masked(mask: __mmask16, p: *const Self::Elem) -> __m512;
    }

    pub struct F32;
    pub struct Bf16;
    pub struct F16;

    impl Lanes for F32 {
        type Elem = f32;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: per the trait contract.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load_masked(mask: __mmask16, p: *const f32) -> __m512 {
            // SAFETY: per the trait contract.
            unsafe { _mm512_maskz_loadu_ps(mask, p) }
        }
    }

    impl Lanes for Bf16 {
        type Elem = u16;
        #[inline(always)]
        unsafe fn load(p: *const u16) -> __m512 {
            // SAFETY: per the trait contract. bf16 is the top half of an f32.
            unsafe {
                let h = _mm256_loadu_si256(p as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
        }
        #[inline(always)]
        unsafe fn load_masked(mask: __mmask16, p: *const u16) -> __m512 {
            // SAFETY: per the trait contract.
            unsafe {
                let h = _mm256_maskz_loadu_epi16(mask, p as *const i16);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
        }
    }

    impl Lanes for F16 {
        type Elem = u16;
        #[inline(always)]
        unsafe fn load(p: *const u16) -> __m512 {
            // SAFETY: per the trait contract.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
        }
        #[inline(always)]
        unsafe fn load_masked(mask: __mmask16, p: *const u16) -> __m512 {
            // SAFETY: per the trait contract.
            unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p as *const i16)) }
        }
    }

    /// `out[i, j] = dot(x[i, ..k], w[j, ..k])` for an `R x C` tile; 16 lanes of k at a time.
    #[inline(always)]
    unsafe fn tile<L: Lanes, const R: usize, const C: usize>(
        x: *const f32,
        k: usize,
        w: *const L::Elem,
        out: *mut f32,
        ldo: usize,
    ) {
        // SAFETY (whole body): the caller guarantees R rows of x and C rows of w, each k long,
        // and an R x C block of out with row stride ldo; the tail uses masked loads.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; R];
            let full = k / 16 * 16;
            let mut kk = 0;
            while kk < full {
                let mut wv = [_mm512_setzero_ps(); C];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = L::load(w.add(j * k + kk));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_loadu_ps(x.add(i * k + kk));
                    for (a, wj) in row.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, *wj, *a);
                    }
                }
                kk += 16;
            }
            if kk < k {
                let mask: __mmask16 = ((1u32 << (k - kk)) - 1) as u16;
                let mut wv = [_mm512_setzero_ps(); C];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = L::load_masked(mask, w.add(j * k + kk));
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_maskz_loadu_ps(mask, x.add(i * k + kk));
                    for (a, wj) in row.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, *wj, *a);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (j, a) in row.iter().enumerate() {
                    *out.add(i * ldo + j) = _mm512_reduce_add_ps(*a);
                }
            }
        }
    }

    /// Rows `0..m` of one column block `w[j..j+C]`.
    #[inline(always)]
    unsafe fn column_block<L: Lanes, const C: usize>(
        x: *const f32,
        m: usize,
        k: usize,
        w: *const L::Elem,
        out: *mut f32,
        n: usize,
    ) {
        // SAFETY: as `tile`, for every 4-row (then 1-row) slice of x.
        unsafe {
            let mut i = 0;
            while i + MR <= m {
                tile::<L, MR, C>(x.add(i * k), k, w, out.add(i * n), n);
                i += MR;
            }
            while i < m {
                tile::<L, 1, C>(x.add(i * k), k, w, out.add(i * n), n);
                i += 1;
            }
        }
    }

    /// Widen `rows` weight rows of length `k` at `w` into `dst` (f32).
    #[inline(always)]
    unsafe fn widen<L: Lanes>(w: *const L::Elem, rows: usize, k: usize, dst: &mut Vec<f32>) {
        dst.clear();
        dst.reserve(rows * k);
        // SAFETY: `rows * k` elements readable at `w` (caller), `dst` has room for as many.
        unsafe {
            let d = dst.as_mut_ptr();
            let mut i = 0;
            let n = rows * k;
            while i + 16 <= n {
                _mm512_storeu_ps(d.add(i), L::load(w.add(i)));
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                _mm512_mask_storeu_ps(d.add(i), mask, L::load_masked(mask, w.add(i)));
            }
            dst.set_len(n);
        }
    }

    /// Output columns `[n0, n1)` for all `m` rows: weight rows outermost, so each is read from
    /// memory once and reused for every activation row (which stay in cache). With several
    /// row tiles, 16-bit weights are widened once per column block instead of once per tile.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL available; `x` holds `m * k` values, `w` points at `n1 * k` weights and
    /// `out` at an `m x n` row-major block with `n1 <= n`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn panel<L: Lanes>(
        x: &[f32],
        m: usize,
        k: usize,
        w: *const L::Elem,
        n0: usize,
        n1: usize,
        out: *mut f32,
        n: usize,
    ) {
        let xp = x.as_ptr();
        let widen_first = m > MR && std::mem::size_of::<L::Elem>() != 4;
        let mut wide = Vec::new();
        // SAFETY: per this function's contract, every block stays within its operands.
        unsafe {
            let mut j = n0;
            while j + NR <= n1 {
                if widen_first {
                    widen::<L>(w.add(j * k), NR, k, &mut wide);
                    column_block::<F32, NR>(xp, m, k, wide.as_ptr(), out.add(j), n);
                } else {
                    column_block::<L, NR>(xp, m, k, w.add(j * k), out.add(j), n);
                }
                j += NR;
            }
            while j < n1 {
                column_block::<L, 1>(xp, m, k, w.add(j * k), out.add(j), n);
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], m: usize, w: &[f32], k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
            }
        }
        out
    }

    #[test]
    fn every_path_and_dtype_matches_naive() {
        // Odd sizes exercise every tile tail; 300 rows take the gemm path.
        for (m, k, n) in [
            (1, 19, 23),
            (3, 19, 23),
            (17, 37, 23),
            (64, 16, 9),
            (300, 19, 23),
            (8, 1024, 67),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7) % 13) as f32 * 0.25 - 1.5)
                .collect();
            // Values exact in bf16 and f16, so every dtype must give the same answer.
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5) % 11) as f32 * 0.5 - 2.0)
                .collect();
            let want = naive(&x, m, &w, k, n);
            for dtype in [WeightDtype::F32, WeightDtype::Bf16, WeightDtype::F16] {
                let mat = Matrix::new(k, n, w.clone(), dtype);
                for threads in [1, 2] {
                    let mut out = vec![0.0; m * n];
                    matmul(&mut out, &x, m, &mat, threads);
                    for (a, b) in out.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-3 * b.abs().max(1.0),
                            "{m}x{k}x{n} {dtype:?}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn hf_layouts_slice_correctly() {
        // HF weight [out=3, in=2]: rows are output features.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = Matrix::from_hf_row_blocks(2, &[(&w, 1..3)], WeightDtype::F32);
        assert_eq!((m.in_features, m.out_features), (2, 2));
        assert!(matches!(&m.data, WeightData::F32(v) if v == &[3.0, 4.0, 5.0, 6.0]));
        let m = Matrix::from_hf_col_slice(&w, 3, 2, 1..2, WeightDtype::Bf16);
        assert_eq!((m.in_features, m.out_features), (1, 3));
        let mut wide = Vec::new();
        m.data.widen_into(&mut wide);
        assert_eq!(wide, [2.0, 4.0, 6.0]);
        assert_eq!(m.data.bytes(), 6);
    }
}
