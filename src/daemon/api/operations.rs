//! What the HTTP API reads and changes on a running daemon: its forwarding rules and
//! overlay links, its VM ports, its counters and its analysis views. Carried out on
//! the main lcore (never a worker). A change builds a new rule table and publishes it
//! atomically (RCU), so workers never wait and never see half a change; a refused
//! change (an `Err`) changes nothing.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use analysis::engine::AnalysisLoop;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::switch::counters::SwitchCounters;
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use serde_json::{json, Value};

use crate::cluster::{Applied, Desired, DesiredLink};
use crate::daemon::cluster::writes::Writes;
use crate::daemon::cluster::{unix_now, EtcdStatus};
use crate::daemon::config::parse_mac;
use crate::daemon::qos;
use crate::daemon::vm_ports::{Change, Ticket, VmPortControl};
use dataplane::switch::qos::{QosPolicy, Reservation};

/// Who this daemon is: its host name and underlay address. Its links (peers) live in
/// the forwarding table and its VM ports in `VmPortControl`, which both change.
pub struct Identity {
    pub host: String,
    /// The daemon's own underlay address (peers reach it there).
    pub underlay_ip: String,
}

/// The daemon's state as the API sees it.
pub struct Operations<'v> {
    pub(super) fib: Arc<ArcSwap<Fib>>,
    me: Identity,
    pub(super) vms: &'v RefCell<dyn VmPortControl + 'v>,
    /// VM locations learned from announcements (`locations`).
    pub(super) locations: RefCell<super::locations::Locations>,
    /// The etcd session's state, with `[etcd]`.
    etcd: Option<Arc<EtcdStatus>>,
    /// The way to etcd for the operator's writes (`POST /reservations`), with `[etcd]`.
    etcd_writes: Option<Writes>,
    /// The uplink's capacity learnt from Wren (`crate::daemon::uplink`), Mbit/s.
    learnt_uplink: std::cell::Cell<Option<f64>>,
    /// What the uplink's learner has seen, once it took a reading.
    uplink_evidence: std::cell::Cell<Option<crate::daemon::uplink::Evidence>>,
}

pub(crate) fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A field of a JSON request body, as a string.
fn field<'a>(body: &'a Value, k: &str) -> Result<&'a str> {
    body.get(k)
        .and_then(Value::as_str)
        .with_context(|| format!("the body needs \"{k}\""))
}

impl<'v> Operations<'v> {
    pub fn new(
        me: Identity,
        fib: Arc<ArcSwap<Fib>>,
        vms: &'v RefCell<dyn VmPortControl + 'v>,
    ) -> Self {
        Self {
            fib,
            me,
            vms,
            locations: RefCell::default(),
            etcd: None,
            etcd_writes: None,
            learnt_uplink: std::cell::Cell::new(None),
            uplink_evidence: std::cell::Cell::new(None),
        }
    }

    /// How long learned locations hold and forwarding pointers count.
    pub fn with_lifetimes(self, l: super::locations::Lifetimes) -> Self {
        self.locations.borrow_mut().lifetimes = l;
        self
    }

    /// Reports the etcd session's state in `/stats` and `/metrics`.
    pub fn with_etcd(mut self, status: Arc<EtcdStatus>) -> Self {
        self.etcd = Some(status);
        self
    }

    pub fn etcd(&self) -> Option<&EtcdStatus> {
        self.etcd.as_deref()
    }

    /// Writes reservations in etcd (`POST`/`DELETE /reservations`).
    pub(crate) fn with_etcd_writes(mut self, writes: Writes) -> Self {
        self.etcd_writes = Some(writes);
        self
    }

    pub(crate) fn etcd_writes(&self) -> Option<&Writes> {
        self.etcd_writes.as_ref()
    }

    /// This daemon's host name.
    pub fn host(&self) -> &str {
        &self.me.host
    }

    /// The MACs of this host's VMs (plugged ports).
    fn local_vm_macs(&self) -> Vec<String> {
        self.vms
            .borrow()
            .list()
            .iter()
            .map(|v| mac_str(&v.2))
            .collect()
    }

