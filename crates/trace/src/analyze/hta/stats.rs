//! Moments and quantiles of integer samples (ns) without sorting them. HTA's tables give
//! sums, means, sample standard deviations and pandas' linearly interpolated quantiles; the
//! sums here are exact integers (so no order of the rows changes a digit), the standard
//! deviation comes from exact integer moments, and each quantile is found by selection in
//! linear time instead of a sort of every value.

/// Count, exact sum and sum of squares, minimum and maximum of a sample.
#[derive(Clone, Copy, Debug)]
pub(super) struct Moments {
    pub(super) n: u64,
    pub(super) sum: i128,
    sum_sq: i128,
    pub(super) min: i64,
    pub(super) max: i64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            n: 0,
            sum: 0,
            sum_sq: 0,
            min: i64::MAX,
            max: i64::MIN,
        }
    }
}

impl Moments {
    pub(super) fn of(values: impl IntoIterator<Item = i64>) -> Moments {
        let mut m = Moments::default();
        for x in values {
            m.add(x);
        }
        m
    }

    pub(super) fn add(&mut self, x: i64) {
        self.n += 1;
        self.sum += x as i128;
        // saturating: a square past i128 needs |x| > 1.3e19, beyond any i64
        self.sum_sq = self.sum_sq.saturating_add((x as i128) * (x as i128));
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub(super) fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }

    /// Sample standard deviation (`n - 1` in the denominator, as pandas); `None` under two
    /// values.
    pub(super) fn std(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as i128;
        // n·Σx² − (Σx)², exact while it fits; the f64 form otherwise
        let exact = n
            .checked_mul(self.sum_sq)
            .zip(self.sum.checked_mul(self.sum))
            .and_then(|(a, b)| a.checked_sub(b));
        let var = match exact {
            Some(num) => num.max(0) as f64 / (n as f64 * (n - 1) as f64),
            None => {
                let mean = self.sum as f64 / n as f64;
                ((self.sum_sq as f64 - mean * self.sum as f64) / (n - 1) as f64).max(0.0)
            }
        };
        Some(var.sqrt())
    }
}

/// pandas' `quantile` (linear interpolation) of ascending values.
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    interpolated(sorted.len(), q, |lo, hi| (sorted[lo], sorted[hi]))
}

/// [`quantile`] of `values` unsorted (it reorders them), by selection.
pub(super) fn quantile_of(values: &mut [i64], q: f64) -> f64 {
    interpolated(values.len(), q, |lo, hi| {
        let (_, &mut at_lo, above) = values.select_nth_unstable(lo);
        let at_hi = if hi > lo {
            // the smallest value above the lo-th is the hi-th
            above.iter().copied().min().expect("hi is in range")
        } else {
            at_lo
        };
        (at_lo as f64, at_hi as f64)
    })
}

/// pandas' linear interpolation between the values at the two ranks around `q` of `len`
/// values (`at(lo, hi)` gives them); NaN when there are none.
fn interpolated(len: usize, q: f64, at: impl FnOnce(usize, usize) -> (f64, f64)) -> f64 {
    if len == 0 {
        return f64::NAN;
    }
    let pos = q * (len - 1) as f64;
    let lo = pos.floor() as usize;
    let (at_lo, at_hi) = at(lo, pos.ceil() as usize);
    at_lo + (at_hi - at_lo) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_quantiles_match_sorted_ones() {
        let mut x: u64 = 7;
        let mut v: Vec<i64> = (0..1001)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 44) as i64 - 300_000
            })
            .collect();
        let mut sorted: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0] {
            assert_eq!(quantile_of(&mut v, q), quantile(&sorted, q), "q {q}");
        }
        for n in 1..5 {
            let mut small: Vec<i64> = (0..n).rev().collect();
            let sorted: Vec<f64> = (0..n).map(|x| x as f64).collect();
            assert_eq!(quantile_of(&mut small, 0.9), quantile(&sorted, 0.9));
        }
        assert!(quantile_of(&mut [], 0.5).is_nan());
    }

    #[test]
    fn moments_match_the_two_pass_formulas() {
        let v = [3i64, 9, 27, 81, 243, -5, 0, 1_000_000_007];
        let m = Moments::of(v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert_eq!(m.mean(), Some(mean));
        assert!(
            (m.std().unwrap() - std).abs() <= 1e-12 * std,
            "{:?} {std}",
            m.std()
        );
        assert_eq!((m.min, m.max, m.n), (-5, 1_000_000_007, 8));
        assert_eq!(Moments::of([4]).std(), None);
        assert_eq!(Moments::of([4, 4, 4]).std(), Some(0.0));
        // squares past i128: the f64 form, no overflow
        let huge = Moments::of([i64::MAX, i64::MIN, 0]);
        assert!(huge.std().unwrap().is_finite());
    }
}
