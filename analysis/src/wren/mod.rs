//! Wren: latency and available bandwidth per path, measured passively from the
//! application's own TCP traffic.
//!
//! - RTT: one sample per ACK, from the newest data segment it covers (tcptrace's rule;
//!   retransmitted ranges excluded, Karn); SYN → SYN/ACK; TCP timestamps (TSval seen
//!   first, then echoed as TSecr, as pping does) for the ACKs of segments sequence
//!   numbers could not track. Min, smoothed, percentiles.
//! - Trains: runs of a flow's data segments sent close together (gaps below half the
//!   smoothed RTT, at most `max_train` segments); once every segment of a train is ACKed, its RTTs go
//!   through the trend test (`trend`) and its sending rate is kept. A train of long
//!   bursts with idle gaps between them is no stream at one rate: its bursts are judged.
//! - Available bandwidth: between the fastest train without a rising delay trend and
//!   the slowest train with one, over a sliding window; a bound when only one kind has
//!   been seen, "none" when no train qualified.
//!
//! Paths are (data sender, receiver): the underlay hosts for VXLAN records, the
//! endpoints' IPs for plain ones. Memory is bounded: flows and paths expire when idle,
//! per-flow queues have caps, and beyond `max_flows` new flows are counted, not tracked.

pub mod trend;

use std::collections::hash_map::Entry;
use std::collections::VecDeque;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::Engine;
use crate::fasthash::FastMap;
use crate::record::{Record, Timebase, FLAG_BROKEN, FLAG_FRAGMENT, FLAG_VXLAN, NO_HOST};
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_SYN};
use trend::Trend;

/// Tunables, with defaults that follow from the method, not from any one capture.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Trains with fewer ACK-timed segments are not judged: ⌊√16⌋ = 4 median groups is
    /// the least that gives PCT more than two comparisons.
    pub min_train: usize,
    pub max_train: usize,
    /// The sliding window of trains behind an estimate.
    pub window_ns: u64,
    pub flow_idle_ns: u64,
    pub path_idle_ns: u64,
    pub max_flows: usize,
    /// Data segments awaiting an ACK, per flow; beyond it segments go unsampled.
    pub max_outstanding: usize,
    pub max_ts_pending: usize,
    /// Segments awaiting an ACK over all flows (24 bytes each).
    pub max_outstanding_total: usize,
    /// Segments held in trains over all flows (32 bytes each).
    pub max_train_segments_total: usize,
    /// Bytes added per VXLAN record to count underlay frames (outer Ethernet/IPv4/UDP/VXLAN).
    pub vxlan_overhead: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_train: 16,
            max_train: 128,
            window_ns: 10_000_000_000,
            flow_idle_ns: 30_000_000_000,
            path_idle_ns: 120_000_000_000,
            max_flows: 200_000,
            max_outstanding: 8192,
            max_ts_pending: 32,
            max_outstanding_total: 2_000_000,
            max_train_segments_total: 1_000_000,
            vxlan_overhead: 50,
        }
    }
}

/// Endpoints of a path (IPv4 as u32; for VXLAN, the underlay addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    pub src: u32,
    pub dst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    src: u32,
    sport: u16,
    dst: u32,
    dport: u16,
}

impl FlowKey {
    fn reverse(self) -> Self {
        FlowKey {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    end: u32,
    /// On the wire, headers included.
    bytes: u32,
    t: u64,
    tainted: bool,
}

#[derive(Debug, Clone, Copy)]
struct TrainSeg {
    end: u32,
    t: u64,
    bytes: u32,
    rtt: Option<u64>,
}

#[derive(Debug, Default)]
struct Train {
    /// Sequence number of the first segment's first byte.
    start: u32,
    segs: Vec<TrainSeg>,
    tainted: bool,
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
            s.rtt = Some(t.saturating_sub(s.t));
            self.acked += 1;
        }
    }

    fn complete(&self) -> bool {
        self.acked == self.segs.len()
    }

    /// Whether the byte at `seq` was sent in this train.
    fn holds(&self, seq: u32) -> bool {
        seq_le(self.start, seq) && self.segs.last().is_some_and(|l| seq_lt(seq, l.end))
    }

    /// Keeps the segments that end at or before `seq` (those sent ahead of a hole
    /// there); returns how many were dropped.
    fn truncate_before(&mut self, seq: u32) -> usize {
        let keep = self.segs.partition_point(|s| seq_le(s.end, seq));
        let dropped = self.segs.len() - keep;
        self.segs.truncate(keep);
        self.acked = self.acked.min(keep);
        dropped
    }
}

/// A retransmission awaiting the ACK that tells a real loss from a spurious one, and
/// the verdict on the train that carried the lost segment if it was real.
#[derive(Debug, Clone, Copy)]
struct LossCheck {
    seq: u32,
    tsval: u32,
    verdict: TrainResult,
}

