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
//!
//! The window is cut short when A changes (a throttle, cross traffic coming or going):
//! once `change` dates a change (kept per path, `Path::change`), only the trains sent
//! since, and what was delivered since, make the answer; the view follows a change
//! within the trains that prove it, not the window. How the answer follows from the
//! trains is `Explanation`, from the same steps.

use serde::{Deserialize, Serialize};

use super::explanation::{
    Excluded, Explanation, FloorRule, Role, Rule, Split, Topp, ToppOutcome, TrainUse, TrainVerdict,
};
use super::path::{Path, PathKey};
use super::train::{expanded, TrainResult};
use super::trend::Trend;

/// The widest range (high/low) a point estimate is given for (see `answer`).
const ESTIMATE_MAX_SPREAD: f64 = 1.6;

/// What kind of available-bandwidth answer a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
pub(super) type Answer = (AvailKind, Option<f64>, Option<f64>, Option<f64>);

const NO_ANSWER: Answer = (AvailKind::None, None, None, None);

/// An answer in Mbit/s, as a view and an explanation report it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerMbps {
    pub kind: AvailKind,
    pub mbps: Option<f64>,
    pub low_mbps: Option<f64>,
    pub high_mbps: Option<f64>,
}

impl AnswerMbps {
    fn of((kind, est, low, high): Answer) -> Self {
        let m = |x: Option<f64>| x.map(|v| v / 1e6);
        Self {
            kind,
            mbps: m(est),
            low_mbps: m(low),
            high_mbps: m(high),
        }
    }
}

/// A decisive train verdict as the estimate weighs it.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    /// Its place in the trains the estimate was given.
    idx: usize,
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
    /// what the bottleneck let through of it. r_out is bytes over an ACK span that may
    /// be too long by e of itself, so it is at most r_out/(1 − e): nothing once e
    /// reaches 1 (a span that may be all error), not r_out·(1 + e), which a burst
    /// whose ACKs strayed far would make a bound below A.
    fn bound(&self) -> f64 {
        if self.increasing {
            let by_out = self.out.map_or(f64::INFINITY, |(o, e)| {
                if e < 1.0 {
                    o / (1.0 - e)
                } else {
                    f64::INFINITY
                }
            });
            (self.rate_bps * (1.0 + self.err)).min(by_out)
        } else {
            self.rate_bps / (1.0 + self.err)
        }
    }
}

/// The estimate's steps over a set of trains: the answer after each, and what each
/// took from which train (by its place in the set).
struct Steps {
    /// Decisive verdicts, sorted by rate.
    judged: Vec<Verdict>,
    /// Places of the verdicts left out as in A's grey region (`grey_region`).
    grey_fleet: Vec<usize>,
    split: Option<Split>,
    rule: Rule,
    from_verdicts: Answer,
    roles: Vec<(usize, Role)>,
    topp: Topp,
    /// Places of the trains TOPP's line went through.
    fit_points: Vec<usize>,
    after_topp: Answer,
}

/// The view of path `k`, with the trains judged within `window_ns` of its last record;
/// `name` renders an endpoint. Its answer is that of `explain`.
pub(super) fn path_view(
    k: &PathKey,
    p: &Path,
    window_ns: u64,
    name: &impl Fn(u32) -> String,
) -> PathView {
    let (answer, floor, trains) = assess(p, window_ns);
    view_of(k, p, name, AnswerMbps::of(answer), floor, trains)
}

/// The view of path `k` and how its answer follows from its trains: one computation.
pub(super) fn path_explained(
    k: &PathKey,
    p: &Path,
    window_ns: u64,
    name: &impl Fn(u32) -> String,
) -> (PathView, Explanation) {
    let ex = explain(k, p, window_ns, name);
    let recent = ex
        .trains
        .iter()
        .filter(|t| {
            !matches!(
                t.excluded,
                Some(Excluded::OutsideWindow | Excluded::BeforeChange)
            )
        })
        .count();
    let floor = ex.floor_mbps.map(|f| f * 1e6);
    (view_of(k, p, name, ex.answer, floor, recent), ex)
}

fn view_of(
    k: &PathKey,
    p: &Path,
    name: &impl Fn(u32) -> String,
    ans: AnswerMbps,
    floor: Option<f64>,
    trains: usize,
) -> PathView {
    let has_rtt = !p.rtt.is_empty();
    let dur = (p.last_t.saturating_sub(p.first_t)) as f64 / 1e9;
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
        avail_bw_mbps: ans.mbps,
        avail_bw_low_mbps: ans.low_mbps,
        avail_bw_high_mbps: ans.high_mbps,
        avail_bw_kind: ans.kind,
        delivered_floor_mbps: floor.map(|x| x / 1e6),
        trains,
    }
}

