//! Per-case repair against full GH+SA on the test's shapes: `cargo run --release -p analysis --example vadapt_repair_probe`.
use analysis::vadapt::random::{gap, repair_shape, trial};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::Options;
fn main() {
    let mut rng = Rng::new(2323);
    let opts = Options::default();
    let mut case = 0;
    let mut n = 0;
    while n < 120 {
        case += 1;
        let s = repair_shape(&mut rng, case);
        let Some(t) = trial(&mut rng, s, &opts) else {
            continue;
        };
        if !t.full.feasible {
            continue;
        }
        n += 1;
        let r = &t.repaired;
        let g = if r.feasible {
            gap(
                t.problem.objective,
                r.objective.unwrap(),
                t.full.objective.unwrap(),
            )
        } else {
            f64::INFINITY
        };
        let links_changed = t
            .before
            .links
            .iter()
            .zip(&t.problem.links)
            .filter(|(a, b)| a.bw_mbps != b.bw_mbps)
            .count();
        let kind = if links_changed > 0 {
            "link"
        } else if t.problem.demands.len() > t.before.demands.len() {
            "new-demand"
        } else {
            "demand"
        };
        let prev_obj = analysis::vadapt::solve(&t.before, &opts).unwrap().objective;
        if g > 0.02 {
            println!("case {case} {:?} {kind} gap {:.2}% rep {:?} full {:?} inforce(orig) {:?}/{:?} {:?}", (s.hosts, s.vms, s.latency_objective), 100.0 * g, r.objective, t.full.objective, t.in_force.objective, prev_obj, r.repair);
        }
    }
}
