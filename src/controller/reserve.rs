//! Reservations from the controller's side: admission, the demands they put before
//! VADAPT, and what each host enforces.
//!
//! Admission is first come, first served, and never takes back what it gave: the
//! reservations already admitted are booked first (in the order they were asked for),
//! then the new ones. A link's capacity for reservations is what traffic that does not
//! yield to them leaves: the bandwidth the planner uses (nominal, or Wren's
//! measurement where it disagrees: `LinkState::bw_mbps`) plus the best-effort traffic
//! of the fleet's own VMs routed on it (VTTIF's demands), at most the nominal
//! capacity. Wren, measuring from an application's own TCP, sees a neighbour VM's
//! best-effort flows as cross traffic; but those are shaped on their host's uplink
//! behind any reservation, so they take nothing from it. A
//! reservation is admitted when the route in force towards its destination has its
//! rate left on every link, or when another path (direct, or through one other host)
//! has; in the second case VADAPT is asked to route it (`needs_route`): an admitted
//! reservation is a hard constraint of its problem. One that fits nowhere is refused
//! with the link that lacks; refused stays refused (the operator asks again). An
//! admitted reservation that stops fitting (a link's measurement fell) is moved by the
//! next plan when a path has room, and is `degraded` while none has: its source host
//! keeps serving it first, without a guarantee.
//!
//! Enforcement is the source VM's host's (`Desired::reservations`): the reserved class
//! on its NIC egress (`dataplane::switch::qos`), whatever path the frames then take.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::decide::{route, Demand, Rules};
use crate::cluster::{Admission, AdmissionState, ReservationRequest, ReservationSpec};

type Link = (String, String);

/// What admission decided this round.
#[derive(Debug, Default)]
pub struct Decided {
    /// Every request's verdict, by id.
    pub verdicts: BTreeMap<String, Admission>,
    /// Admitted reservations whose route in force does not hold them.
    pub needs_route: Vec<String>,
}

/// The links a reservation needs its rate on, and what they have.
pub struct Network<'a> {
    pub hosts: &'a [String],
    /// The route in force (the controller's desired rules, else the daemons').
    pub rules: &'a Rules,
    pub host_of: &'a dyn Fn(&str) -> Option<String>,
    /// A link's bandwidth for planning, Mbit/s (None: no such link).
    pub bw: &'a dyn Fn(&Link) -> Option<f64>,
    /// Whether routes may move (adaptation on): else only the route in force counts.
    pub reroute: bool,
    /// What a host's daemon shapes its uplink at, Mbit/s (None: not published, or
    /// the uplink not shaped): reservations from its VMs to other hosts must fit it.
    pub uplink: &'a dyn Fn(&str) -> Option<f64>,
}

/// Rounds in a row an admitted reservation's route must be short before it is moved
/// (or degraded): a measurement's first second after a change (a neighbour's flows
/// starting, seen by Wren before VTTIF has their rate) is not a reason to move.
pub const SHORT_ROUNDS: u32 = 3;

/// Admits, keeps or refuses every request; `before` is the last round's verdicts.
#[cold]
/// `short` counts, by id, the rounds in a row each admitted one has been short.
pub fn admit(
    asked: &[ReservationRequest],
    before: &BTreeMap<String, Admission>,
    net: &Network,
    short: &mut BTreeMap<String, u32>,
) -> Decided {
    let was =
        |r: &ReservationRequest, s: AdmissionState| before.get(&r.id).map(|a| a.state) == Some(s);
    let held = |r: &&ReservationRequest| {
        was(r, AdmissionState::Admitted) || was(r, AdmissionState::Degraded)
    };
    let mut order: Vec<&ReservationRequest> = asked.iter().collect();
    order.sort_by(|a, b| (a.created_unix_s.total_cmp(&b.created_unix_s)).then(a.id.cmp(&b.id)));
    let (old, new): (Vec<_>, Vec<_>) = order.into_iter().partition(held);
    let mut booked: BTreeMap<Link, f64> = BTreeMap::new();
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    // Reserved from each source host's uplink so far.
    let mut uplinks: BTreeMap<String, f64> = BTreeMap::new();
    let mut out = Decided::default();
    for r in old.into_iter().chain(new) {
        let a = if was(r, AdmissionState::Refused) {
            before[&r.id].clone()
        } else if !pairs.insert((
            r.src_mac.to_ascii_lowercase(),
            r.dst_mac.to_ascii_lowercase(),
        )) {
            refused(r, "its VM pair is reserved by another request".into())
        } else if let Some(why) = uplink_short(r, net, &uplinks).filter(|_| !held(&r)) {
            refused(r, why)
        } else {
            let held = held(&r).then_some(&mut *short);
            one(r, held, net, &mut booked, &mut out.needs_route)
        };
        let holds = matches!(a.state, AdmissionState::Admitted | AdmissionState::Degraded);
        if let Some(src) = a.path.first().filter(|_| holds && a.path.len() > 1) {
            *uplinks.entry(src.clone()).or_default() += r.mbps;
        }
        out.verdicts.insert(r.id.clone(), a);
    }
    short.retain(|id, _| out.verdicts.contains_key(id));
    out
}

