//! The controller's picture of the network: per directed host link, its nominal
//! capacity and what Wren measured on it, turned into the bandwidth VADAPT plans with.
//!
//! Wren measures end-to-end paths from the VMs' own TCP, so a measurement belongs to
//! the overlay route its traffic took when it was taken. A direct route measures its
//! one link: an estimate replaces what was known, a bound constrains it. A multi-hop
//! route's available bandwidth is the smallest of its links', so each link there has
//! at least that much (a lower bound); its upper bounds say nothing about any one link.
//! A link that carries no traffic cannot be measured passively: what was measured is
//! kept for `measurement_ttl_s`, then the link is back to its nominal value.
//!
//! The view holds the links something was measured on: every other directed pair of
//! hosts is at its nominal values, known without an entry (a fleet of 1,000 hosts has
//! a million pairs, of which its traffic measures a few thousand).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// What Wren said about a path (one `/paths` entry), in Mbit/s and ms.
#[derive(Debug, Clone, PartialEq)]
pub struct PathObservation {
    pub src_ip: String,
    pub dst_ip: String,
    pub kind: String,
    pub estimate: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub rtt_min_ms: Option<f64>,
    pub throughput_mbps: f64,
    /// How many trains the bandwidth answer rests on.
    pub trains: usize,
}

impl PathObservation {
    /// Reads one entry of a daemon's `wren.paths`; `None` when it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let f = |k: &str| v[k].as_f64();
        Some(Self {
            src_ip: v["src"].as_str()?.to_string(),
            dst_ip: v["dst"].as_str()?.to_string(),
            kind: v["avail_bw_kind"].as_str().unwrap_or("none").to_string(),
            estimate: f("avail_bw_mbps"),
            low: f("avail_bw_low_mbps"),
            high: f("avail_bw_high_mbps"),
            rtt_min_ms: f("rtt_min_us").map(|u| u / 1e3),
            throughput_mbps: f("throughput_mbps").unwrap_or(0.0),
            trains: v["trains"].as_u64().unwrap_or(0) as usize,
        })
    }
}

/// A value and when (controller seconds) it was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Seen {
    pub value: f64,
    pub at: f64,
}

/// One directed link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkState {
    pub nominal_bw_mbps: f64,
    pub nominal_latency_ms: f64,
    pub estimate: Option<Seen>,
    pub low: Option<Seen>,
    pub high: Option<Seen>,
    /// One-way latency from the smallest RTT of a direct route (RTT / 2).
    pub latency: Option<Seen>,
}

impl LinkState {
    pub fn new(nominal_bw_mbps: f64, nominal_latency_ms: f64) -> Self {
        Self {
            nominal_bw_mbps,
            nominal_latency_ms,
            estimate: None,
            low: None,
            high: None,
            latency: None,
        }
    }

    fn forget_stale(&mut self, now: f64, ttl: f64) {
        for s in [
            &mut self.estimate,
            &mut self.low,
            &mut self.high,
            &mut self.latency,
        ] {
            if matches!(s, Some(x) if now - x.at > ttl) {
                *s = None;
            }
        }
    }

    /// What was measured: the estimate (or the nominal capacity), within the bounds
    /// measured since.
    pub fn measured_mbps(&self) -> f64 {
        let mut bw = self.estimate.map_or(self.nominal_bw_mbps, |e| e.value);
        if let Some(h) = self.high {
            bw = bw.min(h.value);
        }
        if let Some(l) = self.low {
            bw = bw.max(l.value);
        }
        bw
    }

    /// The bandwidth to plan with: the measured value where it disagrees with the
    /// nominal capacity by more than `tolerance` (its relative error), else the nominal
    /// one. A measured link must not look worse than an unmeasured one for noise alone,
    /// or the planner would chase unmeasured links. A measurement above the nominal
    /// capacity plans as the capacity: nothing is available beyond it (the lab's TCG
    /// guests, sending in bursts, made Wren read 169-432 Mbit/s on a 100 Mbit/s link).
    pub fn bw_mbps(&self, tolerance: f64) -> f64 {
        let m = self.measured_mbps().min(self.nominal_bw_mbps);
        if (m - self.nominal_bw_mbps).abs() <= tolerance * self.nominal_bw_mbps {
            self.nominal_bw_mbps
        } else {
            m
        }
    }

    pub fn latency_ms(&self) -> f64 {
        self.latency.map_or(self.nominal_latency_ms, |l| l.value)
    }

    /// Where `bw_mbps` comes from, for operators.
    pub fn source(&self) -> &'static str {
        match (self.estimate, self.low, self.high) {
            (Some(_), None, None) => "measured",
            (None, None, None) => "nominal",
            (Some(_), _, _) => "measured, bounded",
            (None, _, _) => "nominal, bounded",
        }
    }
}

