//! The delivered-rate floor: what a path's flows got through is a lower bound on its
//! available bandwidth, and no answer may go beneath it.
//!
//! Why it bounds A: a FIFO bottleneck of capacity C forwards at most C·T in any
//! interval of length T, cross traffic included. The cross traffic that left in it is
//! what arrived in it (X·T) plus what was queued at its start, less what is queued at
//! its end, Qx. So the path's own bytes that left in it are at most A·T + Qx(end), with
//! A = C − X: the path's delivered rate is a lower bound on A once Qx(end) is small
//! against A·T. What is queued at the end is known from the queueing delay q of the
//! path's own segment that left then (its RTT above the path's minimum): the cross
//! traffic queued ahead of it arrived within q, so Qx ≤ X·q, and a span of at least
//! `SPAN_PER_QUEUE`·q bounds the excess by X/A percent of A (2.3% at X = 70% of C).
//! The bytes are those ACKed, every flow of the path together (parallel flows that each
//! deliver 40 Mbit/s prove 80), over two kinds of interval:
//! - slots of `SLOT_NS` of ACK time in which no train showed a rising delay trend and
//!   no loss was seen: the queue did not grow, so the slot's end has little queued;
//! - spans from the first ACK of a slot to a later ACK whose segment met a short queue
//!   (at most 1/`SPAN_PER_QUEUE` of the span), rising trains within or not: an
//!   application's bursts that outran the path and drained between them count.
//!
//! Each counts from the first ACK of a timed segment in its slot, and its length is
//! ACK time plus that segment's queueing delay (`Start`): ACKs held back on the reverse
//! path at the start (a delayed ACK, the lab's delay line under load) would otherwise
//! pack more than C·T into a slot (60 ms held at a 1-s slot's start put 6% more).
//!
//! Both fail where cross traffic is dropped (the argument counts every byte of it), so
//! a loss voids the slots it overlaps and the spans across them; and where the reverse
//! path's delay falls within a span by more than the start's queueing delay.
//! The floor is the highest such rate over the estimate's window.

/// The slot length: long against queueing delays, short against the window.
const SLOT_NS: u64 = 1_000_000_000;
/// Slots kept: more than a 10-s window's, with the current one.
const SLOTS: usize = 16;
/// A span must be at least one slot long, and this many times its end's queueing delay.
const SPAN_PER_QUEUE: u64 = 100;
/// Spans are looked for at most this often (a few per slot: the hot path is per ACK).
const SPAN_CHECK_NS: u64 = SLOT_NS / 16;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    idx: u64,
    bytes: u64,
    /// A rising train overlapped it.
    rose: bool,
    /// A loss overlapped it.
    lost: bool,
    /// Its first ACK of a timed segment (the bytes counted are those ACKed after it).
    first: Option<Start>,
    /// The highest rate of a span that ended in it (bits/s).
    span_bps: f64,
}

/// Where a slot's count starts: an ACK, the path's bytes ACKed up to and with it, and
/// the queueing delay of its segment. The bytes ACKed after it left the bottleneck
/// after that segment did, which was at most `queue_ns` before the ACK less the
/// path's least delay back: an ACK held back on its way (a delayed ACK, ACKs bunched
/// by the reverse path) reads as queueing delay, and a slot whose first ACK came late
/// holds bytes that left over up to that much more than the slot. So a slot's or
/// span's bytes are divided by its length plus `queue_ns`, and never exceed C.
#[derive(Debug, Clone, Copy)]
struct Start {
    t: u64,
    acked: u64,
    queue_ns: u64,
}

impl Start {
    /// The rate of `bytes` ACKed after this start, up to `end` (bits/s).
    fn rate(&self, bytes: u64, end: u64) -> f64 {
        bytes as f64 * 8e9 / (end.saturating_sub(self.t) + self.queue_ns).max(1) as f64
    }
}

#[derive(Debug, Default)]
pub(super) struct Delivered {
    slots: [Slot; SLOTS],
    /// Wire bytes ACKed on the path.
    total: u64,
    last_check: u64,
}

impl Delivered {
    /// The slot of time index `idx`, started afresh if its place held an older one.
    fn slot(&mut self, idx: u64) -> Option<&mut Slot> {
        let s = &mut self.slots[(idx % SLOTS as u64) as usize];
        if s.idx < idx {
            *s = Slot {
                idx,
                ..Slot::default()
            };
        }
        (s.idx == idx).then_some(s)
    }

