//! The daemon's HTTP/JSON API, its one interface for operators and the controller: a
//! unix socket and/or a TCP listener (loopback by default; a bearer token is required
//! on TCP when one is configured, and always when the listener is not on loopback;
//! with `tls_cert`/`tls_key` the TCP listener speaks HTTPS only, rustls).
//! tiny_http's own threads accept and parse; the requests are answered from the main
//! lcore's loop (`poll`, which never blocks), never from a worker. A request that waits
//! on something (a VM port's device, an etcd write) is answered by a later `poll`.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `{"ok":true,"host":...}` |
//! | `GET /stats` | switch counters; with `[etcd]`, the session (`etcd`) |
//! | `GET /paths` | Wren's path views |
//! | `GET /paths/{src}/{dst}` | one path's view and how its answer follows from its trains (404 when Wren has no such path) |
//! | `GET /matrix` | VTTIF's rows, this host's VMs, its damped topology |
//! | `GET /rules` | forwarding rules |
//! | `PUT /rules/{mac}` body `{"to":"vm:PORT"\|"peer:NAME"}` | add or replace a rule |
//! | `DELETE /rules/{mac}` | remove a rule |
//! | `GET /links` | overlay links (peers): name, underlay IP, static MAC, rules using it |
//! | `PUT /links/{name}` body `{"ip":IP,"mac":M?}` | add a link or change its address |
//! | `DELETE /links/{name}` | remove a link (refused while rules use it) |
//! | `GET /vms` | VM ports: name, VM MAC, slot, devargs |
//! | `GET /reservations` | the uplink's capacity, the per-VM best-effort cap, the reservations in force |
//! | `POST /reservations` body `{"src_mac":M,"dst_mac":M,"mbps":R,"burst_bytes":B?}` | ask for a reservation in etcd, as `wrenvnet reserve add` (201 `{"id","key"}`; 409 the pair has one, or no `[etcd]`; 503 etcd unreachable) |
//! | `DELETE /reservations/{id}` | end a reservation in etcd (404 when there is none) |
//! | `PUT /vms/{port}` body `{"devargs":D,"mac":M,"incoming":B?}` | plug a VM port live (its rule follows; incoming: once the VM announces itself there) |
//! | `GET /locations` | VM locations learned from their announcements, forwarding pointers |
//! | `DELETE /vms/{port}` | unplug a VM port (its rules withdrawn first) |
//! | `GET /metrics` | Prometheus text format |
//!
//! Errors are JSON `{"ok":false,"error":...}` with 400 (bad request, nothing changed),
//! 401 (token), 404 (no such route), 405 (method), 409 (conflict), 413 (body too
//! large), 503 (etcd did not answer in time: the write may or may not have landed).

pub mod locations;
mod metrics;
mod operations;
mod reserve;

use std::cell::RefCell;
use std::io::Read;
use std::path::PathBuf;

use analysis::engine::AnalysisLoop;
use anyhow::{bail, Context, Result};
use dataplane::switch::counters::SwitchCounters;
use serde::Deserialize;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

pub use operations::{Identity, Operations};

use crate::daemon::cluster::writes::Waiting;
use crate::daemon::vm_ports::Ticket;

/// `[api]` in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Unix socket path for the HTTP API (permissions guard it; no token).
    pub unix: Option<PathBuf>,
    /// TCP address, e.g. "127.0.0.1:9280". Not on loopback: a token is required.
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer token required on the TCP listener (`Authorization: Bearer TOKEN`).
    pub token: Option<String>,
    /// TLS on the TCP listener: its certificate chain and private key (PEM; PKCS#8 or
    /// RSA; `scripts/certs.sh server`). With them the listener speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl ApiSection {
    #[cold]
    pub fn validate(&self) -> Result<()> {
        if let Some(addr) = self.listen {
            if !addr.ip().is_loopback() && self.token.as_deref().unwrap_or("").is_empty() {
                bail!("api.listen {addr} is not on loopback: set api.token");
            }
        }
        if self.token.as_deref() == Some("") {
            bail!("api.token is empty");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("api.tls_cert and api.tls_key go together");
        }
        if self.tls_cert.is_some() && self.listen.is_none() {
            bail!("api.tls_cert is for the TCP listener: set api.listen");
        }
        Ok(())
    }

    /// The TLS certificate and key, read; `None` without TLS.
    #[cold]
    fn tls(&self) -> Result<Option<tiny_http::SslConfig>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        Ok(Some(tiny_http::SslConfig {
            certificate: read(cert)?,
            private_key: read(key)?,
        }))
    }
}

const MAX_BODY: usize = 64 * 1024;

