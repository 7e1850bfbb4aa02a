//! The shaping policy: the uplink's capacity, each local VM's best-effort cap and the
//! reservations, built and checked on the control path and published in the rule
//! snapshot (`Fib::qos`), so the workers take it with the rules, without a lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::bucket::MAX_BURST_BYTES;

/// At most this many reservations per daemon (each worker sizes its buckets for them
/// once, so a new policy never allocates on a worker).
pub const MAX_RESERVATIONS: usize = 4096;

/// The highest rate accepted, in bit/s (400 Gbit/s).
pub const MAX_RATE_BPS: u64 = 400_000_000_000;

/// A rate and the burst its bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub bps: u64,
    pub burst_bytes: u64,
}

impl Rate {
    /// `bps` with the default burst (`default_burst`).
    pub fn new(bps: u64) -> Self {
        Self {
            bps,
            burst_bytes: default_burst(bps),
        }
    }

    /// Mbit/s (as configured), with an optional burst.
    pub fn from_mbps(mbps: f64, burst_bytes: Option<u64>) -> Result<Self, QosError> {
        if !mbps.is_finite() || mbps <= 0.0 || mbps * 1e6 > MAX_RATE_BPS as f64 {
            return Err(QosError::BadRate(mbps));
        }
        let bps = (mbps * 1e6).round() as u64;
        Ok(Self {
            bps,
            burst_bytes: burst_bytes.unwrap_or_else(|| default_burst(bps)),
        })
    }

    fn check(self) -> Result<Self, QosError> {
        if self.bps == 0 || self.bps > MAX_RATE_BPS {
            return Err(QosError::BadRate(self.bps as f64 / 1e6));
        }
        if !(MIN_BURST_BYTES..=MAX_BURST_BYTES).contains(&self.burst_bytes) {
            return Err(QosError::BadBurst(self.burst_bytes));
        }
        Ok(self)
    }

    /// Mbit/s, for reports.
    pub fn mbps(self) -> f64 {
        self.bps as f64 / 1e6
    }
}

/// The smallest burst: one jumbo frame (a smaller bucket never passes a frame larger
/// than itself).
pub const MIN_BURST_BYTES: u64 = 9018;

/// The burst a rate gets unless told: 10 ms at that rate, at least 64 KiB (TCP through
/// a policer needs a burst of the order of its window to reach the rate).
pub fn default_burst(bps: u64) -> u64 {
    (bps / 8 / 100).clamp(64 * 1024, MAX_BURST_BYTES)
}

/// A reservation: frames from `src` to `dst` (inner MACs) get `rate` on the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub rate: Rate,
}

/// A policy the control path refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QosError {
    #[error("a rate must be above 0 and at most {} Mbit/s, got {0}", MAX_RATE_BPS / 1_000_000)]
    BadRate(f64),
    #[error("a burst must be {MIN_BURST_BYTES}..={MAX_BURST_BYTES} bytes, got {0}")]
    BadBurst(u64),
    #[error("at most {MAX_RESERVATIONS} reservations")]
    TooMany,
    #[error("two reservations for one source and destination pair")]
    Duplicate,
    #[error("a reservation's source and destination must be unicast MACs")]
    NotUnicast,
}

/// The source/destination pair a reservation matches, one key: the first 12 bytes of
/// an Ethernet frame (destination, then source) as two words, two loads per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair(u64, u64);

impl Pair {
    #[inline(always)]
    pub fn new(src: &[u8; 6], dst: &[u8; 6]) -> Self {
        let mut h = [0u8; 12];
        h[..6].copy_from_slice(dst);
        h[6..].copy_from_slice(src);
        Self::of_header(&h)
    }

    /// The pair of a frame that starts with `header`.
    #[inline(always)]
    pub fn of_header(header: &[u8; 12]) -> Self {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3] = *header;
        Self(
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u32::from_le_bytes([b0, b1, b2, b3]) as u64,
        )
    }
}

impl Hash for Pair {
    #[inline(always)]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0 ^ self.1.rotate_left(23));
    }
}

/// One word in, multiplied by a 64-bit odd constant (as `fib::MacHasher`): the keys are
/// the operator's, not the traffic's.
#[derive(Default)]
pub struct PairHasher(u64);

impl Hasher for PairHasher {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    #[inline(always)]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    #[inline(always)]
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 32)
    }
}

/// What the workers enforce on the NIC egress of frames from local VMs (see
/// `qos`'s module doc). Immutable once built; rates are the daemon's, each of
/// `workers` workers enforcing its share.
#[derive(Debug, Clone, Default)]
pub struct QosPolicy {
    uplink: Option<Rate>,
    vm_cap: Option<Rate>,
    reservations: Vec<Reservation>,
    index: HashMap<Pair, u32, BuildHasherDefault<PairHasher>>,
    workers: u32,
}

