//! The uplink's capacity learnt from Wren, with `[qos] learn_uplink` and no
//! `uplink_mbps`: reserved + best-effort from local VMs must stay within what the
//! uplink carries, so that the queue forms in the workers' shaper (reserved first) and
//! not past it.
//!
//! The model. Every path leaving this host crosses the uplink, so its capacity C is at
//! least what any one of them is found to carry: its delivered-rate floor (bytes ACKed
//! over clean 1-s intervals, `analysis::wren::delivered`: a lower bound on the path's
//! available bandwidth A, and A = C - cross traffic <= C). The capacity learnt is the
//! largest such reading. Lower bounds only ever say "at least", so it only rises.
//! Wren's estimates of A are not readings: an estimate errs both ways, and the largest
//! of many is their largest error (in the lab, 114 Mbit/s on a 100 Mbit/s link).
//!
//! The first capacity is taken only once the host's paths were network-limited in
//! `GATE` readings in a row (`EVERY` apart): some path's answer has a high side
//! (an estimate, an upper bound, or a lower bound with its range's high end), which
//! only trains that rose or lost give (the path's queue was reached); a lower bound
//! without one says none did. A bulk flow at the path's rate may show only rising
//! trains (an upper bound, far above its floor), so all count; two readings, so that
//! a flow's first second (slow start, its floor still climbing) does not set it. An
//! application-limited flow whose trains never rise delivers what it sends, far below
//! C, and a shaper set from it would hold every later flow below it: no flow could
//! then show more, and the capacity would never be learnt. (One whose bursts outrun
//! the path does make trains rise: where VMs only ever send short bursts,
//! `uplink_mbps` is the setting.) Until then the uplink is not shaped (as without
//! `uplink_mbps`). The first capacity is the largest reading seen so far, not the one
//! that opened the gate: every floor is a lower bound on C whatever limited its
//! flows, and the path that first shows a queue may be one whose own bottleneck is
//! narrow (a throttled link: 10 Mbit/s there, where a bulk flow on the same uplink had
//! delivered 70 a few seconds before, would shape the uplink at 9.5 and hold every
//! later flow under it). Once learnt, any larger lower bound raises it.
//!
//! It does not fall. A lower capacity cannot be read from lower bounds, and a path's
//! estimate below the capacity is that path's (its own bottleneck, its own cross
//! traffic), not the uplink's: lowering the shaper for it would starve the other
//! paths. A path that becomes too narrow for its reservations is the controller's to
//! move them off (`controller::reserve`); an uplink that truly shrinks needs
//! `uplink_mbps` (or a restart). Nor are Wren's lower-bound answers readings: one from
//! a short train may be a burst that crossed a token bucket unqueued, above C; a 1-s
//! slot's bytes exceed C by at most the bucket's depth.
//!
//! The shaper runs at `uplink_share` of the capacity learnt, a little below it, so
//! that the bottleneck's queue is the shaper's (as home-router shapers run below the
//! line). Readings are Wren's paths whose sender is one of this host's VMs (the daemon
//! that times a flow's segments is its sender's); a receiver's paths, whose only
//! traffic out is ACKs, are another uplink's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use analysis::engine::AnalysisLoop;
use serde_json::Value;

use crate::daemon::api::Operations;
use crate::daemon::config::QosSection;

/// How often the main lcore reads the views for a new reading.
const EVERY: Duration = Duration::from_secs(2);
const DEFAULT_SHARE: f64 = 0.95;

/// The main lcore's side: a reading every `EVERY`, the policy's uplink set when the
/// capacity learnt rises.
pub struct Learner {
    estimate: UplinkEstimate,
    share: f64,
    next: Instant,
}

impl Learner {
    /// `None` unless `learn_uplink` is on and `uplink_mbps` unset.
    pub fn new(q: &QosSection) -> Option<Self> {
        if q.uplink_mbps.is_some() || !q.learn_uplink {
            return None;
        }
        Some(Self {
            estimate: UplinkEstimate::default(),
            share: q.uplink_share.unwrap_or(DEFAULT_SHARE),
            next: Instant::now() + EVERY,
        })
    }

    /// Takes a reading when one is due.
    pub fn poll(&mut self, ops: &Operations<'_>, a: &AnalysisLoop) {
        let now = Instant::now();
        if now >= self.next {
            self.next = now + EVERY;
            self.read(ops, a);
        }
    }

    #[cold]
    fn read(&mut self, ops: &Operations<'_>, a: &AnalysisLoop) {
        let (Ok(wren), Ok(vttif)) = (ops.view(a, "wren"), ops.view(a, "vttif")) else {
            return; // monitoring off: nothing to learn from
        };
        let Some(r) = reading(&wren, &vttif) else {
            return;
        };
        let learnt = self.estimate.observe(r);
        ops.note_uplink_evidence(self.estimate.evidence());
        let Some(capacity) = learnt else {
            return;
        };
        let shaped = capacity * self.share;
        match ops.learn_uplink(capacity, shaped) {
            Ok(()) => log::info!(
                "qos: the uplink's capacity learnt from Wren: {capacity:.1} Mbit/s, \
                 shaped at {shaped:.1}"
            ),
            Err(e) => log::warn!("qos: the uplink learnt ({capacity:.1} Mbit/s): {e:#}"),
        }
    }
}

