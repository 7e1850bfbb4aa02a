//! A round's reading of the daemons' views: where every VM is (`Inventory`), the global
//! traffic matrix and its demands, the Wren measurements put on the links along the
//! routes in force, the rules adopted on a cold start, and the trigger that decides
//! whether the leader plans.

use std::collections::BTreeMap;
use std::sync::Arc;

use analysis::vttif::{demands_of, merge, topology_of, HostView};
use serde_json::{json, Value};

use super::decide::{self, Demand, Rules, VmInfo};
use super::source::Gathered;
use super::{moved, Baseline, Controller, PERSIST_ROUNDS};

/// Every VM by MAC with its host and the IP VTTIF saw it use, this round.
pub(super) struct Inventory {
    pub vms: Vec<VmInfo>,
    pub ip_of: BTreeMap<String, String>,
    host_by_mac: BTreeMap<String, String>,
    mac_by_ip: BTreeMap<String, String>,
    /// What each daemon that says so shapes its uplink at, Mbit/s.
    pub uplink_of: BTreeMap<String, f64>,
}

impl Inventory {
    pub fn of(gathered: &[Arc<Gathered>]) -> Self {
        let mut ip_of: BTreeMap<String, String> = BTreeMap::new();
        for r in gathered.iter().flat_map(|g| &g.rows) {
            if let Some(ip) = &r.src_also {
                ip_of.insert(r.src.clone(), ip.clone());
            }
            if let Some(ip) = &r.dst_also {
                ip_of.insert(r.dst.clone(), ip.clone());
            }
        }
        let vms: Vec<VmInfo> = (gathered.iter())
            .flat_map(|g| g.local_vms.iter().map(move |mac| (mac, &g.host)))
            .map(|(mac, host)| VmInfo {
                mac: mac.clone(),
                host: host.clone(),
                ip: ip_of.get(mac).cloned(),
            })
            .collect();
        let host_by_mac = (vms.iter())
            .map(|v| (v.mac.clone(), v.host.clone()))
            .collect();
        let mac_by_ip = (vms.iter())
            .filter_map(|v| Some((v.ip.clone()?, v.mac.clone())))
            .collect();
        let uplink_of = (gathered.iter())
            .filter_map(|g| Some((g.host.clone(), g.uplink_mbps?)))
            .collect();
        Inventory {
            vms,
            ip_of,
            host_by_mac,
            mac_by_ip,
            uplink_of,
        }
    }

    pub fn host_of(&self, mac: &str) -> Option<String> {
        self.host_by_mac.get(mac).cloned()
    }

    fn mac_of_ip(&self, ip: &str) -> Option<String> {
        self.mac_by_ip.get(ip).cloned()
    }
}

impl Controller {
    /// The global matrix (each entry from the daemon hosting its source): its topology
    /// and the demands between known VMs.
    pub(super) fn demands(
        &self,
        gathered: &[Arc<Gathered>],
        inv: &Inventory,
    ) -> (Value, Vec<Demand>) {
        let views: Vec<HostView> = gathered
            .iter()
            .map(|g| HostView {
                host: g.host.clone(),
                local_vms: g.local_vms.iter().cloned().collect(),
                rows: g.rows.clone(),
            })
            .collect();
        let entries = merge(&views);
        let c = &self.cfg.controller;
        let topology = json!(topology_of(&entries, c.demand_threshold));
        let demands = demands_of(&entries, c.demand_threshold, c.min_demand_mbps)
            .into_iter()
            .filter(|e| {
                inv.host_of(&e.src).is_some() && inv.host_of(&e.dst).is_some() && e.src != e.dst
            })
            .map(|e| Demand {
                src: e.src.clone(),
                dst: e.dst.clone(),
                mbps: e.smoothed_mbps,
                reserved_mbps: 0.0,
            })
            .collect();
        (topology, demands)
    }

    /// Wren's measurements onto the links, along the routes in force: each path from
    /// the daemon hosting its sender (which times its segments).
    pub(super) fn measure(
        &mut self,
        gathered: &[Arc<Gathered>],
        inv: &Inventory,
        current: &Rules,
        now: f64,
    ) {
        for g in gathered {
            for p in &g.paths {
                let (Some(s), Some(d)) = (inv.mac_of_ip(&p.src_ip), inv.mac_of_ip(&p.dst_ip))
                else {
                    continue;
                };
                if inv.host_of(&s).as_deref() != Some(g.host.as_str()) {
                    continue;
                }
                let Some(dh) = inv.host_of(&d) else { continue };
                let r = decide::route(current, &dh, &g.host, &d);
                self.view
                    .observe(&r, p, now, self.cfg.controller.min_trains);
            }
        }
        self.view.expire(now, self.cfg.controller.measurement_ttl_s);
    }

