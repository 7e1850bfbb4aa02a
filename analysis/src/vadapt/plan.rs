//! A plan (VM → host, and a host path per demand) and its evaluation from first
//! principles: this is the independent recomputation every algorithm's answer is
//! checked against, so it shares no bookkeeping with the algorithms.

use std::collections::HashMap;

use super::problem::{HostId, Instance, Objective};

/// Slack for floating-point sums: a residual above -EPS counts as non-negative.
pub const EPS: f64 = 1e-6;

/// VM placement and one host path per demand (in `Instance::demands` order).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mapping: Vec<HostId>,
    pub paths: Vec<Vec<HostId>>,
}

/// What a plan achieves and which constraints it breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub feasible: bool,
    /// Residual objective (maximise) or total latency (minimise), as `Instance::objective`.
    pub objective: f64,
    pub migrations: usize,
    /// Human-readable broken constraints.
    pub violations: Vec<String>,
    /// How badly constraints are broken, in Mbit/s-like units (0 when feasible); the
    /// annealer's penalty.
    pub violation_amount: f64,
    /// Reserved demands whose path does not hold them: it crosses a link whose
    /// reservations exceed its bandwidth, or joins nothing.
    pub reservations_broken: usize,
}

/// The path's latency, or `None` when a hop has no link.
pub fn path_latency(inst: &Instance, path: &[HostId]) -> Option<f64> {
    path.windows(2)
        .map(|w| inst.bw[w[0].0][w[1].0].map(|_| inst.latency[w[0].0][w[1].0]))
        .sum()
}

/// Link loads (Mbit/s routed over each directed link that carries a path) and
/// host-local loads: per host, the links out of it that paths use, by destination.
/// Sparse, so a plan costs its paths' hops rather than hosts squared.
pub struct Loads {
    pub link: Vec<Vec<(usize, f64)>>,
    pub local: Vec<f64>,
}

impl Loads {
    /// The load on link a->b (0 when no path uses it).
    pub fn link(&self, a: usize, b: usize) -> f64 {
        self.link[a]
            .iter()
            .find(|&&(x, _)| x == b)
            .map_or(0.0, |&(_, l)| l)
    }
}

/// The loads of `plan`'s paths, each link's links in ascending destination order.
pub fn loads(inst: &Instance, plan: &Plan) -> Loads {
    let n = inst.hosts();
    let mut link: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let mut local = vec![0.0; n];
    for (d, path) in inst.demands.iter().zip(&plan.paths) {
        if path.len() == 1 {
            local[path[0].0] += d.mbps;
        }
        for w in path.windows(2) {
            let row = &mut link[w[0].0];
            match row.iter_mut().find(|(x, _)| *x == w[1].0) {
                Some((_, l)) => *l += d.mbps,
                None => row.push((w[1].0, d.mbps)),
            }
        }
    }
    for row in &mut link {
        row.sort_by_key(|&(b, _)| b);
    }
    Loads { link, local }
}

/// Evaluates `plan` on `inst`.
pub fn evaluate(inst: &Instance, plan: &Plan) -> Evaluation {
    assess(inst, plan, true)
}

/// `evaluate` without the words: every broken constraint is an empty string (their
/// number and amount are what a search compares), so a search over a plan that breaks
/// thousands of constraints does not format thousands of messages per candidate.
pub fn evaluate_quiet(inst: &Instance, plan: &Plan) -> Evaluation {
    assess(inst, plan, false)
}

