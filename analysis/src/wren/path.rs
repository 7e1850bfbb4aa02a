//! Per-path state: the traffic a path carried, its RTT statistics, and the judged
//! trains its estimate is drawn from.

use std::collections::VecDeque;

use hdrhistogram::Histogram;

use super::change::{contradicts, since_change, Reference};
use super::delivered::Delivered;
use super::train::TrainResult;
use super::trend::Trend;
use crate::record::Record;

/// Judged trains kept per path, whatever the window holds.
const MAX_TRAINS: usize = 4096;

/// Endpoints of a path (IPv4 as u32; for VXLAN, the underlay addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    pub src: u32,
    pub dst: u32,
}

#[derive(Debug)]
pub(super) struct Path {
    pub(super) flows: usize,
    pub(super) packets: u64,
    pub(super) payload_bytes: u64,
    pub(super) first_t: u64,
    pub(super) last_t: u64,
    pub(super) rtt: Histogram<u64>,
    pub(super) rtt_min: WindowedMin,
    pub(super) srtt_ns: f64,
    pub(super) trains: VecDeque<TrainResult>,
    /// Wire bytes of data sent on the path, every flow's, retransmissions included.
    pub(super) sent_wire: u64,
    pub(super) delivered: Delivered,
    /// When the trains since the last change of A its trains proved began
    /// (`change::since_change`): older evidence bounds the old A, not this one.
    pub(super) change: Option<u64>,
    /// The answer of the trains since `change` that newer trains are read against
    /// (`change::Reference`), and the trains added since it was taken: it is taken
    /// again when a newer train contradicts it, or when they are a sixteenth of the
    /// trains, so the change detector costs a sort of the window that often, not per train.
    change_ref: Option<(Reference, usize)>,
}

/// The minimum over the last one to two windows: a path whose base delay grows (a
/// reroute, a longer link) shows its new minimum within two windows, not never.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowedMin {
    window_ns: u64,
    start: u64,
    current: u64,
    previous: u64,
}

impl WindowedMin {
    fn new(window_ns: u64) -> Self {
        Self {
            window_ns: window_ns.max(1),
            start: 0,
            current: u64::MAX,
            previous: u64::MAX,
        }
    }

    fn push(&mut self, v: u64, t: u64) {
        let elapsed = t.saturating_sub(self.start);
        if self.current == u64::MAX {
            self.start = t;
        } else if elapsed >= 2 * self.window_ns {
            (self.previous, self.current, self.start) = (u64::MAX, u64::MAX, t);
        } else if elapsed >= self.window_ns {
            (self.previous, self.current, self.start) = (self.current, u64::MAX, t);
        }
        self.current = self.current.min(v);
    }

    pub(super) fn get(&self) -> Option<u64> {
        let m = self.current.min(self.previous);
        (m != u64::MAX).then_some(m)
    }
}

impl Path {
    pub(super) fn new(t: u64, window_ns: u64) -> Self {
        Self {
            flows: 0,
            packets: 0,
            payload_bytes: 0,
            first_t: t,
            last_t: t,
            rtt: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            rtt_min: WindowedMin::new(window_ns),
            srtt_ns: 0.0,
            trains: VecDeque::new(),
            sent_wire: 0,
            delivered: Delivered::default(),
            change: None,
            change_ref: None,
        }
    }

    /// `acked` wire bytes ACKed at `t`, the newest segment's RTT `rtt`: the floor's
    /// input.
    pub(super) fn acked(&mut self, acked: u64, t: u64, rtt: Option<u64>) {
        if acked == 0 {
            return;
        }
        let q = rtt
            .zip(self.rtt_min.get())
            .map(|(r, m)| r.saturating_sub(m));
        self.delivered.acked(acked, t, q);
    }

    /// Counts a record sent on the path at `t`.
    #[inline]
    pub(super) fn count(&mut self, r: &Record, t: u64) {
        self.packets += 1;
        self.payload_bytes += r.payload_len as u64;
        self.last_t = t;
    }

    /// The smoothed RTT (queueing included), once there is a sample.
    #[inline]
    pub(super) fn srtt(&self) -> Option<u64> {
        (!self.rtt.is_empty()).then_some(self.srtt_ns as u64)
    }

    pub(super) fn rtt_sample(&mut self, ns: u64, t: u64) {
        let us = (ns / 1000).max(1);
        let _ = self.rtt.record(us.min(60_000_000));
        if self.rtt.len() == 1 {
            self.srtt_ns = ns as f64;
        } else {
            self.srtt_ns += (ns as f64 - self.srtt_ns) / 8.0;
        }
        self.rtt_min.push(ns, t);
    }

    /// Keeps a train judged at `now`, and forgets those older than `window_ns` before
    /// it; a rising one (or a loss) tells the delivered-rate floor which slots not to use.
    pub(super) fn add_train(&mut self, res: TrainResult, window_ns: u64, now: u64) {
        if res.trend == Trend::Increasing {
            self.delivered.rose(res.t0, now, res.loss);
        }
        self.trains.push_back(res);
        while self.trains.len() > MAX_TRAINS
            || self
                .trains
                .front()
                .is_some_and(|f| res.t.saturating_sub(f.t) > window_ns)
        {
            self.trains.pop_front();
        }
        // A change of A these trains prove, newer than the last one found: kept, so the
        // older evidence stays out after the trains that proved it have left the window.
        let change = self.change.unwrap_or(0);
        let from = self.trains.partition_point(|t| t.t0 < change);
        let since = &self.trains.make_contiguous()[from..];
        // The answer newer trains are read against, taken again when this train
        // contradicts it (the change is judged on a fresh one) or it is stale.
        let n = since.len();
        let reference = match (self.change_ref, since.last()) {
            (Some((r, added)), Some(t)) if added < n / 16 && !contradicts(t, r, 1.5) => {
                (r, added + 1)
            }
            _ => (Reference::of(since), 0),
        };
        self.change_ref = Some(reference);
        let k = since_change(since, reference.0);
        if let Some(first) = since.get(k).filter(|_| k > 0) {
            self.change_ref = None;
            self.change = Some(first.t0);
        }
    }
}