    pub(super) fn dest_str(&self, fib: &Fib, d: &Dest) -> String {
        match d {
            Dest::Vm(i) => format!(
                "vm:{}",
                self.vms
                    .borrow()
                    .list()
                    .into_iter()
                    .find(|v| v.0 == i.0)
                    .map_or_else(|| "?".to_string(), |v| v.1)
            ),
            Dest::Peer(p) => format!(
                "peer:{}",
                fib.peers().get(p.0).map_or("?", |x| x.name.as_str())
            ),
        }
    }

    fn parse_dest(&self, fib: &Fib, to: &str) -> Result<Dest> {
        if let Some(n) = to.strip_prefix("vm:") {
            if let Some(v) = self.vms.borrow().list().into_iter().find(|v| v.1 == n) {
                return Ok(Dest::Vm(VmSlot(v.0)));
            }
            bail!("no VM port {n:?}");
        }
        if let Some(n) = to.strip_prefix("peer:") {
            if let Some(i) = fib.peer_index(n) {
                return Ok(Dest::Peer(i));
            }
            bail!("no peer {n:?} (links: GET /links)");
        }
        bail!("\"to\" must be \"vm:PORT\" or \"peer:NAME\", got {to:?}")
    }

    /// `GET /health`.
    pub fn health(&self) -> Value {
        json!({"ok": true, "host": self.me.host})
    }

    /// `GET /rules`: every rule, by destination MAC.
    #[cold]
    pub fn rules(&self) -> Value {
        let fib = self.fib.load();
        let mut rules: Vec<Value> = fib
            .iter()
            .map(|(m, d)| json!({"dst_mac": mac_str(m), "to": self.dest_str(&fib, d)}))
            .collect();
        rules.sort_by_key(|r| r["dst_mac"].as_str().unwrap_or_default().to_string());
        json!({"ok": true, "host": self.me.host, "rules": rules})
    }

    /// `PUT /rules/{mac}` with `{"to":"vm:PORT"|"peer:NAME"}`: adds or replaces a rule.
    #[cold]
    pub fn set_rule(&self, mac: &str, body: &Value) -> Result<Value> {
        let to = body
            .get("to")
            .and_then(Value::as_str)
            .context("the body needs \"to\": \"vm:PORT\" or \"peer:NAME\"")?;
        let mac = parse_mac(mac)?;
        let mut next = Fib::clone(&self.fib.load());
        let dest = self.parse_dest(&next, to)?;
        let old = next.insert(mac, dest);
        let n = next.len();
        let replaced = old.map(|d| self.dest_str(&next, &d));
        log::info!(
            "api: rule {} -> {}",
            mac_str(&mac),
            self.dest_str(&next, &dest)
        );
        self.fib.store(Arc::new(next));
        Ok(json!({"ok": true, "replaced": replaced, "rules": n}))
    }

    /// `DELETE /rules/{mac}`.
    #[cold]
    pub fn del_rule(&self, mac: &str) -> Result<Value> {
        let mac = parse_mac(mac)?;
        let mut next = Fib::clone(&self.fib.load());
        if next.remove(&mac).is_none() {
            bail!("no rule for {}", mac_str(&mac));
        }
        let n = next.len();
        self.fib.store(Arc::new(next));
        log::info!("api: rule {} removed", mac_str(&mac));
        Ok(json!({"ok": true, "rules": n}))
    }

    /// `GET /stats`: the switch's counters summed over the workers, and with `[etcd]`
    /// the session's state.
    #[cold]
    pub fn stats(&self, counters: &[SwitchCounters]) -> Value {
        let uplink = (self.fib.load().qos()).and_then(|p| p.uplink().map(|u| u.mbps()));
        let mut v = json!({"ok": true, "host": self.me.host,
            "switch": SwitchCounters::snapshot_all(counters), "uplink_mbps": uplink});
        if let Some(e) = &self.etcd {
            v["etcd"] = e.to_json();
        }
        v
    }

    /// `GET /reservations`: the uplink's capacity, the per-VM best-effort cap and the
    /// reservations in force (their counters are in `/stats` and `/metrics`).
    #[cold]
    pub fn reservations(&self) -> Value {
        let fib = self.fib.load();
        let mut v = qos::to_json(fib.qos().map(|p| &**p));
        let learnt = self.learnt_uplink.get();
        v["uplink_source"] = match (fib.qos().and_then(|p| p.uplink()), learnt) {
            (None, _) => Value::Null,
            (Some(_), Some(_)) => json!("wren"),
            (Some(_), None) => json!("configured"),
        };
        v["uplink_learnt_mbps"] = json!(learnt);
        v["uplink_learning"] = json!(self.uplink_evidence.get());
        v["ok"] = json!(true);
        v["host"] = json!(self.me.host);
        v
    }

