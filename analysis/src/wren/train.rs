//! Trains: runs of a flow's data segments sent close together, how they are formed,
//! timed by their ACKs, and judged: the trend of their delays at their sending rate.
//!
//! A judged train also gives its dispersion (TOPP, Melander et al. 2000; the fluid
//! model behind pathChirp and Spruce). A stream sent at r_in into a FIFO of capacity C
//! with cross traffic X leaves it at r_in if r_in ≤ A = C − X; above A the queue grows
//! and FIFO shares the server by arrival rate, so it leaves at r_out = C·r_in/(r_in+X):
//! r_in/r_out is 1 up to A and (r_in + X)/C above, a line whose crossing with 1 is A,
//! and r_out itself is then between A and r_in (an upper bound on A far tighter than
//! a burst's line rate). r_out is seen at the sender in its ACKs' spacing, taken over
//! the whole train (`dispersion`). Assumptions: the bottleneck is FIFO and the cross
//! traffic steady over a train (Poisson packets scatter short trains' ratios; the fit
//! carries that as its standard error); the reverse path's delay is steady over a
//! train, bar ACKs held and released together (ACK compression), which the span over
//! the whole train averages out; the receiver ACKs every second segment or a TSO
//! record's end, and a lone last segment on its delayed-ACK timer, which is left out;
//! other flows of the path count as cross traffic for a train's own ratio, and its
//! rate is the path's (every flow's bytes), so the point (path rate, own ratio) lies
//! on the same line.

use std::num::NonZeroU64;
use std::ops::Range;

use super::flow::{seq_le, seq_lt, Flow, Sent};
use super::trend::{self, Trend};
use super::{Config, Tally};

/// A gap this many times a train's median spacing separates two bursts of the train.
const BURST_GAP_FACTOR: u64 = 4;
/// ... and it is at least this long, so timestamp jitter is not taken for a burst gap.
const BURST_GAP_FLOOR_NS: u64 = 5_000;
/// The least gap that ends a train, however short the round trip.
const MIN_TRAIN_GAP_NS: u64 = 20_000;
/// The gap that ends a train on a path with no RTT sample yet.
const NO_RTT_TRAIN_GAP_NS: u64 = 1_000_000;
/// The coarsest clock records come with (pcap's microseconds; the daemon's is finer):
/// each end of a span may be off by this much.
pub(super) const CLOCK_GRANULARITY_NS: f64 = 1_000.0;

#[derive(Debug, Clone, Copy)]
pub(super) struct TrainSeg {
    pub(super) end: u32,
    pub(super) t: u64,
    /// The path's data bytes sent before it (mod 2³², `Sent::path_sent`).
    pub(super) path_sent: u32,
    /// At least 1 ns, so a segment costs 24 bytes.
    pub(super) rtt: Option<NonZeroU64>,
}

impl TrainSeg {
    /// When its ACK came.
    pub(super) fn acked_at(&self) -> Option<u64> {
        self.rtt.map(|r| self.t + r.get())
    }
}

#[derive(Debug, Default)]
pub(super) struct Train {
    /// Sequence number of the first segment's first byte.
    pub(super) start: u32,
    pub(super) segs: Vec<TrainSeg>,
    pub(super) tainted: bool,
    /// Segments (from the front, in sequence order) that have their RTT: ACKs are
    /// cumulative, so each ACK only moves this cursor forward.
    acked: usize,
}

impl Train {
    /// Gives the segments newly covered by cumulative ACK `a`, seen at `t`, their RTT.
    #[inline]
    fn ack(&mut self, a: u32, t: u64) {
        while let Some(s) = self.segs.get_mut(self.acked) {
            if !seq_le(s.end, a) {
                break;
            }
            s.rtt = NonZeroU64::new(t.saturating_sub(s.t).max(1));
            self.acked += 1;
        }
    }

    fn complete(&self) -> bool {
        self.acked == self.segs.len()
    }

    /// Whether the byte at `seq` was sent in this train.
    pub(super) fn holds(&self, seq: u32) -> bool {
        seq_le(self.start, seq) && self.segs.last().is_some_and(|l| seq_lt(seq, l.end))
    }

