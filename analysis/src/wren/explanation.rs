//! What an explanation of a path's answer holds (`wrenvnet analyze --explain`, `GET
//! /paths/{src}/{dst}`): every train and what became of it, the split of the decisive
//! ones by rate, the rule the answer follows, TOPP's fit and the delivered-rate floor,
//! each with the answer after it. The estimate (`estimate`) fills it in from the same
//! steps that give the path's answer.

use serde::{Deserialize, Serialize};

use super::estimate::AnswerMbps;

/// How a path's answer follows from its trains, as the estimate computed it: every
/// train the path holds and what became of it, the split of the decisive ones by
/// rate, the rule the answer follows, TOPP's fit and the delivered-rate floor, with
/// the answer after each step. The path's view reports `answer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub src: String,
    pub dst: String,
    /// The window of trains behind the answer (s), ending at the path's last record.
    pub window_s: f64,
    /// When the path's first and last record were seen (record time, ns).
    pub first_ns: u64,
    pub last_ns: u64,
    /// Every train the path holds, in the order judged.
    pub trains: Vec<TrainUse>,
    /// When the trains since the last change of A they prove began (record time, ns;
    /// `None`: no change within the window); older evidence, trains and the delivered
    /// rate alike, is not used.
    pub change_ns: Option<u64>,
    /// The best split of the decisive trains by rate, if any was decisive.
    pub split: Option<Split>,
    /// How the verdicts give an answer, and that answer.
    pub rule: Rule,
    pub from_verdicts: AnswerMbps,
    /// TOPP's line through the rising trains' dispersion, and the answer after it.
    pub topp: Topp,
    pub after_topp: AnswerMbps,
    /// What the path's flows delivered together (`delivered`), and what it did.
    pub floor_mbps: Option<f64>,
    pub floor_rule: FloorRule,
    /// The answer, as the path's view reports it.
    pub answer: AnswerMbps,
}

/// One train (or one burst of a train) and what the estimate made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainUse {
    /// When its first and last segment were sent (record time, ns).
    pub t0_ns: u64,
    pub t_ns: u64,
    /// One burst of a train, judged on its own.
    pub burst: bool,
    pub segments: usize,
    /// The path's sending rate over it (r_in) and its relative error.
    pub rate_in_mbps: f64,
    pub rate_err: f64,
    /// What the bottleneck let through of it (r_out, from its ACKs' spacing), with its
    /// relative error, where its ACKs could tell.
    pub rate_out_mbps: Option<f64>,
    pub rate_out_err: Option<f64>,
    pub verdict: TrainVerdict,
    /// Why the estimate did not weigh it; `None` if it did.
    pub excluded: Option<Excluded>,
    /// What it proves of A (Mbit/s), its errors allowed for: at most this if it rose,
    /// at least this if not.
    pub bound_mbps: Option<f64>,
    /// Below the best split (A above its rate) or above it.
    pub below_split: Option<bool>,
    /// Its verdict disagrees with its side of the split.
    pub misjudged: bool,
    /// What the answer took from it.
    pub roles: Vec<Role>,
    /// One of the points TOPP's line was fitted through.
    pub in_topp_fit: bool,
}

/// A train's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainVerdict {
    /// Its delays rose: sent faster than A.
    Rose,
    /// Its delays did not rise: A is at least its rate.
    DidNotRise,
    /// It lost a segment: sent faster than A.
    Lost,
    /// The trend test could not tell (PCT and PDT in the grey band, or disagreeing).
    Grey,
}

/// Why a train is not weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Excluded {
    /// Its verdict is grey.
    Grey,
    /// It was judged longer than the window before the path's last record.
    OutsideWindow,
    /// Newer trains proved that A changed since it was sent (`since_change`).
    BeforeChange,
    /// Trains at its rate disagree with its verdict: A's grey region (`grey_region`).
    GreyRegion,
}

/// What the answer took from a train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The second non-rising train below the split: A is at least its bound.
    LowerEdge,
    /// The second rising train above the split: A is at most its bound.
    UpperEdge,
    /// The train below the lowest plausible split: the range's low end.
    RangeLow,
    /// The train above the highest plausible split: the range's high end.
    RangeHigh,
    /// With one side only, the bound of the `min_side`-th train of that side.
    OneSidedBound,
}

