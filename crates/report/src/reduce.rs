//! How a long series is thinned for a chart without hiding what matters (the spec's
//! reduction rules): percentile curves from every value with the caller's percentile
//! function on a grid that holds the tables' p50/p90/p95/p99/max (R1); time bins with
//! min/max/p50/p99 and every tail point, never averages (R2); log-spaced histograms with
//! exact counts (R3). Captions say what was reduced (R4) and are written by the caller.

/// The percentiles every grid holds, as the tables print them.
pub const TABLE_PERCENTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

/// Points on a percentile curve: at most this many (R1's budget, denser in the tail).
pub const CURVE_POINTS: usize = 500;

/// x of percentile `p` (0..100) on a "nines" axis: -log10(1 - p/100).
pub fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(f64::MIN_POSITIVE).log10()
}

/// The percentiles (0..100) a curve over `n` values is drawn at, before its maximum: evenly
/// spaced in nines up to the largest value's rank (1 - 1/n), plus the table's percentiles
/// whatever `n` (so chart and table agree to the digit).
pub fn curve_percentiles(n: usize, points: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let top = 100.0 * (1.0 - 1.0 / n as f64);
    let span = nines(top);
    // More points than values would only interpolate between the same ranks.
    let steps = points
        .saturating_sub(TABLE_PERCENTILES.len() + 1)
        .clamp(1, n);
    let mut ps: Vec<f64> = (0..steps)
        .map(|i| 100.0 * (1.0 - 10f64.powf(-span * i as f64 / steps as f64)))
        .filter(|p| *p < top)
        .collect();
    ps.extend(TABLE_PERCENTILES);
    ps.sort_by(f64::total_cmp);
    ps.dedup();
    ps
}

/// Where a curve draws its maximum: at the largest value's rank (1 - 1/n), or just past the
/// table's p99 when there are too few values for that rank to lie beyond it.
pub fn max_percentile(n: usize) -> f64 {
    (100.0 * (1.0 - 1.0 / n.max(1) as f64)).max(TABLE_PERCENTILES[TABLE_PERCENTILES.len() - 1])
}

/// A percentile curve: (nines x, value) at [`curve_percentiles`], from all of `sorted`
/// through `percentile(sorted, p)` (the tables' own function), then the maximum at
/// [`max_percentile`].
pub fn percentile_curve(
    sorted: &[f64],
    points: usize,
    percentile: impl Fn(&[f64], f64) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let Some(&max) = sorted.last() else {
        return (Vec::new(), Vec::new());
    };
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = curve_percentiles(sorted.len(), points)
        .into_iter()
        .map(|p| (nines(p), percentile(sorted, p)))
        .unzip();
    xs.push(nines(max_percentile(sorted.len())));
    ys.push(max);
    (xs, ys)
}

/// A histogram over log-spaced bins (R3): `edges[i]..edges[i + 1]` holds `counts[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHistogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    /// Values that are zero, negative or not finite (no place on a log axis), counted apart.
    pub nonpositive: u64,
}

/// Bins per decade; the bin count is capped at [`MAX_BINS`] by widening them.
pub const BINS_PER_DECADE: f64 = 10.0;
pub const MAX_BINS: usize = 200;

pub fn log_histogram(values: &[f64]) -> LogHistogram {
    let positive = values.iter().copied().filter(|v| *v > 0.0 && v.is_finite());
    let (lo, hi) = positive.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let plotted = values.iter().filter(|v| **v > 0.0 && v.is_finite()).count();
    let nonpositive = (values.len() - plotted) as u64;
    if hi == 0.0 {
        return LogHistogram {
            edges: Vec::new(),
            counts: Vec::new(),
            nonpositive,
        };
    }
    let start = lo.log10().floor();
    let decades = (hi.log10() - start).max(1e-9);
    let mut per_decade = BINS_PER_DECADE;
    if (decades * per_decade).ceil() as usize > MAX_BINS {
        per_decade = MAX_BINS as f64 / decades;
    }
    let bins = ((decades * per_decade).floor() as usize + 1).min(MAX_BINS);
    let edges: Vec<f64> = (0..=bins)
        .map(|i| 10f64.powf(start + i as f64 / per_decade))
        .collect();
    let mut counts = vec![0u64; bins];
    for v in values.iter().copied().filter(|v| *v > 0.0 && v.is_finite()) {
        let i = ((v.log10() - start) * per_decade).floor() as usize;
        counts[i.min(bins - 1)] += 1;
    }
    LogHistogram {
        edges,
        counts,
        nonpositive,
    }
}

