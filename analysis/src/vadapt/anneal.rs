//! SA, simulated annealing over plans. Moves: move a VM to a host with room, swap two
//! VMs, reroute a demand through another intermediate host, re-route every demand in
//! a new order. Infeasible plans are allowed along the way with a penalty, so the
//! search can cross them; the answer is the best plan seen (feasibility first, then
//! objective, then migrations), finished by a deterministic local search. Deterministic
//! for a given seed and iteration budget (a time budget that cuts the run short is
//! reported).

use std::time::Instant;

use super::greedy::{route_all, route_one};
use super::plan::{better, evaluate_quiet, Evaluation, Plan};
use super::problem::{HostId, Instance, Objective};
use super::rng::Rng;
use super::routing::{lowest_latency_path, widest_path, Residuals};

/// Above this many demands the re-route-everything move costs more than it gives.
const REROUTE_ALL_MAX_DEMANDS: usize = 48;

/// How long SA may search.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub iterations: u64,
    pub time_ms: Option<u64>,
}

impl Budget {
    /// A default that grows with the problem, capped so large instances stay fast (an
    /// iteration costs O(hosts²): 64 VMs on 32 hosts take well under 1 s, 256 on 64
    /// well under 10 s on one core).
    pub fn for_instance(inst: &Instance) -> Self {
        let size = (inst.vms() + inst.demands.len()) as u64;
        let cap = if inst.hosts() <= 16 { 40_000 } else { 15_000 };
        Budget {
            iterations: (20_000 + 1_000 * size).min(cap),
            time_ms: None,
        }
    }
}

/// The VMs SA may move and the demands it may re-route on its own (a demand also
/// follows its VMs when they move). The whole instance for a full solve; the VMs and
/// demands a change touched for a repair, so the rest of the plan stays as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Movable VMs (never pinned ones).
    pub vms: Vec<usize>,
    pub demands: Vec<usize>,
}

impl Scope {
    /// Every VM that is not pinned, and every demand.
    pub fn all(inst: &Instance) -> Self {
        Scope {
            vms: (0..inst.vms()).filter(|&v| !inst.pinned[v]).collect(),
            demands: (0..inst.demands.len()).collect(),
        }
    }

    /// Nothing to search.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty() && self.demands.is_empty()
    }
}

/// What SA did.
#[derive(Debug, Clone, Default)]
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

/// A plan with its residuals and host loads, changed by moves that can be undone.
struct State<'a> {
    inst: &'a Instance,
    plan: Plan,
    res: Residuals,
    load: Vec<usize>,
    touching: Vec<Vec<usize>>,
}

/// How to undo one move.
#[derive(Default)]
struct Undo {
    moved: Vec<(usize, HostId, HostId)>,
    rerouted: Vec<(usize, Vec<HostId>)>,
}

/// Scalar the annealer maximises: the objective (negated for latency) minus a penalty
/// for broken constraints, minus a hair per migration to break ties.
fn score(inst: &Instance, e: &Evaluation) -> f64 {
    const PENALTY: f64 = 10.0;
    let obj = if e.objective.is_nan() {
        0.0
    } else {
        match inst.objective {
            Objective::ResidualBw => e.objective,
            Objective::Latency => -e.objective,
        }
    };
    obj - PENALTY * e.violation_amount - 1e-6 * e.migrations as f64
}

impl<'a> State<'a> {
    fn new(inst: &'a Instance, plan: Plan) -> Self {
        let mut res = Residuals::new(inst);
        for (d, p) in inst.demands.iter().zip(&plan.paths) {
            res.apply(p, d.mbps, 1.0);
        }
        let mut load = vec![0usize; inst.hosts()];
        for h in &plan.mapping {
            load[h.0] += 1;
        }
        let mut touching = vec![Vec::new(); inst.vms()];
        for (i, d) in inst.demands.iter().enumerate() {
            touching[d.src.0].push(i);
            touching[d.dst.0].push(i);
        }
        Self {
            inst,
            plan,
            res,
            load,
            touching,
        }
    }

