//! From the gathered state to a decision: the routes in force (walked along the
//! daemons' rules), the VADAPT problem, whether its plan is worth applying, the rules
//! that realise it without loops, and each host's desired state for etcd.
//!
//! The switch forwards by destination MAC, so a daemon has one next hop per
//! destination VM, whatever the source: the rules towards one VM form a tree rooted at
//! its host. Demands are laid into that tree reserved first, then heaviest first; a lighter demand whose
//! planned path meets a host already in the tree follows the tree from there. That
//! keeps every rule set loop-free; `followed` reports where a demand's route differs
//! from its plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use analysis::vadapt::problem::{DemandSpec, HostId, HostSpec, LinkSpec, PathSpec, VmSpec};
use analysis::vadapt::{self, evaluate, Instance, Objective, Plan, Problem};
use serde::Serialize;

/// host → (destination MAC → "peer:NAME" | "vm:PORT").
pub type Rules = BTreeMap<String, BTreeMap<String, String>>;

/// A VM, by its MAC, and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmInfo {
    pub mac: String,
    pub host: String,
    pub ip: Option<String>,
}

/// Traffic from one VM to another, Mbit/s (VTTIF's smoothed rate, at least the
/// pair's reservation).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Demand {
    pub src: String,
    pub dst: String,
    pub mbps: f64,
    /// The pair's admitted reservation (0: none): a hard constraint of the plan.
    #[serde(skip_serializing_if = "is_zero")]
    pub reserved_mbps: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The hosts traffic from `src_host` to the VM `dst_mac` crosses under `rules`. A
/// missing rule, a loop or a dead end reads as the direct link (the switch floods
/// unknown unicast to every host, so the destination's host gets it straight).
pub fn route(rules: &Rules, dst_host: &str, src_host: &str, dst_mac: &str) -> Vec<String> {
    let direct = || {
        if src_host == dst_host {
            vec![src_host.to_string()]
        } else {
            vec![src_host.to_string(), dst_host.to_string()]
        }
    };
    let mut path = vec![src_host.to_string()];
    let mut here = src_host.to_string();
    while here != dst_host {
        let next = rules
            .get(&here)
            .and_then(|r| r.get(dst_mac))
            .and_then(|to| to.strip_prefix("peer:"));
        match next {
            Some(n) if !path.iter().any(|p| p == n) => {
                here = n.to_string();
                path.push(here.clone());
            }
            _ => return direct(),
        }
    }
    path
}

/// The rules of a full mesh: every remote VM straight to its host (tests' starting point).
#[cfg(test)]
pub fn default_rules(hosts: &[String], vms: &[VmInfo]) -> Rules {
    hosts
        .iter()
        .map(|h| {
            let r = vms
                .iter()
                .filter(|v| &v.host != h)
                .map(|v| (v.mac.clone(), format!("peer:{}", v.host)))
                .collect();
            (h.clone(), r)
        })
        .collect()
}

/// Inputs of one VADAPT run.
#[derive(Clone, Copy)]
pub struct Situation<'a> {
    pub hosts: &'a [(String, usize)],
    pub vms: &'a [VmInfo],
    pub demands: &'a [Demand],
    pub bw: &'a BTreeMap<(String, String), f64>,
    pub latency: &'a BTreeMap<(String, String), f64>,
    pub rules: &'a Rules,
    pub allow_migration: bool,
}