/// The trains judged within `window_ns` of the path's last record and sent since the
/// last change of A they proved (`Path::change`), with their places among all the path
/// holds, and that change: the delivered-rate floor, too, counts only what was
/// delivered after it.
fn recent_trains(p: &Path, window_ns: u64) -> (Vec<TrainResult>, Vec<usize>, Option<u64>) {
    let cut = p.change;
    let (recent, places) = p
        .trains
        .iter()
        .enumerate()
        .filter(|(_, tr)| p.last_t.saturating_sub(tr.t) <= window_ns)
        .filter(|(_, tr)| cut.is_none_or(|c| tr.t0 >= c))
        .map(|(i, tr)| (*tr, i))
        .unzip();
    (recent, places, cut)
}

/// A path's answer, its floor and the trains behind it: what the view reports.
fn assess(p: &Path, window_ns: u64) -> (Answer, Option<f64>, usize) {
    let (recent, _, cut) = recent_trains(p, window_ns);
    let floor = p.delivered.floor(p.last_t, window_ns, cut);
    let (ans, _) = floored(steps(&recent).after_topp, floor);
    (ans, floor, recent.len())
}

/// How path `k`'s answer follows from its trains (`Explanation`), from the steps
/// `assess` takes.
pub(super) fn explain(
    k: &PathKey,
    p: &Path,
    window_ns: u64,
    name: &impl Fn(u32) -> String,
) -> Explanation {
    let (recent, places, cut) = recent_trains(p, window_ns);
    let floor = p.delivered.floor(p.last_t, window_ns, cut);
    let st = steps(&recent);
    let (ans, floor_rule) = floored(st.after_topp, floor);
    let mbps = |x: f64| x / 1e6;
    let mut trains: Vec<TrainUse> = p
        .trains
        .iter()
        .map(|t| TrainUse {
            t0_ns: t.t0,
            t_ns: t.t,
            burst: t.burst,
            segments: t.segments,
            rate_in_mbps: mbps(t.rate_bps),
            rate_err: t.err,
            rate_out_mbps: t.out_bps.map(|(o, _)| mbps(o)),
            rate_out_err: t.out_bps.map(|(_, e)| e),
            verdict: match (t.trend, t.loss) {
                (_, true) => TrainVerdict::Lost,
                (Trend::Increasing, _) => TrainVerdict::Rose,
                (Trend::NonIncreasing, _) => TrainVerdict::DidNotRise,
                (Trend::Grey, _) => TrainVerdict::Grey,
            },
            excluded: Some(if t.trend == Trend::Grey {
                Excluded::Grey
            } else {
                Excluded::OutsideWindow
            }),
            bound_mbps: None,
            below_split: None,
            misjudged: false,
            roles: Vec::new(),
            in_topp_fit: false,
        })
        .collect();
    if let Some(c) = cut {
        for t in trains.iter_mut().filter(|t| t.t0_ns < c) {
            if p.last_t.saturating_sub(t.t_ns) <= window_ns {
                t.excluded = Some(Excluded::BeforeChange);
            }
        }
    }
    for &i in &places {
        if trains[i].verdict == TrainVerdict::Grey {
            continue;
        }
        trains[i].excluded = None;
    }
    for &i in &st.grey_fleet {
        trains[places[i]].excluded = Some(Excluded::GreyRegion);
    }
    let below = st.split.map_or(0, |s| s.below);
    for (rank, v) in st.judged.iter().enumerate() {
        let t = &mut trains[places[v.idx]];
        t.bound_mbps = Some(mbps(v.bound()));
        t.below_split = Some(rank < below);
        t.misjudged = (rank < below) == v.increasing;
    }
    for &(i, role) in &st.roles {
        trains[places[i]].roles.push(role);
    }
    for &i in &st.fit_points {
        trains[places[i]].in_topp_fit = true;
    }
    Explanation {
        src: name(k.src),
        dst: name(k.dst),
        window_s: window_ns as f64 / 1e9,
        first_ns: p.first_t,
        last_ns: p.last_t,
        trains,
        change_ns: cut,
        split: st.split,
        rule: st.rule,
        from_verdicts: AnswerMbps::of(st.from_verdicts),
        topp: st.topp,
        after_topp: AnswerMbps::of(st.after_topp),
        floor_mbps: floor.map(mbps),
        floor_rule,
        answer: AnswerMbps::of(ans),
    }
}

/// Available bandwidth from judged trains (`steps`), before the floor.
pub(super) fn estimate(trains: &[TrainResult]) -> Answer {
    steps(trains).after_topp
}