    /// Keeps the segments that end at or before `seq` (those sent ahead of a hole
    /// there); returns how many were dropped.
    pub(super) fn truncate_before(&mut self, seq: u32) -> usize {
        let keep = self.segs.partition_point(|s| seq_le(s.end, seq));
        let dropped = self.segs.len() - keep;
        self.segs.truncate(keep);
        self.acked = self.acked.min(keep);
        dropped
    }
}

/// A judged train.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrainResult {
    /// When its first and its last segment were sent.
    pub(super) t0: u64,
    pub(super) t: u64,
    /// The path's sending rate over the train's span (every flow's bytes).
    pub(super) rate_bps: f64,
    pub(super) trend: Trend,
    /// Segments in the train: a longer train's verdict counts for more.
    pub(super) segments: usize,
    /// The verdict of a loss, not of delays.
    pub(super) loss: bool,
    /// How far off A may be from the rate while the verdict still reads as it does,
    /// relative: the span's two clock readings, and the rise the trend test cannot tell
    /// from the delays' noise (`rate_error`).
    pub(super) err: f64,
    /// What the bottleneck let through, in the path's terms (bits/s): the train's
    /// rate over its dispersion ratio r_in/r_out (`dispersion`); at most A's worth
    /// above A, so a rising train proves A ≤ this. With its relative error.
    pub(super) out_bps: Option<(f64, f64)>,
    /// One burst of a train judged on its own (`judge`), not a whole train.
    pub(super) burst: bool,
}

/// A whole train of 64 segments sent at `rate_mbps` whose delays read `trend`, with no
/// loss, no error and no output rate: what the estimate's and the change detector's
/// tests build theirs from.
#[cfg(test)]
pub(super) fn verdict(rate_mbps: f64, trend: Trend) -> TrainResult {
    TrainResult {
        t0: 0,
        t: 0,
        rate_bps: rate_mbps * 1e6,
        trend,
        segments: 64,
        loss: false,
        err: 0.0,
        out_bps: None,
        burst: false,
    }
}

impl Flow {
    /// Ends the current train if new data sent at `t` does not belong to it: a gap of
    /// half the smoothed RTT `srtt` (queueing included, as it sets the time scale: a
    /// train is what the sender emits within well under one round trip) means the
    /// sender went idle or waited for ACKs; and a train holds at most `max_train`.
    pub(super) fn close_train_before(
        &mut self,
        t: u64,
        srtt: Option<u64>,
        cfg: &Config,
    ) -> Option<Train> {
        let gap_limit = srtt
            .map(|m| (m / 2).max(MIN_TRAIN_GAP_NS))
            .unwrap_or(NO_RTT_TRAIN_GAP_NS);
        let close = !self.train.segs.is_empty()
            && (t.saturating_sub(self.last_data_t) > gap_limit
                || self.train.segs.len() >= cfg.max_train);
        close.then(|| std::mem::take(&mut self.train))
    }

    /// Ends the current train at the flow's FIN: no data will follow to end it (a
    /// short connection's whole transfer is often one train).
    pub(super) fn close_train_at_fin(&mut self) -> Option<Train> {
        (!self.train.segs.is_empty()).then(|| std::mem::take(&mut self.train))
    }

    /// Adds new data to the current train, within the total cap on segments held in
    /// trains; beyond it the train, now missing a segment, is tainted.
    pub(super) fn extend_train(&mut self, s: Sent, cfg: &Config, tally: &mut Tally) {
        if tally.train_segments < cfg.max_train_segments_total {
            if self.train.segs.is_empty() {
                self.train.start = s.seq;
            }
            self.train.segs.push(TrainSeg {
                end: s.end,
                t: s.t,
                path_sent: s.path_sent,
                rtt: None,
            });
            tally.train_segments += 1;
        } else {
            self.train.tainted = true;
        }
    }

