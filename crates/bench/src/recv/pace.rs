//! The receive thread's pacing rule, apart from the thread and its clock: fed each read's
//! arrival time and each round's count of ready streams, it says how long to pause before the
//! next `epoll_wait` (see `recv.rs` for why pausing costs no accuracy). Every instant comes
//! from the caller, so the rule is tested over scripted read times; the thread's measured
//! behaviour is `benches/recv_timing.rs`.

use std::time::{Duration, Instant};

/// The longest pause between rounds of reads.
pub(super) const MAX_PACE: Duration = Duration::from_millis(1);
/// Reads per pacing window (the pause is re-derived after each).
pub(super) const PACE_WINDOW: u32 = 1000;
/// A round with fewer ready streams than this is not followed by a pause: with chunks this
/// sparse a pause batches nothing and costs a wake-up of its own.
pub(super) const PACE_MIN_READY: usize = 4;
/// How often the read rate is taken (whether a pause would batch anything).
pub(super) const RATE_PERIOD: Duration = Duration::from_millis(100);

/// Whether `reads` over `period` come fast enough that a `pace` pause would find
/// `PACE_MIN_READY` streams ready.
pub(super) fn pause_would_batch(reads: u32, period: Duration, pace: Duration) -> bool {
    !period.is_zero()
        && f64::from(reads) / period.as_secs_f64() * pace.as_secs_f64() >= PACE_MIN_READY as f64
}

/// The pacing state of one receive thread.
pub(super) struct Pacer {
    /// The pause after a round of reads.
    pace: Duration,
    /// The shortest gap between two reads of one stream in this window, and the window's reads.
    window_min: Duration,
    window_reads: u32,
    /// Reads in this window that had no kernel timestamp.
    window_untimed: u32,
    /// Reads since `rate_start`, to tell whether a pause would find streams ready.
    rate_reads: u32,
    rate_start: Instant,
    /// Reads came fast enough over the last `RATE_PERIOD` that a pause should find
    /// `PACE_MIN_READY` streams ready: pause after every round with reads, not only after busy
    /// ones (a server that writes its chunks spread over a step leaves few ready per round).
    busy: bool,
}

impl Pacer {
    /// No pause until a window of reads has been seen; the rate is counted from `now`.
    pub(super) fn new(now: Instant) -> Pacer {
        Pacer {
            pace: Duration::ZERO,
            window_min: Duration::MAX,
            window_reads: 0,
            window_untimed: 0,
            rate_reads: 0,
            rate_start: now,
            busy: false,
        }
    }

    /// The pause now taken after a round that earns one.
    #[cfg(test)]
    pub(super) fn pace(&self) -> Duration {
        self.pace
    }

    /// Account one read of a stream that arrived `at` (`prev`: the arrival of its previous
    /// read; `timed`: the kernel gave a receive timestamp). Some(pause) when this read ended a
    /// window and the pause was derived anew.
    #[inline]
    pub(super) fn note_read(
        &mut self,
        prev: Option<Instant>,
        at: Instant,
        timed: bool,
    ) -> Option<Duration> {
        if let Some(prev) = prev {
            self.window_min = self.window_min.min(at.saturating_duration_since(prev));
        }
        self.window_untimed += u32::from(!timed);
        self.window_reads += 1;
        self.rate_reads += 1;
        if self.window_reads < PACE_WINDOW {
            return None;
        }
        self.pace = if self.window_untimed > 0 || self.window_min == Duration::MAX {
            Duration::ZERO
        } else {
            (self.window_min / 4).min(MAX_PACE)
        };
        self.window_min = Duration::MAX;
        self.window_reads = 0;
        self.window_untimed = 0;
        Some(self.pace)
    }

