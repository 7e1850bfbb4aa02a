//! Repair: a plan for a changed problem made from the plan in force, touching only
//! what the change touched, in bounded time. GH+SA's full solve stays for a cold start.
//!
//! Why: a fleet's problem changes a little at a time (a link's measurement, a demand,
//! a VM come or gone), and re-solving the world on every change costs time that grows
//! with the fleet and moves traffic that had no reason to move.
//!
//! What is touched: a demand that is new, whose rate or latency bound changed, whose
//! path in force crosses a link whose bandwidth or latency changed (or that is gone),
//! no longer joins its VMs' hosts, or is local to a host whose capacity or local
//! bandwidth changed; a VM that is new, whose host is gone or changed, or that is pinned
//! elsewhere than the plan put it. A link that got better (new, wider or faster) is on
//! no path in force, so it touches the demands whose own route would now take it and
//! be better for it (moved onto that route first, their VMs staying), and the
//! applications with a VM on either of its ends (the link may carry their traffic one
//! hop once a VM moves). Everything else keeps its host and its path, and an
//! application nothing touched never moves.
//!
//! How: (1) carry the plan over by name; (2) re-route the touched demands, heaviest
//! first, on what the kept paths leave; (3) per touched application (connected
//! component of the demand graph), heaviest first, a short SA seeded from that plan
//! that moves only the touched VMs and re-routes only the touched demands (and those of
//! the VMs it moves), every candidate judged on the whole plan; (4) the whole of each
//! touched application searched: by the same SA over all its VMs and demands, and by
//! GH+SA afresh (`FRESH_STARTS` seeds) against what the rest of the plan leaves. The
//! best of (4) is kept only when it makes the plan feasible or gains more than
//! `WIDEN_GAIN` of the objective over (3): the plan in force may itself be a few
//! percent short of what a search over the application finds (SA's run-to-run spread
//! is that large), and a change is the time to catch up; below that gain nothing
//! untouched moves. `Options::budget_ms` bounds the whole, shared evenly by the
//! searches: when it runs out, the best plan found so far is returned and
//! `stopped_by_time` says so.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::anneal::{anneal_scoped, Budget, Scope};
use super::components::{components, sub_instance, Component, Usage};
use super::greedy::{self, route_one};
use super::plan::{better, evaluate, path_latency, Plan, EPS};
use super::problem::{Demand, HostId, Instance, LinkSpec, Objective, Problem, ProblemError};
use super::routing::Residuals;
use super::{render, Answer, Options, PathOut};

/// The plan in force (by name, as an `Answer` gives it) and the problem it was made for.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    pub problem: &'a Problem,
    pub mapping: &'a BTreeMap<String, String>,
    pub paths: &'a [PathOut],
}

impl<'a> Previous<'a> {
    /// The plan `answer` gave for `problem`.
    pub fn new(problem: &'a Problem, answer: &'a Answer) -> Self {
        Previous {
            problem,
            mapping: &answer.mapping,
            paths: &answer.paths,
        }
    }
}

/// What the change touched and what the repair did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepairReport {
    pub touched_vms: usize,
    pub touched_demands: usize,
    /// Applications (demand-graph components) the change touched, of all.
    pub touched_components: usize,
    pub components: usize,
    /// Whether the plan moves what the change did not touch: the search over the whole
    /// of the touched applications gained more than `WIDEN_GAIN` (or feasibility)
    /// over the touched VMs and demands alone.
    pub widened: bool,
    /// VMs whose host differs from the plan in force; demands whose path does (new
    /// demands included).
    pub moved_vms: usize,
    pub rerouted_demands: usize,
}

