//! Crash states from the persistence points of a recorded run.
//!
//! At a point, the durable image survives for certain; each unsynced operation may or may not
//! survive, and an unsynced write may survive torn (only some of its sectors). A crash state is
//! the durable image plus a subset of the unsynced operations, applied in their original order
//! (an operation whose prerequisite did not survive cannot apply and is skipped).
//!
//! Exhaustive within a bound: every subset of at most `exhaustive` operations, each write in
//! full or torn: cut at any sector boundary (its first `k` sectors only) or missing any one
//! sector but the last (which is the cut before it). Where that would exceed `cap` states at
//! one point, a write there is only whole or cut in half. Beyond it (more operations, or writes
//! of more than two sectors, whose tears the enumeration does not exhaust), `samples` random subsets per point, each
//! operation kept with probability 1/2 and each kept write torn at random sectors with
//! probability 1/4, from a seed: the same seed gives the same states.
//!
//! A crash just before any operation is covered by the next point: the operations done since are
//! a subset of that point's unsynced ones.

use super::Point;
use super::image::{Image, Op, SECTOR};

/// How a point's crash states are chosen.
#[derive(Debug, Clone, Copy)]
pub struct Explorer {
    /// Every subset of at most this many unsynced operations.
    pub exhaustive: usize,
    /// Random larger subsets per point.
    pub samples: usize,
    /// The most exhaustive states of one point with every tear enumerated.
    pub cap: usize,
    /// The seed of the random subsets.
    pub seed: u64,
}

/// How one unsynced operation survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Survival {
    Whole,
    /// A write with only its first `k` sectors.
    Prefix(usize),
    /// A write without sector `i`.
    Hole(usize),
}

impl Survival {
    fn keep(self, n: usize) -> Option<Vec<bool>> {
        match self {
            Survival::Whole => None,
            Survival::Prefix(k) => Some((0..n).map(|s| s < k).collect()),
            Survival::Hole(i) => Some((0..n).map(|s| s != i).collect()),
        }
    }
}

/// Ways each operation can survive: every tear, or (`fine` false) only whole or half.
fn variants(op: &Op, fine: bool) -> Vec<Survival> {
    let n = sectors(op);
    let mut v = vec![Survival::Whole];
    if n > 1 {
        if fine {
            v.extend((1..n).map(Survival::Prefix));
            // Without the last sector is the cut after `n - 1`.
            v.extend((0..n - 1).map(Survival::Hole));
        } else {
            v.push(Survival::Prefix(n / 2));
        }
    }
    v
}

/// The number of subsets of at most `k` operations, each in one of its variants.
fn count_subsets(counts: &[usize], k: usize) -> usize {
    // e[j]: ways to pick j operations so far (elementary symmetric sums).
    let mut e = vec![0usize; k + 1];
    e[0] = 1;
    for &c in counts {
        for j in (1..=k).rev() {
            e[j] = e[j].saturating_add(e[j - 1].saturating_mul(c));
        }
    }
    e.iter().fold(0usize, |a, b| a.saturating_add(*b))
}

fn sectors(op: &Op) -> usize {
    match op {
        Op::Write { data, .. } => data.len().div_ceil(SECTOR),
        _ => 1,
    }
}

