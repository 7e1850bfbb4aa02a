//! Per-flow TCP state: one direction of a connection, the segments it sent that await
//! an ACK, and the RTT samples its ACKs and timestamp echoes give.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use super::loss::LossCheck;
use super::path::{Path, PathKey};
use super::train::Train;
use super::{Config, Tally};
use crate::fasthash::FastMap;
use crate::record::Record;
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_SYN};

/// `a` comes before `b` in sequence space (mod 2³²).
pub(super) fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes before `b` in sequence space, or is `b`.
pub(super) fn seq_le(a: u32, b: u32) -> bool {
    !seq_lt(b, a)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FlowKey {
    src: u32,
    sport: u16,
    dst: u32,
    dport: u16,
}

impl FlowKey {
    /// The direction `r` was sent in.
    pub(super) fn of(r: &Record) -> Self {
        FlowKey {
            src: r.src_ip,
            sport: r.src_port,
            dst: r.dst_ip,
            dport: r.dst_port,
        }
    }

    pub(super) fn reverse(self) -> Self {
        FlowKey {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

/// A data segment awaiting its ACK.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seg {
    pub(super) end: u32,
    /// On the wire, headers included.
    pub(super) bytes: u32,
    pub(super) t: u64,
    /// The path's data bytes sent before it (mod 2³²): see `Sent::path_sent`.
    pub(super) path_sent: u32,
    /// Covered by a retransmission: its ACK gives no RTT (Karn).
    pub(super) tainted: bool,
}

/// A data segment as sent: its sequence range, its size on the wire and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    pub(super) seq: u32,
    pub(super) end: u32,
    pub(super) bytes: u32,
    pub(super) t: u64,
    /// The wire bytes of data every flow of the path sent before it (mod 2³²): the
    /// bottleneck sees all of them, so a train's rate is the path's over its span.
    pub(super) path_sent: u32,
}

impl Sent {
    /// Data segment `r`, `bytes` on the wire, seen at `t`, after `path_sent` bytes of
    /// the path's data.
    pub(super) fn of(r: &Record, bytes: u32, t: u64, path_sent: u64) -> Self {
        Sent {
            seq: r.seq,
            end: r.seq.wrapping_add(r.payload_len as u32),
            bytes,
            t,
            path_sent: path_sent as u32,
        }
    }
}

/// How a data segment relates to what the flow sent before it.
enum SegmentKind {
    /// Beyond everything sent so far.
    New,
    /// Inside the range the last new segment skipped: an original that was overtaken.
    Overtaken,
    /// Below the highest end sent and not overtaken: sent again.
    Retransmission,
}

/// One direction of a TCP connection: data sent src → dst, and the ACKs coming back.
#[derive(Debug)]
pub(super) struct Flow {
    pub(super) path: PathKey,
    pub(super) outstanding: VecDeque<Seg>,
    pub(super) high_end: Option<u32>,
    /// The last range a segment skipped over (it began past `high_end`): a segment
    /// inside it later is an original that was overtaken, not a retransmission (a
    /// sender only sends in order, so only reordering before the capture makes one).
    pub(super) skipped: Option<(u32, u32)>,
    pub(super) syn: Option<(u32, u64)>,
    pub(super) ts_sent: VecDeque<(u32, u64)>,
    pub(super) last_tsval: Option<u32>,
    pub(super) train: Train,
    pub(super) pending: VecDeque<Train>,
    pub(super) losses: VecDeque<LossCheck>,
    /// End of the data the last loss verdict covered.
    pub(super) loss_judged_to: Option<u32>,
    pub(super) last_data_t: u64,
    pub(super) last_seen: u64,
}

/// The flow `key` and the path `path` of a record seen at `t`, created when new; `None`
/// (and counted) when the table is full for it. A new flow whose first record carries
/// no data (a SYN, a bare ACK or RST) may fill only half of `max_flows`: a guest
/// opening connections by the hundred thousand (a SYN flood) cannot keep flows that
/// carry data from being tracked. One lookup per table: this is the analysis core's
/// per-record cost.
pub(super) fn flow_and_path<'a>(
    flows: &'a mut FastMap<FlowKey, Flow>,
    paths: &'a mut FastMap<PathKey, Path>,
    tally: &mut Tally,
    cfg: &Config,
    (key, path): (FlowKey, PathKey),
    carries_data: bool,
    t: u64,
) -> Option<(&'a mut Flow, &'a mut Path)> {
    let flows_len = flows.len();
    match flows.entry(key) {
        Entry::Occupied(o) => Some((
            o.into_mut(),
            paths
                .entry(path)
                .or_insert_with(|| Path::new(t, cfg.window_ns)),
        )),
        Entry::Vacant(v) => {
            let cap = if carries_data {
                cfg.max_flows
            } else {
                cfg.max_flows / 2
            };
            if flows_len >= cap {
                tally.counters.flows_not_tracked += 1;
                return None;
            }
            let p = paths
                .entry(path)
                .or_insert_with(|| Path::new(t, cfg.window_ns));
            p.flows += 1;
            Some((v.insert(Flow::new(path, t)), p))
        }
    }
}

impl Flow {
    fn new(path: PathKey, t: u64) -> Self {
        Flow {
            path,
            outstanding: VecDeque::new(),
            high_end: None,
            skipped: None,
            syn: None,
            ts_sent: VecDeque::new(),
            last_tsval: None,
            train: Train::default(),
            pending: VecDeque::new(),
            losses: VecDeque::new(),
            loss_judged_to: None,
            last_data_t: 0,
            last_seen: t,
        }
    }

    /// Whether the flow has carried no data yet (a handshake, or a SYN that nobody
    /// answered).
    pub(super) fn is_embryonic(&self) -> bool {
        self.last_data_t == 0
    }

    /// Segments awaiting an ACK and segments held in trains: what the flow holds of
    /// the memory budget.
    pub(super) fn held(&self) -> (usize, usize) {
        let in_trains =
            self.train.segs.len() + self.pending.iter().map(|t| t.segs.len()).sum::<usize>();
        (self.outstanding.len(), in_trains)
    }

    /// Notes what any segment this flow sends can time: a SYN (timed by the SYN/ACK),
    /// and a TSval (timed by its echo).
    pub(super) fn note_sent(&mut self, r: &Record, t: u64, max_ts_pending: usize) {
        self.last_seen = t;
        if r.tcp_flags & FLAG_SYN != 0 && r.tcp_flags & FLAG_ACK == 0 {
            self.syn = Some((r.seq, t));
        }
        self.note_tsval(r, t, max_ts_pending);
    }

    /// Keeps a TSval to time its echo. Only a segment the receiver must ACK (data, SYN,
    /// FIN) times a round trip by its TSval: a pure ACK is not answered, so the next
    /// echo of its TSval may come whenever the other side next sends (after an idle
    /// period: seconds). When the queue is full the TSval is skipped rather than the
    /// oldest forgotten: echoes come in order, so dropping the oldest would lose every
    /// sample whenever more than the cap are in flight (a long, queued path), while
    /// skipping only samples less often until the next echo frees room.
    fn note_tsval(&mut self, r: &Record, t: u64, max_ts_pending: usize) {
        let elicits_ack = r.payload_len > 0 || r.tcp_flags & (FLAG_SYN | FLAG_FIN) != 0;
        if elicits_ack && r.has_timestamps() && self.last_tsval != Some(r.tsval) {
            self.last_tsval = Some(r.tsval);
            if self.ts_sent.len() < max_ts_pending {
                self.ts_sent.push_back((r.tsval, t));
            }
        }
    }

    /// A data segment: an original overtaken on the way, a retransmission, or new data.
    /// Returns the train it ended, if any.
    pub(super) fn on_data(
        &mut self,
        r: &Record,
        s: Sent,
        srtt: Option<u64>,
        cfg: &Config,
        tally: &mut Tally,
    ) -> Option<Train> {
        match self.kind_of(s) {
            SegmentKind::Overtaken => {
                self.on_overtaken(s, tally);
                None
            }
            SegmentKind::Retransmission => self.on_retransmission(r, s.t, cfg, tally),
            SegmentKind::New => self.on_new_data(s, srtt, cfg, tally),
        }
    }

    fn kind_of(&self, s: Sent) -> SegmentKind {
        let retransmission = self.high_end.is_some_and(|h| seq_lt(s.seq, h));
        let overtaken = retransmission
            && self
                .skipped
                .is_some_and(|(from, to)| seq_le(from, s.seq) && seq_le(s.end, to));
        match (retransmission, overtaken) {
            (_, true) => SegmentKind::Overtaken,
            (true, false) => SegmentKind::Retransmission,
            (false, false) => SegmentKind::New,
        }
    }

    /// New data: it moves the highest end sent (noting a range it skipped, which a
    /// reordered original may fill later), awaits its ACK and joins the current train.
    fn on_new_data(
        &mut self,
        s: Sent,
        srtt: Option<u64>,
        cfg: &Config,
        tally: &mut Tally,
    ) -> Option<Train> {
        if let Some(h) = self.high_end.filter(|&h| seq_lt(h, s.seq)) {
            self.skipped = Some((h, s.seq));
        }
        self.high_end = Some(s.end);
        self.await_ack(s, cfg, tally);
        let finished = self.close_train_before(s.t, srtt, cfg);
        self.extend_train(s, cfg, tally);
        self.last_data_t = s.t;
        finished
    }

    /// Queues a new segment for the ACK that times it, within the per-flow and total
    /// caps; beyond them it goes unsampled, and the current train, now missing a
    /// timing, is tainted.
    fn await_ack(&mut self, s: Sent, cfg: &Config, tally: &mut Tally) {
        if self.outstanding.len() < cfg.max_outstanding
            && tally.outstanding < cfg.max_outstanding_total
        {
            self.outstanding.push_back(Seg {
                end: s.end,
                bytes: s.bytes,
                t: s.t,
                path_sent: s.path_sent,
                tainted: false,
            });
            tally.outstanding += 1;
        } else {
            tally.counters.segments_unsampled += 1;
            self.train.tainted = true;
        }
    }

    /// The RTT of the SYN that SYN/ACK `r` answers; the SYN is forgotten either way.
    pub(super) fn syn_rtt(&mut self, r: &Record, t: u64) -> Option<u64> {
        if r.tcp_flags & FLAG_SYN == 0 {
            return None;
        }
        let (s, t0) = self.syn.take()?;
        (r.ack == s.wrapping_add(1)).then(|| t.saturating_sub(t0))
    }

    /// Releases the segments cumulative ACK `a` covers. Returns the wire bytes it
    /// covered (0: none, so timestamps, not sequence numbers, may time this ACK) and
    /// the RTT of the newest one unless it was retransmitted: tcptrace's sample, one
    /// per ACK, timed from the segment that triggered it, so delayed ACKs and the
    /// timestamp clock's granularity do not inflate it.
    pub(super) fn ack_segments(&mut self, a: u32, t: u64, tally: &mut Tally) -> (u64, Option<u64>) {
        let mut covered = 0u64;
        let mut last_clean: Option<u64> = None;
        while let Some(s) = self.outstanding.front() {
            if !seq_le(s.end, a) {
                break;
            }
            let s = self.outstanding.pop_front().expect("front exists");
            tally.outstanding -= 1;
            covered += s.bytes as u64;
            last_clean = if s.tainted {
                None
            } else {
                Some(t.saturating_sub(s.t))
            };
        }
        (covered, last_clean)
    }

    /// The RTT echo `tsecr`, seen at `t`, gives. Timestamps time only the ACKs of
    /// segments sequence numbers could not track (a full queue, a capture that began
    /// mid-flow), so none when the ACK `covers_tracked` segments: an ACK of a
    /// retransmission stays unsampled, as Karn and tcptrace have it, as a
    /// retransmission is sent when the bottleneck's queue is full, so its (correct) RTT
    /// would bias the path's RTT upwards on a lossy path. The echoed TSvals are drained
    /// either way.
    pub(super) fn echo_rtt(&mut self, tsecr: u32, t: u64, covers_tracked: bool) -> Option<u64> {
        let echoed = self.echo(tsecr);
        if covers_tracked {
            return None;
        }
        echoed.map(|t0| t.saturating_sub(t0))
    }

    /// Drains the TSvals echo `tsecr` answers and returns when the one it echoes was
    /// sent. An echo answers its TSval and every older one (a receiver echoes the
    /// segment that moved its window's left edge, so it skips values): all are drained,
    /// or values never echoed would hold the queue full for good.
    fn echo(&mut self, tsecr: u32) -> Option<u64> {
        let mut echoed = None;
        while let Some(&(v, t0)) = self.ts_sent.front() {
            if !seq_le(v, tsecr) {
                break;
            }
            self.ts_sent.pop_front();
            if v == tsecr {
                echoed = Some(t0);
            }
        }
        echoed
    }
}