struct Listener {
    server: Server,
    needs_token: bool,
    unix_path: Option<PathBuf>,
}

/// The running API servers and the daemon state they serve.
pub struct Api<'v> {
    listeners: Vec<Listener>,
    token: Option<String>,
    ops: Operations<'v>,
    /// Requests answered once their VM port change finishes (`PUT`/`DELETE /vms`).
    pending: RefCell<Vec<(Ticket, Request)>>,
    /// Requests answered once their etcd write ends (`POST`/`DELETE /reservations`).
    waiting: RefCell<Vec<(Waiting, Request)>>,
}

impl<'v> Api<'v> {
    #[cold]
    pub fn bind(cfg: &ApiSection, ops: Operations<'v>) -> Result<Self> {
        cfg.validate()?;
        let mut listeners = Vec::new();
        if let Some(path) = &cfg.unix {
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    bail!("api socket {} is in use by another daemon", path.display());
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale {}", path.display()))?;
            }
            let server = Server::http_unix(path).map_err(|e| {
                anyhow::anyhow!("cannot bind the API socket {}: {e}", path.display())
            })?;
            log::info!("api: http on unix socket {}", path.display());
            listeners.push(Listener {
                server,
                needs_token: false,
                unix_path: Some(path.clone()),
            });
        }
        if let Some(addr) = cfg.listen {
            let tls = cfg.tls()?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let server = match tls {
                Some(tls) => Server::https(addr, tls),
                None => Server::http(addr),
            }
            .map_err(|e| anyhow::anyhow!("cannot listen for the API on {addr}: {e}"))?;
            log::info!(
                "api: {scheme} on {addr}{}",
                if cfg.token.is_some() {
                    " (bearer token required)"
                } else {
                    ""
                }
            );
            listeners.push(Listener {
                server,
                needs_token: cfg.token.is_some(),
                unix_path: None,
            });
        }
        Ok(Self {
            listeners,
            token: cfg.token.clone(),
            ops,
            pending: RefCell::new(Vec::new()),
            waiting: RefCell::new(Vec::new()),
        })
    }

    /// The daemon state the API serves (the etcd session applies desired states on it).
    pub fn ops(&self) -> &Operations<'v> {
        &self.ops
    }

    /// Answers every request waiting on any listener, and those whose VM port change
    /// finished or etcd write ended; returns at once when none is.
    #[cold]
    pub fn poll(&self, counters: &[SwitchCounters], analysis: &AnalysisLoop) {
        for (ticket, result) in self.ops.vm_changes() {
            let mut pending = self.pending.borrow_mut();
            if let Some(i) = pending.iter().position(|(t, _)| *t == ticket) {
                let (_, req) = pending.swap_remove(i);
                let _ = req.respond(reply(result));
            }
        }
        self.answer_etcd_writes();
        for l in &self.listeners {
            while let Ok(Some(req)) = l.server.try_recv() {
                let authorized = !l.needs_token || self.authorized(&req);
                match answer(req, authorized, &self.ops, counters, analysis) {
                    Some((Deferred::Vm(t), req)) => self.pending.borrow_mut().push((t, req)),
                    Some((Deferred::Etcd(w), req)) => self.waiting.borrow_mut().push((w, req)),
                    None => {}
                }
            }
        }
    }

    /// Answers the requests whose etcd write ended (or timed out).
    fn answer_etcd_writes(&self) {
        let mut waiting = self.waiting.borrow_mut();
        let mut i = 0;
        while i < waiting.len() {
            match waiting[i].0.poll() {
                Some(r) => {
                    let (_, req) = waiting.swap_remove(i);
                    let _ = req.respond(json_response(r.status, &r.body));
                }
                None => i += 1,
            }
        }
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let want = format!("Bearer {token}");
        req.headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .is_some_and(|h| constant_time_eq(h.value.as_str().as_bytes(), want.as_bytes()))
    }
}

