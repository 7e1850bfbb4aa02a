//! The controller's configuration (TOML): the hosts and their capacities, the links'
//! nominal capacities, when and how to adapt, and the etcd cluster (`[etcd]`) through
//! which it reads the daemons' views and writes their desired state.
//! `config/controller.example.toml` documents every key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use analysis::vadapt::Algo;
use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cluster::etcd::EtcdSection;

fn default_interval_ms() -> u64 {
    1000
}
fn default_min_interval_s() -> f64 {
    5.0
}
fn default_change_threshold() -> f64 {
    0.3
}
fn default_improvement() -> f64 {
    0.25
}
fn default_ttl_s() -> f64 {
    300.0
}
fn default_tolerance() -> f64 {
    0.2
}
fn default_min_trains() -> usize {
    5
}
fn default_demand_threshold() -> f64 {
    0.10
}
fn default_min_demand_mbps() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_algo() -> String {
    "gh+sa".into()
}
fn default_seed() -> u64 {
    1
}
fn default_link_bw() -> f64 {
    1000.0
}
fn default_solve_budget_ms() -> u64 {
    10_000
}
fn default_repair_budget_ms() -> u64 {
    800
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSettings {
    /// How often a planning round runs (it reads the views a watch keeps).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// At least this long after an adaptation before VADAPT runs again, and after a
    /// run that kept the routes unless a link's measurement moved (damping).
    #[serde(default = "default_min_interval_s")]
    pub min_interval_s: f64,
    /// VADAPT runs when a link's bandwidth or a demand moves by more than this
    /// fraction from the value the last plan used, or the set of demands changes.
    #[serde(default = "default_change_threshold")]
    pub change_threshold: f64,
    /// A new plan is applied only when its objective beats the plan in force by more
    /// than this fraction of the demand it moves (the demands it reroutes or whose VMs
    /// it moves; at least the narrowest link's capacity): hysteresis against noise.
    #[serde(default = "default_improvement")]
    pub improvement: f64,
    /// A link's measurement is forgotten this long after it was last seen (a link
    /// that carries no traffic cannot be measured passively).
    #[serde(default = "default_ttl_s")]
    pub measurement_ttl_s: f64,
    /// A link's measurement replaces its nominal capacity only when they differ by more
    /// than this fraction of it (Wren's error: a few %, up to ~15% in the lab).
    #[serde(default = "default_tolerance")]
    pub measurement_tolerance: f64,
    /// Wren answers resting on fewer trains are not taken (their RTT is).
    #[serde(default = "default_min_trains")]
    pub min_trains: usize,
    /// Matrix entries below this fraction of the largest of their application (the
    /// connected component of the traffic graph they belong to) are not demands.
    #[serde(default = "default_demand_threshold")]
    pub demand_threshold: f64,
    /// Matrix entries below this rate (Mbit/s) are not demands, however they compare
    /// with the largest: pings and ARP before an application starts are nothing to
    /// place VMs or routes for.
    #[serde(default = "default_min_demand_mbps")]
    pub min_demand_mbps: f64,
    /// false: observe and plan, but change nothing (adaptation off).
    #[serde(default = "default_true")]
    pub adapt: bool,
    /// VADAPT's algorithm: gh, sa, gh+sa, exact.
    #[serde(default = "default_algo")]
    pub algo: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// After a first plan, repair the plan in force (move only the VMs and paths the
    /// change touched, per application) instead of solving the whole problem afresh.
    #[serde(default = "default_true")]
    pub repair: bool,
    /// Wall-clock bound of a full solve (a cold start), ms: cut short, it returns the
    /// best plan found and says so.
    #[serde(default = "default_solve_budget_ms")]
    pub solve_budget_ms: u64,
    /// Wall-clock bound of a repair, ms.
    #[serde(default = "default_repair_budget_ms")]
    pub repair_budget_ms: u64,
    /// Whether VADAPT may move VMs (otherwise every VM is pinned and only paths change).
    #[serde(default)]
    pub allow_migration: bool,
    /// Run for each migration, by `sh -c`, with {vm} (MAC), {port}, {from}, {to}
    /// replaced, e.g. "virsh migrate --live {port} qemu+ssh://{to}/system".
    #[serde(default)]
    pub migrate_command: Option<String>,
    /// Nominal bandwidth of host pairs without a `[[link]]` entry, Mbit/s.
    #[serde(default = "default_link_bw")]
    pub default_link_bw_mbps: f64,
    /// The controller's view and decisions, rewritten every interval (JSON).
    #[serde(default)]
    pub status_file: Option<PathBuf>,
    /// Every decision, one JSON object per line (appended).
    #[serde(default)]
    pub events_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// The daemon's `switch.name`.
    pub name: String,
    /// How many VMs the host can hold (default: as many as it hosts).
    #[serde(default)]
    pub capacity: Option<usize>,
    /// Daemon addresses have no place here (the controller reaches daemons through etcd
    /// only): given, they are refused with that reason rather than serde's.
    #[serde(default)]
    api: Option<toml::Value>,
    #[serde(default)]
    url: Option<toml::Value>,
    #[serde(default)]
    token: Option<toml::Value>,
}

/// A link between two hosts, the same both ways.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    pub a: String,
    pub b: String,
    pub bw_mbps: f64,
    #[serde(default)]
    pub latency_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    pub controller: ControllerSettings,
    #[serde(rename = "host")]
    pub hosts: Vec<HostEntry>,
    #[serde(default, rename = "link")]
    pub links: Vec<LinkEntry>,
    /// Where the cluster's state lives: views read, desired state written, the
    /// replicas' election. Required; an `Option` so that its absence gets a reason.
    #[serde(default)]
    etcd: Option<EtcdSection>,
}

