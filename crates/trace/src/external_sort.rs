//! Sorting more records than memory should hold: sorted runs spill to anonymous temporary
//! files once an in-memory budget is used up, and are merged back in order. Traces arrive in
//! writer order, not time order, and both the GPU-timeline sweep and the Perfetto writer need
//! time order; this keeps their memory bounded whatever the trace size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

pub trait Record: Ord + Sized {
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one record; `Ok(None)` at the end of the run.
    fn decode(input: &mut impl Read) -> io::Result<Option<Self>>;
    /// Approximate bytes the record occupies in memory, for the budget.
    fn mem_size(&self) -> usize;
}

pub struct ExternalSorter<T: Record> {
    buf: Vec<T>,
    mem: usize,
    budget: usize,
    runs: Vec<File>,
    /// Unsorted records taken over from other sorters (each within its own budget): kept as
    /// they are and sorted at the end, rather than copied record by record into `buf`.
    held: Vec<Vec<T>>,
}

impl<T: Record> ExternalSorter<T> {
    pub fn new(budget_bytes: usize) -> Self {
        ExternalSorter {
            buf: Vec::new(),
            mem: 0,
            budget: budget_bytes,
            runs: Vec::new(),
            held: Vec::new(),
        }
    }

    pub fn push(&mut self, rec: T) -> io::Result<()> {
        self.mem += rec.mem_size();
        self.buf.push(rec);
        if self.mem >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Takes over everything `other` holds (its spilled runs and its unsorted records).
    pub fn absorb(&mut self, other: ExternalSorter<T>) -> io::Result<()> {
        self.runs.extend(other.runs);
        self.held.extend(other.held);
        if !other.buf.is_empty() {
            self.held.push(other.buf);
        }
        Ok(())
    }

    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        sort_runs(&mut self.buf);
        let mut file = tempfile::tempfile()?;
        {
            let mut w = BufWriter::with_capacity(1 << 18, &mut file);
            let mut scratch = Vec::with_capacity(256);
            for rec in self.buf.drain(..) {
                scratch.clear();
                rec.encode(&mut scratch);
                w.write_all(&scratch)?;
            }
            w.flush()?;
        }
        file.rewind()?;
        self.runs.push(file);
        self.mem = 0;
        Ok(())
    }

    /// Everything pushed, in ascending order.
    pub fn finish(mut self) -> io::Result<Sorted<T>> {
        if self.runs.is_empty() {
            // one sort: the stable sort merges the runs already in order
            for mut held in std::mem::take(&mut self.held) {
                self.buf.append(&mut held);
            }
            sort_runs(&mut self.buf);
            return Ok(Sorted(Inner::Memory(self.buf.into_iter())));
        }
        let mut sources: Vec<Source<T>> = self
            .runs
            .into_iter()
            .map(|f| Source::Disk(BufReader::with_capacity(1 << 16, f)))
            .collect();
        for mut held in self.held.into_iter().chain([self.buf]) {
            sort_runs(&mut held);
            sources.push(Source::Memory(held.into_iter()));
        }
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(rec) = s.next()? {
                heap.push(Reverse(Head(rec, i)));
            }
        }
        Ok(Sorted(Inner::Merge { sources, heap }))
    }
}

/// Records arrive nearly in order (a trace's events are mostly written by time, per thread and
/// stream): the stable sort finds and merges the runs already there, where the unstable one
/// partitions from scratch. Both give the same order, as equal records are identical.
fn sort_runs<T: Ord>(buf: &mut [T]) {
    buf.sort();
}

enum Source<T> {
    Disk(BufReader<File>),
    Memory(std::vec::IntoIter<T>),
}

impl<T: Record> Source<T> {
    fn next(&mut self) -> io::Result<Option<T>> {
        match self {
            Source::Disk(r) => T::decode(r),
            Source::Memory(it) => Ok(it.next()),
        }
    }
}

struct Head<T>(T, usize);

impl<T: Ord> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1 == other.1
    }
}
impl<T: Ord> Eq for Head<T> {}
impl<T: Ord> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The records of an [`ExternalSorter`] in ascending order.
pub struct Sorted<T: Record>(Inner<T>);

enum Inner<T: Record> {
    Memory(std::vec::IntoIter<T>),
    Merge {
        sources: Vec<Source<T>>,
        heap: BinaryHeap<Reverse<Head<T>>>,
    },
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        match &mut self.0 {
            Inner::Memory(it) => it.next().map(Ok),
            Inner::Merge { sources, heap } => {
                let Reverse(Head(rec, i)) = heap.pop()?;
                match sources[i].next() {
                    Ok(Some(next)) => heap.push(Reverse(Head(next, i))),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                Some(Ok(rec))
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes, or reports a clean end when none are left.
pub fn read_exact_or_end(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(PartialEq, Eq, PartialOrd, Ord, Debug, Clone, Copy)]
    struct N(u64);

    impl Record for N {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_le_bytes());
        }
        fn decode(input: &mut impl Read) -> io::Result<Option<Self>> {
            let mut b = [0u8; 8];
            Ok(read_exact_or_end(input, &mut b)?.then(|| N(u64::from_le_bytes(b))))
        }
        fn mem_size(&self) -> usize {
            8
        }
    }

    #[test]
    fn spills_and_merges_in_order() {
        let mut s = ExternalSorter::new(8 * 1000);
        let mut x: u64 = 12345;
        let mut all = Vec::new();
        for _ in 0..10_500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            all.push(N(x >> 40));
            s.push(N(x >> 40)).unwrap();
        }
        assert_eq!(s.spilled_runs(), 10);
        // another sorter's runs and unsorted records, taken over
        let mut other = ExternalSorter::new(8 * 1000);
        for i in 0..1500u64 {
            let v = N((i * 7919) % 1543);
            all.push(v);
            other.push(v).unwrap();
        }
        s.absorb(other).unwrap();
        assert_eq!(s.spilled_runs(), 11);
        let got: Vec<N> = s.finish().unwrap().map(Result::unwrap).collect();
        all.sort();
        assert_eq!(got, all);
        // without spills: one sort of everything held
        let mut a = ExternalSorter::new(1 << 20);
        let mut b = ExternalSorter::new(1 << 20);
        for i in 0..100u64 {
            a.push(N(100 - i)).unwrap();
            b.push(N(i * 3)).unwrap();
        }
        a.absorb(b).unwrap();
        assert_eq!(a.spilled_runs(), 0);
        let got: Vec<u64> = a.finish().unwrap().map(|r| r.unwrap().0).collect();
        let mut want: Vec<u64> = (1..=100).chain((0..100).map(|i| i * 3)).collect();
        want.sort();
        assert_eq!(got, want);
    }
}
