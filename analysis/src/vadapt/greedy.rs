//! GH, the greedy heuristic: place the heaviest-communicating VMs first, together on
//! one host when they fit or on the best-connected hosts otherwise; then route each
//! demand, heaviest first, on the widest path that meets its latency bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::plan::Plan;
use super::problem::{Demand, HostId, Instance, Objective, VmId};
use super::routing::{fallback_path, lowest_latency_path, widest_path, Residuals};

/// All-pairs widest-path bandwidth over raw link capacities (a max-min Dijkstra from
/// every host) and all-pairs lowest latency (a Dijkstra from every host): hosts times
/// links, where Floyd-Warshall's hosts cubed was most of a cold solve at 1,000 hosts.
pub(crate) fn all_pairs(inst: &Instance) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = inst.hosts();
    let raw = |a: usize, b: usize| inst.bw[a][b].unwrap_or(f64::NEG_INFINITY);
    let wide = (0..n)
        .map(|a| from_one(inst, a, f64::INFINITY, |w, a, b| w.min(raw(a, b)), true))
        .collect();
    let lat = (0..n)
        .map(|a| from_one(inst, a, 0.0, |l, a, b| l + inst.latency[a][b], false))
        .collect();
    (wide, lat)
}

/// Best key from `src` to every host over the links: the largest (`maximise`, keys
/// from -inf) or the smallest (keys from +inf), `step` extending a key over a link.
fn from_one(
    inst: &Instance,
    src: usize,
    start: f64,
    step: impl Fn(f64, usize, usize) -> f64,
    maximise: bool,
) -> Vec<f64> {
    let n = inst.hosts();
    let sign = if maximise { 1.0 } else { -1.0 };
    let mut key = vec![-sign * f64::INFINITY; n];
    let mut done = vec![false; n];
    let mut heap = BinaryHeap::new();
    key[src] = start;
    heap.push((Ordered(sign * start), Reverse(src)));
    while let Some((Ordered(k), Reverse(u))) = heap.pop() {
        if done[u] || sign * k != key[u] {
            continue;
        }
        done[u] = true;
        for &v in &inst.out[u] {
            let x = step(key[u], u, v);
            if !done[v] && sign * x > sign * key[v] {
                key[v] = x;
                heap.push((Ordered(sign * x), Reverse(v)));
            }
        }
    }
    key
}

