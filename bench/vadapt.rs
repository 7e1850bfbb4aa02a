//! VADAPT benchmark: the distribution of GH, SA and GH+SA against Exact on random
//! small instances, GH+SA's time at scale (64 VMs on 32 hosts, 256 VMs on 64), and
//! repair against a full GH+SA on the same changed instances (time and objective).
//!
//!   cargo bench --bench vadapt            # writes bench/results/vadapt.{md,json}
//!   cargo bench --bench vadapt -- --scale [HOSTS...]
//!       # full GH+SA and repair after one link change at 4 VMs a host (64 256 1024
//!       # hosts by default): bench/results/vadapt-scale.md, problem files in
//!       # target/vadapt-scale/ for `wrenvnet adapt --input`

use std::time::Instant;

mod scale {
    include!("vadapt_scale.rs");
}

use analysis::vadapt::random::{applied, instance, perturb, repair_shape, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{repair, solve, Algo, Objective, Options, Previous};

fn gap(obj: Objective, got: f64, best: f64) -> f64 {
    let scale = best.abs().max(1e-9);
    match obj {
        Objective::ResidualBw => (best - got) / scale,
        Objective::Latency => (got - best) / scale,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(k) = args.iter().position(|a| a == "--scale") {
        let hosts: Vec<usize> = args[k + 1..]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        scale::run(if hosts.is_empty() {
            vec![64, 256, 1024]
        } else {
            hosts
        });
        return;
    }
    let mut md = String::from("# VADAPT: quality against Exact, and time at scale\n\n");
    let mut json = serde_json::Map::new();

    // Quality: random instances with up to 8 VMs and 6 hosts.
    let mut rng = Rng::new(424242);
    let names = ["gh", "sa", "gh+sa"];
    let mut gaps: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut exact_ms = Vec::new();
    let mut n = 0;
    let mut skipped = 0;
    while n < 200 {
        let shape = Shape {
            hosts: 2 + rng.below(5),
            vms: 3 + rng.below(6),
            demand_factor: 0.8 + rng.unit(),
            link_density: 0.3 + rng.unit() * 0.7,
            latency_objective: rng.unit() < 0.25,
        };
        let p = instance(&mut rng, shape);
        let t = Instant::now();
        let ex = solve(
            &p,
            &Options {
                algo: Algo::Exact,
                ..Default::default()
            },
        )
        .unwrap();
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if !ex.feasible || ex.proven_optimal != Some(true) {
            skipped += 1;
            continue;
        }
        n += 1;
        let best = ex.objective.unwrap();
        for (k, algo) in [Algo::Greedy, Algo::Anneal, Algo::GreedyAnneal]
            .into_iter()
            .enumerate()
        {
            let a = solve(
                &p,
                &Options {
                    algo,
                    ..Default::default()
                },
            )
            .unwrap();
            gaps[k].push(if a.feasible {
                gap(p.objective, a.objective.unwrap(), best)
            } else {
                f64::INFINITY
            });
        }
    }
    md += &format!(
        "## Against Exact\n\n{n} random feasible instances (2-6 hosts, 3-8 VMs, 25% with the latency objective; \
         {skipped} infeasible ones skipped). Gap = how far below the optimum (above, for latency), relative.\n\n\
         | algorithm | optimal | within 1% | within 2% | within 10% | infeasible | median gap | worst gap |\n|---|---|---|---|---|---|---|---|\n"
    );
    for (k, name) in names.iter().enumerate() {
        let g = &mut gaps[k];
        g.sort_by(f64::total_cmp);
        let frac =
            |t: f64| 100.0 * g.iter().filter(|&&x| x <= t + 1e-9).count() as f64 / g.len() as f64;
        let infeasible = g.iter().filter(|x| x.is_infinite()).count();
        let worst = g.last().copied().unwrap_or(0.0);
        md += &format!(
            "| {name} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {} | {:.2}% | {} |\n",
            frac(0.0),
            frac(0.01),
            frac(0.02),
            frac(0.10),
            infeasible,
            100.0 * g[g.len() / 2],
            if worst.is_finite() {
                format!("{:.2}%", 100.0 * worst)
            } else {
                "infeasible".into()
            }
        );
        json.insert(format!("{name}_within_2pct"), (frac(0.02) / 100.0).into());
    }
    exact_ms.sort_by(f64::total_cmp);
    md += &format!(
        "\nExact's time per instance: median {:.1} ms, max {:.1} ms.\n\n",
        exact_ms[exact_ms.len() / 2],
        exact_ms.last().unwrap()
    );

    // Scale.
    md += "## Scale (GH+SA, default budget, 3 instances each)\n\n| VMs | hosts | demands | median time | max time | target |\n|---|---|---|---|---|---|\n";
    for (vms, hosts, target_s) in [(64usize, 32usize, 1.0f64), (256, 64, 10.0)] {
        let mut times = Vec::new();
        let mut demands = 0;
        for seed in 0..3u64 {
            let mut rng = Rng::new(1000 + seed);
            let p = instance(
                &mut rng,
                Shape {
                    hosts,
                    vms,
                    demand_factor: 1.5,
                    link_density: 0.3,
                    latency_objective: false,
                },
            );
            demands = p.demands.len();
            let t = Instant::now();
            let a = solve(&p, &Options::default()).unwrap();
            let s = t.elapsed().as_secs_f64();
            assert!(a.objective.is_some());
            times.push(s);
        }
        times.sort_by(f64::total_cmp);
        md += &format!(
            "| {vms} | {hosts} | {demands} | {:.2} s | {:.2} s | < {target_s} s |\n",
            times[1], times[2]
        );
        json.insert(format!("scale_{vms}_{hosts}_max_s"), times[2].into());
    }
    repair_section(&mut md, &mut json);
    md += "\nReproduce: `cargo bench --bench vadapt` (release build, one core).\n";
    println!("{md}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/vadapt.md"), &md).unwrap();
    std::fs::write(
        format!("{dir}/vadapt.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
}

/// The median and the 99th percentile (nearest rank) of `x`.
fn median_p99(x: &mut [f64]) -> (f64, f64) {
    x.sort_by(f64::total_cmp);
    let rank = |q: f64| x[((q * x.len() as f64).ceil() as usize).clamp(1, x.len()) - 1];
    (rank(0.5), rank(0.99))
}

/// Repair against a full GH+SA on the same changed instances: a random instance solved
/// by GH+SA, that plan put in force, a small change (`perturb`), then the change
/// repaired and solved afresh, each timed.
fn repair_section(md: &mut String, json: &mut serde_json::Map<String, serde_json::Value>) {
    let mut rng = Rng::new(2323);
    let opts = Options::default();
    let (mut t_rep, mut t_full, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    let mut case = 0;
    while gaps.len() < 120 {
        case += 1;
        let shape = repair_shape(&mut rng, case);
        let p = instance(&mut rng, shape);
        let first = solve(&p, &opts).unwrap();
        let change = perturb(&mut rng, &p);
        if !first.feasible {
            continue;
        }
        let before = applied(&p, &first);
        let problem = applied(&change, &first);
        let t = Instant::now();
        let r = repair(&problem, &Previous::new(&before, &first), &opts).unwrap();
        let rep_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let f = solve(&problem, &opts).unwrap();
        let full_ms = t.elapsed().as_secs_f64() * 1e3;
        if !f.feasible {
            continue;
        }
        t_rep.push(rep_ms);
        t_full.push(full_ms);
        gaps.push(match r.objective.filter(|_| r.feasible) {
            Some(o) => gap(problem.objective, o, f.objective.unwrap()),
            None => f64::INFINITY,
        });
    }
    let (rep_med, rep_p99) = median_p99(&mut t_rep);
    let (full_med, full_p99) = median_p99(&mut t_full);
    let (gap_med, gap_p99) = median_p99(&mut gaps);
    let within = gaps.iter().filter(|&&g| g <= 0.02 + 1e-9).count() as f64 / gaps.len() as f64;
    let better = gaps.iter().filter(|&&g| g < -1e-9).count();
    *md += &format!(
        "\n## Repair against a full GH+SA\n\n{} random changed instances with a feasible full \
         solve (the repair quality test's shapes and seed: 2-6 hosts and 3-8 VMs, or 8-16 hosts \
         and 16-32 VMs; 1-3 links' bandwidth, a demand's rate or a new demand), the original's \
         GH+SA plan in force. Gap = how far the repair is below the full solve (above, for \
         latency), relative; negative: the repair is better.\n\n\
         | | median time | p99 time |\n|---|---|---|\n\
         | repair | {rep_med:.1} ms | {rep_p99:.1} ms |\n\
         | full GH+SA | {full_med:.1} ms | {full_p99:.1} ms |\n\n\
         Repair within 2% of the full solve: {:.1}% of cases; better in {better}; gap median \
         {:.2}%, p99 {:.2}%.\n",
        gaps.len(),
        100.0 * within,
        100.0 * gap_med,
        100.0 * gap_p99,
    );
    json.insert("repair_within_2pct".into(), within.into());
    json.insert("repair_median_ms".into(), rep_med.into());
    json.insert("repair_p99_ms".into(), rep_p99.into());
    json.insert("full_median_ms".into(), full_med.into());
    json.insert("full_p99_ms".into(), full_p99.into());
}
