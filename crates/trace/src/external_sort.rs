//! Sorting more records than memory should hold: sorted runs spill to anonymous temporary
//! files once an in-memory budget is used up, and are merged back in order. Traces arrive in
//! writer order, not time order, and both the GPU-timeline sweep and the Perfetto writer need
//! time order; this keeps their memory bounded whatever the trace size.
//!
//! Writers emit a few interleaved sequences that are each in order (one per category, thread
//! or stream), so records are dealt onto a few piles as they come, each kept in order: a
//! record goes to a pile whose last record is not above it, else it opens a pile, and past
//! [`MAX_PILES`] it waits unsorted on the side. Spilling and finishing merge the piles (and
//! the sorted side) through a tournament tree instead of sorting everything held: for input
//! in a few ordered sequences that is one comparison or so a record.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

pub trait Record: Ord + Sized {
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads one record; `Ok(None)` at the end of the run.
    fn decode(input: &mut impl Read) -> io::Result<Option<Self>>;
    /// Approximate bytes the record occupies in memory, for the budget.
    fn mem_size(&self) -> usize;
}

/// Ordered piles kept before records go unsorted to the side: each record that fits no pile
/// is compared with every pile's last record.
pub const MAX_PILES: usize = 8;

pub struct ExternalSorter<T: Record> {
    /// Each in ascending order.
    piles: Vec<Vec<T>>,
    /// The pile the last record went to (the one the next record most likely fits).
    last: usize,
    /// Records that fit no pile, unsorted.
    side: Vec<T>,
    mem: usize,
    budget: usize,
    runs: Vec<File>,
    /// Ordered runs taken over from other sorters (each within its own budget): merged at
    /// the end, rather than copied record by record into this sorter's piles.
    held: Vec<Vec<T>>,
}

impl<T: Record> ExternalSorter<T> {
    pub fn new(budget_bytes: usize) -> Self {
        ExternalSorter {
            piles: Vec::new(),
            last: 0,
            side: Vec::new(),
            mem: 0,
            budget: budget_bytes,
            runs: Vec::new(),
            held: Vec::new(),
        }
    }

