//! The estimate: available bandwidth (a point, a bound or none) from a path's judged
//! trains, and the view of a path that reports it with the path's RTT and traffic.
//!
//! The range (low, high) says what the evidence supports, not how close two trains
//! happened to fall: it spans every split of the trains (sorted by rate) that
//! misclassifies no more than the best split plus 1 + √(its count) trains, as the
//! trend test misjudges a share of trains and that count is itself uncertain
//! (`plausible_splits`); its ends are the trains just outside those splits, each
//! widened by its rate's own error (`TrainResult::err`: two clock readings of the
//! span, and the rise the trend test cannot tell from the delays' noise, 2σ over the
//! train's duration). It is never narrower than the edges the answer is drawn from,
//! nor does it reach below the delivered-rate floor (`delivered`).
//!
//! With rising trains at several rates and trains on both sides of A, TOPP's line
//! through the rising trains' dispersion ratios (`topp_fit`, model in `train`) crosses
//! 1 at A: where its two standard errors are within 15% and it lies inside the range
//! the verdicts prove, it is the estimate. PCT/PDT stay the verdict on whether a
//! train's delays rose; a rising train's output rate bounds A from above.

use serde::Serialize;

use super::path::{Path, PathKey};
use super::train::TrainResult;
use super::trend::Trend;

/// The widest range (high/low) a point estimate is given for (see `answer`).
const ESTIMATE_MAX_SPREAD: f64 = 1.6;

/// What kind of available-bandwidth answer a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailKind {
    Estimate,
    LowerBound,
    UpperBound,
    None,
}

/// A path's view, as published and as `wrenvnet analyze --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PathView {
    pub src: String,
    pub dst: String,
    pub flows: usize,
    pub packets: u64,
    pub bytes: u64,
    pub rtt_samples: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_srtt_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub throughput_mbps: f64,
    pub avail_bw_mbps: Option<f64>,
    pub avail_bw_low_mbps: Option<f64>,
    pub avail_bw_high_mbps: Option<f64>,
    pub avail_bw_kind: AvailKind,
    /// What the path's flows together delivered (`delivered`): no answer goes below it.
    pub delivered_floor_mbps: Option<f64>,
    pub trains: usize,
}

/// An answer in bits/s: its kind, the value reported, and the range's low and high.
type Answer = (AvailKind, Option<f64>, Option<f64>, Option<f64>);

const NO_ANSWER: Answer = (AvailKind::None, None, None, None);

/// A decisive train verdict as the estimate weighs it.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    rate_bps: f64,
    increasing: bool,
    /// The train's segments: a longer train's verdict is surer.
    weight: usize,
    /// Relative error of its rate as a bound (`TrainResult::err`).
    err: f64,
    /// What the bottleneck let through, with its error (`TrainResult::out_bps`).
    out: Option<(f64, f64)>,
}

impl Verdict {
    /// What it proves of A, its error allowed for: at most r·(1 + e) if its delays
    /// rose, at least r/(1 + e) if not.
    /// A rising train's output rate bounds A too (r_out ≥ A whenever r_in > A), and
    /// more tightly: a burst at line rate proves A below the line rate, and below
    /// what the bottleneck let through of it.
    fn bound(&self) -> f64 {
        if self.increasing {
            let by_out = self.out.map_or(f64::INFINITY, |(o, e)| o * (1.0 + e));
            (self.rate_bps * (1.0 + self.err)).min(by_out)
        } else {
            self.rate_bps / (1.0 + self.err)
        }
    }
}

