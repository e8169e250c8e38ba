//! Tensor parallelism with real threads: one thread per rank, each owning its shard and its
//! KV cache, meeting in the collectives of `collective.rs` (all-reduce after o_proj and
//! down_proj, all-gather of the logits). Rank 0 runs on the scheduler's thread.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::collective::Collective;
use crate::model::{ForwardBatch, RankModel};
use crate::observer::OpEvent;

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
