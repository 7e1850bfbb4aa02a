//! VTTIF: the application's traffic matrix and communication topology, inferred from
//! the VMs' own traffic.
//!
//! Each window (default 1 s) the bytes and packets per (source VM, destination VM)
//! are counted and folded into an EWMA rate. The topology is the matrix normalised by
//! its largest entry and pruned below a threshold (default 10%); its shape is named
//! for people when it is a known one. A new topology is reported only when it has
//! persisted for `k` windows, so steady traffic never flaps.
//!
//! VMs are known by MAC (underlay captures, the daemon) or by IP (plain captures); each
//! matrix entry also carries the other identity where the traffic showed it (the IPs
//! of a MAC pair, the MACs of an IP pair).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::Engine;
use crate::fasthash::FastMap;
use crate::record::{Direction, Record, Timebase, FLAG_BROKEN, FLAG_IPV6, FLAG_VXLAN};

/// How a VM is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmKey {
    Mac([u8; 6]),
    Ip(u32),
}

impl std::fmt::Display for VmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmKey::Mac(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            VmKey::Ip(ip) => write!(f, "{}", std::net::Ipv4Addr::from(*ip)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub window_ns: u64,
    /// Weight of the newest window in the smoothed rate.
    pub ewma_alpha: f64,
    /// Entries below this fraction of the largest are pruned from the topology.
    pub threshold: f64,
    /// Windows a new topology must persist before it is reported.
    pub persist_windows: usize,
    /// Identify VMs by IP (plain captures) instead of MAC.
    pub by_ip: bool,
    /// At most this many VMs are tracked...
    pub max_vms: usize,
    /// ...and at most this many (source, destination) pairs: the memory bound
    /// (about 100 bytes a pair, so 100 MB at the default).
    pub max_pairs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window_ns: 1_000_000_000,
            ewma_alpha: 0.5,
            threshold: 0.10,
            persist_windows: 3,
            by_ip: false,
            max_vms: 4096,
            max_pairs: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    bytes: u64,
    packets: u64,
    window_bytes: u64,
    rate_bps: f64,
    /// The pair's other identity (IPs when keyed by MAC, MACs when keyed by IP).
    other: Option<(VmKey, VmKey)>,
}

/// A topology: the directed edges that survive pruning, and the shape's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topology {
    pub shape: String,
    pub edges: Vec<[String; 2]>,
    pub threshold: f64,
}

impl Topology {
    /// The named topology of a set of directed edges kept at `threshold`.
    fn of<T: Ord + Copy + std::fmt::Display>(edges: &BTreeSet<(T, T)>, threshold: f64) -> Self {
        Topology {
            shape: shape_of(edges),
            edges: edges
                .iter()
                .map(|(s, d)| [s.to_string(), d.to_string()])
                .collect(),
            threshold,
        }
    }
}

/// One reported change of topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyChange {
    /// Window index (from the first record) at which the new topology was reported.
    pub window: u64,
    pub time_s: f64,
    pub shape: String,
    pub edges: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MatrixEntry {
    pub src: String,
    pub dst: String,
    pub bytes: u64,
    pub packets: u64,
    /// Average over the whole observation (offline) — see `smoothed_mbps` for the EWMA.
    pub rate_mbps: f64,
    pub smoothed_mbps: f64,
    /// The VMs' IPs (matrix keyed by MAC) or MACs (keyed by IP), where seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_also: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_also: Option<String>,
}

pub struct Vttif {
    cfg: Config,
    cells: FastMap<(VmKey, VmKey), Cell>,
    vms: BTreeSet<VmKey>,
    first_t: Option<u64>,
    last_t: u64,
    window: u64,
    reported: Option<BTreeSet<(VmKey, VmKey)>>,
    candidate: Option<(BTreeSet<(VmKey, VmKey)>, usize)>,
    changes: Vec<TopologyChange>,
    pub untracked_records: u64,
}

