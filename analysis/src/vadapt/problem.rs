//! The adaptation problem as operators write it (JSON), and the same problem with
//! names resolved to dense indices for the algorithms.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A host's index in `Instance::hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub usize);

/// A VM's index in `Instance::vms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmId(pub usize);

/// What to optimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Maximise the sum over demands of the smallest residual bandwidth on its path.
    #[default]
    ResidualBw,
    /// Minimise the sum over demands of its path's latency.
    Latency,
}

fn default_local_bw() -> f64 {
    10_000.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    /// How many VMs the host holds.
    pub capacity: usize,
    /// Bandwidth VMs on this host get between them, Mbit/s.
    #[serde(default = "default_local_bw")]
    pub local_bw_mbps: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    pub bw_mbps: f64,
    #[serde(default)]
    pub latency_ms: f64,
    /// What reservations may take of the link (default `bw_mbps`): its capacity less
    /// the traffic that does not yield to them. Best-effort traffic of the planned
    /// VMs, shaped behind reservations on its host's uplink, does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservable_mbps: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    /// Where the VM runs now (`null`: not placed yet).
    #[serde(default)]
    pub host: Option<String>,
    /// A pinned VM never moves.
    #[serde(default)]
    pub pinned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandSpec {
    pub src: String,
    pub dst: String,
    pub mbps: f64,
    #[serde(default)]
    pub max_latency_ms: Option<f64>,
    /// A reservation's rate on this pair, Mbit/s: a hard constraint (every link of the
    /// path must hold the reservations that cross it) and a floor of `mbps`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserved_mbps: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// A path a demand takes now, for computing the minimal rule changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    pub src: String,
    pub dst: String,
    pub hosts: Vec<String>,
}

/// The link of every ordered pair of distinct hosts that `Problem::links` does not
/// list: a fleet's full mesh at its nominal values, without a million entries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultLink {
    pub bw_mbps: f64,
    #[serde(default)]
    pub latency_ms: f64,
}

/// The problem, as `wrenvnet adapt --input` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    pub hosts: Vec<HostSpec>,
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    /// Every pair `links` does not list has this link; without it, no link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_link: Option<DefaultLink>,
    pub vms: Vec<VmSpec>,
    #[serde(default)]
    pub demands: Vec<DemandSpec>,
    #[serde(default)]
    pub objective: Objective,
    /// The paths in use now (optional): rule changes are computed against them.
    #[serde(default)]
    pub current_paths: Vec<PathSpec>,
}

/// A problem that cannot be solved as written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProblemError {
    #[error("no hosts")]
    NoHosts,
    #[error("host name {0:?} is used twice")]
    DuplicateHost(String),
    #[error("VM name {0:?} is used twice")]
    DuplicateVm(String),
    #[error("{what} names unknown host {name:?}")]
    UnknownHost { what: String, name: String },
    #[error("{what} names unknown VM {name:?}")]
    UnknownVm { what: String, name: String },
    #[error("{0}")]
    BadValue(String),
}

/// A finite number ≥ 0 (NaN and infinities are not).
fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// A demand with indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    pub src: VmId,
    pub dst: VmId,
    pub mbps: f64,
    pub max_latency_ms: Option<f64>,
    /// Reserved rate (0: best-effort); `mbps` is at least this.
    pub reserved_mbps: f64,
}

impl Demand {
    /// The order demands are placed and routed in: reserved ones first (the larger
    /// reservation first), then the heaviest, then by index (a total order).
    pub fn first(demands: &[Demand], a: usize, b: usize) -> std::cmp::Ordering {
        let (x, y) = (&demands[a], &demands[b]);
        (y.reserved_mbps.total_cmp(&x.reserved_mbps))
            .then(y.mbps.total_cmp(&x.mbps))
            .then(a.cmp(&b))
    }
}

