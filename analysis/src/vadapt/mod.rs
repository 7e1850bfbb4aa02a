//! VADAPT: from the application's demands (VTTIF) and the network's measured
//! bandwidth and latency (Wren), choose the VM-to-host mapping and an overlay path
//! for every demand, and turn the plan into per-daemon rule and link changes plus
//! migrations.
//!
//! Feasible: every VM on a host, capacities held, pinned VMs not moved, every demand
//! routed, every link's and host's residual ≥ 0, every latency bound held. Objective
//! `residual_bw` maximises the sum over demands of the smallest residual on its path;
//! `latency` minimises the sum of path latencies. Ties prefer fewer migrations.

pub mod actions;
pub mod anneal;
pub mod components;
pub mod exact;
pub mod greedy;
pub mod plan;
pub mod problem;
pub mod random;
pub mod repair;
pub mod rng;
pub mod routing;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use plan::{evaluate, Evaluation, Plan};
pub use problem::{Instance, Objective, Problem, ProblemError};
pub use repair::{repair, Previous, RepairReport};

/// Which algorithm to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algo {
    #[serde(rename = "gh")]
    Greedy,
    #[serde(rename = "sa")]
    Anneal,
    #[serde(rename = "gh+sa")]
    GreedyAnneal,
    #[serde(rename = "exact")]
    Exact,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Greedy => "gh",
            Algo::Anneal => "sa",
            Algo::GreedyAnneal => "gh+sa",
            Algo::Exact => "exact",
        }
    }
}

impl std::str::FromStr for Algo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gh" => Ok(Algo::Greedy),
            "sa" => Ok(Algo::Anneal),
            "gh+sa" => Ok(Algo::GreedyAnneal),
            "exact" => Ok(Algo::Exact),
            _ => Err(format!("unknown algorithm {s:?}: gh, sa, gh+sa or exact")),
        }
    }
}

/// Knobs of a run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub algo: Algo,
    pub seed: u64,
    /// SA iterations; `None` for a default that grows with the problem.
    pub iterations: Option<u64>,
    /// Wall-clock cap; a run it cuts short says so (and is then not reproducible).
    pub budget_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            algo: Algo::GreedyAnneal,
            seed: 1,
            iterations: None,
            budget_ms: None,
        }
    }
}

/// A demand's path in the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathOut {
    pub src: String,
    pub dst: String,
    pub hosts: Vec<String>,
}

/// What `wrenvnet adapt --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub algo: String,
    pub feasible: bool,
    /// The objective's value; `null` when no path joins some demand's hosts.
    pub objective: Option<f64>,
    pub mapping: BTreeMap<String, String>,
    pub paths: Vec<PathOut>,
    pub migrations: usize,
    pub elapsed_ms: f64,
    /// Broken constraints of a best-effort (infeasible) plan.
    pub violations: Vec<String>,
    /// Reserved demands the plan does not hold (see `plan::Evaluation`).
    #[serde(default)]
    pub reservations_broken: usize,
    /// Exact only: whether the search finished (the answer is optimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proven_optimal: Option<bool>,
    /// SA: whether the time budget cut the run short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by_time: Option<bool>,
    /// What to change on each daemon, and the migrations, against the current state.
    pub actions: actions::Actions,
    /// A repair only: what the change touched and what the repair did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<RepairReport>,
}

/// Runs one algorithm on an instance and returns its plan.
pub fn solve_plan(inst: &Instance, opts: &Options) -> (Plan, Option<bool>, Option<bool>) {
    let sa_budget = |inst: &Instance| anneal::Budget {
        iterations: opts
            .iterations
            .unwrap_or(anneal::Budget::for_instance(inst).iterations),
        time_ms: opts.budget_ms,
    };
    match opts.algo {
        Algo::Greedy => (greedy::greedy(inst), None, None),
        Algo::Anneal => {
            let (p, s) =
                anneal::anneal(inst, anneal::initial_plan(inst), opts.seed, sa_budget(inst));
            (p, None, Some(s.stopped_by_time))
        }
        Algo::GreedyAnneal => {
            let gh = greedy::greedy(inst);
            let (p, s) = anneal::anneal(inst, gh, opts.seed, sa_budget(inst));
            (p, None, Some(s.stopped_by_time))
        }
        Algo::Exact => {
            // Start from GH+SA's answer: a good incumbent prunes most of the tree.
            let gh = greedy::greedy(inst);
            let (inc, _) = anneal::anneal(inst, gh, opts.seed, anneal::Budget::for_instance(inst));
            let budget = exact::ExactBudget {
                time_ms: opts.budget_ms,
                ..Default::default()
            };
            let (p, stats) = exact::exact(inst, Some(inc.clone()), budget);
            (p.unwrap_or(inc), Some(stats.proven_optimal), None)
        }
    }
}

/// Solves `problem` and renders the answer.
pub fn solve(problem: &Problem, opts: &Options) -> Result<Answer, ProblemError> {
    let started = Instant::now();
    let inst = Instance::from_problem(problem)?;
    let (plan, proven, by_time) = solve_plan(&inst, opts);
    let mut a = render(&inst, problem, &plan, opts.algo.name(), started);
    a.proven_optimal = proven;
    a.stopped_by_time = by_time;
    Ok(a)
}

/// The answer for `plan`: its evaluation, names, paths and actions.
pub(crate) fn render(
    inst: &Instance,
    problem: &Problem,
    plan: &Plan,
    algo: &str,
    started: Instant,
) -> Answer {
    let e = evaluate(inst, plan);
    let mapping = plan
        .mapping
        .iter()
        .enumerate()
        .map(|(v, h)| (inst.vm_names[v].clone(), inst.host_names[h.0].clone()))
        .collect();
    let paths: Vec<PathOut> = inst
        .demands
        .iter()
        .zip(&plan.paths)
        .map(|(d, p)| PathOut {
            src: inst.vm_names[d.src.0].clone(),
            dst: inst.vm_names[d.dst.0].clone(),
            hosts: p.iter().map(|h| inst.host_names[h.0].clone()).collect(),
        })
        .collect();
    let actions = actions::diff(inst, problem, plan);
    Answer {
        algo: algo.to_string(),
        feasible: e.feasible,
        objective: (!e.objective.is_nan()).then_some(e.objective),
        mapping,
        paths,
        migrations: e.migrations,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        violations: e.violations,
        reservations_broken: e.reservations_broken,
        proven_optimal: None,
        stopped_by_time: None,
        actions,
        repair: None,
    }
}