impl Vttif {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            cells: FastMap::default(),
            vms: BTreeSet::new(),
            first_t: None,
            last_t: 0,
            window: 0,
            reported: None,
            candidate: None,
            changes: Vec::new(),
            untracked_records: 0,
        }
    }

    /// The identity the matrix is not keyed by, when this record shows it.
    fn other_key(by_ip: bool, r: &Record) -> Option<(VmKey, VmKey)> {
        if by_ip {
            Some((VmKey::Mac(r.src_mac), VmKey::Mac(r.dst_mac)))
        } else {
            (r.protocol != 0 && r.flags & FLAG_IPV6 == 0)
                .then_some((VmKey::Ip(r.src_ip), VmKey::Ip(r.dst_ip)))
        }
    }

    fn key(&self, r: &Record) -> Option<(VmKey, VmKey)> {
        // On a daemon, frames that reach the NIC without VXLAN are the underlay's own
        // (ARP, strangers), not VM traffic.
        if r.direction == Direction::FromNic as u8 && r.flags & FLAG_VXLAN == 0 {
            return None;
        }
        if self.cfg.by_ip {
            (r.protocol != 0).then_some((VmKey::Ip(r.src_ip), VmKey::Ip(r.dst_ip)))
        } else {
            // Broadcast and multicast destinations are not VM-to-VM traffic.
            (r.dst_mac[0] & 1 == 0).then_some((VmKey::Mac(r.src_mac), VmKey::Mac(r.dst_mac)))
        }
    }

    pub fn on_record(&mut self, r: &Record, t: u64) {
        if r.flags & FLAG_BROKEN != 0 {
            return;
        }
        let Some((s, d)) = self.key(r) else { return };
        if s == d {
            return;
        }
        let first = *self.first_t.get_or_insert(t);
        self.close_windows_to(t.saturating_sub(first) / self.cfg.window_ns);
        self.last_t = self.last_t.max(t);
        let by_ip = self.cfg.by_ip;
        if let Some(c) = self.cells.get_mut(&(s, d)) {
            c.bytes += r.frame_len as u64;
            c.packets += 1;
            c.window_bytes += r.frame_len as u64;
            if c.other.is_none() {
                c.other = Self::other_key(by_ip, r);
            }
            return;
        }
        if self.cells.len() >= self.cfg.max_pairs {
            self.untracked_records += 1;
            return;
        }
        for v in [s, d] {
            if !self.vms.contains(&v) {
                if self.vms.len() >= self.cfg.max_vms {
                    self.untracked_records += 1;
                    return;
                }
                self.vms.insert(v);
            }
        }
        let other = Self::other_key(by_ip, r);
        let c = self.cells.entry((s, d)).or_default();
        c.bytes += r.frame_len as u64;
        c.packets += 1;
        c.window_bytes += r.frame_len as u64;
        c.other = other;
    }

    /// Closes every window that ended before `now` (online: time passes without records).
    pub fn advance_to(&mut self, now: u64) {
        if let Some(first) = self.first_t {
            self.close_windows_to(now.saturating_sub(first) / self.cfg.window_ns);
        }
    }

    /// Closes windows until window `w` is the current one, in time independent of how
    /// many: the first closes the counts in progress and the next `persist_windows` let
    /// the candidate they leave persist and be reported; past those, an idle window
    /// only scales every rate by the same `1 - ewma_alpha`, which changes no edge (the
    /// threshold is relative to the largest), so the rest are one scaling. A record
    /// stamped years ahead (a clock step, a damaged capture) costs what a second does.
    fn close_windows_to(&mut self, w: u64) {
        for _ in 0..self.cfg.persist_windows + 2 {
            if self.window >= w {
                return;
            }
            self.close_window();
        }
        if self.window >= w {
            return;
        }
        let idle = w - self.window;
        let decay = (1.0 - self.cfg.ewma_alpha).powf(idle as f64);
        for c in self.cells.values_mut() {
            c.rate_bps *= decay;
        }
        let edges = self.edges(|c| c.rate_bps);
        match &mut self.candidate {
            Some((cand, n)) if *cand == edges => *n = n.saturating_add(idle as usize),
            // Rates decayed to nothing: no edge left, and nothing to report.
            _ => self.candidate = Some((edges, idle as usize)),
        }
        self.window = w;
    }

    /// Ends the current window: folds its counts into the EWMA and runs change detection.
    fn close_window(&mut self) {
        let secs = self.cfg.window_ns as f64 / 1e9;
        let a = self.cfg.ewma_alpha;
        for c in self.cells.values_mut() {
            let rate = c.window_bytes as f64 * 8.0 / secs;
            c.rate_bps = a * rate + (1.0 - a) * c.rate_bps;
            c.window_bytes = 0;
        }
        let edges = self.edges(|c| c.rate_bps);
        match &mut self.candidate {
            Some((cand, n)) if *cand == edges => *n += 1,
            _ => self.candidate = Some((edges.clone(), 1)),
        }
        let (cand, n) = self.candidate.as_ref().expect("set above");
        if *n >= self.cfg.persist_windows
            && self.reported.as_ref() != Some(cand)
            && !cand.is_empty()
        {
            let shape = shape_of(cand);
            self.changes.push(TopologyChange {
                window: self.window,
                time_s: self.window as f64 * secs,
                shape,
                edges: cand.len(),
            });
            self.reported = Some(cand.clone());
        }
        self.window += 1;
    }

    fn edges(&self, value: impl Fn(&Cell) -> f64) -> BTreeSet<(VmKey, VmKey)> {
        let max = self.cells.values().map(&value).fold(0.0, f64::max);
        if max <= 0.0 {
            return BTreeSet::new();
        }
        self.cells
            .iter()
            .filter(|(_, c)| value(c) / max >= self.cfg.threshold)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The matrix over everything seen, largest first.
    pub fn matrix(&self) -> Vec<MatrixEntry> {
        let dur = (self.last_t.saturating_sub(self.first_t.unwrap_or(0))) as f64 / 1e9;
        let mut m: Vec<MatrixEntry> = self
            .cells
            .iter()
            .map(|((s, d), c)| MatrixEntry {
                src: s.to_string(),
                dst: d.to_string(),
                bytes: c.bytes,
                packets: c.packets,
                rate_mbps: if dur > 0.0 {
                    c.bytes as f64 * 8.0 / dur / 1e6
                } else {
                    0.0
                },
                smoothed_mbps: c.rate_bps / 1e6,
                src_also: c.other.map(|o| o.0.to_string()),
                dst_also: c.other.map(|o| o.1.to_string()),
            })
            .collect();
        m.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(a.src.cmp(&b.src))
                .then(a.dst.cmp(&b.dst))
        });
        m
    }

    /// The topology of everything seen (total bytes).
    pub fn topology(&self) -> Topology {
        let edges = self.edges(|c| c.bytes as f64);
        Topology::of(&edges, self.cfg.threshold)
    }

    /// The topology reported last (damped: what persisted for k windows), if any.
    pub fn current_topology(&self) -> Option<Topology> {
        self.reported
            .as_ref()
            .map(|edges| Topology::of(edges, self.cfg.threshold))
    }

    /// Topology changes reported so far (damped).
    pub fn changes(&self) -> &[TopologyChange] {
        &self.changes
    }

    /// Flushes the last (partial) window into change detection.
    pub fn finish(&mut self) {
        if self.first_t.is_some() {
            self.close_window();
        }
    }
}