    /// Keeps a finished train until its ACKs time it, if it is long enough and whole;
    /// else discards it. A flow holds a window's worth of trains awaiting ACKs: every
    /// train of a long, fast path (80 ms at 100 Mbit/s is ~700 segments in flight)
    /// must live until ACKed, or only slow phases ever get judged; beyond that the
    /// oldest goes.
    pub(super) fn hold_train(&mut self, tr: Train, cfg: &Config, tally: &mut Tally) {
        if tr.segs.len() < cfg.min_train || tr.tainted {
            tally.train_segments -= tr.segs.len();
            tally.counters.trains_discarded += 1;
            return;
        }
        self.pending.push_back(tr);
        if self.pending.len() > cfg.max_outstanding / cfg.min_train.max(1) {
            let old = self.pending.pop_front().expect("non-empty");
            tally.train_segments -= old.segs.len();
            tally.counters.trains_discarded += 1;
        }
    }

    /// Times the train segments cumulative ACK `a`, seen at `t`, covers. Trains are in
    /// sequence order: the first one this ACK leaves incomplete is the last it reaches.
    #[inline]
    pub(super) fn ack_trains(&mut self, a: u32, t: u64) {
        for tr in self
            .pending
            .iter_mut()
            .chain(std::iter::once(&mut self.train))
        {
            tr.ack(a, t);
            if !tr.complete() {
                break;
            }
        }
    }

    /// Judges the trains at the front of the queue that are fully ACKed, and discards
    /// the tainted ones there; their verdicts go to `out`.
    pub(super) fn judge_acked_trains(
        &mut self,
        cfg: &Config,
        tally: &mut Tally,
        out: &mut Vec<TrainResult>,
    ) {
        while self
            .pending
            .front()
            .is_some_and(|tr| tr.tainted || tr.complete())
        {
            let tr = self.pending.pop_front().expect("front exists");
            tally.train_segments -= tr.segs.len();
            if tr.tainted || tr.segs.len() < cfg.min_train {
                tally.counters.trains_discarded += 1;
                continue;
            }
            let verdicts = judge(&tr, cfg.min_train);
            if verdicts.is_empty() {
                tally.counters.trains_discarded += 1;
            }
            for res in verdicts {
                log::trace!("train {:?}: {:?}", self.path, res);
                out.push(res);
            }
        }
    }
}

/// Judges a fully ACKed train. The trend test (pathload's) assumes a stream at one
/// rate. A train sent at an even pace, or in bursts short enough that each median
/// group of the test spans whole burst cycles, is one: its trend at its sending rate.
/// A train of longer bursts with idle gaps between them is not: the delays rise inside
/// each burst and fall back in each gap as the queue drains, which says nothing about
/// the average rate (an application-limited sender, iperf3 -b or any paced sender that
/// idles, would give verdicts scattered around its average and a bogus estimate). Its
/// bursts long enough to be trains are judged on their own, each at its own rate; a
/// train made mostly of bursts too short for that (a pacer's quanta) is judged cycle by
/// cycle (`judge_cycles`).
fn judge(tr: &Train, min_train: usize) -> Vec<TrainResult> {
    let segs = &tr.segs;
    let bursts = bursts(segs);
    if is_one_stream(&bursts) {
        return judge_stream(segs, false).into_iter().collect();
    }
    log::trace!(
        "train of {} in bursts of {:?}",
        segs.len(),
        bursts.iter().map(|b| b.len()).collect::<Vec<_>>()
    );
    let in_short: usize = bursts
        .iter()
        .filter(|b| b.len() < min_train)
        .map(|b| b.len())
        .sum();
    if 2 * in_short > segs.len() && bursts.len() >= MIN_CYCLES {
        return judge_cycles(segs, &bursts).into_iter().collect();
    }
    bursts
        .into_iter()
        .filter(|b| b.len() >= min_train)
        .filter_map(|b| judge_stream(&segs[b], true))
        .collect()
}

/// The fewest burst cycles a train is judged over (`judge_cycles`): PCT over 5
/// medians has 4 steps, so a verdict needs 3 rises of 4 or at most 1.
const MIN_CYCLES: usize = 5;

