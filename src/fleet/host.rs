//! One simulated host: the part of a daemon the control plane sees. Its etcd session
//! is the daemon's own (`daemon::cluster::session`, unchanged); in place of the main
//! loop it applies each desired state into an in-memory FIB with the daemon's
//! semantics (the peer rules become exactly the desired ones, links are added or
//! updated, a rule to an unknown link is refused and its rule in force stays) and
//! publishes views shaped as the daemon's: its rules and links, VTTIF rows of its VMs'
//! demands (rates moving a few percent around their base), and Wren paths whose
//! available bandwidth is the smallest of the links the route in force crosses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::events::Events;
use super::scenario::{HostIx, Network, Scenario};
use crate::cluster::{Applied, Desired, DesiredLink, HostViews};
use crate::daemon::cluster::unix_now;
use analysis::vadapt::rng::Rng;

/// The host's ends of its session's channels.
pub struct Ends {
    pub desired_rx: mpsc::Receiver<Desired>,
    pub applied_tx: mpsc::Sender<Applied>,
    pub views_tx: watch::Sender<Option<Arc<str>>>,
    pub shutdown: watch::Receiver<bool>,
}

pub struct SimHost {
    me: HostIx,
    world: Arc<Scenario>,
    net: Arc<Network>,
    /// Destination MAC -> "vm:PORT" or "peer:NAME".
    fib: BTreeMap<String, String>,
    /// Peer name -> underlay address.
    links: BTreeMap<String, String>,
    rng: Rng,
    events: Events,
    /// Changed links this host's published paths have crossed (each reported once).
    measured: BTreeSet<(HostIx, HostIx)>,
}

impl SimHost {
    /// The host as its daemon starts: its VMs' ports, and a direct rule (and link) to
    /// the host of every VM its VMs send to.
    pub fn new(me: HostIx, world: Arc<Scenario>, net: Arc<Network>, events: Events) -> Self {
        let mut h = SimHost {
            me,
            fib: BTreeMap::new(),
            links: BTreeMap::new(),
            rng: Rng::new(0x5eed ^ me.0 as u64),
            events,
            measured: BTreeSet::new(),
            net,
            world: Arc::clone(&world),
        };
        for v in &world.hosts[me.0].vms {
            let vm = &world.vms[v.0];
            h.fib.insert(vm.mac.clone(), format!("vm:{}", vm.port));
        }
        for &d in &world.from_host[me.0] {
            let dst = world.demands[d].dst;
            let peer = &world.hosts[world.host_of(dst).0];
            if peer.name != world.hosts[me.0].name {
                h.fib
                    .insert(world.vms[dst.0].mac.clone(), format!("peer:{}", peer.name));
                h.links.insert(peer.name.clone(), peer.underlay_ip.clone());
            }
        }
        h
    }

    fn name(&self) -> &str {
        &self.world.hosts[self.me.0].name
    }

    /// Until shutdown: applies desired states as they come, publishes views every
    /// `every` (the first after `offset`, so that a fleet does not publish in step).
    pub async fn run(mut self, mut ends: Ends, every: Duration, offset: Duration) {
        let start = tokio::time::Instant::now() + offset;
        let mut tick = tokio::time::interval_at(start, every);
        ends.views_tx.send_replace(Some(self.views().into()));
        loop {
            tokio::select! {
                Some(d) = ends.desired_rx.recv() => {
                    let a = self.apply(&d);
                    if ends.applied_tx.send(a).await.is_err() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    ends.views_tx.send_replace(Some(self.views().into()));
                }
                _ = ends.shutdown.changed() => return,
            }
        }
    }