impl QosPolicy {
    /// Checks every rate and burst and that no pair is reserved twice.
    pub fn new(
        uplink: Option<Rate>,
        vm_cap: Option<Rate>,
        reservations: Vec<Reservation>,
        workers: u32,
    ) -> Result<Self, QosError> {
        let uplink = uplink.map(Rate::check).transpose()?;
        let vm_cap = vm_cap.map(Rate::check).transpose()?;
        if reservations.len() > MAX_RESERVATIONS {
            return Err(QosError::TooMany);
        }
        let mut index = HashMap::default();
        for (i, r) in reservations.iter().enumerate() {
            r.rate.check()?;
            if r.src[0] & 1 != 0 || r.dst[0] & 1 != 0 {
                return Err(QosError::NotUnicast);
            }
            if index.insert(Pair::new(&r.src, &r.dst), i as u32).is_some() {
                return Err(QosError::Duplicate);
            }
        }
        Ok(Self {
            uplink,
            vm_cap,
            reservations,
            index,
            workers: workers.max(1),
        })
    }

    /// The same capacities with other reservations.
    pub fn with_reservations(&self, reservations: Vec<Reservation>) -> Result<Self, QosError> {
        Self::new(self.uplink, self.vm_cap, reservations, self.workers)
    }

    /// The same reservations and per-VM cap with another uplink capacity.
    pub fn with_uplink(&self, uplink: Option<Rate>) -> Result<Self, QosError> {
        Self::new(uplink, self.vm_cap, self.reservations.clone(), self.workers)
    }

    /// Whether the workers shape at all: with no reservation and no per-VM cap, nothing
    /// is shaped and the loop takes its unshaped path (one branch per burst).
    #[inline(always)]
    pub fn is_active(&self) -> bool {
        !self.reservations.is_empty() || self.vm_cap.is_some()
    }

    /// The reservation of frames from `src` to `dst`, by index.
    #[inline(always)]
    pub fn lookup(&self, pair: Pair) -> Option<u32> {
        self.index.get(&pair).copied()
    }

    pub fn uplink(&self) -> Option<Rate> {
        self.uplink
    }

    pub fn vm_cap(&self) -> Option<Rate> {
        self.vm_cap
    }

    pub fn reservations(&self) -> &[Reservation] {
        &self.reservations
    }

    pub fn workers(&self) -> u32 {
        self.workers
    }

    /// The reserved rates' sum, bit/s.
    pub fn reserved_bps(&self) -> u64 {
        self.reservations.iter().map(|r| r.rate.bps).sum()
    }

    /// Whether the reservations add up to more than the uplink: the admission
    /// (the controller) should never let it happen; best-effort then gets nothing.
    pub fn oversubscribed(&self) -> bool {
        self.uplink.is_some_and(|u| self.reserved_bps() > u.bps)
    }

    /// Same capacities and reservations (the worker keeps its buckets' state).
    pub fn same_as(&self, other: &QosPolicy) -> bool {
        self.uplink == other.uplink
            && self.vm_cap == other.vm_cap
            && self.reservations == other.reservations
            && self.workers == other.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 3];

    fn r(src: [u8; 6], dst: [u8; 6], mbps: f64) -> Reservation {
        Reservation {
            src,
            dst,
            rate: Rate::from_mbps(mbps, None).unwrap(),
        }
    }

    #[test]
    fn bad_rates_bursts_and_pairs_are_refused_with_their_reason() {
        assert_eq!(Rate::from_mbps(0.0, None), Err(QosError::BadRate(0.0)));
        assert!(Rate::from_mbps(f64::NAN, None).is_err());
        assert!(Rate::from_mbps(-5.0, None).is_err());
        assert!(Rate::from_mbps(500_000.0, None).is_err());
        let tiny = Rate {
            bps: 1_000_000,
            burst_bytes: 100,
        };
        assert_eq!(
            QosPolicy::new(Some(tiny), None, vec![], 1).unwrap_err(),
            QosError::BadBurst(100)
        );
        let dup = vec![r(A, C, 10.0), r(A, C, 20.0)];
        assert_eq!(
            QosPolicy::new(None, None, dup, 1).unwrap_err(),
            QosError::Duplicate
        );
        let bcast = vec![r(A, [0xff; 6], 10.0)];
        assert_eq!(
            QosPolicy::new(None, None, bcast, 1).unwrap_err(),
            QosError::NotUnicast
        );
        assert!(QosError::BadBurst(1).to_string().contains("9018"));
    }

    #[test]
    fn the_pair_is_directed_and_the_default_burst_is_ten_ms() {
        let p = QosPolicy::new(Some(Rate::new(100_000_000)), None, vec![r(A, C, 40.0)], 2).unwrap();
        assert!(p.is_active());
        assert_eq!(p.lookup(Pair::new(&A, &C)), Some(0));
        assert_eq!(p.lookup(Pair::new(&C, &A)), None);
        assert_eq!(p.reservations()[0].rate.burst_bytes, 64 * 1024);
        assert_eq!(default_burst(1_000_000_000), 1_250_000);
        assert!(!p.oversubscribed());
        let over = p.with_reservations(vec![r(A, C, 101.0)]).unwrap();
        assert!(over.oversubscribed());
        assert!(!QosPolicy::new(Some(Rate::new(1_000_000)), None, vec![], 1)
            .unwrap()
            .is_active());
    }
}