/// Available bandwidth from judged trains. Sorted by rate, the trains below A should
/// show no rising delay and those above should: the split that misclassifies the
/// fewest trains (`best_split`) places A between the trains around it (`edges`). A
/// side backed by fewer than `max(2, 5%)` trains is noise, and then only a bound is
/// known. Grey trains are ignored. TOPP's fit (`with_fit`) may then set the estimate.
fn steps(trains: &[TrainResult]) -> Steps {
    let mut judged: Vec<Verdict> = trains
        .iter()
        .enumerate()
        .filter(|(_, t)| t.trend != Trend::Grey)
        .map(|(idx, t)| Verdict {
            idx,
            rate_bps: t.rate_bps,
            increasing: t.trend == Trend::Increasing,
            weight: t.segments,
            err: t.err,
            out: t.out_bps,
        })
        .collect();
    // TOPP's points are judged by their dispersion, not by their fleet's verdicts.
    let before_fleets = judged.clone();
    let grey_fleet = grey_region(&mut judged, trains);
    let topp_none = Topp {
        points: 0,
        a_mbps: None,
        sd_mbps: None,
        outcome: ToppOutcome::TooFewPoints,
    };
    if judged.is_empty() {
        return Steps {
            judged,
            grey_fleet,
            split: None,
            rule: Rule::NoDecisiveTrain,
            from_verdicts: NO_ANSWER,
            roles: Vec::new(),
            topp: topp_none,
            fit_points: Vec::new(),
            after_topp: NO_ANSWER,
        };
    }
    judged.sort_by(|a, b| a.rate_bps.total_cmp(&b.rate_bps));
    let errs = split_errors(&judged);
    let split = best_split(&errs);
    let min_side = 2usize.max(judged.len().div_ceil(20));
    let (lower, upper) = edges(&judged, split, min_side);
    let plausible = plausible_splits(&judged, &errs, split);
    let (ans, rule, roles) = answer(&judged, (lower, upper), plausible, min_side);
    let (fit, fit_points) = topp_fit(&before_fleets);
    let (after_topp, outcome) = with_fit(ans, fit);
    let mb = |v: &Verdict| v.rate_bps / 1e6;
    Steps {
        split: Some(Split {
            below: split,
            above: judged.len() - split,
            between_mbps: (
                split.checked_sub(1).map(|i| mb(&judged[i])),
                judged.get(split).map(mb),
            ),
            misjudged_weight: errs[split],
            total_weight: judged.iter().map(|t| t.weight).sum(),
            min_side,
            plausible,
        }),
        rule,
        from_verdicts: ans,
        roles,
        topp: Topp {
            points: fit_points.len(),
            a_mbps: fit.ok().map(|(a, _)| a / 1e6),
            sd_mbps: fit.ok().map(|(_, sd)| sd / 1e6),
            outcome,
        },
        fit_points,
        after_topp,
        judged,
        grey_fleet,
    }
}

/// Leaves out the verdicts in A's grey region, returning their places. The trend test
/// has little power near A: a train a little above it rises by less than its delays'
/// noise (bursty cross traffic queued ahead of a few of its packets), so trains sent
/// at one rate near A read now as rising, now not, now grey (pathload's grey region,
/// where A itself varies at the trains' time scale). Such a train proves nothing on
/// its own: a verdict counts only where two thirds of the trains at its rate, within
/// its rate's error, agree with it by weight, grey ones counted as not agreeing (its
/// fleet, in pathload's terms; it counts itself). The rest say A is near their rate,
/// which the range around the split shows.
fn grey_region(judged: &mut Vec<Verdict>, all: &[TrainResult]) -> Vec<usize> {
    let agrees: Vec<bool> = judged
        .iter()
        .map(|v| {
            let band = v.rate_bps * v.err;
            let (same, fleet) = all
                .iter()
                .filter(|o| (o.rate_bps - v.rate_bps).abs() <= band)
                .fold((0, 0), |(s, f), o| {
                    let agree = o.trend
                        == if v.increasing {
                            Trend::Increasing
                        } else {
                            Trend::NonIncreasing
                        };
                    (s + if agree { o.segments } else { 0 }, f + o.segments)
                });
            3 * same >= 2 * fleet
        })
        .collect();
    let mut grey = Vec::new();
    let mut keep = agrees.iter();
    judged.retain(|v| {
        let k = *keep.next().expect("one flag per verdict");
        if !k {
            grey.push(v.idx);
        }
        k
    });
    grey
}