impl Engine for Vttif {
    fn name(&self) -> &'static str {
        "vttif"
    }

    fn on_batch(&mut self, records: &[Record], tb: Timebase) {
        for r in records {
            self.on_record(r, tb.to_ns(r.time));
        }
    }

    fn on_tick(&mut self, now_ns: u64) {
        self.advance_to(now_ns);
    }

    fn view(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "window_s": self.cfg.window_ns as f64 / 1e9,
            "windows": self.window,
            "by": if self.cfg.by_ip { "ip" } else { "mac" },
            "rows": self.matrix(),
            "topology": self.current_topology(),
            "changes": self.changes,
            "untracked_records": self.untracked_records,
        }))
    }

    fn report(&self) -> Option<String> {
        if self.cells.is_empty() {
            return None;
        }
        let t = self.topology();
        let top: Vec<String> = self
            .matrix()
            .iter()
            .take(5)
            .map(|m| format!("{} -> {} {:.1} Mbit/s", m.src, m.dst, m.smoothed_mbps))
            .collect();
        Some(format!(
            "vttif: topology {} ({} edges, {} change(s) reported); top: {}",
            t.shape,
            t.edges.len(),
            self.changes.len(),
            top.join("; ")
        ))
    }
}

/// One daemon's matrix rows, with the VMs it hosts.
#[derive(Debug, Clone)]
pub struct HostView {
    pub host: String,
    /// The VMs this daemon hosts (by the same IDs as the matrix).
    pub local_vms: BTreeSet<String>,
    pub rows: Vec<MatrixEntry>,
}

