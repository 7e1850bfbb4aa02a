//! Wren: latency and available bandwidth per path, measured passively from the
//! application's own TCP traffic.
//!
//! - RTT: one sample per ACK, from the newest data segment it covers (tcptrace's rule;
//!   retransmitted ranges excluded, Karn); SYN → SYN/ACK; TCP timestamps (TSval seen
//!   first, then echoed as TSecr, as pping does) for the ACKs of segments sequence
//!   numbers could not track. Min, smoothed, percentiles.
//! - Trains: runs of a flow's data segments sent close together (gaps below half the
//!   smoothed RTT, at most `max_train` segments); once every segment of a train is
//!   ACKed, its RTTs go through the trend test (`trend`) and its sending rate is kept.
//!   A train of long bursts with idle gaps between them is no stream at one rate: its
//!   bursts are judged.
//!   A train's rate is the path's, every flow's bytes over its span: the bottleneck
//!   queues them all.
//! - Available bandwidth: between the fastest train without a rising delay trend and
//!   the slowest train with one, over a sliding window; a bound when only one kind has
//!   been seen, "none" when no train qualified. Never below what the path's flows
//!   delivered together (`delivered`), which is itself a lower bound.
//!
//! Paths are (data sender, receiver): the underlay hosts for VXLAN records, the
//! endpoints' IPs for plain ones. Memory is bounded: flows and paths expire when idle
//! (flows that never carried data sooner), per-flow queues have caps, and beyond
//! `max_flows` new flows are counted, not tracked; flows without data may fill only half
//! of the table, so a SYN flood leaves room for the flows Wren measures.
//!
//! The parts: `flow` (per-flow TCP state and RTT samples), `train` (how segments
//! form trains, their rates and verdicts), `loss` (retransmissions, reordering and the
//! verdicts of real losses), `path` (per-path RTT statistics and judged trains),
//! `delivered` (the delivered-rate floor),
//! `estimate` (available bandwidth from the trains, a path's view, and how its answer
//! follows from its trains: `Explanation`, `wrenvnet analyze --explain`), `change`
//! (when A changed, so the estimate uses only the trains since); this module
//! holds the engine and the per-record glue.

mod change;
mod delivered;
mod estimate;
mod explanation;
mod flow;
mod loss;
mod path;
mod train;
pub mod trend;

pub use estimate::{AnswerMbps, AvailKind, PathView};
pub use explanation::{
    Excluded, Explanation, FloorRule, Role, Rule, Split, Topp, ToppOutcome, TrainUse, TrainVerdict,
};
pub use path::PathKey;

use serde::Serialize;

use crate::engine::Engine;
use crate::fasthash::FastMap;
use crate::record::{Record, Timebase, FLAG_BROKEN, FLAG_FRAGMENT, FLAG_VXLAN, NO_HOST};
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN};
use flow::{Flow, FlowKey, Sent};
use path::Path;
use train::TrainResult;

/// How often, in record time, idle flows and paths are looked for.
const EXPIRY_INTERVAL_NS: u64 = 1_000_000_000;

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
    /// A flow that never carried data is forgotten sooner: a handshake completes
    /// within a round trip, and a SYN nobody answered is retried within seconds.
    pub embryonic_idle_ns: u64,
    pub path_idle_ns: u64,
    pub max_flows: usize,
    /// Data segments awaiting an ACK, per flow; beyond it segments go unsampled.
    pub max_outstanding: usize,
    pub max_ts_pending: usize,
    /// Segments awaiting an ACK over all flows (24 bytes each).
    pub max_outstanding_total: usize,
    /// Segments held in trains over all flows (24 bytes each).
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
            embryonic_idle_ns: 5_000_000_000,
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

/// What Wren counts over all flows: the counters it reports, and the segments its
/// memory budget holds.
#[derive(Debug, Default)]
struct Tally {
    counters: WrenCounters,
    /// Segments awaiting an ACK.
    outstanding: usize,
    /// Segments held in trains.
    train_segments: usize,
}