/// The narrowest "nice" bin width (1, 2 or 5 times a power of ten seconds, at least
/// `smallest`) that cuts `span` seconds into at most `max_bins` bins.
pub fn bin_width(span: f64, smallest: f64, max_bins: usize) -> f64 {
    let mut w = smallest;
    let mut k = 0;
    while span / w > max_bins as f64 {
        let decade = 10f64.powi(k / 3);
        w = smallest * decade * [2.0, 5.0, 10.0][(k % 3) as usize];
        k += 1;
    }
    w
}

/// One time bin of a latency series (R2): no average, only order statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// The bin's start (same unit as the times given).
    pub start: f64,
    pub count: usize,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p99: f64,
}

/// `points` (time, value) cut into bins of `width` from time 0; empty bins are left out.
pub fn time_bins(
    points: &[(f64, f64)],
    width: f64,
    percentile: impl Fn(&[f64], f64) -> f64,
) -> Vec<Bin> {
    let mut sorted: Vec<(usize, f64)> = points
        .iter()
        .map(|&(t, v)| (((t / width).floor().max(0.0)) as usize, v))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut bins = Vec::new();
    let mut i = 0;
    let mut values = Vec::new();
    while i < sorted.len() {
        let b = sorted[i].0;
        values.clear();
        while i < sorted.len() && sorted[i].0 == b {
            values.push(sorted[i].1);
            i += 1;
        }
        bins.push(Bin {
            start: b as f64 * width,
            count: values.len(),
            min: values[0],
            max: values[values.len() - 1],
            p50: percentile(&values, 50.0),
            p99: percentile(&values, 99.0),
        });
    }
    bins
}

/// The onset rule (a heuristic, stated on the page with these numbers): the baseline is the
/// p90 of the first [`ONSET_BASELINE_SHARE`] of the requests by start time (at least
/// [`ONSET_MIN_REQUESTS`]); the onset is the start of the first of two consecutive time bins
/// after them (each of at least [`ONSET_MIN_REQUESTS`] requests) whose p90 both exceed
/// [`ONSET_FACTOR`] times it. Two bins, so one slow request (which can carry a small bin's
/// p90) is not an onset.
pub const ONSET_FACTOR: f64 = 2.0;
pub const ONSET_BASELINE_SHARE: f64 = 0.1;
pub const ONSET_MIN_REQUESTS: usize = 5;

/// Where a latency series crossed a threshold, by time bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// The bin's start (same unit as the times given).
    pub at: f64,
    /// The bin's p90.
    pub p90: f64,
    /// What it exceeded.
    pub threshold: f64,
}

/// The first of two consecutive bins of `width` (from time 0; bins of fewer than
/// [`ONSET_MIN_REQUESTS`] values skipped), among the points after time `after`, whose p90
/// both exceed `threshold`. `points` are (time, value); `percentile` is the tables' function.
pub fn first_bin_above(
    points: &[(f64, f64)],
    width: f64,
    after: f64,
    threshold: f64,
    percentile: impl Fn(&[f64], f64) -> f64,
) -> Option<Crossing> {
    let mut later: Vec<(usize, f64)> = points
        .iter()
        .filter(|p| p.0 > after)
        .map(|&(t, v)| (((t / width).floor().max(0.0)) as usize, v))
        .collect();
    later.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut above: Option<Crossing> = None;
    for bin in later
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|bin| bin.len() >= ONSET_MIN_REQUESTS)
    {
        let values: Vec<f64> = bin.iter().map(|p| p.1).collect();
        let p90 = percentile(&values, 90.0);
        if p90 <= threshold {
            above = None;
        } else if above.is_some() {
            return above;
        } else {
            above = Some(Crossing {
                at: bin[0].0 as f64 * width,
                p90,
                threshold,
            });
        }
    }
    None
}