/// The global VM traffic matrix from the views of all daemons. Traffic between VMs on
/// two hosts is seen by both daemons (leaving one, entering the other): each entry is
/// taken from the daemon that hosts its source VM only, so nothing is counted twice.
/// An entry whose source no daemon claims is taken once, from the first view that has it.
pub fn merge(views: &[HostView]) -> Vec<MatrixEntry> {
    let mut out: BTreeMap<(String, String), MatrixEntry> = BTreeMap::new();
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, v) in views.iter().enumerate() {
        for vm in &v.local_vms {
            owners.entry(vm.as_str()).or_insert(i);
        }
    }
    let owner = |vm: &str| owners.get(vm).copied();
    for (i, v) in views.iter().enumerate() {
        for e in &v.rows {
            let key = (e.src.clone(), e.dst.clone());
            match owner(&e.src) {
                Some(o) if o == i => {
                    out.insert(key, e.clone());
                }
                Some(_) => {}
                None => {
                    out.entry(key).or_insert_with(|| e.clone());
                }
            }
        }
    }
    let mut m: Vec<MatrixEntry> = out.into_values().collect();
    m.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.src.cmp(&b.src))
            .then(a.dst.cmp(&b.dst))
    });
    m
}

/// The entries of a merged matrix that are demands: at least `min_mbps`, and at least
/// `threshold` of the largest entry of their application (the connected component,
/// over entries of at least `min_mbps`, that they belong to). Relative to each
/// application, not to the whole matrix: a fleet's small application is as much an
/// application as its largest, while within one application the threshold still
/// prunes what rides along (the ACKs of a bulk flow).
pub fn demands_of(entries: &[MatrixEntry], threshold: f64, min_mbps: f64) -> Vec<&MatrixEntry> {
    let live: Vec<&MatrixEntry> = entries
        .iter()
        .filter(|e| e.smoothed_mbps >= min_mbps && e.smoothed_mbps > 0.0)
        .collect();
    let mut ix: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &live {
        for vm in [e.src.as_str(), e.dst.as_str()] {
            let n = ix.len();
            ix.entry(vm).or_insert(n);
        }
    }
    let mut parent: Vec<usize> = (0..ix.len()).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for e in &live {
        let (a, b) = (
            root(&mut parent, ix[e.src.as_str()]),
            root(&mut parent, ix[e.dst.as_str()]),
        );
        parent[a] = b;
    }
    let mut largest = vec![0.0_f64; parent.len()];
    for e in &live {
        let r = root(&mut parent, ix[e.src.as_str()]);
        largest[r] = largest[r].max(e.smoothed_mbps);
    }
    live.into_iter()
        .filter(|e| e.smoothed_mbps >= threshold * largest[root(&mut parent, ix[e.src.as_str()])])
        .collect()
}

/// The topology of a matrix by its smoothed (current) rates: entries below
/// `threshold` of the largest are pruned. Used on the merged global matrix.
pub fn topology_of(entries: &[MatrixEntry], threshold: f64) -> Topology {
    let max = entries.iter().map(|e| e.smoothed_mbps).fold(0.0, f64::max);
    let edges: BTreeSet<(&str, &str)> = if max > 0.0 {
        entries
            .iter()
            .filter(|e| e.smoothed_mbps / max >= threshold)
            .map(|e| (e.src.as_str(), e.dst.as_str()))
            .collect()
    } else {
        BTreeSet::new()
    };
    Topology::of(&edges, threshold)
}