/// The plan in force carried into the new instance, and what the change touched.
struct Carried {
    /// The plan in force where the change left it, touched demands not yet routed.
    plan: Plan,
    /// Touched VMs: those the change touched and the ends of touched demands.
    vm: Vec<bool>,
    demand: Vec<bool>,
    /// VMs on either end of an improved link: the link may carry their traffic one hop,
    /// if they or their partners moved; their applications are searched whole.
    near_better: Vec<bool>,
    /// Kept demands moved onto an improved link's route.
    took_better: Vec<bool>,
    /// The plan in force as it was (`None`: new, or on a host or path gone).
    host_before: Vec<Option<HostId>>,
    path_before: Vec<Option<Vec<HostId>>>,
}

type Key<'a> = (&'a str, &'a str);

/// The share of the objective a search over the whole of the touched applications must
/// gain over the touched parts alone before the repair moves what the change did not
/// touch (below it, the traffic stays where it is).
pub const WIDEN_GAIN: f64 = 0.01;

/// Fresh GH+SA runs per touched application, from seeds `Options::seed` onwards: SA
/// lands in different local optima from run to run, and the best of independent runs
/// is what makes a repair as good as a full solve, which is itself one such run.
pub const FRESH_STARTS: u64 = 2;

/// A problem's links by their ends: (bandwidth, latency).
fn link_index(p: &Problem) -> HashMap<Key<'_>, (f64, f64)> {
    (p.links.iter())
        .map(|l| ((l.from.as_str(), l.to.as_str()), (l.bw_mbps, l.latency_ms)))
        .collect()
}

/// The link a→b of a problem: listed, else its default link, else none.
fn link_of(p: &Problem, listed: &HashMap<Key, (f64, f64)>, k: &Key) -> Option<(f64, f64)> {
    (listed.get(k).copied()).or_else(|| {
        let d = p.default_link?;
        (k.0 != k.1).then_some((d.bw_mbps, d.latency_ms))
    })
}

/// The ordered pairs of `p`'s hosts that neither problem lists: the ones that differ
/// when the default links do (each problem's default).
fn unlisted<'a>(
    p: &'a Problem,
    a: &HashMap<Key<'a>, (f64, f64)>,
    b: &HashMap<Key<'a>, (f64, f64)>,
) -> Vec<Key<'a>> {
    let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
    let pairs = names
        .iter()
        .flat_map(|&x| names.iter().map(move |&y| (x, y)));
    pairs
        .filter(|k| k.0 != k.1 && !a.contains_key(k) && !b.contains_key(k))
        .collect()
}

/// Links (from, to) as (old, new) wherever the two problems' links may differ: every
/// listed link, and every pair when the default links differ.
fn link_pairs<'a>(old: &'a Problem, new: &'a Problem) -> Vec<(Key<'a>, LinkPair)> {
    let (a, b) = (link_index(old), link_index(new));
    let mut keys: Vec<Key<'a>> = a.keys().chain(b.keys()).copied().collect();
    if old.default_link != new.default_link {
        keys.extend(unlisted(new, &a, &b));
    }
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|k| (k, (link_of(old, &a, &k), link_of(new, &b, &k))))
        .collect()
}

/// A link's (bandwidth, latency) in the previous problem and in the new one.
type LinkPair = (Option<(f64, f64)>, Option<(f64, f64)>);

/// Links (from, to) whose bandwidth or latency differs, or that exist on one side only.
fn changed_links<'a>(old: &'a Problem, new: &'a Problem) -> HashSet<Key<'a>> {
    if let Some(pairs) = aligned(old, new) {
        return pairs
            .filter(|(a, b)| (a.bw_mbps, a.latency_ms) != (b.bw_mbps, b.latency_ms))
            .map(|(_, b)| (b.from.as_str(), b.to.as_str()))
            .collect();
    }
    (link_pairs(old, new).into_iter())
        .filter(|(_, (a, b))| a != b)
        .map(|(k, _)| k)
        .collect()
}