/// Whether segments in `bursts` (as `bursts` gives them) are one stream for the trend
/// test: evenly paced (one burst), or in bursts no longer than one of its median groups
/// (⌊√n⌋ of them), so each group spans whole burst cycles and the rate over whole
/// cycles is the rate the path saw.
pub(super) fn is_one_stream(bursts: &[Range<usize>]) -> bool {
    let n = bursts.last().map_or(0, |b| b.end);
    let per_group = n / ((n as f64).sqrt().floor() as usize).max(1);
    bursts.len() == 1 || bursts.iter().all(|b| b.len() <= per_group)
}

/// One stream's verdict: the trend of its delays at its sending rate; `burst` if it is
/// one burst of a train.
fn judge_stream(segs: &[TrainSeg], burst: bool) -> Option<TrainResult> {
    let trend = trend::trend(&delays(segs))?;
    verdict_at_rate(segs, trend, burst)
}

/// The verdict of a train sent in bursts too short to judge alone, at the rate over its
/// whole cycles (`sending_rate`). Each cycle (a burst and the idle gap after it) puts
/// (r − A)·P more in the bottleneck's queue than it drains when the average rate r
/// exceeds A, and less (the queue empties) when it does not, however fast each burst
/// leaves: so the delays of successive cycles rise above A and do not below it, while
/// inside each cycle they rise and fall with the burst whatever A is. The trend test
/// runs on one median per cycle, as pathload's median filter runs on one per group,
/// and no group straddles part of a cycle (whose phase would drift from group to
/// group and read as a trend).
fn judge_cycles(segs: &[TrainSeg], bursts: &[Range<usize>]) -> Option<TrainResult> {
    let medians: Vec<f64> = bursts
        .iter()
        .map(|b| delays(&segs[b.clone()]))
        .filter(|d| !d.is_empty())
        .map(|d| trend::median(&d))
        .collect();
    if medians.len() < MIN_CYCLES {
        return None;
    }
    let trend = trend::trend_of_medians(&medians)?;
    verdict_at_rate(segs, trend, false)
}

/// The delays (ns) the segments' ACKs measured.
fn delays(segs: &[TrainSeg]) -> Vec<f64> {
    segs.iter()
        .filter_map(|s| s.rtt.map(|x| x.get() as f64))
        .collect()
}

/// A train's verdict `trend` at its sending rate, with the rate's error and what the
/// bottleneck let through; a train that did not rise but came out spread is grey.
fn verdict_at_rate(segs: &[TrainSeg], trend: Trend, burst: bool) -> Option<TrainResult> {
    let (rate_bps, span) = sending_rate(segs)?;
    let noise = delay_noise(segs);
    let err = rate_error(span, noise);
    let out_bps = dispersion(segs, noise);
    let trend = match (trend, out_bps) {
        (Trend::NonIncreasing, Some(out)) if spread_out(rate_bps, err, out) => Trend::Grey,
        _ => trend,
    };
    Some(TrainResult {
        t0: segs.first()?.t,
        t: segs.last()?.t,
        rate_bps,
        trend,
        segments: segs.len(),
        loss: false,
        err,
        out_bps,
        burst,
    })
}

/// Whether a train whose delays read as not rising came back over more than
/// `SPREAD_OUT` times its sending span, beyond both rates' errors: r_in/r_out >
/// `SPREAD_OUT`·(1 + 2(e_in + e_out)). Below A a bottleneck serves a train as fast as
/// it comes, its span stretched only by the cross traffic queued ahead of a few of its
/// packets (a few percent with packet cross traffic at 70% of C); a train that took
/// twice as long to come out met a queue, and its verdict is grey rather than a lower
/// bound at its rate. The trend test misses such a queue where the delays are noisier
/// than the rise it makes: a burst at 1 Gbit/s into a 100-Mbit/s link rises 0.11 ms a
/// segment, and a sender's or a hop's scheduling jitter is milliseconds (online, on a
/// loaded host: lower bounds of 1.1 Gbit/s on a 100-Mbit/s path); the ACK span,
/// milliseconds long, does not miss it.
fn spread_out(rate_bps: f64, err: f64, out: (f64, f64)) -> bool {
    expanded(rate_bps, err, out, SPREAD_OUT)
}