/// TOPP's line through the rising trains: their dispersion ratio ρ = r_in/r_out
/// against their rate r is (r + X)/C above A (and 1 below), so the least-squares line
/// through the trains that expanded beyond their error (`train::expanded`: ρ > 1 + 2e,
/// e that of r_in and r_out together) crosses ρ = 1 at A. Returns A and its standard
/// error (the residuals' spread carried to the crossing), from at least 3 rising
/// trains whose rates differ by a fifth or more:
/// trains all at one rate (bursts at line rate) fix one point of the line, not its
/// slope, and leave A anywhere from the delivered rate to r_out. With the places of
/// the trains the line went through.
fn topp_fit(judged: &[Verdict]) -> (Result<(f64, f64), ToppOutcome>, Vec<usize>) {
    let used: Vec<(usize, f64, f64)> = judged
        .iter()
        .filter(|t| t.increasing)
        .filter_map(|t| {
            let out = t.out.filter(|&o| expanded(t.rate_bps, t.err, o, 1.0))?;
            Some((t.idx, t.rate_bps, t.rate_bps / out.0))
        })
        .collect();
    let places = used.iter().map(|p| p.0).collect();
    let pts: Vec<(f64, f64)> = used.iter().map(|p| (p.1, p.2)).collect();
    let n = pts.len() as f64;
    let (x_min, x_max) = pts
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if pts.len() < 3 {
        return (Err(ToppOutcome::TooFewPoints), places);
    }
    if x_max < 1.2 * x_min {
        return (Err(ToppOutcome::RatesTooClose), places);
    }
    let (mx, my) = pts
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.0 / n, b + p.1 / n));
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = sxy / sxx;
    if b <= 0.0 || !b.is_finite() {
        return (Err(ToppOutcome::NoCrossing), places);
    }
    let a = mx + (1.0 - my) / b;
    let ss: f64 = pts
        .iter()
        .map(|p| (p.1 - my - b * (p.0 - mx)).powi(2))
        .sum();
    let s2 = ss / (n - 2.0).max(1.0);
    let sd = (s2 / (b * b) * (1.0 / n + (a - mx).powi(2) / sxx)).sqrt();
    if a > 0.0 {
        (Ok((a, sd)), places)
    } else {
        (Err(ToppOutcome::NoCrossing), places)
    }
}

/// The answer with TOPP's crossing where trains on both sides of A bracket it (a lower
/// side to the range), the fit is sure (two standard errors within 15% of it) and it
/// agrees with what the trains prove (inside the range): an estimate there, its range
/// the part of the evidence's range within two standard errors.
fn with_fit(ans: Answer, fit: Result<(f64, f64), ToppOutcome>) -> (Answer, ToppOutcome) {
    let (a, sd) = match fit {
        Ok(f) => f,
        Err(why) => return (ans, why),
    };
    if 2.0 * sd > 0.15 * a {
        return (ans, ToppOutcome::Unsure);
    }
    let (_, _, low, high) = ans;
    let inside = low.is_some_and(|l| l <= a) && high.is_none_or(|h| a <= h);
    if !inside {
        return (ans, ToppOutcome::OutsideRange);
    }
    let lo = low.map_or(a - 2.0 * sd, |l| l.max(a - 2.0 * sd));
    let hi = high.map_or(a + 2.0 * sd, |h| h.min(a + 2.0 * sd));
    (
        (AvailKind::Estimate, Some(a), Some(lo), Some(hi)),
        ToppOutcome::Applied,
    )
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
) -> (Answer, Rule, Vec<(usize, Role)>) {
    let mut non: Vec<(f64, usize)> = judged
        .iter()
        .filter(|t| !t.increasing)
        .map(|t| (t.bound(), t.idx))
        .collect();
    non.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut inc: Vec<(f64, usize)> = judged
        .iter()
        .filter(|t| t.increasing)
        .map(|t| (t.bound(), t.idx))
        .collect();
    inc.sort_by(|a, b| a.0.total_cmp(&b.0));
    match (lower, upper) {
        (Some(lo_t), Some(hi_t)) => {
            let (lo, hi) = (lo_t.bound(), hi_t.bound());
            let below = judged[p_lo.max(1) - 1];
            let above = judged[p_hi.min(judged.len() - 1)];
            let below_low = below.rate_bps / (1.0 + below.err);
            // A rising train's bound is the tighter of its rate and its output rate.
            let above_high = if above.increasing {
                above.bound()
            } else {
                above.rate_bps * (1.0 + above.err)
            };
            let mut roles = vec![(lo_t.idx, Role::LowerEdge), (hi_t.idx, Role::UpperEdge)];
            if below_low < lo {
                roles.push((below.idx, Role::RangeLow));
            }
            if above_high > hi {
                roles.push((above.idx, Role::RangeHigh));
            }
            // Edges that cross (a train's error allowed for on each side) still hold
            // A between them.
            let (low, high) = (lo.min(hi).min(below_low), hi.max(lo).max(above_high));
            if hi <= ESTIMATE_MAX_SPREAD * lo {
                let mid = (lo + hi) / 2.0;
                let ans = (AvailKind::Estimate, Some(mid), Some(low), Some(high));
                (ans, Rule::EdgesClose, roles)
            } else {
                let ans = (AvailKind::LowerBound, Some(lo), Some(low), Some(high));
                (ans, Rule::EdgesWide, roles)
            }
        }
        (Some(_), None) => {
            let (lo, i) = non[min_side - 1];
            let ans = (AvailKind::LowerBound, Some(lo), Some(lo), None);
            (ans, Rule::OnlyNotRising, vec![(i, Role::OneSidedBound)])
        }
        (None, Some(_)) => {
            let (hi, i) = inc[min_side - 1];
            let ans = (AvailKind::UpperBound, Some(hi), None, Some(hi));
            (ans, Rule::OnlyRising, vec![(i, Role::OneSidedBound)])
        }
        (None, None) => (NO_ANSWER, Rule::SidesTooThin, Vec::new()),
    }
}

