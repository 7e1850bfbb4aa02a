//! Paths between hosts over the overlay links' residual bandwidth: the widest path
//! that meets a latency bound (the residual objective) and the lowest-latency path
//! with room (the latency objective).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::plan::EPS;
use super::problem::{HostId, Instance};

/// Residual bandwidth of every directed link and of every host's local switching,
/// kept up to date as demands are routed and unrouted.
#[derive(Debug, Clone)]
pub struct Residuals {
    pub link: Vec<Vec<f64>>,
    pub local: Vec<f64>,
}

impl Residuals {
    /// Everything free.
    pub fn new(inst: &Instance) -> Self {
        Self {
            link: inst
                .bw
                .iter()
                .map(|row| row.iter().map(|b| b.unwrap_or(f64::NEG_INFINITY)).collect())
                .collect(),
            local: inst.local_bw.clone(),
        }
    }

    /// Everything free to reservations (`Instance::reservable`): where reserved
    /// demands are routed, best-effort traffic yielding to them.
    pub fn reservable(inst: &Instance) -> Self {
        let mut r = Self::new(inst);
        for (&(a, b), &bw) in &inst.reservable {
            if inst.bw[a][b].is_some() {
                r.link[a][b] = bw;
            }
        }
        r
    }

    /// Takes `mbps` along `path` (`sign` = 1.0) or gives it back (`sign` = -1.0).
    pub fn apply(&mut self, path: &[HostId], mbps: f64, sign: f64) {
        if path.len() == 1 {
            self.local[path[0].0] -= sign * mbps;
        }
        for w in path.windows(2) {
            self.link[w[0].0][w[1].0] -= sign * mbps;
        }
    }

    /// The smallest residual along `path` (host-local residual for one host).
    pub fn bottleneck(&self, path: &[HostId]) -> f64 {
        if path.len() == 1 {
            return self.local[path[0].0];
        }
        path.windows(2)
            .map(|w| self.link[w[0].0][w[1].0])
            .fold(f64::INFINITY, f64::min)
    }
}

/// A heap entry: the vertex with the largest key first, the lowest index among equal
/// keys (the order a scan of all vertices would settle them in).
#[derive(PartialEq)]
struct Entry(f64, usize);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Lowest-latency path from `src` to `dst` over links whose residual is at least
/// `min_residual`; returns the path and its latency. Dijkstra over the links there are
/// (a heap keyed by latency), so it costs links, not hosts squared.
fn min_latency(
    inst: &Instance,
    res: &Residuals,
    src: usize,
    dst: usize,
    min_residual: f64,
) -> Option<(Vec<HostId>, f64)> {
    let n = inst.hosts();
    let mut dist = vec![f64::INFINITY; n];
    let mut prev = vec![usize::MAX; n];
    let mut done = vec![false; n];
    let mut heap = BinaryHeap::new();
    dist[src] = 0.0;
    // Lowest latency first (negated: the heap takes the largest key).
    heap.push(Entry(-0.0, src));
    while let Some(Entry(k, u)) = heap.pop() {
        if done[u] || -k != dist[u] {
            continue;
        }
        if u == dst {
            break;
        }
        done[u] = true;
        for &v in &inst.out[u] {
            if done[v] || res.link[u][v] < min_residual - EPS {
                continue;
            }
            let d = dist[u] + inst.latency[u][v];
            // Ties: fewer hops first (prev chain shorter) is implied by strict `<`.
            if d < dist[v] {
                dist[v] = d;
                prev[v] = u;
                heap.push(Entry(-d, v));
            }
        }
    }
    if !dist[dst].is_finite() {
        return None;
    }
    let mut path = vec![HostId(dst)];
    let mut v = dst;
    while v != src {
        v = prev[v];
        path.push(HostId(v));
    }
    path.reverse();
    Some((path, dist[dst]))
}

/// Largest bottleneck residual of any path from `src` to `dst` over links with at
/// least `min_residual` left (a max-min Dijkstra over the links there are), or `None`
/// when none connects them.
fn best_bottleneck(
    inst: &Instance,
    res: &Residuals,
    src: usize,
    dst: usize,
    min_residual: f64,
) -> Option<f64> {
    let n = inst.hosts();
    let mut width = vec![f64::NEG_INFINITY; n];
    let mut done = vec![false; n];
    let mut heap = BinaryHeap::new();
    width[src] = f64::INFINITY;
    heap.push(Entry(f64::INFINITY, src));
    while let Some(Entry(k, u)) = heap.pop() {
        if done[u] || k != width[u] {
            continue;
        }
        if u == dst {
            break;
        }
        done[u] = true;
        for &v in &inst.out[u] {
            let r = res.link[u][v];
            if done[v] || r < min_residual - EPS {
                continue;
            }
            let w = width[u].min(r);
            if w > width[v] {
                width[v] = w;
                heap.push(Entry(w, v));
            }
        }
    }
    (width[dst] > f64::NEG_INFINITY).then_some(width[dst])
}