/// An f64 ordered by `total_cmp`, for the heap.
#[derive(PartialEq)]
struct Ordered(f64);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Ordered {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Routes every demand of `mapping` on current residuals: the reserved ones first, on
/// what reservations may take (`Residuals::reservable`), then the heaviest first.
pub fn route_all(inst: &Instance, mapping: &[HostId]) -> (Vec<Vec<HostId>>, Residuals) {
    let mut res = Residuals::new(inst);
    let mut held = Residuals::reservable(inst);
    let mut order: Vec<usize> = (0..inst.demands.len()).collect();
    order.sort_by(|&a, &b| Demand::first(&inst.demands, a, b));
    let mut paths = vec![Vec::new(); inst.demands.len()];
    for i in order {
        let reserved = inst.demands[i].reserved_mbps > 0.0;
        let p = route_one(inst, if reserved { &held } else { &res }, mapping, i);
        res.apply(&p, inst.demands[i].mbps, 1.0);
        if reserved {
            held.apply(&p, inst.demands[i].reserved_mbps, 1.0);
        }
        paths[i] = p;
    }
    (paths, res)
}

/// The path GH gives demand `i` on residuals `res` (not yet applied).
pub fn route_one(inst: &Instance, res: &Residuals, mapping: &[HostId], i: usize) -> Vec<HostId> {
    let d = &inst.demands[i];
    let (s, t) = (mapping[d.src.0], mapping[d.dst.0]);
    let found = match inst.objective {
        Objective::ResidualBw => widest_path(inst, res, s, t, d.mbps, d.max_latency_ms),
        Objective::Latency => lowest_latency_path(inst, res, s, t, d.mbps, d.max_latency_ms),
    };
    found.unwrap_or_else(|| fallback_path(inst, res, s, t))
}

/// GH: greedy placement, then greedy routing.
pub fn greedy(inst: &Instance) -> Plan {
    let mapping = greedy_mapping(inst);
    let (paths, _) = route_all(inst, &mapping);
    Plan { mapping, paths }
}

fn greedy_mapping(inst: &Instance) -> Vec<HostId> {
    let n = inst.hosts();
    let (wide, lat) = all_pairs(inst);
    let mut placed: Vec<Option<HostId>> = vec![None; inst.vms()];
    let mut load = vec![0usize; n];
    let mut local_used = vec![0.0f64; n];
    for v in 0..inst.vms() {
        if inst.pinned[v] {
            let h = inst.current[v].expect("validated: pinned VMs have a host");
            placed[v] = Some(h);
            load[h.0] += 1;
        }
    }
    // Best-connected hosts: total capacity of their links both ways.
    let conn: Vec<f64> = (0..n)
        .map(|h| {
            (0..n)
                .map(|o| inst.bw[h][o].unwrap_or(0.0) + inst.bw[o][h].unwrap_or(0.0))
                .sum()
        })
        .collect();
    let mut traffic = vec![0.0f64; inst.vms()];
    for d in &inst.demands {
        traffic[d.src.0] += d.mbps;
        traffic[d.dst.0] += d.mbps;
    }
    let mut order: Vec<usize> = (0..inst.demands.len()).collect();
    order.sort_by(|&a, &b| Demand::first(&inst.demands, a, b));

    // Score of putting `vm` on `h` given its partner on `partner` (for a demand of
    // `mbps` in direction `forward`: vm is the source). Higher is better.
    let score = |h: usize,
                 partner: Option<HostId>,
                 mbps: f64,
                 vm_is_src: bool,
                 local_used: &[f64]|
     -> f64 {
        match partner {
            None => conn[h],
            Some(p) if p.0 == h => match inst.objective {
                Objective::ResidualBw => inst.local_bw[h] - local_used[h] - mbps,
                Objective::Latency => 0.0,
            },
            Some(p) => {
                let (a, b) = if vm_is_src { (h, p.0) } else { (p.0, h) };
                match inst.objective {
                    Objective::ResidualBw => wide[a][b] - mbps,
                    Objective::Latency => -lat[a][b],
                }
            }
        }
    };
    let pick = |vm: VmId,
                partner: Option<HostId>,
                mbps: f64,
                vm_is_src: bool,
                load: &[usize],
                local_used: &[f64],
                need: usize|
     -> Option<HostId> {
        let mut best: Option<(f64, bool, usize)> = None;
        for h in 0..n {
            if load[h] + need > inst.capacity[h] {
                continue;
            }
            let s = score(h, partner, mbps, vm_is_src, local_used);
            let here = inst.current[vm.0] == Some(HostId(h));
            let cand = (s, here, h);
            let better = match best {
                None => true,
                Some((bs, bh, _)) => s > bs + 1e-9 || ((s - bs).abs() <= 1e-9 && here && !bh),
            };
            if better {
                best = Some(cand);
            }
        }
        best.map(|b| HostId(b.2))
    };

    for i in order {
        let d = inst.demands[i];
        let (u, v) = (d.src, d.dst);
        match (placed[u.0], placed[v.0]) {
            (Some(_), Some(_)) => {}
            (None, None) => {
                // Together on one host if one has room for both and the local switch can
                // carry the demand; else the heavier VM on the best-connected host.
                let together = (0..n)
                    .filter(|&h| {
                        load[h] + 2 <= inst.capacity[h]
                            && inst.local_bw[h] - local_used[h] >= d.mbps
                    })
                    .max_by(|&a, &b| {
                        let key = |h: usize| {
                            let at = (inst.current[u.0] == Some(HostId(h))) as u8
                                + (inst.current[v.0] == Some(HostId(h))) as u8;
                            (at, inst.local_bw[h] - local_used[h])
                        };
                        let (ka, kb) = (key(a), key(b));
                        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(b.cmp(&a))
                    });
                if let Some(h) = together {
                    placed[u.0] = Some(HostId(h));
                    placed[v.0] = Some(HostId(h));
                    load[h] += 2;
                    local_used[h] += d.mbps;
                    continue;
                }
                let (first, second, first_is_src) = if traffic[u.0] >= traffic[v.0] {
                    (u, v, true)
                } else {
                    (v, u, false)
                };
                if let Some(h) = pick(first, None, d.mbps, first_is_src, &load, &local_used, 1) {
                    placed[first.0] = Some(h);
                    load[h.0] += 1;
                    if let Some(h2) = pick(
                        second,
                        Some(h),
                        d.mbps,
                        !first_is_src,
                        &load,
                        &local_used,
                        1,
                    ) {
                        placed[second.0] = Some(h2);
                        load[h2.0] += 1;
                        if h2 == h {
                            local_used[h.0] += d.mbps;
                        }
                    }
                }
            }
            (Some(hu), None) => {
                if let Some(h) = pick(v, Some(hu), d.mbps, false, &load, &local_used, 1) {
                    placed[v.0] = Some(h);
                    load[h.0] += 1;
                    if h == hu {
                        local_used[h.0] += d.mbps;
                    }
                }
            }
            (None, Some(hv)) => {
                if let Some(h) = pick(u, Some(hv), d.mbps, true, &load, &local_used, 1) {
                    placed[u.0] = Some(h);
                    load[h.0] += 1;
                    if h == hv {
                        local_used[h.0] += d.mbps;
                    }
                }
            }
        }
    }
    // VMs without demands (or that found no room above): stay put if possible, else
    // the emptiest host; when every host is full the plan is infeasible (capacity).
    (0..inst.vms())
        .map(|v| {
            placed[v].unwrap_or_else(|| {
                let h = match inst.current[v] {
                    Some(c) if load[c.0] < inst.capacity[c.0] => c.0,
                    _ => (0..n)
                        .max_by_key(|&h| {
                            (
                                inst.capacity[h] as i64 - load[h] as i64,
                                std::cmp::Reverse(h),
                            )
                        })
                        .unwrap_or(0),
                };
                load[h] += 1;
                HostId(h)
            })
        })
        .collect()
}
