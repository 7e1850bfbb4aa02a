//! `wrenvnet adapt`: solve a VADAPT problem file offline and print the plan, the rule
//! and link changes per daemon, and the migrations.

use std::path::PathBuf;

use analysis::vadapt::{self, Algo, Answer, Options, Problem};
use anyhow::{Context, Result};

/// Exit code when no feasible plan exists (a best-effort plan is still printed).
pub const EXIT_INFEASIBLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct AdaptArgs {
    /// Problem file (JSON; see config/adapt.example.json and README).
    #[arg(short, long)]
    input: PathBuf,
    /// Algorithm: gh (greedy), sa (simulated annealing), gh+sa, exact (small instances).
    #[arg(long, default_value = "gh+sa")]
    algo: Algo,
    /// Seed of SA; the same seed gives the same plan.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SA iterations (default grows with the problem).
    #[arg(long)]
    iterations: Option<u64>,
    /// Wall-clock cap in ms for SA and exact; a run it cuts short says so.
    #[arg(long)]
    budget_ms: Option<u64>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

/// Returns whether the plan is feasible.
pub fn run(args: AdaptArgs) -> Result<bool> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read problem file {}", args.input.display()))?;
    let problem: Problem = serde_json::from_str(&text)
        .with_context(|| format!("invalid problem file {}", args.input.display()))?;
    let opts = Options {
        algo: args.algo,
        seed: args.seed,
        iterations: args.iterations,
        budget_ms: args.budget_ms,
    };
    let answer = vadapt::solve(&problem, &opts)
        .with_context(|| format!("invalid problem in {}", args.input.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_human(&answer);
    }
    Ok(answer.feasible)
}

fn print_human(a: &Answer) {
    println!(
        "algorithm {}: {} objective {} migrations {} ({:.1} ms){}",
        a.algo,
        if a.feasible { "feasible" } else { "INFEASIBLE" },
        a.objective
            .map(|o| format!("{o:.3}"))
            .unwrap_or_else(|| "-".into()),
        a.migrations,
        a.elapsed_ms,
        match a.proven_optimal {
            Some(true) => ", proven optimal",
            Some(false) => ", budget reached: not proven optimal",
            None => "",
        }
    );
    for v in &a.violations {
        println!("  violates: {v}");
    }
    println!("\n{:<16} host", "VM");
    for (vm, host) in &a.mapping {
        println!("{vm:<16} {host}");
    }
    println!("\n{:<16} {:<16} path", "src", "dst");
    for p in &a.paths {
        println!("{:<16} {:<16} {}", p.src, p.dst, p.hosts.join(" -> "));
    }
    if !a.actions.migrations.is_empty() {
        println!("\nmigrations:");
        for m in &a.actions.migrations {
            println!("  {} : {} -> {}", m.vm, m.from, m.to);
        }
    }
    for (host, d) in &a.actions.daemons {
        println!("\ndaemon {host}:");
        for l in &d.add_links {
            println!("  + link to {l}");
        }
        for l in &d.remove_links {
            println!("  - link to {l}");
        }
        for r in &d.add_rules {
            println!(
                "  + rule {} -> {} : {}",
                r.src,
                r.dst,
                r.next_hop.as_deref().unwrap_or("local")
            );
        }
        for r in &d.remove_rules {
            println!(
                "  - rule {} -> {} : {}",
                r.src,
                r.dst,
                r.next_hop.as_deref().unwrap_or("local")
            );
        }
    }
}