/// The path from `src` to `dst` whose smallest residual is largest, among paths on
/// which every link has at least `mbps` left and whose latency is within `max_latency`;
/// among equally wide paths the one with the lowest latency. `None` if no such path.
///
/// Method: a max-min Dijkstra gives the widest width W; a lowest-latency Dijkstra over
/// the links at least W wide gives the fastest of the widest paths. If that breaks the
/// latency bound, the feasible set only grows as the width threshold falls, so a binary
/// search over the distinct residual values below W (each step a lowest-latency
/// Dijkstra restricted to links at least that wide) finds the widest threshold that
/// still meets the bound: exact, in O(log E) Dijkstra runs.
pub fn widest_path(
    inst: &Instance,
    res: &Residuals,
    src: HostId,
    dst: HostId,
    mbps: f64,
    max_latency: Option<f64>,
) -> Option<Vec<HostId>> {
    if src == dst {
        return Some(vec![src]);
    }
    let bound = max_latency.unwrap_or(f64::INFINITY) + EPS;
    let widest = best_bottleneck(inst, res, src.0, dst.0, mbps)?;
    let ok = |t: f64| min_latency(inst, res, src.0, dst.0, t).filter(|(_, lat)| *lat <= bound);
    if let Some((path, _)) = ok(widest) {
        return Some(path);
    }
    let mut thresholds: Vec<f64> = Vec::new();
    for (a, out) in inst.out.iter().enumerate() {
        for &b in out {
            let r = res.link[a][b];
            if r >= mbps - EPS && r < widest {
                thresholds.push(r);
            }
        }
    }
    if thresholds.is_empty() {
        return None;
    }
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    // The loosest threshold must work, or nothing does.
    let mut best = ok(*thresholds.last().unwrap())?;
    let (mut lo, mut hi) = (0usize, thresholds.len() - 1); // answer index in [lo, hi]
    while lo < hi {
        let mid = (lo + hi) / 2;
        match ok(thresholds[mid]) {
            Some(found) => {
                best = found;
                hi = mid;
            }
            None => lo = mid + 1,
        }
    }
    // `hi` only ever moves to a threshold that worked, so the last success is the answer.
    Some(best.0)
}

/// The lowest-latency path on which every link has at least `mbps` left, within
/// `max_latency`.
pub fn lowest_latency_path(
    inst: &Instance,
    res: &Residuals,
    src: HostId,
    dst: HostId,
    mbps: f64,
    max_latency: Option<f64>,
) -> Option<Vec<HostId>> {
    if src == dst {
        return Some(vec![src]);
    }
    let (path, lat) = min_latency(inst, res, src.0, dst.0, mbps)?;
    (lat <= max_latency.unwrap_or(f64::INFINITY) + EPS).then_some(path)
}

/// A best-effort path when nothing feasible exists: the widest path ignoring the
/// demand's own size and its latency bound, or the direct hop.
pub fn fallback_path(inst: &Instance, res: &Residuals, src: HostId, dst: HostId) -> Vec<HostId> {
    widest_path(inst, res, src, dst, f64::NEG_INFINITY, None).unwrap_or_else(|| vec![src, dst])
}

/// Every simple path from `src` to `dst` (for the exact solver on small instances).
pub fn all_simple_paths(inst: &Instance, src: HostId, dst: HostId) -> Vec<Vec<HostId>> {
    if src == dst {
        return vec![vec![src]];
    }
    let n = inst.hosts();
    let mut out = Vec::new();
    let mut path = vec![src];
    let mut on = vec![false; n];
    on[src.0] = true;
    fn dfs(
        inst: &Instance,
        dst: usize,
        path: &mut Vec<HostId>,
        on: &mut [bool],
        out: &mut Vec<Vec<HostId>>,
    ) {
        let u = path.last().unwrap().0;
        for v in 0..inst.hosts() {
            if on[v] || inst.bw[u][v].is_none() {
                continue;
            }
            path.push(HostId(v));
            if v == dst {
                out.push(path.clone());
            } else {
                on[v] = true;
                dfs(inst, dst, path, on, out);
                on[v] = false;
            }
            path.pop();
        }
    }
    dfs(inst, dst.0, &mut path, &mut on, &mut out);
    out
}