/// A replica's election lease when `[etcd]` names no `lease_ttl_s`. A dead leader holds
/// its key until the lease expires, between two thirds of the TTL and the TTL after its
/// last keep-alive, and the standby leads in its next round: failover is about the TTL
/// plus a second. The daemons' default (5 s, one lease per host, hence one keep-alive a
/// host every 1.7 s) would put failover past 5 s; one replica's keep-alive a second
/// costs nothing.
pub const ELECTION_TTL_S: i64 = 3;

impl ControllerConfig {
    #[cold]
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read controller config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid controller config {}", path.display()))
    }

    #[cold]
    pub fn parse(text: &str) -> Result<Self> {
        let raw: toml::Table = toml::from_str(text)?;
        let ttl_given = raw.get("etcd").and_then(|e| e.get("lease_ttl_s")).is_some();
        let mut c: ControllerConfig = toml::from_str(text)?;
        if let (Some(e), false) = (c.etcd.as_mut(), ttl_given) {
            e.lease_ttl_s = ELECTION_TTL_S;
        }
        c.validate()?;
        Ok(c)
    }

    /// The `[etcd]` section (validated present).
    pub fn etcd(&self) -> &EtcdSection {
        self.etcd.as_ref().expect("validated")
    }

    pub fn algo(&self) -> Algo {
        self.controller.algo.parse().expect("validated")
    }

    fn validate(&self) -> Result<()> {
        let s = &self.controller;
        for (k, v) in [
            ("interval_ms", s.interval_ms),
            ("solve_budget_ms", s.solve_budget_ms),
            ("repair_budget_ms", s.repair_budget_ms),
        ] {
            if v == 0 {
                bail!("controller.{k} must be > 0");
            }
        }
        for (k, v) in [
            ("min_interval_s", s.min_interval_s),
            ("measurement_ttl_s", s.measurement_ttl_s),
            ("improvement", s.improvement),
            ("default_link_bw_mbps", s.default_link_bw_mbps),
            ("min_demand_mbps", s.min_demand_mbps),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("controller.{k} must be a finite number >= 0, got {v}");
            }
        }
        for (k, v) in [
            ("measurement_tolerance", s.measurement_tolerance),
            ("change_threshold", s.change_threshold),
            ("demand_threshold", s.demand_threshold),
        ] {
            if !(v > 0.0 && v < 1.0) {
                bail!("controller.{k} must be in (0, 1), got {v}");
            }
        }
        if let Err(e) = s.algo.parse::<Algo>() {
            bail!("controller.algo: {e}");
        }
        if self.hosts.is_empty() {
            bail!("no [[host]]: the controller needs at least one daemon");
        }
        let mut names = BTreeSet::new();
        for h in &self.hosts {
            if !names.insert(h.name.as_str()) {
                bail!("host {:?} is listed twice", h.name);
            }
            if h.api.is_some() || h.url.is_some() || h.token.is_some() {
                bail!(
                    "host {:?}: api, url and token are not controller settings: the \
                     controller reaches daemons through etcd only ([etcd])",
                    h.name
                );
            }
        }
        let Some(e) = &self.etcd else {
            bail!(
                "no [etcd] section: the controller reads the daemons' views from etcd and \
                 writes their desired state there (docs/cluster.md)"
            );
        };
        e.validate().context("[etcd]")?;
        for l in &self.links {
            for end in [&l.a, &l.b] {
                if !names.contains(end.as_str()) {
                    bail!("link {}-{} names unknown host {end:?}", l.a, l.b);
                }
            }
            if l.a == l.b {
                bail!("link {}-{} joins a host to itself", l.a, l.b);
            }
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !(ok(l.bw_mbps) && ok(l.latency_ms)) {
                bail!("link {}-{}: bw_mbps and latency_ms must be >= 0", l.a, l.b);
            }
        }
        Ok(())
    }

    /// The nominal (bw, latency) of the directed link a→b.
    pub fn nominal(&self, a: &str, b: &str) -> (f64, f64) {
        self.links
            .iter()
            .find(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
            .map(|l| (l.bw_mbps, l.latency_ms))
            .unwrap_or((self.controller.default_link_bw_mbps, 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/controller.example.toml");
        let c = ControllerConfig::load(&path).unwrap();
        assert_eq!(c.hosts.len(), 3);
        assert_eq!(c.nominal("C", "A"), (10000.0, 0.0));
        assert_eq!(c.algo(), Algo::GreedyAnneal);
    }

    const ETCD: &str =
        "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/wrenvnet/lab\"\n";

    #[test]
    fn hosts_are_named_with_their_capacities_only() {
        let c = ControllerConfig::parse(&format!(
            "[controller]\n[[host]]\nname = \"A\"\ncapacity = 2\n[[host]]\nname = \"B\"\n{ETCD}"
        ))
        .unwrap();
        assert_eq!(c.etcd().keys().plan(), "/wrenvnet/lab/plan");
        assert_eq!(c.hosts[0].capacity, Some(2));
    }

    #[test]
    fn the_election_lease_is_the_controllers_own_unless_named() {
        let base = format!("[controller]\n[[host]]\nname = \"A\"\n{ETCD}");
        let c = ControllerConfig::parse(&base).unwrap();
        assert_eq!(c.etcd().lease_ttl_s, ELECTION_TTL_S);
        let c = ControllerConfig::parse(&format!("{base}lease_ttl_s = 7\n")).unwrap();
        assert_eq!(c.etcd().lease_ttl_s, 7);
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let base = format!("[controller]\n[[host]]\nname = \"A\"\n{ETCD}");
        assert!(ControllerConfig::parse(&base).is_ok());
        let host_b =
            |extra: &str| base.replace("[etcd]", &format!("[[host]]\nname = \"B\"\n{extra}[etcd]"));
        for (text, want) in [
            ("[controller]\nhost = []\n".to_string(), "unknown field"),
            (
                "[controller]\n[[host]]\nname = \"A\"\n".to_string(),
                "no [etcd] section",
            ),
            (host_b("api = \"/x\"\n"), "through etcd only"),
            (
                host_b("url = \"10.0.0.1:9280\"\ntoken = \"t\"\n"),
                "through etcd only",
            ),
            (
                base.replace("[etcd]", "[[host]]\nname = \"A\"\n[etcd]"),
                "listed twice",
            ),
            (
                base.replace(
                    "[etcd]",
                    "[[link]]\na = \"A\"\nb = \"Z\"\nbw_mbps = 1\n[etcd]",
                ),
                "unknown host",
            ),
            (
                base.replace("[controller]\n", "[controller]\nchange_threshold = 2\n"),
                "change_threshold",
            ),
            (
                base.replace("[controller]\n", "[controller]\nalgo = \"magic\"\n"),
                "unknown algorithm",
            ),
            (
                "[controller]\n[[host]]\nname = \"A\"\n[etcd]\nendpoints = []\n".to_string(),
                "endpoints is empty",
            ),
        ] {
            let e = format!("{:#}", ControllerConfig::parse(&text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