/// Whether a train at `rate_bps` (relative error `err`) came out at `out` = (r_out,
/// its error) slower by more than `factor` beyond both errors: r_in/r_out >
/// `factor`·(1 + 2(e_in + e_out)). With `factor` 1, the expansion that TOPP and the
/// change detector take as the bottleneck's (a ratio within the errors may be none).
pub(super) fn expanded(rate_bps: f64, err: f64, (out, out_err): (f64, f64), factor: f64) -> bool {
    out > 0.0 && rate_bps / out > factor * (1.0 + 2.0 * (err + out_err))
}

/// See `spread_out`.
const SPREAD_OUT: f64 = 2.0;

/// What the bottleneck let through of the path while it carried the train, r_out
/// (bits/s), and its relative error: the bottleneck's model (TOPP's fluid FIFO) is in
/// the module doc. Taken from the ACKs over the whole train, the bytes ACKed after its
/// first ACK over the time from that ACK to its last, not from ACK gaps, which ACK
/// compression bunches and delayed ACKs (one per two segments, or a TSO record's end)
/// make uneven; scaled by the path's bytes per own byte sent over the same segments
/// (other flows' bytes queue with them; a count, exactly 1 for a flow alone). A last
/// ACK that covers fewer segments than the one before it is left out: a lone segment,
/// which the receiver ACKs only when its delayed-ACK timer fires. The error: each end
/// of the ACK span is off by up to the delays' noise and a clock tick, and by as much
/// as the gap next to it differs from the train's median gap between ACKs (a reverse
/// path or a receiver that holds ACKs and releases them together, as a batching hop
/// does, shows as a first gap near zero or a last one far longer than the rest; cross
/// traffic queued between the train's packets moves an end gap by a packet or two of
/// its own, a small part of a train's span). It is r_out's own: the sending times do
/// not enter it, so a burst sent in microseconds at line rate (its r_in barely known)
/// still says what the bottleneck
/// let through over the milliseconds it took.
fn dispersion(segs: &[TrainSeg], noise: f64) -> Option<(f64, f64)> {
    let at = |i: usize| segs[i].acked_at();
    let n = segs.len();
    let group_start = |end: usize| (0..=end).rev().take_while(|&i| at(i) == at(end)).last();
    let first_end = (0..n).take_while(|&i| at(i) == at(0)).last()?;
    let last_start = group_start(n - 1)?;
    let mut end = n - 1;
    if last_start > 0 {
        let prev_start = group_start(last_start - 1)?;
        if n - last_start < last_start - prev_start {
            end = last_start - 1;
        }
    }
    if end <= first_end {
        return None;
    }
    let span_out = at(end)?.checked_sub(at(first_end)?)?;
    if span_out == 0 {
        return None;
    }
    let bytes_out = segs[end].end.wrapping_sub(segs[first_end].end) as f64;
    Some((
        path_share(segs, end) * bytes_out * 8e9 / span_out as f64,
        rate_error(span_out, noise) + end_holds(segs, first_end, end) / span_out as f64,
    ))
}

/// How long the ACKs of segments `first..=last` may have been held on their way, in
/// ns: how far the first and the last gap between their distinct ACK times differ
/// from the median gap, and how far each gap between them that is over
/// `HELD_GAP_FACTOR` times it exceeds it. A bottleneck spaces a train's packets by its own packets and the cross
/// traffic queued between them, a few median gaps at most (iperf3's UDP paced in
/// 1-ms bursts; Poisson packets at 70% of C); a gap of many milliseconds in a train
/// whose ACKs came 0.1 ms apart is a hop or a host that held them (a loaded lab's
/// delay line descheduled for 12 ms made a 100-Mbit/s path's line-rate burst come out
/// at 21 Mbit/s), and the span it stretches says nothing of the bottleneck.
fn end_holds(segs: &[TrainSeg], first: usize, last: usize) -> f64 {
    let mut times: Vec<u64> = segs[first..=last]
        .iter()
        .filter_map(TrainSeg::acked_at)
        .collect();
    times.dedup();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64)
        .collect();
    let (Some(&g0), Some(&gn)) = (gaps.first(), gaps.last()) else {
        return 0.0;
    };
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let inner = gaps.len().saturating_sub(1).max(1);
    let held: f64 = gaps[1..inner]
        .iter()
        .filter(|&&g| g > HELD_GAP_FACTOR * median)
        .map(|&g| g - median)
        .sum();
    (g0 - median).abs() + (gn - median).abs() + held
}

