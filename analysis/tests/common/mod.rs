//! What the integration tests share: an oracle written from the problem text alone.

use std::collections::HashMap;

use analysis::vadapt::{Answer, Objective, Problem};

/// Recomputes feasibility and objective of `a` from `p`, by name, independently of
/// the library's evaluation.
pub fn recompute(p: &Problem, a: &Answer) -> (bool, f64) {
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
