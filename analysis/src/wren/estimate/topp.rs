//! TOPP (Melander et al. 2000): the line through the rising trains' dispersion ratios
//! against their rates crosses 1 at A; where it is sure and agrees with the verdicts, it
//! is the estimate.

use super::super::explanation::ToppOutcome;
use super::super::train::expanded;
use super::{Answer, AvailKind, Verdict};

/// TOPP's line through the rising trains: their dispersion ratio ρ = r_in/r_out
/// against their rate r is (r + X)/C above A (and 1 below), so the least-squares line
/// through the trains that expanded beyond their error (`train::expanded`: ρ > 1 + 2e,
/// e that of r_in and r_out together) crosses ρ = 1 at A. Returns A and its standard
/// error (the residuals' spread carried to the crossing), from at least 3 rising
/// trains whose rates differ by a fifth or more:
/// trains all at one rate (bursts at line rate) fix one point of the line, not its
/// slope, and leave A anywhere from the delivered rate to r_out. With the places of
/// the trains the line went through.
pub(super) fn topp_fit(judged: &[Verdict]) -> (Result<(f64, f64), ToppOutcome>, Vec<usize>) {
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
pub(super) fn with_fit(ans: Answer, fit: Result<(f64, f64), ToppOutcome>) -> (Answer, ToppOutcome) {
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
