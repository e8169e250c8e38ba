//! Running a schedule: a dedicated dispatcher thread wakes at each request's due time (with
//! the kernel's timer slack at its minimum, so sub-millisecond schedules hold) and hands the
//! request to the async runtime, where it waits for a `--max-concurrency` slot and is sent.
//! Every request records when it was due, picked up and sent, so schedule lag and client
//! queueing are measured rather than hidden. An infinite rate skips the thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::client::{Prepared, Target};
use crate::observer::BenchObserver;
use crate::record::RequestRecord;
use crate::session::{SessionWork, run_session};

/// What a schedule sends: one request per due time, or one conversation per due time.
#[derive(Clone)]
pub enum Work {
    Requests(Arc<Vec<Prepared>>),
    Sessions(Arc<SessionWork>),
}

impl Work {
    /// Due times this work takes (requests, or conversations).
    pub fn len(&self) -> usize {
        match self {
            Work::Requests(r) => r.len(),
            Work::Sessions(s) => s.sessions.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Request records it will produce.
    pub fn requests(&self) -> usize {
        match self {
            Work::Requests(r) => r.len(),
            Work::Sessions(s) => crate::session::total_rounds(&s.sessions),
        }
    }
}

/// What a schedule produced.
pub struct Driven {
    /// In the order of the requests given.
    pub records: Vec<RequestRecord>,
    /// From the first dispatch to the last completion.
    pub duration: f64,
    /// The run's start: every record's times count from it.
    pub t0: Instant,
    /// Whether the dispatcher thread ran at a real-time priority (None: no dispatcher thread,
    /// as when everything is due at once or a closed loop runs).
    pub realtime_dispatch: Option<bool>,
}

/// When a time-based run stops sending (seconds from its start; None: when every item is sent).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub stop_after: Option<f64>,
}

#[derive(Clone)]
struct Shared {
    target: Arc<Target>,
    work: Work,
    slots: Option<Arc<Semaphore>>,
    t0: Instant,
    /// Told of each request as it ends (None: nobody follows this schedule).
    observer: Option<Arc<dyn BenchObserver>>,
    limits: Limits,
}

impl Shared {
    fn spawn(&self, i: usize, intended: f64, rt: &Handle) -> JoinHandle<Vec<RequestRecord>> {
        let s = self.clone();
        rt.spawn(async move {
            let dispatched = (Instant::now() - s.t0).as_secs_f64();
            // A conversation holds its slot for all its rounds.
            let _slot = match &s.slots {
                Some(sem) => Some(sem.clone().acquire_owned().await.expect("never closed")),
                None => None,
            };
            // A time-based run is over: what still waits for a slot is never sent.
            if s.over() {
                return Vec::new();
            }
            s.send(i, intended, dispatched).await
        })
    }

    fn over(&self) -> bool {
        self.limits
            .stop_after
            .is_some_and(|stop| self.t0.elapsed().as_secs_f64() >= stop)
    }

    /// Item `i` (the work cycles when a run asks for more items than it holds).
    async fn send(&self, i: usize, intended: f64, dispatched: f64) -> Vec<RequestRecord> {
        let i = i % self.work.len().max(1);
        let recs = match &self.work {
            Work::Requests(reqs) => {
                let rec = RequestRecord {
                    intended,
                    dispatched,
                    ..Default::default()
                };
                vec![self.target.send(&reqs[i], self.t0, rec).await]
            }
            Work::Sessions(w) => {
                run_session(w, &self.target, i, self.t0, intended, dispatched).await
            }
        };
        if let Some(o) = &self.observer {
            for rec in &recs {
                o.request_finished(rec);
            }
        }
        recs
    }

    /// A closed loop until the deadline: `slots` workers each send the next item as soon as
    /// their last one ends, at most `max_items` in all.
    async fn closed_loop(&self, slots: usize, max_items: usize) -> Vec<RequestRecord> {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<JoinHandle<Vec<RequestRecord>>> = (0..slots)
            .map(|_| {
                let (s, next) = (self.clone(), next.clone());
                tokio::spawn(async move {
                    let mut recs = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= max_items || s.over() {
                            return recs;
                        }
                        let now = (Instant::now() - s.t0).as_secs_f64();
                        recs.extend(s.send(i, now, now).await);
                    }
                })
            })
            .collect();
        let mut records = Vec::new();
        for w in workers {
            records.extend(w.await.unwrap_or_default());
        }
        records.sort_by(|a, b| a.dispatched.total_cmp(&b.dispatched));
        records
    }
}

