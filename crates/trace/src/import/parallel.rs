//! Reading with several parsing threads. JSON traces are cut into blocks of whole events on
//! the calling thread (while another thread inflates); each worker parses blocks into its own
//! state, and what a block produces reaches the caller in file order. SQLite inputs are read
//! on the calling thread with the first worker.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};

use super::kineto::{self, block::BLOCK_TARGET, block::BlockContext, block::parse_block};
use super::source::Container;
use super::{Input, ReadOptions};
use crate::analyze::args::Args;
use crate::buffers::BufferPool;
use crate::error::{Result, TraceError};
use crate::model::{Event, EventSink, TraceInfo};

/// A parsing thread's state: it sees the events of the blocks it gets (in order within a
/// block), and turns each block into an output.
pub trait BlockWorker: EventSink + Send {
    type Output: Send;
    /// Ends a block; the outputs reach `deliver` in file order.
    fn finish_block(&mut self) -> Result<Self::Output>;
}

/// How many parsing threads to use: one per core (at least two, so the splitter and a parser
/// overlap even on one core's worth of quota), at most eight.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

/// Events per output of the sequential (SQLite) path, which has no blocks of its own.
const SEQUENTIAL_BATCH: u64 = 8192;

pub fn read_parallel<W: BlockWorker>(
    input: &Input,
    opts: &ReadOptions,
    workers: &mut [W],
    deliver: &mut dyn FnMut(W::Output) -> Result<()>,
) -> Result<TraceInfo> {
    assert!(!workers.is_empty(), "at least one worker");
    if input.container == Container::Sqlite {
        return sequential(input, opts, &mut workers[0], deliver);
    }
    let cx = BlockContext {
        path: &input.path,
        compressed: input.container == Container::GzipJson,
        lenient: opts.lenient,
    };
    let pool = BufferPool::new(2 * BLOCK_TARGET);
    std::thread::scope(|scope| {
        let (block_tx, block_rx) = sync_channel(workers.len() * 2);
        let block_rx = Arc::new(Mutex::new(block_rx));
        let (result_tx, result_rx) = channel::<(u64, Result<(u64, W::Output)>)>();
        for w in workers.iter_mut() {
            let rx = Arc::clone(&block_rx);
            let tx = result_tx.clone();
            let pool = pool.clone();
            scope.spawn(move || {
                loop {
                    let next = rx.lock().map(|r| r.recv());
                    let Ok(Ok((index, block))) = next else { return };
                    let out = parse_block(&block, &cx, w).and_then(|n| Ok((n, w.finish_block()?)));
                    pool.give(block.bytes);
                    if tx.send((index, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);

        let mut order = InOrder::default();
        let mut sent = 0u64;
        let read = kineto::read_blocks(&input.path, input.container, opts, &pool, &mut |block| {
            block_tx
                .send((sent, block))
                .map_err(|_| TraceError::Usage("a parsing thread stopped".into()))?;
            sent += 1;
            while let Ok((i, r)) = result_rx.try_recv() {
                order.put(i, r);
            }
            order.deliver(deliver)
        });
        drop(block_tx);
        for (i, r) in result_rx {
            order.put(i, r);
        }
        // Every block sent lies before where the splitter stopped: their errors come first.
        order.deliver(deliver)?;
        let mut info = read?;
        info.events = order.events;
        Ok(info)
    })
}

/// Outputs waiting for the ones before them. An error waits too, so the one reported is the
/// first in the file, whichever thread finished first.
struct InOrder<T> {
    next: u64,
    waiting: BTreeMap<u64, Result<(u64, T)>>,
    events: u64,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            next: 0,
            waiting: BTreeMap::new(),
            events: 0,
        }
    }
}

impl<T> InOrder<T> {
    fn put(&mut self, index: u64, out: Result<(u64, T)>) {
        self.waiting.insert(index, out);
    }

    fn deliver(&mut self, deliver: &mut dyn FnMut(T) -> Result<()>) -> Result<()> {
        while let Some(out) = self.waiting.remove(&self.next) {
            let (n, out) = out?;
            self.events += n;
            self.next += 1;
            deliver(out)?;
        }
        Ok(())
    }
}

fn sequential<W: BlockWorker>(
    input: &Input,
    opts: &ReadOptions,
    worker: &mut W,
    deliver: &mut dyn FnMut(W::Output) -> Result<()>,
) -> Result<TraceInfo> {
    struct Batches<'a, W: BlockWorker> {
        worker: &'a mut W,
        deliver: &'a mut dyn FnMut(W::Output) -> Result<()>,
        n: u64,
    }
    impl<W: BlockWorker> EventSink for Batches<'_, W> {
        fn event(&mut self, ev: &Event<'_>) -> Result<()> {
            self.worker.event(ev)?;
            self.counted()
        }

        fn event_scanned(&mut self, ev: &Event<'_>, args: &Args<'_>) -> Result<()> {
            self.worker.event_scanned(ev, args)?;
            self.counted()
        }
    }
    impl<W: BlockWorker> Batches<'_, W> {
        fn counted(&mut self) -> Result<()> {
            self.n += 1;
            if self.n.is_multiple_of(SEQUENTIAL_BATCH) {
                (self.deliver)(self.worker.finish_block()?)?;
            }
            Ok(())
        }
    }
    let mut batches = Batches {
        worker,
        deliver,
        n: 0,
    };
    let info = input.read(opts, &mut batches)?;
    (batches.deliver)(batches.worker.finish_block()?)?;
    Ok(info)
}
