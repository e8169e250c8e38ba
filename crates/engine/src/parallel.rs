//! Tensor parallelism with real threads: one thread per rank, each owning its shard and its
//! KV cache, meeting in collectives (all-reduce after o_proj and down_proj, all-gather of the
//! logits). Rank 0 runs on the scheduler's thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use crate::model::{ForwardBatch, RankModel};
use crate::observer::OpEvent;

/// A sense-reversing barrier that spins briefly, then yields: ranks meet twice per
/// collective, far too often for a futex round trip each time.
pub struct SpinBarrier {
    n: usize,
    count: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    pub fn new(n: usize) -> Self {
        SpinBarrier {
            n,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    pub fn wait(&self) {
        let gen_now = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == gen_now {
            if spins < 200 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The communicator of one tensor-parallel group.
pub struct Collective {
    n: usize,
    barrier: SpinBarrier,
    slots: Vec<RwLock<Vec<f32>>>,
}

impl Collective {
    pub fn new(n: usize) -> Self {
        Collective {
            n,
            barrier: SpinBarrier::new(n),
            slots: (0..n).map(|_| RwLock::new(Vec::new())).collect(),
        }
    }

    pub fn size(&self) -> usize {
        self.n
    }

    /// Sum `buf` over all ranks. Every rank adds the contributions in rank order, so all ranks
    /// end with bit-identical results.
    pub fn all_reduce(&self, rank: usize, buf: &mut [f32]) {
        if self.n == 1 {
            return;
        }
        {
            let mut mine = self.slots[rank].write().expect("collective slot");
            mine.clear();
            mine.extend_from_slice(buf);
        }
        self.barrier.wait();
        {
            let first = self.slots[0].read().expect("collective slot");
            buf.copy_from_slice(&first);
        }
        for r in 1..self.n {
            let other = self.slots[r].read().expect("collective slot");
            for (b, o) in buf.iter_mut().zip(other.iter()) {
                *b += o;
            }
        }
        self.barrier.wait();
    }

    /// Gather each rank's `[rows, its vocab slice]` into `[rows, total_cols]` on rank 0.
    pub fn gather_columns(
        &self,
        rank: usize,
        local: &[f32],
        rows: usize,
        total_cols: usize,
    ) -> Option<Vec<f32>> {
        {
            let mut mine = self.slots[rank].write().expect("collective slot");
            mine.clear();
            mine.extend_from_slice(local);
        }
        self.barrier.wait();
        let out = (rank == 0).then(|| {
            let mut out = vec![0.0f32; rows * total_cols];
            let mut col0 = 0;
            for r in 0..self.n {
                let part = self.slots[r].read().expect("collective slot");
                let w = part.len() / rows.max(1);
                for row in 0..rows {
                    out[row * total_cols + col0..row * total_cols + col0 + w]
                        .copy_from_slice(&part[row * w..(row + 1) * w]);
                }
                col0 += w;
            }
            out
        });
        self.barrier.wait();
        out
    }
}

/// What a forward returns on the leader: logits and, when asked, every rank's op timings.
pub struct ForwardOutput {
    pub logits: Option<Vec<f32>>,
    pub rank_ops: Vec<Vec<OpEvent>>,
}

struct Worker {
    tx: Sender<Arc<ForwardBatch>>,
    done: Receiver<Vec<OpEvent>>,
    handle: Option<JoinHandle<()>>,
}

/// A tensor-parallel group: rank 0 here, ranks 1.. on their own threads.
pub struct TpGroup {
    leader: RankModel,
    workers: Vec<Worker>,
    comm: Arc<Collective>,
}

impl TpGroup {
    pub fn new(mut ranks: Vec<RankModel>, dp_rank: usize) -> Self {
        let comm = Arc::new(Collective::new(ranks.len()));
        let rest = ranks.split_off(1);
        let leader = ranks.pop().expect("at least one rank");
        let workers = rest
            .into_iter()
            .map(|mut model| {
                let (tx, rx) = channel::<Arc<ForwardBatch>>();
                let (done_tx, done) = channel();
                let comm = comm.clone();
                let name = format!("loupe-dp{dp_rank}-tp{}", model.shard.tp_rank);
                let handle = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || {
                        while let Ok(batch) = rx.recv() {
                            let mut ops = Vec::new();
                            model.forward(&batch, &comm, &mut ops);
                            if done_tx.send(ops).is_err() {
                                break;
                            }
                        }
                    })
                    .expect("spawn tensor-parallel rank thread");
                Worker {
                    tx,
                    done,
                    handle: Some(handle),
                }
            })
            .collect();
        TpGroup {
            leader,
            workers,
            comm,
        }
    }

    pub fn tp_size(&self) -> usize {
        self.comm.size()
    }

    /// Run `f` on rank 0's compute threads (so that rayon work inside it uses them).
    pub fn install<R: Send>(&mut self, f: impl FnOnce() -> R + Send) -> R {
        self.leader.install(f)
    }

    pub fn forward(&mut self, batch: ForwardBatch) -> ForwardOutput {
        let batch = Arc::new(batch);
        for w in &self.workers {
            w.tx.send(batch.clone())
                .expect("tensor-parallel rank thread died");
        }
        let mut ops = Vec::new();
        let logits = self.leader.forward(&batch, &self.comm, &mut ops);
        let mut rank_ops = vec![ops];
        for w in &self.workers {
            rank_ops.push(w.done.recv().expect("tensor-parallel rank thread died"));
        }
        ForwardOutput { logits, rank_ops }
    }
}

impl Drop for TpGroup {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the channel ends the rank's loop.
            let (tx, _) = channel();
            drop(std::mem::replace(&mut w.tx, tx));
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_reduce_and_gather_across_threads() {
        let comm = Arc::new(Collective::new(3));
        let handles: Vec<_> = (0..3)
            .map(|r| {
                let comm = comm.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![r as f32 + 1.0; 4];
                    for _ in 0..50 {
                        buf = vec![r as f32 + 1.0; 4];
                        comm.all_reduce(r, &mut buf);
                    }
                    // Uneven column split: rank r holds r + 1 columns of 2 rows.
                    let local: Vec<f32> = (0..2 * (r + 1)).map(|i| (r * 10 + i) as f32).collect();
                    (buf, comm.gather_columns(r, &local, 2, 6))
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (buf, gathered) in &results {
            assert_eq!(buf, &vec![6.0; 4]);
            let _ = gathered;
        }
        let g = results[0].1.clone().unwrap();
        assert_eq!(
            g,
            [
                0.0, 10.0, 11.0, 20.0, 21.0, 22.0, 1.0, 12.0, 13.0, 23.0, 24.0, 25.0
            ]
        );
        assert!(results[1].1.is_none());
    }
}
