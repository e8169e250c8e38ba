//! The collectives of one tensor-parallel group, over shared memory: every rank writes its
//! buffer into its slot, meets the others at a spin barrier, and reads every slot in rank
//! order (all-reduce summed in rank order, so ranks hold bit-identical results; the logits
//! all-gather onto rank 0). Below both `model.rs`, which calls them, and `parallel.rs`, which
//! runs the rank threads.

use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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
