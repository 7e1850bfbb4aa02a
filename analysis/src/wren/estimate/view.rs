//! A path's view and its explanation: the answer `steps` gives over the trains of the
//! window (cut at the last change of A), floored by the delivered rate, and how each
//! train took part in it.

use super::super::explanation::{Excluded, Explanation, TrainUse, TrainVerdict};
use super::super::path::{Path, PathKey};
use super::super::train::TrainResult;
use super::super::trend::Trend;
use super::answer::floored;
use super::{steps, Answer, AnswerMbps, PathView};

/// The view of path `k`, with the trains judged within `window_ns` of its last record;
/// `name` renders an endpoint. Its answer is that of `explain`.
pub(in crate::wren) fn path_view(
    k: &PathKey,
    p: &Path,
    window_ns: u64,
    name: &impl Fn(u32) -> String,
) -> PathView {
    let (answer, floor, trains) = assess(p, window_ns);
    view_of(k, p, name, AnswerMbps::of(answer), floor, trains)
}

/// The view of path `k` and how its answer follows from its trains: one computation.
pub(in crate::wren) fn path_explained(
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
fn explain(k: &PathKey, p: &Path, window_ns: u64, name: &impl Fn(u32) -> String) -> Explanation {
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
