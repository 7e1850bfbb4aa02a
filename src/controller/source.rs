//! What the controller plans from: each daemon's `views/<host>` in etcd (kept by a
//! watch, views.rs), which hold the documents of the daemon's API replies to `/rules`,
//! `/links`, `/matrix` and `/paths`, read here into one host's `Gathered`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use analysis::vttif::MatrixEntry;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::config::ControllerConfig;
use super::view::PathObservation;
use super::views::HostEntry;
use crate::cluster::HostViews;

/// What one daemon said this round.
pub struct Gathered {
    pub host: String,
    /// The daemon's own underlay address (its `/links` reply says it).
    pub underlay_ip: Option<String>,
    pub local_vms: Vec<String>,
    pub rules: BTreeMap<String, String>,
    pub rows: Vec<MatrixEntry>,
    pub paths: Vec<PathObservation>,
    /// The VM locations the daemon learned from announcements lately (its views'
    /// `locations`; empty from its API or an older daemon).
    pub locations: Vec<Learned>,
    /// When the daemon published these views (Unix time, s).
    pub published_unix_s: f64,
    /// What the daemon shapes its uplink at (its views' `stats.uplink_mbps`), Mbit/s.
    pub uplink_mbps: Option<f64>,
}

/// A VM location a daemon learned from the VM's announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    pub mac: String,
    /// "vm:PORT" (the VM arrived on this host) or "peer:NAME".
    pub to: String,
    pub unix_s: f64,
}

impl Learned {
    fn from_json(v: &Value) -> Option<Self> {
        Some(Learned {
            mac: v["mac"].as_str()?.to_string(),
            to: v["to"].as_str()?.to_string(),
            unix_s: v["learned_unix_s"].as_f64()?,
        })
    }
}