/// The best split of the decisive trains sorted by rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Split {
    /// Decisive trains below and above it.
    pub below: usize,
    pub above: usize,
    /// The rates it falls between (Mbit/s): the fastest below, the slowest above.
    pub between_mbps: (Option<f64>, Option<f64>),
    /// The weight (segments) of trains whose verdict disagrees with their side, and
    /// of all decisive trains.
    pub misjudged_weight: usize,
    pub total_weight: usize,
    /// Trains a side needs to count (one alone is noise).
    pub min_side: usize,
    /// Splits as plausible as the best, as decisive trains below them (lowest, highest).
    pub plausible: (usize, usize),
}

/// How the verdicts give an answer (`answer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// No decisive train.
    NoDecisiveTrain,
    /// Neither side of the split has `min_side` trains.
    SidesTooThin,
    /// The edges are within 1.6× of each other: an estimate, their middle.
    EdgesClose,
    /// The edges are farther apart: the lower bound the lower edge proves.
    EdgesWide,
    /// Only non-rising trains count: a lower bound.
    OnlyNotRising,
    /// Only rising trains count: an upper bound.
    OnlyRising,
}

impl Rule {
    pub fn describe(self) -> &'static str {
        match self {
            Rule::NoDecisiveTrain => "no train was decisive: no answer",
            Rule::SidesTooThin => {
                "neither side of the split has enough trains (one alone is noise): no answer"
            }
            Rule::EdgesClose => {
                "the edges are within 1.6x of each other: an estimate, their middle; the range spans the plausible splits"
            }
            Rule::EdgesWide => {
                "the edges are more than 1.6x apart: only the lower bound the lower edge proves, the range beside it"
            }
            Rule::OnlyNotRising => {
                "only trains that did not rise count: a lower bound, the min_side-th fastest of them"
            }
            Rule::OnlyRising => {
                "only trains that rose count: an upper bound, the min_side-th slowest of them"
            }
        }
    }
}

/// TOPP's fit (`topp_fit`, `with_fit`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Topp {
    /// Rising trains whose dispersion exceeded their error: the line's points.
    pub points: usize,
    /// Where the line crosses r_in/r_out = 1, and its standard error (Mbit/s).
    pub a_mbps: Option<f64>,
    pub sd_mbps: Option<f64>,
    pub outcome: ToppOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToppOutcome {
    /// Fewer than 3 points.
    TooFewPoints,
    /// The points' rates are within a fifth of each other: no slope.
    RatesTooClose,
    /// The line does not rise, or crosses 1 at no positive rate.
    NoCrossing,
    /// Two standard errors exceed 15% of the crossing.
    Unsure,
    /// The crossing is outside the range the verdicts prove (or they prove no low side).
    OutsideRange,
    /// The crossing is the estimate.
    Applied,
}

impl ToppOutcome {
    pub fn describe(self) -> &'static str {
        match self {
            ToppOutcome::TooFewPoints => {
                "fewer than 3 rising trains expanded beyond their error: no line"
            }
            ToppOutcome::RatesTooClose => {
                "the expanding trains' rates are within a fifth of each other: no slope"
            }
            ToppOutcome::NoCrossing => "the line does not cross r_in/r_out = 1 at a positive rate",
            ToppOutcome::Unsure => "its two standard errors exceed 15% of the crossing: not used",
            ToppOutcome::OutsideRange => {
                "the crossing is outside the range the verdicts prove: not used"
            }
            ToppOutcome::Applied => {
                "the crossing is the estimate, its range the verdicts' within two standard errors"
            }
        }
    }
}

/// What the delivered-rate floor did to the answer (`floored`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorRule {
    /// No floor: nothing delivered in a clean slot or a span.
    NoFloor,
    /// No answer before: the floor is a lower bound.
    FloorIsTheBound,
    /// An upper bound within 1.6x of the floor: an estimate, their middle.
    UpperBoundCloseToFloor,
    /// An upper bound farther above: the floor is its range's low side.
    FloorIsTheLowSide,
    /// The answer, or its range, was below the floor and rose to it.
    Raised,
    /// The answer was above the floor already.
    Below,
}

impl FloorRule {
    pub fn describe(self) -> &'static str {
        match self {
            FloorRule::NoFloor => "no delivered-rate floor yet",
            FloorRule::FloorIsTheBound => "no answer from the trains: the floor is a lower bound",
            FloorRule::UpperBoundCloseToFloor => {
                "the upper bound is within 1.6x of the floor: an estimate, their middle"
            }
            FloorRule::FloorIsTheLowSide => "the floor is the upper bound's low side",
            FloorRule::Raised => "what was below the floor rose to it",
            FloorRule::Below => "the floor is below the answer: nothing changes",
        }
    }
}
