//! What the HTTP API reads and changes on a running daemon: its forwarding rules and
//! overlay links, its VM ports, its counters and its analysis views. Carried out on
//! the main lcore (never a worker). A change builds a new rule table and publishes it
//! atomically (RCU), so workers never wait and never see half a change; a refused
//! change (an `Err`) changes nothing.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::Arc;

use analysis::engine::AnalysisLoop;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::switch::counters::SwitchCounters;
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use serde_json::{json, Value};

use crate::daemon::config::parse_mac;
use crate::daemon::vm_ports::VmPortControl;

/// Who this daemon is: its host name and underlay address. Its links (peers) live in
/// the forwarding table and its VM ports in `VmPortControl`, which both change.
pub struct Identity {
    pub host: String,
    /// The daemon's own underlay address (peers reach it there).
    pub underlay_ip: String,
}

/// The daemon's state as the API sees it.
pub struct Operations<'v> {
    fib: Arc<ArcSwap<Fib>>,
    me: Identity,
    vms: &'v RefCell<dyn VmPortControl + 'v>,
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
        Self { fib, me, vms }
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

    fn dest_str(&self, fib: &Fib, d: &Dest) -> String {
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

    /// `GET /stats`: the switch's counters summed over the workers.
    #[cold]
    pub fn stats(&self, counters: &[SwitchCounters]) -> Value {
        json!({"ok": true, "host": self.me.host, "switch": SwitchCounters::snapshot_all(counters)})
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

    /// `PUT /vms/{port}` with `{"devargs":D,"mac":M}`: opens a VM port live, serves it on
    /// every worker, then points the VM's rule at it.
    #[cold]
    pub fn plug_vm(&self, port: &str, body: &Value) -> Result<Value> {
        let (devargs, mac) = match (field(body, "devargs"), field(body, "mac")) {
            (Ok(d), Ok(m)) => (d, parse_mac(m)?),
            _ => bail!("the body needs \"devargs\" and \"mac\""),
        };
        let slot = self.vms.borrow_mut().plug(port, devargs, mac)?;
        Ok(json!({"ok": true, "port": port, "slot": slot}))
    }

    /// `DELETE /vms/{port}`: withdraws its rules, takes its queues back from every
    /// worker, removes the device.
    #[cold]
    pub fn unplug_vm(&self, port: &str) -> Result<Value> {
        let rules = self.vms.borrow_mut().unplug(port)?;
        Ok(json!({"ok": true, "port": port, "rules_withdrawn": rules}))
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
}
