//! Where A falls among the verdicts sorted by rate: the split that misclassifies the
//! least weight, the splits as plausible as it, and the trains at its edges.

use super::Verdict;

/// For each split of `judged` (sorted by rate; split i puts trains 0..i below A), the
/// weight it misclassifies: that of increasing trains below it plus that of
/// non-increasing ones above it, each train weighted by its length, as a longer train's
/// verdict is surer.
pub(super) fn split_errors(judged: &[Verdict]) -> Vec<usize> {
    let mut above_non: usize = judged
        .iter()
        .filter(|t| !t.increasing)
        .map(|t| t.weight)
        .sum();
    let mut below_inc = 0usize;
    let mut errs = Vec::with_capacity(judged.len() + 1);
    errs.push(above_non);
    for t in judged {
        if t.increasing {
            below_inc += t.weight;
        } else {
            above_non -= t.weight;
        }
        errs.push(below_inc + above_non);
    }
    errs
}

/// The split that misclassifies the least weight (the lowest, if several do).
pub(super) fn best_split(errs: &[usize]) -> usize {
    let min = errs.iter().min().copied().unwrap_or(0);
    errs.iter().position(|&e| e == min).unwrap_or(0)
}

/// The splits the verdicts cannot tell from the best: the trend test misjudges some
/// trains (flat noise reads as a rise now and then), so the count of misjudged trains
/// at the true split is itself uncertain, by about its square root (a Poisson count).
/// Splits that misclassify no more than the best plus 1 + √(its count) trains' weight
/// (a train weighing the mean) are as plausible; returns the lowest and highest.
pub(super) fn plausible_splits(judged: &[Verdict], errs: &[usize], best: usize) -> (usize, usize) {
    let mean_w = judged.iter().map(|t| t.weight).sum::<usize>() as f64 / judged.len() as f64;
    let in_trains = errs[best] as f64 / mean_w;
    let limit = errs[best] as f64 + (1.0 + in_trains.sqrt()) * mean_w;
    let ok = |i: &usize| errs[*i] as f64 <= limit;
    let lo = (0..=best).rev().take_while(ok).last().unwrap_or(best);
    let hi = (best..errs.len()).take_while(ok).last().unwrap_or(best);
    (lo, hi)
}

/// The range's edges around `split`: the second non-increasing train below it and the
/// second increasing one above it, as one stray train must not make the range; each
/// only if its side has `min_side` such trains (`min_side` >= 2: the second exists).
pub(super) fn edges(
    judged: &[Verdict],
    split: usize,
    min_side: usize,
) -> (Option<Verdict>, Option<Verdict>) {
    let (below, above) = judged.split_at(split);
    let non_low = below.iter().filter(|t| !t.increasing).count();
    let inc_high = above.iter().filter(|t| t.increasing).count();
    let lower = below
        .iter()
        .rev()
        .filter(|t| !t.increasing)
        .nth(1)
        .filter(|_| non_low >= min_side);
    let upper = above
        .iter()
        .filter(|t| t.increasing)
        .nth(1)
        .filter(|_| inc_high >= min_side);
    (lower.copied(), upper.copied())
}