impl Situation<'_> {
    /// The VADAPT problem: residual bandwidth, links as measured, the routes in force.
    pub fn problem(&self) -> Problem {
        let host: BTreeMap<&str, &str> = self
            .vms
            .iter()
            .map(|v| (v.mac.as_str(), v.host.as_str()))
            .collect();
        let host_of = |mac: &str| host.get(mac).copied();
        let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
        for v in self.vms {
            *per_host.entry(v.host.as_str()).or_default() += 1;
        }
        let demands: Vec<&Demand> = self
            .demands
            .iter()
            .filter(|d| d.src != d.dst && host_of(&d.src).is_some())
            .filter(|d| host_of(&d.dst).is_some())
            .collect();
        Problem {
            hosts: self
                .hosts
                .iter()
                .map(|(name, cap)| HostSpec {
                    name: name.clone(),
                    capacity: (*cap).max(per_host.get(name.as_str()).copied().unwrap_or(0)),
                    local_bw_mbps: 10_000.0,
                })
                .collect(),
            links: self
                .bw
                .iter()
                .map(|(k, bw)| LinkSpec {
                    from: k.0.clone(),
                    to: k.1.clone(),
                    bw_mbps: bw.max(0.0),
                    latency_ms: self.latency.get(k).copied().unwrap_or(0.0),
                    reservable_mbps: None,
                })
                .collect(),
            default_link: None,
            vms: self
                .vms
                .iter()
                .map(|v| VmSpec {
                    name: v.mac.clone(),
                    host: Some(v.host.clone()),
                    pinned: !self.allow_migration,
                })
                .collect(),
            current_paths: demands
                .iter()
                .map(|d| {
                    let (hs, hd) = (
                        host_of(&d.src).unwrap_or_default(),
                        host_of(&d.dst).unwrap_or_default(),
                    );
                    PathSpec {
                        src: d.src.clone(),
                        dst: d.dst.clone(),
                        hosts: route(self.rules, hd, hs, &d.dst),
                    }
                })
                .collect(),
            demands: demands
                .iter()
                .map(|d| DemandSpec {
                    src: d.src.clone(),
                    dst: d.dst.clone(),
                    mbps: d.mbps.max(0.0),
                    max_latency_ms: None,
                    reserved_mbps: d.reserved_mbps.max(0.0),
                })
                .collect(),
            objective: Objective::ResidualBw,
        }
    }
}

/// Whether a plan is worth applying over the one in force.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub apply: bool,
    /// Sum over demands of the smallest residual bandwidth on its path, Mbit/s.
    pub objective_now: f64,
    pub objective_plan: f64,
    pub feasible_now: bool,
    pub feasible_plan: bool,
    /// The gain a change must exceed: `improvement` × max(demand moved, scale).
    pub needed_gain: f64,
    /// Reserved demands the routes in force and the plan do not hold: a plan that holds
    /// more is applied whatever its gain, one that holds fewer never is.
    #[serde(skip_serializing_if = "no_reservations")]
    pub reservations_broken: (usize, usize),
    /// "repair" (from the plan in force) or the full solve's algorithm.
    pub algo: String,
    /// The time bound cut the run short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by_time: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair: Option<vadapt::RepairReport>,
    /// The plan's paths that differ from the routes in force; the decision log keeps
    /// the first `LOGGED_PATHS` of them (a full solve may reroute every demand of the
    /// fleet: thousands of paths, megabytes, over etcd's request limit).
    #[serde(serialize_with = "first_paths")]
    pub paths_changed: Vec<vadapt::PathOut>,
    pub paths_changed_count: usize,
    /// VM -> host, for the VMs the plan moves.
    pub vms_moved: BTreeMap<String, String>,
    #[serde(skip)]
    pub plan: Vec<vadapt::PathOut>,
    #[serde(skip)]
    pub mapping: BTreeMap<String, String>,
}

/// Paths a decision names (see `Verdict::paths_changed`).
pub const LOGGED_PATHS: usize = 32;

fn no_reservations(b: &(usize, usize)) -> bool {
    *b == (0, 0)
}

fn first_paths<S: serde::Serializer>(p: &[vadapt::PathOut], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().take(LOGGED_PATHS))
}

