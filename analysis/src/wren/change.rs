//! The change detector: it dates a change of a path's available bandwidth A (a
//! throttle, cross traffic coming or going), so the estimate (`estimate`) is drawn from
//! the trains sent since rather than from a window that mixes the old A and the new.
//!
//! Newer trains that contradict the answer of all the trains (they expanded or lost
//! below what it proves, or did not rise above it; by 1, √1.5 or 1.5x), more often than
//! the older trains contradicted it in the steady state they saw, date the change
//! (`since_change`, kept per path in `Path::change`: the noise model is the older
//! trains' own rate of contradictions).

use super::estimate::estimate;
use super::train::{expanded, TrainResult};
use super::trend::Trend;

/// How far beyond the answer's range a train must prove A for it to contradict it
/// (`since_change`): each factor is a test of its own, at a third of the false-change
/// rate.
const CHANGE_FACTORS: [f64; 3] = [1.0, 1.224_744_871_391_589, 1.5];

/// The range [low, high] of the answer all the trains give (`estimate::steps`), against which
/// newer trains are read for a change (`since_change`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reference {
    pub(super) low: Option<f64>,
    pub(super) high: Option<f64>,
}

impl Reference {
    pub(super) fn of(trains: &[TrainResult]) -> Reference {
        let (_, _, low, high) = estimate(trains);
        Reference { low, high }
    }
}

/// Whether train `t` contradicts `r` by `factor`, either way (`evidence`): a change can
/// be dated only by a suffix that ends in such a train, as one that does not only
/// weakens what the trains before it say.
pub(super) fn contradicts(t: &TrainResult, r: Reference, factor: f64) -> bool {
    evidence(t, r, factor).iter().any(|e| e.1)
}

/// What train `t` says of a fall of A by `factor` below `r`'s low end, and of a rise by
/// as much above its high end: (could contradict, contradicts, opposes) each.
fn evidence(t: &TrainResult, r: Reference, factor: f64) -> [(bool, bool, bool); 2] {
    let (low, high) = (r.low, r.high);
    let mut fell = (false, false, false);
    let mut rose = (false, false, false);
    match t.trend {
        Trend::Increasing => {
            let expanded = t
                .out_bps
                .filter(|&o| expanded(t.rate_bps, t.err, o, 1.0))
                .map(|(o, e)| (t.rate_bps * (1.0 + t.err)).min(o * (1.0 + e)));
            let lost = t.loss.then_some(t.rate_bps * (1.0 + t.err));
            if let (Some(ub), Some(l)) = (expanded.or(lost), low) {
                fell = (true, factor * ub < l, false);
            }
            let ub = expanded.or(lost).unwrap_or(t.rate_bps * (1.0 + t.err));
            rose.2 = high.is_some_and(|h| ub <= factor * h);
        }
        Trend::NonIncreasing => {
            let lb = t.rate_bps / (1.0 + t.err);
            if let Some(h) = high {
                rose = (true, lb > factor * h, false);
            }
            fell.2 = low.is_some_and(|l| factor * lb >= l);
        }
        Trend::Grey => {}
    }
    [fell, rose]
}

/// Where the evidence of the current A begins (`since_change`, as a place in
/// `trains`); 0 when nothing changed.
///
/// What dates a change. The trains, all of them, give an answer whose range is
/// [low, high] (`estimate::steps`: its splits absorb the trains the trend test misjudges). A
/// train contradicts that range by a factor f if it rose and proves A below low/f (it
/// expanded beyond its error, r_in/r_out > 1 + 2e as TOPP takes it, to an r_out that
/// low, or lost a segment at such a rate: A fell), or did not rise at a rate above
/// f·high (A rose). Trains of a steady path do that too, now and then: over a train's
/// span T, Poisson cross traffic of rate X in packets of L bits leaves A_T = A ±
/// √(X·L/T) (at 70% cross traffic, a 64-segment train below A expands a few percent,
/// and one at 1.5 A may not rise), and a train of uneven pace (two bursts at different
/// rates that merge) leaves its bottleneck slower than its average rate. How often is
/// not modelled but counted: among the trains before a candidate change, the share p of
/// those that could contradict it (rising trains with a bound, or non-rising ones) that
/// did, with one of each added (Laplace), so a few trains give no certainty. The newer
/// trains date the change when k of their r such trains contradict, more than prove
/// the opposite (a non-rising train above low/f, a rising one proving A below f·high),
/// and P(at least k of r | p) < 1/(20·n·3) for n trains: one test per train and
/// factor, fewer than one false change in 20 windows.
///
/// The factors (`CHANGE_FACTORS`: 1, √1.5, 1.5): a steady path's trains contradict its
/// range by a little often (a bulk sender probing at 1.2 A lets through about A, and
/// its range is a few percent wide), by 1.5x rarely. A throttle on a clean path shows
/// in two trains at 1.5x; cross traffic growing from 30% to 70% (A 70 -> 30) in many
/// trains by a little (a burst at r leaves the FIFO at C·r/(r + X), between the new A
/// and r) and few by 1.5x. One factor alone misses one or the other; three are three
/// tests, each at a third of the false-change rate. Where no train of the steady path
/// contradicted, two newer trains that do prove a change once √(60·n) or so could have
/// and did not; at 70% cross traffic, a run of them. Newer trains are at most half of
/// them (the answer is the older ones').
pub(super) fn since_change(trains: &[TrainResult], reference: Reference) -> usize {
    let n = trains.len();
    if n < 4
        || !trains
            .last()
            .is_some_and(|t| contradicts(t, reference, 1.0))
    {
        return 0;
    }
    let alpha = 1.0 / (20.0 * n as f64 * CHANGE_FACTORS.len() as f64);
    let mut found: Option<usize> = None;
    for factor in CHANGE_FACTORS {
        let ev: Vec<[(bool, bool, bool); 2]> = trains
            .iter()
            .map(|t| evidence(t, reference, factor))
            .collect();
        for dir in 0..2 {
            let total = ev.iter().fold((0usize, 0usize), |(r, k), e| {
                (r + e[dir].0 as usize, k + e[dir].1 as usize)
            });
            // The newer trains' counts: could contradict, did, opposed.
            let (mut r, mut k, mut s) = (0usize, 0usize, 0usize);
            for i in (n / 2..n).rev() {
                let (could, did, opposes) = ev[i][dir];
                r += could as usize;
                k += did as usize;
                s += opposes as usize;
                if !did || k <= s {
                    continue;
                }
                let p = (total.1 - k + 1) as f64 / (total.0 - r + 2) as f64;
                if binomial_tail(r, k, p) < alpha {
                    found = Some(found.map_or(i, |f| f.min(i)));
                }
            }
        }
    }
    found.unwrap_or(0)
}