fn build(point: &Point, chosen: &[(usize, Option<Vec<bool>>)]) -> Image {
    let mut image = point.durable.clone();
    for (i, keep) in chosen {
        image.apply_torn(&point.pending[*i], keep.as_deref());
    }
    image
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl Explorer {
    /// Calls `f` with every crash state of `point` (the `index`th point of its run) and whether
    /// it came from the exhaustive part; returns how many.
    pub fn for_each_state(
        &self,
        point: &Point,
        index: usize,
        mut f: impl FnMut(Image, bool),
    ) -> usize {
        let fine_counts: Vec<usize> = point
            .pending
            .iter()
            .map(|op| variants(op, true).len())
            .collect();
        let fine = count_subsets(&fine_counts, self.exhaustive) <= self.cap;
        let mut units: Vec<(usize, Survival)> = Vec::new();
        for (i, op) in point.pending.iter().enumerate() {
            units.extend(variants(op, fine).into_iter().map(|v| (i, v)));
        }
        let mut count = 0;
        let mut chosen: Vec<(usize, Survival)> = Vec::new();
        self.subsets(point, &units, 0, &mut chosen, &mut |image| {
            count += 1;
            f(image, true);
        });
        let torn_beyond = point.pending.iter().any(|op| sectors(op) > 2);
        if point.pending.len() > self.exhaustive || torn_beyond {
            let mut rng = Rng((self.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
            for _ in 0..self.samples {
                let mut picked = Vec::new();
                for (i, op) in point.pending.iter().enumerate() {
                    if rng.next().is_multiple_of(2) {
                        continue;
                    }
                    let n = sectors(op);
                    let keep = (n > 1 && rng.next().is_multiple_of(4))
                        .then(|| (0..n).map(|_| rng.next().is_multiple_of(2)).collect());
                    picked.push((i, keep));
                }
                count += 1;
                f(build(point, &picked), false);
            }
        }
        count
    }

    fn subsets(
        &self,
        point: &Point,
        units: &[(usize, Survival)],
        from: usize,
        chosen: &mut Vec<(usize, Survival)>,
        f: &mut dyn FnMut(Image),
    ) {
        let picked: Vec<(usize, Option<Vec<bool>>)> = chosen
            .iter()
            .map(|&(i, how)| (i, how.keep(sectors(&point.pending[i]))))
            .collect();
        f(build(point, &picked));
        if chosen.len() == self.exhaustive {
            return;
        }
        for u in from..units.len() {
            if chosen.last().is_some_and(|c| c.0 == units[u].0) {
                continue; // another survival of the same operation (units are grouped by it)
            }
            chosen.push(units[u]);
            self.subsets(point, units, u + 1, chosen, f);
            chosen.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::IoEngine;
    use crate::io::sim::{SimEngine, Variant};
    use std::path::Path;

    #[test]
    fn subsets_of_up_to_k_operations_are_enumerated_once_each() {
        let e = SimEngine::new(Variant::Correct);
        e.create_dir_all(Path::new("/d")).unwrap();
        for i in 0..5 {
            e.create_exclusive(&Path::new("/d").join(format!("f{i}")))
                .unwrap();
        }
        e.end();
        let points = e.points();
        let point = points.last().unwrap();
        assert_eq!(point.pending.len(), 6, "mkdir and five creates");
        let ex = Explorer {
            exhaustive: 2,
            samples: 0,
            seed: 1,
            cap: 1000,
        };
        let mut seen = Vec::new();
        let n = ex.for_each_state(point, 0, |image, exhaustive| {
            assert!(exhaustive);
            seen.push(image.materialize());
        });
        // 1 + 6 + C(6, 2) subsets.
        assert_eq!(n, 1 + 6 + 15);
        // A create without the mkdir cannot apply: every subset without it (the empty one, five
        // single creates, ten pairs) is the empty state.
        assert_eq!(seen.iter().filter(|m| m.is_empty()).count(), 1 + 5 + 10);
    }

    #[test]
    fn a_write_survives_whole_torn_or_not_at_all() {
        let e = SimEngine::new(Variant::Correct);
        let f = e.create_exclusive(Path::new("/f")).unwrap();
        e.fsync_dir(Path::new("/")).unwrap();
        f.write_all_at(&[7u8; 4 * SECTOR], 0).unwrap();
        e.end();
        let points = e.points();
        let ex = Explorer {
            exhaustive: 3,
            samples: 0,
            seed: 1,
            cap: 1000,
        };
        let mut seen = Vec::new();
        let n = ex.for_each_state(points.last().unwrap(), 0, |image, _| {
            let m = image.materialize();
            let d = m[Path::new("/f")].clone().unwrap();
            let sectors: Vec<bool> = (0..4).map(|s| d.get(s * SECTOR) == Some(&7)).collect();
            seen.push(sectors);
        });
        // Nothing, whole, cut after 1, 2 or 3 sectors, or one of the first 3 sectors missing.
        assert_eq!(n, 1 + 1 + 3 + 3);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8, "all different: {seen:?}");
        // Coarse tearing when the fine one would exceed the cap.
        let coarse = Explorer { cap: 7, ..ex };
        assert_eq!(
            coarse.for_each_state(points.last().unwrap(), 0, |_, _| {}),
            3
        );
    }
}