/// The onset of degradation by [`ONSET_FACTOR`]'s rule, and the baseline it was measured
/// against (None: too few requests for a baseline and a bin after it).
pub fn onset(
    points: &[(f64, f64)],
    width: f64,
    percentile: impl Fn(&[f64], f64) -> f64,
) -> (Option<f64>, Option<Crossing>) {
    let mut by_time: Vec<(f64, f64)> = points.to_vec();
    by_time.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let n = ((by_time.len() as f64 * ONSET_BASELINE_SHARE).ceil() as usize).max(ONSET_MIN_REQUESTS);
    if by_time.len() < n + ONSET_MIN_REQUESTS {
        return (None, None);
    }
    let mut first: Vec<f64> = by_time[..n].iter().map(|p| p.1).collect();
    first.sort_by(f64::total_cmp);
    let baseline = percentile(&first, 90.0);
    let after = by_time[n - 1].0;
    let crossing = first_bin_above(
        &by_time[n..],
        width,
        after,
        ONSET_FACTOR * baseline,
        percentile,
    );
    (Some(baseline), crossing)
}

/// How many intervals were open during each bin of `width` from time 0: the most at any
/// instant, and the time-weighted mean. `intervals` are (from, to) with from <= to.
pub fn occupancy(intervals: &[(f64, f64)], width: f64, bins: usize) -> Vec<(u32, f64)> {
    let mut events: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(a, b)| [(a, 1), (b.max(a), -1)])
        .collect();
    // Ends before starts at the same instant: a request that ends as another starts does not
    // count twice.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = vec![(0u32, 0.0f64); bins];
    let (mut open, mut t) = (0i64, 0.0f64);
    let add = |out: &mut Vec<(u32, f64)>, from: f64, to: f64, open: i64| {
        // Spread the span [from, to) over the bins it covers.
        let mut a = from.max(0.0);
        while a < to {
            let b = (a / width).floor() as usize;
            if b >= bins {
                break;
            }
            let end = (((b + 1) as f64) * width).min(to);
            out[b].1 += open as f64 * (end - a) / width;
            out[b].0 = out[b].0.max(open as u32);
            a = end;
        }
    };
    for (at, d) in events {
        add(&mut out, t, at, open);
        open += i64::from(d);
        t = at;
        let b = ((at / width).floor().max(0.0)) as usize;
        if b < bins && open > 0 {
            out[b].0 = out[b].0.max(open as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numpy(sorted: &[f64], p: f64) -> f64 {
        let rank = p / 100.0 * (sorted.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
    }

    #[test]
    fn the_curve_holds_the_table_percentiles_and_ends_at_the_maximum() {
        let v: Vec<f64> = (1..=10_000).map(|i| i as f64 * 0.37).collect();
        let (xs, ys) = percentile_curve(&v, CURVE_POINTS, numpy);
        assert!(xs.len() <= CURVE_POINTS, "{}", xs.len());
        for p in TABLE_PERCENTILES {
            let i = xs.iter().position(|&x| x == nines(p)).expect("grid has p");
            assert_eq!(ys[i], numpy(&v, p));
        }
        assert_eq!(*ys.last().unwrap(), 3700.0);
        assert!((xs.last().unwrap() - 4.0).abs() < 1e-9, "max at 1 - 1/n");
        assert!(xs.windows(2).all(|w| w[0] < w[1]));
        // Denser in the tail: as many points past p99 as below p90.
        let past_p99 = xs.iter().filter(|&&x| x > 2.0).count();
        let below_p90 = xs.iter().filter(|&&x| x < 1.0).count();
        assert!(past_p99 >= below_p90, "{past_p99} vs {below_p90}");
    }

    #[test]
    fn tiny_inputs_still_give_their_maximum() {
        let (xs, ys) = percentile_curve(&[5.0], CURVE_POINTS, numpy);
        assert_eq!(ys, vec![5.0; 5], "p50..p99, then the maximum");
        assert_eq!(xs[xs.len() - 1], nines(99.0));
        // Forty values: the table's p99 lies past the largest value's rank (97.5%), and is
        // drawn all the same, with the maximum just after it.
        let v: Vec<f64> = (1..=40).map(f64::from).collect();
        let (xs, ys) = percentile_curve(&v, CURVE_POINTS, numpy);
        let i = xs.iter().position(|&x| x == nines(99.0)).unwrap();
        assert_eq!(ys[i], numpy(&v, 99.0));
        assert_eq!((xs[xs.len() - 1], ys[ys.len() - 1]), (nines(99.0), 40.0));
        assert!(percentile_curve(&[], 10, numpy).0.is_empty());
    }

    #[test]
    fn histograms_count_every_value_once() {
        let v: Vec<f64> = (0..1000)
            .map(|i| 0.5 + i as f64 * 3.1)
            .chain([0.0, -1.0])
            .collect();
        let h = log_histogram(&v);
        assert_eq!(h.counts.iter().sum::<u64>(), 1000);
        assert_eq!(h.nonpositive, 2);
        assert_eq!(h.edges.len(), h.counts.len() + 1);
        assert!(h.counts.len() <= MAX_BINS);
        assert!(h.edges[0] <= 0.5 && *h.edges.last().unwrap() >= 0.5 + 999.0 * 3.1);
        let wide: Vec<f64> = (0..400).map(|i| 10f64.powi(i - 200)).collect();
        let h = log_histogram(&wide);
        assert!(h.counts.len() <= MAX_BINS && h.counts.iter().sum::<u64>() == 400);
    }

    #[test]
    fn bins_keep_order_statistics_not_means() {
        let pts = [(0.1, 5.0), (0.9, 1.0), (0.5, 100.0), (2.5, 7.0)];
        let b = time_bins(&pts, 1.0, numpy);
        assert_eq!(b.len(), 2, "the empty bin 1 is left out");
        assert_eq!(
            (b[0].min, b[0].max, b[0].p50, b[0].count),
            (1.0, 100.0, 5.0, 3)
        );
        assert_eq!((b[1].start, b[1].p99), (2.0, 7.0));
        assert_eq!(bin_width(100.0, 1.0, 1000), 1.0);
        assert_eq!(bin_width(3000.0, 1.0, 1000), 5.0);
        assert_eq!(bin_width(15_000.0, 1.0, 1000), 20.0);
    }

    #[test]
    fn the_onset_is_the_first_bin_past_twice_the_baseline() {
        // 100 ms for 20 s at 10 requests/s, then 400 ms from 20 s on; a lone slow request at
        // 5.1 s carries its bin's p90 (590 ms) but not the next bin's: no onset there.
        let mut pts: Vec<(f64, f64)> = (0..400)
            .map(|i| {
                let t = i as f64 * 0.1;
                (t, if t < 20.0 { 100.0 } else { 400.0 })
            })
            .collect();
        pts[51].1 = 5000.0;
        let (baseline, c) = onset(&pts, 1.0, numpy);
        assert_eq!(baseline, Some(100.0));
        let c = c.unwrap();
        assert_eq!((c.at, c.p90, c.threshold), (20.0, 400.0, 200.0));
        // Steady all along: no onset; the same series shifted by 1.5x: none either.
        let flat: Vec<(f64, f64)> = (0..400).map(|i| (i as f64 * 0.1, 100.0)).collect();
        assert_eq!(onset(&flat, 1.0, numpy), (Some(100.0), None));
        let mild: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (t, v.min(150.0))).collect();
        assert_eq!(onset(&mild, 1.0, numpy).1, None);
        // Degraded in the last bin only: not two bins, no onset.
        let late: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64 * 0.1, if i >= 90 { 400.0 } else { 100.0 }))
            .collect();
        assert_eq!(onset(&late, 1.0, numpy).1, None);
        // A bin with fewer than 5 requests never counts, however slow.
        let sparse = [(0.0, 1.0); 5]
            .into_iter()
            .chain([(3.5, 99.0), (3.6, 99.0), (3.7, 99.0), (3.8, 99.0)])
            .collect::<Vec<_>>();
        assert_eq!(onset(&sparse, 1.0, numpy), (None, None));
        // An SLO crossing uses the same bins.
        let slo = first_bin_above(&pts, 1.0, f64::NEG_INFINITY, 300.0, numpy).unwrap();
        assert_eq!(slo.at, 20.0);
    }

    #[test]
    fn occupancy_has_peaks_and_time_weighted_means() {
        // Two overlapping for half of bin 0, one alone through bin 1, back to back at 2.0.
        let o = occupancy(&[(0.0, 1.5), (0.5, 1.0), (1.5, 2.0), (2.0, 2.5)], 1.0, 3);
        assert_eq!(o[0], (2, 1.5));
        assert_eq!(o[1], (1, 1.0));
        assert_eq!(o[2], (1, 0.5), "an end and a start at 2.0 never overlap");
    }
}