    /// Start (or restart) without a plan: the rules in force are the plan.
    #[cold]
    pub(super) fn adopt(&mut self, current: &Rules, hosts: usize) {
        let adopted: Rules = current
            .iter()
            .map(|(h, r)| {
                let peer_rules = r
                    .iter()
                    .filter(|(_, to)| to.starts_with("peer:"))
                    .map(|(m, to)| (m.clone(), to.clone()))
                    .collect();
                (h.clone(), peer_rules)
            })
            .collect();
        let n: usize = adopted.values().map(BTreeMap::len).sum();
        self.set_desired(Some(adopted));
        self.event(json!({"event": "adopted", "rules": n, "hosts": hosts}));
    }

    /// Why VADAPT should run now, if it should: new or vanished demands (once settled
    /// for `PERSIST_ROUNDS`), or a link or a demand moved beyond the threshold since
    /// the baseline; never while a host is down, and as `damped` allows. Keeps the
    /// demand pairs' count and a first baseline.
    /// `urgent`: a reason to plan now whatever moved (a reservation needs a route).
    pub(super) fn trigger(
        &mut self,
        demands: &[Demand],
        now: f64,
        all_up: bool,
        urgent: Option<String>,
    ) -> Option<String> {
        let pairs_now = decide::pairs(demands);
        if pairs_now == self.pairs_seen.0 {
            self.pairs_seen.1 = self.pairs_seen.1.saturating_add(1);
        } else {
            self.pairs_seen = (pairs_now.clone(), 1);
        }
        let settled = self.pairs_seen.1 >= PERSIST_ROUNDS;
        let th = self.cfg.controller.change_threshold;
        let mut link_news = false;
        let why = self.baseline.as_ref().and_then(|b| {
            if b.pairs != pairs_now && settled {
                return Some(format!(
                    "demands changed ({} -> {} pairs)",
                    b.pairs.len(),
                    demands.len()
                ));
            }
            if let Some(((a, c), then, v)) = self.moved_link(b, th) {
                link_news = true;
                return Some(format!("link {a}->{c} moved {then:.1} -> {v:.1} Mbit/s"));
            }
            let now: BTreeMap<(&str, &str), f64> = (demands.iter())
                .map(|d| ((d.src.as_str(), d.dst.as_str()), d.mbps))
                .collect();
            now.into_iter().find_map(|((s, d), v)| {
                let then = b.demand.get(&(s.to_string(), d.to_string())).copied();
                let then = then.unwrap_or(v);
                moved(then, v, th)
                    .then(|| format!("demand {s}->{d} moved {then:.1} -> {v:.1} Mbit/s"))
            })
        });
        let why = urgent.or(why);
        if self.baseline.is_none() && all_up {
            self.baseline = Some(self.rebase(demands));
        }
        let damped = damped(
            self.last_run,
            self.last_adapted,
            now,
            self.cfg.controller.min_interval_s,
            link_news,
        );
        why.filter(|_| !damped && all_up)
    }

    /// The baseline these demands and the links' bandwidths now make.
    pub(super) fn rebase(&self, demands: &[Demand]) -> Baseline {
        Baseline {
            pairs: decide::pairs(demands),
            demand: demands
                .iter()
                .map(|d| ((d.src.clone(), d.dst.clone()), d.mbps))
                .collect(),
            bw: self.view.off_nominal(),
        }
    }
}

/// Whether a run must wait: within `min_interval_s` of the last adaptation (the
/// network settles under a new plan before it is judged again), or of the last run
/// unless a link moved since (a run that kept the routes changed nothing to settle,
/// and a link's new measurement is what the throttled or filled path needs planned
/// now; a demand's move, which follows the link's, waits).
fn damped(
    last_run: Option<f64>,
    last_adapted: Option<f64>,
    now: f64,
    min_interval_s: f64,
    link_news: bool,
) -> bool {
    let within = |t: Option<f64>| t.is_some_and(|t| now - t < min_interval_s);
    within(last_adapted) || (within(last_run) && !link_news)
}

#[cfg(test)]
mod tests {
    use super::damped;

    #[test]
    fn a_link_move_after_a_kept_run_is_planned_at_once_not_after_an_adaptation() {
        // A run at 15 s kept the routes; at 17 s a link moved: planned now.
        assert!(!damped(Some(15.0), None, 17.0, 5.0, true));
        assert!(!damped(Some(15.0), Some(3.0), 17.0, 5.0, true));
        // A demand's move waits out the interval after any run.
        assert!(damped(Some(15.0), None, 17.0, 5.0, false));
        assert!(!damped(Some(15.0), None, 20.0, 5.0, false));
        // After an adaptation nothing runs within the interval, a link's move neither.
        assert!(damped(Some(15.0), Some(15.0), 17.0, 5.0, true));
        assert!(!damped(Some(15.0), Some(15.0), 20.5, 5.0, true));
        // The first run is never damped.
        assert!(!damped(None, None, 0.0, 5.0, false));
    }
}