/// The two problems' links side by side, when both list the same links in the same
/// order with the same default (a controller's two problems, built from one view, do):
/// a fleet's links are then compared in place, not indexed by name twice.
fn aligned<'a>(
    old: &'a Problem,
    new: &'a Problem,
) -> Option<impl Iterator<Item = (&'a LinkSpec, &'a LinkSpec)>> {
    let same = old.links.len() == new.links.len()
        && old.default_link == new.default_link
        && (old.links.iter())
            .zip(&new.links)
            .all(|(a, b)| a.from == b.from && a.to == b.to);
    same.then(|| old.links.iter().zip(&new.links))
}

/// Links (as `inst`'s host indices) that got better: new, more bandwidth or less
/// latency. They touch no path in force, but may offer a demand a better one.
fn improved_links(
    old: &Problem,
    new: &Problem,
    host_ix: &HashMap<&str, usize>,
) -> Vec<(usize, usize)> {
    let ends = |(from, to): Key| Some((*host_ix.get(from)?, *host_ix.get(to)?));
    if let Some(pairs) = aligned(old, new) {
        return pairs
            .filter(|(a, b)| b.bw_mbps > a.bw_mbps || b.latency_ms < a.latency_ms)
            .filter_map(|(_, b)| ends((b.from.as_str(), b.to.as_str())))
            .collect();
    }
    (link_pairs(old, new).into_iter())
        .filter(|(_, (a, b))| match (a, b) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some((bw, lat)), Some((nbw, nlat))) => nbw > bw || nlat < lat,
        })
        .filter_map(|(k, _)| ends(k))
        .collect()
}

/// Hosts whose capacity or local bandwidth differs (or that are new).
fn changed_hosts<'a>(old: &'a Problem, new: &'a Problem) -> HashSet<&'a str> {
    let before: HashMap<&str, (usize, f64)> = old
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), (h.capacity, h.local_bw_mbps)))
        .collect();
    new.hosts
        .iter()
        .filter(|h| before.get(h.name.as_str()) != Some(&(h.capacity, h.local_bw_mbps)))
        .map(|h| h.name.as_str())
        .collect()
}

/// The previous host of every VM that keeps it; the others are touched.
fn carry_mapping(
    inst: &Instance,
    prev: &Previous,
    host_ix: &HashMap<&str, usize>,
    changed: &HashSet<&str>,
) -> (Vec<Option<HostId>>, Vec<bool>) {
    let mut mapping = vec![None; inst.vms()];
    let mut touched = vec![false; inst.vms()];
    for v in 0..inst.vms() {
        let kept = prev
            .mapping
            .get(&inst.vm_names[v])
            .filter(|h| !changed.contains(h.as_str()))
            .and_then(|h| host_ix.get(h.as_str()))
            .map(|&h| HostId(h))
            .filter(|&h| !inst.pinned[v] || inst.current[v] == Some(h));
        mapping[v] = kept;
        touched[v] = kept.is_none();
    }
    (mapping, touched)
}

/// Hosts for the touched VMs: a pinned VM's own; else where it is when that host has
/// room, else the host with the most room.
fn place_touched(inst: &Instance, mapping: Vec<Option<HostId>>) -> Vec<HostId> {
    let mut load = vec![0usize; inst.hosts()];
    for h in mapping.iter().flatten() {
        load[h.0] += 1;
    }
    let mut out = Vec::with_capacity(mapping.len());
    for (v, m) in mapping.into_iter().enumerate() {
        let h = m.unwrap_or_else(|| {
            let h = match inst.current[v] {
                Some(c) if inst.pinned[v] || load[c.0] < inst.capacity[c.0] => c,
                _ => HostId(
                    (0..inst.hosts())
                        .max_by_key(|&h| (inst.capacity[h] as i64 - load[h] as i64, !h))
                        .unwrap_or(0),
                ),
            };
            load[h.0] += 1;
            h
        });
        out.push(h);
    }
    out
}

