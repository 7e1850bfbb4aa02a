//! From a plan to what each daemon must change: forwarding rules (match on source and
//! destination VM, action: deliver locally or send over the overlay link to the next
//! host), overlay links, and VM migrations — only what differs from the current state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::problem::{Instance, Problem};

/// A forwarding rule on one daemon.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub src: String,
    pub dst: String,
    /// The next host over the overlay; `None`: deliver to the local VM port.
    pub next_hop: Option<String>,
}

/// Changes for one daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonActions {
    pub add_rules: Vec<Rule>,
    pub remove_rules: Vec<Rule>,
    pub add_links: Vec<String>,
    pub remove_links: Vec<String>,
}

impl DaemonActions {
    pub fn is_empty(&self) -> bool {
        self.add_rules.is_empty()
            && self.remove_rules.is_empty()
            && self.add_links.is_empty()
            && self.remove_links.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub vm: String,
    pub from: String,
    pub to: String,
}

/// All changes, per daemon (host name), plus migrations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actions {
    pub daemons: BTreeMap<String, DaemonActions>,
    pub migrations: Vec<Migration>,
}

type State = BTreeMap<String, (BTreeSet<Rule>, BTreeSet<String>)>;

/// Rules and links that realise `paths` (each a list of host names for src→dst).
fn realise<'a>(paths: impl Iterator<Item = (&'a str, &'a str, Vec<&'a str>)>) -> State {
    let mut st: State = BTreeMap::new();
    for (src, dst, hosts) in paths {
        for (i, h) in hosts.iter().enumerate() {
            let next = hosts.get(i + 1).map(|n| n.to_string());
            let entry = st.entry(h.to_string()).or_default();
            if let Some(n) = &next {
                entry.1.insert(n.clone());
            }
            entry.0.insert(Rule {
                src: src.to_string(),
                dst: dst.to_string(),
                next_hop: next,
            });
        }
    }
    st
}

/// The minimal changes that take the current state (`problem.current_paths`, the VMs'
/// current hosts) to `plan`.
pub fn diff(inst: &Instance, problem: &Problem, plan: &Plan) -> Actions {
    let new_paths: Vec<(&str, &str, Vec<&str>)> = inst
        .demands
        .iter()
        .zip(&plan.paths)
        .map(|(d, p)| {
            (
                inst.vm_names[d.src.0].as_str(),
                inst.vm_names[d.dst.0].as_str(),
                p.iter().map(|h| inst.host_names[h.0].as_str()).collect(),
            )
        })
        .collect();
    let old = realise(problem.current_paths.iter().map(|c| {
        (
            c.src.as_str(),
            c.dst.as_str(),
            c.hosts.iter().map(String::as_str).collect(),
        )
    }));
    let new = realise(new_paths.into_iter());
    let mut daemons = BTreeMap::new();
    let hosts: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let empty = (BTreeSet::new(), BTreeSet::new());
    for h in hosts {
        let (or, ol) = old.get(h).unwrap_or(&empty);
        let (nr, nl) = new.get(h).unwrap_or(&empty);
        let a = DaemonActions {
            add_rules: nr.difference(or).cloned().collect(),
            remove_rules: or.difference(nr).cloned().collect(),
            add_links: nl.difference(ol).cloned().collect(),
            remove_links: ol.difference(nl).cloned().collect(),
        };
        if !a.is_empty() {
            daemons.insert(h.clone(), a);
        }
    }
    let migrations = plan
        .mapping
        .iter()
        .enumerate()
        .filter_map(|(v, h)| match inst.current[v] {
            Some(c) if c != *h => Some(Migration {
                vm: inst.vm_names[v].clone(),
                from: inst.host_names[c.0].clone(),
                to: inst.host_names[h.0].clone(),
            }),
            _ => None,
        })
        .collect();
    Actions {
        daemons,
        migrations,
    }
}