    /// `bytes` ACKed at `t`; `queue_ns` is the queueing delay of the newest segment
    /// ACKed, if it was timed.
    pub(super) fn acked(&mut self, bytes: u64, t: u64, queue_ns: Option<u64>) {
        self.total += bytes;
        let total = self.total;
        let Some(s) = self.slot(t / SLOT_NS) else {
            return;
        };
        match (s.first, queue_ns) {
            (Some(_), _) => s.bytes += bytes,
            (None, Some(q)) => {
                s.first = Some(Start {
                    t,
                    acked: total,
                    queue_ns: q,
                })
            }
            (None, None) => {}
        }
        if let Some(q) = queue_ns {
            if t >= self.last_check + SPAN_CHECK_NS {
                self.last_check = t;
                self.span_to(t, q);
            }
        }
    }

    /// The best span ending at `t` with queueing delay `q` there, kept in its slot.
    fn span_to(&mut self, t: u64, q: u64) {
        let min_span = SLOT_NS.max(SPAN_PER_QUEUE.saturating_mul(q));
        let cur = t / SLOT_NS;
        let mut best = 0.0f64;
        for back in 1..SLOTS as u64 {
            let Some(idx) = cur.checked_sub(back) else {
                break;
            };
            let s = self.slots[(idx % SLOTS as u64) as usize];
            if s.idx != idx {
                continue;
            }
            if s.lost {
                break;
            }
            if let Some(st) = s.first.filter(|st| t - st.t >= min_span) {
                best = best.max(st.rate(self.total - st.acked, t));
            }
        }
        if let Some(s) = self.slot(cur).filter(|s| !s.lost) {
            s.span_bps = s.span_bps.max(best);
        }
    }

    /// A rising train (or a loss, `loss`) whose data was sent from `t0` and ACKed by
    /// `t1`: the slots it overlaps are no clean slots; a loss voids them for spans too.
    pub(super) fn rose(&mut self, t0: u64, t1: u64, loss: bool) {
        let (first, last) = (t0 / SLOT_NS, t1 / SLOT_NS);
        for idx in first.max(last.saturating_sub(SLOTS as u64 - 1))..=last {
            if let Some(s) = self.slot(idx) {
                s.rose = true;
                s.lost |= loss;
                if loss {
                    s.span_bps = 0.0;
                }
            }
        }
    }

    /// The floor at `now` (bits/s): the highest delivered rate over the complete clean
    /// slots, and the spans that ended, within `window_ns` before it and after the slot
    /// of `change` (when A changed: what was delivered before bounds the old A).
    pub(super) fn floor(&self, now: u64, window_ns: u64, change: Option<u64>) -> Option<f64> {
        let cur = now / SLOT_NS;
        let from =
            (now.saturating_sub(window_ns) / SLOT_NS).max(change.map_or(0, |c| c / SLOT_NS + 1));
        let best = self
            .slots
            .iter()
            .filter(|s| s.idx >= from && s.idx <= cur && s.first.is_some())
            .map(|s| {
                let clean = !s.rose && s.idx < cur;
                let slot_bps = match s.first {
                    Some(st) if clean => st.rate(s.bytes, (s.idx + 1) * SLOT_NS),
                    _ => 0.0,
                };
                slot_bps.max(s.span_bps)
            })
            .fold(0.0f64, f64::max);
        (best > 0.0).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// 1500-byte segments at 100 Mbit/s: one every 120 µs.
    const SEG: u64 = 1500;
    const GAP_NS: u64 = 120_000;

    /// Segments leaving a 100-Mbit/s bottleneck from 0 to `until`, each ACKed `back`
    /// after it left (the reverse path's delay then), with queueing delay `q`.
    fn link(d: &mut Delivered, from: u64, until: u64, back: impl Fn(u64) -> u64) {
        let mut left = from;
        while left < until {
            let extra = back(left);
            d.acked(SEG, left + 5 * MS + extra, Some(extra));
            left += GAP_NS;
        }
    }

    #[test]
    fn a_steady_flow_at_the_bottleneck_reads_as_its_rate() {
        let mut d = Delivered::default();
        link(&mut d, 0, 4_000 * MS, |_| 0);
        let f = d.floor(4_000 * MS, 10_000 * MS, None).unwrap();
        assert!(f <= 100e6 && f > 99e6, "{f}");
    }

    #[test]
    fn acks_held_back_at_a_slots_start_do_not_count_above_the_bottleneck() {
        let mut d = Delivered::default();
        // 60 ms of ACKs held back on the reverse path around the start of slot 2 (the
        // lab's delay line under load), then released together at its start.
        link(&mut d, 0, 4_000 * MS, |left| {
            let held = 1_935 * MS..1_995 * MS;
            if held.contains(&left) {
                1_995 * MS - left
            } else {
                0
            }
        });
        let f = d.floor(4_000 * MS, 10_000 * MS, None).unwrap();
        assert!(f <= 100e6, "{f}: more than the bottleneck carried");
        assert!(f > 99e6, "{f}");
    }
}
