//! Random problem instances, for the property tests, the comparison against Exact and
//! the scale benchmark. Shapes follow what VADAPT meets: hosts of mixed capacity,
//! a partly meshed overlay of links with mixed bandwidth and latency, VMs partly
//! placed and pinned, demands along rings and random pairs, some with latency bounds.

use super::problem::{DemandSpec, HostSpec, LinkSpec, Objective, Problem, VmSpec};
use super::rng::Rng;

/// Size and mix of a random instance.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub hosts: usize,
    pub vms: usize,
    /// Demands per VM, on average.
    pub demand_factor: f64,
    /// Probability that a directed link exists.
    pub link_density: f64,
    pub latency_objective: bool,
}

/// A random instance; always has room for every VM.
pub fn instance(rng: &mut Rng, shape: Shape) -> Problem {
    let n = shape.hosts.max(1);
    let m = shape.vms;
    let mut caps: Vec<usize> = (0..n).map(|_| 1 + rng.below(3)).collect();
    while caps.iter().sum::<usize>() < m {
        let h = rng.below(n);
        caps[h] += 1;
    }
    let hosts: Vec<HostSpec> = (0..n)
        .map(|h| HostSpec {
            name: format!("h{h}"),
            capacity: caps[h],
            local_bw_mbps: if rng.unit() < 0.7 {
                10_000.0
            } else {
                500.0 + (rng.unit() * 9500.0).round()
            },
        })
        .collect();
    let mut links = Vec::new();
    for a in 0..n {
        for b in 0..n {
            // Keep a ring so the overlay is connected; other links at random.
            if a != b && (b == (a + 1) % n || a == (b + 1) % n || rng.unit() < shape.link_density) {
                links.push(LinkSpec {
                    from: format!("h{a}"),
                    to: format!("h{b}"),
                    bw_mbps: (50.0 + rng.unit() * 950.0).round(),
                    latency_ms: (0.5 + rng.unit() * 19.5 * 10.0).round() / 10.0,
                });
            }
        }
    }
    // Current placement within capacities; some VMs unplaced, some pinned.
    let mut load = vec![0usize; n];
    let vms: Vec<VmSpec> = (0..m)
        .map(|v| {
            let h = rng.below(n);
            let placed = rng.unit() < 0.85 && load[h] < caps[h];
            if placed {
                load[h] += 1;
            }
            VmSpec {
                name: format!("vm{v}"),
                host: placed.then(|| format!("h{h}")),
                pinned: placed && rng.unit() < 0.15,
            }
        })
        .collect();
    let mut demands = Vec::new();
    let target = ((m as f64) * shape.demand_factor).round().max(1.0) as usize;
    let ring = rng.unit() < 0.5;
    let mut seen = std::collections::HashSet::new();
    let mut tries = 0;
    while demands.len() < target && m >= 2 && tries < 20 * target {
        tries += 1;
        let (s, d) = if ring && demands.len() < m {
            let s = demands.len();
            (s, (s + 1) % m)
        } else {
            (rng.below(m), rng.below(m))
        };
        if s == d || !seen.insert((s, d)) {
            continue;
        }
        demands.push(DemandSpec {
            src: format!("vm{s}"),
            dst: format!("vm{d}"),
            mbps: (10.0 + rng.unit() * 390.0).round(),
            max_latency_ms: (rng.unit() < 0.2).then(|| (5.0 + rng.unit() * 40.0).round()),
        });
    }
    Problem {
        hosts,
        links,
        vms,
        demands,
        objective: if shape.latency_objective {
            Objective::Latency
        } else {
            Objective::ResidualBw
        },
        current_paths: Vec::new(),
    }
}