/// A rise of the capacity learnt smaller than this share is not applied (a new policy
/// refills the workers' buckets).
const STEP: f64 = 0.05;
/// Network-limited readings in a row before the first capacity (see the module doc).
const GATE: u32 = 2;

/// One reading of the views: the largest lower bound on C, and whether it comes from a
/// network-limited path (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub mbps: f64,
    pub network_limited: bool,
}

/// The capacity learnt (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct UplinkEstimate {
    capacity_mbps: Option<f64>,
    /// The largest reading so far, network-limited or not.
    seen_mbps: f64,
    /// Network-limited readings in a row.
    streak: u32,
    readings: u32,
    longest_streak: u32,
}

/// What the learner has seen (`GET /reservations`' `uplink_learning`): why a capacity
/// was learnt, or why not yet.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Evidence {
    /// Readings taken (a local VM's path with a delivered-rate floor).
    pub readings: u32,
    /// The longest run of network-limited readings; the first capacity needs `gate`.
    pub network_limited_in_a_row: u32,
    pub gate: u32,
    /// The largest floor read (Mbit/s): the first capacity, once the gate opens.
    pub largest_floor_mbps: f64,
}

impl UplinkEstimate {
    /// The capacity learnt so far (Mbit/s).
    pub fn capacity_mbps(&self) -> Option<f64> {
        self.capacity_mbps
    }

    /// What it has seen.
    pub fn evidence(&self) -> Evidence {
        Evidence {
            readings: self.readings,
            network_limited_in_a_row: self.longest_streak,
            gate: GATE,
            largest_floor_mbps: self.seen_mbps,
        }
    }

    /// Takes one reading; returns the new capacity when it rose by more than `STEP`.
    pub fn observe(&mut self, r: Reading) -> Option<f64> {
        if !r.mbps.is_finite() || r.mbps <= 0.0 {
            return None;
        }
        self.readings += 1;
        self.seen_mbps = self.seen_mbps.max(r.mbps);
        self.streak = if r.network_limited {
            self.streak + 1
        } else {
            0
        };
        self.longest_streak = self.longest_streak.max(self.streak);
        let next = match self.capacity_mbps {
            None if self.streak >= GATE => self.seen_mbps,
            Some(c) if r.mbps > c * (1.0 + STEP) => r.mbps,
            _ => return None,
        };
        self.capacity_mbps = Some(next);
        Some(next)
    }
}

/// One reading of the daemon's views (`GET /paths`' and `GET /matrix`' documents):
/// over Wren's paths sent by a local VM, the largest delivered-rate floor, and whether
/// any of them was network-limited (its answer has a high side). `None`
/// when no such path has a floor.
pub fn reading(wren: &Value, vttif: &Value) -> Option<Reading> {
    let local = local_ips(vttif);
    let mut r: Option<Reading> = None;
    for p in wren["wren"]["paths"].as_array().into_iter().flatten() {
        if !p["src"].as_str().is_some_and(|ip| local.contains(ip)) {
            continue;
        }
        let Some(v) = (p["delivered_floor_mbps"].as_f64()).filter(|v| v.is_finite() && *v > 0.0)
        else {
            continue;
        };
        let limited = p["avail_bw_high_mbps"].as_f64().is_some();
        r = Some(match r {
            None => Reading {
                mbps: v,
                network_limited: limited,
            },
            Some(prev) => Reading {
                mbps: prev.mbps.max(v),
                network_limited: prev.network_limited || limited,
            },
        });
    }
    r
}

