//! Which vector instructions this CPU has, detected at run time, and the AVX-512 primitives
//! the hand-vectorised kernels share. It sits below `attention.rs`, `kernels.rs` and
//! `matmul.rs`, so none of them reaches into another for a feature check or a vector `exp`.
//!
//! `is_x86_feature_detected!` caches its answer, so each check is one load; the checks are
//! `#[inline]` so that the callers' hot loops keep them as cheap as they were in place.

/// AVX2 and FMA: the elementwise kernels' dot and axpy.
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// AVX-512F: attention's register-resident rows and SiLU-GLU.
    #[inline]
    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx512f")
    }

    /// AVX-512 F, BW and VL: the small-batch projection kernel (16-bit weight loads).
    #[inline]
    pub fn available_bw_vl() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
    }

    /// e^x for 16 lanes: 2^(x·log2 e) split into an integer power (scalef) and a degree-6
    /// polynomial on [-1/2, 1/2] (relative error about 2e-7).
    #[inline(always)]
    pub unsafe fn exp(x: __m512) -> __m512 {
        // SAFETY: AVX-512F is available (callers are avx512f target functions).
        unsafe {
            let x = _mm512_max_ps(
                _mm512_min_ps(x, _mm512_set1_ps(88.0)),
                _mm512_set1_ps(-88.0),
            );
            let t = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
            let f = _mm512_sub_ps(t, n);
            let mut p = _mm512_set1_ps(1.540_353_1e-4);
            for c in [
                1.333_355_8e-3,
                9.618_129e-3,
                5.550_411e-2,
                0.240_226_5,
                std::f32::consts::LN_2,
                1.0,
            ] {
                p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
            }
            _mm512_scalef_ps(p, n)
        }
    }
}
