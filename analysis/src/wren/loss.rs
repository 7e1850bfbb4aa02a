//! Losses and reordering: telling a retransmission from an original that was overtaken,
//! what a retransmission does to RTT samples and trains, and the verdict a real loss
//! gives once its ACK tells it from a spurious retransmission.

use super::flow::{seq_le, seq_lt, Flow, Sent};
use super::train::{bursts, is_one_stream, rate_error, sending_rate, Train, TrainResult, TrainSeg};
use super::trend::Trend;
use super::{Config, Tally};
use crate::record::Record;

/// Retransmissions awaiting their ACK, per flow (40 B each): one per 16 segments at
/// most, and the ACK comes a round trip later (a flow losing a segment in every 16 of
/// a window of 256 fills it). Skipping a verdict when full is safe, but fewer verdicts
/// in a lossy recovery leave the estimate to the trend alone.
const MAX_LOSS_CHECKS: usize = 16;

/// A retransmission awaiting the ACK that tells a real loss from a spurious one, and
/// the verdict on the train that carried the lost segment if it was real.
#[derive(Debug, Clone, Copy)]
pub(super) struct LossCheck {
    seq: u32,
    tsval: u32,
    verdict: TrainResult,
}

impl Flow {
    /// An original sent before the segments around it, reordered before the capture
    /// point: no RTT (it is not tracked), no loss, and the trains go on without it.
    /// The skipped range shrinks to what is still missing.
    pub(super) fn on_overtaken(&mut self, s: Sent, tally: &mut Tally) {
        tally.counters.reordered_segments += 1;
        self.skipped = self.skipped.and_then(|(from, to)| {
            if from == s.seq {
                (s.end != to).then_some((s.end, to))
            } else {
                Some((from, s.seq))
            }
        });
    }

    /// A retransmission of `r.seq`, seen at `t`. Nothing in the retransmitted range may
    /// give an RTT sample (Karn). A segment lost at a drop-tail bottleneck met a full
    /// queue, so a real loss is queued to judge the segments sent up to it. A train's
    /// segments beyond the hole are ACKed only once it is filled: their RTTs are the
    /// recovery's, not the path's, so they are dropped; the segments before it were
    /// delivered in order and keep their timing, except in the lost segment's own
    /// train, which the loss judges. The current train ends here (and is returned), as
    /// the sender's pace now mixes in retransmissions.
    pub(super) fn on_retransmission(
        &mut self,
        r: &Record,
        t: u64,
        cfg: &Config,
        tally: &mut Tally,
    ) -> Option<Train> {
        for s in self.outstanding.iter_mut().filter(|s| seq_lt(r.seq, s.end)) {
            s.tainted = true;
        }
        self.check_loss(r, t, cfg);
        for tr in self
            .pending
            .iter_mut()
            .chain(std::iter::once(&mut self.train))
        {
            let cut = if tr.holds(r.seq) { tr.start } else { r.seq };
            tally.train_segments -= tr.truncate_before(cut);
        }
        (!self.train.segs.is_empty()).then(|| std::mem::take(&mut self.train))
    }

    /// Queues the verdict a loss of `r.seq` would give, to be drawn once the ACK tells
    /// a real loss from a spurious retransmission (Eifel: so only with timestamps). A
    /// segment lost at a drop-tail bottleneck met a full queue: the segments sent up to
    /// it filled the queue, faster than the path had room for, whatever their delays
    /// say (a full queue's delays are flat). A loss among the segments a verdict
    /// already covered is the same evidence, and gives none.
    fn check_loss(&mut self, r: &Record, t: u64, cfg: &Config) {
        let new_loss = self.loss_judged_to.is_none_or(|e| seq_le(e, r.seq));
        if !(new_loss && r.has_timestamps() && self.losses.len() < MAX_LOSS_CHECKS) {
            return;
        }
        if let Some((verdict, lost_end)) = self.loss_verdict(r.seq, t, cfg) {
            self.loss_judged_to = Some(lost_end);
            self.losses.push_back(LossCheck {
                seq: r.seq,
                tsval: r.tsval,
                verdict,
            });
        }
    }

