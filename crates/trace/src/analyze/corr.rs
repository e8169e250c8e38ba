//! Values by correlation id. A correlation is a per-process counter (CUPTI and roctracer
//! number launches 1, 2, 3...), so a trace's correlations are mostly dense: they go in a
//! table indexed by `correlation - min` where they span at most a few times their count, and
//! in a hash map otherwise. Joining a million kernels to their launches then reads one slot
//! each instead of hashing or binary-searching.

use std::collections::HashMap;

use foldhash::fast::FixedState;

/// A dense table may hold this many slots per entry (plus some slack for small traces).
const SPREAD: usize = 4;
const SLACK: usize = 4096;

pub enum CorrMap<V> {
    Dense { min: i64, slots: Vec<Option<V>> },
    Sparse(HashMap<i64, Option<V>, FixedState>),
}

/// Which value a correlation keeps when it is given more than once.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    First,
    Last,
}

impl<V: Copy> CorrMap<V> {
    /// The map of `pairs` (negative correlations are left out: they mean "none"); `pairs` is
    /// walked twice.
    pub fn build<I>(pairs: impl Fn() -> I, repeat: Repeat) -> CorrMap<V>
    where
        I: Iterator<Item = (i64, V)>,
    {
        let (mut n, mut min, mut max) = (0usize, i64::MAX, i64::MIN);
        for (c, _) in pairs().filter(|&(c, _)| c >= 0) {
            n += 1;
            min = min.min(c);
            max = max.max(c);
        }
        let span = if n == 0 { 0 } else { (max - min) as u128 + 1 };
        let keep = |old: &Option<V>| repeat == Repeat::Last || old.is_none();
        if span <= (n * SPREAD + SLACK) as u128 {
            let min = if n == 0 { 0 } else { min };
            let mut slots = vec![None; span as usize];
            for (c, v) in pairs().filter(|&(c, _)| c >= 0) {
                let slot = &mut slots[(c - min) as usize];
                if keep(slot) {
                    *slot = Some(v);
                }
            }
            CorrMap::Dense { min, slots }
        } else {
            let mut m = HashMap::with_capacity_and_hasher(n, FixedState::default());
            for (c, v) in pairs().filter(|&(c, _)| c >= 0) {
                let slot = m.entry(c).or_insert(None);
                if keep(slot) {
                    *slot = Some(v);
                }
            }
            CorrMap::Sparse(m)
        }
    }

    pub fn get(&self, c: i64) -> Option<V> {
        if c < 0 {
            return None;
        }
        match self {
            CorrMap::Dense { min, slots } => *slots.get(usize::try_from(c - *min).ok()?)?,
            CorrMap::Sparse(m) => m.get(&c).copied().flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_maps_agree() {
        let dense: Vec<(i64, u32)> = vec![(5, 0), (6, 1), (5, 2), (-1, 3), (9, 4)];
        let sparse: Vec<(i64, u32)> = dense
            .iter()
            .map(|&(c, v)| (if c >= 0 { c * 1_000_000_007 } else { c }, v))
            .collect();
        for (pairs, scale) in [(&dense, 1), (&sparse, 1_000_000_007)] {
            let first = CorrMap::build(|| pairs.iter().copied(), Repeat::First);
            let last = CorrMap::build(|| pairs.iter().copied(), Repeat::Last);
            assert_eq!(
                matches!(first, CorrMap::Dense { .. }),
                scale == 1,
                "the table is dense only for dense correlations"
            );
            assert_eq!(first.get(5 * scale), Some(0));
            assert_eq!(last.get(5 * scale), Some(2));
            assert_eq!(last.get(6 * scale), Some(1));
            assert_eq!(last.get(9 * scale), Some(4));
            assert_eq!(last.get(7 * scale), None);
            assert_eq!(last.get(-1), None);
            assert_eq!(last.get(i64::MAX), None);
            assert_eq!(last.get(0), None);
        }
        let empty = CorrMap::<u32>::build(std::iter::empty, Repeat::Last);
        assert_eq!(empty.get(0), None);
    }
}