    pub fn push(&mut self, rec: T) -> io::Result<()> {
        self.mem += rec.mem_size();
        match self.pile_for(&rec) {
            Some(i) => {
                self.piles[i].push(rec);
                self.last = i;
            }
            None => self.side.push(rec),
        }
        if self.mem >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// The pile `rec` keeps in order: the last one used when it fits, else the one whose last
    /// record is the closest below `rec` (an empty pile fits anything), else a new pile.
    fn pile_for(&mut self, rec: &T) -> Option<usize> {
        let fits = |p: &Vec<T>| p.last().is_none_or(|tail| tail <= rec);
        if self.piles.get(self.last).is_some_and(fits) {
            return Some(self.last);
        }
        let mut best: Option<(usize, Option<&T>)> = None;
        for (i, p) in self.piles.iter().enumerate() {
            if !fits(p) {
                continue;
            }
            let tail = p.last();
            if best.is_none_or(|(_, b)| tail > b) {
                best = Some((i, tail));
            }
        }
        if let Some((i, _)) = best {
            return Some(i);
        }
        if self.piles.len() < MAX_PILES {
            self.piles.push(Vec::new());
            return Some(self.piles.len() - 1);
        }
        None
    }

    /// Takes over everything `other` holds (its spilled runs, its piles and its side).
    pub fn absorb(&mut self, mut other: ExternalSorter<T>) -> io::Result<()> {
        self.runs.extend(other.runs);
        self.held.extend(other.held);
        self.held
            .extend(other.piles.into_iter().filter(|p| !p.is_empty()));
        if !other.side.is_empty() {
            other.side.sort();
            self.held.push(other.side);
        }
        Ok(())
    }

    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// The side sorted, with the piles: the ordered runs this sorter holds in memory.
    fn own_runs(&mut self) -> Vec<&[T]> {
        self.side.sort();
        self.piles
            .iter()
            .map(Vec::as_slice)
            .chain([self.side.as_slice()])
            .filter(|r| !r.is_empty())
            .collect()
    }

    fn spill(&mut self) -> io::Result<()> {
        let mut file = tempfile::tempfile()?;
        {
            let runs = self.own_runs();
            let mut w = BufWriter::with_capacity(1 << 18, &mut file);
            let mut scratch = Vec::with_capacity(256);
            let mut at = vec![0usize; runs.len()];
            let mut tree = Tournament::new(runs.len(), |s| runs[s].get(at[s]));
            while let Some(rec) = runs[tree.winner()].get(at[tree.winner()]) {
                scratch.clear();
                rec.encode(&mut scratch);
                w.write_all(&scratch)?;
                let i = tree.winner();
                at[i] += 1;
                tree.replay(i, |s| runs[s].get(at[s]));
            }
            w.flush()?;
        }
        file.rewind()?;
        self.runs.push(file);
        // the piles keep their capacity for the next run
        for p in &mut self.piles {
            p.clear();
        }
        self.side.clear();
        self.mem = 0;
        Ok(())
    }

    /// Everything pushed, in ascending order.
    pub fn finish(mut self) -> io::Result<Sorted<T>> {
        self.side.sort();
        let memory = std::mem::take(&mut self.held)
            .into_iter()
            .chain(self.piles)
            .chain([self.side])
            .filter(|r| !r.is_empty());
        let mut sources: Vec<Source<T>> = self
            .runs
            .into_iter()
            .map(|f| Source::Disk(BufReader::with_capacity(1 << 16, f)))
            .chain(memory.map(|r| Source::Memory(r.into_iter())))
            .collect();
        if sources.len() <= 1 {
            return Ok(Sorted(Inner::One(sources.pop())));
        }
        let mut heads = Vec::with_capacity(sources.len());
        for s in &mut sources {
            heads.push(s.next()?);
        }
        let tree = Tournament::new(heads.len(), |s| heads[s].as_ref());
        Ok(Sorted(Inner::Merge {
            sources,
            heads,
            tree,
        }))
    }
}

/// Whether source `a`'s head comes out before source `b`'s: the lower record, the lower
/// index among equals; an exhausted source (`None`) never wins.
fn beats<T: Ord>(x: Option<&T>, a: usize, y: Option<&T>, b: usize) -> bool {
    match (x, y) {
        (Some(x), Some(y)) => (x, a) < (y, b),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// A tournament (loser) tree over `n` sources: internal nodes hold the source that lost
/// there, so after the winner's head changes only its path to the root is replayed, one
/// comparison a level. Sources are named by index; the caller gives each one's head
/// (`None` once it is exhausted), compared by [`beats`].
struct Tournament {
    /// `losers[0]` is the overall winner; `losers[1..n]` the losers at internal node `i`
    /// (children `2i` and `2i + 1`; source `s` is leaf `n + s`).
    losers: Vec<usize>,
}

impl Tournament {
    fn new<'a, T: Ord + 'a>(n: usize, head: impl Fn(usize) -> Option<&'a T>) -> Tournament {
        let beats = |a: usize, b: usize| beats(head(a), a, head(b), b);
        let n = n.max(1);
        let mut losers = vec![0; n];
        let mut winners = vec![0; 2 * n];
        for s in 0..n {
            winners[n + s] = s;
        }
        for node in (1..n).rev() {
            let (l, r) = (winners[2 * node], winners[2 * node + 1]);
            let (w, lose) = if beats(r, l) { (r, l) } else { (l, r) };
            winners[node] = w;
            losers[node] = lose;
        }
        losers[0] = if n == 1 { 0 } else { winners[1] };
        Tournament { losers }
    }

    fn winner(&self) -> usize {
        self.losers[0]
    }

    /// Source `s`'s head changed (it was the winner): play its way back up.
    fn replay<'a, T: Ord + 'a>(&mut self, s: usize, head: impl Fn(usize) -> Option<&'a T>) {
        let beats = |a: usize, b: usize| beats(head(a), a, head(b), b);
        let n = self.losers.len();
        let mut w = s;
        let mut node = (n + s) / 2;
        while node >= 1 {
            if beats(self.losers[node], w) {
                std::mem::swap(&mut self.losers[node], &mut w);
            }
            node /= 2;
        }
        self.losers[0] = w;
    }
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

/// The records of an [`ExternalSorter`] in ascending order.
pub struct Sorted<T: Record>(Inner<T>);

enum Inner<T: Record> {
    /// Everything in one ordered source (or none).
    One(Option<Source<T>>),
    Merge {
        sources: Vec<Source<T>>,
        /// Each source's next record.
        heads: Vec<Option<T>>,
        tree: Tournament,
    },
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<io::Result<T>> {
        match &mut self.0 {
            Inner::One(source) => source.as_mut()?.next().transpose(),
            Inner::Merge {
                sources,
                heads,
                tree,
            } => {
                let i = tree.winner();
                let rec = heads[i].take()?;
                match sources[i].next() {
                    Ok(next) => heads[i] = next,
                    Err(e) => return Some(Err(e)),
                }
                tree.replay(i, |s| heads[s].as_ref());
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

    /// Interleaved ordered sequences (one per "writer"), fewer and more than the piles, with
    /// and without spills, and the tournament over one to many sources.
    #[test]
    fn interleaved_sequences_come_out_in_order() {
        for writers in [1u64, 3, MAX_PILES as u64, MAX_PILES as u64 + 5] {
            for budget in [8 * 97, 8 * 100_000] {
                let mut s = ExternalSorter::new(budget);
                let mut next = vec![0u64; writers as usize];
                let mut all = Vec::new();
                let mut x: u64 = 7;
                let mut w = 0;
                for i in 0..5000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    // writers take turns in bursts (a writer's buffer flushed at a time)
                    if i % 37 == 0 {
                        w = ((x >> 33) % writers) as usize;
                    }
                    // each writer's values ascend (with repeats), writers overlap in range
                    next[w] += (x >> 60) % 3;
                    let v = N(next[w] * writers + w as u64 % 2);
                    all.push(v);
                    s.push(v).unwrap();
                }
                // one ordered sequence stays one pile
                if writers == 1 {
                    assert!(s.side.is_empty() && s.piles.len() == 1);
                }
                let got: Vec<N> = s.finish().unwrap().map(Result::unwrap).collect();
                all.sort();
                assert_eq!(got, all, "{writers} writers, budget {budget}");
            }
        }
        // nothing pushed
        let s: ExternalSorter<N> = ExternalSorter::new(64);
        assert_eq!(s.finish().unwrap().count(), 0);
    }

    #[test]
    fn tournament_picks_the_lowest_head() {
        for n in 1..=9usize {
            let mut heads: Vec<Option<u64>> = (0..n as u64).map(|i| Some((i * 5) % 7)).collect();
            let mut t = Tournament::new(n, |s| heads[s].as_ref());
            let mut out = Vec::new();
            while let Some(v) = heads[t.winner()] {
                out.push(v);
                let w = t.winner();
                heads[w] = (v < 20).then_some(v + 7);
                t.replay(w, |s| heads[s].as_ref());
            }
            let mut want = out.clone();
            want.sort();
            assert_eq!(out, want, "{n} sources");
            assert!(heads.iter().all(Option::is_none));
        }
    }
}