impl Gathered {
    /// Reads a daemon's documents: its `/rules` and `/links` replies, and its `/matrix`
    /// and `/paths` replies when monitoring runs there. `expect` is the host's name in
    /// the controller's config: a daemon calling itself otherwise is refused.
    #[cold]
    pub fn parse(
        expect: &str,
        rules_reply: &Value,
        links_reply: &Value,
        matrix: Option<&Value>,
        paths: Option<&Value>,
    ) -> Result<Self> {
        let rules = rules_reply["rules"]
            .as_array()
            .context("no rules in the reply")?
            .iter()
            .filter_map(|r| {
                Some((
                    r["dst_mac"].as_str()?.to_string(),
                    r["to"].as_str()?.to_string(),
                ))
            })
            .collect::<BTreeMap<String, String>>();
        links_reply["links"]
            .as_array()
            .context("no links in the reply")?;
        let underlay_ip = links_reply["underlay_ip"].as_str().map(str::to_string);
        let host = rules_reply["host"].as_str().unwrap_or_default().to_string();
        if host != expect {
            bail!("the daemon says it is {host:?}, not {expect:?}");
        }
        let rows = match matrix {
            Some(m) => crate::operator::host_view(&host, m)?.rows,
            None => Vec::new(),
        };
        // The daemon's own VMs are the destinations it delivers to a VM port.
        let local_vms = rules
            .iter()
            .filter(|(_, to)| to.starts_with("vm:"))
            .map(|(mac, _)| mac.clone())
            .collect();
        let paths = paths
            .and_then(|p| p["wren"]["paths"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(PathObservation::from_json)
            .collect();
        Ok(Gathered {
            host,
            underlay_ip,
            local_vms,
            rules,
            rows,
            paths,
            locations: Vec::new(),
            published_unix_s: 0.0,
            uplink_mbps: None,
        })
    }

    /// Reads a daemon's `views/<host>` (the same documents; `null` where monitoring is
    /// off).
    #[cold]
    pub fn from_views(expect: &str, v: &HostViews) -> Result<Self> {
        fn some(x: &Value) -> Option<&Value> {
            (!x.is_null()).then_some(x)
        }
        let mut g = Self::parse(expect, &v.rules, &v.links, some(&v.matrix), some(&v.paths))?;
        g.locations = (v.locations.as_array().into_iter().flatten())
            .filter_map(Learned::from_json)
            .collect();
        g.published_unix_s = v.at_unix_s;
        g.uplink_mbps = v.stats["uplink_mbps"].as_f64();
        Ok(g)
    }
}

/// Each host's last reading, kept while its views are the same publication (the
/// watch's map hands out the same `Arc` until the daemon publishes again): a fleet's
/// daemons publish every few seconds, its rounds come every second.
#[derive(Default)]
pub struct Readings(HashMap<String, (Arc<HostViews>, Arc<Gathered>)>);

/// One round's views: the daemons that answered, and the others with why.
pub struct Round {
    pub gathered: Vec<Arc<Gathered>>,
    pub down: Vec<Value>,
    /// The reason is logged already (etcd unreachable: one line, not one per host).
    pub logged: bool,
}

/// Every configured host's views from `views` (the watch's map, or why there is
/// none), or why a host has none; read again only where they changed since `last`.
#[cold]
pub fn gather(
    cfg: &ControllerConfig,
    views: Result<BTreeMap<String, HostEntry>>,
    last: &mut Readings,
) -> Round {
    let mut views = match views {
        Ok(v) => v,
        Err(e) => {
            let e = format!("etcd: {e:#}");
            let down = cfg
                .hosts
                .iter()
                .map(|h| json!({"host": h.name, "error": e}))
                .collect();
            return Round {
                gathered: Vec::new(),
                down,
                logged: true,
            };
        }
    };
    let mut gathered = Vec::new();
    let mut down = Vec::new();
    let mut readings = HashMap::with_capacity(cfg.hosts.len());
    for h in &cfg.hosts {
        let got = match views.remove(&h.name) {
            Some(Ok(v)) => match last.0.remove(&h.name) {
                Some((seen, g)) if Arc::ptr_eq(&seen, &v) => Ok((v, g)),
                _ => Gathered::from_views(&h.name, &v).map(|g| (v, Arc::new(g))),
            },
            Some(Err(e)) => Err(anyhow::anyhow!(e)),
            None => Err(anyhow::anyhow!("no views in etcd (daemon down?)")),
        };
        match got {
            Ok((v, g)) => {
                gathered.push(Arc::clone(&g));
                readings.insert(h.name.clone(), (v, g));
            }
            Err(e) => down.push(json!({"host": h.name, "error": format!("{e:#}")})),
        }
    }
    last.0 = readings;
    Round {
        gathered,
        down,
        logged: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(host: &str) -> HostViews {
        HostViews {
            host: host.into(),
            at_unix_s: 0.0,
            rules: json!({"ok": true, "host": host, "rules": [
                {"dst_mac": "02:00:00:00:00:01", "to": "vm:p0"},
                {"dst_mac": "02:00:00:00:00:03", "to": "peer:C"}]}),
            links: json!({"ok": true, "host": host, "underlay_ip": "198.18.0.1",
                "links": [{"name": "C", "ip": "198.18.0.3", "mac": null, "rules": 1}]}),
            vms: json!({"ok": true, "vms": []}),
            paths: Value::Null,
            matrix: json!({"ok": true, "host": host, "local_vms": ["02:00:00:00:00:01"],
                "vttif": {"rows": [{"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:03",
                    "smoothed_mbps": 20.0, "src_also": "10.0.0.1"}]}}),
            stats: json!({}),
            locations: Value::Null,
        }
    }

    #[test]
    fn views_in_etcd_read_as_the_api_replies() {
        let g = Gathered::from_views("A", &views("A")).unwrap();
        assert_eq!(g.local_vms, ["02:00:00:00:00:01"]);
        assert_eq!(g.rules["02:00:00:00:00:03"], "peer:C");
        assert_eq!(g.underlay_ip.as_deref(), Some("198.18.0.1"));
        assert_eq!(g.rows.len(), 1);
        assert!(g.paths.is_empty());
    }

    #[test]
    fn views_of_another_host_or_without_rules_are_refused() {
        let e = Gathered::from_views("B", &views("A")).err().unwrap();
        assert!(format!("{e:#}").contains("not \"B\""), "{e:#}");
        let mut v = views("A");
        v.rules = json!({"host": "A"});
        assert!(Gathered::from_views("A", &v).is_err());
    }
}