/// Why a new request does not fit its source host's uplink, given what is reserved
/// from it already (`None`: it fits, or the uplink is not known). A held one is kept:
/// it was booked first, and only a smaller uplink configured since can make it short.
fn uplink_short(
    r: &ReservationRequest,
    net: &Network,
    reserved: &BTreeMap<String, f64>,
) -> Option<String> {
    let (hs, hd) = ((net.host_of)(&r.src_mac)?, (net.host_of)(&r.dst_mac)?);
    let cap = (net.uplink)(&hs).filter(|_| hs != hd)?;
    let used = reserved.get(&hs).copied().unwrap_or(0.0);
    (used + r.mbps > cap + 1e-9).then(|| {
        format!(
            "{} Mbit/s asked: {hs}'s uplink is shaped at {cap:.1} Mbit/s and {used:.1} of it \
             is reserved already",
            r.mbps
        )
    })
}

fn refused(r: &ReservationRequest, reason: String) -> Admission {
    Admission {
        state: AdmissionState::Refused,
        reason,
        path: Vec::new(),
        mbps: r.mbps,
    }
}

/// One request's verdict, booking its rate on the path it gets.
fn one(
    r: &ReservationRequest,
    held: Option<&mut BTreeMap<String, u32>>,
    net: &Network,
    booked: &mut BTreeMap<Link, f64>,
    needs_route: &mut Vec<String>,
) -> Admission {
    if let Err(e) = crate::daemon::qos::reservation(&r.spec()) {
        return refused(r, format!("{e:#}"));
    }
    let (Some(hs), Some(hd)) = ((net.host_of)(&r.src_mac), (net.host_of)(&r.dst_mac)) else {
        let missing = [&r.src_mac, &r.dst_mac]
            .into_iter()
            .filter(|m| (net.host_of)(m).is_none())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" and ");
        return Admission {
            state: AdmissionState::Pending,
            reason: format!("VM {missing} is on no host yet"),
            path: Vec::new(),
            mbps: r.mbps,
        };
    };
    let admitted = |reason: String, path: Vec<String>| Admission {
        state: AdmissionState::Admitted,
        reason,
        path,
        mbps: r.mbps,
    };
    if hs == hd {
        return admitted(format!("both VMs on {hs}: no link crossed"), vec![hs]);
    }
    let in_force = route(net.rules, &hd, &hs, &r.dst_mac.to_ascii_lowercase());
    let left = |p: &[String]| bottleneck(p, net, booked);
    let (now_left, now_link) = left(&in_force);
    let book = |p: &[String], booked: &mut BTreeMap<Link, f64>| {
        for w in p.windows(2) {
            *booked.entry((w[0].clone(), w[1].clone())).or_default() += r.mbps;
        }
    };
    let short = format!(
        "the route in force {} has {now_left:.1} Mbit/s left (link {})",
        in_force.join("->"),
        now_link.map_or("?".into(), |(a, b)| format!("{a}->{b}"))
    );
    let rounds = held.map(|s| match now_left >= r.mbps - 1e-9 {
        true => {
            s.remove(&r.id);
            0
        }
        false => *s.entry(r.id.clone()).and_modify(|n| *n += 1).or_insert(1),
    });
    if now_left >= r.mbps - 1e-9 {
        book(&in_force, booked);
        return admitted(format!("{now_left:.1} Mbit/s left on its route"), in_force);
    }
    if let Some(n) = rounds.filter(|&n| n < SHORT_ROUNDS) {
        book(&in_force, booked);
        let reason = format!("{short}, {n} round(s) in a row; moved if it lasts {SHORT_ROUNDS}");
        return admitted(reason, in_force);
    }
    let best = alternatives(&hs, &hd, net.hosts)
        .filter(|p| net.reroute && *p != in_force)
        .map(|p| (left(&p), p))
        .max_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
    match best {
        Some(((l, _), p)) if l >= r.mbps - 1e-9 => {
            book(&p, booked);
            needs_route.push(r.id.clone());
            let reason = format!("{short}; {} has {l:.1}: planned there", p.join("->"));
            admitted(reason, p)
        }
        best => {
            let best = best.map_or(String::new(), |((l, link), p)| {
                let link = link.map_or("?".into(), |(a, b)| format!("{a}->{b}"));
                format!(
                    "; the best other path, {}, has {l:.1} (link {link})",
                    p.join("->")
                )
            });
            let fixed = if net.reroute {
                ""
            } else {
                " (adaptation off: routes stay)"
            };
            let reason = format!("{} Mbit/s asked: {short}{best}{fixed}", r.mbps);
            if rounds.is_some() {
                book(&in_force, booked);
                Admission {
                    state: AdmissionState::Degraded,
                    reason: format!("{reason}; still served first on {hs}'s uplink"),
                    path: in_force,
                    mbps: r.mbps,
                }
            } else {
                refused(r, reason)
            }
        }
    }
}

