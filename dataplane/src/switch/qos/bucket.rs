//! A token bucket in exact integer units, driven by the TSC.
//!
//! One token is 1/`tsc_hz` bit: a bucket of rate R bit/s gains exactly R tokens per TSC
//! cycle, and a frame of L bytes costs `L * 8 * tsc_hz` tokens (`Units::cost`). No
//! division and no float on the per-packet path, no rounding drift at any rate.

/// The largest burst a bucket holds, in bytes: with the TSC at up to 10 GHz the
/// bucket's depth (`burst * 8 * tsc_hz` tokens) and a debt as deep stay within `i64`.
pub const MAX_BURST_BYTES: u64 = 64 << 20;

/// The TSC's rate, as the cost of one byte in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    per_byte: i64,
}

impl Units {
    /// For a TSC of `tsc_hz` (at least 1).
    pub fn new(tsc_hz: u64) -> Self {
        Self {
            per_byte: (tsc_hz.clamp(1, 10_000_000_000) * 8) as i64,
        }
    }

    /// What a frame of `bytes` costs.
    #[inline(always)]
    pub fn cost(self, bytes: u32) -> i64 {
        bytes as i64 * self.per_byte
    }
}

/// A token bucket of `rate` bit/s and depth `burst` bytes. Tokens may go below zero by
/// `force` (traffic that passes whatever the bucket holds, such as reserved traffic on
/// the uplink's bucket), down to one depth of debt: the refills pay it back before
/// anything conforms again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: i64,
    depth: i64,
    /// Tokens per TSC cycle: the rate in bit/s.
    rate: i64,
    /// The cycles that refill an empty bucket from full debt: elapsed time past it adds
    /// nothing, so `elapsed * rate` never overflows.
    max_elapsed: u64,
    /// The TSC of the last refill.
    last: u64,
}

impl TokenBucket {
    /// A full bucket of `rate_bps` (at least 1) and `burst_bytes` (at most
    /// `MAX_BURST_BYTES`), first refilled at the first `refill`.
    pub fn new(rate_bps: u64, burst_bytes: u64, units: Units) -> Self {
        let rate = rate_bps.clamp(1, i64::MAX as u64 / 4) as i64;
        let depth = (burst_bytes.min(MAX_BURST_BYTES) as i64).saturating_mul(units.per_byte);
        let depth = depth.min(i64::MAX / 4);
        Self {
            tokens: depth,
            depth,
            rate,
            max_elapsed: (2 * depth / rate) as u64 + 1,
            last: 0,
        }
    }

    /// Adds the tokens earned since the last refill; `now` is the TSC the loop read for
    /// this burst, so a bucket is refilled at most once per burst (a second call with
    /// the same `now` adds nothing).
    #[inline(always)]
    pub fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.last).min(self.max_elapsed);
        if elapsed > 0 {
            self.last = now;
            self.tokens = (self.tokens + elapsed as i64 * self.rate).min(self.depth);
        }
    }

    /// Whether a frame of `cost` tokens conforms.
    #[inline(always)]
    pub fn conforms(&self, cost: i64) -> bool {
        self.tokens >= cost
    }

    /// Takes `cost` tokens (after `conforms` said yes, or by `force`).
    #[inline(always)]
    pub fn take(&mut self, cost: i64) {
        self.tokens -= cost;
    }

    /// Takes `cost` tokens whatever the bucket holds, down to one depth of debt.
    #[inline(always)]
    pub fn force(&mut self, cost: i64) {
        self.tokens = (self.tokens - cost).max(-self.depth);
    }

    /// Tokens held, in bytes (negative: debt).
    pub fn bytes(&self, units: Units) -> i64 {
        self.tokens / units.per_byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 2_500_000_000;

    /// Offers `frame`-byte frames every `gap` cycles for `secs` seconds from `start`,
    /// refilling per frame; returns the bytes that conformed.
    fn offer(b: &mut TokenBucket, start: u64, secs: u64, gap: u64, frame: u32) -> u64 {
        let u = Units::new(HZ);
        let mut sent = 0u64;
        let mut t = start;
        while t < start + secs * HZ {
            b.refill(t);
            if b.conforms(u.cost(frame)) {
                b.take(u.cost(frame));
                sent += frame as u64;
            }
            t += gap;
        }
        sent
    }

    #[test]
    fn conforms_at_its_rate_over_simulated_time() {
        let u = Units::new(HZ);
        for (mbps, frame) in [(1u64, 64u32), (40, 1514), (100, 1514), (9_000, 9000)] {
            let rate = mbps * 1_000_000;
            let burst = 64 * 1024;
            let mut b = TokenBucket::new(rate, burst, u);
            // Offered at twice the rate: the bucket passes its rate plus its burst.
            let gap = (frame as u64 * 8 * HZ) / (2 * rate);
            let sent = offer(&mut b, HZ, 10, gap.max(1), frame);
            let want = rate / 8 * 10 + burst;
            let err = sent.abs_diff(want) as f64 / want as f64;
            assert!(err < 0.002, "{mbps} Mbit/s: sent {sent}, want {want}");
        }
    }

    #[test]
    fn a_full_bucket_passes_one_burst_back_to_back_then_nothing() {
        let u = Units::new(HZ);
        let mut b = TokenBucket::new(10_000_000, 15_140, u);
        b.refill(HZ);
        let mut n = 0;
        while b.conforms(u.cost(1514)) {
            b.take(u.cost(1514));
            n += 1;
        }
        assert_eq!(n, 10);
        // The same burst's TSC again: refilled once per burst, nothing more.
        b.refill(HZ);
        assert!(!b.conforms(u.cost(64)));
        // 1514 bytes at 10 Mbit/s take 1.2112 ms.
        b.refill(HZ + HZ * 12_112 / 10_000_000 - 1);
        assert!(!b.conforms(u.cost(1514)));
        b.refill(HZ + HZ * 12_112 / 10_000_000);
        assert!(b.conforms(u.cost(1514)));
    }

    #[test]
    fn idle_time_fills_the_bucket_only_to_its_depth_and_debt_is_paid_back() {
        let u = Units::new(HZ);
        let mut b = TokenBucket::new(8_000_000, 10_000, u); // 1 byte per µs
        b.refill(u64::MAX / 2); // a very long idle: no overflow, full
        assert_eq!(b.bytes(u), 10_000);
        b.force(u.cost(50_000)); // forced beyond its depth: one depth of debt at most
        assert_eq!(b.bytes(u), -10_000);
        b.refill(u64::MAX / 2 + HZ / 100); // 10 ms: 10,000 bytes earned
        assert_eq!(b.bytes(u), 0);
        assert!(!b.conforms(u.cost(64)));
        // A TSC behind the last refill earns nothing, and does not move the clock back.
        b.refill(5);
        assert_eq!(b.bytes(u), 0);
        b.refill(u64::MAX / 2 + HZ / 100 + HZ / 1000);
        assert_eq!(b.bytes(u), 1000);
    }
}