/// See `end_holds`.
const HELD_GAP_FACTOR: f64 = 8.0;

/// The path's bytes sent per byte of the train's own over its segments 1..end (the
/// path's count before segment `end` less that before segment 1 covers the same
/// segments, with the other flows' between them); 1 with fewer than three segments.
fn path_share(segs: &[TrainSeg], end: usize) -> f64 {
    if end < 2 {
        return 1.0;
    }
    let own = segs[end - 1].end.wrapping_sub(segs[0].end) as f64;
    let path = segs[end].path_sent.wrapping_sub(segs[1].path_sent) as f64;
    if own > 0.0 && path >= own {
        path / own
    } else {
        1.0
    }
}

/// The relative error of a verdict at a rate measured over `span` ns, with delays of
/// noise `noise` ns. A stream at rate r for a time D meets a path with room for A < r
/// with a rise of D·(r/A − 1) in its delays, which the trend test misses when the noise
/// hides it, below about twice the noise: so r may exceed A by 2·noise/D unseen (and
/// fall short of it by as much with a rise read into the noise). Each end of the span
/// is read on a clock of `CLOCK_GRANULARITY_NS`.
pub(super) fn rate_error(span: u64, noise: f64) -> f64 {
    2.0 * (noise + CLOCK_GRANULARITY_NS) / span.max(1) as f64
}

/// The noise of a train's delays (ns, a standard deviation), from the second
/// differences of the delays its ACKs measured (one per ACK, of the newest segment it
/// covers, as a delayed ACK times the first of its two segments late by their spacing):
/// a steady rise cancels in them. A median, so an ACK or two held and released together
/// (ACK compression) do not make it: for Gaussian noise σ, |Δ²| has median 0.6745·√6·σ.
fn delay_noise(segs: &[TrainSeg]) -> f64 {
    let per_ack: Vec<f64> = segs
        .iter()
        .zip(segs.iter().skip(1).map(Some).chain([None]))
        .filter(|(s, next)| next.is_none_or(|n| n.acked_at() != s.acked_at()))
        .filter_map(|(s, _)| s.rtt.map(|r| r.get() as f64))
        .collect();
    let mut d2: Vec<f64> = per_ack
        .windows(3)
        .map(|w| (w[2] - 2.0 * w[1] + w[0]).abs())
        .collect();
    if d2.is_empty() {
        return 0.0;
    }
    d2.sort_by(f64::total_cmp);
    d2[d2.len() / 2] / (0.6745 * 6f64.sqrt())
}

/// The gaps between consecutive segments, and the least gap that separates two bursts:
/// `BURST_GAP_FACTOR` times the median gap (at least `BURST_GAP_FLOOR_NS`).
fn gaps_and_burst_gap(segs: &[TrainSeg]) -> Option<(Vec<u64>, u64)> {
    let gaps: Vec<u64> = segs
        .windows(2)
        .map(|w| w[1].t.saturating_sub(w[0].t))
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    let median_gap = *sorted.get(sorted.len() / 2)?;
    let big = median_gap
        .max(BURST_GAP_FLOOR_NS)
        .saturating_mul(BURST_GAP_FACTOR);
    Some((gaps, big))
}