/// Runs VADAPT on `problem` and judges its plan against the routes in force.
/// With `previous` (the problem the plan in force was made for), the plan is a repair
/// of the one in force; without, a full solve.
/// A plan must gain more than `improvement` × the larger of the demand it moves and
/// `scale` (the narrowest nominal link): when the demands are small (an application
/// starting), a gain of a few Mbit/s is noise, not a reason to move traffic. The
/// demand a plan moves is that of the demands it reroutes or whose VMs it moves:
/// measured against the whole fleet's demand (or the whole of the applications it
/// touches), which grows with every application, a local repair's gain (at most about
/// a link's capacity per demand it fixes) would not pass.
pub fn judge(
    problem: &Problem,
    previous: Option<&Problem>,
    opts: &vadapt::Options,
    improvement: f64,
    scale: f64,
) -> Result<Verdict, vadapt::ProblemError> {
    let inst = Instance::from_problem(problem)?;
    let answer = match previous {
        Some(prev) => repair_in_force(problem, prev, opts)?,
        None => vadapt::solve(problem, opts)?,
    };
    let ix = |names: &[String], n: &str| names.iter().position(|x| x == n);
    let current = Plan {
        mapping: inst
            .current
            .iter()
            .map(|h| h.expect("every VM is placed"))
            .collect(),
        paths: problem
            .current_paths
            .iter()
            .map(|p| {
                p.hosts
                    .iter()
                    .filter_map(|h| ix(&inst.host_names, h).map(HostId))
                    .collect()
            })
            .collect(),
    };
    let now = evaluate(&inst, &current);
    let (paths_changed, vms_moved) = changes(problem, &answer);
    let touched = touched_demand(problem, &paths_changed, &vms_moved);
    let needed_gain = (improvement * touched.max(scale)).max(1.0);
    let objective_plan = answer.objective.unwrap_or(f64::NEG_INFINITY);
    let objective_now = if now.objective.is_nan() {
        f64::NEG_INFINITY
    } else {
        now.objective
    };
    let broken = (now.reservations_broken, answer.reservations_broken);
    let gain = objective_plan - objective_now > needed_gain;
    Ok(Verdict {
        apply: broken.1 < broken.0 || (broken.1 == broken.0 && gain),
        reservations_broken: broken,
        objective_now,
        objective_plan,
        feasible_now: now.feasible,
        feasible_plan: answer.feasible,
        needed_gain,
        algo: answer.algo,
        stopped_by_time: answer.stopped_by_time,
        repair: answer.repair,
        paths_changed_count: paths_changed.len(),
        paths_changed,
        vms_moved,
        plan: answer.paths,
        mapping: answer.mapping,
    })
}

/// VADAPT's repair of the plan in force (the VMs' hosts and the routes in `problem`),
/// made for `previous`, to `problem`.
fn repair_in_force(
    problem: &Problem,
    previous: &Problem,
    opts: &vadapt::Options,
) -> Result<vadapt::Answer, vadapt::ProblemError> {
    let mapping: BTreeMap<String, String> = problem
        .vms
        .iter()
        .filter_map(|v| Some((v.name.clone(), v.host.clone()?)))
        .collect();
    let paths: Vec<vadapt::PathOut> = problem
        .current_paths
        .iter()
        .map(|p| vadapt::PathOut {
            src: p.src.clone(),
            dst: p.dst.clone(),
            hosts: p.hosts.clone(),
        })
        .collect();
    let prev = vadapt::Previous {
        problem: previous,
        mapping: &mapping,
        paths: &paths,
    };
    vadapt::repair(problem, &prev, opts)
}

/// The paths of `answer` that differ from the routes in force, and the VMs it moves.
fn changes(
    problem: &Problem,
    answer: &vadapt::Answer,
) -> (Vec<vadapt::PathOut>, BTreeMap<String, String>) {
    let now: BTreeMap<(&str, &str), &Vec<String>> = problem
        .current_paths
        .iter()
        .map(|p| ((p.src.as_str(), p.dst.as_str()), &p.hosts))
        .collect();
    let paths = answer
        .paths
        .iter()
        .filter(|p| now.get(&(p.src.as_str(), p.dst.as_str())) != Some(&&p.hosts))
        .cloned()
        .collect();
    let moved = problem
        .vms
        .iter()
        .filter_map(|v| {
            let to = answer.mapping.get(&v.name)?;
            (Some(to) != v.host.as_ref()).then(|| (v.name.clone(), to.clone()))
        })
        .collect();
    (paths, moved)
}