    /// The verdict a real loss of the segment at `seq` gives: the last `min_train`
    /// segments sent up to it (after those the last verdict covered) filled the queue,
    /// so they were sent faster than the path's available bandwidth.
    /// Their rate says something only if they were one stream: a slow start's bursts
    /// overflow the queue with the whole window, whatever the pace of its last
    /// `min_train`. With the end of the lost segment.
    fn loss_verdict(&self, seq: u32, t: u64, cfg: &Config) -> Option<(TrainResult, u32)> {
        let (segs, lost_end) = self.sent_up_to_loss(seq)?;
        if segs.len() < cfg.min_train {
            return None;
        }
        let segs = &segs[segs.len() - cfg.min_train..];
        if !is_one_stream(&bursts(segs)) {
            return None;
        }
        let (rate_bps, span) = sending_rate(segs)?;
        let verdict = TrainResult {
            t0: segs[0].t,
            t,
            rate_bps,
            trend: Trend::Increasing,
            segments: segs.len(),
            loss: true,
            err: rate_error(span, 0.0) + standing_queue_error(segs.len()),
            out_bps: None,
            burst: false,
        };
        Some((verdict, lost_end))
    }

    /// The segments sent up to the lost one at `seq` that no verdict covered yet, and
    /// the lost segment's end. They are found among the segments still unACKed (a long
    /// recovery keeps them) or in the lost segment's train (a single loss: the ones
    /// before it were ACKed), whichever holds more.
    fn sent_up_to_loss(&self, seq: u32) -> Option<(Vec<TrainSeg>, u32)> {
        let after = |end: u32| self.loss_judged_to.is_none_or(|e| seq_lt(e, end));
        let lost = self.outstanding.partition_point(|s| seq_le(s.end, seq));
        let lost_end = self.outstanding.get(lost)?.end;
        let from_outstanding: Vec<TrainSeg> = self
            .outstanding
            .iter()
            .take(lost + 1)
            .filter(|s| after(s.end))
            .map(|s| TrainSeg {
                end: s.end,
                t: s.t,
                path_sent: s.path_sent,
                rtt: None,
            })
            .collect();
        let from_train: Vec<TrainSeg> = self
            .pending
            .iter()
            .chain(std::iter::once(&self.train))
            .find(|tr| tr.holds(seq))
            .map(|tr| {
                tr.segs
                    .iter()
                    .take_while(|s| seq_le(s.end, lost_end))
                    .filter(|s| after(s.end))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let segs = if from_train.len() > from_outstanding.len() {
            from_train
        } else {
            from_outstanding
        };
        Some((segs, lost_end))
    }

    /// Draws the verdicts of the retransmissions ACK `r` covers (into `out`) or counts
    /// them spurious. Eifel: the first ACK that covers a retransmitted segment echoes
    /// the retransmission's TSval if the retransmission filled the hole, the original's
    /// (older) if the original had arrived after all.
    pub(super) fn resolve_losses(
        &mut self,
        r: &Record,
        tally: &mut Tally,
        out: &mut Vec<TrainResult>,
    ) {
        while let Some(i) = self.losses.iter().position(|c| seq_lt(c.seq, r.ack)) {
            let c = self.losses.remove(i).expect("position is in range");
            if r.has_timestamps() && seq_le(c.tsval, r.tsecr) {
                log::trace!("loss {:?}: {:?}", self.path, c.verdict);
                out.push(c.verdict);
            } else {
                tally.counters.spurious_retransmissions += 1;
            }
        }
    }
}

/// How far below A a train that lost its last segment may have been sent (relative):
/// where the queue was full before the train (a standing queue: a loss-based sender
/// such as cubic, ACK-clocked at A into a drop-tail queue it keeps full, or a queue a
/// faster sender filled before a throttle) and full again at the loss, the queue took
/// in at least what it let out over the train's span, less one packet of room:
/// r_in ≥ A − (one segment over the span), so A ≤ r_in·(1 + 1/(n − 1)) for n segments
/// of the train. (A train that filled an emptier queue was faster still.) The Wren
/// lab's cubic flow after a throttle to 10 Mbit/s lost segments in trains sent at
/// 8.6-13 Mbit/s, ACK-clocked around A.
fn standing_queue_error(segments: usize) -> f64 {
    1.0 / segments.saturating_sub(1).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_train_allows_one_segment_of_room_in_a_queue_full_before_it() {
        // 16 segments: 15 intervals; one segment over the span is r_in/15.
        assert!((standing_queue_error(16) - 1.0 / 15.0).abs() < 1e-12);
        assert!(
            standing_queue_error(64) < standing_queue_error(16),
            "longer: surer"
        );
        assert_eq!(standing_queue_error(1), 1.0, "no interval: no bound of use");
    }
}
