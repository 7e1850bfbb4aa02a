//! Applications as the demand graph's connected components (VMs joined by demands),
//! and one component solved on its own against what the rest of a plan leaves.
//!
//! Components share nothing but hosts and links: a component solved against the host
//! capacities, local bandwidth and link bandwidth the others use is the whole problem
//! restricted to it, so a change inside one application need not re-solve the others,
//! and a cold solve costs the sum of the applications' sizes, not their product.
//! The link bandwidth a sub-instance sees is what the others leave, so the residuals it
//! reports for its own demands are the true ones; what it cannot see is how much its
//! own traffic takes from the others' bottlenecks (the whole plan's evaluation does).

use super::anneal::{self, Budget};
use super::greedy;
use super::plan::Plan;
use super::problem::{Demand, HostId, Instance, VmId};

/// One application: its VMs and demands (indices into the instance) and its total
/// traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub vms: Vec<usize>,
    pub demands: Vec<usize>,
    pub mbps: f64,
}

fn find(parent: &mut [usize], mut v: usize) -> usize {
    while parent[v] != v {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    v
}

/// The components with at least one demand, heaviest (total Mbit/s) first; VMs
/// without demands belong to none.
pub fn components(inst: &Instance) -> Vec<Component> {
    let mut parent: Vec<usize> = (0..inst.vms()).collect();
    for d in &inst.demands {
        let (a, b) = (find(&mut parent, d.src.0), find(&mut parent, d.dst.0));
        parent[a.max(b)] = a.min(b);
    }
    let mut by_root: Vec<Option<usize>> = vec![None; inst.vms()];
    let mut out: Vec<Component> = Vec::new();
    for (i, d) in inst.demands.iter().enumerate() {
        let r = find(&mut parent, d.src.0);
        let c = *by_root[r].get_or_insert_with(|| {
            out.push(Component {
                vms: Vec::new(),
                demands: Vec::new(),
                mbps: 0.0,
            });
            out.len() - 1
        });
        out[c].demands.push(i);
        out[c].mbps += d.mbps;
    }
    for v in 0..inst.vms() {
        if let Some(c) = by_root[find(&mut parent, v)] {
            out[c].vms.push(v);
        }
    }
    out.sort_by(|a, b| b.mbps.total_cmp(&a.mbps).then(a.vms[0].cmp(&b.vms[0])));
    out
}

/// What a set of placed VMs and routed demands takes: VMs per host, host-local and
/// link bandwidth.
#[derive(Debug, Clone)]
pub struct Usage {
    pub vms: Vec<usize>,
    pub local: Vec<f64>,
    pub link: Vec<Vec<f64>>,
}

impl Usage {
    pub fn new(hosts: usize) -> Self {
        Usage {
            vms: vec![0; hosts],
            local: vec![0.0; hosts],
            link: vec![vec![0.0; hosts]; hosts],
        }
    }

    /// Adds a placed VM.
    pub fn place(&mut self, h: HostId) {
        self.vms[h.0] += 1;
    }

    /// Adds a routed demand of `mbps` on `path`.
    pub fn route(&mut self, path: &[HostId], mbps: f64) {
        if path.len() == 1 {
            self.local[path[0].0] += mbps;
        }
        for w in path.windows(2) {
            self.link[w[0].0][w[1].0] += mbps;
        }
    }
}

/// A part of an instance as an instance of its own, and the way back.
#[derive(Debug, Clone)]
pub struct Sub {
    pub inst: Instance,
    /// The sub-instance's VM `i` is the instance's VM `vms[i]`.
    pub vms: Vec<usize>,
    /// The sub-instance's demand `i` is the instance's demand `demands[i]`.
    pub demands: Vec<usize>,
}

/// The instance restricted to `vms` and `demands` (whose endpoints must be among
/// `vms`), with the capacities and bandwidths `used` (by the rest of the plan) takes
/// away. A link the rest already overloads keeps its negative residual.
pub fn sub_instance(inst: &Instance, vms: &[usize], demands: &[usize], used: &Usage) -> Sub {
    let mut ix = vec![usize::MAX; inst.vms()];
    for (i, &v) in vms.iter().enumerate() {
        ix[v] = i;
    }
    let n = inst.hosts();
    let bw = (0..n)
        .map(|a| {
            (0..n)
                .map(|b| inst.bw[a][b].map(|x| x - used.link[a][b]))
                .collect()
        })
        .collect();
    let sub = Instance {
        host_names: inst.host_names.clone(),
        vm_names: vms.iter().map(|&v| inst.vm_names[v].clone()).collect(),
        capacity: (0..n)
            .map(|h| inst.capacity[h].saturating_sub(used.vms[h]))
            .collect(),
        local_bw: (0..n).map(|h| inst.local_bw[h] - used.local[h]).collect(),
        bw,
        out: inst.out.clone(),
        latency: inst.latency.clone(),
        current: vms.iter().map(|&v| inst.current[v]).collect(),
        pinned: vms.iter().map(|&v| inst.pinned[v]).collect(),
        demands: demands
            .iter()
            .map(|&i| {
                let d = inst.demands[i];
                Demand {
                    src: VmId(ix[d.src.0]),
                    dst: VmId(ix[d.dst.0]),
                    ..d
                }
            })
            .collect(),
        objective: inst.objective,
        largest_bw: inst.largest_bw,
        // Less everything outside uses (its best-effort too): conservative.
        reservable: (inst.reservable.iter())
            .map(|(&(a, b), &r)| ((a, b), r - used.link[a][b]))
            .collect(),
    };
    Sub {
        inst: sub,
        vms: vms.to_vec(),
        demands: demands.to_vec(),
    }
}

impl Sub {
    /// Writes the sub-instance's `plan` into the instance's `into`.
    pub fn write_back(&self, plan: &Plan, into: &mut Plan) {
        for (i, &v) in self.vms.iter().enumerate() {
            into.mapping[v] = plan.mapping[i];
        }
        for (i, &d) in self.demands.iter().enumerate() {
            into.paths[d] = plan.paths[i].clone();
        }
    }
}

/// Where the VMs without demands go: where they are when their host has room, else the
/// host with the most room left. Counts them into `used`.
pub fn place_idle(inst: &Instance, comps: &[Component], used: &mut Usage) -> Vec<Option<HostId>> {
    let mut in_comp = vec![false; inst.vms()];
    for c in comps {
        for &v in &c.vms {
            in_comp[v] = true;
        }
    }
    let mut out = vec![None; inst.vms()];
    let idle: Vec<usize> = (0..inst.vms()).filter(|&v| !in_comp[v]).collect();
    // Those already placed first, so an unplaced VM does not take their room.
    for &v in idle.iter().filter(|&&v| inst.current[v].is_some()) {
        let c = inst.current[v].unwrap();
        if inst.pinned[v] || used.vms[c.0] < inst.capacity[c.0] {
            out[v] = Some(c);
            used.place(c);
        }
    }
    for &v in &idle {
        if out[v].is_none() {
            let h = (0..inst.hosts())
                .max_by_key(|&h| {
                    (
                        inst.capacity[h] as i64 - used.vms[h] as i64,
                        std::cmp::Reverse(h),
                    )
                })
                .map_or(HostId(0), HostId);
            out[v] = Some(h);
            used.place(h);
        }
    }
    out
}

/// A cold solve per application: the VMs without demands stay where they are, then
/// each component, heaviest first, by GH+SA against what those before it left.
/// `iterations` caps each component's SA (`None`: its size's default).
pub fn solve_by_components(inst: &Instance, seed: u64, iterations: Option<u64>) -> Plan {
    let comps = components(inst);
    let mut used = Usage::new(inst.hosts());
    let idle = place_idle(inst, &comps, &mut used);
    let mut plan = Plan {
        mapping: idle.iter().map(|h| h.unwrap_or(HostId(0))).collect(),
        paths: vec![Vec::new(); inst.demands.len()],
    };
    for c in &comps {
        let sub = sub_instance(inst, &c.vms, &c.demands, &used);
        let budget = Budget {
            iterations: iterations.unwrap_or(Budget::for_instance(&sub.inst).iterations),
            time_ms: None,
        };
        let (p, _) = anneal::anneal(&sub.inst, greedy::greedy(&sub.inst), seed, budget);
        for h in &p.mapping {
            used.place(*h);
        }
        for (d, path) in sub.inst.demands.iter().zip(&p.paths) {
            used.route(path, d.mbps);
        }
        sub.write_back(&p, &mut plan);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vadapt::plan::evaluate;
    use crate::vadapt::random::{instance, Shape};
    use crate::vadapt::rng::Rng;

    #[test]
    fn components_partition_the_demands() {
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            let p = instance(
                &mut rng,
                Shape {
                    hosts: 6,
                    vms: 12,
                    demand_factor: 0.4,
                    link_density: 0.5,
                    latency_objective: false,
                },
            );
            let inst = Instance::from_problem(&p).unwrap();
            let comps = components(&inst);
            let mut seen = vec![0; inst.demands.len()];
            let mut owner = vec![usize::MAX; inst.vms()];
            for (k, c) in comps.iter().enumerate() {
                for &v in &c.vms {
                    assert_eq!(owner[v], usize::MAX, "a VM in two components");
                    owner[v] = k;
                }
                for &i in &c.demands {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 1));
            for (k, c) in comps.iter().enumerate() {
                for &i in &c.demands {
                    let d = inst.demands[i];
                    assert_eq!((owner[d.src.0], owner[d.dst.0]), (k, k));
                }
            }
            assert!(comps.windows(2).all(|w| w[0].mbps >= w[1].mbps));
            let plan = solve_by_components(&inst, 1, Some(500));
            let e = evaluate(&inst, &plan);
            assert!(!e.objective.is_nan() || !e.feasible);
        }
    }
}
