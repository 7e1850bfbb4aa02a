//! The self-induced congestion trend test of pathload's SLoPS (Jain and Dovrolis):
//! given the delays of a train's packets, did they increase (the train was sent faster
//! than the path's available bandwidth) or not?

/// pathload's thresholds, and the ±10% grey band around each.
pub const PCT_THRESHOLD: f64 = 0.55;
pub const PDT_THRESHOLD: f64 = 0.4;
pub const GREY_BAND: f64 = 0.10;

/// The verdict of one train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Increasing,
    NonIncreasing,
    /// Inside the grey band, or PCT and PDT disagree.
    Grey,
}

/// PCT and PDT of `delays` after median filtering in groups of ⌊√n⌋; `None` with
/// fewer than 3 groups' worth of samples.
pub fn pct_pdt(delays: &[f64]) -> Option<(f64, f64)> {
    let n = delays.len();
    let g = (n as f64).sqrt().floor() as usize;
    if g < 3 {
        return None;
    }
    let per = n / g;
    let medians: Vec<f64> = (0..g)
        .map(|k| median(&delays[k * per..(k + 1) * per]))
        .collect();
    pct_pdt_of_medians(&medians)
}

/// The median of `v` (the upper one of an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// PCT and PDT of a sequence of group medians; `None` with fewer than 3.
pub fn pct_pdt_of_medians(medians: &[f64]) -> Option<(f64, f64)> {
    let g = medians.len();
    if g < 3 {
        return None;
    }
    let increases = medians.windows(2).filter(|w| w[1] > w[0]).count();
    let pct = increases as f64 / (g - 1) as f64;
    let total: f64 = medians.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    let pdt = if total > 0.0 {
        (medians[g - 1] - medians[0]) / total
    } else {
        0.0
    };
    Some((pct, pdt))
}

fn classify(x: f64, threshold: f64) -> Trend {
    if x > threshold * (1.0 + GREY_BAND) {
        Trend::Increasing
    } else if x < threshold * (1.0 - GREY_BAND) {
        Trend::NonIncreasing
    } else {
        Trend::Grey
    }
}

/// Combines PCT and PDT as pathload does: a decisive metric wins over a grey one;
/// two decisive metrics that disagree make the train grey.
pub fn trend(delays: &[f64]) -> Option<Trend> {
    pct_pdt(delays).map(verdict)
}

/// The trend of a sequence whose groups are given, one median each (a train's burst
/// cycles, `train::judge_cycles`); `None` with fewer than 3.
pub fn trend_of_medians(medians: &[f64]) -> Option<Trend> {
    pct_pdt_of_medians(medians).map(verdict)
}

fn verdict((pct, pdt): (f64, f64)) -> Trend {
    match (classify(pct, PCT_THRESHOLD), classify(pdt, PDT_THRESHOLD)) {
        (a, b) if a == b => a,
        (Trend::Grey, b) => b,
        (a, Trend::Grey) => a,
        _ => Trend::Grey,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_delays_are_increasing_flat_noise_is_not() {
        let rising: Vec<f64> = (0..36)
            .map(|i| 1000.0 + 50.0 * i as f64 + ((i * 7) % 5) as f64)
            .collect();
        assert_eq!(trend(&rising), Some(Trend::Increasing));
        let flat: Vec<f64> = (0..36).map(|i| 1000.0 + (i % 2) as f64 * 3.0).collect();
        assert_eq!(trend(&flat), Some(Trend::NonIncreasing));
        let falling: Vec<f64> = rising.iter().rev().cloned().collect();
        assert_eq!(trend(&falling), Some(Trend::NonIncreasing));
        assert_eq!(trend(&rising[..8]), None, "too few samples for 3 groups");
    }
}