/// Whether a path in force is untouched by the change: it crosses no changed link, is
/// not local to a changed host, and (`p`, resolved) still joins the demand's hosts
/// over links that exist.
#[allow(clippy::too_many_arguments)]
fn untouched(
    inst: &Instance,
    i: usize,
    names: &[String],
    p: &[HostId],
    mapping: &[HostId],
    links: &HashSet<Key>,
    hosts: &HashSet<&str>,
) -> bool {
    let d = inst.demands[i];
    let crosses = names
        .windows(2)
        .any(|w| links.contains(&(w[0].as_str(), w[1].as_str())));
    let local_changed = names.len() == 1 && hosts.contains(names[0].as_str());
    let joins = p.first() == Some(&mapping[d.src.0]) && p.last() == Some(&mapping[d.dst.0]);
    !crosses && !local_changed && joins && path_latency(inst, p).is_some()
}

/// A demand's rate, bound and reservation, as the plan in force saw them.
#[derive(Debug, PartialEq)]
struct Rate {
    mbps: f64,
    max_latency_ms: Option<f64>,
    reserved_mbps: f64,
}

/// The reserved demands whose kept path crosses a link their reservations do not fit
/// (a new reservation, or a link whose bandwidth fell): touched, routed again first.
fn unheld_reservations(inst: &Instance, plan: &Plan) -> Vec<usize> {
    let reserved = |i: &usize| inst.demands[*i].reserved_mbps > 0.0 && !plan.paths[*i].is_empty();
    let mut load: HashMap<(usize, usize), f64> = HashMap::new();
    for i in (0..inst.demands.len()).filter(reserved) {
        for w in plan.paths[i].windows(2) {
            *load.entry((w[0].0, w[1].0)).or_default() += inst.demands[i].reserved_mbps;
        }
    }
    let over = |a: HostId, b: HostId| load[&(a.0, b.0)] > inst.reservable(a.0, b.0) + EPS;
    (0..inst.demands.len())
        .filter(reserved)
        .filter(|&i| plan.paths[i].windows(2).any(|w| over(w[0], w[1])))
        .collect()
}

/// A path by host names in `inst`'s indices (`None` when a host is gone).
fn resolve_path(names: &[String], host_ix: &HashMap<&str, usize>) -> Option<Vec<HostId>> {
    names
        .iter()
        .map(|h| host_ix.get(h.as_str()).map(|&x| HostId(x)))
        .collect()
}

/// Carries the plan in force into `inst` and marks what the change touched.
fn carry(inst: &Instance, problem: &Problem, prev: &Previous) -> Carried {
    let host_ix: HashMap<&str, usize> = inst
        .host_names
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let links = changed_links(prev.problem, problem);
    let hosts = changed_hosts(prev.problem, problem);
    let (host_before, mut vm) = carry_mapping(inst, prev, &host_ix, &hosts);
    let mapping = place_touched(inst, host_before.clone());
    // Previous demands and paths by (src, dst), in order (a pair may repeat).
    let mut before: HashMap<Key, VecDeque<Rate>> = HashMap::new();
    for d in &prev.problem.demands {
        let k = (d.src.as_str(), d.dst.as_str());
        before.entry(k).or_default().push_back(Rate {
            mbps: d.mbps.max(d.reserved_mbps),
            max_latency_ms: d.max_latency_ms,
            reserved_mbps: d.reserved_mbps,
        });
    }
    let mut paths: HashMap<Key, VecDeque<&PathOut>> = HashMap::new();
    for p in prev.paths {
        let k = (p.src.as_str(), p.dst.as_str());
        paths.entry(k).or_default().push_back(p);
    }
    let mut plan = Plan {
        mapping,
        paths: vec![Vec::new(); inst.demands.len()],
    };
    let mut demand = vec![true; inst.demands.len()];
    let mut path_before = vec![None; inst.demands.len()];
    for (i, (d, spec)) in inst.demands.iter().zip(&problem.demands).enumerate() {
        let k = (spec.src.as_str(), spec.dst.as_str());
        let same = before.get_mut(&k).and_then(|q| q.pop_front())
            == Some(Rate {
                mbps: d.mbps,
                max_latency_ms: d.max_latency_ms,
                reserved_mbps: d.reserved_mbps,
            });
        let Some(names) = paths.get_mut(&k).and_then(|q| q.pop_front()) else {
            continue;
        };
        let Some(p) = resolve_path(&names.hosts, &host_ix) else {
            continue;
        };
        let ends_kept = !vm[d.src.0] && !vm[d.dst.0];
        if same && ends_kept && untouched(inst, i, &names.hosts, &p, &plan.mapping, &links, &hosts)
        {
            plan.paths[i] = p.clone();
            demand[i] = false;
        }
        path_before[i] = Some(p);
    }
    for i in unheld_reservations(inst, &plan) {
        plan.paths[i].clear();
        demand[i] = true;
    }
    let improved = improved_links(prev.problem, problem, &host_ix);
    let took_better = take_improved(inst, &mut plan, &improved, &demand);
    let ends: HashSet<usize> = improved.iter().flat_map(|&(a, b)| [a, b]).collect();
    let near_better = plan.mapping.iter().map(|h| ends.contains(&h.0)).collect();
    for (i, d) in inst.demands.iter().enumerate() {
        if demand[i] {
            vm[d.src.0] = true;
            vm[d.dst.0] = true;
        }
    }
    Carried {
        plan,
        vm,
        demand,
        near_better,
        took_better,
        host_before,
        path_before,
    }
}

