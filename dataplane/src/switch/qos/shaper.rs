//! A worker's buckets for the policy in force, and the per-frame verdict.

use super::bucket::{TokenBucket, Units};
use super::policy::{Pair, QosPolicy, Rate, MAX_RESERVATIONS, MIN_BURST_BYTES};
use crate::counters::Counter;
use crate::switch::counters::{
    ClassCounters, DropCause, QosClass, SwitchCounters, QOS_CLASS_COUNT,
};
use crate::switch::fib::VmSlot;
use crate::switch::mailbox::MAX_VMS;

/// One class's counts in this loop, added to the shared counters once per loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub conforming: [u64; 2],
    pub exceeding: [u64; 2],
    pub dropped: [u64; 2],
}

#[inline(always)]
fn count(c: &mut [u64; 2], bytes: u32) {
    c[0] += 1;
    c[1] += bytes as u64;
}

/// One worker's shaping state: a bucket per reservation, the uplink's, one per VM slot
/// when best-effort is capped. Sized once (`new`), rebuilt in place when the policy
/// changes (`sync`), so nothing allocates on the worker.
#[derive(Debug)]
pub struct Shaper {
    units: Units,
    reserved: Vec<TokenBucket>,
    uplink: Option<TokenBucket>,
    vm: [TokenBucket; MAX_VMS],
    vm_capped: bool,
    /// The last pair looked up and its reservation (frames of a burst mostly belong
    /// to one flow).
    last: Option<(Pair, Option<u32>)>,
    tally: [Tally; QOS_CLASS_COUNT],
}

/// A worker's share of `r`: its rate divided among the workers (each enforces alone,
/// without sharing a bucket), its burst too, at least one jumbo frame.
fn share(r: Rate, workers: u32, units: Units) -> TokenBucket {
    let w = workers.max(1) as u64;
    TokenBucket::new(
        (r.bps / w).max(1),
        (r.burst_bytes / w).max(MIN_BURST_BYTES),
        units,
    )
}

impl Shaper {
    /// Room for `MAX_RESERVATIONS` buckets, no policy.
    pub fn new(tsc_hz: u64) -> Self {
        let units = Units::new(tsc_hz);
        Self {
            units,
            reserved: Vec::with_capacity(MAX_RESERVATIONS),
            uplink: None,
            vm: [TokenBucket::new(1, 0, units); MAX_VMS],
            vm_capped: false,
            last: None,
            tally: [Tally::default(); QOS_CLASS_COUNT],
        }
    }

    /// Follows `policy`: its buckets, full (within the room sized by `new`).
    #[cold]
    pub fn sync(&mut self, policy: Option<&QosPolicy>) {
        self.reserved.clear();
        self.uplink = None;
        self.vm_capped = false;
        self.last = None;
        let Some(p) = policy else {
            return;
        };
        let (w, u) = (p.workers(), self.units);
        let room = self.reserved.capacity();
        self.reserved.extend(
            p.reservations()
                .iter()
                .take(room)
                .map(|r| share(r.rate, w, u)),
        );
        self.uplink = p.uplink().map(|r| share(r, w, u));
        if let Some(cap) = p.vm_cap() {
            self.vm = [share(cap, w, u); MAX_VMS];
            self.vm_capped = true;
        }
    }

    /// The reservation of `frame` (its destination and source MACs), if any.
    #[inline(always)]
    fn reservation(&mut self, policy: &QosPolicy, frame: &[u8]) -> Option<usize> {
        if self.reserved.is_empty() {
            return None;
        }
        let pair = Pair::of_header(frame.first_chunk::<12>()?);
        let r = match self.last {
            Some((p, r)) if p == pair => r,
            _ => {
                let r = policy.lookup(pair);
                self.last = Some((pair, r));
                r
            }
        };
        r.map(|i| i as usize)
    }