/// The view of path `k`, with the trains judged within `window_ns` of its last record;
/// `name` renders an endpoint.
pub(super) fn path_view(
    k: &PathKey,
    p: &Path,
    window_ns: u64,
    name: &impl Fn(u32) -> String,
) -> PathView {
    let has_rtt = !p.rtt.is_empty();
    let dur = (p.last_t.saturating_sub(p.first_t)) as f64 / 1e9;
    let recent: Vec<TrainResult> = p
        .trains
        .iter()
        .filter(|tr| p.last_t.saturating_sub(tr.t) <= window_ns)
        .copied()
        .collect();
    let floor = p.delivered.floor(p.last_t, window_ns);
    let (kind, est, low, high) = floored(estimate(&recent), floor);
    PathView {
        src: name(k.src),
        dst: name(k.dst),
        flows: p.flows,
        packets: p.packets,
        bytes: p.payload_bytes,
        rtt_samples: p.rtt.len(),
        rtt_min_us: p.rtt_min.get().map(|m| m as f64 / 1e3),
        rtt_srtt_us: has_rtt.then(|| p.srtt_ns / 1e3),
        rtt_mean_us: has_rtt.then(|| p.rtt.mean()),
        rtt_p50_us: has_rtt.then(|| p.rtt.value_at_quantile(0.5) as f64),
        rtt_p99_us: has_rtt.then(|| p.rtt.value_at_quantile(0.99) as f64),
        throughput_mbps: if dur > 0.0 {
            p.payload_bytes as f64 * 8.0 / dur / 1e6
        } else {
            0.0
        },
        avail_bw_mbps: est.map(|x| x / 1e6),
        avail_bw_low_mbps: low.map(|x| x / 1e6),
        avail_bw_high_mbps: high.map(|x| x / 1e6),
        avail_bw_kind: kind,
        delivered_floor_mbps: floor.map(|x| x / 1e6),
        trains: recent.len(),
    }
}

/// Available bandwidth from judged trains. Sorted by rate, the trains below A should
/// show no rising delay and those above should: the split that misclassifies the
/// fewest trains (`best_split`) places A between the trains around it (`edges`). A
/// side backed by fewer than `max(2, 5%)` trains is noise, and then only a bound is
/// known. Grey trains are ignored.
fn estimate(trains: &[TrainResult]) -> Answer {
    let mut judged: Vec<Verdict> = trains
        .iter()
        .filter(|t| t.trend != Trend::Grey)
        .map(|t| Verdict {
            rate_bps: t.rate_bps,
            increasing: t.trend == Trend::Increasing,
            weight: t.segments,
            err: t.err,
            out: t.out_bps,
        })
        .collect();
    if judged.is_empty() {
        return NO_ANSWER;
    }
    judged.sort_by(|a, b| a.rate_bps.total_cmp(&b.rate_bps));
    let errs = split_errors(&judged);
    let split = best_split(&errs);
    let min_side = 2usize.max(judged.len().div_ceil(20));
    let (lower, upper) = edges(&judged, split, min_side);
    let plausible = plausible_splits(&judged, &errs, split);
    let ans = answer(&judged, (lower, upper), plausible, min_side);
    with_fit(ans, topp_fit(&judged))
}

/// TOPP's line through the rising trains: their dispersion ratio ρ = r_in/r_out
/// against their rate r is (r + X)/C above A (and 1 below), so the least-squares line
/// through the trains that expanded beyond their error (ρ > 1 + 2e) crosses ρ = 1 at A. Returns A and its standard error (the residuals' spread carried
/// to the crossing), from at least 3 rising trains whose rates differ by a fifth or
/// more: trains all at one rate (bursts at line rate) fix one point of the line, not
/// its slope, and leave A anywhere from the delivered rate to r_out.
fn topp_fit(judged: &[Verdict]) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = judged
        .iter()
        .filter(|t| t.increasing)
        .filter_map(|t| t.out.map(|(o, e)| (t.rate_bps, t.rate_bps / o, e)))
        .filter(|&(_, rho, e)| rho > 1.0 + 2.0 * e)
        .map(|(r, rho, _)| (r, rho))
        .collect();
    let n = pts.len() as f64;
    let (x_min, x_max) = pts
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if pts.len() < 3 || x_max < 1.2 * x_min {
        return None;
    }
    let (mx, my) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    if b <= 0.0 || !b.is_finite() {
        return None;
    }
    let a = mx + (1.0 - my) / b;
    let ss: f64 = pts
        .iter()
        .map(|p| (p.1 - my - b * (p.0 - mx)).powi(2))
        .sum();
    let s2 = ss / (n - 2.0).max(1.0);
    let sd = (s2 / (b * b) * (1.0 / n + (a - mx).powi(2) / sxx)).sqrt();
    (a > 0.0).then_some((a, sd))
}

