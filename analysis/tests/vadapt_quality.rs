//! VADAPT quality: every plan any algorithm returns is feasible when it says so, its
//! objective matches a recomputation from the problem text alone (tests/common), and
//! GH+SA comes within 2% of Exact's optimum on at least 95% of random small instances.

use std::collections::HashMap;

mod common;
use common::recompute;

use analysis::vadapt::random::{instance, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{solve, Algo, Objective, Options};

fn opts(algo: Algo, seed: u64) -> Options {
    Options {
        algo,
        seed,
        iterations: None,
        budget_ms: None,
    }
}

#[test]
fn every_plan_is_what_it_says_it_is() {
    let mut rng = Rng::new(7);
    let mut feasible_seen = 0;
    for case in 0..150 {
        let shape = Shape {
            hosts: 2 + rng.below(10),
            vms: 2 + rng.below(16),
            demand_factor: 0.5 + rng.unit() * 1.5,
            link_density: rng.unit(),
            latency_objective: case % 4 == 3,
        };
        let p = instance(&mut rng, shape);
        let algos: &[Algo] = if shape.vms <= 6 && shape.hosts <= 5 {
            &[Algo::Greedy, Algo::Anneal, Algo::GreedyAnneal, Algo::Exact]
        } else {
            &[Algo::Greedy, Algo::Anneal, Algo::GreedyAnneal]
        };
        for &algo in algos {
            // Properties, not quality: a short search is enough.
            let o = Options {
                iterations: Some(2000),
                ..opts(algo, case)
            };
            let a = solve(&p, &o).unwrap();
            let (ok, obj) = recompute(&p, &a);
            assert_eq!(
                a.feasible, ok,
                "case {case} {algo:?}: says feasible={} but recomputation says {ok}: {:?}",
                a.feasible, a.violations
            );
            if a.feasible {
                feasible_seen += 1;
                let rep = a.objective.expect("feasible plans have an objective");
                assert!(
                    (rep - obj).abs() <= 1e-6 * obj.abs().max(1.0),
                    "case {case} {algo:?}: objective {rep} vs recomputed {obj}"
                );
                assert!(a.violations.is_empty());
            } else {
                assert!(!a.violations.is_empty(), "infeasible without a reason");
            }
            let migrations = p
                .vms
                .iter()
                .filter(|v| v.host.as_ref().is_some_and(|h| a.mapping[&v.name] != *h))
                .count();
            assert_eq!(a.migrations, migrations);
            assert_eq!(a.actions.migrations.len(), migrations);
        }
    }
    assert!(
        feasible_seen > 300,
        "too few feasible plans to mean anything: {feasible_seen}"
    );
}

#[test]
fn same_seed_same_plan() {
    let mut rng = Rng::new(99);
    let p = instance(
        &mut rng,
        Shape {
            hosts: 8,
            vms: 20,
            demand_factor: 1.5,
            link_density: 0.5,
            latency_objective: false,
        },
    );
    let a = solve(&p, &opts(Algo::GreedyAnneal, 5)).unwrap();
    let b = solve(&p, &opts(Algo::GreedyAnneal, 5)).unwrap();
    assert_eq!(a.mapping, b.mapping);
    assert_eq!(a.paths, b.paths);
    assert_eq!(a.objective, b.objective);
}

/// Relative gap of `got` to the optimum `best` (0 = optimal), oriented by objective.
fn gap(obj: Objective, got: f64, best: f64) -> f64 {
    let scale = best.abs().max(1e-9);
    match obj {
        Objective::ResidualBw => (best - got) / scale,
        Objective::Latency => (got - best) / scale,
    }
}

#[test]
fn gh_sa_is_within_two_percent_of_exact_on_95_percent_of_small_instances() {
    let mut rng = Rng::new(2006);
    let mut gaps: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut compared = 0;
    let mut tries = 0;
    while compared < 60 && tries < 200 {
        tries += 1;
        let shape = Shape {
            hosts: 2 + rng.below(5),
            vms: 3 + rng.below(6),
            demand_factor: 0.8 + rng.unit(),
            link_density: 0.3 + rng.unit() * 0.7,
            latency_objective: tries % 4 == 0,
        };
        let p = instance(&mut rng, shape);
        let ex = solve(&p, &opts(Algo::Exact, 1)).unwrap();
        if !ex.feasible || ex.proven_optimal != Some(true) {
            continue;
        }
        compared += 1;
        let best = ex.objective.unwrap();
        for (name, algo) in [
            ("gh", Algo::Greedy),
            ("sa", Algo::Anneal),
            ("gh+sa", Algo::GreedyAnneal),
        ] {
            let a = solve(&p, &opts(algo, 1)).unwrap();
            let g = if a.feasible {
                gap(p.objective, a.objective.unwrap(), best)
            } else {
                f64::INFINITY
            };
            assert!(
                g >= -1e-6,
                "{name} beat the exact optimum ({} vs {best}): the oracle is wrong",
                a.objective.unwrap()
            );
            gaps.entry(name).or_default().push(g);
        }
    }
    assert!(compared >= 40, "only {compared} instances compared");
    for name in ["gh", "sa", "gh+sa"] {
        let g = &gaps[name];
        let within = |t: f64| g.iter().filter(|&&x| x <= t + 1e-9).count() as f64 / g.len() as f64;
        println!(
            "{name:>6}: optimal {:.0}%  within 2% {:.0}%  within 10% {:.0}%  worst gap {:.1}%  (n={})",
            100.0 * within(0.0),
            100.0 * within(0.02),
            100.0 * within(0.10),
            100.0 * g.iter().cloned().fold(0.0, f64::max),
            g.len()
        );
    }
    let g = &gaps["gh+sa"];
    let ok = g.iter().filter(|&&x| x <= 0.02 + 1e-9).count() as f64 / g.len() as f64;
    assert!(
        ok >= 0.95,
        "GH+SA within 2% of optimum on only {:.0}% of instances",
        ok * 100.0
    );
}