/// Retransmissions awaiting their ACK, per flow (40 B each): one per 16 segments at
/// most, and the ACK comes a round trip later (a flow losing a segment in every 16 of
/// a window of 256 fills it). Skipping a verdict when full is safe, but fewer verdicts
/// in a lossy recovery leave the estimate to the trend alone.
const MAX_LOSS_CHECKS: usize = 16;

/// One direction of a TCP connection: data sent src → dst, and the ACKs coming back.
#[derive(Debug)]
struct Flow {
    path: PathKey,
    outstanding: VecDeque<Seg>,
    high_end: Option<u32>,
    /// The last range a segment skipped over (it began past `high_end`): a segment
    /// inside it later is an original that was overtaken, not a retransmission (a
    /// sender only sends in order, so only reordering before the capture makes one).
    skipped: Option<(u32, u32)>,
    syn: Option<(u32, u64)>,
    ts_sent: VecDeque<(u32, u64)>,
    last_tsval: Option<u32>,
    train: Train,
    pending: VecDeque<Train>,
    losses: VecDeque<LossCheck>,
    /// End of the data the last loss verdict covered.
    loss_judged_to: Option<u32>,
    last_data_t: u64,
    last_seen: u64,
}

/// A judged train.
#[derive(Debug, Clone, Copy)]
struct TrainResult {
    t: u64,
    rate_bps: f64,
    trend: Trend,
    /// Segments in the train: a longer train's verdict counts for more.
    segments: usize,
}

#[derive(Debug)]
struct Path {
    flows: usize,
    packets: u64,
    payload_bytes: u64,
    first_t: u64,
    last_t: u64,
    rtt: Histogram<u64>,
    rtt_min: WindowedMin,
    srtt_ns: f64,
    trains: VecDeque<TrainResult>,
}

/// The minimum over the last one to two windows: a path whose base delay grows (a
/// reroute, a longer link) shows its new minimum within two windows, not never.
#[derive(Debug, Clone, Copy)]
struct WindowedMin {
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

    fn get(&self) -> Option<u64> {
        let m = self.current.min(self.previous);
        (m != u64::MAX).then_some(m)
    }
}

impl Path {
    fn new(t: u64, window_ns: u64) -> Self {
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
        }
    }

    fn rtt_sample(&mut self, ns: u64, t: u64) {
        let us = (ns / 1000).max(1);
        let _ = self.rtt.record(us.min(60_000_000));
        if self.rtt.len() == 1 {
            self.srtt_ns = ns as f64;
        } else {
            self.srtt_ns += (ns as f64 - self.srtt_ns) / 8.0;
        }
        self.rtt_min.push(ns, t);
    }
}

/// What kind of available-bandwidth answer a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailKind {
    Estimate,
    LowerBound,
    UpperBound,
    None,
}

/// A path's view, as published and as `wrenvnet analyze --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PathView {
    pub src: String,
    pub dst: String,
    pub flows: usize,
    pub packets: u64,
    pub bytes: u64,
    pub rtt_samples: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_srtt_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub throughput_mbps: f64,
    pub avail_bw_mbps: Option<f64>,
    pub avail_bw_low_mbps: Option<f64>,
    pub avail_bw_high_mbps: Option<f64>,
    pub avail_bw_kind: AvailKind,
    pub trains: usize,
}

/// Counters of what Wren could not use.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct WrenCounters {
    pub records: u64,
    pub tcp_records: u64,
    pub flows_not_tracked: u64,
    pub segments_unsampled: u64,
    pub trains_judged: u64,
    pub trains_discarded: u64,
    /// Retransmissions whose original arrived after all (so no loss verdict).
    pub spurious_retransmissions: u64,
    /// Segments seen after a later one (reordered before the capture point): not
    /// retransmissions, and not timed.
    pub reordered_segments: u64,
}

/// The Wren engine.
pub struct Wren {
    cfg: Config,
    flows: FastMap<FlowKey, Flow>,
    paths: FastMap<PathKey, Path>,
    /// Underlay address of each host index in `Record::outer_src`/`outer_dst`.
    hosts: Vec<u32>,
    counters: WrenCounters,
    now: u64,
    last_expiry: u64,
    outstanding_total: usize,
    train_segments_total: usize,
}

/// A gap this many times a train's median spacing separates two bursts of the train.
const BURST_GAP_FACTOR: u64 = 4;
/// ... and it is at least this long, so timestamp jitter is not taken for a burst gap.
const BURST_GAP_FLOOR_NS: u64 = 5_000;
/// The widest range (high/low) a point estimate is given for (see `estimate`).
const ESTIMATE_MAX_SPREAD: f64 = 1.6;

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_le(a: u32, b: u32) -> bool {
    !seq_lt(b, a)
}