    fn set_path(&mut self, i: usize, p: Vec<HostId>, undo: &mut Undo) {
        let mbps = self.inst.demands[i].mbps;
        self.res.apply(&self.plan.paths[i], mbps, -1.0);
        self.res.apply(&p, mbps, 1.0);
        undo.rerouted
            .push((i, std::mem::replace(&mut self.plan.paths[i], p)));
    }

    /// Re-routes demands `affected` (heaviest first) on the residuals left by the others.
    fn reroute(&mut self, mut affected: Vec<usize>, undo: &mut Undo) {
        affected.sort_unstable();
        affected.dedup();
        for &i in &affected {
            self.res
                .apply(&self.plan.paths[i], self.inst.demands[i].mbps, -1.0);
        }
        let inst = self.inst;
        affected.sort_by(|&a, &b| {
            inst.demands[b]
                .mbps
                .total_cmp(&inst.demands[a].mbps)
                .then(a.cmp(&b))
        });
        for &i in &affected {
            let p = route_one(inst, &self.res, &self.plan.mapping, i);
            self.res.apply(&p, inst.demands[i].mbps, 1.0);
            undo.rerouted
                .push((i, std::mem::replace(&mut self.plan.paths[i], p)));
        }
    }

    /// Moves VMs (vm, to) and re-routes what they touch.
    fn place(&mut self, moves: &[(usize, HostId)], undo: &mut Undo) {
        for &(v, to) in moves {
            let from = self.plan.mapping[v];
            self.load[from.0] -= 1;
            self.load[to.0] += 1;
            self.plan.mapping[v] = to;
            undo.moved.push((v, from, to));
        }
        let affected = moves
            .iter()
            .flat_map(|(v, _)| self.touching[*v].iter().copied())
            .collect();
        self.reroute(affected, undo);
    }

    /// Sends demand `i` through `via` (or directly when `via` is an endpoint).
    fn via(&mut self, i: usize, via: HostId, undo: &mut Undo) -> bool {
        let inst = self.inst;
        let d = inst.demands[i];
        let (s, t) = (self.plan.mapping[d.src.0], self.plan.mapping[d.dst.0]);
        if s == t {
            return false;
        }
        self.res.apply(&self.plan.paths[i], d.mbps, -1.0);
        let find = |a: HostId, b: HostId, bound: Option<f64>| match inst.objective {
            Objective::ResidualBw => widest_path(inst, &self.res, a, b, d.mbps, bound),
            Objective::Latency => lowest_latency_path(inst, &self.res, a, b, d.mbps, bound),
        };
        let path = if via == s || via == t {
            find(s, t, d.max_latency_ms)
        } else {
            match (find(s, via, None), find(via, t, None)) {
                (Some(mut a), Some(b)) if !a.iter().any(|h| b[1..].contains(h)) => {
                    a.extend_from_slice(&b[1..]);
                    Some(a)
                }
                _ => None,
            }
        };
        self.res.apply(&self.plan.paths[i], d.mbps, 1.0);
        match path {
            Some(p) if p != self.plan.paths[i] => {
                self.set_path(i, p, undo);
                true
            }
            _ => false,
        }
    }

    fn undo(&mut self, undo: Undo) {
        for (i, old) in undo.rerouted.into_iter().rev() {
            let mbps = self.inst.demands[i].mbps;
            self.res.apply(&self.plan.paths[i], mbps, -1.0);
            self.res.apply(&old, mbps, 1.0);
            self.plan.paths[i] = old;
        }
        for (v, from, to) in undo.moved.into_iter().rev() {
            self.load[to.0] -= 1;
            self.load[from.0] += 1;
            self.plan.mapping[v] = from;
        }
    }

