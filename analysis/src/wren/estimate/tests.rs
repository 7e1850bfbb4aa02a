//! The estimate's rules on hand-made verdicts.

use super::*;
use crate::wren::train::verdict;

/// `n` trains at rates `from`, `from + step`, ... (Mbit/s) that read `trend`.
fn trains_from(from: f64, step: f64, n: usize, trend: Trend) -> Vec<TrainResult> {
    (0..n)
        .map(|i| verdict(from + step * i as f64, trend))
        .collect()
}

#[test]
fn a_range_too_wide_for_a_point_estimate_is_the_bound_its_slow_side_proves() {
    let mut trains = trains_from(70.0, 1.0, 10, Trend::NonIncreasing);
    trains.extend(trains_from(320.0, 1.0, 10, Trend::Increasing));
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
    let mut trains = trains_from(80.0, 1.0, 20, Trend::NonIncreasing);
    trains.extend(trains_from(101.0, 1.0, 20, Trend::Increasing));
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
    let mut trains = trains_from(30.0, 2.0, 10, Trend::NonIncreasing);
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
    let mut trains = trains_from(30.0, 2.0, 10, Trend::NonIncreasing);
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
    trains.extend(trains_from(5082.0, 1000.0, 20, Trend::Increasing));
    let (kind, est, low, high) = estimate(&trains);
    assert_eq!(kind, AvailKind::LowerBound);
    assert_eq!((est, low, high), (Some(86e6), Some(86e6), Some(5082e6)));
}