/// The answer no lower than the delivered rate `floor`, which is A's surest lower
/// bound: an estimate or a bound below it rises to it (an upper bound below it was
/// wrong, and rises too); an upper bound above it gains it as its range's low side,
/// and is an estimate, their midpoint, if the two are close enough (as in `answer`).
fn floored(ans: Answer, floor: Option<f64>) -> (Answer, FloorRule) {
    let Some(f) = floor else {
        return (ans, FloorRule::NoFloor);
    };
    let up = |x: Option<f64>| x.map(|v| v.max(f));
    match ans {
        (AvailKind::None, ..) => (
            (AvailKind::LowerBound, Some(f), Some(f), None),
            FloorRule::FloorIsTheBound,
        ),
        (AvailKind::UpperBound, _, _, Some(hi)) if hi <= ESTIMATE_MAX_SPREAD * f => (
            (
                AvailKind::Estimate,
                Some((f + hi.max(f)) / 2.0),
                Some(f),
                Some(hi.max(f)),
            ),
            FloorRule::UpperBoundCloseToFloor,
        ),
        (AvailKind::UpperBound, _, _, hi) => (
            (AvailKind::UpperBound, hi, Some(f), hi),
            FloorRule::FloorIsTheLowSide,
        ),
        (kind, est, low, high) => {
            let out = (kind, up(est), Some(low.map_or(f, |l| l.max(f))), up(high));
            let rule = if out == (kind, est, low, high) {
                FloorRule::Below
            } else {
                FloorRule::Raised
            };
            (out, rule)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wren::train::verdict;

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
    fn a_line_rate_burst_bounds_the_range_by_what_the_bottleneck_let_through() {
        // Trains below A at 30-49 that did not rise, bursts at 10 Gbit/s that rose and
        // came out at 100: the edges are too far apart for an estimate, and the range's
        // high side is the bursts' output rate, not their line rate.
        let mut trains: Vec<TrainResult> = (0..10)
            .map(|i| verdict(30.0 + 2.0 * i as f64, Trend::NonIncreasing))
            .collect();
        trains.extend((0..10).map(|_| TrainResult {
            out_bps: Some((100e6, 0.02)),
            ..verdict(10_000.0, Trend::Increasing)
        }));
        let (kind, _, _, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        let high = high.unwrap();
        assert!((100e6..=103e6).contains(&high), "{high}");
    }

    #[test]
    fn trains_at_one_rate_whose_verdicts_disagree_prove_no_bound_there() {
        // Clear trains up to 48 that did not rise; 40 trains at 54.5-55.5 (5% error
        // each) of which 18 did not rise, 10 rose and 12 are grey: A's grey region,
        // where A itself varies. Without the fleets, 18 to 10 would put A above 52.
        let mut trains: Vec<TrainResult> = (0..10)
            .map(|i| verdict(30.0 + 2.0 * i as f64, Trend::NonIncreasing))
            .collect();
        for i in 0..40 {
            let trend = match i % 4 {
                0 | 2 if i < 36 => Trend::NonIncreasing,
                1 => Trend::Increasing,
                _ => Trend::Grey,
            };
            trains.push(TrainResult {
                err: 0.05,
                ..verdict(54.5 + (i % 10) as f64 / 10.0, trend)
            });
        }
        let (kind, v, _, _) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        let v = v.unwrap();
        assert!((44e6..=48e6).contains(&v), "{v}");
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