/// Moves each kept demand whose own route, on what the other kept paths leave, now
/// crosses an improved link and is wider (residual objective) or faster (latency
/// objective) than its path in force, onto that route; its VMs stay where they are.
/// A cheap bound first: a path through link a->b is no wider than its residual, and
/// no faster than its latency.
fn take_improved(
    inst: &Instance,
    plan: &mut Plan,
    improved: &[(usize, usize)],
    demand: &[bool],
) -> Vec<bool> {
    let mut took = vec![false; inst.demands.len()];
    if improved.is_empty() {
        return took;
    }
    let mut res = Residuals::new(inst);
    for (i, d) in inst.demands.iter().enumerate() {
        if !demand[i] {
            res.apply(&plan.paths[i], d.mbps, 1.0);
        }
    }
    let widest = improved
        .iter()
        .map(|&(a, b)| res.link[a][b])
        .fold(f64::NEG_INFINITY, f64::max);
    let fastest = improved
        .iter()
        .map(|&(a, b)| inst.latency[a][b])
        .fold(f64::INFINITY, f64::min);
    let on_improved = |p: &[HostId]| p.windows(2).any(|w| improved.contains(&(w[0].0, w[1].0)));
    for i in 0..inst.demands.len() {
        let (d, old) = (inst.demands[i], plan.paths[i].clone());
        if demand[i] || old.len() < 2 {
            continue;
        }
        let old_lat = path_latency(inst, &old).unwrap_or(f64::INFINITY);
        let may_gain = match inst.objective {
            Objective::ResidualBw => widest - d.mbps > res.bottleneck(&old) + EPS,
            Objective::Latency => fastest < old_lat - EPS,
        };
        if !may_gain {
            continue;
        }
        res.apply(&old, d.mbps, -1.0);
        let p = route_one(inst, &res, &plan.mapping, i);
        let gains = on_improved(&p)
            && match inst.objective {
                Objective::ResidualBw => res.bottleneck(&p) > res.bottleneck(&old) + EPS,
                Objective::Latency => path_latency(inst, &p).is_some_and(|l| l < old_lat - EPS),
            };
        took[i] = gains;
        if gains {
            res.apply(&p, d.mbps, 1.0);
            plan.paths[i] = p;
        } else {
            res.apply(&old, d.mbps, 1.0);
        }
    }
    took
}