    /// A desired state, as the daemon applies it.
    pub fn apply(&mut self, d: &Desired) -> Applied {
        let mut errors = Vec::new();
        for (name, DesiredLink { ip, .. }) in &d.links {
            match self.links.iter().find(|(n, a)| *a == ip && *n != name) {
                Some((other, _)) => errors.push(format!(
                    "link {name}: address {ip} is already link {other:?}"
                )),
                None => {
                    self.links.insert(name.clone(), ip.clone());
                }
            }
        }
        let mut keep = BTreeSet::new();
        let mut wanted = BTreeMap::new();
        for (mac, to) in &d.rules {
            match to.strip_prefix("peer:") {
                Some(p) if self.links.contains_key(p) => {
                    wanted.insert(mac.clone(), to.clone());
                }
                _ => {
                    errors.push(format!("rule {mac}: {to} is not a link of this host"));
                    keep.insert(mac.clone());
                }
            }
        }
        let before = self.fib.clone();
        self.fib
            .retain(|m, to| !to.starts_with("peer:") || wanted.contains_key(m) || keep.contains(m));
        self.fib.extend(wanted);
        let changed = self
            .fib
            .iter()
            .filter(|(m, to)| before.get(*m) != Some(*to))
            .count()
            + before.keys().filter(|m| !self.fib.contains_key(*m)).count();
        let at = unix_now();
        self.events
            .write(json!({"event": "applied", "host": self.name(),
            "revision": d.revision, "at_unix_s": at, "rules_changed": changed,
            "refused": errors.len()}));
        self.note_rerouted(&before, d.revision, at);
        Applied {
            revision: d.revision,
            at_unix_s: at,
            errors,
        }
    }

    /// Each demand of this host's VMs whose route crossed a changed link under the
    /// rules `before` and no longer does: the change has been answered here (the
    /// bench's reaction ends at this event).
    fn note_rerouted(&self, before: &BTreeMap<String, String>, revision: u64, at: f64) {
        let w = &self.world;
        let hop = |fib: &BTreeMap<String, String>, mac: &str| {
            w.host_by_name(fib.get(mac)?.strip_prefix("peer:")?)
        };
        let crosses = |first: Option<HostIx>, dst: HostIx| match first {
            Some(h) => self.net.changed(self.me, h) || (h != dst && self.net.changed(h, dst)),
            None => false,
        };
        for &d in &w.from_host[self.me.0] {
            let dm = &w.demands[d];
            let (src, dst) = (&w.vms[dm.src.0], &w.vms[dm.dst.0]);
            if crosses(hop(before, &dst.mac), dst.host)
                && !crosses(hop(&self.fib, &dst.mac), dst.host)
            {
                self.events
                    .write(json!({"event": "rerouted", "host": self.name(),
                    "src": src.mac, "dst": dst.mac, "revision": revision, "at_unix_s": at,
                    "via": hop(&self.fib, &dst.mac).map(|h| w.hosts[h.0].name.clone())}));
            }
        }
    }

    /// The peer the route in force to `mac` goes through first, if any.
    fn next_hop(&self, mac: &str) -> Option<HostIx> {
        let peer = self.fib.get(mac)?.strip_prefix("peer:")?;
        self.world.host_by_name(peer)
    }

