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
//!
//! `steps` runs them in order: `fleet` leaves out A's grey region, `split` places A
//! among the verdicts, `answer` reads the edges, `topp` may set the estimate; `view`
//! floors the answer and reports it, with its explanation.

use serde::{Deserialize, Serialize};

use super::explanation::{Role, Rule, Split, Topp, ToppOutcome};
use super::train::TrainResult;
use super::trend::Trend;

mod answer;
mod fleet;
mod split;
#[cfg(test)]
mod tests;
mod topp;
mod view;

use answer::answer;
use fleet::grey_region;
use split::{best_split, edges, plausible_splits, split_errors};
use topp::{topp_fit, with_fit};
pub(super) use view::{path_explained, path_view};

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
pub(super) struct Steps {
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

/// Available bandwidth from judged trains (`steps`), before the floor.
pub(super) fn estimate(trains: &[TrainResult]) -> Answer {
    steps(trains).after_topp
}

/// Available bandwidth from judged trains. Sorted by rate, the trains below A should
/// show no rising delay and those above should: the split that misclassifies the
/// fewest trains (`best_split`) places A between the trains around it (`edges`). A
/// side backed by fewer than `max(2, 5%)` trains is noise, and then only a bound is
/// known. Grey trains are ignored. TOPP's fit (`with_fit`) may then set the estimate.
pub(super) fn steps(trains: &[TrainResult]) -> Steps {
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