/// A train's bursts: the index ranges between gaps longer than the burst gap.
pub(super) fn bursts(segs: &[TrainSeg]) -> Vec<Range<usize>> {
    let Some((gaps, big)) = gaps_and_burst_gap(segs) else {
        return std::iter::once(0..segs.len()).collect();
    };
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &g) in gaps.iter().enumerate() {
        if g > big {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    out.push(start..segs.len());
    out
}

/// A train's sending rate (bits/s), over whole cycles: a sender that emits bursts with
/// idle gaps between them (TSO, pacing quanta, a busy CPU) would otherwise look faster
/// than it is, as the time from the first to the last packet leaves out the last gap.
/// So the rate is taken from the first packet to the start of the last burst, over the
/// bytes sent before it; for evenly spaced packets that is the usual (n-1)/span. The
/// bytes are the path's, every flow's (`TrainSeg::path_sent`): the bottleneck queues
/// them all, so two flows that each send at 0.6 A together outrun it.
/// With the span it is measured over (ns).
pub(super) fn sending_rate(segs: &[TrainSeg]) -> Option<(f64, u64)> {
    let first = segs.first()?;
    let (gap_at, big) = gaps_and_burst_gap(segs)?;
    let end = gap_at
        .iter()
        .rposition(|&g| g > big)
        .map(|i| i + 1)
        .filter(|&j| j >= segs.len() / 2)
        .unwrap_or(segs.len() - 1);
    let span = segs[end].t.saturating_sub(first.t);
    let bytes = segs[end].path_sent.wrapping_sub(first.path_sent) as u64;
    if span == 0 {
        return None;
    }
    Some((bytes as f64 * 8.0 * 1e9 / span as f64, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of `n` full segments sent 1 µs apart, ACKed every second segment as a
    /// 100-Mbit/s bottleneck releases them, the last ACK `held` ns late.
    fn burst(n: usize, held: u64) -> Vec<TrainSeg> {
        let per_ack_ns = 2.0 * 1448.0 * 8.0 / 100e6 * 1e9;
        (0..n)
            .map(|i| {
                let t = i as u64 * 1_000;
                let k = i / 2;
                let mut acked = 20_000_000 + (k as f64 * per_ack_ns) as u64;
                if k == (n - 1) / 2 {
                    acked += held;
                }
                TrainSeg {
                    end: (i as u32 + 1) * 1448,
                    t,
                    path_sent: i as u32 * 1448,
                    rtt: NonZeroU64::new(acked - t),
                }
            })
            .collect()
    }

    #[test]
    fn a_burst_at_line_rate_gives_what_the_bottleneck_let_through() {
        let (out, e) = dispersion(&burst(24, 0), 0.0).unwrap();
        assert!((out - 100e6).abs() < 1e6, "{out}");
        // The sending span (23 µs) does not enter the error: the ACK span does.
        assert!(e < 0.01, "{e}");
    }

    #[test]
    fn a_train_that_came_out_over_twice_its_sending_span_proves_no_lower_bound() {
        // A burst at 1.1 Gbit/s whose ACKs came back at 100 Mbit/s met a queue,
        // whatever its noisy delays read as.
        let (out, e) = dispersion(&burst(24, 0), 0.0).unwrap();
        assert!(spread_out(1.1e9, 0.05, (out, e)));
        // Packet cross traffic at 70% of C stretches a train below A by a few percent.
        assert!(!spread_out(18.5e6, 0.005, (17.9e6, 0.012)));
        // Twice the span, but within what the ACK span's error allows.
        assert!(!spread_out(250e6, 0.02, (100e6, 0.2)));
        assert!(!spread_out(1e9, 0.0, (0.0, 0.0)), "no output rate");
    }

    #[test]
    fn acks_held_mid_train_by_a_stalled_hop_widen_the_error_so_the_bound_holds() {
        // The ACKs of a line-rate burst through 100 Mbit/s, 0.23 ms apart, all from
        // the seventh on held 12 ms (a hop descheduled): the span reads 40 Mbit/s,
        // and its error says the bottleneck may have let through far more.
        let mut segs = burst(48, 0);
        for s in segs.iter_mut().skip(12) {
            s.rtt = NonZeroU64::new(s.rtt.unwrap().get() + 12_000_000);
        }
        let (out, e) = dispersion(&segs, 0.0).unwrap();
        assert!(out < 50e6, "the stall stretches the span: {out}");
        assert!(e >= 1.0 || out / (1.0 - e) >= 100e6, "{out} ± {e}");
    }

    #[test]
    fn a_last_ack_held_by_a_batching_hop_widens_the_error_so_the_bound_holds() {
        let (out, e) = dispersion(&burst(24, 1_500_000), 0.0).unwrap();
        assert!(out < 70e6, "the held ACK stretches the span: {out}");
        assert!(e < 1.0 && out / (1.0 - e) >= 100e6, "{out} ± {e}");
    }
}