/// The total demand (Mbit/s) that a plan moves: the demands whose path changes or
/// whose VMs move.
fn touched_demand(
    problem: &Problem,
    paths_changed: &[vadapt::PathOut],
    vms_moved: &BTreeMap<String, String>,
) -> f64 {
    let rerouted: BTreeSet<(&str, &str)> = paths_changed
        .iter()
        .map(|p| (p.src.as_str(), p.dst.as_str()))
        .collect();
    problem
        .demands
        .iter()
        .filter(|d| {
            rerouted.contains(&(d.src.as_str(), d.dst.as_str()))
                || vms_moved.contains_key(&d.src)
                || vms_moved.contains_key(&d.dst)
        })
        .map(|d| d.mbps)
        .sum()
}

/// The rules that realise `plan` (paths of the demands) on top of `base` (the rules in
/// force: VMs no demand reaches keep theirs), and the demands whose route had to
/// follow another's (src, dst, the route taken).
pub fn realise(
    base: &Rules,
    plan: &[vadapt::PathOut],
    demands: &[Demand],
) -> (Rules, Vec<(String, String, Vec<String>)>) {
    // Each pair's rate (its first demand's), looked up rather than searched for: a
    // fleet has tens of thousands of demands.
    // Reserved pairs first (the larger reservation first), then the heaviest.
    let mut rate: HashMap<(&str, &str), (f64, f64)> = HashMap::with_capacity(demands.len());
    for d in demands {
        rate.entry((d.src.as_str(), d.dst.as_str()))
            .or_insert((d.reserved_mbps, d.mbps));
    }
    let key = |p: &vadapt::PathOut| {
        (rate.get(&(p.src.as_str(), p.dst.as_str()))).map_or((0.0, 0.0), |&r| r)
    };
    let mut order: Vec<&vadapt::PathOut> = plan.iter().filter(|p| p.hosts.len() > 1).collect();
    order.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        (y.0.total_cmp(&x.0)).then(y.1.total_cmp(&x.1))
    });
    // dst MAC → hosts whose next hop towards it is already decided (the tree).
    let mut tree: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    let mut followed = Vec::new();
    for p in order {
        let t = tree.entry(p.dst.as_str()).or_default();
        let dst_host = p.hosts.last().expect("non-empty").clone();
        for w in p.hosts.windows(2) {
            if w[0] == dst_host {
                break;
            }
            if let Some(next) = t.get(&w[0]) {
                if next != &w[1] {
                    // Joins the tree here and goes its way.
                    let mut r = Rules::new();
                    for (h, n) in t.iter() {
                        r.entry(h.clone())
                            .or_default()
                            .insert(p.dst.clone(), format!("peer:{n}"));
                    }
                    followed.push((
                        p.src.clone(),
                        p.dst.clone(),
                        route(&r, &dst_host, &p.hosts[0], &p.dst),
                    ));
                }
                break;
            }
            t.insert(w[0].clone(), w[1].clone());
        }
    }
    let mut rules = base.clone();
    for (mac, t) in tree {
        for (h, next) in t {
            rules
                .entry(h)
                .or_default()
                .insert(mac.to_string(), format!("peer:{next}"));
        }
    }
    (rules, followed)
}

/// `rules` with each VM of `moves` (MAC, new host) where the plan puts it: every other
/// daemon's rule for its MAC points straight at the new host (the controller adds the
/// overlay links that needs), and the new host keeps no peer rule for it (the VM's own
/// port rule takes over when its port is plugged there). Realised before the plan's
/// paths, which then override these where a demand reaches the VM by another route.
pub fn relocate(rules: &Rules, moves: &[(String, String)]) -> Rules {
    let mut out = rules.clone();
    for (mac, to) in moves {
        for (host, r) in out.iter_mut() {
            if host == to {
                if r.get(mac).is_some_and(|v| v.starts_with("peer:")) {
                    r.remove(mac);
                }
            } else {
                r.insert(mac.clone(), format!("peer:{to}"));
            }
        }
    }
    out
}

