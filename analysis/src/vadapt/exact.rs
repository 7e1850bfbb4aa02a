//! Exact: branch and bound over every placement and, for each complete placement,
//! over every simple path of every demand. The oracle GH and SA are measured against;
//! practical up to about 8 VMs on 6 hosts. A node or time budget stops it, in which
//! case the answer is the best found and is reported as not proven optimal.

use std::collections::HashMap;
use std::time::Instant;

use super::greedy::all_pairs;
use super::plan::{better, evaluate, Evaluation, Plan, EPS};
use super::problem::{HostId, Instance, Objective};
use super::routing::all_simple_paths;

#[derive(Debug, Clone, Copy)]
pub struct ExactBudget {
    pub max_nodes: u64,
    pub time_ms: Option<u64>,
}

impl Default for ExactBudget {
    fn default() -> Self {
        Self {
            max_nodes: 200_000_000,
            time_ms: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExactStats {
    pub nodes: u64,
    /// False when a budget stopped the search.
    pub proven_optimal: bool,
}

/// A candidate path with its latency.
type Candidate = (Vec<HostId>, f64);

struct Search<'a> {
    inst: &'a Instance,
    wide: Vec<Vec<f64>>,
    lat: Vec<Vec<f64>>,
    paths: HashMap<(usize, usize), Vec<Candidate>>,
    order: Vec<usize>,
    best: Option<(Plan, Evaluation)>,
    nodes: u64,
    budget: ExactBudget,
    began: Instant,
    stopped: bool,
    /// Upper bound of any demand's contribution, whatever its placement (residual objective).
    global_best: f64,
}

/// Solves `inst` exactly, starting from an optional incumbent (e.g. GH+SA's plan).
pub fn exact(
    inst: &Instance,
    incumbent: Option<Plan>,
    budget: ExactBudget,
) -> (Option<Plan>, ExactStats) {
    let (wide, lat) = all_pairs(inst);
    let n = inst.hosts();
    let mut global_best = inst
        .local_bw
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    for a in 0..n {
        for b in 0..n {
            if a != b && wide[a][b].is_finite() {
                global_best = global_best.max(wide[a][b]);
            }
        }
    }
    let mut traffic = vec![0.0f64; inst.vms()];
    for d in &inst.demands {
        traffic[d.src.0] += d.mbps;
        traffic[d.dst.0] += d.mbps;
    }
    let mut order: Vec<usize> = (0..inst.vms()).collect();
    order.sort_by(|&a, &b| {
        inst.pinned[b]
            .cmp(&inst.pinned[a])
            .then(traffic[b].total_cmp(&traffic[a]))
            .then(a.cmp(&b))
    });
    let best = incumbent.map(|p| {
        let e = evaluate(inst, &p);
        (p, e)
    });
    let mut s = Search {
        inst,
        wide,
        lat,
        paths: HashMap::new(),
        order,
        best,
        nodes: 0,
        budget,
        began: Instant::now(),
        stopped: false,
        global_best,
    };
    let mut mapping = vec![HostId(usize::MAX); inst.vms()];
    let mut load = vec![0usize; n];
    s.place(0, &mut mapping, &mut load);
    let stats = ExactStats {
        nodes: s.nodes,
        proven_optimal: !s.stopped,
    };
    (s.best.map(|(p, _)| p), stats)
}

impl Search<'_> {
    fn tick(&mut self) -> bool {
        self.nodes += 1;
        if self.nodes > self.budget.max_nodes {
            self.stopped = true;
        }
        if self.nodes.is_multiple_of(4096) {
            if let Some(ms) = self.budget.time_ms {
                if self.began.elapsed().as_millis() as u64 >= ms {
                    self.stopped = true;
                }
            }
        }
        !self.stopped
    }

    fn best_feasible_objective(&self) -> Option<f64> {
        self.best
            .as_ref()
            .filter(|(_, e)| e.feasible)
            .map(|(_, e)| e.objective)
    }

    /// Whether a subtree whose optimistic objective is `bound` can still win.
    fn promising(&self, bound: f64) -> bool {
        match self.best_feasible_objective() {
            None => bound.is_finite() || bound == f64::INFINITY,
            Some(best) => {
                let tol = 1e-9 * best.abs().max(1.0);
                match self.inst.objective {
                    Objective::ResidualBw => bound >= best - tol,
                    Objective::Latency => bound <= best + tol,
                }
            }
        }
    }

    /// Optimistic objective of a partial placement (upper bound for residual,
    /// lower bound for latency); `None` when it cannot be feasible.
    fn placement_bound(&self, mapping: &[HostId]) -> Option<f64> {
        let inst = self.inst;
        let n = inst.hosts();
        let placed = |v: usize| mapping[v].0 != usize::MAX;
        let mut local = vec![0.0f64; n];
        for d in &inst.demands {
            if placed(d.src.0) && placed(d.dst.0) && mapping[d.src.0] == mapping[d.dst.0] {
                local[mapping[d.src.0].0] += d.mbps;
            }
        }
        if (0..n).any(|h| local[h] > inst.local_bw[h] + EPS) {
            return None;
        }
        let mut bound = 0.0;
        for d in &inst.demands {
            let (s, t) = (d.src.0, d.dst.0);
            if placed(s) && placed(t) {
                let (a, b) = (mapping[s].0, mapping[t].0);
                if a == b {
                    if inst.objective == Objective::ResidualBw {
                        bound += inst.local_bw[a] - local[a];
                    }
                } else {
                    if !self.wide[a][b].is_finite() || self.wide[a][b] < d.mbps - EPS {
                        return None;
                    }
                    if d.max_latency_ms.is_some_and(|m| self.lat[a][b] > m + EPS) {
                        return None;
                    }
                    bound += match inst.objective {
                        Objective::ResidualBw => self.wide[a][b] - d.mbps,
                        Objective::Latency => self.lat[a][b],
                    };
                }
            } else if inst.objective == Objective::ResidualBw {
                bound += self.global_best - d.mbps;
            }
        }
        Some(bound)
    }

    fn place(&mut self, k: usize, mapping: &mut Vec<HostId>, load: &mut Vec<usize>) {
        if !self.tick() {
            return;
        }
        match self.placement_bound(mapping) {
            Some(b) if self.promising(b) => {}
            _ => return,
        }
        if k == self.order.len() {
            self.route(mapping);
            return;
        }
        let v = self.order[k];
        let inst = self.inst;
        let mut hosts: Vec<usize> = if inst.pinned[v] {
            vec![inst.current[v].expect("validated").0]
        } else {
            (0..inst.hosts()).collect()
        };
        // The current host first: ties then favour fewer migrations.
        if let Some(c) = inst.current[v] {
            if let Some(i) = hosts.iter().position(|&h| h == c.0) {
                hosts.swap(0, i);
            }
        }
        for h in hosts {
            if load[h] >= inst.capacity[h] {
                continue;
            }
            load[h] += 1;
            mapping[v] = HostId(h);
            self.place(k + 1, mapping, load);
            mapping[v] = HostId(usize::MAX);
            load[h] -= 1;
            if self.stopped {
                return;
            }
        }
    }

    fn candidates(&mut self, a: usize, b: usize) -> &Vec<Candidate> {
        let inst = self.inst;
        self.paths.entry((a, b)).or_insert_with(|| {
            all_simple_paths(inst, HostId(a), HostId(b))
                .into_iter()
                .map(|p| {
                    let l = super::plan::path_latency(inst, &p).unwrap_or(f64::INFINITY);
                    (p, l)
                })
                .collect()
        })
    }

    /// Exact routing of a complete placement.
    fn route(&mut self, mapping: &[HostId]) {
        let inst = self.inst;
        let n = inst.hosts();
        let mut paths: Vec<Vec<HostId>> = vec![Vec::new(); inst.demands.len()];
        let mut inter: Vec<usize> = Vec::new();
        for (i, d) in inst.demands.iter().enumerate() {
            let (a, b) = (mapping[d.src.0], mapping[d.dst.0]);
            if a == b {
                paths[i] = vec![a];
            } else {
                inter.push(i);
            }
        }
        inter.sort_by(|&x, &y| {
            inst.demands[y]
                .mbps
                .total_cmp(&inst.demands[x].mbps)
                .then(x.cmp(&y))
        });
        // Candidate paths per inter-host demand, within its latency bound.
        let mut cands: Vec<Vec<Candidate>> = Vec::with_capacity(inter.len());
        for &i in &inter {
            let d = inst.demands[i];
            let (a, b) = (mapping[d.src.0].0, mapping[d.dst.0].0);
            let bound = d.max_latency_ms.unwrap_or(f64::INFINITY) + EPS;
            let list: Vec<Candidate> = self
                .candidates(a, b)
                .iter()
                .filter(|(_, l)| *l <= bound)
                .cloned()
                .collect();
            if list.is_empty() {
                return;
            }
            cands.push(list);
        }
        let mut res: Vec<Vec<f64>> = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| inst.bw[a][b].unwrap_or(f64::NEG_INFINITY))
                    .collect()
            })
            .collect();
        let mut local_sum = 0.0;
        if inst.objective == Objective::ResidualBw {
            let mut local = inst.local_bw.clone();
            for (d, p) in inst.demands.iter().zip(&paths) {
                if p.len() == 1 {
                    local[p[0].0] -= d.mbps;
                }
            }
            for p in paths.iter().filter(|p| p.len() == 1) {
                local_sum += local[p[0].0];
            }
        }
        self.route_dfs(
            0, &inter, &cands, &mut res, &mut paths, mapping, local_sum, 0.0,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn route_dfs(
        &mut self,
        k: usize,
        inter: &[usize],
        cands: &[Vec<Candidate>],
        res: &mut Vec<Vec<f64>>,
        paths: &mut Vec<Vec<HostId>>,
        mapping: &[HostId],
        local_sum: f64,
        lat_sum: f64,
    ) {
        if !self.tick() {
            return;
        }
        let inst = self.inst;
        let bottleneck = |res: &Vec<Vec<f64>>, p: &[HostId]| {
            p.windows(2)
                .map(|w| res[w[0].0][w[1].0])
                .fold(f64::INFINITY, f64::min)
        };
        // Bound: routed demands keep at most their current bottleneck; unrouted ones get
        // at most their best candidate on current residuals.
        let bound = match inst.objective {
            Objective::ResidualBw => {
                let mut b = local_sum;
                for &i in &inter[..k] {
                    b += bottleneck(res, &paths[i]);
                }
                for (j, &i) in inter.iter().enumerate().skip(k) {
                    let d = inst.demands[i].mbps;
                    let best = cands[j]
                        .iter()
                        .map(|(p, _)| bottleneck(res, p) - d)
                        .fold(f64::NEG_INFINITY, f64::max);
                    if best < -EPS {
                        return;
                    }
                    b += best;
                }
                b
            }
            Objective::Latency => {
                let mut b = lat_sum;
                for (j, &i) in inter.iter().enumerate().skip(k) {
                    let d = inst.demands[i].mbps;
                    let best = cands[j]
                        .iter()
                        .filter(|(p, _)| bottleneck(res, p) >= d - EPS)
                        .map(|(_, l)| *l)
                        .fold(f64::INFINITY, f64::min);
                    if !best.is_finite() {
                        return;
                    }
                    b += best;
                }
                b
            }
        };
        if !self.promising(bound) {
            return;
        }
        if k == inter.len() {
            let plan = Plan {
                mapping: mapping.to_vec(),
                paths: paths.clone(),
            };
            let e = evaluate(inst, &plan);
            let take = match &self.best {
                None => true,
                Some((_, be)) => better(inst.objective, &e, be),
            };
            if take {
                self.best = Some((plan, e));
            }
            return;
        }
        let i = inter[k];
        let d = inst.demands[i].mbps;
        // Widest (or lowest-latency) candidates first: good answers early prune more.
        let mut order: Vec<usize> = (0..cands[k].len())
            .filter(|&c| bottleneck(res, &cands[k][c].0) >= d - EPS)
            .collect();
        match inst.objective {
            Objective::ResidualBw => order.sort_by(|&x, &y| {
                bottleneck(res, &cands[k][y].0).total_cmp(&bottleneck(res, &cands[k][x].0))
            }),
            Objective::Latency => order.sort_by(|&x, &y| cands[k][x].1.total_cmp(&cands[k][y].1)),
        }
        for c in order {
            let (p, l) = &cands[k][c];
            for w in p.windows(2) {
                res[w[0].0][w[1].0] -= d;
            }
            paths[i] = p.clone();
            self.route_dfs(
                k + 1,
                inter,
                cands,
                res,
                paths,
                mapping,
                local_sum,
                lat_sum + l,
            );
            for w in p.windows(2) {
                res[w[0].0][w[1].0] += d;
            }
            if self.stopped {
                return;
            }
        }
    }
}