/// Every directed link between the hosts: the measured ones listed, the others at
/// their nominal values.
#[derive(Debug, Clone, Default)]
pub struct NetworkView {
    /// The links with a measurement.
    pub links: BTreeMap<(String, String), LinkState>,
    hosts: BTreeSet<String>,
    /// The pairs whose nominal values are not `default`'s.
    configured: BTreeMap<(String, String), (f64, f64)>,
    /// Nominal (bandwidth, latency) of every other pair.
    default: (f64, f64),
    /// Relative error of a measurement (see `LinkState::bw_mbps`).
    pub tolerance: f64,
}

type Key = (String, String);

impl NetworkView {
    /// A view with every directed pair of `hosts` at its nominal values: `nominal`'s
    /// (bandwidth, latency), which is `default` for all but a few pairs.
    pub fn new(
        hosts: &[String],
        tolerance: f64,
        default: (f64, f64),
        nominal: impl Fn(&str, &str) -> (f64, f64),
    ) -> Self {
        let mut configured = BTreeMap::new();
        for a in hosts {
            for b in hosts.iter().filter(|b| *b != a) {
                let v = nominal(a, b);
                if v != default {
                    configured.insert((a.clone(), b.clone()), v);
                }
            }
        }
        Self {
            links: BTreeMap::new(),
            hosts: hosts.iter().cloned().collect(),
            configured,
            default,
            tolerance,
        }
    }

    /// The nominal (bandwidth, latency) of every pair not configured otherwise.
    pub fn default_link(&self) -> (f64, f64) {
        self.default
    }

    /// A pair's nominal (bandwidth, latency).
    pub fn nominal(&self, k: &Key) -> (f64, f64) {
        self.configured.get(k).copied().unwrap_or(self.default)
    }