/// One rule to set on one daemon.
/// Each host's desired state under `plan` (peer rules per host): its
/// rules, and a link to every host its rules point at or whose rules point at it (a
/// daemon drops VXLAN from hosts that are not its links), at that host's underlay
/// address (`underlay`; a host without one gets no link yet). Revisions are the
/// writer's.
pub fn desired_state(
    plan: &Rules,
    underlay: &BTreeMap<&str, &str>,
) -> BTreeMap<String, crate::cluster::Desired> {
    let mut peers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (h, rules) in plan {
        for x in rules.values().filter_map(|to| to.strip_prefix("peer:")) {
            peers.entry(h).or_default().insert(x);
            peers.entry(x).or_default().insert(h);
        }
    }
    plan.iter()
        .map(|(h, rules)| {
            let links = peers
                .get(h.as_str())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let ip = underlay.get(p)?.to_string();
                    Some((p.to_string(), crate::cluster::DesiredLink { ip, mac: None }))
                })
                .collect();
            let rules = rules
                .iter()
                .filter(|(_, to)| to.starts_with("peer:"))
                .map(|(m, to)| (m.clone(), to.clone()))
                .collect();
            (
                h.clone(),
                crate::cluster::Desired {
                    revision: 0,
                    rules,
                    links,
                    reservations: None,
                },
            )
        })
        .collect()
}

