//! The answer the split's edges give (a point, a bound or none, with its range), and
//! that answer floored by what the path delivered.

use super::super::explanation::{FloorRule, Role, Rule};
use super::{Answer, AvailKind, Verdict, NO_ANSWER};

/// The widest range (high/low) a point estimate is given for (see `answer`).
const ESTIMATE_MAX_SPREAD: f64 = 1.6;

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
pub(super) fn answer(
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
pub(super) fn floored(ans: Answer, floor: Option<f64>) -> (Answer, FloorRule) {
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