    /// Whether `frame`, from VM slot `vm` and `bytes` long on the wire, leaves on the
    /// uplink, with `now` the loop's TSC; counted in this loop's tally.
    ///
    /// A frame of a reservation within its rate passes and is charged to the uplink
    /// whatever it holds (reserved first: best-effort then finds less). Best-effort,
    /// and a reserved flow's excess, passes only within the VM's cap and what the
    /// uplink has left; otherwise it is dropped with its cause. `Err` means: drop it.
    #[inline(always)]
    pub fn admit(
        &mut self,
        policy: &QosPolicy,
        frame: &[u8],
        vm: VmSlot,
        bytes: u32,
        now: u64,
    ) -> Result<(), DropCause> {
        let cost = self.units.cost(bytes);
        let mut excess = false;
        if let Some(b) = self
            .reservation(policy, frame)
            .and_then(|i| self.reserved.get_mut(i))
        {
            b.refill(now);
            if b.conforms(cost) {
                b.take(cost);
                if let Some(u) = &mut self.uplink {
                    u.refill(now);
                    u.force(cost);
                }
                count(
                    &mut self.tally[QosClass::Reserved as usize].conforming,
                    bytes,
                );
                return Ok(());
            }
            count(
                &mut self.tally[QosClass::Reserved as usize].exceeding,
                bytes,
            );
            excess = true;
        }
        let cause = self.best_effort(vm, cost, now);
        let be = &mut self.tally[QosClass::BestEffort as usize];
        match cause {
            None => {
                count(&mut be.conforming, bytes);
                Ok(())
            }
            Some(c) => {
                count(&mut be.exceeding, bytes);
                count(&mut be.dropped, bytes);
                if excess {
                    count(&mut self.tally[QosClass::Reserved as usize].dropped, bytes);
                }
                Err(c)
            }
        }
    }

    /// Best-effort's verdict: within the VM's cap (if any), then within what the
    /// uplink has left (if configured); tokens are taken only when both agree.
    #[inline(always)]
    fn best_effort(&mut self, vm: VmSlot, cost: i64, now: u64) -> Option<DropCause> {
        let mut capped = None;
        if self.vm_capped {
            if let Some(v) = self.vm.get_mut(vm.0) {
                v.refill(now);
                if !v.conforms(cost) {
                    return Some(DropCause::BestEffortVmCap);
                }
                capped = Some(v);
            }
        }
        if let Some(u) = &mut self.uplink {
            u.refill(now);
            if !u.conforms(cost) {
                return Some(DropCause::BestEffortUplink);
            }
            u.take(cost);
        }
        if let Some(v) = capped {
            v.take(cost);
        }
        None
    }

    /// Adds this loop's tally to `counters` and starts the next (once per loop that
    /// shaped: the frames' counts are batched per burst).
    #[inline]
    pub fn flush(&mut self, counters: &SwitchCounters) {
        for (t, c) in self.tally.iter_mut().zip(&counters.qos) {
            let add = |to: [&Counter; 2], v: [u64; 2]| {
                if v[0] > 0 {
                    to[0].add(v[0]);
                    to[1].add(v[1]);
                }
            };
            let ClassCounters {
                conforming_packets,
                conforming_bytes,
                exceeding_packets,
                exceeding_bytes,
                dropped_packets,
                dropped_bytes,
            } = c;
            add([conforming_packets, conforming_bytes], t.conforming);
            add([exceeding_packets, exceeding_bytes], t.exceeding);
            add([dropped_packets, dropped_bytes], t.dropped);
            *t = Tally::default();
        }
    }

    /// This loop's tally so far (tests).
    pub fn tally(&self) -> &[Tally; QOS_CLASS_COUNT] {
        &self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::super::policy::Reservation;
    use super::*;

    const HZ: u64 = 2_500_000_000;
    const APP_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const APP_C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
    const NOISY: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    /// Frames on the wire: 1514 bytes encapsulated.
    const WIRE: u32 = 1564;

    fn header(src: [u8; 6], dst: [u8; 6]) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[..6].copy_from_slice(&dst);
        h[6..].copy_from_slice(&src);
        h
    }

    /// A sender: a VM slot, its frames' header, the rate it offers.
    struct Flow {
        vm: VmSlot,
        header: [u8; 12],
        offered_bps: u64,
        /// Bits offered but not yet sent as a frame.
        credit: u64,
        sent_bytes: u64,
        dropped: Vec<DropCause>,
    }

    fn flow(vm: usize, src: [u8; 6], dst: [u8; 6], mbps: u64) -> Flow {
        Flow {
            vm: VmSlot(vm),
            header: header(src, dst),
            offered_bps: mbps * 1_000_000,
            credit: 0,
            sent_bytes: 0,
            dropped: Vec::new(),
        }
    }