fn assess(inst: &Instance, plan: &Plan, describe: bool) -> Evaluation {
    let n = inst.hosts();
    let mut violations: Vec<String> = Vec::new();
    macro_rules! note {
        ($($t:tt)*) => {
            violations.push(if describe { format!($($t)*) } else { String::new() })
        };
    }
    let mut amount = 0.0;
    let big = inst.largest_bw;

    if plan.mapping.len() != inst.vms() || plan.paths.len() != inst.demands.len() {
        return Evaluation {
            feasible: false,
            objective: f64::NAN,
            migrations: 0,
            violations: vec!["plan does not cover every VM and demand".into()],
            violation_amount: f64::INFINITY,
            reservations_broken: inst
                .demands
                .iter()
                .filter(|d| d.reserved_mbps > 0.0)
                .count(),
        };
    }
    let mut count = vec![0usize; n];
    for (v, h) in plan.mapping.iter().enumerate() {
        if h.0 >= n {
            return Evaluation {
                feasible: false,
                objective: f64::NAN,
                migrations: 0,
                violations: vec![format!(
                    "VM {} on a host that does not exist",
                    inst.vm_names[v]
                )],
                violation_amount: f64::INFINITY,
                reservations_broken: inst
                    .demands
                    .iter()
                    .filter(|d| d.reserved_mbps > 0.0)
                    .count(),
            };
        }
        count[h.0] += 1;
        if inst.pinned[v] && inst.current[v] != Some(*h) {
            note!("pinned VM {} moved", inst.vm_names[v]);
            amount += big;
        }
    }
    for h in 0..n {
        if count[h] > inst.capacity[h] {
            note!(
                "host {} holds {} VMs, capacity {}",
                inst.host_names[h],
                count[h],
                inst.capacity[h]
            );
            amount += big * (count[h] - inst.capacity[h]) as f64;
        }
    }
    let migrations = plan
        .mapping
        .iter()
        .zip(&inst.current)
        .filter(|(h, c)| matches!(c, Some(c) if c != *h))
        .count();

    let mut broken_path = false;
    for (i, (d, path)) in inst.demands.iter().zip(&plan.paths).enumerate() {
        let name = || format!("{}->{}", inst.vm_names[d.src.0], inst.vm_names[d.dst.0]);
        let (hs, hd) = (plan.mapping[d.src.0], plan.mapping[d.dst.0]);
        if path.first() != Some(&hs) || path.last() != Some(&hd) || path.iter().any(|h| h.0 >= n) {
            note!(
                "demand {} (#{i}): path does not join its VMs' hosts",
                name()
            );
            amount += big * 4.0;
            broken_path = true;
            continue;
        }
        match path_latency(inst, path) {
            None => {
                note!("demand {}: path uses a missing link", name());
                amount += big * 2.0;
                broken_path = true;
            }
            Some(lat) => {
                if let Some(max) = d.max_latency_ms {
                    if lat > max + EPS {
                        note!("demand {}: latency {lat:.3} ms > bound {max} ms", name());
                        amount += (lat - max) * big / 10.0 + big / 100.0;
                    }
                }
            }
        }
    }
    let loads = loads(inst, plan);
    let local_load = &loads.local;
    let residual = |a: usize, b: usize| inst.bw[a][b].unwrap_or(0.0) - loads.link(a, b);
    for a in 0..n {
        if inst.local_bw[a] - local_load[a] < -EPS {
            note!(
                "host {}: local demand {:.3} > {:.3} Mbit/s",
                inst.host_names[a],
                local_load[a],
                inst.local_bw[a]
            );
            amount += local_load[a] - inst.local_bw[a];
        }
        for &(b, load) in &loads.link[a] {
            let left = inst.bw[a][b].unwrap_or(0.0) - load;
            if load > 0.0 && left < -EPS {
                note!(
                    "link {}->{}: demand {:.3} > {:.3} Mbit/s",
                    inst.host_names[a],
                    inst.host_names[b],
                    load,
                    inst.bw[a][b].unwrap_or(0.0)
                );
                amount += -left;
            }
        }
    }
    let reservations_broken = reservations(inst, plan, &mut violations, &mut amount, describe);
    let objective = if broken_path {
        f64::NAN
    } else {
        match inst.objective {
            Objective::ResidualBw => plan
                .paths
                .iter()
                .map(|p| {
                    if p.len() == 1 {
                        inst.local_bw[p[0].0] - local_load[p[0].0]
                    } else {
                        p.windows(2)
                            .map(|w| residual(w[0].0, w[1].0))
                            .fold(f64::INFINITY, f64::min)
                    }
                })
                .sum(),
            Objective::Latency => plan
                .paths
                .iter()
                .map(|p| path_latency(inst, p).unwrap_or(0.0))
                .sum(),
        }
    };
    Evaluation {
        feasible: violations.is_empty(),
        objective,
        migrations,
        violations,
        violation_amount: amount,
        reservations_broken,
    }
}

/// The reservations' hard constraint: on every link, the reserved demands whose path
/// crosses it fit its bandwidth. A broken one weighs more than any capacity shortfall
/// (`largest_bw` × 2 plus the excess), so a search gives up best-effort bandwidth
/// before a reservation. Returns how many reserved demands are not held (a path that
/// joins nothing holds none).
fn reservations(
    inst: &Instance,
    plan: &Plan,
    violations: &mut Vec<String>,
    amount: &mut f64,
    describe: bool,
) -> usize {
    if !inst.demands.iter().any(|d| d.reserved_mbps > 0.0) {
        return 0;
    }
    let reserved = || (inst.demands.iter().zip(&plan.paths)).filter(|(d, _)| d.reserved_mbps > 0.0);
    let mut load: HashMap<(usize, usize), f64> = HashMap::new();
    for (d, path) in reserved() {
        for w in path.windows(2) {
            *load.entry((w[0].0, w[1].0)).or_default() += d.reserved_mbps;
        }
    }
    let bw = |(a, b): (usize, usize)| inst.reservable(a, b);
    let over = |k: (usize, usize)| load.get(&k).is_some_and(|&l| l > bw(k) + EPS);
    let mut keys: Vec<&(usize, usize)> = load.keys().filter(|&&k| over(k)).collect();
    keys.sort_unstable();
    for &k in keys {
        let excess = load[&k] - bw(k);
        *amount += inst.largest_bw * 2.0 + excess;
        violations.push(if describe {
            format!(
                "link {}->{}: reservations {:.3} > {:.3} Mbit/s",
                inst.host_names[k.0],
                inst.host_names[k.1],
                load[&k],
                bw(k)
            )
        } else {
            String::new()
        });
    }
    reserved()
        .filter(|(d, path)| {
            let ends = (path.first(), path.last());
            ends != (Some(&plan.mapping[d.src.0]), Some(&plan.mapping[d.dst.0]))
                || path.windows(2).any(|w| over((w[0].0, w[1].0)))
        })
        .count()
}

/// Whether `a` is a better answer than `b`: feasible beats infeasible; then the
/// objective (with a relative tolerance, so near-ties count as ties); then fewer
/// migrations; infeasible answers compare by how badly they break constraints.
pub fn better(objective: Objective, a: &Evaluation, b: &Evaluation) -> bool {
    if a.feasible != b.feasible {
        return a.feasible;
    }
    if !a.feasible && (a.violation_amount - b.violation_amount).abs() > EPS {
        return a.violation_amount < b.violation_amount;
    }
    let (x, y) = (a.objective, b.objective);
    if x.is_nan() || y.is_nan() {
        return !x.is_nan() && y.is_nan();
    }
    let tol = 1e-9 * x.abs().max(y.abs()).max(1.0);
    let diff = match objective {
        Objective::ResidualBw => x - y,
        Objective::Latency => y - x,
    };
    if diff > tol {
        return true;
    }
    if diff < -tol {
        return false;
    }
    a.migrations < b.migrations
}