    /// A round ended at `now` having read `ready` streams, with `open` bodies left: the pause
    /// to take before the next wait, if any.
    #[inline]
    pub(super) fn after_round(
        &mut self,
        now: Instant,
        ready: usize,
        open: usize,
    ) -> Option<Duration> {
        let period = now.saturating_duration_since(self.rate_start);
        if period >= RATE_PERIOD {
            self.busy = pause_would_batch(self.rate_reads, period, self.pace);
            self.rate_reads = 0;
            self.rate_start = now;
        }
        (ready > 0 && (ready >= PACE_MIN_READY || self.busy) && open > 0 && !self.pace.is_zero())
            .then_some(self.pace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// `streams` streams each read every `gap`, all in one round: rounds of `streams` ready.
    /// Returns the pause after each round.
    fn lockstep(
        p: &mut Pacer,
        t0: Instant,
        streams: usize,
        gap: Duration,
        rounds: u32,
    ) -> Vec<Option<Duration>> {
        (0..rounds)
            .map(|k| {
                let at = t0 + gap * k;
                for _ in 0..streams {
                    p.note_read((k > 0).then(|| at - gap), at, true);
                }
                p.after_round(at, streams, streams)
            })
            .collect()
    }

    #[test]
    fn pause_would_batch_takes_rate_times_pause() {
        let ms = Duration::from_millis;
        // 400 reads in 100 ms is 4 per ms: a 1 ms pause finds 4 ready, 0.5 ms finds 2.
        assert!(pause_would_batch(400, ms(100), ms(1)));
        assert!(!pause_would_batch(399, ms(100), ms(1)));
        assert!(!pause_would_batch(400, ms(100), us(500)));
        assert!(!pause_would_batch(400, ms(100), Duration::ZERO));
        assert!(!pause_would_batch(400, Duration::ZERO, ms(1)));
    }

    #[test]
    fn busy_rounds_pause_a_quarter_of_the_shortest_gap_once_a_window_is_seen() {
        // Four streams, a chunk each every 2 ms, read four at a time (the measured version:
        // `recv_timing` "paced writes").
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let pauses = lockstep(&mut p, t0, 4, us(2000), 400);
        // 1,000 reads make the first window: none before its 250th round.
        assert!(
            pauses[..249].iter().all(Option::is_none),
            "{:?}",
            &pauses[..249]
        );
        assert!(
            pauses[249..].iter().all(|x| *x == Some(us(500))),
            "{:?}",
            &pauses[249..]
        );
        // A quarter of the shortest gap: two chunks of one stream never wait out one pause.
        assert_eq!(p.pace(), us(500));
        // A round with fewer than four ready earns nothing at this rate (2,000 reads/s times
        // 0.5 ms finds one stream ready), nor does a round with nothing open or nothing read.
        assert_eq!(p.after_round(t0 + us(2000) * 400, 3, 4), None);
        assert_eq!(p.after_round(t0 + us(2000) * 400, 4, 0), None);
        assert_eq!(p.after_round(t0 + us(2000) * 400, 0, 4), None);
    }

    #[test]
    fn the_pause_is_capped_and_the_shortest_gap_of_the_window_sets_it() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        lockstep(&mut p, t0, 4, Duration::from_millis(10), 250);
        assert_eq!(p.pace(), MAX_PACE, "a quarter of 10 ms is over the cap");
        // One short gap in the next window sets the pause for the window after it.
        let t1 = t0 + Duration::from_millis(10) * 250;
        p.note_read(Some(t1), t1 + us(400), true);
        for k in 1..PACE_WINDOW {
            let at = t1 + Duration::from_millis(10) * k;
            p.note_read(Some(at - Duration::from_millis(10)), at, true);
        }
        assert_eq!(p.pace(), us(100));
    }

    #[test]
    fn untimed_reads_switch_the_pause_off() {
        // Without kernel timestamps a late read would time its chunk late: no pausing.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        lockstep(&mut p, t0, 4, us(2000), 250);
        assert_eq!(p.pace(), us(500));
        let t1 = t0 + us(2000) * 250;
        let mut derived = None;
        for k in 0..PACE_WINDOW {
            let at = t1 + us(2000) * k;
            derived = p.note_read(Some(at - us(2000)), at, k != 7);
        }
        assert_eq!(derived, Some(Duration::ZERO));
        assert_eq!(p.after_round(t1 + us(2000) * PACE_WINDOW, 4, 4), None);
        // A window of first reads only (no gap seen) derives no pause either.
        let mut fresh = Pacer::new(t0);
        for _ in 0..PACE_WINDOW {
            fresh.note_read(None, t0, true);
        }
        assert_eq!(fresh.pace(), Duration::ZERO);
    }

    /// 64 streams written one after another, a write every `step`, each read alone (a round
    /// finds one ready). Returns the pause after each round.
    fn spread(p: &mut Pacer, t0: Instant, step: Duration, writes: u32) -> Vec<Option<Duration>> {
        let streams = 64;
        (0..writes)
            .map(|k| {
                let at = t0 + step * k;
                p.note_read((k >= streams).then(|| at - step * streams), at, true);
                p.after_round(at, 1, streams as usize)
            })
            .collect()
    }

    #[test]
    fn spread_writes_pause_when_the_read_rate_says_a_pause_would_batch() {
        // The measured version: `recv_timing` "spread writes". A write every 125 us: each
        // stream's chunks 8 ms apart (pause: the 1 ms cap), 8,000 reads/s, so a pause finds 8
        // ready although each round found one.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let pauses = spread(&mut p, t0, us(125), 6400);
        assert_eq!(p.pace(), MAX_PACE);
        // The window ends at the 1,000th read (125 ms in); the rate taken at 100 ms knew no
        // pause yet, the one at 200 ms does.
        assert!(pauses[..1600].iter().all(Option::is_none));
        assert!(pauses[1600..].iter().all(|x| *x == Some(MAX_PACE)));
    }

    #[test]
    fn sparse_reads_earn_no_pause() {
        // A write every 500 us: 2,000 reads/s times 1 ms finds 2 ready, under the 4 a pause
        // needs; the thread blocks in epoll_wait instead.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let pauses = spread(&mut p, t0, us(500), 4000);
        assert_eq!(p.pace(), MAX_PACE);
        assert!(pauses.iter().all(Option::is_none));
    }
}