/// The Wren engine.
pub struct Wren {
    cfg: Config,
    flows: FastMap<FlowKey, Flow>,
    paths: FastMap<PathKey, Path>,
    /// Underlay address of each host index in `Record::outer_src`/`outer_dst`.
    hosts: Vec<u32>,
    tally: Tally,
    /// The verdicts one record's ACK draws, kept so that drawing them allocates nothing.
    verdicts: Vec<TrainResult>,
    now: u64,
    last_expiry: u64,
}

impl Wren {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            flows: FastMap::default(),
            paths: FastMap::default(),
            hosts: Vec::new(),
            tally: Tally::default(),
            verdicts: Vec::new(),
            now: 0,
            last_expiry: 0,
        }
    }

    /// The underlay address of every host index records may carry.
    pub fn set_hosts(&mut self, hosts: Vec<u32>) {
        self.hosts = hosts;
    }

    pub fn counters(&self) -> WrenCounters {
        self.tally.counters
    }

    /// Flows tracked, segments awaiting ACKs and segments held in trains: what the
    /// memory budget counts.
    pub fn held(&self) -> (usize, usize, usize) {
        (
            self.flows.len(),
            self.tally.outstanding,
            self.tally.train_segments,
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

    /// A record's size on the wire: a VXLAN record's frame is the inner one, so the
    /// outer headers are added to count underlay frames.
    fn wire_bytes(&self, r: &Record) -> u32 {
        r.frame_len
            + if r.flags & FLAG_VXLAN != 0 {
                self.cfg.vxlan_overhead
            } else {
                0
            }
    }

    /// Handles one record, its time already in ns. A TCP record is first a segment
    /// its flow sent (`on_sent`), then an ACK of the reverse flow's data (`on_acked`);
    /// a record of a flow the table has no room for is not used further. Idle flows
    /// and paths are looked for once per `EXPIRY_INTERVAL_NS` of record time.
    pub fn on_record(&mut self, r: &Record, t: u64) {
        self.tally.counters.records += 1;
        if !r.is_tcp() || r.flags & (FLAG_BROKEN | FLAG_FRAGMENT) != 0 {
            return;
        }
        self.tally.counters.tcp_records += 1;
        self.now = self.now.max(t);
        let Some(path) = self.path_of(r) else { return };
        let key = FlowKey::of(r);
        if !self.on_sent(r, key, path, t) {
            return;
        }
        self.on_acked(r, key.reverse(), t);
        if t.saturating_sub(self.last_expiry) > EXPIRY_INTERVAL_NS {
            self.expire(t);
        }
    }

    /// The record as a segment of flow `key` on `path`: counted on the path, its SYN
    /// and TSval noted for timing, and its data (`Flow::on_data`) tracked for its ACK
    /// and added to a train, or handled as a retransmission or a reordered original. A
    /// train it ends, or its FIN ends, is held for its ACKs or discarded
    /// (`Flow::hold_train`). False
    /// when the flow is new and the table full.
    fn on_sent(&mut self, r: &Record, key: FlowKey, path: PathKey, t: u64) -> bool {
        let bytes = self.wire_bytes(r);
        let cfg = &self.cfg;
        let tally = &mut self.tally;
        let found = flow::flow_and_path(
            &mut self.flows,
            &mut self.paths,
            tally,
            cfg,
            (key, path),
            r.payload_len > 0,
            t,
        );
        let Some((flow, p)) = found else {
            return false;
        };
        p.count(r, t);
        flow.note_sent(r, t, cfg.max_ts_pending);
        if r.payload_len > 0 {
            let s = Sent::of(r, bytes, t, p.sent_wire);
            p.sent_wire += bytes as u64;
            if let Some(tr) = flow.on_data(r, s, p.srtt(), cfg, tally) {
                flow.hold_train(tr, cfg, tally);
            }
        }
        if r.tcp_flags & FLAG_FIN != 0 {
            if let Some(tr) = flow.close_train_at_fin() {
                flow.hold_train(tr, cfg, tally);
            }
        }
        true
    }

    /// The record as an ACK, and a timestamp echo, of the data flow `rev` sends the
    /// other way. An ACK times the SYN it answers and the newest segment it covers,
    /// gives the segments of its trains their RTTs, settles the retransmissions it
    /// covers (`Flow::resolve_losses`) and has the trains it completes judged; an echo
    /// times what sequence numbers could not (`Flow::echo_rtt`). The RTTs and verdicts
    /// go to the reverse flow's path.
    fn on_acked(&mut self, r: &Record, rev: FlowKey, t: u64) {
        let Some(back) = self.flows.get_mut(&rev) else {
            return;
        };
        let mut samples: [Option<u64>; 3] = [None; 3];
        let mut covered = 0;
        if r.tcp_flags & FLAG_ACK != 0 {
            samples[0] = back.syn_rtt(r, t);
            (covered, samples[1]) = back.ack_segments(r.ack, t, &mut self.tally);
            back.ack_trains(r.ack, t);
            back.resolve_losses(r, &mut self.tally, &mut self.verdicts);
            back.judge_acked_trains(&self.cfg, &mut self.tally, &mut self.verdicts);
        }
        if r.has_timestamps() {
            samples[2] = back.echo_rtt(r.tsecr, t, covered > 0);
        }
        let path = back.path;
        if let Some(p) = self.paths.get_mut(&path) {
            p.acked(covered, t, samples[1]);
        }
        self.record_rtts(path, samples, t);
        self.record_verdicts(path, t);
    }

    /// Adds a record's RTT samples (SYN/SYN-ACK, sequence numbers, timestamps; at most
    /// one of each, in that order) to `path`, if it is still tracked.
    fn record_rtts(&mut self, path: PathKey, samples: [Option<u64>; 3], t: u64) {
        if samples.iter().all(Option::is_none) {
            return;
        }
        if let Some(p) = self.paths.get_mut(&path) {
            for ns in samples.into_iter().flatten() {
                p.rtt_sample(ns, t);
            }
        }
    }

    /// Adds the verdicts the record seen at `t` drew to `path`, if it is still tracked.
    fn record_verdicts(&mut self, path: PathKey, t: u64) {
        if self.verdicts.is_empty() {
            return;
        }
        self.tally.counters.trains_judged += self.verdicts.len() as u64;
        if let Some(p) = self.paths.get_mut(&path) {
            for &res in &self.verdicts {
                p.add_train(res, self.cfg.window_ns, t);
            }
        }
        self.verdicts.clear();
    }

    /// Forgets idle flows and paths.
    pub fn expire(&mut self, now: u64) {
        self.last_expiry = now;
        let (fi, pi) = (self.cfg.flow_idle_ns, self.cfg.path_idle_ns);
        let ei = self.cfg.embryonic_idle_ns.min(fi);
        let paths = &mut self.paths;
        let tally = &mut self.tally;
        self.flows.retain(|_, f| {
            let idle = if f.is_embryonic() { ei } else { fi };
            let keep = now.saturating_sub(f.last_seen) <= idle;
            if !keep {
                if let Some(p) = paths.get_mut(&f.path) {
                    p.flows = p.flows.saturating_sub(1);
                }
                let (outstanding, in_trains) = f.held();
                tally.outstanding -= outstanding;
                tally.train_segments -= in_trains;
            }
            keep
        });
        self.paths.retain(|_, p| now.saturating_sub(p.last_t) <= pi);
    }

    /// Views of every path, ordered by endpoints; `name` renders an endpoint.
    pub fn views(&self, name: impl Fn(u32) -> String) -> Vec<PathView> {
        let mut keys: Vec<&PathKey> = self.paths.keys().collect();
        keys.sort();
        keys.into_iter()
            .map(|k| estimate::path_view(k, &self.paths[k], self.cfg.window_ns, &name))
            .collect()
    }
}

impl Wren {
    /// The view of path `src` → `dst` and how its answer follows from its trains,
    /// from one computation (`estimate::path_explained`); `name` renders an endpoint.
    pub fn explain(
        &self,
        src: u32,
        dst: u32,
        name: impl Fn(u32) -> String,
    ) -> Option<(PathView, Explanation)> {
        let k = PathKey { src, dst };
        let p = self.paths.get(&k)?;
        Some(estimate::path_explained(&k, p, self.cfg.window_ns, &name))
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

    fn explain(&self, src: &str, dst: &str) -> Option<serde_json::Value> {
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
        let (view, ex) = Wren::explain(self, ip(src)?, ip(dst)?, |ip| {
            std::net::Ipv4Addr::from(ip).to_string()
        })?;
        Some(serde_json::json!({"path": view, "explain": ex}))
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
