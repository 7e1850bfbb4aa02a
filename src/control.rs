//! The daemon's local control interface: a unix socket speaking one JSON object per
//! line. Served from the main lcore between stats ticks (never the workers); a change
//! builds a new rule table and publishes it atomically (RCU), so workers never wait
//! and never see half a change. Bad requests get `{"ok":false,"error":...}` and change
//! nothing.
//!
//! Requests: `{"op":"rules"}`, `{"op":"add_rule","dst_mac":M,"to":"vm:PORT"|"peer:NAME"}`,
//! `{"op":"del_rule","dst_mac":M}`, `{"op":"links"}`, `{"op":"set_link","name":N,"ip":IP,
//! "mac":M?}` (add a link, or change its address), `{"op":"del_link","name":N}` (refused
//! while rules use it), `{"op":"vms"}`, `{"op":"plug_vm","port":N,"devargs":D,"mac":M}`
//! (a VM port added live: opened, served by every worker, then the VM's rule points at
//! it), `{"op":"unplug_vm","port":N}` (its rules withdrawn, its queues taken back from
//! every worker, the device removed), `{"op":"stats"}`, `{"op":"paths"}` (Wren's path
//! views), `{"op":"matrix"}` (VTTIF's matrix rows, this host's VMs, its damped topology).

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use analysis::engine::AnalysisLoop;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::switch::counters::SwitchCounters;
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use serde_json::{json, Value};

use crate::config::parse_mac;
use crate::vm_ports::VmPortControl;

/// Who this daemon is: its host name and underlay address. Its links (peers) live in
/// the forwarding table and its VM ports in `VmPortControl`, which both change.
pub struct Identity {
    pub host: String,
    /// The daemon's own underlay address (peers reach it there).
    pub underlay_ip: String,
}