impl Wren {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            flows: FastMap::default(),
            paths: FastMap::default(),
            hosts: Vec::new(),
            counters: WrenCounters::default(),
            now: 0,
            last_expiry: 0,
            outstanding_total: 0,
            train_segments_total: 0,
        }
    }

    /// The underlay address of every host index records may carry.
    pub fn set_hosts(&mut self, hosts: Vec<u32>) {
        self.hosts = hosts;
    }

    pub fn counters(&self) -> WrenCounters {
        self.counters
    }

    /// Flows tracked, segments awaiting ACKs and segments held in trains: what the
    /// memory budget counts.
    pub fn held(&self) -> (usize, usize, usize) {
        (
            self.flows.len(),
            self.outstanding_total,
            self.train_segments_total,
        )
    }

    /// The path of a record: the underlay hosts of a VXLAN record whose outer hosts are
    /// known (captures on the underlay), else the inner endpoints (plain captures, and
    /// the daemon, which sees its VMs' frames before encapsulation and after
    /// decapsulation).
    fn path_of(&self, r: &Record) -> Option<PathKey> {
        if r.flags & FLAG_VXLAN != 0 && r.outer_src != NO_HOST && r.outer_dst != NO_HOST {
            return Some(PathKey {
                src: *self.hosts.get(r.outer_src as usize)?,
                dst: *self.hosts.get(r.outer_dst as usize)?,
            });
        }
        Some(PathKey {
            src: r.src_ip,
            dst: r.dst_ip,
        })
    }

    /// Handles one record, its time already in ns.
    pub fn on_record(&mut self, r: &Record, t: u64) {
        self.counters.records += 1;
        if !r.is_tcp() || r.flags & (FLAG_BROKEN | FLAG_FRAGMENT) != 0 {
            return;
        }
        self.counters.tcp_records += 1;
        self.now = self.now.max(t);
        let Some(path) = self.path_of(r) else { return };
        let key = FlowKey {
            src: r.src_ip,
            sport: r.src_port,
            dst: r.dst_ip,
            dport: r.dst_port,
        };
        let wire_bytes = r.frame_len
            + if r.flags & FLAG_VXLAN != 0 {
                self.cfg.vxlan_overhead
            } else {
                0
            };

        // This packet's own direction: a sent segment. (One lookup per table: this is the
        // analysis core's per-record cost.)
        let cfg = self.cfg;
        let flows_len = self.flows.len();
        let (flow, p) = match self.flows.entry(key) {
            Entry::Occupied(o) => (
                o.into_mut(),
                self.paths
                    .entry(path)
                    .or_insert_with(|| Path::new(t, cfg.window_ns)),
            ),
            Entry::Vacant(v) => {
                if flows_len >= cfg.max_flows {
                    self.counters.flows_not_tracked += 1;
                    return;
                }
                let p = self
                    .paths
                    .entry(path)
                    .or_insert_with(|| Path::new(t, cfg.window_ns));
                p.flows += 1;
                let flow = v.insert(Flow {
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
                });
                (flow, p)
            }
        };
        p.packets += 1;
        p.payload_bytes += r.payload_len as u64;
        p.last_t = t;
        // The smoothed RTT (queueing included) sets the train time scale: a train is what
        // the sender emits within well under one round trip.
        let srtt = (!p.rtt.is_empty()).then_some(p.srtt_ns as u64);
        flow.last_seen = t;
        if r.tcp_flags & FLAG_SYN != 0 && r.tcp_flags & FLAG_ACK == 0 {
            flow.syn = Some((r.seq, t));
        }
        // Only a segment the receiver must ACK (data, SYN, FIN) times a round trip by its
        // TSval: a pure ACK is not answered, so the next echo of its TSval may come
        // whenever the other side next sends (after an idle period: seconds).
        let elicits_ack = r.payload_len > 0 || r.tcp_flags & (FLAG_SYN | FLAG_FIN) != 0;
        if elicits_ack && r.has_timestamps() && flow.last_tsval != Some(r.tsval) {
            flow.last_tsval = Some(r.tsval);
            // When full, skip this TSval rather than forget the oldest: echoes come in
            // order, so dropping the oldest would lose every sample whenever more than
            // the cap are in flight (a long, queued path), while skipping only samples
            // less often until the next echo frees room.
            if flow.ts_sent.len() < cfg.max_ts_pending {
                flow.ts_sent.push_back((r.tsval, t));
            }
        }
        let mut finished: Vec<Train> = Vec::new();
        if r.payload_len > 0 {
            let end = r.seq.wrapping_add(r.payload_len as u32);
            let retransmission = flow.high_end.is_some_and(|h| seq_lt(r.seq, h));
            let overtaken = retransmission
                && flow
                    .skipped
                    .is_some_and(|(from, to)| seq_le(from, r.seq) && seq_le(end, to));
            if overtaken {
                // Sent before the segments around it: no RTT (it is not tracked), no
                // loss, and the trains go on without it.
                self.counters.reordered_segments += 1;
                flow.skipped = flow.skipped.and_then(|(from, to)| {
                    if from == r.seq {
                        (end != to).then_some((end, to))
                    } else {
                        Some((from, r.seq))
                    }
                });
            } else if retransmission {
                // Karn: nothing in the retransmitted range may give an RTT sample.
                for s in flow.outstanding.iter_mut().filter(|s| seq_lt(r.seq, s.end)) {
                    s.tainted = true;
                }
                // A segment lost at a drop-tail bottleneck met a full queue: the segments
                // sent up to it filled the queue, faster than the path had room for,
                // whatever their delays say (a full queue's delays are flat). That verdict
                // waits for the ACK that tells a real loss from a spurious retransmission
                // (Eifel); a loss among the segments a verdict already covered is the
                // same evidence.
                // A train's segments beyond the hole are ACKed only once it is filled:
                // their RTTs are the recovery's, not the path's, so they are dropped; the
                // segments before it were delivered in order and keep their timing,
                // except in the lost segment's own train, which the loss judges. The
                // current train ends here, as the sender's pace now mixes in
                // retransmissions.
                let new_loss = flow.loss_judged_to.is_none_or(|e| seq_le(e, r.seq));
                if new_loss && r.has_timestamps() && flow.losses.len() < MAX_LOSS_CHECKS {
                    if let Some((verdict, lost_end)) = loss_verdict(flow, r.seq, t, &cfg) {
                        flow.loss_judged_to = Some(lost_end);
                        flow.losses.push_back(LossCheck {
                            seq: r.seq,
                            tsval: r.tsval,
                            verdict,
                        });
                    }
                }
                for tr in flow
                    .pending
                    .iter_mut()
                    .chain(std::iter::once(&mut flow.train))
                {
                    let cut = if tr.holds(r.seq) { tr.start } else { r.seq };
                    self.train_segments_total -= tr.truncate_before(cut);
                }
                if !flow.train.segs.is_empty() {
                    finished.push(std::mem::take(&mut flow.train));
                }
            } else {
                if let Some(h) = flow.high_end.filter(|&h| seq_lt(h, r.seq)) {
                    flow.skipped = Some((h, r.seq));
                }
                flow.high_end = Some(end);
                if flow.outstanding.len() < cfg.max_outstanding
                    && self.outstanding_total < cfg.max_outstanding_total
                {
                    flow.outstanding.push_back(Seg {
                        end,
                        bytes: wire_bytes,
                        t,
                        tainted: false,
                    });
                    self.outstanding_total += 1;
                } else {
                    self.counters.segments_unsampled += 1;
                    flow.train.tainted = true;
                }
                // Trains: a gap of half the smoothed RTT ends one (the sender went idle or
                // waited for ACKs), and so does reaching `max_train` segments.
                let gap_limit = srtt.map(|m| (m / 2).max(20_000)).unwrap_or(1_000_000);
                let close = !flow.train.segs.is_empty()
                    && (t.saturating_sub(flow.last_data_t) > gap_limit
                        || flow.train.segs.len() >= cfg.max_train);
                if close {
                    finished.push(std::mem::take(&mut flow.train));
                }
                if self.train_segments_total < cfg.max_train_segments_total {
                    if flow.train.segs.is_empty() {
                        flow.train.start = r.seq;
                    }
                    flow.train.segs.push(TrainSeg {
                        end,
                        t,
                        bytes: wire_bytes,
                        rtt: None,
                    });
                    self.train_segments_total += 1;
                } else {
                    flow.train.tainted = true;
                }
                flow.last_data_t = t;
            }
        }
        for tr in finished {
            if tr.segs.len() >= cfg.min_train && !tr.tainted {
                flow.pending.push_back(tr);
                // A flow holds a window's worth of trains awaiting ACKs: every train of a
                // long, fast path (80 ms at 100 Mbit/s is ~700 segments in flight) must
                // live until ACKed, or only slow phases ever get judged.
                if flow.pending.len() > cfg.max_outstanding / cfg.min_train.max(1) {
                    let old = flow.pending.pop_front().expect("non-empty");
                    self.train_segments_total -= old.segs.len();
                    self.counters.trains_discarded += 1;
                }
            } else {
                self.train_segments_total -= tr.segs.len();
                self.counters.trains_discarded += 1;
            }
        }

        // The reverse direction: this packet ACKs (and echoes timestamps of) the data
        // flowing the other way.
        let rev = key.reverse();
        // At most three RTT samples per record (SYN/SYN-ACK, seq/ack, timestamps): no allocation.
        let mut samples: [Option<(PathKey, u64)>; 3] = [None; 3];
        let mut judged: Vec<(PathKey, TrainResult)> = Vec::new();
        // Whether this ACK covers segments sequence numbers time (or exclude, Karn).
        let mut covers_tracked = false;
        if let Some(back) = self.flows.get_mut(&rev) {
            if r.tcp_flags & FLAG_ACK != 0 {
                let a = r.ack;
                if r.tcp_flags & FLAG_SYN != 0 {
                    if let Some((s, t0)) = back.syn.take() {
                        if a == s.wrapping_add(1) {
                            samples[0] = Some((back.path, t.saturating_sub(t0)));
                        }
                    }
                }
                let mut last_clean: Option<u64> = None;
                while let Some(s) = back.outstanding.front() {
                    if !seq_le(s.end, a) {
                        break;
                    }
                    let s = back.outstanding.pop_front().expect("front exists");
                    self.outstanding_total -= 1;
                    covers_tracked = true;
                    last_clean = if s.tainted {
                        None
                    } else {
                        Some(t.saturating_sub(s.t))
                    };
                }
                // RTT from the newest segment this ACK covers (tcptrace's sample: one per
                // ACK, timed from the segment that triggered it, so delayed ACKs and the
                // timestamp clock's granularity do not inflate it).
                if let Some(rtt) = last_clean {
                    samples[1] = Some((back.path, rtt));
                }
                // Trains are in sequence order: the first one this ACK leaves incomplete
                // is the last it reaches.
                for tr in back
                    .pending
                    .iter_mut()
                    .chain(std::iter::once(&mut back.train))
                {
                    tr.ack(a, t);
                    if !tr.complete() {
                        break;
                    }
                }
                // Eifel: the first ACK that covers a retransmitted segment echoes the
                // retransmission's TSval if the retransmission filled the hole, the
                // original's (older) if the original had arrived after all.
                while let Some(i) = back.losses.iter().position(|c| seq_lt(c.seq, a)) {
                    let c = back.losses.remove(i).expect("position is in range");
                    if r.has_timestamps() && seq_le(c.tsval, r.tsecr) {
                        log::trace!("loss {:?}: {:?}", back.path, c.verdict);
                        judged.push((back.path, c.verdict));
                    } else {
                        self.counters.spurious_retransmissions += 1;
                    }
                }
                while back
                    .pending
                    .front()
                    .is_some_and(|tr| tr.tainted || tr.complete())
                {
                    let tr = back.pending.pop_front().expect("front exists");
                    self.train_segments_total -= tr.segs.len();
                    if tr.tainted || tr.segs.len() < cfg.min_train {
                        self.counters.trains_discarded += 1;
                        continue;
                    }
                    let verdicts = judge(&tr, cfg.min_train);
                    if verdicts.is_empty() {
                        self.counters.trains_discarded += 1;
                    }
                    for res in verdicts {
                        log::trace!("train {:?}: {:?}", back.path, res);
                        judged.push((back.path, res));
                    }
                }
            }
            if r.has_timestamps() {
                // An echo answers its TSval and every older one (a receiver echoes the
                // segment that moved its window's left edge, so it skips values): drain
                // them all, or values never echoed would hold the queue full for good.
                let mut echoed = None;
                while let Some(&(v, t0)) = back.ts_sent.front() {
                    if !seq_le(v, r.tsecr) {
                        break;
                    }
                    back.ts_sent.pop_front();
                    if v == r.tsecr {
                        echoed = Some(t0);
                    }
                }
                // Timestamps time only the ACKs of segments sequence numbers could not
                // track (a full queue, a capture that began mid-flow). An ACK of a
                // retransmission stays unsampled, as Karn and tcptrace have it: a
                // retransmission is sent when the bottleneck's queue is full, so its
                // (correct) RTT would bias the path's RTT upwards on a lossy path.
                if let (Some(t0), false) = (echoed, covers_tracked) {
                    samples[2] = Some((back.path, t.saturating_sub(t0)));
                }
            }
        }
        for (pk, ns) in samples.into_iter().flatten() {
            if let Some(p) = self.paths.get_mut(&pk) {
                p.rtt_sample(ns, t);
            }
        }
        for (pk, res) in judged {
            self.counters.trains_judged += 1;
            if let Some(p) = self.paths.get_mut(&pk) {
                p.trains.push_back(res);
                while p.trains.len() > 4096
                    || p.trains
                        .front()
                        .is_some_and(|f| res.t.saturating_sub(f.t) > self.cfg.window_ns)
                {
                    p.trains.pop_front();
                }
            }
        }
        if t.saturating_sub(self.last_expiry) > 1_000_000_000 {
            self.expire(t);
        }
    }

    /// Forgets idle flows and paths.
    pub fn expire(&mut self, now: u64) {
        self.last_expiry = now;
        let (fi, pi) = (self.cfg.flow_idle_ns, self.cfg.path_idle_ns);
        let paths = &mut self.paths;
        let (mut freed_out, mut freed_train) = (0usize, 0usize);
        self.flows.retain(|_, f| {
            let keep = now.saturating_sub(f.last_seen) <= fi;
            if !keep {
                if let Some(p) = paths.get_mut(&f.path) {
                    p.flows = p.flows.saturating_sub(1);
                }
                freed_out += f.outstanding.len();
                freed_train +=
                    f.train.segs.len() + f.pending.iter().map(|t| t.segs.len()).sum::<usize>();
            }
            keep
        });
        self.outstanding_total -= freed_out;
        self.train_segments_total -= freed_train;
        self.paths.retain(|_, p| now.saturating_sub(p.last_t) <= pi);
    }

    /// Views of every path, ordered by endpoints; `name` renders an endpoint.
    pub fn views(&self, name: impl Fn(u32) -> String) -> Vec<PathView> {
        let mut keys: Vec<&PathKey> = self.paths.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let p = &self.paths[k];
                let has_rtt = !p.rtt.is_empty();
                let dur = (p.last_t.saturating_sub(p.first_t)) as f64 / 1e9;
                let recent: Vec<TrainResult> = p
                    .trains
                    .iter()
                    .filter(|tr| p.last_t.saturating_sub(tr.t) <= self.cfg.window_ns)
                    .copied()
                    .collect();
                let (kind, est, low, high) = estimate(&recent);
                PathView {
                    src: name(k.src),
                    dst: name(k.dst),
                    flows: p.flows,
                    packets: p.packets,
                    bytes: p.payload_bytes,
                    rtt_samples: p.rtt.len(),
                    rtt_min_us: p.rtt_min.get().map(|m| m as f64 / 1e3),
                    rtt_srtt_us: has_rtt.then(|| p.srtt_ns / 1e3),
                    rtt_mean_us: has_rtt.then(|| p.rtt.mean()),
                    rtt_p50_us: has_rtt.then(|| p.rtt.value_at_quantile(0.5) as f64),
                    rtt_p99_us: has_rtt.then(|| p.rtt.value_at_quantile(0.99) as f64),
                    throughput_mbps: if dur > 0.0 {
                        p.payload_bytes as f64 * 8.0 / dur / 1e6
                    } else {
                        0.0
                    },
                    avail_bw_mbps: est.map(|x| x / 1e6),
                    avail_bw_low_mbps: low.map(|x| x / 1e6),
                    avail_bw_high_mbps: high.map(|x| x / 1e6),
                    avail_bw_kind: kind,
                    trains: recent.len(),
                }
            })
            .collect()
    }
}