/// The set of (src, dst) pairs of the demands.
pub fn pairs(demands: &[Demand]) -> BTreeSet<(String, String)> {
    demands
        .iter()
        .map(|d| (d.src.clone(), d.dst.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn lab() -> (Vec<String>, Vec<VmInfo>) {
        let hosts = vec![s("A"), s("B"), s("C")];
        let vm = |mac: &str, host: &str| VmInfo {
            mac: s(mac),
            host: s(host),
            ip: None,
        };
        (hosts, vec![vm("a1", "A"), vm("b1", "B"), vm("c1", "C")])
    }

    fn links(ac: f64) -> BTreeMap<(String, String), f64> {
        let mut m = BTreeMap::new();
        for (a, b) in [
            ("A", "B"),
            ("B", "A"),
            ("B", "C"),
            ("C", "B"),
            ("A", "C"),
            ("C", "A"),
        ] {
            let bw = if (a, b) == ("A", "C") || (a, b) == ("C", "A") {
                ac
            } else {
                100.0
            };
            m.insert((s(a), s(b)), bw);
        }
        m
    }

    #[test]
    fn a_moved_vm_is_reached_at_its_new_host() {
        let (hosts, vms) = lab();
        let rules = default_rules(&hosts, &vms);
        // c1 moves from C to A.
        let moved = relocate(&rules, &[(s("c1"), s("A"))]);
        assert_eq!(moved["B"]["c1"], "peer:A");
        assert_eq!(
            moved["C"]["c1"], "peer:A",
            "the old host forwards to the new one"
        );
        assert!(!moved["A"].contains_key("c1"), "{moved:?}");
        // The other VMs' rules are untouched.
        assert_eq!(moved["A"]["b1"], rules["A"]["b1"]);
    }

    #[test]
    fn routes_follow_rules_and_fall_back_to_direct() {
        let (hosts, vms) = lab();
        let mut rules = default_rules(&hosts, &vms);
        assert_eq!(route(&rules, "C", "A", "c1"), vec![s("A"), s("C")]);
        rules.get_mut("A").unwrap().insert(s("c1"), s("peer:B"));
        assert_eq!(route(&rules, "C", "A", "c1"), vec![s("A"), s("B"), s("C")]);
        // A loop B -> A -> B reads as direct.
        rules.get_mut("B").unwrap().insert(s("c1"), s("peer:A"));
        assert_eq!(route(&rules, "C", "A", "c1"), vec![s("A"), s("C")]);
        assert_eq!(route(&rules, "C", "C", "c1"), vec![s("C")]);
    }

    fn situation_verdict(ac: f64, demand: f64, rules: &Rules) -> Verdict {
        reserved_verdict(ac, demand, 0.0, rules)
    }

    fn reserved_verdict(ac: f64, demand: f64, reserved: f64, rules: &Rules) -> Verdict {
        let (hosts, vms) = lab();
        let caps: Vec<(String, usize)> = hosts.iter().map(|h| (h.clone(), 1)).collect();
        let bw = links(ac);
        let lat = BTreeMap::new();
        let demands = vec![Demand {
            src: s("a1"),
            dst: s("c1"),
            mbps: demand.max(reserved),
            reserved_mbps: reserved,
        }];
        let sit = Situation {
            hosts: &caps,
            vms: &vms,
            demands: &demands,
            bw: &bw,
            latency: &lat,
            rules,
            allow_migration: false,
        };
        judge(
            &sit.problem(),
            None,
            &vadapt::Options::default(),
            0.25,
            100.0,
        )
        .unwrap()
    }

    #[test]
    fn a_throttled_direct_link_is_routed_around_and_a_healthy_one_is_left_alone() {
        let (hosts, vms) = lab();
        let rules = default_rules(&hosts, &vms);
        let v = situation_verdict(10.0, 9.5, &rules);
        assert!(v.apply, "{v:?}");
        assert_eq!(v.plan[0].hosts, vec![s("A"), s("B"), s("C")]);
        // The same demand on a healthy link: no gain worth a change.
        let v = situation_verdict(100.0, 90.0, &rules);
        assert!(!v.apply, "{v:?}");
        // Noise: the direct link measured a little under the demand it carries.
        let v = situation_verdict(88.0, 92.0, &rules);
        assert!(!v.apply, "{v:?}");
    }

    #[test]
    fn a_plan_that_holds_a_reservation_the_routes_in_force_break_is_applied_whatever_its_gain() {
        let (hosts, vms) = lab();
        let rules = default_rules(&hosts, &vms);
        // 85 Mbit/s on an 80 Mbit/s direct link; through B 15 are left: a gain of 20,
        // under the 25 a change must make.
        let v = situation_verdict(80.0, 85.0, &rules);
        assert!(!v.apply, "{v:?}");
        let v = reserved_verdict(80.0, 10.0, 85.0, &rules);
        assert!(v.apply, "{v:?}");
        assert_eq!(v.reservations_broken, (1, 0));
        assert_eq!(v.plan[0].hosts, vec![s("A"), s("B"), s("C")]);
        let logged = serde_json::to_value(&v).unwrap();
        assert_eq!(logged["reservations_broken"], serde_json::json!([1, 0]));
    }

    #[test]
    fn a_change_is_judged_against_the_demand_it_moves_not_the_fleet() {
        // a1 -> c1 on a throttled A-C link, beside a large application (d1 <-> e1, both
        // on B: no link involved) that the change does not touch.
        let (mut hosts, mut vms) = lab();
        hosts.push(s("D"));
        for (mac, host) in [("d1", "B"), ("e1", "B")] {
            vms.push(VmInfo {
                mac: s(mac),
                host: s(host),
                ip: None,
            });
        }
        let rules = default_rules(&hosts, &vms);
        let caps: Vec<(String, usize)> = hosts.iter().map(|h| (h.clone(), 3)).collect();
        let (bw, lat) = (links(10.0), BTreeMap::new());
        let demand = |a: &str, b: &str, mbps| Demand {
            src: s(a),
            dst: s(b),
            mbps,
            ..Default::default()
        };
        let demands = vec![
            demand("a1", "c1", 9.5),
            demand("d1", "e1", 5000.0),
            demand("e1", "d1", 5000.0),
        ];
        let sit = Situation {
            hosts: &caps,
            vms: &vms,
            demands: &demands,
            bw: &bw,
            latency: &lat,
            rules: &rules,
            allow_migration: false,
        };
        let v = judge(
            &sit.problem(),
            None,
            &vadapt::Options::default(),
            0.25,
            100.0,
        )
        .unwrap();
        assert!(v.apply, "{v:?}");
        assert_eq!(v.needed_gain, 25.0, "{v:?}");
    }

    #[test]
    fn a_repair_changes_only_the_application_the_change_touched() {
        // a1 -> c1 and, apart, d1 (B) -> e1 (C); the plan in force was made with every
        // link at 100 Mbit/s, then A-C drops to 10.
        let (hosts, mut vms) = lab();
        for (mac, host) in [("d1", "B"), ("e1", "C")] {
            vms.push(VmInfo {
                mac: s(mac),
                host: s(host),
                ip: None,
            });
        }
        let rules = default_rules(&hosts, &vms);
        let caps: Vec<(String, usize)> = hosts.iter().map(|h| (h.clone(), 2)).collect();
        let demand = |a: &str, b: &str, mbps| Demand {
            src: s(a),
            dst: s(b),
            mbps,
            ..Default::default()
        };
        let demands = vec![demand("a1", "c1", 9.5), demand("d1", "e1", 20.0)];
        let (then, now, lat) = (links(100.0), links(10.0), BTreeMap::new());
        let sit = |bw| Situation {
            hosts: &caps,
            vms: &vms,
            demands: &demands,
            bw,
            latency: &lat,
            rules: &rules,
            allow_migration: false,
        };
        let previous = sit(&then).problem();
        let opts = vadapt::Options::default();
        let v = judge(&sit(&now).problem(), Some(&previous), &opts, 0.25, 100.0).unwrap();
        assert!(v.apply, "{v:?}");
        assert_eq!(v.algo, "repair");
        let report = v.repair.as_ref().expect("a repair reports what it touched");
        assert_eq!((report.touched_components, report.components), (1, 2));
        assert_eq!(v.paths_changed.len(), 1, "{v:?}");
        assert_eq!(v.paths_changed[0].src, "a1");
        assert_eq!(v.paths_changed[0].hosts, vec![s("A"), s("B"), s("C")]);
        assert!(v.vms_moved.is_empty());
        // Nothing changed since the plan in force: nothing to repair.
        let v = judge(&previous, Some(&previous), &opts, 0.25, 100.0).unwrap();
        assert!(!v.apply && v.paths_changed.is_empty(), "{v:?}");
    }

    #[test]
    fn realised_rules_form_a_tree() {
        let (hosts, vms) = lab();
        let defaults = default_rules(&hosts, &vms);
        let p = |src: &str, dst: &str, h: &[&str]| vadapt::PathOut {
            src: s(src),
            dst: s(dst),
            hosts: h.iter().map(|x| s(x)).collect(),
        };
        let d = |src: &str, dst: &str, mbps: f64| Demand {
            src: s(src),
            dst: s(dst),
            mbps,
            ..Default::default()
        };
        // Heavy a1->c1 via B; lighter b1->c1 planned via A: it must follow B's rule.
        let plan = vec![
            p("a1", "c1", &["A", "B", "C"]),
            p("b1", "c1", &["B", "A", "C"]),
        ];
        let demands = vec![d("a1", "c1", 50.0), d("b1", "c1", 5.0)];
        let (rules, followed) = realise(&defaults, &plan, &demands);
        assert_eq!(rules["A"]["c1"], "peer:B");
        assert_eq!(rules["B"]["c1"], "peer:C");
        assert_eq!(followed, vec![(s("b1"), s("c1"), vec![s("B"), s("C")])]);
        // Untouched rules stay the defaults.
        assert_eq!(rules["C"]["a1"], "peer:A");
    }

    #[test]
    fn desired_state_links_both_ends_of_every_rule() {
        let mut plan = Rules::new();
        plan.entry(s("A")).or_default().insert(s("c1"), s("peer:B"));
        plan.entry(s("B")).or_default().insert(s("c1"), s("peer:C"));
        plan.entry(s("C")).or_default();
        let underlay: BTreeMap<&str, &str> = [("A", "10.0.0.1"), ("B", "10.0.0.2")].into();
        let d = desired_state(&plan, &underlay);
        assert_eq!(d["A"].rules[&s("c1")], "peer:B");
        assert_eq!(d["A"].links.keys().collect::<Vec<_>>(), ["B"]);
        assert_eq!(d["B"].links.keys().collect::<Vec<_>>(), ["A"]);
        assert_eq!(d["A"].links["B"].ip, "10.0.0.2");
        // C's address is not known yet: no link to it, its rule stays.
        assert_eq!(d["B"].rules[&s("c1")], "peer:C");
        assert!(d["C"].links.contains_key("B"));
        assert!(d["C"].rules.is_empty());
    }
}