    /// Shapes the uplink at `shaped_mbps`, its capacity learnt from Wren being
    /// `capacity_mbps` (`crate::daemon::uplink`): the policy in force keeps its
    /// reservations and per-VM cap (the desired state's next ones keep this uplink).
    #[cold]
    pub fn learn_uplink(&self, capacity_mbps: f64, shaped_mbps: f64) -> Result<()> {
        let current = self.fib.load();
        let base = (current.qos()).map_or_else(QosPolicy::default, |p| QosPolicy::clone(p));
        let rate = dataplane::switch::qos::Rate::from_mbps(shaped_mbps, None)?;
        let mut next = Fib::clone(&current);
        next.set_qos(Some(base.with_uplink(Some(rate))?));
        self.fib.store(Arc::new(next));
        self.learnt_uplink.set(Some(capacity_mbps));
        Ok(())
    }

    /// What the uplink's learner has seen (`GET /reservations`).
    pub fn note_uplink_evidence(&self, e: crate::daemon::uplink::Evidence) {
        self.uplink_evidence.set(Some(e));
    }

    /// `GET /links`: the overlay links (peers) and how many rules use each.
    #[cold]
    pub fn links(&self) -> Value {
        let fib = self.fib.load();
        let links: Vec<Value> = fib
            .peers()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let rules = fib
                    .iter()
                    .filter(|(_, d)| **d == Dest::Peer(PeerIx(i)))
                    .count();
                json!({"name": p.name, "ip": Ipv4Addr::from(p.ip).to_string(),
                    "mac": p.mac.as_ref().map(mac_str), "rules": rules})
            })
            .collect();
        json!({"ok": true, "host": self.me.host, "underlay_ip": self.me.underlay_ip,
            "links": links})
    }

    /// `PUT /links/{name}` with `{"ip":IP,"mac":M?}`: adds a link or changes its address.
    #[cold]
    pub fn set_link(&self, name: &str, body: &Value) -> Result<Value> {
        let ip: Ipv4Addr = field(body, "ip")?
            .parse()
            .context("\"ip\" must be an IPv4 address")?;
        let mac = match body.get("mac").and_then(Value::as_str) {
            Some(m) => Some(parse_mac(m)?),
            None => None,
        };
        let mut next = Fib::clone(&self.fib.load());
        next.set_peer(PeerSpec {
            name: name.to_string(),
            ip: ip.octets(),
            mac,
        })?;
        let n = next.peers().len();
        self.fib.store(Arc::new(next));
        log::info!("api: link {name} -> {ip}");
        Ok(json!({"ok": true, "links": n}))
    }

    /// `DELETE /links/{name}`: refused while rules use the link.
    #[cold]
    pub fn del_link(&self, name: &str) -> Result<Value> {
        let mut next = Fib::clone(&self.fib.load());
        next.remove_peer(name)?;
        let n = next.peers().len();
        self.fib.store(Arc::new(next));
        log::info!("api: link {name} removed");
        Ok(json!({"ok": true, "links": n}))
    }

    /// `GET /vms`: the plugged VM ports.
    #[cold]
    pub fn vms(&self) -> Value {
        let vms: Vec<Value> = self
            .vms
            .borrow()
            .list()
            .into_iter()
            .map(|(slot, port, mac, devargs)| {
                json!({"port": port, "mac": mac_str(&mac), "slot": slot, "devargs": devargs})
            })
            .collect();
        json!({"ok": true, "host": self.me.host, "vms": vms})
    }

    /// `PUT /vms/{port}` with `{"devargs":D,"mac":M}`: starts opening a VM port live;
    /// once open it is served on every worker, then the VM's rule points at it. With
    /// `"incoming": true` (a VM migrating here) the rule stays where it is until the VM
    /// announces itself on the port (`locations`). The
    /// answer comes from `vm_changes` with the ticket.
    #[cold]
    pub fn plug_vm(&self, port: &str, body: &Value) -> Result<Ticket> {
        let (devargs, mac) = match (field(body, "devargs"), field(body, "mac")) {
            (Ok(d), Ok(m)) => (d, parse_mac(m)?),
            _ => bail!("the body needs \"devargs\" and \"mac\""),
        };
        let secured = match body.get("port_security") {
            None => true,
            Some(v) => v
                .as_bool()
                .context("\"port_security\" must be true or false")?,
        };
        let incoming = match body.get("incoming") {
            None => false,
            Some(v) => v.as_bool().context("\"incoming\" must be true or false")?,
        };
        self.vms
            .borrow_mut()
            .plug(port, devargs, mac, secured, incoming)
    }

    /// `DELETE /vms/{port}`: withdraws its rules, takes its queues back from every
    /// worker, then starts removing the device (answered as `plug_vm`).
    #[cold]
    pub fn unplug_vm(&self, port: &str) -> Result<Ticket> {
        self.vms.borrow_mut().unplug(port)
    }

    /// The VM port plugs and unplugs finished since the last call, each with its
    /// answer.
    pub fn vm_changes(&self) -> Vec<(Ticket, Result<Value>)> {
        let done = self.vms.borrow_mut().finished();
        done.into_iter()
            .map(|(t, r)| {
                let answer = r.map(|c| match c {
                    Change::Plugged {
                        port,
                        slot,
                        device_ms,
                    } => json!({"ok": true, "port": port, "slot": slot, "device_ms": device_ms}),
                    Change::Unplugged {
                        port,
                        rules,
                        device_ms,
                    } => json!({"ok": true, "port": port, "rules_withdrawn": rules,
                        "device_ms": device_ms}),
                });
                (t, answer)
            })
            .collect()
    }

    /// `GET /paths` (engine "wren": its path views) and `GET /matrix` (engine "vttif":
    /// its rows, its damped topology), with this host's VMs.
    #[cold]
    pub fn view(&self, analysis: &AnalysisLoop, engine: &str) -> Result<Value> {
        let view = analysis
            .view(engine)
            .with_context(|| format!("{engine} is not running (monitor.enabled = false)"))?;
        Ok(json!({
            "ok": true,
            "host": self.me.host,
            "local_vms": self.local_vm_macs(),
            engine: view,
        }))
    }

    /// `GET /paths/{src}/{dst}`: Wren's view of one path and how its answer follows
    /// from the trains behind it (as `wrenvnet analyze --explain` gives it offline).
    #[cold]
    pub fn explain_path(&self, analysis: &AnalysisLoop, src: &str, dst: &str) -> Option<Value> {
        let mut v = analysis.explain("wren", src, dst)?;
        v["ok"] = json!(true);
        v["host"] = json!(self.me.host);
        Some(v)
    }

    /// A host's desired state from etcd (`crate::cluster::Desired`), in one RCU
    /// publication: its links added or updated (never removed), its rules to peers set,
    /// every other rule to a peer removed, rules to this host's VMs untouched. Each
    /// refused link or rule is listed with its reason and changes nothing (the rule in
    /// force for that MAC stays). Idempotent: a state already in force publishes nothing.
    #[cold]
    pub fn apply_desired(&self, d: &Desired) -> Applied {
        let current = self.fib.load();
        let mut next = Fib::clone(&current);
        let mut errors = Vec::new();
        for (name, link) in &d.links {
            if let Err(e) = desired_link(&mut next, name, link) {
                errors.push(format!("link {name}: {e:#}"));
            }
        }
        let (wanted, keep) = self.desired_rules(&next, d, &mut errors);
        let stale: Vec<[u8; 6]> = next
            .iter()
            .filter(|(m, dest)| {
                matches!(dest, Dest::Peer(_)) && !wanted.contains_key(*m) && !keep.contains(*m)
            })
            .map(|(m, _)| *m)
            .collect();
        for m in &stale {
            next.remove(m);
        }
        for (m, p) in &wanted {
            next.insert(*m, Dest::Peer(*p));
        }
        let reserved = d
            .reservations
            .as_deref()
            .and_then(|list| desired_reservations(&mut next, list, &mut errors));
        let same_qos = match (next.qos(), current.qos()) {
            (Some(a), Some(b)) => a.same_as(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let changed = next.peers() != current.peers()
            || next.len() != current.len()
            || !same_qos
            || next
                .iter()
                .any(|(m, dest)| current.lookup(m) != Some(*dest));
        if changed {
            self.fib.store(Arc::new(next));
        }
        log::info!(
            "etcd: desired revision {}: {} rule(s) to peers, {} removed, {}{} refused{}",
            d.revision,
            wanted.len(),
            stale.len(),
            reserved.map_or_else(String::new, |n| format!("{n} reservation(s), ")),
            errors.len(),
            if changed { "" } else { " (already in force)" }
        );
        Applied {
            revision: d.revision,
            at_unix_s: unix_now(),
            errors,
        }
    }

    /// The desired rules that can be set (MAC -> link), and the MACs of the refused
    /// ones, whose rules in force stay.
    fn desired_rules(
        &self,
        fib: &Fib,
        d: &Desired,
        errors: &mut Vec<String>,
    ) -> (BTreeMap<[u8; 6], PeerIx>, BTreeSet<[u8; 6]>) {
        let (mut wanted, mut keep) = (BTreeMap::new(), BTreeSet::new());
        for (mac, to) in &d.rules {
            let m = match parse_mac(mac) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("rule {mac}: {e:#}"));
                    continue;
                }
            };
            let held = self.held_location(&m).filter(|at| at != to);
            let refused = match (fib.lookup(&m), to.strip_prefix("peer:")) {
                (Some(Dest::Vm(_)), _) => "a VM of this host: its rule is the daemon's".into(),
                (_, _) if held.is_some() => format!(
                    "the VM announced itself at {} since: that rule stays",
                    held.unwrap_or_default()
                ),
                (_, None) => format!("{to:?} is not \"peer:NAME\""),
                (_, Some(name)) => match fib.peer_index(name) {
                    Some(p) => {
                        wanted.insert(m, p);
                        continue;
                    }
                    None => format!("no link {name:?}"),
                },
            };
            errors.push(format!("rule {mac}: {refused}"));
            keep.insert(m);
        }
        (wanted, keep)
    }
}