    /// One random move; false if the draw was not a move.
    fn random_move(&mut self, rng: &mut Rng, scope: &Scope, undo: &mut Undo) -> bool {
        let inst = self.inst;
        let n = inst.hosts();
        let movable = &scope.vms;
        let demands = &scope.demands;
        let kind = rng.below(20);
        if kind < 8 && !movable.is_empty() {
            let v = movable[rng.below(movable.len())];
            let h = HostId(rng.below(n));
            if h == self.plan.mapping[v] || self.load[h.0] >= inst.capacity[h.0] {
                return false;
            }
            self.place(&[(v, h)], undo);
            true
        } else if kind < 14 && movable.len() >= 2 {
            let a = movable[rng.below(movable.len())];
            let b = movable[rng.below(movable.len())];
            let (ha, hb) = (self.plan.mapping[a], self.plan.mapping[b]);
            if ha == hb {
                return false;
            }
            self.place(&[(a, hb), (b, ha)], undo);
            true
        } else if kind < 19 && !demands.is_empty() {
            let i = demands[rng.below(demands.len())];
            self.via(i, HostId(rng.below(n)), undo)
        } else if !demands.is_empty() && demands.len() <= REROUTE_ALL_MAX_DEMANDS {
            // Re-route everything in a random order: routes interact through residuals.
            let mut order: Vec<usize> = demands.clone();
            for k in (1..order.len()).rev() {
                order.swap(k, rng.below(k + 1));
            }
            for &i in &order {
                self.res
                    .apply(&self.plan.paths[i], inst.demands[i].mbps, -1.0);
            }
            let old: Vec<Vec<HostId>> = order.iter().map(|&i| self.plan.paths[i].clone()).collect();
            for (&i, old) in order.iter().zip(old) {
                let p = route_one(inst, &self.res, &self.plan.mapping, i);
                self.res.apply(&p, inst.demands[i].mbps, 1.0);
                self.plan.paths[i] = p;
                undo.rerouted.push((i, old));
            }
            true
        } else {
            false
        }
    }
}

/// Anneals from `start`.
pub fn anneal(inst: &Instance, start: Plan, seed: u64, budget: Budget) -> (Plan, AnnealStats) {
    anneal_scoped(inst, start, seed, budget, &Scope::all(inst))
}

/// Anneals from `start`, moving only `scope`'s VMs and re-routing only its demands (and
/// those of the VMs that move); every plan is still judged whole (`evaluate`).
pub fn anneal_scoped(
    inst: &Instance,
    start: Plan,
    seed: u64,
    budget: Budget,
    scope: &Scope,
) -> (Plan, AnnealStats) {
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut stats = AnnealStats::default();
    let mut st = State::new(inst, start);
    let mut cur_eval = evaluate_quiet(inst, &st.plan);
    let mut cur_score = score(inst, &cur_eval);
    let mut best = st.plan.clone();
    let mut best_eval = cur_eval.clone();
    if inst.vms() == 0 || budget.iterations == 0 || scope.is_empty() {
        return (best, stats);
    }

    // Starting temperature from the moves themselves: the mean loss of a worsening
    // move is accepted with probability 1/2 at first; cooling is geometric to 1e-4.
    // With a time budget, the sampling takes at most a quarter of it (at fleet size a
    // move costs milliseconds: 200 of them would outlast a repair's whole budget).
    let mut losses = Vec::new();
    let sampling_ms = budget.time_ms.map(|ms| ms / 4);
    for _ in 0..200 {
        let late = |ms: u64| began.elapsed().as_millis() as u64 >= ms;
        if sampling_ms.is_some_and(late) {
            break;
        }
        let mut undo = Undo::default();
        if st.random_move(&mut rng, scope, &mut undo) {
            let s = score(inst, &evaluate_quiet(inst, &st.plan));
            if s < cur_score {
                losses.push(cur_score - s);
            }
        }
        st.undo(undo);
    }
    losses.sort_by(f64::total_cmp);
    // The median, so one constraint-breaking move does not set the scale.
    let typical = losses
        .get(losses.len() / 2)
        .copied()
        .unwrap_or(1.0)
        .max(1e-9);
    let t0 = typical / std::f64::consts::LN_2;
    let cool = (1e-4f64).powf(1.0 / budget.iterations as f64);
    let mut temp = t0;

    for it in 0..budget.iterations {
        // Often enough that a fleet-sized instance (a move routes over a thousand
        // hosts: milliseconds) keeps to its time budget; rarely enough to cost nothing.
        if it % 8 == 0 {
            if let Some(ms) = budget.time_ms {
                if began.elapsed().as_millis() as u64 >= ms {
                    stats.stopped_by_time = true;
                    break;
                }
            }
        }
        stats.iterations += 1;
        temp *= cool;
        let mut undo = Undo::default();
        if !st.random_move(&mut rng, scope, &mut undo) {
            st.undo(undo);
            continue;
        }
        let new_eval = evaluate_quiet(inst, &st.plan);
        let new_score = score(inst, &new_eval);
        if new_score >= cur_score || rng.unit() < ((new_score - cur_score) / temp).exp() {
            stats.accepted += 1;
            cur_score = new_score;
            cur_eval = new_eval;
            if better(inst.objective, &cur_eval, &best_eval) {
                best = st.plan.clone();
                best_eval = cur_eval.clone();
            }
        } else {
            st.undo(undo);
        }
    }
    let deadline = budget.time_ms.map(|ms| (began, ms));
    if deadline.is_some_and(|(t, ms)| t.elapsed().as_millis() as u64 >= ms) {
        stats.stopped_by_time = true;
    }
    let polished = polish_scoped(inst, best, deadline, scope);
    (polished, stats)
}