/// Lowest timer slack for this thread, so a sleep ends within microseconds of its deadline
/// instead of the default 50 us slack (plus coalescing).
fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// The dispatcher at the lowest real-time priority where the process may have it (root, or
/// `CAP_SYS_NICE`): it sleeps until each due time and then only hands a task over, and at
/// a normal priority its wakeup waits behind the runtime's busy threads on a loaded core
/// (the schedule lag's tail). Where it is refused the thread stays as it was.
fn realtime_priority() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` outlives the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// How a schedule is laid out: a due time per item (items past the work's end cycle
/// through it), or a closed loop of `--max-concurrency` workers until a deadline.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    At(Vec<f64>),
    ClosedLoop { slots: usize, max_items: usize },
}

/// Send item `i` of `work` at `offsets[i]` seconds from now, at most `max_concurrency` at a
/// time (or run the closed loop); `observer` hears of each request as it ends; after
/// `limits.stop_after` nothing more is sent, and what is in flight finishes.
pub async fn drive(
    target: Arc<Target>,
    work: Work,
    schedule: Schedule,
    max_concurrency: Option<usize>,
    observer: Option<Arc<dyn BenchObserver>>,
    limits: Limits,
) -> Driven {
    let rt = Handle::current();
    let shared = Shared {
        target,
        work,
        slots: max_concurrency.map(|c| Arc::new(Semaphore::new(c))),
        t0: Instant::now(),
        observer,
        limits,
    };
    let t0 = shared.t0;
    let offsets = match schedule {
        Schedule::At(o) => o,
        Schedule::ClosedLoop { slots, max_items } => {
            let records = shared.closed_loop(slots, max_items).await;
            let duration = t0.elapsed().as_secs_f64();
            return Driven {
                records,
                duration,
                t0,
                realtime_dispatch: None,
            };
        }
    };
    let n = offsets.len();
    let mut realtime_dispatch = None;
    let handles: Vec<JoinHandle<Vec<RequestRecord>>> = if offsets.iter().all(|t| *t == 0.0) {
        (0..n).map(|i| shared.spawn(i, 0.0, &rt)).collect()
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (s, due_times, thread_rt) = (shared.clone(), offsets.clone(), rt.clone());
        let spawned = std::thread::Builder::new()
            .name("loupe-dispatch".into())
            .spawn(move || {
                precise_sleeps();
                let realtime = realtime_priority();
                let rt = thread_rt;
                let mut hs = Vec::with_capacity(n);
                for (i, &at) in due_times.iter().enumerate() {
                    let due = t0 + Duration::from_secs_f64(at);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    hs.push(s.spawn(i, at, &rt));
                }
                let _ = tx.send((hs, realtime));
            });
        match spawned {
            Ok(_) => {
                let (hs, realtime) = rx.await.expect("the dispatcher sends its handles");
                realtime_dispatch = Some(realtime);
                hs
            }
            // No thread to be had: dispatch from the runtime (timer granularity 1 ms).
            Err(_) => {
                let mut hs = Vec::with_capacity(n);
                for (i, &at) in offsets.iter().enumerate() {
                    tokio::time::sleep_until((t0 + Duration::from_secs_f64(at)).into()).await;
                    hs.push(shared.spawn(i, at, &rt));
                }
                hs
            }
        }
    };
    let mut records = Vec::with_capacity(n);
    for h in handles {
        match h.await {
            Ok(recs) => records.extend(recs),
            Err(e) => records.push(RequestRecord {
                error: format!("request task failed: {e}"),
                ..Default::default()
            }),
        }
    }
    let duration = t0.elapsed().as_secs_f64();
    Driven {
        records,
        duration,
        t0,
        realtime_dispatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The priority is what the call says it got: FIFO when granted, the thread's policy
    /// untouched when refused.
    #[test]
    fn realtime_priority_reports_what_the_thread_got() {
        let (granted, policy) = std::thread::spawn(|| {
            let granted = realtime_priority();
            // SAFETY: pid 0 is the calling thread.
            (granted, unsafe { libc::sched_getscheduler(0) })
        })
        .join()
        .unwrap();
        let want = if granted {
            libc::SCHED_FIFO
        } else {
            libc::SCHED_OTHER
        };
        assert_eq!(policy, want, "granted: {granted}");
    }
}