    /// The link a->b (None unless both are known hosts and differ).
    pub fn link(&self, k: &Key) -> Option<Cow<'_, LinkState>> {
        if let Some(l) = self.links.get(k) {
            return Some(Cow::Borrowed(l));
        }
        let known = k.0 != k.1 && self.hosts.contains(&k.0) && self.hosts.contains(&k.1);
        let (bw, lat) = self.nominal(k);
        known.then(|| Cow::Owned(LinkState::new(bw, lat)))
    }

    /// The bandwidth to plan with on a->b (its nominal one when nothing is measured).
    pub fn bw_mbps(&self, k: &Key) -> f64 {
        self.link(k).map_or(0.0, |l| l.bw_mbps(self.tolerance))
    }

    /// The directed pairs of hosts, listed or not.
    pub fn pairs(&self) -> usize {
        self.hosts.len() * self.hosts.len().saturating_sub(1)
    }

    /// Every directed pair's link (a small fleet's status lists them all).
    pub fn all_links(&self) -> Vec<(Key, Cow<'_, LinkState>)> {
        let hosts = self.hosts.iter();
        let pairs = hosts.flat_map(|a| self.hosts.iter().map(move |b| (a.clone(), b.clone())));
        pairs
            .filter_map(|k| {
                let l = self.link(&k)?;
                Some((k, l))
            })
            .collect()
    }

    /// The pairs whose nominal values are not the default's.
    pub fn configured(&self) -> impl Iterator<Item = &Key> {
        self.configured.keys()
    }

    /// The listed link a->b, listed at its nominal values if it was not.
    fn entry(&mut self, a: &str, b: &str) -> Option<&mut LinkState> {
        if a == b || !self.hosts.contains(a) || !self.hosts.contains(b) {
            return None;
        }
        let k = (a.to_string(), b.to_string());
        let (bw, lat) = self.nominal(&k);
        Some(
            self.links
                .entry(k)
                .or_insert_with(|| LinkState::new(bw, lat)),
        )
    }

    /// Takes in one path measurement whose traffic followed `route` (host names). A
    /// bandwidth answer resting on fewer than `min_trains` trains (a connection's first
    /// round trips: slow start's bursts queue and read as an upper bound) is not taken;
    /// its RTT is.
    pub fn observe(
        &mut self,
        route: &[String],
        obs: &PathObservation,
        now: f64,
        min_trains: usize,
    ) {
        if route.len() < 2 {
            return;
        }
        let enough = obs.trains >= min_trains;
        let seen = |value: f64| Some(Seen { value, at: now });
        if route.len() == 2 {
            let Some(l) = self.entry(&route[0], &route[1]) else {
                return;
            };
            let kind = if enough { obs.kind.as_str() } else { "none" };
            match (kind, obs.estimate, obs.low, obs.high) {
                ("estimate", Some(e), _, _) => {
                    l.estimate = seen(e);
                    l.low = None;
                    l.high = None;
                }
                ("upper_bound", _, _, Some(h)) => {
                    l.high = seen(h);
                    if matches!(l.low, Some(lo) if lo.value > h) {
                        l.low = None;
                    }
                }
                ("lower_bound", _, Some(lo), _) => {
                    l.low = seen(lo);
                    if matches!(l.high, Some(hi) if hi.value < lo) {
                        l.high = None;
                    }
                }
                _ => {}
            }
            if let Some(rtt) = obs.rtt_min_ms {
                l.latency = seen(rtt / 2.0);
            }
            return;
        }
        let floor = match obs.kind.as_str() {
            _ if !enough => None,
            "estimate" => obs.estimate,
            "lower_bound" => obs.low,
            _ => None,
        };
        if let Some(floor) = floor {
            for w in route.windows(2) {
                if let Some(l) = self.entry(&w[0], &w[1]) {
                    let replace = match l.low {
                        None => true,
                        Some(lo) => lo.value <= floor || now - lo.at > 1.0,
                    };
                    if replace {
                        l.low = seen(floor);
                    }
                    if matches!(l.high, Some(hi) if hi.value < floor) {
                        l.high = None;
                    }
                }
            }
        }
    }

    /// Forgets measurements older than `ttl` seconds: a link left with none is back
    /// at its nominal values, unlisted.
    pub fn expire(&mut self, now: f64, ttl: f64) {
        self.links.retain(|_, l| {
            l.forget_stale(now, ttl);
            l.estimate.is_some() || l.low.is_some() || l.high.is_some() || l.latency.is_some()
        });
    }

    /// The links whose planned bandwidth is not their nominal one, with it: the few a
    /// fleet measures off nominal, not every directed pair.
    pub fn off_nominal(&self) -> BTreeMap<(String, String), f64> {
        (self.links.iter())
            .filter_map(|(k, l)| {
                let v = l.bw_mbps(self.tolerance);
                (v != l.nominal_bw_mbps).then(|| (k.clone(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(kind: &str, est: Option<f64>, low: Option<f64>, high: Option<f64>) -> PathObservation {
        PathObservation {
            src_ip: "10.0.0.1".into(),
            dst_ip: "10.0.0.2".into(),
            kind: kind.into(),
            estimate: est,
            low,
            high,
            rtt_min_ms: Some(20.0),
            throughput_mbps: 5.0,
            trains: 10,
        }
    }

    fn view() -> NetworkView {
        let hosts: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        NetworkView::new(&hosts, 0.2, (100.0, 1.0), |_, _| (100.0, 1.0))
    }

    fn r(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|s| s.to_string()).collect()
    }

    fn link(v: &NetworkView, a: &str, b: &str) -> LinkState {
        v.link(&(a.to_string(), b.to_string()))
            .unwrap()
            .into_owned()
    }

    fn bw(v: &NetworkView, a: &str, b: &str) -> f64 {
        v.link(&(a.to_string(), b.to_string()))
            .unwrap()
            .measured_mbps()
    }

    #[test]
    fn a_direct_estimate_replaces_the_nominal_value_of_that_link_only() {
        let mut v = view();
        v.observe(
            &r(&["A", "C"]),
            &obs("estimate", Some(10.0), None, None),
            0.0,
            3,
        );
        assert_eq!(bw(&v, "A", "C"), 10.0);
        assert_eq!(bw(&v, "C", "A"), 100.0);
        assert_eq!(bw(&v, "A", "B"), 100.0);
        let l = link(&v, "A", "C");
        assert_eq!(l.latency_ms(), 10.0);
        assert_eq!(l.source(), "measured");
    }

    #[test]
    fn bounds_constrain_but_do_not_invent() {
        let mut v = view();
        // avail >= 30 on a 100 Mbit/s link says nothing new.
        v.observe(
            &r(&["A", "C"]),
            &obs("lower_bound", None, Some(30.0), None),
            0.0,
            3,
        );
        assert_eq!(bw(&v, "A", "C"), 100.0);
        // avail <= 40 does.
        v.observe(
            &r(&["A", "C"]),
            &obs("upper_bound", None, None, Some(40.0)),
            1.0,
            3,
        );
        assert_eq!(bw(&v, "A", "C"), 40.0);
        // "none" changes nothing.
        v.observe(&r(&["A", "C"]), &obs("none", None, None, None), 2.0, 3);
        assert_eq!(bw(&v, "A", "C"), 40.0);
    }

    #[test]
    fn a_multi_hop_route_gives_each_link_a_floor_only() {
        let mut v = view();
        v.observe(
            &r(&["A", "C"]),
            &obs("estimate", Some(10.0), None, None),
            0.0,
            3,
        );
        v.observe(
            &r(&["A", "B", "C"]),
            &obs("estimate", Some(60.0), None, None),
            1.0,
            3,
        );
        // Neither A-B nor B-C is known to be narrower than nominal; A-C is untouched.
        assert_eq!(bw(&v, "A", "B"), 100.0);
        assert_eq!(bw(&v, "B", "C"), 100.0);
        assert_eq!(bw(&v, "A", "C"), 10.0);
        // An upper bound on a two-hop route cannot be pinned on either link.
        v.observe(
            &r(&["A", "B", "C"]),
            &obs("upper_bound", None, None, Some(5.0)),
            2.0,
            3,
        );
        assert_eq!(bw(&v, "A", "B"), 100.0);
        // A floor above an earlier estimate lifts it.
        v.entry("A", "B").unwrap().estimate = Some(Seen {
            value: 20.0,
            at: 2.0,
        });
        v.observe(
            &r(&["A", "B", "C"]),
            &obs("estimate", Some(60.0), None, None),
            3.0,
            3,
        );
        assert_eq!(bw(&v, "A", "B"), 60.0);
    }

    #[test]
    fn an_answer_on_too_few_trains_is_not_taken_but_its_rtt_is() {
        let mut v = view();
        let mut o = obs("estimate", Some(10.0), None, None);
        o.trains = 2;
        v.observe(&r(&["A", "C"]), &o, 0.0, 3);
        let l = link(&v, "A", "C");
        assert_eq!(l.measured_mbps(), 100.0);
        assert_eq!(l.latency_ms(), 10.0);
        v.observe(&r(&["A", "B", "C"]), &o, 0.0, 3);
        assert!(link(&v, "A", "B").low.is_none());
    }

    #[test]
    fn no_bound_on_few_trains_is_taken() {
        let mut v = view();
        for o in [
            obs("lower_bound", None, Some(150.0), None),
            obs("upper_bound", None, None, Some(22.0)),
        ] {
            let mut o = o;
            o.trains = 2;
            v.observe(&r(&["A", "C"]), &o, 0.0, 3);
            assert_eq!(bw(&v, "A", "C"), 100.0);
        }
    }

    #[test]
    fn a_measurement_within_its_error_of_nominal_plans_as_nominal() {
        let mut v = view();
        v.observe(
            &r(&["A", "C"]),
            &obs("estimate", Some(88.0), None, None),
            0.0,
            3,
        );
        v.observe(
            &r(&["A", "B"]),
            &obs("estimate", Some(70.0), None, None),
            0.0,
            3,
        );
        // Only A->B plans off its nominal 100 Mbit/s: 88 is within the tolerance.
        let off = v.off_nominal();
        assert_eq!(off, [(("A".to_string(), "B".to_string()), 70.0)].into());
    }

    #[test]
    fn a_measurement_above_the_capacity_plans_as_the_capacity() {
        let mut v = view();
        v.observe(
            &r(&["A", "C"]),
            &obs("estimate", Some(432.0), None, None),
            0.0,
            3,
        );
        v.observe(
            &r(&["A", "B"]),
            &obs("lower_bound", None, Some(250.0), None),
            0.0,
            3,
        );
        assert!(v.off_nominal().is_empty(), "{:?}", v.off_nominal());
    }

    #[test]
    fn measurements_expire_back_to_nominal() {
        let mut v = view();
        v.observe(
            &r(&["A", "C"]),
            &obs("estimate", Some(10.0), None, None),
            0.0,
            3,
        );
        v.expire(100.0, 300.0);
        assert_eq!(bw(&v, "A", "C"), 10.0);
        assert_eq!(v.links.len(), 1, "only the measured link is listed");
        v.expire(301.0, 300.0);
        assert_eq!(bw(&v, "A", "C"), 100.0);
        assert!(v.links.is_empty(), "back at its nominal values: unlisted");
        assert_eq!((v.pairs(), v.all_links().len()), (6, 6));
        assert_eq!(link(&v, "A", "C").latency_ms(), 1.0);
    }

    #[test]
    fn reads_a_daemon_path_entry() {
        let j = serde_json::json!({"src":"198.19.0.10","dst":"198.19.0.12","avail_bw_kind":"estimate",
            "avail_bw_mbps": 9.5, "avail_bw_low_mbps": 9.0, "avail_bw_high_mbps": 10.0,
            "rtt_min_us": 4000.0, "throughput_mbps": 9.1});
        let o = PathObservation::from_json(&j).unwrap();
        assert_eq!(o.estimate, Some(9.5));
        assert_eq!(o.rtt_min_ms, Some(4.0));
        assert!(PathObservation::from_json(&serde_json::json!({"dst": "x"})).is_none());
    }
}