/// Deterministic local search: every single-VM move, every swap and every one-detour
/// reroute, taking improvements until none is left (or a pass budget runs out).
pub fn polish(inst: &Instance, plan: Plan, deadline: Option<(Instant, u64)>) -> Plan {
    polish_scoped(inst, plan, deadline, &Scope::all(inst))
}

/// `polish` over `scope`'s VMs and demands only.
pub fn polish_scoped(
    inst: &Instance,
    plan: Plan,
    deadline: Option<(Instant, u64)>,
    scope: &Scope,
) -> Plan {
    let n = inst.hosts();
    let movable = &scope.vms;
    // Neighbourhood size per pass; skip passes that would be too slow.
    let per_pass = movable.len() * n + movable.len() * movable.len() / 2 + scope.demands.len() * n;
    if per_pass > 5_000 {
        return plan;
    }
    let mut st = State::new(inst, plan);
    let mut cur = evaluate_quiet(inst, &st.plan);
    for _pass in 0..50 {
        if deadline.is_some_and(|(t, ms)| t.elapsed().as_millis() as u64 >= ms) {
            break;
        }
        let mut improved = false;
        let mut try_it = |st: &mut State, f: &mut dyn FnMut(&mut State, &mut Undo) -> bool| {
            let mut undo = Undo::default();
            if f(st, &mut undo) {
                let e = evaluate_quiet(inst, &st.plan);
                if better(inst.objective, &e, &cur) {
                    cur = e;
                    improved = true;
                    return;
                }
            }
            st.undo(undo);
        };
        for &v in movable {
            for h in 0..n {
                try_it(&mut st, &mut |st, undo| {
                    if HostId(h) == st.plan.mapping[v] || st.load[h] >= inst.capacity[h] {
                        return false;
                    }
                    st.place(&[(v, HostId(h))], undo);
                    true
                });
            }
        }
        for (x, &a) in movable.iter().enumerate() {
            for &b in &movable[x + 1..] {
                try_it(&mut st, &mut |st, undo| {
                    let (ha, hb) = (st.plan.mapping[a], st.plan.mapping[b]);
                    if ha == hb {
                        return false;
                    }
                    st.place(&[(a, hb), (b, ha)], undo);
                    true
                });
            }
        }
        for &i in &scope.demands {
            for h in 0..n {
                try_it(&mut st, &mut |st, undo| st.via(i, HostId(h), undo));
            }
        }
        if !improved {
            break;
        }
    }
    st.plan
}