/// P(at least `k` of `r` independent trials succeed), each with probability `p`.
fn binomial_tail(r: usize, k: usize, p: f64) -> f64 {
    let q = 1.0 - p;
    // pmf(j) = C(r, j) p^j q^(r-j), from pmf(0) = q^r, summed from k up.
    let mut pmf = q.powi(r as i32);
    let mut tail = 0.0;
    for j in 0..=r {
        if j >= k {
            tail += pmf;
        }
        pmf *= (r - j) as f64 / (j + 1) as f64 * p / q.max(f64::MIN_POSITIVE);
    }
    tail.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wren::train::verdict;

    /// A train that rose at `rate_mbps` and let `out_mbps` through.
    fn expanded(rate_mbps: f64, out_mbps: f64) -> TrainResult {
        TrainResult {
            out_bps: Some((out_mbps * 1e6, 0.01)),
            ..verdict(rate_mbps, Trend::Increasing)
        }
    }

    /// 128 trains of a steady path with A = 30 Mbit/s: below it none rises, above it
    /// each rises and lets about A through; with `noise`, two in eight are trains that
    /// heavy cross traffic misleads: one rose at 40 and let only 15 through, one did
    /// not rise at 45.
    fn steady(noise: bool) -> Vec<TrainResult> {
        (0..128)
            .map(|i| {
                let f = (i * 37 % 128) as f64 / 128.0;
                if noise && i % 8 == 7 {
                    expanded(40.0, 15.0)
                } else if noise && i % 8 == 3 {
                    verdict(45.0, Trend::NonIncreasing)
                } else if i % 2 == 0 {
                    verdict(12.0 + 17.0 * f, Trend::NonIncreasing)
                } else {
                    expanded(36.0 + 80.0 * f, 30.5 + f)
                }
            })
            .collect()
    }

    fn change_in(trains: &[TrainResult]) -> usize {
        since_change(trains, Reference::of(trains))
    }

    #[test]
    fn contradictions_as_frequent_as_the_steady_path_gave_date_no_change() {
        // Two newest trains that prove A below half of what the path proved are no
        // change where one in eight trains before them did so too.
        let mut trains = steady(true);
        trains.extend([expanded(40.0, 15.0), expanded(45.0, 14.0)]);
        assert_eq!(change_in(&trains), 0);
        // Two non-rising trains at 1.6 A are the trend test's noise on such a path, not a
        // rise of A.
        let mut trains = steady(true);
        trains.extend([
            verdict(48.0, Trend::NonIncreasing),
            verdict(50.0, Trend::NonIncreasing),
        ]);
        assert_eq!(change_in(&trains), 0);
    }

    #[test]
    fn contradictions_the_steady_path_never_gave_date_a_change() {
        // A clean path: three trains that let through a third of A date a fall (two,
        // once the path has some √(60·n) trains that could have contradicted).
        let mut trains = steady(false);
        trains.extend([
            expanded(36.0, 10.0),
            expanded(45.0, 10.5),
            expanded(40.0, 10.0),
        ]);
        assert_eq!(change_in(&trains), 128);
        // ... and three that did not rise at 2 A a rise.
        let mut trains = steady(false);
        trains.extend([
            verdict(60.0, Trend::NonIncreasing),
            verdict(64.0, Trend::NonIncreasing),
            verdict(62.0, Trend::NonIncreasing),
        ]);
        assert_eq!(change_in(&trains), 128);
        // On the noisy path it takes a run of them, as long as their share before makes
        // unlikely: not two, but eight. The change is dated from the earliest train
        // the run makes significant: here a stray train or two before it (one in eight).
        let mut trains = steady(true);
        trains.extend((0..2).map(|_| expanded(36.0, 10.0)));
        assert_eq!(change_in(&trains), 0);
        trains.extend((0..6).map(|_| expanded(36.0, 10.0)));
        let at = change_in(&trains);
        assert!((112..=128).contains(&at), "{at}");
    }
}
