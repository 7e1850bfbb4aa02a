// VADAPT at fleet size: a cold GH+SA solve and a repair after one link change, timed
// side by side on the same instances, so the time a fleet's controller spends per round
// is known as the fleet grows (issue 23: full <= 30 s, incremental <= 1 s at 1,000
// hosts and 4,000 VMs). Included by bench/vadapt.rs (`-- --scale`).

use std::time::Instant;

use analysis::vadapt::random::{applied, fleet, Shape};
use analysis::vadapt::rng::Rng;
use analysis::vadapt::{repair, solve, Answer, Options, Previous, Problem};

/// VMs per host, links per host (the overlay each host measures), VMs per application.
const VMS_PER_HOST: usize = 4;
const OUT_LINKS: f64 = 16.0;
const APP_VMS: usize = 8;
/// The repair's time budget: the target for an incremental round.
const REPAIR_BUDGET_MS: u64 = 1000;

/// The fleet of `hosts` hosts.
fn problem(hosts: usize) -> Problem {
    let mut rng = Rng::new(5000 + hosts as u64);
    let shape = Shape {
        hosts,
        vms: VMS_PER_HOST * hosts,
        demand_factor: 1.5,
        link_density: (OUT_LINKS / hosts as f64).min(1.0),
        latency_objective: false,
    };
    fleet(&mut rng, shape, APP_VMS)
}

/// The problem with the first link a path of `a` crosses at half its bandwidth.
fn one_link_down(p: &Problem, a: &Answer) -> Problem {
    let mut q = p.clone();
    let hop = a
        .paths
        .iter()
        .find(|x| x.hosts.len() >= 2)
        .map(|x| (x.hosts[0].clone(), x.hosts[1].clone()));
    if let Some((from, to)) = hop {
        for l in &mut q.links {
            if l.from == from && l.to == to {
                l.bw_mbps = (l.bw_mbps / 2.0).round();
            }
        }
    }
    q
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn objective(a: &Answer) -> String {
    match a.objective {
        Some(o) if a.feasible => format!("{o:.0}"),
        Some(o) => format!("{o:.0} (infeasible)"),
        None => "-".into(),
    }
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One row: the problem written for the CLI, then timed full solve and repair.
fn row(hosts: usize, dir: &str) -> String {
    let p = problem(hosts);
    let path = format!("{dir}/hosts-{hosts}.json");
    std::fs::write(&path, serde_json::to_string(&p).unwrap()).unwrap();
    let opts = Options::default();
    let t = Instant::now();
    let full = solve(&p, &opts).unwrap();
    let full_s = secs(t);
    let before = applied(&p, &full);
    let changed = one_link_down(&before, &full);
    let budget = Options {
        budget_ms: Some(REPAIR_BUDGET_MS),
        ..opts
    };
    let t = Instant::now();
    let r = repair(&changed, &Previous::new(&before, &full), &budget).unwrap();
    let rep_s = secs(t);
    let t = Instant::now();
    let again = solve(&changed, &opts).unwrap();
    let again_s = secs(t);
    let rep = r.repair.clone().unwrap_or_default();
    let line = format!(
        "| {hosts} | {} | {} | {} | {full_s:.2} s | {} | {rep_s:.3} s{} | {} | {}/{} apps, {} VMs moved, {} demands re-routed | {again_s:.2} s | {} |\n",
        p.vms.len(),
        p.links.len(),
        p.demands.len(),
        objective(&full),
        if r.stopped_by_time == Some(true) {
            " (budget)"
        } else {
            ""
        },
        objective(&r),
        rep.touched_components,
        rep.components,
        rep.moved_vms,
        rep.rerouted_demands,
        objective(&again),
    );
    eprint!("{line}");
    line
}

pub fn run(hosts: Vec<usize>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/vadapt-scale");
    std::fs::create_dir_all(dir).unwrap();
    let mut md = format!(
        "# VADAPT at scale: full GH+SA and repair\n\n{}, commit {}, one core of a 2-core \
         AMD EPYC VM. Random fleets (`random::fleet`): {VMS_PER_HOST} VMs a host, about \
         {OUT_LINKS} links out of each host plus a ring, applications of {APP_VMS} VMs (a ring \
         and random pairs, 1.5 demands a VM, 20% with a latency bound), residual objective. \
         Full: GH+SA, default budget, cold. Repair: after the first link a path of the full \
         plan crosses drops to half its bandwidth, from the full plan in force, \
         `budget_ms` {REPAIR_BUDGET_MS} (\"budget\": the budget cut the search short and the \
         best plan found by then is the answer). Re-solve: GH+SA of the changed problem.\n\n\
         | hosts | VMs | links | demands | full | objective | repair | objective | touched | re-solve | objective |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        today(),
        commit()
    );
    for h in hosts {
        md += &row(h, dir);
    }
    md += "\nReproduce: `cargo bench --bench vadapt -- --scale [HOSTS...]`; the problem files \
           are left in `target/vadapt-scale/hosts-N.json` for \
           `wrenvnet adapt --algo gh+sa --input target/vadapt-scale/hosts-N.json`.\n";
    println!("{md}");
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/results/vadapt-scale.md");
    std::fs::write(out, &md).unwrap();
}