/// The problem with names resolved: dense matrices for links, indices everywhere.
#[derive(Debug, Clone)]
pub struct Instance {
    pub host_names: Vec<String>,
    pub vm_names: Vec<String>,
    pub capacity: Vec<usize>,
    pub local_bw: Vec<f64>,
    /// `bw[a][b]`: bandwidth of the directed link a→b, `None` when there is none.
    pub bw: Vec<Vec<Option<f64>>>,
    pub latency: Vec<Vec<f64>>,
    /// `out[a]`: the hosts a has a link to, ascending (the links of `bw`, for searches
    /// that cost the links there are rather than hosts squared).
    pub out: Vec<Vec<usize>>,
    pub current: Vec<Option<HostId>>,
    pub pinned: Vec<bool>,
    pub demands: Vec<Demand>,
    pub objective: Objective,
    /// The largest bandwidth anywhere (at least 1): the unit of constraint penalties.
    pub largest_bw: f64,
    /// The links whose capacity for reservations is not their bandwidth
    /// (`LinkSpec::reservable_mbps`), by (from, to).
    pub reservable: HashMap<(usize, usize), f64>,
}

impl Instance {
    /// What reservations may take of the link a→b (0 when there is none).
    pub fn reservable(&self, a: usize, b: usize) -> f64 {
        match self.reservable.get(&(a, b)) {
            Some(&r) => r,
            None => self.bw.get(a).and_then(|r| *r.get(b)?).unwrap_or(0.0),
        }
    }

    pub fn hosts(&self) -> usize {
        self.host_names.len()
    }

    pub fn vms(&self) -> usize {
        self.vm_names.len()
    }