/// Names the shape of a set of directed edges (judged on the undirected graph).
pub fn shape_of<T: Ord + Copy>(edges: &BTreeSet<(T, T)>) -> String {
    let mut adj: BTreeMap<T, BTreeSet<T>> = BTreeMap::new();
    for &(a, b) in edges {
        if a != b {
            adj.entry(a).or_default().insert(b);
            adj.entry(b).or_default().insert(a);
        }
    }
    let n = adj.len();
    if n == 0 {
        return "none".into();
    }
    let degrees: Vec<usize> = adj.values().map(|s| s.len()).collect();
    let m: usize = degrees.iter().sum::<usize>() / 2;
    // Connected?
    let start = *adj.keys().next().expect("non-empty");
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(v) = stack.pop() {
        for &w in &adj[&v] {
            if seen.insert(w) {
                stack.push(w);
            }
        }
    }
    let connected = seen.len() == n;
    if degrees.iter().all(|&d| d == 1) {
        return "pairs".into();
    }
    if !connected {
        return "irregular".into();
    }
    if n >= 3 && m == n * (n - 1) / 2 {
        return "all-to-all".into();
    }
    if n >= 3 && degrees.iter().all(|&d| d == 2) {
        return "ring".into();
    }
    if n >= 3 && m == n - 1 {
        if degrees.iter().filter(|&&d| d == n - 1).count() == 1 {
            return "star".into();
        }
        if degrees.iter().all(|&d| d <= 2) {
            return "1-D mesh".into();
        }
        return "tree".into();
    }
    // 2-D neighbour mesh: an r x c grid (r, c >= 2), or its torus.
    for r in 2..=n {
        if !n.is_multiple_of(r) {
            continue;
        }
        let c = n / r;
        if c < r {
            break;
        }
        let grid_edges = r * (c - 1) + c * (r - 1);
        let count = |d: usize| degrees.iter().filter(|&&x| x == d).count();
        if m == grid_edges
            && count(2) == 4
            && count(3) == 2 * (r - 2) + 2 * (c - 2)
            && count(4) == (r - 2) * (c - 2)
        {
            return "2-D mesh".into();
        }
        if r >= 3 && m == 2 * n && degrees.iter().all(|&d| d == 4) {
            return "2-D mesh (torus)".into();
        }
    }
    "irregular".into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn demands_are_judged_within_their_application_not_the_matrix() {
        let e = |src: &str, dst: &str, mbps: f64| MatrixEntry {
            src: src.into(),
            dst: dst.into(),
            smoothed_mbps: mbps,
            ..MatrixEntry::default()
        };
        // A bulk application (a <-> b, its ACKs at 2 Mbit/s) beside a small one (c <-> d
        // at 5 Mbit/s, under 10% of the bulk flow) and noise under min_mbps.
        let m = vec![
            e("a", "b", 900.0),
            e("b", "a", 2.0),
            e("c", "d", 5.0),
            e("d", "c", 4.0),
            e("a", "c", 0.1),
        ];
        let got: Vec<(&str, &str)> = demands_of(&m, 0.1, 1.0)
            .iter()
            .map(|e| (e.src.as_str(), e.dst.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "b"), ("c", "d"), ("d", "c")]);
        assert!(demands_of(&m, 0.1, 1000.0).is_empty());
    }

    use super::*;

    fn set(e: &[(u32, u32)]) -> BTreeSet<(u32, u32)> {
        e.iter().copied().collect()
    }

    /// A frame of `bytes` from VM `s` to VM `d` at `t` (ns).
    fn frame(s: u8, d: u8, bytes: u32, t: u64) -> Record {
        Record {
            time: t,
            src_mac: [2, 0, 0, 0, 0, s],
            dst_mac: [2, 0, 0, 0, 0, d],
            frame_len: bytes,
            ..Default::default()
        }
    }

    /// Two phases (a pair, then a ring of three) with idle gaps of `gap` windows.
    fn phases(v: &mut Vttif, gap: u64) {
        let w = v.cfg.window_ns;
        let mut t = 0;
        for (edges, windows) in [
            (&[(1, 2), (2, 1)][..], 5u64),
            (&[(1, 2), (2, 3), (3, 1)][..], 5),
        ] {
            for _ in 0..windows {
                for &(s, d) in edges {
                    v.on_record(&frame(s, d, 1500, t), t);
                }
                t += w;
            }
            t += gap * w;
        }
        v.advance_to(t);
    }

    #[test]
    fn idle_windows_are_closed_at_once_as_one_by_one() {
        // Against closing every window of a long gap, as an older clock would.
        let mut fast = Vttif::new(Config::default());
        let mut slow = Vttif::new(Config::default());
        phases(&mut fast, 60);
        let w = slow.cfg.window_ns;
        let slow_to = |v: &mut Vttif, t: u64| {
            let first = v.first_t.unwrap_or(t);
            while v.window < t.saturating_sub(first) / w {
                v.close_window();
            }
        };
        let mut t = 0;
        for (edges, windows) in [
            (&[(1, 2), (2, 1)][..], 5u64),
            (&[(1, 2), (2, 3), (3, 1)][..], 5),
        ] {
            for _ in 0..windows {
                for &(s, d) in edges {
                    slow.first_t.get_or_insert(t);
                    slow_to(&mut slow, t);
                    slow.on_record(&frame(s, d, 1500, t), t);
                }
                t += w;
            }
            t += 60 * w;
        }
        slow_to(&mut slow, t);
        assert_eq!(fast.changes(), slow.changes());
        assert_eq!(fast.window, slow.window);
        for (a, b) in fast.matrix().iter().zip(slow.matrix()) {
            assert!((a.smoothed_mbps - b.smoothed_mbps).abs() <= 1e-9 * b.smoothed_mbps.max(1e-30));
        }
        // A record stamped 2^62 ns (146 years) on: one step, the windows counted.
        let mut v = Vttif::new(Config::default());
        phases(&mut v, 1 << 62 >> 30);
        assert!(v.window > 1 << 32, "{}", v.window);
        assert_eq!(v.changes().len(), 2, "{:?}", v.changes());
    }

    #[test]
    fn merging_takes_each_entry_from_its_source_host_once() {
        let e = |s: &str, d: &str, b: u64| MatrixEntry {
            src: s.into(),
            dst: d.into(),
            bytes: b,
            packets: b / 1000,
            rate_mbps: b as f64 * 8.0 / 1e6,
            smoothed_mbps: b as f64 * 8.0 / 1e6,
            src_also: None,
            dst_also: None,
        };
        let vms = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        // a1 (host A) -> b1 (host B) is seen by both daemons, with slightly different counts.
        let a = HostView {
            host: "A".into(),
            local_vms: vms(&["a1"]),
            rows: vec![e("a1", "b1", 1000), e("b1", "a1", 70)],
        };
        let b = HostView {
            host: "B".into(),
            local_vms: vms(&["b1"]),
            rows: vec![e("a1", "b1", 990), e("b1", "a1", 80), e("x", "b1", 5)],
        };
        let m = merge(&[a, b]);
        let get = |s: &str, d: &str| m.iter().find(|x| x.src == s && x.dst == d).map(|x| x.bytes);
        assert_eq!(m.len(), 3);
        assert_eq!(get("a1", "b1"), Some(1000), "from A, which hosts a1");
        assert_eq!(get("b1", "a1"), Some(80), "from B, which hosts b1");
        assert_eq!(get("x", "b1"), Some(5), "an unclaimed source is kept once");
        // Pruning at 10% of the largest keeps a1->b1 and b1->a1 (8%: pruned at 10%).
        let t = topology_of(&m, 0.10);
        assert_eq!(t.edges, vec![["a1".to_string(), "b1".to_string()]]);
        assert_eq!(topology_of(&m, 0.05).shape, "pairs");
    }

    #[test]
    fn names_the_shapes() {
        let ring: Vec<(u32, u32)> = (0..6).map(|i| (i, (i + 1) % 6)).collect();
        assert_eq!(shape_of(&set(&ring)), "ring");
        let mut a2a = Vec::new();
        for i in 0..5 {
            for j in 0..5 {
                if i != j {
                    a2a.push((i, j));
                }
            }
        }
        assert_eq!(shape_of(&set(&a2a)), "all-to-all");
        assert_eq!(shape_of(&set(&[(0, 1), (1, 0), (2, 3), (3, 2)])), "pairs");
        assert_eq!(shape_of(&set(&[(0, 1), (0, 2), (0, 3), (3, 0)])), "star");
        assert_eq!(shape_of(&set(&[(0, 1), (1, 2), (2, 3)])), "1-D mesh");
        assert_eq!(
            shape_of(&set(&[(0, 1), (0, 2), (1, 3), (1, 4), (2, 5)])),
            "tree"
        );
        // 3 x 3 grid, neighbours both ways.
        let mut grid = Vec::new();
        for r in 0..3u32 {
            for c in 0..3u32 {
                let v = r * 3 + c;
                if c < 2 {
                    grid.push((v, v + 1));
                    grid.push((v + 1, v));
                }
                if r < 2 {
                    grid.push((v, v + 3));
                }
            }
        }
        assert_eq!(shape_of(&set(&grid)), "2-D mesh");
        assert_eq!(
            shape_of(&set(&[(0, 1), (1, 2), (2, 0), (0, 3)])),
            "irregular"
        );
    }
}
