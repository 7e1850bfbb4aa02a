//! Times GH and GH+SA on one random instance: `cargo run --release -p analysis --example vadapt_scale_probe -- VMS HOSTS`.
use analysis::vadapt::random::{instance, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{solve, Algo, Options};
use std::time::Instant;
fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let mut rng = Rng::new(1000);
    let p = instance(
        &mut rng,
        Shape {
            hosts: a[1],
            vms: a[0],
            demand_factor: 1.5,
            link_density: 0.3,
            latency_objective: false,
        },
    );
    for algo in [Algo::Greedy, Algo::GreedyAnneal] {
        let t = Instant::now();
        let r = solve(
            &p,
            &Options {
                algo,
                ..Default::default()
            },
        )
        .unwrap();
        println!(
            "{:?}: {:.3} s feasible {} objective {:?} demands {}",
            algo,
            t.elapsed().as_secs_f64(),
            r.feasible,
            r.objective,
            p.demands.len()
        );
    }
}