/// What the control interface needs to know and change.
pub struct Control<'v> {
    /// The JSON-lines socket, when configured (the HTTP API may be the only way in).
    listener: Option<(UnixListener, PathBuf)>,
    fib: Arc<ArcSwap<Fib>>,
    me: Identity,
    vms: &'v RefCell<dyn VmPortControl + 'v>,
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl<'v> Control<'v> {
    #[cold]
    pub fn bind(
        path: Option<&Path>,
        me: Identity,
        fib: Arc<ArcSwap<Fib>>,
        vms: &'v RefCell<dyn VmPortControl + 'v>,
    ) -> Result<Self> {
        let listener = match path {
            Some(path) => Some((bind_unix(path)?, path.to_path_buf())),
            None => None,
        };
        Ok(Self {
            listener,
            fib,
            me,
            vms,
        })
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

    /// This daemon's host name.
    pub fn host(&self) -> &str {
        &self.me.host
    }

    /// Serves every pending connection (one request line each).
    #[cold]
    pub fn poll(&self, counters: &[SwitchCounters], analysis: &AnalysisLoop) {
        let Some((listener, _)) = &self.listener else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            let reply = match reader.read_line(&mut line) {
                Ok(_) => self.handle(line.trim(), counters, analysis),
                Err(e) => json!({"ok": false, "error": format!("cannot read the request: {e}")}),
            };
            let mut w = &stream;
            let _ = writeln!(w, "{reply}");
        }
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

    fn handle(&self, line: &str, counters: &[SwitchCounters], analysis: &AnalysisLoop) -> Value {
        match self.try_handle(line, counters, analysis) {
            Ok(v) => v,
            Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
        }
    }

    fn try_handle(
        &self,
        line: &str,
        counters: &[SwitchCounters],
        analysis: &AnalysisLoop,
    ) -> Result<Value> {
        let req: Value = serde_json::from_str(line).context("request is not JSON")?;
        self.handle_value(&req, counters, analysis)
    }

    /// Carries out one request (`{"op":...}`); an error changes nothing.
    #[cold]
    pub fn handle_value(
        &self,
        req: &Value,
        counters: &[SwitchCounters],
        analysis: &AnalysisLoop,
    ) -> Result<Value> {
        let op = req
            .get("op")
            .and_then(Value::as_str)
            .context("request has no \"op\"")?;
        let field = |k: &str| {
            req.get(k)
                .and_then(Value::as_str)
                .with_context(|| format!("{op} needs \"{k}\""))
        };
        match op {
            "rules" => {
                let fib = self.fib.load();
                let mut rules: Vec<Value> = fib
                    .iter()
                    .map(|(m, d)| json!({"dst_mac": mac_str(m), "to": self.dest_str(&fib, d)}))
                    .collect();
                rules.sort_by_key(|r| r["dst_mac"].as_str().unwrap_or_default().to_string());
                Ok(json!({"ok": true, "host": self.me.host, "rules": rules}))
            }
            "add_rule" => {
                let mac = parse_mac(field("dst_mac")?)?;
                let mut next = Fib::clone(&self.fib.load());
                let dest = self.parse_dest(&next, field("to")?)?;
                let old = next.insert(mac, dest);
                let n = next.len();
                let replaced = old.map(|d| self.dest_str(&next, &d));
                log::info!(
                    "control: rule {} -> {}",
                    mac_str(&mac),
                    self.dest_str(&next, &dest)
                );
                self.fib.store(Arc::new(next));
                Ok(json!({"ok": true, "replaced": replaced, "rules": n}))
            }
            "del_rule" => {
                let mac = parse_mac(field("dst_mac")?)?;
                let mut next = Fib::clone(&self.fib.load());
                if next.remove(&mac).is_none() {
                    bail!("no rule for {}", mac_str(&mac));
                }
                let n = next.len();
                self.fib.store(Arc::new(next));
                log::info!("control: rule {} removed", mac_str(&mac));
                Ok(json!({"ok": true, "rules": n}))
            }
            "stats" => Ok(
                json!({"ok": true, "host": self.me.host, "switch": SwitchCounters::snapshot_all(counters)}),
            ),
            "links" => {
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
                Ok(
                    json!({"ok": true, "host": self.me.host, "underlay_ip": self.me.underlay_ip,
                    "links": links}),
                )
            }
            "set_link" => {
                let name = field("name")?;
                let ip: Ipv4Addr = field("ip")?
                    .parse()
                    .context("\"ip\" must be an IPv4 address")?;
                let mac = match req.get("mac").and_then(Value::as_str) {
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
                log::info!("control: link {name} -> {ip}");
                Ok(json!({"ok": true, "links": n}))
            }
            "del_link" => {
                let name = field("name")?;
                let mut next = Fib::clone(&self.fib.load());
                next.remove_peer(name)?;
                let n = next.peers().len();
                self.fib.store(Arc::new(next));
                log::info!("control: link {name} removed");
                Ok(json!({"ok": true, "links": n}))
            }
            "vms" => {
                let vms: Vec<Value> = self
                    .vms
                    .borrow()
                    .list()
                    .into_iter()
                    .map(|(slot, port, mac, devargs)| {
                        json!({"port": port, "mac": mac_str(&mac), "slot": slot, "devargs": devargs})
                    })
                    .collect();
                Ok(json!({"ok": true, "host": self.me.host, "vms": vms}))
            }
            "plug_vm" => {
                let port = field("port")?;
                let devargs = field("devargs")?;
                let mac = parse_mac(field("mac")?)?;
                let slot = self.vms.borrow_mut().plug(port, devargs, mac)?;
                Ok(json!({"ok": true, "port": port, "slot": slot}))
            }
            "unplug_vm" => {
                let port = field("port")?;
                let rules = self.vms.borrow_mut().unplug(port)?;
                Ok(json!({"ok": true, "port": port, "rules_withdrawn": rules}))
            }
            "paths" | "matrix" => {
                let engine = if op == "paths" { "wren" } else { "vttif" };
                let view = analysis.view(engine).with_context(|| {
                    format!("{engine} is not running (monitor.enabled = false)")
                })?;
                Ok(json!({
                    "ok": true,
                    "host": self.me.host,
                    "local_vms": self.local_vm_macs(),
                    engine: view,
                }))
            }
            other => {
                bail!(
                    "unknown op {other:?} (rules, add_rule, del_rule, links, set_link, \
                     del_link, vms, plug_vm, unplug_vm, stats, paths, matrix)"
                )
            }
        }
    }
}

impl Drop for Control<'_> {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds a unix listener at `path`, replacing a stale socket but never a live one.
#[cold]
fn bind_unix(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        // A socket left by a previous run: refuse if someone still listens on it.
        if UnixStream::connect(path).is_ok() {
            bail!(
                "control socket {} is in use by another daemon",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Sends one request line to a daemon and returns its parsed reply.
#[cold]
pub fn query(socket: &Path, body: &str) -> Result<Value> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    writeln!(s, "{}", body.trim())?;
    let mut reply = String::new();
    BufReader::new(&s)
        .read_line(&mut reply)
        .with_context(|| format!("no reply from the daemon at {}", socket.display()))?;
    serde_json::from_str(&reply)
        .with_context(|| format!("the reply from {} is not JSON", socket.display()))
}

/// One HTTP/1.1 request to a daemon's API unix socket: (status, JSON body).
#[cold]
pub fn http_request(socket: &Path, method: &str, path: &str, body: &str) -> Result<(u16, Value)> {
    let s = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    http_exchange(s, &socket.display().to_string(), method, path, body, None)
}

/// One HTTP/1.1 request over `stream` (a fresh connection, closed after the reply),
/// with a bearer token when given: (status, JSON body).
#[cold]
pub fn http_exchange(
    mut stream: impl std::io::Read + Write,
    peer: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, Value)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: wrenvnet\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .with_context(|| format!("no reply from the API at {peer}"))?;
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{peer}: not an HTTP reply"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .with_context(|| format!("{peer}: no HTTP status"))?;
    let v = serde_json::from_str(payload)
        .with_context(|| format!("the reply from {peer} is not JSON"))?;
    Ok((status, v))
}

/// `wrenvnet ctl`: send one request, print the reply; false when the daemon said no.
pub fn request(socket: &Path, body: &str) -> Result<bool> {
    let v = query(socket, body)?;
    println!("{v}");
    Ok(v["ok"] == true)
}
