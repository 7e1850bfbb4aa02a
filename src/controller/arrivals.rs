//! VM arrivals the daemons converged on by themselves. After a live migration the
//! destination daemon learns from the guest's announcement that the VM is now on one
//! of its ports, floods the announcement, and every other daemon points its rule at
//! the destination (daemon `api::locations`); each publishes what it learned, when, in
//! its views. The controller did nothing for it; it reports how long it took: one
//! `vm_arrived` event per arrival, once every other host that answers has its rule on
//! the destination (or after `GIVE_UP_S`, naming those that have not), with the time
//! from the destination learning the arrival to the last host converging.
//!
//! A host's time is when it learned the location itself (its own announcement
//! record), or, when its rule was already there by other means (the controller's plan,
//! an operator), the publication that first showed it: an upper bound. Clocks are the
//! hosts' own (Unix time): their skew is in the figure.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};

use super::source::Gathered;

/// How long an arrival waits for every host before it is reported as it stands.
const GIVE_UP_S: f64 = 30.0;

/// Arrivals still waiting for some host, by VM MAC.
#[derive(Default)]
pub struct Arrivals {
    open: HashMap<String, Open>,
    /// The last arrival reported per VM (host, learned time): not reported twice.
    reported: HashMap<String, (String, f64)>,
    /// The last `RECENT` reports, newest last (the status lists them).
    pub recent: VecDeque<Value>,
}

/// Reports the status keeps.
const RECENT: usize = 10;

struct Open {
    host: String,
    learned: f64,
    /// Each other host's convergence time, once seen.
    converged: HashMap<String, f64>,
}

impl Arrivals {
    /// Looks at this round's views; the `vm_arrived` events now complete. Arrivals
    /// learned before `since` (Unix time: the replica's start) are not reported.
    #[cold]
    pub fn observe(&mut self, gathered: &[Arc<Gathered>], since: f64, now_unix: f64) -> Vec<Value> {
        for g in gathered {
            for l in g.locations.iter().filter(|l| l.to.starts_with("vm:")) {
                let newer = |(h, t): &(String, f64)| *h != g.host || *t < l.unix_s;
                let fresh = l.unix_s >= since
                    && self.reported.get(&l.mac).is_none_or(newer)
                    && self.open.get(&l.mac).is_none_or(|o| o.learned < l.unix_s);
                if fresh {
                    let o = Open {
                        host: g.host.clone(),
                        learned: l.unix_s,
                        converged: HashMap::new(),
                    };
                    self.open.insert(l.mac.clone(), o);
                }
            }
        }
        let mut done = Vec::new();
        for (mac, o) in &mut self.open {
            let want = format!("peer:{}", o.host);
            let others = gathered.iter().filter(|g| g.host != o.host);
            for g in others.filter(|g| g.rules.get(mac) == Some(&want)) {
                let own = g.locations.iter().find(|l| l.mac == *mac && l.to == want);
                let t = own.map_or(g.published_unix_s, |l| l.unix_s);
                o.converged.entry(g.host.clone()).or_insert(t);
            }
            let pending: Vec<&str> = gathered
                .iter()
                .filter(|g| g.host != o.host && !o.converged.contains_key(&g.host))
                .map(|g| g.host.as_str())
                .collect();
            if pending.is_empty() || now_unix - o.learned > GIVE_UP_S {
                done.push((mac.clone(), event(mac, o, &pending)));
            }
        }
        done.into_iter()
            .map(|(mac, e)| {
                let o = self.open.remove(&mac).expect("open");
                self.reported.insert(mac, (o.host, o.learned));
                if self.recent.len() == RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(e.clone());
                e
            })
            .collect()
    }
}

fn event(mac: &str, o: &Open, pending: &[&str]) -> Value {
    let last = o.converged.values().copied().fold(o.learned, f64::max);
    let mut e = json!({
        "event": "vm_arrived", "vm": mac, "host": o.host,
        "learned_unix_s": o.learned, "hosts_converged": o.converged.len(),
        "last_host_ms": ((last - o.learned) * 1e4).round() / 10.0,
    });
    if !pending.is_empty() {
        e["not_converged"] = json!(pending);
    }
    e
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::controller::source::Learned;

    const VM: &str = "02:00:00:00:01:77";

    fn host(name: &str, rule: &str, learned: Option<f64>, published: f64) -> Arc<Gathered> {
        let rules = BTreeMap::from([(VM.to_string(), rule.to_string())]);
        let locations = learned
            .map(|t| Learned {
                mac: VM.into(),
                to: rule.into(),
                unix_s: t,
            })
            .into_iter()
            .collect();
        Arc::new(Gathered {
            host: name.into(),
            underlay_ip: None,
            local_vms: Vec::new(),
            rules,
            rows: Vec::new(),
            paths: Vec::new(),
            locations,
            published_unix_s: published,
            uplink_mbps: None,
        })
    }

    #[test]
    fn an_arrival_is_reported_once_every_host_follows() {
        let mut a = Arrivals::default();
        let c = host("C", "vm:g-m1", Some(100.0), 100.1);
        // A follows by its own announcement; B still points at A.
        let round1 = [
            host("A", "peer:C", Some(100.004), 100.2),
            host("B", "peer:A", None, 99.0),
            Arc::clone(&c),
        ];
        assert!(a.observe(&round1, 50.0, 100.3).is_empty());
        // B's rule moved by the controller: its publication bounds the time.
        let round2 = [
            host("A", "peer:C", Some(100.004), 100.2),
            host("B", "peer:C", None, 101.5),
            Arc::clone(&c),
        ];
        let e = a.observe(&round2, 50.0, 101.6);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0]["host"], "C");
        assert_eq!(e[0]["hosts_converged"], 2);
        assert_eq!(e[0]["last_host_ms"], 1500.0);
        assert!(a.observe(&round2, 50.0, 102.0).is_empty(), "reported twice");
        assert_eq!(a.recent.len(), 1);
    }

    #[test]
    fn a_host_that_never_follows_is_named_and_old_arrivals_are_not_reported() {
        let mut a = Arrivals::default();
        let round = [
            host("A", "peer:B", None, 100.0),
            host("C", "vm:g", Some(100.0), 100.0),
        ];
        assert!(a.observe(&round, 50.0, 110.0).is_empty());
        let e = a.observe(&round, 50.0, 131.0);
        assert_eq!(e[0]["not_converged"], json!(["A"]));
        assert_eq!(e[0]["hosts_converged"], 0);
        let mut b = Arrivals::default();
        assert!(b.observe(&round, 200.0, 240.0).is_empty());
    }
}