/// Routes the touched demands on what the kept paths leave: the reserved ones first,
/// on what the kept reservations leave (best-effort traffic yields to a reservation,
/// in the plan as on the uplink); a kept best-effort demand that shares an overfull
/// link with a reservation routed here is touched (and its VMs) and routed after them,
/// heaviest first, on what everything else leaves.
fn route_touched(inst: &Instance, carried: &mut Carried) {
    let Carried {
        plan, demand, vm, ..
    } = carried;
    let reserved = |i: usize| inst.demands[i].reserved_mbps > 0.0;
    let (mut all, mut held) = (Residuals::new(inst), Residuals::reservable(inst));
    for (i, d) in inst.demands.iter().enumerate() {
        if !demand[i] {
            all.apply(&plan.paths[i], d.mbps, 1.0);
            if reserved(i) {
                held.apply(&plan.paths[i], d.reserved_mbps, 1.0);
            }
        }
    }
    let n = inst.demands.len();
    let mut order: Vec<usize> = (0..n).filter(|&i| demand[i] && reserved(i)).collect();
    order.sort_by(|&a, &b| Demand::first(&inst.demands, a, b));
    let mut crossed: HashSet<(usize, usize)> = HashSet::new();
    for &i in &order {
        let p = route_one(inst, &held, &plan.mapping, i);
        held.apply(&p, inst.demands[i].reserved_mbps, 1.0);
        all.apply(&p, inst.demands[i].mbps, 1.0);
        crossed.extend(p.windows(2).map(|w| (w[0].0, w[1].0)));
        plan.paths[i] = p;
    }
    let kept: Vec<usize> = (0..n).filter(|&i| !demand[i] && !reserved(i)).collect();
    for i in kept {
        let over =
            |w: &[HostId]| crossed.contains(&(w[0].0, w[1].0)) && all.link[w[0].0][w[1].0] < -EPS;
        if plan.paths[i].windows(2).any(over) {
            all.apply(&plan.paths[i], inst.demands[i].mbps, -1.0);
            demand[i] = true;
            let d = inst.demands[i];
            (vm[d.src.0], vm[d.dst.0]) = (true, true);
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| demand[i] && !reserved(i)).collect();
    order.sort_by(|&a, &b| Demand::first(&inst.demands, a, b));
    for i in order {
        let p = route_one(inst, &all, &plan.mapping, i);
        all.apply(&p, inst.demands[i].mbps, 1.0);
        plan.paths[i] = p;
    }
}

/// The time left, and whether it has run out.
struct Clock {
    started: Instant,
    budget_ms: Option<u64>,
    ran_out: bool,
}

impl Clock {
    fn left_ms(&mut self) -> Option<u64> {
        let ms = self.budget_ms?;
        let left = ms.saturating_sub(self.started.elapsed().as_millis() as u64);
        if left == 0 {
            self.ran_out = true;
        }
        Some(left)
    }

    fn out(&mut self) -> bool {
        self.left_ms() == Some(0)
    }
}

/// SA iterations for a scope: enough for a few hundred tries per movable thing, never
/// more than a full solve's.
fn iterations(inst: &Instance, scope: &Scope, opts: &Options) -> u64 {
    let size = (scope.vms.len() + scope.demands.len()) as u64;
    opts.iterations
        .unwrap_or((2_000 + 500 * size).min(Budget::for_instance(inst).iterations))
}

/// Anneals `plan` over `scope` in the time left (shared evenly with `parts` - 1 more
/// searches to come); keeps the result only if it is better.
fn search(
    inst: &Instance,
    plan: &mut Plan,
    scope: &Scope,
    opts: &Options,
    clock: &mut Clock,
    parts: usize,
) {
    if scope.is_empty() || clock.out() {
        return;
    }
    let budget = Budget {
        iterations: iterations(inst, scope, opts),
        time_ms: clock.left_ms().map(|ms| (ms / parts.max(1) as u64).max(1)),
    };
    let (p, stats) = anneal_scoped(inst, plan.clone(), opts.seed, budget, scope);
    clock.ran_out |= stats.stopped_by_time;
    if better(inst.objective, &evaluate(inst, &p), &evaluate(inst, plan)) {
        *plan = p;
    }
}

/// The scope of component `c`: its touched VMs (not pinned) and demands, or all of
/// them when `whole`.
fn scope_of(inst: &Instance, c: &Component, carried: &Carried, whole: bool) -> Scope {
    Scope {
        vms: c
            .vms
            .iter()
            .copied()
            .filter(|&v| !inst.pinned[v] && (whole || carried.vm[v]))
            .collect(),
        demands: c
            .demands
            .iter()
            .copied()
            .filter(|&i| whole || carried.demand[i])
            .collect(),
    }
}

/// Whether component `c` holds anything the change touched.
fn is_touched(c: &Component, carried: &Carried) -> bool {
    c.vms
        .iter()
        .any(|&v| carried.vm[v] || carried.near_better[v])
        || c.demands
            .iter()
            .any(|&i| carried.demand[i] || carried.took_better[i])
}

/// Component `c` solved afresh by GH+SA against what the rest of `plan` leaves; kept
/// only if the whole plan is better for it.
fn resolve(
    inst: &Instance,
    plan: &mut Plan,
    c: &Component,
    opts: &Options,
    seed: u64,
    clock: &mut Clock,
    parts: usize,
) {
    if clock.out() {
        return;
    }
    // A fresh GH starts from every pair's widest path (hosts cubed steps, about a
    // nanosecond each): not when that alone would outlast this search's share of the
    // time (a fleet of 1,000 hosts: a second).
    let greedy_ms = (inst.hosts() as f64).powi(3) / 1e6;
    let share = |ms: u64| (ms / parts.max(1) as u64) as f64;
    if clock.left_ms().is_some_and(|ms| greedy_ms > share(ms)) {
        return;
    }
    let mut used = Usage::new(inst.hosts());
    let mut inside = vec![false; inst.vms()];
    for &v in &c.vms {
        inside[v] = true;
    }
    for (v, h) in plan.mapping.iter().enumerate() {
        if !inside[v] {
            used.place(*h);
        }
    }
    for (d, p) in inst.demands.iter().zip(&plan.paths) {
        if !inside[d.src.0] {
            used.route(p, d.mbps);
        }
    }
    let sub = sub_instance(inst, &c.vms, &c.demands, &used);
    let budget = Budget {
        iterations: opts
            .iterations
            .unwrap_or(Budget::for_instance(&sub.inst).iterations),
        time_ms: clock.left_ms().map(|ms| (ms / parts.max(1) as u64).max(1)),
    };
    let start = greedy::greedy(&sub.inst);
    let (p, stats) = super::anneal::anneal(&sub.inst, start, seed, budget);
    clock.ran_out |= stats.stopped_by_time;
    let mut candidate = plan.clone();
    sub.write_back(&p, &mut candidate);
    if better(
        inst.objective,
        &evaluate(inst, &candidate),
        &evaluate(inst, plan),
    ) {
        *plan = candidate;
    }
}

/// Puts back the path in force of every untouched demand whose ends are where they
/// were (the search may have moved them and back) when that is no worse.
fn restore_untouched(inst: &Instance, plan: &mut Plan, carried: &Carried) {
    let mut now = evaluate(inst, plan);
    for (i, d) in inst.demands.iter().enumerate() {
        let Some(before) = carried.path_before[i].as_ref() else {
            continue;
        };
        let ends = (plan.mapping[d.src.0], plan.mapping[d.dst.0]);
        if carried.demand[i]
            || plan.paths[i] == *before
            || ends != (before[0], before[before.len() - 1])
        {
            continue;
        }
        let old = std::mem::replace(&mut plan.paths[i], before.clone());
        let e = evaluate(inst, plan);
        if better(inst.objective, &now, &e) {
            plan.paths[i] = old;
        } else {
            now = e;
        }
    }
}

/// Whether the search over the whole of the touched applications gained enough over
/// the touched VMs and demands alone to be worth the traffic it moves: feasibility, or
/// more than `WIDEN_GAIN` of the objective.
fn worth_widening(inst: &Instance, narrow: &Plan, wide: &Plan) -> bool {
    let (a, b) = (evaluate(inst, narrow), evaluate(inst, wide));
    if a.feasible != b.feasible || a.objective.is_nan() || b.objective.is_nan() {
        return b.feasible && !a.feasible;
    }
    let gain = match inst.objective {
        Objective::ResidualBw => b.objective - a.objective,
        Objective::Latency => a.objective - b.objective,
    };
    gain > WIDEN_GAIN * a.objective.abs()
}

/// What differs between the carried plan and the repaired one.
fn report(carried: &Carried, plan: &Plan, comps: &[Component], widened: bool) -> RepairReport {
    RepairReport {
        touched_vms: carried.vm.iter().filter(|&&t| t).count(),
        touched_demands: carried.demand.iter().filter(|&&t| t).count(),
        touched_components: comps.iter().filter(|c| is_touched(c, carried)).count(),
        components: comps.len(),
        widened,
        moved_vms: (0..plan.mapping.len())
            .filter(|&v| carried.host_before[v].is_some_and(|h| h != plan.mapping[v]))
            .count(),
        rerouted_demands: (0..plan.paths.len())
            .filter(|&i| carried.path_before[i].as_ref() != Some(&plan.paths[i]))
            .count(),
    }
}

/// Repairs the plan in force for `problem`: see the module's documentation. The answer
/// is reported as `solve`'s (objective, feasibility, actions against `problem`'s
/// current state), with `algo` "repair", `stopped_by_time` when `opts.budget_ms` cut it
/// short, and `repair` saying what was touched. `opts.algo` is not used.
pub fn repair(
    problem: &Problem,
    previous: &Previous,
    opts: &Options,
) -> Result<Answer, ProblemError> {
    let started = Instant::now();
    let inst = Instance::from_problem(problem)?;
    let mut clock = Clock {
        started,
        budget_ms: opts.budget_ms,
        ran_out: false,
    };
    let mut carried = carry(&inst, problem, previous);
    route_touched(&inst, &mut carried);
    let mut plan = carried.plan.clone();
    let comps = components(&inst);
    let touched: Vec<&Component> = comps.iter().filter(|c| is_touched(c, &carried)).collect();
    // The touched VMs and demands first; then the whole of each touched application,
    // by SA from the plan so far and by GH+SA afresh from `FRESH_STARTS` seeds, the
    // best of those kept only when worth it. Every search has an equal share of the
    // time left.
    let mut parts = touched.len() * (2 + FRESH_STARTS as usize);
    for c in &touched {
        let scope = scope_of(&inst, c, &carried, false);
        search(&inst, &mut plan, &scope, opts, &mut clock, parts);
        parts -= 1;
    }
    let narrow = plan.clone();
    for c in &touched {
        let scope = scope_of(&inst, c, &carried, true);
        search(&inst, &mut plan, &scope, opts, &mut clock, parts);
        parts -= 1;
        for k in 0..FRESH_STARTS {
            let seed = opts.seed.wrapping_add(k);
            resolve(&inst, &mut plan, c, opts, seed, &mut clock, parts);
            parts -= 1;
        }
    }
    let widened = worth_widening(&inst, &narrow, &plan);
    if !widened {
        plan = narrow;
    }
    restore_untouched(&inst, &mut plan, &carried);
    let mut a = render(&inst, problem, &plan, "repair", started);
    a.stopped_by_time = Some(clock.ran_out);
    a.repair = Some(report(&carried, &plan, &comps, widened));
    Ok(a)
}