    /// The views as the daemon publishes them.
    pub fn views(&mut self) -> String {
        let w = Arc::clone(&self.world);
        let me = &w.hosts[self.me.0];
        let rules: Vec<Value> = self
            .fib
            .iter()
            .map(|(m, to)| json!({"dst_mac": m, "to": to}))
            .collect();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|(n, ip)| {
                let used = self
                    .fib
                    .values()
                    .filter(|t| t.strip_prefix("peer:") == Some(n));
                json!({"name": n, "ip": ip, "mac": null, "rules": used.count()})
            })
            .collect();
        let vms: Vec<Value> = me
            .vms
            .iter()
            .map(|v| &w.vms[v.0])
            .map(|v| json!({"port": v.port, "mac": v.mac, "devargs": "sim"}))
            .collect();
        let (rows, paths) = self.measurements();
        let v = HostViews {
            host: me.name.clone(),
            at_unix_s: unix_now(),
            rules: json!({"ok": true, "host": me.name, "rules": rules}),
            links: json!({"ok": true, "host": me.name, "underlay_ip": me.underlay_ip,
                "links": links}),
            vms: json!({"ok": true, "host": me.name, "vms": vms}),
            paths: json!({"ok": true, "host": me.name, "wren": {"paths": paths}}),
            matrix: json!({"ok": true, "host": me.name,
                "local_vms": me.vms.iter().map(|v| &w.vms[v.0].mac).collect::<Vec<_>>(),
                "vttif": {"rows": rows}}),
            stats: json!({"ok": true, "host": me.name, "sim": true}),
            locations: Value::Null,
        };
        serde_json::to_string(&v).expect("JSON values always serialise")
    }

    /// The first publication of a path over a changed link: from then on the control
    /// plane can see the change (the bench's reaction starts here).
    fn note_measured(&mut self, a: HostIx, b: HostIx) {
        if self.net.changed(a, b) && self.measured.insert((a, b)) {
            let w = &self.world;
            self.events
                .write(json!({"event": "measured", "at_unix_s": unix_now(),
                "from": w.hosts[a.0].name, "to": w.hosts[b.0].name, "by": self.name()}));
        }
    }

    /// VTTIF rows of the demands from and to this host's VMs, and Wren's answer for
    /// each path its VMs send on.
    fn measurements(&mut self) -> (Vec<Value>, Vec<Value>) {
        let w = Arc::clone(&self.world);
        let mut rows = Vec::new();
        let mut paths = Vec::new();
        for &d in w.from_host[self.me.0].iter().chain(&w.to_host[self.me.0]) {
            let dm = &w.demands[d];
            let (s, t) = (&w.vms[dm.src.0], &w.vms[dm.dst.0]);
            let mbps = dm.mbps * (0.95 + 0.1 * self.rng.unit());
            rows.push(
                json!({"src": s.mac, "dst": t.mac, "bytes": (mbps * 125_000.0) as u64,
                "packets": (mbps * 90.0) as u64, "rate_mbps": mbps, "smoothed_mbps": mbps,
                "src_also": s.ip, "dst_also": t.ip}),
            );
            if s.host != self.me {
                continue;
            }
            let Some(hop) = self.next_hop(&t.mac) else {
                continue;
            };
            let mut avail = self.net.avail(self.me, hop);
            let mut hops = 1.0;
            self.note_measured(self.me, hop);
            if hop != t.host {
                avail = avail.min(self.net.avail(hop, t.host));
                hops = 2.0;
                self.note_measured(hop, t.host);
            }
            let est = avail * (0.98 + 0.04 * self.rng.unit());
            paths.push(
                json!({"src": s.ip, "dst": t.ip, "avail_bw_kind": "estimate",
                "avail_bw_mbps": est, "avail_bw_low_mbps": est * 0.9,
                "avail_bw_high_mbps": est * 1.1, "rtt_min_us": 100.0 * hops,
                "throughput_mbps": mbps, "trains": 20}),
            );
        }
        (rows, paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> SimHost {
        let w = Arc::new(Scenario::new(8, 2, 1000.0, 3));
        let net = Arc::new(Network::new(1000.0));
        SimHost::new(HostIx(0), w, net, Events::none())
    }

    #[test]
    fn desired_peer_rules_replace_the_ones_in_force_and_unknown_links_are_refused() {
        let mut h = host();
        let peer_rules = |h: &SimHost| h.fib.iter().filter(|(_, t)| t.starts_with("peer:")).count();
        assert!(peer_rules(&h) > 0);
        let d: Desired = serde_json::from_value(json!({"revision": 4,
            "rules": {"02:00:00:00:99:01": "peer:h0007", "02:00:00:00:98:01": "peer:nowhere"},
            "links": {"h0007": {"ip": "198.18.0.8"}}}))
        .unwrap();
        let a = h.apply(&d);
        assert_eq!(a.revision, 4);
        assert_eq!(a.errors.len(), 1, "{:?}", a.errors);
        assert_eq!(peer_rules(&h), 1);
        assert_eq!(h.fib["02:00:00:00:99:01"], "peer:h0007");
        // Its own VMs' rules are never touched.
        assert_eq!(h.fib.values().filter(|t| t.starts_with("vm:")).count(), 2);
    }

    #[test]
    fn views_read_as_a_daemons_and_paths_follow_the_route_in_force() {
        let mut h = host();
        let v: HostViews = serde_json::from_str(&h.views()).unwrap();
        let g = crate::controller::source::Gathered::from_views("h0000", &v).unwrap();
        assert_eq!(g.local_vms.len(), 2);
        assert!(!g.rows.is_empty());
        assert!(g.paths.iter().all(|p| p.estimate.unwrap() > 900.0));
        // A link that drops shows on the paths routed over it.
        let d = h.world.from_host[0]
            .iter()
            .map(|&d| &h.world.demands[d])
            .find(|d| h.world.host_of(d.dst) != HostIx(0))
            .unwrap();
        let (to, ip) = (h.world.host_of(d.dst), h.world.vms[d.dst.0].ip.clone());
        h.net.set(HostIx(0), to, 10.0);
        let v: HostViews = serde_json::from_str(&h.views()).unwrap();
        let g = crate::controller::source::Gathered::from_views("h0000", &v).unwrap();
        let p = g.paths.iter().find(|p| p.dst_ip == ip).unwrap();
        assert!(p.estimate.unwrap() < 11.0, "{p:?}");
    }
}
