//! The replica's status (`status_file`, and `wrenvnet cluster`'s view of it): its role,
//! hosts up and down, VMs, demands, topology, the routes in force and the links with
//! their nominal, measured and planned bandwidth, the last events. Written every round
//! by every replica, atomically (a temporary file renamed).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use super::decide::{self, Demand, Rules};
use super::round::Inventory;
use super::source::Gathered;
use super::view::LinkState;
use super::{Controller, STATUS_ALL_LINKS_HOSTS};

/// What a round saw, for its status.
pub(super) struct RoundView<'a> {
    pub now: f64,
    pub gathered: &'a [Arc<Gathered>],
    pub down: Vec<Value>,
    pub inv: &'a Inventory,
    pub demands: Vec<Demand>,
    pub topology: Value,
    pub current: &'a Rules,
}

impl Controller {
    #[cold]
    pub(super) fn write_status(&mut self, r: RoundView<'_>) {
        let inv = r.inv;
        let routes: Vec<Value> = (r.demands.iter())
            .filter_map(|d| {
                let (hs, hd) = (inv.host_of(&d.src)?, inv.host_of(&d.dst)?);
                Some(
                    json!({"src": d.src, "dst": d.dst, "src_ip": inv.ip_of.get(&d.src),
                    "dst_ip": inv.ip_of.get(&d.dst), "mbps": d.mbps,
                    "hosts": decide::route(r.current, &hd, &hs, &d.dst)}),
                )
            })
            .collect();
        let links = self.status_links(&routes, r.gathered.len());
        self.last_status = json!({
            "t": r.now,
            "unix_s": super::unix_now(),
            "adapt": self.adapt,
            "role": self.role(),
            "views": {"revision": self.replica.views_progress().0,
                "watch_events": self.replica.views_progress().1},
            "hosts_up": r.gathered.iter().map(|g| &g.host).collect::<Vec<_>>(),
            "hosts_down": r.down,
            "vms": inv.vms,
            "demands": r.demands,
            "topology": r.topology,
            "routes": routes,
            "reservations": self.reservations_status(),
            "links": links,
            "links_total": self.view.pairs(),
            "adaptations": self.adaptations,
            "round_ms": self.round_ms.0,
            "round_ms_max": self.round_ms.1,
            "events": self.events.iter().rev().take(10).collect::<Vec<_>>(),
            "arrivals": self.arrivals.recent.iter().rev().collect::<Vec<_>>(),
        });
        if let Some(path) = &self.cfg.controller.status_file {
            let tmp = path.with_extension("tmp");
            let w = std::fs::write(&tmp, self.last_status.to_string())
                .and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = w {
                log::warn!("controller: cannot write {}: {e}", path.display());
            }
        }
    }

    /// The links the status lists: every pair of a small fleet; of a larger one, those
    /// measured or crossed by a route in force.
    fn status_links(&self, routes: &[Value], hosts: usize) -> Vec<Value> {
        let routed: BTreeSet<(&str, &str)> = (routes.iter())
            .filter_map(|r| r["hosts"].as_array())
            .flat_map(|h| h.windows(2))
            .filter_map(|w| Some((w[0].as_str()?, w[1].as_str()?)))
            .collect();
        let shown: Vec<((String, String), Cow<LinkState>)> = if hosts <= STATUS_ALL_LINKS_HOSTS {
            self.view.all_links()
        } else {
            let listed = self.view.links.keys().cloned();
            let routed = routed.iter().map(|(a, b)| (a.to_string(), b.to_string()));
            let keys: BTreeSet<(String, String)> = listed.chain(routed).collect();
            (keys.into_iter())
                .filter_map(|k| Some((k.clone(), self.view.link(&k)?)))
                .collect()
        };
        (shown.iter())
            .map(|((a, b), l)| {
                json!({"from": a, "to": b, "nominal_bw_mbps": l.nominal_bw_mbps,
                    "bw_mbps": l.bw_mbps(self.view.tolerance),
                    "measured_mbps": l.measured_mbps(), "source": l.source(), "latency_ms": l.latency_ms(),
                    "estimate": l.estimate, "low": l.low, "high": l.high,
                    "latency": l.latency})
            })
            .collect()
    }
}
