//! VADAPT quality: every plan any algorithm returns is feasible when it says so, its
//! objective matches a recomputation written here from the problem text alone, and
//! GH+SA comes within 2% of Exact's optimum on at least 95% of random small instances.

use std::collections::HashMap;

use analysis::vadapt::random::{instance, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{solve, Algo, Answer, Objective, Options, Problem};

/// Recomputes feasibility and objective of `a` from `p`, by name, independently of
/// the library's evaluation.
fn recompute(p: &Problem, a: &Answer) -> (bool, f64) {
    let mut ok = true;
    let cap: HashMap<&str, usize> = p
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.capacity))
        .collect();
    let local_bw: HashMap<&str, f64> = p
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.local_bw_mbps))
        .collect();
    let links: HashMap<(&str, &str), (f64, f64)> = p
        .links
        .iter()
        .map(|l| ((l.from.as_str(), l.to.as_str()), (l.bw_mbps, l.latency_ms)))
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for vm in &p.vms {
        let Some(h) = a.mapping.get(&vm.name) else {
            return (false, f64::NAN);
        };
        *count.entry(h.as_str()).or_default() += 1;
        if vm.pinned && vm.host.as_deref() != Some(h.as_str()) {
            ok = false;
        }
    }
    for (h, c) in &count {
        if *c > cap[h] {
            ok = false;
        }
    }
    assert_eq!(a.paths.len(), p.demands.len());
    let mut link_load: HashMap<(&str, &str), f64> = HashMap::new();
    let mut local_load: HashMap<&str, f64> = HashMap::new();
    for (d, path) in p.demands.iter().zip(&a.paths) {
        assert_eq!(
            (d.src.as_str(), d.dst.as_str()),
            (path.src.as_str(), path.dst.as_str())
        );
        let hs = &path.hosts;
        if hs.first() != a.mapping.get(&d.src) || hs.last() != a.mapping.get(&d.dst) {
            return (false, f64::NAN);
        }
        if hs.len() == 1 {
            *local_load.entry(hs[0].as_str()).or_default() += d.mbps;
        }
        let mut lat = 0.0;
        for w in hs.windows(2) {
            match links.get(&(w[0].as_str(), w[1].as_str())) {
                Some((_, l)) => lat += l,
                None => return (false, f64::NAN),
            }
            *link_load.entry((w[0].as_str(), w[1].as_str())).or_default() += d.mbps;
        }
        if d.max_latency_ms.is_some_and(|m| lat > m + 1e-6) {
            ok = false;
        }
    }
    for (l, load) in &link_load {
        if links[l].0 - load < -1e-6 {
            ok = false;
        }
    }
    for (h, load) in &local_load {
        if local_bw[h] - load < -1e-6 {
            ok = false;
        }
    }
    let objective = match p.objective {
        Objective::ResidualBw => a
            .paths
            .iter()
            .map(|path| {
                let hs = &path.hosts;
                if hs.len() == 1 {
                    local_bw[hs[0].as_str()] - local_load[hs[0].as_str()]
                } else {
                    hs.windows(2)
                        .map(|w| {
                            let k = (w[0].as_str(), w[1].as_str());
                            links[&k].0 - link_load[&k]
                        })
                        .fold(f64::INFINITY, f64::min)
                }
            })
            .sum(),
        Objective::Latency => a
            .paths
            .iter()
            .map(|path| {
                path.hosts
                    .windows(2)
                    .map(|w| links[&(w[0].as_str(), w[1].as_str())].1)
                    .sum::<f64>()
            })
            .sum(),
    };
    (ok, objective)
}

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