    /// Builds the indexed instance, rejecting what makes no sense.
    pub fn from_problem(p: &Problem) -> Result<Self, ProblemError> {
        if p.hosts.is_empty() {
            return Err(ProblemError::NoHosts);
        }
        let mut host_ix = HashMap::new();
        for (i, h) in p.hosts.iter().enumerate() {
            if host_ix.insert(h.name.as_str(), i).is_some() {
                return Err(ProblemError::DuplicateHost(h.name.clone()));
            }
            if !non_negative(h.local_bw_mbps) {
                return Err(ProblemError::BadValue(format!(
                    "host {:?}: local_bw_mbps must be a finite number >= 0",
                    h.name
                )));
            }
        }
        let host = |what: String, name: &str| {
            host_ix.get(name).copied().ok_or(ProblemError::UnknownHost {
                what,
                name: name.to_string(),
            })
        };
        let n = p.hosts.len();
        let (mut bw, mut latency) = match p.default_link {
            None => (vec![vec![None; n]; n], vec![vec![0.0; n]; n]),
            Some(d) => {
                if !(non_negative(d.bw_mbps) && non_negative(d.latency_ms)) {
                    return Err(ProblemError::BadValue(
                        "default_link: bw_mbps and latency_ms must be finite numbers >= 0".into(),
                    ));
                }
                let mut bw = vec![vec![Some(d.bw_mbps); n]; n];
                let mut latency = vec![vec![d.latency_ms; n]; n];
                for a in 0..n {
                    (bw[a][a], latency[a][a]) = (None, 0.0);
                }
                (bw, latency)
            }
        };
        let mut reservable = HashMap::new();
        for l in &p.links {
            // Named only on an error: a fleet's problem has a million links.
            let what = || format!("link {}->{}", l.from, l.to);
            let end = |name: &str| match host_ix.get(name) {
                Some(&i) => Ok(i),
                None => host(what(), name),
            };
            let (a, b) = (end(&l.from)?, end(&l.to)?);
            if a == b {
                return Err(ProblemError::BadValue(format!(
                    "{}: a link joins two different hosts",
                    what()
                )));
            }
            if !(non_negative(l.bw_mbps) && non_negative(l.latency_ms)) {
                return Err(ProblemError::BadValue(format!(
                    "{}: bw_mbps and latency_ms must be finite numbers >= 0",
                    what()
                )));
            }
            bw[a][b] = Some(l.bw_mbps);
            latency[a][b] = l.latency_ms;
            match l.reservable_mbps {
                Some(r) if !non_negative(r) => {
                    return Err(ProblemError::BadValue(format!(
                        "{}: reservable_mbps must be a finite number >= 0",
                        what()
                    )))
                }
                Some(r) => {
                    reservable.insert((a, b), r);
                }
                None => {}
            }
        }
        let mut vm_ix = HashMap::new();
        let mut current = Vec::new();
        let mut pinned = Vec::new();
        for (i, v) in p.vms.iter().enumerate() {
            if vm_ix.insert(v.name.as_str(), i).is_some() {
                return Err(ProblemError::DuplicateVm(v.name.clone()));
            }
            let h = match &v.host {
                Some(h) => Some(HostId(host(format!("VM {}", v.name), h)?)),
                None => None,
            };
            if v.pinned && h.is_none() {
                return Err(ProblemError::BadValue(format!(
                    "VM {:?} is pinned but has no host",
                    v.name
                )));
            }
            current.push(h);
            pinned.push(v.pinned);
        }
        let vm = |what: String, name: &str| {
            vm_ix.get(name).copied().ok_or(ProblemError::UnknownVm {
                what,
                name: name.to_string(),
            })
        };
        let mut demands = Vec::new();
        for d in &p.demands {
            let what = format!("demand {}->{}", d.src, d.dst);
            let src = VmId(vm(what.clone(), &d.src)?);
            let dst = VmId(vm(what.clone(), &d.dst)?);
            if src == dst {
                return Err(ProblemError::BadValue(format!(
                    "{what}: a demand joins two different VMs"
                )));
            }
            if !non_negative(d.mbps) {
                return Err(ProblemError::BadValue(format!(
                    "{what}: mbps must be a finite number >= 0"
                )));
            }
            if let Some(l) = d.max_latency_ms {
                if !non_negative(l) {
                    return Err(ProblemError::BadValue(format!(
                        "{what}: max_latency_ms must be >= 0"
                    )));
                }
            }
            if !non_negative(d.reserved_mbps) {
                return Err(ProblemError::BadValue(format!(
                    "{what}: reserved_mbps must be a finite number >= 0"
                )));
            }
            demands.push(Demand {
                src,
                dst,
                mbps: d.mbps.max(d.reserved_mbps),
                max_latency_ms: d.max_latency_ms,
                reserved_mbps: d.reserved_mbps,
            });
        }
        for c in &p.current_paths {
            vm(format!("current path {}->{}", c.src, c.dst), &c.src)?;
            vm(format!("current path {}->{}", c.src, c.dst), &c.dst)?;
            for h in &c.hosts {
                host(format!("current path {}->{}", c.src, c.dst), h)?;
            }
        }
        let largest_bw = bw
            .iter()
            .flatten()
            .flatten()
            .chain(p.hosts.iter().map(|h| &h.local_bw_mbps))
            .fold(1.0f64, |a, &b| a.max(b));
        Ok(Instance {
            reservable,
            largest_bw,
            host_names: p.hosts.iter().map(|h| h.name.clone()).collect(),
            vm_names: p.vms.iter().map(|v| v.name.clone()).collect(),
            capacity: p.hosts.iter().map(|h| h.capacity).collect(),
            local_bw: p.hosts.iter().map(|h| h.local_bw_mbps).collect(),
            out: out_links(&bw),
            bw,
            latency,
            current,
            pinned,
            demands,
            objective: p.objective,
        })
    }
}

/// The hosts each host has a link to, ascending.
pub fn out_links(bw: &[Vec<Option<f64>>]) -> Vec<Vec<usize>> {
    bw.iter()
        .map(|row| (0..row.len()).filter(|&b| row[b].is_some()).collect())
        .collect()
}