    /// `secs` seconds of loops every `loop_us` µs; in each, every flow offers what its
    /// rate gives, in the order given (the first ones take the tokens first).
    fn run(shaper: &mut Shaper, policy: &QosPolicy, flows: &mut [Flow], secs: u64, loop_us: u64) {
        let counters = SwitchCounters::default();
        let step = HZ * loop_us / 1_000_000;
        let mut now = HZ;
        while now < HZ + secs * HZ {
            for f in flows.iter_mut() {
                f.credit += f.offered_bps * loop_us / 1_000_000;
                while f.credit >= WIRE as u64 * 8 {
                    f.credit -= WIRE as u64 * 8;
                    match shaper.admit(policy, &f.header, f.vm, WIRE, now) {
                        Ok(()) => f.sent_bytes += WIRE as u64,
                        Err(c) => f.dropped.push(c),
                    }
                }
            }
            shaper.flush(&counters);
            now += step;
        }
        assert_eq!(*shaper.tally(), [Tally::default(); QOS_CLASS_COUNT]);
    }

    fn mbps(bytes: u64, secs: u64) -> f64 {
        (bytes * 8) as f64 / secs as f64 / 1e6
    }

    fn policy(
        uplink: Option<u64>,
        cap: Option<u64>,
        reserved: &[([u8; 6], [u8; 6], u64)],
    ) -> QosPolicy {
        let r = reserved
            .iter()
            .map(|&(src, dst, mbps)| Reservation {
                src,
                dst,
                rate: Rate::new(mbps * 1_000_000),
            })
            .collect();
        let mb = |m: u64| Rate::new(m * 1_000_000);
        QosPolicy::new(uplink.map(mb), cap.map(mb), r, 1).unwrap()
    }

    #[test]
    fn reserved_first_under_overload_and_the_rest_to_best_effort() {
        // A 100 Mbit/s uplink, 40 reserved A -> C; the application offers 60, a noisy VM
        // 300 and is served first in every loop.
        let p = policy(Some(100), None, &[(APP_A, APP_C, 40)]);
        let mut s = Shaper::new(HZ);
        s.sync(Some(&p));
        let mut flows = [flow(1, NOISY, APP_C, 300), flow(0, APP_A, APP_C, 60)];
        run(&mut s, &p, &mut flows, 20, 20);
        let (noisy, app) = (mbps(flows[0].sent_bytes, 20), mbps(flows[1].sent_bytes, 20));
        // The application gets at least its reservation; both together fill the uplink
        // (its burst aside) and never exceed it.
        assert!(app >= 40.0 * 0.99, "application {app:.2} Mbit/s");
        assert!(
            (99.0..=100.5).contains(&(app + noisy)),
            "application {app:.2} + noisy {noisy:.2} Mbit/s"
        );
        assert!(
            noisy > 50.0,
            "noisy {noisy:.2} Mbit/s: the rest is best-effort's"
        );
        assert!(flows[0]
            .dropped
            .iter()
            .all(|&c| c == DropCause::BestEffortUplink));
        // Without the reservation the same noise takes the uplink.
        let p = policy(Some(100), Some(1000), &[]);
        s.sync(Some(&p));
        for f in flows.iter_mut() {
            f.sent_bytes = 0;
        }
        run(&mut s, &p, &mut flows, 20, 20);
        let app = mbps(flows[1].sent_bytes, 20);
        assert!(app < 30.0, "unreserved application {app:.2} Mbit/s");
    }

    #[test]
    fn each_vm_best_effort_is_capped_on_its_own() {
        let p = policy(None, Some(10), &[]);
        let mut s = Shaper::new(HZ);
        s.sync(Some(&p));
        let mut flows = [flow(0, APP_A, APP_C, 50), flow(1, NOISY, APP_C, 5)];
        run(&mut s, &p, &mut flows, 10, 100);
        let (a, b) = (mbps(flows[0].sent_bytes, 10), mbps(flows[1].sent_bytes, 10));
        // 10 Mbit/s and its 64 KiB burst.
        assert!((10.0..=10.1).contains(&a), "capped VM {a:.3} Mbit/s");
        assert!(flows[0]
            .dropped
            .iter()
            .all(|&c| c == DropCause::BestEffortVmCap));
        assert!(
            flows[1].dropped.is_empty(),
            "the VM under its cap lost {b:.3}"
        );
    }

