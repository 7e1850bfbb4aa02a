//! SA, simulated annealing over plans. Moves: move a VM to a host with room, swap two
//! VMs, reroute a demand through another intermediate host. Infeasible plans are
//! allowed along the way with a penalty, so the search can cross them; the answer is
//! the best plan seen, compared feasibility first, then objective, then migrations.
//! Deterministic for a given seed and iteration budget (a time budget that cuts the
//! run short is reported).

use std::time::Instant;

use super::greedy::{route_all, route_one};
use super::plan::{better, evaluate, Evaluation, Plan};
use super::problem::{HostId, Instance, Objective};
use super::rng::Rng;
use super::routing::{widest_path, Residuals};

/// How long SA may search.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub iterations: u64,
    pub time_ms: Option<u64>,
}

impl Budget {
    /// A default that grows with the problem.
    pub fn for_instance(inst: &Instance) -> Self {
        Budget {
            iterations: 4000 + 150 * (inst.vms() + inst.demands.len()) as u64,
            time_ms: None,
        }
    }
}

/// What SA did.
#[derive(Debug, Clone)]
pub struct AnnealStats {
    pub iterations: u64,
    pub accepted: u64,
    pub stopped_by_time: bool,
}

/// The start SA uses on its own: VMs where they are (or on hosts with room), routed by GH.
pub fn initial_plan(inst: &Instance) -> Plan {
    let n = inst.hosts();
    let mut load = vec![0usize; n];
    let mut mapping = vec![HostId(usize::MAX); inst.vms()];
    for v in 0..inst.vms() {
        if let Some(h) = inst.current[v] {
            if inst.pinned[v] || load[h.0] < inst.capacity[h.0] {
                mapping[v] = h;
                load[h.0] += 1;
            }
        }
    }
    for m in mapping.iter_mut() {
        if m.0 == usize::MAX {
            let h = (0..n).find(|&h| load[h] < inst.capacity[h]).unwrap_or(0);
            load[h] += 1;
            *m = HostId(h);
        }
    }
    let (paths, _) = route_all(inst, &mapping);
    Plan { mapping, paths }
}

fn score(inst: &Instance, e: &Evaluation, penalty: f64) -> f64 {
    let obj = if e.objective.is_nan() {
        0.0
    } else {
        match inst.objective {
            Objective::ResidualBw => e.objective,
            Objective::Latency => -e.objective,
        }
    };
    obj - penalty * e.violation_amount - 1e-6 * e.migrations as f64
}

