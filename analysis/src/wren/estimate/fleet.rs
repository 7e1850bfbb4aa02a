//! A verdict's fleet: the trains sent at its rate, whose verdicts must agree for it to
//! count (pathload's fleets and grey region).

use super::super::train::TrainResult;
use super::super::trend::Trend;
use super::Verdict;

/// Leaves out the verdicts in A's grey region, returning their places. The trend test
/// has little power near A: a train a little above it rises by less than its delays'
/// noise (bursty cross traffic queued ahead of a few of its packets), so trains sent
/// at one rate near A read now as rising, now not, now grey (pathload's grey region,
/// where A itself varies at the trains' time scale). Such a train proves nothing on
/// its own: a verdict counts only where two thirds of the trains at its rate, within
/// its rate's error, agree with it by weight, grey ones counted as not agreeing (its
/// fleet, in pathload's terms; it counts itself). The rest say A is near their rate,
/// which the range around the split shows.
pub(super) fn grey_region(judged: &mut Vec<Verdict>, all: &[TrainResult]) -> Vec<usize> {
    let fleets = Fleets::of(all);
    let mut grey = Vec::new();
    judged.retain(|v| {
        let (agree, fleet) = fleets.at(v.rate_bps, v.rate_bps * v.err, v.increasing);
        let counts = 3 * agree >= 2 * fleet;
        if !counts {
            grey.push(v.idx);
        }
        counts
    });
    grey
}

/// The trains sorted by rate, with running sums of their segments (all, rising, not
/// rising), so that the weight of the trains within a band of rates, and of those
/// that read one way, is two binary searches away.
struct Fleets {
    rates: Vec<f64>,
    /// Segments of the first i trains: all, rising, not rising (grey ones only in all).
    sums: Vec<[usize; 3]>,
}

impl Fleets {
    fn of(all: &[TrainResult]) -> Self {
        let mut by_rate: Vec<&TrainResult> = all.iter().collect();
        by_rate.sort_by(|a, b| a.rate_bps.total_cmp(&b.rate_bps));
        let mut sums = Vec::with_capacity(by_rate.len() + 1);
        let mut s = [0usize; 3];
        sums.push(s);
        for t in &by_rate {
            s[0] += t.segments;
            match t.trend {
                Trend::Increasing => s[1] += t.segments,
                Trend::NonIncreasing => s[2] += t.segments,
                Trend::Grey => {}
            }
            sums.push(s);
        }
        let rates = by_rate.iter().map(|t| t.rate_bps).collect();
        Self { rates, sums }
    }

    /// The weight of the trains within `band` of `rate` that read `increasing`, and
    /// of all trains within it.
    fn at(&self, rate: f64, band: f64, increasing: bool) -> (usize, usize) {
        let lo = self.rates.partition_point(|&r| r < rate - band);
        let hi = self.rates.partition_point(|&r| r <= rate + band);
        let (a, b) = (self.sums[lo], self.sums[hi]);
        let side = if increasing { 1 } else { 2 };
        (b[side] - a[side], b[0] - a[0])
    }
}