impl Drop for Api<'_> {
    fn drop(&mut self) {
        for l in &self.listeners {
            if let Some(p) = &l.unix_path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Reply = Response<std::io::Cursor<Vec<u8>>>;

fn json_response(status: u16, body: &Value) -> Reply {
    let mut text = body.to_string();
    text.push('\n');
    Response::from_string(text)
        .with_status_code(status)
        .with_header(
            Header::from_bytes("Content-Type", "application/json").expect("a valid header"),
        )
}

fn error(status: u16, msg: impl Into<String>) -> Reply {
    json_response(status, &json!({"ok": false, "error": msg.into()}))
}

/// A request's answer: now, or later.
enum Answer {
    Now(Reply),
    Later(Deferred),
}

/// What a request answered later waits on.
enum Deferred {
    /// The VM port change with this ticket.
    Vm(Ticket),
    /// An etcd write.
    Etcd(Waiting),
}

fn reply(result: Result<Value>) -> Reply {
    match result {
        Ok(reply) => json_response(200, &reply),
        Err(e) => error(400, format!("{e:#}")),
    }
}

/// Reads the request's body (at most `MAX_BODY` bytes) and answers it, or hands it
/// back with what it waits on, to be answered later.
#[cold]
fn answer(
    mut req: Request,
    authorized: bool,
    ops: &Operations<'_>,
    counters: &[SwitchCounters],
    analysis: &AnalysisLoop,
) -> Option<(Deferred, Request)> {
    if !authorized {
        let _ = req.respond(error(401, "missing or wrong bearer token"));
        return None;
    }
    let url = req.url().split('?').next().unwrap_or("").to_string();
    let method = req.method().clone();
    let mut body = Vec::new();
    let too_big = req
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map(|n| n > MAX_BODY)
        .unwrap_or(true);
    let response = if too_big {
        Answer::Now(error(413, format!("body over {MAX_BODY} bytes")))
    } else {
        route(&method, &url, &body, ops, counters, analysis)
    };
    match response {
        Answer::Now(r) => {
            let _ = req.respond(r);
            None
        }
        Answer::Later(what) => Some((what, req)),
    }
}

/// The route table (see the module's doc).
#[cold]
fn route(
    method: &Method,
    url: &str,
    body: &[u8],
    ops: &Operations<'_>,
    counters: &[SwitchCounters],
    analysis: &AnalysisLoop,
) -> Answer {
    let parts: Vec<&str> = url.trim_matches('/').split('/').collect();
    let json_body = || -> Result<Value> {
        serde_json::from_slice(body).map_err(|e| anyhow::anyhow!("the body is not JSON: {e}"))
    };
    let result = match (method, parts.as_slice()) {
        (Method::Get, ["health"]) => Ok(ops.health()),
        (Method::Get, ["metrics"]) => {
            return Answer::Now(
                Response::from_string(metrics::render(ops.host(), counters, analysis, ops.etcd()))
                    .with_header(
                        Header::from_bytes("Content-Type", metrics::CONTENT_TYPE)
                            .expect("a valid header"),
                    ),
            );
        }
        (Method::Get, ["stats"]) => Ok(ops.stats(counters)),
        (Method::Get, ["paths"]) => ops.view(analysis, "wren"),
        (Method::Get, ["paths", src, dst]) => {
            return Answer::Now(match ops.explain_path(analysis, src, dst) {
                Some(v) => json_response(200, &v),
                None => error(
                    404,
                    format!("no path {src} -> {dst} (GET /paths lists them)"),
                ),
            });
        }
        (Method::Get, ["matrix"]) => ops.view(analysis, "vttif"),
        (Method::Get, ["rules"]) => Ok(ops.rules()),
        (Method::Get, ["links"]) => Ok(ops.links()),
        (Method::Get, ["vms"]) => Ok(ops.vms()),
        (Method::Get, ["reservations"]) => Ok(ops.reservations()),
        (Method::Get, ["locations"]) => Ok(ops.locations()),
        (Method::Put, ["rules", mac]) => json_body().and_then(|b| ops.set_rule(mac, &b)),
        (Method::Delete, ["rules", mac]) => ops.del_rule(mac),
        (Method::Put, ["links", name]) => json_body().and_then(|b| ops.set_link(name, &b)),
        (Method::Delete, ["links", name]) => ops.del_link(name),
        (Method::Put, ["vms", port]) => {
            return later(json_body().and_then(|b| ops.plug_vm(port, &b)));
        }
        (Method::Delete, ["vms", port]) => return later(ops.unplug_vm(port)),
        (Method::Post, ["reservations"]) => return reserve::post(ops, body),
        (Method::Delete, ["reservations", id]) => return reserve::delete(ops, id),
        (
            _,
            ["health" | "metrics" | "stats" | "paths" | "matrix" | "rules" | "links" | "vms"
            | "reservations" | "locations"],
        )
        | (_, ["rules" | "links" | "vms" | "reservations", _])
        | (_, ["paths", _, _]) => {
            return Answer::Now(error(405, format!("{method} is not allowed on {url}")));
        }
        _ => return Answer::Now(error(404, format!("no route {url}"))),
    };
    Answer::Now(reply(result))
}

/// A VM port change under way is answered when it finishes; a refused one at once.
fn later(ticket: Result<Ticket>) -> Answer {
    match ticket {
        Ok(t) => Answer::Later(Deferred::Vm(t)),
        Err(e) => Answer::Now(reply(Err(e))),
    }
}