/// The IPs VTTIF saw this host's VMs use as sources.
fn local_ips(vttif: &Value) -> BTreeSet<String> {
    let local: BTreeSet<&str> = (vttif["local_vms"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    (vttif["vttif"]["rows"].as_array().into_iter().flatten())
        .filter(|r| r["src"].as_str().is_some_and(|m| local.contains(m)))
        .filter_map(|r| r["src_also"].as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(mbps: f64, network_limited: bool) -> Reading {
        Reading {
            mbps,
            network_limited,
        }
    }

    #[test]
    fn the_first_capacity_needs_a_network_limited_path_then_it_only_rises() {
        let mut u = UplinkEstimate::default();
        // An application-limited flow's 3 Mbit/s says nothing of the uplink.
        assert_eq!(u.observe(at(3.0, false)), None);
        assert_eq!(u.capacity_mbps(), None);
        assert_eq!(u.observe(at(90.0, true)), None, "one reading");
        assert_eq!(u.observe(at(91.0, true)), Some(91.0), "two in a row");
        assert_eq!(u.observe(at(93.0, false)), None, "within STEP");
        assert_eq!(
            u.observe(at(120.0, false)),
            Some(120.0),
            "a larger lower bound"
        );
        // Lower readings (the shaper holds the flows below it, a narrower path): kept.
        assert_eq!(u.observe(at(40.0, true)), None);
        assert_eq!(u.observe(at(f64::NAN, true)), None);
        assert_eq!(u.capacity_mbps(), Some(120.0));
    }

    #[test]
    fn the_first_capacity_is_the_largest_floor_seen_not_the_narrow_path_that_opened_the_gate() {
        let mut u = UplinkEstimate::default();
        // A bulk flow delivered 70 without a train rising; then a throttled path queues.
        assert_eq!(u.observe(at(70.0, false)), None);
        assert_eq!(u.observe(at(9.8, true)), None);
        assert_eq!(u.observe(at(9.9, false)), None, "the streak broken");
        assert_eq!(u.observe(at(9.8, true)), None);
        assert_eq!(u.observe(at(9.8, true)), Some(70.0));
        assert_eq!(u.observe(at(20.0, true)), None);
        assert_eq!(u.capacity_mbps(), Some(70.0));
        let e = u.evidence();
        assert_eq!((e.readings, e.network_limited_in_a_row), (6, 3));
        assert_eq!(e.largest_floor_mbps, 70.0);
    }

    fn views(paths: Value) -> (Value, Value) {
        let wren = json!({"ok": true, "wren": {"paths": paths}});
        let vttif = json!({"ok": true, "local_vms": ["02:00:00:00:00:01"], "vttif": {"rows": [
            {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:03", "src_also": "10.0.0.1"},
            {"src": "02:00:00:00:00:03", "dst": "02:00:00:00:00:01", "src_also": "10.0.0.3"},
        ]}});
        (wren, vttif)
    }

    #[test]
    fn a_reading_is_the_largest_lower_bound_of_a_path_a_local_vm_sends() {
        let (w, v) = views(json!([
            {"src": "10.0.0.1", "dst": "10.0.0.3", "avail_bw_kind": "estimate",
             "avail_bw_mbps": 60.0, "avail_bw_high_mbps": 70.0,
             "delivered_floor_mbps": 50.0},
            // Answers are not readings (an estimate errs both ways, a lower bound from
            // a short train may be a burst); every local path's floor is one.
            {"src": "10.0.0.1", "dst": "10.0.0.9", "avail_bw_kind": "lower_bound",
             "avail_bw_mbps": 900.0, "delivered_floor_mbps": 30.0},
            {"src": "10.0.0.1", "dst": "10.0.0.8", "avail_bw_kind": "lower_bound",
             "avail_bw_mbps": 700.0, "delivered_floor_mbps": 55.0},
            // Sent by a remote VM: the other host's uplink, not this one's.
            {"src": "10.0.0.3", "dst": "10.0.0.1", "avail_bw_kind": "estimate",
             "avail_bw_mbps": 500.0, "avail_bw_high_mbps": 520.0,
             "delivered_floor_mbps": 400.0},
        ]));
        assert_eq!(reading(&w, &v), Some(at(55.0, true)));
        let (w, v) = views(json!([
            {"src": "10.0.0.1", "dst": "10.0.0.3", "avail_bw_kind": "lower_bound",
             "avail_bw_mbps": 70.0, "avail_bw_high_mbps": null,
             "delivered_floor_mbps": 12.0},
        ]));
        assert_eq!(reading(&w, &v), Some(at(12.0, false)), "no train rose");
        let (w, v) = views(json!([
            {"src": "10.0.0.1", "dst": "10.0.0.3", "avail_bw_kind": "upper_bound",
             "avail_bw_mbps": 140.0, "avail_bw_high_mbps": 140.0,
             "delivered_floor_mbps": 80.0},
        ]));
        assert_eq!(reading(&w, &v), Some(at(80.0, true)), "trains rose");
        // Slow trains did not rise, bursts did, too far apart for an estimate.
        let (w, v) = views(json!([
            {"src": "10.0.0.1", "dst": "10.0.0.3", "avail_bw_kind": "lower_bound",
             "avail_bw_mbps": 40.0, "avail_bw_low_mbps": 38.0,
             "avail_bw_high_mbps": 300.0, "delivered_floor_mbps": 35.0},
        ]));
        assert_eq!(reading(&w, &v), Some(at(35.0, true)), "bursts rose");
        let (w, v) = views(json!([{"src": "10.0.0.3", "dst": "10.0.0.1",
            "avail_bw_kind": "estimate", "avail_bw_mbps": 60.0,
            "avail_bw_high_mbps": 70.0, "delivered_floor_mbps": 50.0}]));
        assert_eq!(reading(&w, &v), None, "no local sender");
        assert_eq!(reading(&Value::Null, &Value::Null), None, "monitoring off");
    }
}
