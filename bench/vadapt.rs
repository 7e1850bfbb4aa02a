//! VADAPT benchmark: the distribution of GH, SA and GH+SA against Exact on random
//! small instances, and GH+SA's time at scale (64 VMs on 32 hosts, 256 VMs on 64).
//!
//!   cargo bench --bench vadapt            # writes bench/results/vadapt.{md,json}

use std::time::Instant;

use analysis::vadapt::random::{instance, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{solve, Algo, Objective, Options};

fn gap(obj: Objective, got: f64, best: f64) -> f64 {
    let scale = best.abs().max(1e-9);
    match obj {
        Objective::ResidualBw => (best - got) / scale,
        Objective::Latency => (got - best) / scale,
    }
}

fn main() {
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