/// Judges a fully ACKed train. The trend test (pathload's) assumes a stream at one
/// rate. A train sent at an even pace, or in bursts short enough that each median
/// group of the test spans whole burst cycles, is one: its trend at its sending rate.
/// A train of longer bursts with idle gaps between them is not: the delays rise inside
/// each burst and fall back in each gap as the queue drains, which says nothing about
/// the average rate (an application-limited sender, iperf3 -b or any paced sender that
/// idles, would give verdicts scattered around its average and a bogus estimate). Its
/// bursts long enough to be trains are judged on their own, each at its own rate.
fn judge(tr: &Train, min_train: usize) -> Vec<TrainResult> {
    let segs = &tr.segs;
    let bursts = bursts(segs);
    if is_one_stream(&bursts) {
        return judge_stream(segs).into_iter().collect();
    }
    log::trace!(
        "train of {} in bursts of {:?}",
        segs.len(),
        bursts.iter().map(|b| b.len()).collect::<Vec<_>>()
    );
    bursts
        .into_iter()
        .filter(|b| b.len() >= min_train)
        .filter_map(|b| judge_stream(&segs[b]))
        .collect()
}

/// Whether segments in `bursts` (as `bursts` gives them) are one stream for the trend
/// test: evenly paced (one burst), or in bursts no longer than one of its median groups
/// (⌊√n⌋ of them), so each group spans whole burst cycles and the rate over whole
/// cycles is the rate the path saw.
fn is_one_stream(bursts: &[std::ops::Range<usize>]) -> bool {
    let n = bursts.last().map_or(0, |b| b.end);
    let per_group = n / ((n as f64).sqrt().floor() as usize).max(1);
    bursts.len() == 1 || bursts.iter().all(|b| b.len() <= per_group)
}