/// Sets the desired reservations in `fib`'s policy (its capacities kept): each one
/// refused (bad MAC, rate or burst, a pair twice) is listed and left out. Returns how
/// many are in force, or `None` when the whole set was refused (the set in force stays).
fn desired_reservations(
    fib: &mut Fib,
    list: &[crate::cluster::ReservationSpec],
    errors: &mut Vec<String>,
) -> Option<usize> {
    let mut ok: Vec<Reservation> = Vec::with_capacity(list.len());
    for spec in list {
        let name = qos::name(spec);
        match qos::reservation(spec) {
            Ok(r) if ok.iter().any(|o| o.src == r.src && o.dst == r.dst) => {
                errors.push(format!("reservation {name}: the pair is reserved twice"));
            }
            Ok(r) => ok.push(r),
            Err(e) => errors.push(format!("reservation {name}: {e:#}")),
        }
    }
    let base = fib
        .qos()
        .map_or_else(QosPolicy::default, |p| QosPolicy::clone(p));
    match base.with_reservations(ok) {
        Ok(p) => {
            let n = p.reservations().len();
            if p.oversubscribed() {
                errors.push(format!(
                    "reservations: {} Mbit/s reserved, more than the uplink's {} Mbit/s \
                     (enforced; best-effort gets nothing)",
                    p.reserved_bps() as f64 / 1e6,
                    p.uplink().map_or(0.0, |u| u.mbps())
                ));
            }
            fib.set_qos(Some(p));
            Some(n)
        }
        Err(e) => {
            errors.push(format!("reservations: {e}"));
            None
        }
    }
}