/// Anneals from `start`.
pub fn anneal(inst: &Instance, start: Plan, seed: u64, budget: Budget) -> (Plan, AnnealStats) {
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut cur = start;
    let mut cur_eval = evaluate(inst, &cur);
    let mut best = cur.clone();
    let mut best_eval = cur_eval.clone();
    let mut stats = AnnealStats {
        iterations: 0,
        accepted: 0,
        stopped_by_time: false,
    };
    if inst.vms() == 0 || budget.iterations == 0 {
        return (best, stats);
    }
    let penalty = 10.0;
    let mut res = Residuals::new(inst);
    for (d, p) in inst.demands.iter().zip(&cur.paths) {
        res.apply(p, d.mbps, 1.0);
    }
    // Demands touching each VM, to reroute after a placement move.
    let mut touching = vec![Vec::new(); inst.vms()];
    for (i, d) in inst.demands.iter().enumerate() {
        touching[d.src.0].push(i);
        touching[d.dst.0].push(i);
    }
    let movable: Vec<usize> = (0..inst.vms()).filter(|&v| !inst.pinned[v]).collect();
    // Temperature: starts at a few percent of the objective's scale, cools
    // geometrically to 1e-4 of that over the iteration budget.
    let scale = inst
        .demands
        .iter()
        .map(|d| d.mbps)
        .sum::<f64>()
        .max(score(inst, &cur_eval, penalty).abs() * 0.05)
        .max(1.0);
    let t0 = 0.05 * scale;
    let t_end = t0 * 1e-4;
    let cool = (t_end / t0).powf(1.0 / budget.iterations as f64);
    let mut temp = t0;
    let mut cur_score = score(inst, &cur_eval, penalty);
    let n = inst.hosts();
    let mut load = vec![0usize; n];
    for h in &cur.mapping {
        load[h.0] += 1;
    }

    for it in 0..budget.iterations {
        if it % 256 == 0 {
            if let Some(ms) = budget.time_ms {
                if began.elapsed().as_millis() as u64 >= ms {
                    stats.stopped_by_time = true;
                    break;
                }
            }
        }
        stats.iterations += 1;
        temp *= cool;
        // Undo log: old host of moved VMs, old paths of rerouted demands.
        let mut moved: Vec<(usize, HostId, HostId)> = Vec::new();
        let mut rerouted: Vec<(usize, Vec<HostId>)> = Vec::new();
        let kind = rng.below(10);
        if kind < 4 && !movable.is_empty() {
            let v = movable[rng.below(movable.len())];
            let h = rng.below(n);
            if HostId(h) == cur.mapping[v] || load[h] >= inst.capacity[h] {
                continue;
            }
            moved.push((v, cur.mapping[v], HostId(h)));
        } else if kind < 7 && movable.len() >= 2 {
            let a = movable[rng.below(movable.len())];
            let b = movable[rng.below(movable.len())];
            if cur.mapping[a] == cur.mapping[b] {
                continue;
            }
            moved.push((a, cur.mapping[a], cur.mapping[b]));
            moved.push((b, cur.mapping[b], cur.mapping[a]));
        } else if !inst.demands.is_empty() {
            let i = rng.below(inst.demands.len());
            let d = inst.demands[i];
            let (s, t) = (cur.mapping[d.src.0], cur.mapping[d.dst.0]);
            if s == t {
                continue;
            }
            res.apply(&cur.paths[i], d.mbps, -1.0);
            let via = HostId(rng.below(n));
            let path = if via == s || via == t {
                widest_path(inst, &res, s, t, d.mbps, d.max_latency_ms)
            } else {
                match (
                    widest_path(inst, &res, s, via, d.mbps, None),
                    widest_path(inst, &res, via, t, d.mbps, None),
                ) {
                    (Some(mut a), Some(b)) if !a.iter().any(|h| b[1..].contains(h)) => {
                        a.extend_from_slice(&b[1..]);
                        Some(a)
                    }
                    _ => None,
                }
            };
            match path {
                Some(p) if p != cur.paths[i] => {
                    res.apply(&p, d.mbps, 1.0);
                    rerouted.push((i, std::mem::replace(&mut cur.paths[i], p)));
                }
                _ => {
                    res.apply(&cur.paths[i], d.mbps, 1.0);
                    continue;
                }
            }
        } else {
            continue;
        }
        if !moved.is_empty() {
            // Apply the placement change, then reroute every demand it touches.
            for &(v, old, new) in &moved {
                load[old.0] -= 1;
                load[new.0] += 1;
                cur.mapping[v] = new;
            }
            let mut affected: Vec<usize> = moved
                .iter()
                .flat_map(|(v, _, _)| touching[*v].iter().copied())
                .collect();
            affected.sort_unstable();
            affected.dedup();
            for &i in &affected {
                res.apply(&cur.paths[i], inst.demands[i].mbps, -1.0);
            }
            affected.sort_by(|&a, &b| {
                inst.demands[b]
                    .mbps
                    .total_cmp(&inst.demands[a].mbps)
                    .then(a.cmp(&b))
            });
            for &i in &affected {
                let p = route_one(inst, &res, &cur.mapping, i);
                res.apply(&p, inst.demands[i].mbps, 1.0);
                rerouted.push((i, std::mem::replace(&mut cur.paths[i], p)));
            }
        }
        let new_eval = evaluate(inst, &cur);
        let new_score = score(inst, &new_eval, penalty);
        let accept = new_score >= cur_score || rng.unit() < ((new_score - cur_score) / temp).exp();
        if accept {
            stats.accepted += 1;
            cur_score = new_score;
            cur_eval = new_eval;
            if better(inst.objective, &cur_eval, &best_eval) {
                best = cur.clone();
                best_eval = cur_eval.clone();
            }
        } else {
            // Undo, newest change first.
            for (i, old) in rerouted.into_iter().rev() {
                res.apply(&cur.paths[i], inst.demands[i].mbps, -1.0);
                res.apply(&old, inst.demands[i].mbps, 1.0);
                cur.paths[i] = old;
            }
            for (v, old, new) in moved.into_iter().rev() {
                load[new.0] -= 1;
                load[old.0] += 1;
                cur.mapping[v] = old;
            }
        }
    }
    (best, stats)
}