/// One stream's verdict: the trend of its delays at its sending rate.
fn judge_stream(segs: &[TrainSeg]) -> Option<TrainResult> {
    let delays: Vec<f64> = segs
        .iter()
        .filter_map(|s| s.rtt.map(|x| x as f64))
        .collect();
    let trend = trend::trend(&delays)?;
    let rate_bps = sending_rate(segs)?;
    Some(TrainResult {
        t: segs.last()?.t,
        rate_bps,
        trend,
        segments: segs.len(),
    })
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
fn bursts(segs: &[TrainSeg]) -> Vec<std::ops::Range<usize>> {
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

/// The verdict a real loss of the segment at `seq` gives: the segments sent up to it
/// (after those the last verdict covered; at least `min_train`, at most `max_train`)
/// filled the queue, so they were sent faster than the path's available bandwidth.
/// They are found among the segments still unACKed (a long recovery keeps them) or in
/// the lost segment's train (a single loss: the ones before it were ACKed). With the
/// end of the lost segment.
fn loss_verdict(flow: &Flow, seq: u32, t: u64, cfg: &Config) -> Option<(TrainResult, u32)> {
    let after = |end: u32| flow.loss_judged_to.is_none_or(|e| seq_lt(e, end));
    let lost = flow.outstanding.partition_point(|s| seq_le(s.end, seq));
    let lost_end = flow.outstanding.get(lost)?.end;
    let from_outstanding: Vec<TrainSeg> = flow
        .outstanding
        .iter()
        .take(lost + 1)
        .filter(|s| after(s.end))
        .map(|s| TrainSeg {
            end: s.end,
            t: s.t,
            bytes: s.bytes,
            rtt: None,
        })
        .collect();
    let from_train: Vec<TrainSeg> = flow
        .pending
        .iter()
        .chain(std::iter::once(&flow.train))
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
    if segs.len() < cfg.min_train {
        return None;
    }
    let segs = &segs[segs.len() - cfg.min_train..];
    // Their rate says something only if they were one stream: a slow start's bursts
    // overflow the queue with the whole window, whatever the pace of its last 16.
    if !is_one_stream(&bursts(segs)) {
        return None;
    }
    let verdict = TrainResult {
        t,
        rate_bps: sending_rate(segs)?,
        trend: Trend::Increasing,
        segments: segs.len(),
    };
    Some((verdict, lost_end))
}

/// A train's sending rate (bits/s), over whole cycles: a sender that emits bursts with
/// idle gaps between them (TSO, pacing quanta, a busy CPU) would otherwise look faster
/// than it is, as the time from the first to the last packet leaves out the last gap.
/// So the rate is taken from the first packet to the start of the last burst, over the
/// bytes sent before it; for evenly spaced packets that is the usual (n-1)/span.
fn sending_rate(segs: &[TrainSeg]) -> Option<f64> {
    let first = segs.first()?;
    let (gap_at, big) = gaps_and_burst_gap(segs)?;
    let end = gap_at
        .iter()
        .rposition(|&g| g > big)
        .map(|i| i + 1)
        .filter(|&j| j >= segs.len() / 2)
        .unwrap_or(segs.len() - 1);
    let span = segs[end].t.saturating_sub(first.t);
    let bytes: u64 = segs[..end].iter().map(|s| s.bytes as u64).sum();
    if span == 0 {
        return None;
    }
    Some(bytes as f64 * 8.0 * 1e9 / span as f64)
}

/// Available bandwidth from judged trains. Sorted by rate, the trains below A should
/// show no rising delay and those above should: the split that misclassifies the
/// fewest trains — each weighted by its length, as a longer train's verdict is
/// surer — places A between the trains around it (the second on each side: one
/// stray train must not make the range). A side backed by fewer than
/// `max(2, 5%)` trains is noise, and then only a bound is known. Grey trains are ignored.
fn estimate(trains: &[TrainResult]) -> (AvailKind, Option<f64>, Option<f64>, Option<f64>) {
    let mut judged: Vec<(f64, bool, usize)> = trains
        .iter()
        .filter(|t| t.trend != Trend::Grey)
        .map(|t| (t.rate_bps, t.trend == Trend::Increasing, t.segments))
        .collect();
    if judged.is_empty() {
        return (AvailKind::None, None, None, None);
    }
    judged.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = judged.len();
    let total_inc_w: usize = judged.iter().filter(|t| t.1).map(|t| t.2).sum();
    // errors(i) = weight of increasing trains below the split + of non-increasing ones above.
    let (mut best_i, mut best_err) = (0usize, usize::MAX);
    let (mut inc_below_w, mut non_below_w) = (0usize, 0usize);
    let total_w: usize = judged.iter().map(|t| t.2).sum();
    for i in 0..=n {
        let non_above_w = (total_w - inc_below_w - non_below_w) - (total_inc_w - inc_below_w);
        let err = inc_below_w + non_above_w;
        if err < best_err {
            best_err = err;
            best_i = i;
        }
        if i < n {
            if judged[i].1 {
                inc_below_w += judged[i].2;
            } else {
                non_below_w += judged[i].2;
            }
        }
    }
    let min_side = 2usize.max(n.div_ceil(20));
    let non_low = judged[..best_i].iter().filter(|t| !t.1).count();
    let inc_high = judged[best_i..].iter().filter(|t| t.1).count();
    // The range's edges: the second non-increasing train below the split and the second
    // increasing one above it, as one train alone is noise (min_side >= 2: both exist).
    let lower = judged[..best_i]
        .iter()
        .rev()
        .filter(|t| !t.1)
        .nth(1)
        .filter(|_| non_low >= min_side)
        .map(|t| t.0);
    let upper = judged[best_i..]
        .iter()
        .filter(|t| t.1)
        .nth(1)
        .filter(|_| inc_high >= min_side)
        .map(|t| t.0);
    match (lower, upper) {
        // A point estimate promises to be within 30% of A: the midpoint of the range is
        // within 30% of every point in it only if hi ≤ 1.6 lo. A wider range (an
        // application-limited sender: slow trains without congestion, bursts with it)
        // is only the bound its slower side proves, with the range beside it.
        (Some(lo), Some(hi)) if hi <= ESTIMATE_MAX_SPREAD * lo => (
            AvailKind::Estimate,
            Some((lo + hi) / 2.0),
            Some(lo),
            Some(hi),
        ),
        (Some(lo), Some(hi)) => (AvailKind::LowerBound, Some(lo), Some(lo), Some(hi)),
        (Some(_), None) => {
            // Everything (but noise) is below A: A is at least the rate of the fastest
            // non-increasing trains — `min_side` of them, as one train is noise.
            let mut non: Vec<f64> = judged.iter().filter(|t| !t.1).map(|t| t.0).collect();
            non.sort_by(|a, b| b.total_cmp(a));
            let lo = non[min_side - 1];
            (AvailKind::LowerBound, Some(lo), Some(lo), None)
        }
        (None, Some(_)) => {
            let mut inc: Vec<f64> = judged.iter().filter(|t| t.1).map(|t| t.0).collect();
            inc.sort_by(f64::total_cmp);
            let hi = inc[min_side - 1];
            (AvailKind::UpperBound, Some(hi), None, Some(hi))
        }
        (None, None) => (AvailKind::None, None, None, None),
    }
}

impl Engine for Wren {
    fn name(&self) -> &'static str {
        "wren"
    }

    fn on_batch(&mut self, records: &[Record], tb: Timebase) {
        for r in records {
            self.on_record(r, tb.to_ns(r.time));
        }
    }

    fn on_tick(&mut self, _now_ns: u64) {
        let now = self.now;
        self.expire(now);
    }

    fn view(&self) -> Option<serde_json::Value> {
        let paths = self.views(|ip| std::net::Ipv4Addr::from(ip).to_string());
        Some(serde_json::json!({
            "paths": paths,
            "counters": self.counters(),
        }))
    }

    fn report(&self) -> Option<String> {
        let views = self.views(|ip| std::net::Ipv4Addr::from(ip).to_string());
        if views.is_empty() {
            return None;
        }
        let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let mut out = String::from("wren paths (RTT us, Mbit/s):");
        for v in views.iter().filter(|v| v.bytes > 0 || v.rtt_samples > 0) {
            out += &format!(
                "\n  {} -> {}: rtt min {} srtt {} p99 {} | tput {:.1} | avail {} ({:?}, {} trains)",
                v.src,
                v.dst,
                f(v.rtt_min_us),
                f(v.rtt_srtt_us),
                f(v.rtt_p99_us),
                v.throughput_mbps,
                f(v.avail_bw_mbps),
                v.avail_bw_kind,
                v.trains
            );
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(rate_mbps: f64, trend: Trend) -> TrainResult {
        TrainResult {
            t: 0,
            rate_bps: rate_mbps * 1e6,
            trend,
            segments: 64,
        }
    }

    #[test]
    fn a_range_too_wide_for_a_point_estimate_is_the_bound_its_slow_side_proves() {
        let mut trains: Vec<TrainResult> = (0..10)
            .map(|i| verdict(70.0 + i as f64, Trend::NonIncreasing))
            .collect();
        trains.extend((0..10).map(|i| verdict(320.0 + i as f64, Trend::Increasing)));
        let (kind, est, low, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        // The edges: the second train on each side of the split (one alone is noise).
        assert_eq!((est, low, high), (Some(78e6), Some(78e6), Some(321e6)));
        // Close sides: an estimate, their midpoint.
        for t in trains.iter_mut().filter(|t| t.trend == Trend::Increasing) {
            t.rate_bps -= 220e6;
        }
        let (kind, est, _, _) = estimate(&trains);
        assert_eq!(kind, AvailKind::Estimate);
        assert_eq!(est, Some(89.5e6));
    }

    #[test]
    fn one_stray_train_on_each_side_makes_no_estimate() {
        // What daemon A judged of app-limited BBR (100 Mbit/s, 80 ms): trains at their
        // average rate below A, bursts far above it, and between them one train at 121
        // that showed no rise beside one at 125 that did. Those two alone made an
        // estimate of 123; the second train on each side leaves only a lower bound.
        let mut trains: Vec<TrainResult> = [6.0, 20.0, 33.0, 46.0, 61.0, 68.0, 86.0, 121.0]
            .iter()
            .map(|&r| verdict(r, Trend::NonIncreasing))
            .collect();
        trains.push(verdict(125.0, Trend::Increasing));
        trains.extend((0..20).map(|i| verdict(5082.0 + 1000.0 * i as f64, Trend::Increasing)));
        let (kind, est, low, high) = estimate(&trains);
        assert_eq!(kind, AvailKind::LowerBound);
        assert_eq!((est, low, high), (Some(86e6), Some(86e6), Some(5082e6)));
    }
}
