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
//! Both fail where cross traffic is dropped (the argument counts every byte of it), so
//! a loss voids the slots it overlaps and the spans across them; and where the reverse
//! path's delay changes within a span (ACK times then shift the bytes between spans).
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
    /// Its first ACK: when, and the path's ACKed bytes up to and with it.
    first: Option<(u64, u64)>,
    /// The highest rate of a span that ended in it (bits/s).
    span_bps: f64,
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
        s.bytes += bytes;
        s.first.get_or_insert((t, total));
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
            if let Some((t0, b0)) = s.first.filter(|&(t0, _)| t - t0 >= min_span) {
                best = best.max((self.total - b0) as f64 * 8e9 / (t - t0) as f64);
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
                let slot_bps = if clean {
                    s.bytes as f64 * 8e9 / SLOT_NS as f64
                } else {
                    0.0
                };
                slot_bps.max(s.span_bps)
            })
            .fold(0.0f64, f64::max);
        (best > 0.0).then_some(best)
    }
}