/// Adds link `name` or updates its address, unless it is so already.
fn desired_link(fib: &mut Fib, name: &str, link: &DesiredLink) -> Result<()> {
    let spec = PeerSpec {
        name: name.to_string(),
        ip: link
            .ip
            .parse::<Ipv4Addr>()
            .context("\"ip\" must be an IPv4 address")?
            .octets(),
        mac: link.mac.as_deref().map(parse_mac).transpose()?,
    };
    if fib.peer_index(name).map(|i| &fib.peers()[i.0]) != Some(&spec) {
        fib.set_peer(spec)?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One VM port "vm" in slot 0 (no device: nothing is plugged in these tests).
    pub struct OneVm;

    impl VmPortControl for OneVm {
        fn list(&self) -> Vec<(usize, String, [u8; 6], String)> {
            vec![(0, "vm".into(), VM, String::new())]
        }
        fn plug(&mut self, _: &str, _: &str, _: [u8; 6], _: bool, _: bool) -> Result<Ticket> {
            bail!("no devices in unit tests")
        }
        fn finished(&mut self) -> Vec<(Ticket, Result<Change>)> {
            Vec::new()
        }
        fn unplug(&mut self, _: &str) -> Result<Ticket> {
            bail!("no devices in unit tests")
        }
        fn arrived(&mut self) -> Vec<(usize, [u8; 6])> {
            Vec::new()
        }
    }

    pub const VM: [u8; 6] = [2, 0, 0, 0, 0xaa, 1];

    /// The VM's rule, links "b" and "c", a rule to b.
    pub fn table() -> Arc<ArcSwap<Fib>> {
        let mut fib = Fib::default();
        fib.insert(VM, Dest::Vm(VmSlot(0)));
        for (name, ip) in [("b", [198, 18, 0, 2]), ("c", [198, 18, 0, 3])] {
            fib.set_peer(PeerSpec {
                name: name.into(),
                ip,
                mac: None,
            })
            .unwrap();
        }
        fib.insert([2, 0, 0, 0, 0xbb, 1], Dest::Peer(PeerIx(0)));
        Arc::new(ArcSwap::from_pointee(fib))
    }

    /// Host "a" with the VM port of `vms` and the table `fib`.
    pub fn host_a<'v>(vms: &'v RefCell<OneVm>, fib: &Arc<ArcSwap<Fib>>) -> Operations<'v> {
        let me = Identity {
            host: "a".into(),
            underlay_ip: "198.18.0.1".into(),
        };
        Operations::new(me, Arc::clone(fib), vms)
    }

    pub fn desired(json: &str) -> Desired {
        serde_json::from_str(json).unwrap()
    }

    pub fn rules(ops: &Operations<'_>) -> Vec<(String, String)> {
        ops.rules()["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dst_mac"].as_str().unwrap().into(),
                    r["to"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn desired_rules_replace_the_rules_to_peers_and_leave_the_vms_alone() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let ops = host_a(&vms, &fib);
        let d = desired(
            r#"{"revision":4,"rules":{"02:00:00:00:cc:01":"peer:c","02:00:00:00:dd:01":"peer:d"},
                "links":{"d":{"ip":"198.18.0.4","mac":"02:00:00:00:ff:04"}}}"#,
        );
        let a = ops.apply_desired(&d);
        assert_eq!((a.revision, a.errors.len()), (4, 0), "{:?}", a.errors);
        let want = vec![
            ("02:00:00:00:aa:01".to_string(), "vm:vm".to_string()),
            ("02:00:00:00:cc:01".into(), "peer:c".into()),
            ("02:00:00:00:dd:01".into(), "peer:d".into()),
        ];
        assert_eq!(rules(&ops), want);
        // Links stay (b is unused now); the same state again publishes nothing.
        assert_eq!(fib.load().peers().len(), 3);
        let before = fib.load_full();
        assert!(ops.apply_desired(&d).errors.is_empty());
        assert!(Arc::ptr_eq(&before, &fib.load_full()));
    }

    #[test]
    fn refused_rules_are_listed_and_keep_the_rule_in_force() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let ops = host_a(&vms, &fib);
        let d = desired(
            r#"{"revision":5,"rules":{"02:00:00:00:bb:01":"peer:nowhere",
                "02:00:00:00:aa:01":"peer:c","zz":"peer:c","02:00:00:00:cc:01":"vm:vm"},
                "links":{"e":{"ip":"198.18.0.2"}}}"#,
        );
        let a = ops.apply_desired(&d);
        let errors = a.errors.join("\n");
        for reason in [
            "link e: address 198.18.0.2 is already link \"b\"",
            "rule 02:00:00:00:bb:01: no link \"nowhere\"",
            "rule 02:00:00:00:aa:01: a VM of this host",
            "rule zz: bad MAC",
            "rule 02:00:00:00:cc:01: \"vm:vm\" is not \"peer:NAME\"",
        ] {
            assert!(errors.contains(reason), "{reason} not in {errors}");
        }
        let want = vec![
            ("02:00:00:00:aa:01".to_string(), "vm:vm".to_string()),
            ("02:00:00:00:bb:01".into(), "peer:b".into()),
        ];
        assert_eq!(rules(&ops), want);
    }

    #[test]
    fn desired_reservations_replace_those_in_force_keep_the_capacities_and_list_refusals() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let mut t = Fib::clone(&fib.load());
        let uplink = dataplane::switch::qos::Rate::new(100_000_000);
        t.set_qos(Some(QosPolicy::new(Some(uplink), None, vec![], 2).unwrap()));
        fib.store(Arc::new(t));
        let ops = host_a(&vms, &fib);
        assert_eq!(ops.reservations()["active"], false);
        let d = desired(
            r#"{"revision":6,"rules":{"02:00:00:00:bb:01":"peer:b"},"links":{},
                "reservations":[
                  {"src_mac":"02:00:00:00:aa:01","dst_mac":"02:00:00:00:bb:01","mbps":40},
                  {"src_mac":"02:00:00:00:aa:01","dst_mac":"02:00:00:00:bb:01","mbps":10},
                  {"src_mac":"02:00:00:00:aa:01","dst_mac":"zz","mbps":10},
                  {"src_mac":"02:00:00:00:aa:01","dst_mac":"02:00:00:00:cc:01","mbps":0},
                  {"src_mac":"02:00:00:00:aa:01","dst_mac":"02:00:00:00:dd:01","mbps":5,
                   "burst_bytes":20000}]}"#,
        );
        let a = ops.apply_desired(&d);
        let errors = a.errors.join("\n");
        for reason in [
            "reservation 02:00:00:00:aa:01->02:00:00:00:bb:01: the pair is reserved twice",
            "reservation 02:00:00:00:aa:01->zz: dst_mac: bad MAC",
            "reservation 02:00:00:00:aa:01->02:00:00:00:cc:01: mbps 0",
        ] {
            assert!(errors.contains(reason), "{reason} not in {errors}");
        }
        assert_eq!(a.errors.len(), 3, "{errors}");
        let r = ops.reservations();
        assert_eq!(r["active"], true);
        assert_eq!(r["uplink"]["mbps"], 100.0);
        assert_eq!(r["workers"], 2);
        assert_eq!(r["reserved_mbps"], 45.0);
        let list = r["reservations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["dst_mac"], "02:00:00:00:bb:01");
        assert_eq!(list[0]["burst_bytes"], 65536);
        assert_eq!(list[1]["burst_bytes"], 20000);
        // The same state again publishes nothing; a record without reservations keeps
        // them; an empty list removes them (the capacities stay).
        let before = fib.load_full();
        assert!(ops.apply_desired(&d).errors.len() == 3);
        assert!(Arc::ptr_eq(&before, &fib.load_full()));
        let old = desired(r#"{"revision":7,"rules":{"02:00:00:00:bb:01":"peer:b"},"links":{}}"#);
        assert!(ops.apply_desired(&old).errors.is_empty());
        assert!(Arc::ptr_eq(&before, &fib.load_full()));
        let none = desired(
            r#"{"revision":8,"rules":{"02:00:00:00:bb:01":"peer:b"},"links":{},"reservations":[]}"#,
        );
        assert!(ops.apply_desired(&none).errors.is_empty());
        let r = ops.reservations();
        assert_eq!(
            (r["active"].clone(), r["uplink"]["mbps"].clone()),
            (json!(false), json!(100.0))
        );
        // More than the uplink: enforced, and said so.
        let over = desired(
            r#"{"revision":9,"rules":{"02:00:00:00:bb:01":"peer:b"},"links":{},
                "reservations":[{"src_mac":"02:00:00:00:aa:01","dst_mac":"02:00:00:00:bb:01","mbps":150}]}"#,
        );
        let a = ops.apply_desired(&over);
        assert!(
            a.errors[0].contains("more than the uplink's 100 Mbit/s"),
            "{:?}",
            a.errors
        );
        assert_eq!(ops.reservations()["oversubscribed"], true);
    }
}