    #[test]
    fn without_a_reservation_nothing_is_shaped() {
        // Capacity alone: inactive, the loop does not shape.
        assert!(!policy(Some(100), None, &[]).is_active());
        assert!(!QosPolicy::default().is_active());
        // A reservation of another pair: traffic within the uplink all passes, counted
        // as best-effort conforming.
        let p = policy(Some(1000), None, &[(NOISY, APP_A, 10)]);
        let mut s = Shaper::new(HZ);
        s.sync(Some(&p));
        let counters = SwitchCounters::default();
        let h = header(APP_A, APP_C);
        for k in 0..1000u64 {
            assert_eq!(s.admit(&p, &h, VmSlot(0), WIRE, HZ + k * 100_000), Ok(()));
        }
        // Frames too short for a source MAC are best-effort too.
        assert_eq!(s.admit(&p, &h[..8], VmSlot(0), 60, 2 * HZ), Ok(()));
        s.flush(&counters);
        let be = &counters.qos[QosClass::BestEffort as usize];
        assert_eq!(be.conforming_packets.get(), 1001);
        assert_eq!(be.conforming_bytes.get(), 1000 * WIRE as u64 + 60);
        assert_eq!(be.dropped_packets.get(), 0);
        assert_eq!(
            counters.qos[QosClass::Reserved as usize]
                .conforming_packets
                .get(),
            0
        );
    }

    #[test]
    fn a_reserved_flow_over_its_rate_is_counted_exceeding_then_dropped_as_best_effort() {
        // Uplink 50, reserved 40: the application offers 80 alone; it gets the uplink.
        let p = policy(Some(50), None, &[(APP_A, APP_C, 40)]);
        let mut s = Shaper::new(HZ);
        s.sync(Some(&p));
        let counters = SwitchCounters::default();
        let h = header(APP_A, APP_C);
        let gap = HZ * WIRE as u64 * 8 / 80_000_000;
        let mut sent = 0u64;
        for k in 0..(10 * HZ / gap) {
            if s.admit(&p, &h, VmSlot(0), WIRE, HZ + k * gap).is_ok() {
                sent += WIRE as u64;
            }
            if k % 64 == 0 {
                s.flush(&counters);
            }
        }
        s.flush(&counters);
        assert!(
            (49.5..=50.5).contains(&mbps(sent, 10)),
            "{}",
            mbps(sent, 10)
        );
        let r = &counters.qos[QosClass::Reserved as usize];
        let be = &counters.qos[QosClass::BestEffort as usize];
        assert!((39.5..=40.5).contains(&mbps(r.conforming_bytes.get(), 10)));
        assert_eq!(
            r.exceeding_packets.get(),
            be.conforming_packets.get() + be.dropped_packets.get()
        );
        assert_eq!(r.dropped_packets.get(), be.dropped_packets.get());
        assert!(r.dropped_packets.get() > 0);
    }

    #[test]
    fn a_new_policy_reuses_the_buckets_room_and_the_rates_are_shared_by_workers() {
        let mut s = Shaper::new(HZ);
        let room = s.reserved.capacity();
        let many: Vec<Reservation> = (0..MAX_RESERVATIONS)
            .map(|i| Reservation {
                src: [2, 0, 0, 0, (i >> 8) as u8, i as u8],
                dst: APP_C,
                rate: Rate::new(1_000_000),
            })
            .collect();
        let p = QosPolicy::new(None, None, many, 4).unwrap();
        s.sync(Some(&p));
        assert_eq!(
            (s.reserved.len(), s.reserved.capacity()),
            (MAX_RESERVATIONS, room)
        );
        s.sync(None);
        assert!(s.reserved.is_empty() && s.uplink.is_none() && !s.vm_capped);
        // Four workers: each enforces a quarter of the rate.
        let p = QosPolicy::new(None, Some(Rate::new(40_000_000)), vec![], 4).unwrap();
        s.sync(Some(&p));
        let mut f = [flow(0, APP_A, APP_C, 50)];
        run(&mut s, &p, &mut f, 10, 100);
        let got = mbps(f[0].sent_bytes, 10);
        assert!((10.0..=10.1).contains(&got), "{got}");
    }
}