/// What `path` has left for reservations (its narrowest link, which it names).
fn bottleneck(path: &[String], net: &Network, booked: &BTreeMap<Link, f64>) -> (f64, Option<Link>) {
    let mut out = (f64::INFINITY, None);
    for w in path.windows(2) {
        let k = (w[0].clone(), w[1].clone());
        let left = (net.bw)(&k).unwrap_or(0.0) - booked.get(&k).copied().unwrap_or(0.0);
        if left < out.0 {
            out = (left, Some(k));
        }
    }
    out
}

/// The direct path and every path through one other host.
fn alternatives<'a>(
    hs: &'a str,
    hd: &'a str,
    hosts: &'a [String],
) -> impl Iterator<Item = Vec<String>> + 'a {
    std::iter::once(vec![hs.to_string(), hd.to_string()]).chain(
        (hosts.iter())
            .filter(move |h| *h != hs && *h != hd)
            .map(move |h| vec![hs.to_string(), h.clone(), hd.to_string()]),
    )
}

/// Mbit/s of the fleet's own best-effort traffic on each link: every demand but the
/// reserved pairs', along its route in force.
fn best_effort_load(
    demands: &[Demand],
    asked: &[ReservationRequest],
    rules: &Rules,
    host_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<Link, f64> {
    let reserved: BTreeSet<(String, String)> = (asked.iter())
        .map(|r| {
            (
                r.src_mac.to_ascii_lowercase(),
                r.dst_mac.to_ascii_lowercase(),
            )
        })
        .collect();
    let mut out: BTreeMap<Link, f64> = BTreeMap::new();
    for d in demands
        .iter()
        .filter(|d| !reserved.contains(&(d.src.clone(), d.dst.clone())))
    {
        let (Some(hs), Some(hd)) = (host_of(&d.src), host_of(&d.dst)) else {
            continue;
        };
        for w in route(rules, &hd, &hs, &d.dst).windows(2) {
            *out.entry((w[0].clone(), w[1].clone())).or_default() += d.mbps;
        }
    }
    out
}

/// Whether a verdict puts its reservation on the source's uplink.
fn enforced(a: &Admission) -> bool {
    matches!(a.state, AdmissionState::Admitted | AdmissionState::Degraded)
}

/// The demands with the enforced reservations on them: each reserved pair's demand
/// carries its rate (a floor of what VADAPT plans for it), a pair without traffic yet
/// gets a demand of its rate.
pub fn with_reservations(
    demands: Vec<Demand>,
    asked: &[ReservationRequest],
    verdicts: &BTreeMap<String, Admission>,
) -> Vec<Demand> {
    let mut rate: BTreeMap<(String, String), f64> = BTreeMap::new();
    for r in asked
        .iter()
        .filter(|r| verdicts.get(&r.id).is_some_and(enforced))
    {
        let k = (
            r.src_mac.to_ascii_lowercase(),
            r.dst_mac.to_ascii_lowercase(),
        );
        rate.insert(k, r.mbps);
    }
    let mut out = demands;
    for d in out.iter_mut() {
        if let Some(m) = rate.remove(&(d.src.clone(), d.dst.clone())) {
            d.reserved_mbps = m;
            d.mbps = d.mbps.max(m);
        }
    }
    out.extend(rate.into_iter().map(|((src, dst), m)| Demand {
        src,
        dst,
        mbps: m,
        reserved_mbps: m,
    }));
    out
}

/// Each host's enforced reservations (by its source VM's host): the complete set a
/// host gets in its desired state.
pub fn by_host(
    asked: &[ReservationRequest],
    verdicts: &BTreeMap<String, Admission>,
    host_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, Vec<ReservationSpec>> {
    let mut out: BTreeMap<String, Vec<ReservationSpec>> = BTreeMap::new();
    for r in asked
        .iter()
        .filter(|r| verdicts.get(&r.id).is_some_and(enforced))
    {
        if let Some(h) = host_of(&r.src_mac) {
            out.entry(h).or_default().push(r.spec());
        }
    }
    out
}

/// The decision-log events of what changed between `before` and `now`.
pub fn changes(
    before: &BTreeMap<String, Admission>,
    now: &BTreeMap<String, Admission>,
) -> Vec<Value> {
    let mut out: Vec<Value> = now
        .iter()
        .filter(|(id, a)| {
            before
                .get(*id)
                .is_none_or(|b| b.state != a.state || b.path != a.path)
        })
        .map(|(id, a)| {
            let event = match a.state {
                AdmissionState::Admitted if before.get(id).is_some_and(enforced) => {
                    "reservation_rerouted"
                }
                AdmissionState::Admitted => "reservation_admitted",
                AdmissionState::Refused => "reservation_refused",
                AdmissionState::Pending => "reservation_pending",
                AdmissionState::Degraded => "reservation_degraded",
            };
            json!({"event": event, "id": id, "mbps": a.mbps, "path": a.path, "reason": a.reason,
                "was": before.get(id).map(|b| json!({"state": b.state, "path": b.path}))})
        })
        .collect();
    out.extend(
        (before.iter())
            .filter(|(id, _)| !now.contains_key(*id))
            .map(|(id, a)| json!({"event": "reservation_ended", "id": id, "mbps": a.mbps})),
    );
    out
}

impl super::Controller {
    /// The leader's admission, once a round: reads the requests, decides, logs what
    /// changed, keeps what each host enforces (a change is a new desired state), and
    /// returns the demands with the reservations on them and, when an admitted one
    /// needs a route, why a plan is wanted now.
    #[cold]
    pub(super) fn reserve(
        &mut self,
        inv: &super::round::Inventory,
        current: &Rules,
        demands: Vec<Demand>,
    ) -> (Vec<Demand>, Option<String>) {
        let requests = match self.replica.reservations() {
            Ok(r) => r,
            // Logged by the read; last round's verdicts stand.
            Err(_) => {
                return (
                    with_reservations(demands, &self.asked, &self.admissions),
                    None,
                )
            }
        };
        let hosts: Vec<String> = self.cfg.hosts.iter().map(|h| h.name.clone()).collect();
        let tolerance = self.view.tolerance;
        let view = &self.view;
        let host_of = |m: &str| inv.host_of(&m.to_ascii_lowercase());
        let rules = self.desired.as_ref().unwrap_or(current);
        // Walked only while reservations are asked for: a fleet has thousands of demands.
        let yielding = match requests.asked.is_empty() {
            true => BTreeMap::new(),
            false => best_effort_load(&demands, &requests.asked, rules, &host_of),
        };
        let bw = |k: &Link| {
            let l = view.link(k)?;
            let ours = yielding.get(k).copied().unwrap_or(0.0);
            Some((l.bw_mbps(tolerance) + ours).min(view.nominal(k).0))
        };
        self.yielding.clone_from(&yielding);
        let net = Network {
            hosts: &hosts,
            rules,
            host_of: &host_of,
            bw: &bw,
            reroute: self.adapt,
            uplink: &|h: &str| inv.uplink_of.get(h).copied(),
        };
        let mut decided = admit(
            &requests.asked,
            &self.admissions,
            &net,
            &mut self.short_rounds,
        );
        for (id, why) in requests.unreadable {
            let a = Admission {
                state: AdmissionState::Refused,
                reason: why,
                path: Vec::new(),
                mbps: 0.0,
            };
            decided.verdicts.insert(id, a);
        }
        let enforce = by_host(&requests.asked, &decided.verdicts, &host_of);
        for e in changes(&self.admissions, &decided.verdicts) {
            self.event(e);
        }
        if enforce != self.enforce {
            self.enforce = enforce;
            self.desired_gen += 1;
        }
        self.asked = requests.asked;
        self.admissions = decided.verdicts;
        let why = (decided.needs_route.first()).map(|id| {
            let n = decided.needs_route.len();
            format!("reservation {id} needs a route ({n} in all)")
        });
        (
            with_reservations(demands, &self.asked, &self.admissions),
            why,
        )
    }

    /// The status's list: every request with its verdict.
    pub(super) fn reservations_status(&self) -> Vec<Value> {
        (self.asked.iter())
            .map(|r| {
                let a = self.admissions.get(&r.id);
                json!({"id": r.id, "src_mac": r.src_mac, "dst_mac": r.dst_mac, "mbps": r.mbps,
                    "state": a.map(|a| a.state), "reason": a.map(|a| &a.reason),
                    "path": a.map(|a| &a.path)})
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A1: &str = "02:00:00:00:01:01";
    const A2: &str = "02:00:00:00:01:02";
    const C1: &str = "02:00:00:00:03:01";
    const C2: &str = "02:00:00:00:03:02";

    fn ask(src: &str, dst: &str, mbps: f64, at: f64) -> ReservationRequest {
        ReservationRequest {
            id: ReservationRequest::id_of(src, dst),
            src_mac: src.into(),
            dst_mac: dst.into(),
            mbps,
            burst_bytes: None,
            created_unix_s: at,
        }
    }

    /// Hosts a, b, c; VMs 01:xx on a, 03:xx on c; every link 100 Mbit/s but a->c (`ac`).
    fn decide(
        asked: &[ReservationRequest],
        before: &BTreeMap<String, Admission>,
        ac: f64,
    ) -> Decided {
        rounds(asked, before, ac, &mut BTreeMap::new())
    }

    /// `decide` keeping the short rounds in `short`.
    fn rounds(
        asked: &[ReservationRequest],
        before: &BTreeMap<String, Admission>,
        ac: f64,
        short: &mut BTreeMap<String, u32>,
    ) -> Decided {
        shaped(asked, before, ac, None, short)
    }

    /// `rounds` with a's uplink shaped at `uplink_a` Mbit/s.
    fn shaped(
        asked: &[ReservationRequest],
        before: &BTreeMap<String, Admission>,
        ac: f64,
        uplink_a: Option<f64>,
        short: &mut BTreeMap<String, u32>,
    ) -> Decided {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let rules = Rules::new();
        let host_of = |m: &str| match &m[..14] {
            "02:00:00:00:01" => Some("a".to_string()),
            "02:00:00:00:03" => Some("c".to_string()),
            _ => None,
        };
        let bw = |k: &Link| {
            Some(if k == &("a".into(), "c".into()) {
                ac
            } else {
                100.0
            })
        };
        let net = Network {
            hosts: &hosts,
            rules: &rules,
            host_of: &host_of,
            bw: &bw,
            reroute: true,
            uplink: &|h: &str| uplink_a.filter(|_| h == "a"),
        };
        admit(asked, before, &net, short)
    }

    #[test]
    fn a_source_hosts_uplink_bounds_what_is_reserved_from_it_whatever_the_paths() {
        // a->c and a->b->c each have room for 40; a's uplink is shaped at 70.
        let first = ask(A1, C1, 40.0, 1.0);
        let second = ask(A2, C2, 40.0, 2.0);
        let local = ask(A1, A2, 40.0, 3.0);
        let asked = [first.clone(), second.clone(), local.clone()];
        let mut short = BTreeMap::new();
        let d = shaped(&asked, &BTreeMap::new(), 50.0, Some(70.0), &mut short);
        assert_eq!(state(&d, &first), (AdmissionState::Admitted, path("a->c")));
        let why = &d.verdicts[&second.id];
        assert_eq!(why.state, AdmissionState::Refused, "{why:?}");
        assert!(
            why.reason
                .contains("a's uplink is shaped at 70.0 Mbit/s and 40.0 of it"),
            "{}",
            why.reason
        );
        // Between two VMs of one host: no uplink crossed.
        assert_eq!(state(&d, &local).0, AdmissionState::Admitted);
        // Unknown uplink (a daemon that does not say): the links alone decide.
        let d = shaped(&asked, &BTreeMap::new(), 50.0, None, &mut short);
        assert_eq!(
            state(&d, &second),
            (AdmissionState::Admitted, path("a->b->c"))
        );
        // Held ones stay when the uplink shrinks below them (booked first).
        let d = shaped(&asked, &d.verdicts, 50.0, Some(30.0), &mut short);
        assert_eq!(state(&d, &first).0, AdmissionState::Admitted);
        assert_eq!(state(&d, &second).0, AdmissionState::Admitted);
    }

    fn state(d: &Decided, r: &ReservationRequest) -> (AdmissionState, Vec<String>) {
        let a = &d.verdicts[&r.id];
        (a.state, a.path.clone())
    }

    fn path(p: &str) -> Vec<String> {
        p.split("->").map(String::from).collect()
    }

    #[test]
    fn reservations_are_admitted_in_order_on_their_route_then_around_it_then_refused() {
        let first = ask(A1, C1, 60.0, 1.0);
        let second = ask(A2, C2, 60.0, 2.0);
        let third = ask(A1, C2, 60.0, 3.0);
        let d = decide(
            &[third.clone(), second.clone(), first.clone()],
            &BTreeMap::new(),
            100.0,
        );
        use AdmissionState::*;
        assert_eq!(state(&d, &first), (Admitted, path("a->c")));
        assert_eq!(state(&d, &second), (Admitted, path("a->b->c")));
        assert_eq!(d.needs_route, std::slice::from_ref(&second.id));
        assert_eq!(state(&d, &third).0, Refused);
        let why = &d.verdicts[&third.id].reason;
        assert!(
            why.contains("60 Mbit/s asked")
                && why.contains("a->c has 40.0")
                && why.contains("has 40.0 (link a->b)"),
            "{why}"
        );
        // Refused stays refused, though the first is gone and its link free.
        let d = decide(&[second.clone(), third.clone()], &d.verdicts, 100.0);
        assert_eq!(state(&d, &third).0, Refused);
        assert_eq!(state(&d, &second).0, Admitted);
    }

    #[test]
    fn a_reservation_its_link_no_longer_holds_moves_or_is_degraded_never_dropped() {
        use AdmissionState::*;
        let r = ask(A1, C1, 60.0, 1.0);
        let one = std::slice::from_ref(&r);
        let mut short = BTreeMap::new();
        let d = rounds(one, &BTreeMap::new(), 100.0, &mut short);
        // Short for fewer than SHORT_ROUNDS rounds: it stays; then it goes round b.
        let mut before = d.verdicts.clone();
        for n in 1..SHORT_ROUNDS {
            let dn = rounds(one, &before, 30.0, &mut short);
            assert_eq!(state(&dn, &r), (Admitted, path("a->c")), "round {n}");
            assert!(dn.verdicts[&r.id]
                .reason
                .contains(&format!("{n} round(s) in a row")));
            before = dn.verdicts;
        }
        let d2 = rounds(one, &before, 30.0, &mut short);
        assert_eq!(state(&d2, &r), (Admitted, path("a->b->c")), "moved round");
        assert_eq!(
            d2.needs_route,
            one.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
        );
        let ev = changes(&d.verdicts, &d2.verdicts);
        assert_eq!(ev[0]["event"], "reservation_rerouted");
        assert_eq!(ev[0]["was"]["path"], json!(["a", "c"]));
        // A short round between good ones starts the count again.
        let mut short = BTreeMap::new();
        let v1 = rounds(one, &d.verdicts, 30.0, &mut short).verdicts;
        let v2 = rounds(one, &v1, 100.0, &mut short).verdicts;
        let v3 = rounds(one, &v2, 30.0, &mut short);
        assert!(v3.verdicts[&r.id].reason.contains("1 round(s) in a row"));
        // Two on a->c; it falls to 50: the first (held first) goes round through b,
        // the second has room nowhere: degraded, still enforced, on its route.
        let big = ask(A2, C2, 100.0, 2.0);
        let both = [r.clone(), big.clone()];
        let mut short = BTreeMap::new();
        let mut v = rounds(&both, &BTreeMap::new(), 200.0, &mut short).verdicts;
        assert_eq!(v[&big.id].path, path("a->c"));
        for _ in 0..SHORT_ROUNDS {
            v = rounds(&both, &v, 50.0, &mut short).verdicts;
        }
        assert_eq!(
            (v[&r.id].state, v[&r.id].path.clone()),
            (Admitted, path("a->b->c"))
        );
        assert_eq!(
            (v[&big.id].state, v[&big.id].path.clone()),
            (Degraded, path("a->c"))
        );
        assert!(v[&big.id].reason.contains("served first on a's uplink"));
        let host_of = |_: &str| Some("a".to_string());
        assert_eq!(by_host(&both, &v, &host_of)["a"].len(), 2);
    }

    #[test]
    fn unknown_vms_wait_twice_reserved_pairs_and_bad_rates_are_refused() {
        use AdmissionState::*;
        let lost = ask(A1, "02:00:00:00:09:01", 10.0, 1.0);
        let mut twice = ask(A1, C1, 10.0, 3.0);
        twice.id = "other".into();
        let once = ask(A1, C1, 10.0, 2.0);
        let bad = ask(A2, C2, 0.0, 4.0);
        let d = decide(
            &[lost.clone(), twice.clone(), once.clone(), bad.clone()],
            &BTreeMap::new(),
            100.0,
        );
        assert_eq!(state(&d, &lost).0, Pending);
        assert!(d.verdicts[&lost.id]
            .reason
            .contains("02:00:00:00:09:01 is on no host"));
        assert_eq!(state(&d, &once).0, Admitted);
        assert_eq!(state(&d, &twice).0, Refused);
        assert_eq!(state(&d, &bad).0, Refused);
        assert!(
            d.verdicts[&bad.id].reason.contains("mbps 0"),
            "{}",
            d.verdicts[&bad.id].reason
        );
    }

    #[test]
    fn enforced_reservations_floor_their_demands_and_go_to_their_source_host() {
        let r = ask(A1, C1, 40.0, 1.0);
        let quiet = ask(A2, C2, 25.0, 2.0);
        let d = decide(&[r.clone(), quiet.clone()], &BTreeMap::new(), 100.0);
        let demands = vec![Demand {
            src: A1.into(),
            dst: C1.into(),
            mbps: 10.0,
            ..Default::default()
        }];
        let out = with_reservations(demands, &[r.clone(), quiet.clone()], &d.verdicts);
        let rates: Vec<(f64, f64)> = out.iter().map(|d| (d.mbps, d.reserved_mbps)).collect();
        assert_eq!(rates, [(40.0, 40.0), (25.0, 25.0)]);
        let host_of = |m: &str| (m < "02:00:00:00:02").then(|| "a".to_string());
        let hosts = by_host(&[r, quiet], &d.verdicts, &host_of);
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts["a"].len(), 2);
    }

    #[test]
    fn best_effort_traffic_of_the_fleets_vms_is_room_for_reservations_reserved_pairs_are_not() {
        let r = ask(A1, C1, 40.0, 1.0);
        let d = |src: &str, dst: &str, mbps| Demand {
            src: src.into(),
            dst: dst.into(),
            mbps,
            ..Default::default()
        };
        let demands = [d(A1, C1, 55.0), d(A2, C2, 30.0), d(C2, A2, 2.0)];
        let host_of = |m: &str| Some(if m < "02:00:00:00:02" { "a" } else { "c" }.to_string());
        let load = best_effort_load(&demands, std::slice::from_ref(&r), &Rules::new(), &host_of);
        let k = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(load[&k("a", "c")], 30.0);
        assert_eq!(load[&k("c", "a")], 2.0);
        assert_eq!(load.len(), 2);
    }
}