/// The answer with TOPP's crossing where trains on both sides of A bracket it (a lower
/// side to the range), the fit is sure (two standard errors within 15% of it) and it
/// agrees with what the trains prove (inside the range): an estimate there, its range
/// the part of the evidence's range within two standard errors.
fn with_fit(ans: Answer, fit: Option<(f64, f64)>) -> Answer {
    let Some((a, sd)) = fit.filter(|&(a, sd)| 2.0 * sd <= 0.15 * a) else {
        return ans;
    };
    let (_, _, low, high) = ans;
    let inside = low.is_some_and(|l| l <= a) && high.is_none_or(|h| a <= h);
    if !inside {
        return ans;
    }
    let lo = low.map_or(a - 2.0 * sd, |l| l.max(a - 2.0 * sd));
    let hi = high.map_or(a + 2.0 * sd, |h| h.min(a + 2.0 * sd));
    (AvailKind::Estimate, Some(a), Some(lo), Some(hi))
}

/// For each split of `judged` (sorted by rate; split i puts trains 0..i below A), the
/// weight it misclassifies: that of increasing trains below it plus that of
/// non-increasing ones above it, each train weighted by its length, as a longer train's
/// verdict is surer.
fn split_errors(judged: &[Verdict]) -> Vec<usize> {
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
fn best_split(errs: &[usize]) -> usize {
    let min = errs.iter().min().copied().unwrap_or(0);
    errs.iter().position(|&e| e == min).unwrap_or(0)
}

/// The splits the verdicts cannot tell from the best: the trend test misjudges some
/// trains (flat noise reads as a rise now and then), so the count of misjudged trains
/// at the true split is itself uncertain, by about its square root (a Poisson count).
/// Splits that misclassify no more than the best plus 1 + √(its count) trains' weight
/// (a train weighing the mean) are as plausible; returns the lowest and highest.
fn plausible_splits(judged: &[Verdict], errs: &[usize], best: usize) -> (usize, usize) {
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
fn edges(judged: &[Verdict], split: usize, min_side: usize) -> (Option<Verdict>, Option<Verdict>) {
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

/// The answer the edges give, with the range the evidence supports. Each edge is the
/// bound its train proves, its rate's error allowed for (`Verdict::bound`). A point
/// estimate, the edges' middle, promises to be within 30% of A: the middle of a range
/// is within 30% of every point in it only if high ≤ 1.6 low. Wider edges (an
/// application-limited sender: slow trains without congestion, bursts with it) give
/// only the bound the slower side proves, with the range beside it. With one side
/// only, everything (but noise) is on that side of A: A is at least the bound of the
/// fastest non-increasing trains, or at most that of the slowest increasing ones —
/// `min_side` of them, as one train is noise.
/// The range says what the evidence supports: where the verdicts disagree around the
/// split it spans every split as plausible as the best (`plausible_splits`), from the
/// train below the lowest of them to the train above the highest, each widened by its
/// rate's error; never narrower than the edges.
fn answer(
    judged: &[Verdict],
    (lower, upper): (Option<Verdict>, Option<Verdict>),
    (p_lo, p_hi): (usize, usize),
    min_side: usize,
) -> Answer {
    let mut non: Vec<f64> = judged
        .iter()
        .filter(|t| !t.increasing)
        .map(Verdict::bound)
        .collect();
    non.sort_by(|a, b| b.total_cmp(a));
    let mut inc: Vec<f64> = judged
        .iter()
        .filter(|t| t.increasing)
        .map(Verdict::bound)
        .collect();
    inc.sort_by(f64::total_cmp);
    match (lower, upper) {
        (Some(lo), Some(hi)) => {
            let (lo, hi) = (lo.bound(), hi.bound());
            let below = judged[p_lo.max(1) - 1];
            let above = judged[p_hi.min(judged.len() - 1)];
            let low = lo.min(below.rate_bps / (1.0 + below.err));
            let high = hi.max(above.rate_bps * (1.0 + above.err).min(above.bound()));
            if hi <= ESTIMATE_MAX_SPREAD * lo {
                let mid = (lo + hi) / 2.0;
                (AvailKind::Estimate, Some(mid), Some(low), Some(high))
            } else {
                (AvailKind::LowerBound, Some(lo), Some(low), Some(high))
            }
        }
        (Some(_), None) => {
            let lo = non[min_side - 1];
            (AvailKind::LowerBound, Some(lo), Some(lo), None)
        }
        (None, Some(_)) => {
            let hi = inc[min_side - 1];
            (AvailKind::UpperBound, Some(hi), None, Some(hi))
        }
        (None, None) => NO_ANSWER,
    }
}

/// The answer no lower than the delivered rate `floor`, which is A's surest lower
/// bound: an estimate or a bound below it rises to it (an upper bound below it was
/// wrong, and rises too); an upper bound above it gains it as its range's low side,
/// and is an estimate, their midpoint, if the two are close enough (as in `answer`).
fn floored(ans: Answer, floor: Option<f64>) -> Answer {
    let Some(f) = floor else { return ans };
    let up = |x: Option<f64>| x.map(|v| v.max(f));
    match ans {
        (AvailKind::None, ..) => (AvailKind::LowerBound, Some(f), Some(f), None),
        (AvailKind::UpperBound, _, _, Some(hi)) if hi <= ESTIMATE_MAX_SPREAD * f => (
            AvailKind::Estimate,
            Some((f + hi.max(f)) / 2.0),
            Some(f),
            Some(hi.max(f)),
        ),
        (AvailKind::UpperBound, _, _, hi) => (AvailKind::UpperBound, hi, Some(f), hi),
        (kind, est, low, high) => (kind, up(est), Some(low.map_or(f, |l| l.max(f))), up(high)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(rate_mbps: f64, trend: Trend) -> TrainResult {
        TrainResult {
            t0: 0,
            t: 0,
            rate_bps: rate_mbps * 1e6,
            trend,
            segments: 64,
            loss: false,
            err: 0.0,
            out_bps: None,
        }
    }

    #[test]
    fn a_range_too_wide_for_a_point_estimate_is_the_bound_its_slow_side_proves() {
        let mut trains: Vec<TrainResult> = (0..10)
            .map(|i| verdict(70.0 + i as f64, Trend::NonIncreasing))
            .collect();
        trains.extend((0..10).map(|i| verdict(320.0 + i as f64, Trend::Increasing)));
        let (kind, est, low, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        // The edges: the second train on each side of the split (one alone is noise).
        assert_eq!((est, low, high), (Some(78e6), Some(78e6), Some(321e6)));
        // Close sides: an estimate, their midpoint.
        for t in trains.iter_mut().filter(|t| t.trend == Trend::Increasing) {
            t.rate_bps -= 220e6;
        }
        let (kind, est, _, _) = estimate(&trains);
        assert_eq!(kind, AvailKind::Estimate);
        assert_eq!(est, Some(89.5e6));
    }

    #[test]
    fn verdicts_that_disagree_around_the_split_widen_the_range() {
        // Clean sides: the range is the edges. Trains at 95 and 97 rising among
        // non-rising ones up to 99: A may be as low as 95, and the range says so.
        let mut trains: Vec<TrainResult> = (0..20)
            .map(|i| verdict(80.0 + i as f64, Trend::NonIncreasing))
            .collect();
        trains.extend((0..20).map(|i| verdict(101.0 + i as f64, Trend::Increasing)));
        let (_, _, low, high) = estimate(&trains);
        assert_eq!((low, high), (Some(98e6), Some(102e6)));
        trains[15].trend = Trend::Increasing;
        trains[17].trend = Trend::Increasing;
        let (kind, _, low, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::Estimate);
        assert!(
            low.unwrap() <= 95e6 && high.unwrap() >= 101e6,
            "{low:?} {high:?}"
        );
    }

    #[test]
    fn one_stray_train_on_each_side_makes_no_estimate() {
        // Trains of an application-limited BBR sender (100 Mbit/s, 80 ms): trains at
        // their average rate below A, bursts far above it, and between them one train
        // at 121 that showed no rise beside one at 125 that did. Those two alone would
        // make an estimate of 123; the second train on each side leaves only a lower
        // bound.
        let mut trains: Vec<TrainResult> = [6.0, 20.0, 33.0, 46.0, 61.0, 68.0, 86.0, 121.0]
            .iter()
            .map(|&r| verdict(r, Trend::NonIncreasing))
            .collect();
        trains.push(verdict(125.0, Trend::Increasing));
        trains.extend((0..20).map(|i| verdict(5082.0 + 1000.0 * i as f64, Trend::Increasing)));
        let (kind, est, low, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        assert_eq!((est, low, high), (Some(86e6), Some(86e6), Some(5082e6)));
    }
}
