//! The daemon's HTTP/JSON control API: a unix socket and/or a TCP listener (loopback by
//! default; a bearer token is required on TCP when one is configured, and always when
//! the listener is not on loopback). tiny_http's own threads accept and parse; the
//! requests are answered from the main lcore's loop (`poll`), never from a worker.
//! Every route maps onto the same operations as the JSON-lines control socket, so the
//! two can never disagree:
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `{"ok":true,"host":...}` |
//! | `GET /stats` | switch counters |
//! | `GET /paths` | Wren's path views |
//! | `GET /matrix` | VTTIF's rows, this host's VMs, its damped topology |
//! | `GET /rules` | forwarding rules |
//! | `PUT /rules/{mac}` body `{"to":"vm:PORT"\|"peer:NAME"}` | add or replace a rule |
//! | `DELETE /rules/{mac}` | remove a rule |
//! | `GET /links` | overlay links (peers): name, underlay IP, static MAC, rules using it |
//! | `PUT /links/{name}` body `{"ip":IP,"mac":M?}` | add a link or change its address |
//! | `DELETE /links/{name}` | remove a link (refused while rules use it) |
//! | `GET /vms` | VM ports: name, VM MAC, slot, devargs |
//! | `PUT /vms/{port}` body `{"devargs":D,"mac":M}` | plug a VM port live (its rule follows) |
//! | `DELETE /vms/{port}` | unplug a VM port (its rules withdrawn first) |
//! | `GET /metrics` | Prometheus text format |
//!
//! Errors are JSON `{"ok":false,"error":...}` with 400 (bad request, nothing changed),
//! 401 (token), 404 (no such route), 405 (method), 413 (body too large).

use std::io::Read;
use std::path::PathBuf;

use analysis::engine::AnalysisLoop;
use anyhow::{bail, Context, Result};
use dataplane::switch::counters::SwitchCounters;
use serde::Deserialize;
use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::control::Control;

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
        Ok(())
    }
}

const MAX_BODY: usize = 64 * 1024;

struct Listener {
    server: Server,
    needs_token: bool,
    unix_path: Option<PathBuf>,
}

/// The running API servers.
pub struct Api {
    listeners: Vec<Listener>,
    token: Option<String>,
}

impl Api {
    #[cold]
    pub fn bind(cfg: &ApiSection) -> Result<Self> {
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
            let server = Server::http(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen for the API on {addr}: {e}"))?;
            log::info!(
                "api: http on {addr}{}",
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
        })
    }

    /// Answers every request waiting on any listener.
    #[cold]
    pub fn poll(
        &self,
        control: &Control<'_>,
        counters: &[SwitchCounters],
        analysis: &AnalysisLoop,
    ) {
        for l in &self.listeners {
            while let Ok(Some(req)) = l.server.try_recv() {
                let authorized = !l.needs_token || self.authorized(&req);
                answer(req, authorized, control, counters, analysis);
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

impl Drop for Api {
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

fn json_response(status: u16, body: &Value) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut text = body.to_string();
    text.push('\n');
    Response::from_string(text)
        .with_status_code(status)
        .with_header(
            Header::from_bytes("Content-Type", "application/json").expect("a valid header"),
        )
}

fn error(status: u16, msg: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    json_response(status, &json!({"ok": false, "error": msg.into()}))
}

#[cold]
fn answer(
    mut req: Request,
    authorized: bool,
    control: &Control<'_>,
    counters: &[SwitchCounters],
    analysis: &AnalysisLoop,
) {
    if !authorized {
        let _ = req.respond(error(401, "missing or wrong bearer token"));
        return;
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
    if too_big {
        let _ = req.respond(error(413, format!("body over {MAX_BODY} bytes")));
        return;
    }
    let op = |o: &str| Ok::<Value, (u16, String)>(json!({ "op": o }));
    let parts: Vec<&str> = url.trim_matches('/').split('/').collect();
    let request: Result<Value, (u16, String)> = match (&method, parts.as_slice()) {
        (Method::Get, ["health"]) => {
            let _ = req.respond(json_response(
                200,
                &json!({"ok": true, "host": control.host()}),
            ));
            return;
        }
        (Method::Get, ["metrics"]) => {
            let text = metrics(control.host(), counters, analysis);
            let _ = req.respond(
                Response::from_string(text).with_header(
                    Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                        .expect("a valid header"),
                ),
            );
            return;
        }
        (Method::Get, ["stats"]) => op("stats"),
        (Method::Get, ["paths"]) => op("paths"),
        (Method::Get, ["matrix"]) => op("matrix"),
        (Method::Get, ["rules"]) => op("rules"),
        (Method::Get, ["links"]) => op("links"),
        (Method::Get, ["vms"]) => op("vms"),
        (Method::Put, ["links", name]) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match v.get("ip").and_then(Value::as_str) {
                Some(ip) => {
                    let mut r = json!({"op": "set_link", "name": name, "ip": ip});
                    if let Some(mac) = v.get("mac") {
                        r["mac"] = mac.clone();
                    }
                    Ok(r)
                }
                None => Err((400, "the body needs \"ip\": \"A.B.C.D\"".into())),
            },
            Err(e) => Err((400, format!("the body is not JSON: {e}"))),
        },
        (Method::Delete, ["links", name]) => Ok(json!({"op": "del_link", "name": name})),
        (Method::Put, ["vms", port]) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match (
                v.get("devargs").and_then(Value::as_str),
                v.get("mac").and_then(Value::as_str),
            ) {
                (Some(devargs), Some(mac)) => {
                    Ok(json!({"op": "plug_vm", "port": port, "devargs": devargs, "mac": mac}))
                }
                _ => Err((400, "the body needs \"devargs\" and \"mac\"".into())),
            },
            Err(e) => Err((400, format!("the body is not JSON: {e}"))),
        },
        (Method::Delete, ["vms", port]) => Ok(json!({"op": "unplug_vm", "port": port})),
        (Method::Put, ["rules", mac]) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => match v.get("to").and_then(Value::as_str) {
                Some(to) => Ok(json!({"op": "add_rule", "dst_mac": mac, "to": to})),
                None => Err((
                    400,
                    "the body needs \"to\": \"vm:PORT\" or \"peer:NAME\"".into(),
                )),
            },
            Err(e) => Err((400, format!("the body is not JSON: {e}"))),
        },
        (Method::Delete, ["rules", mac]) => Ok(json!({"op": "del_rule", "dst_mac": mac})),
        (_, ["health" | "metrics" | "stats" | "paths" | "matrix" | "rules" | "links" | "vms"])
        | (_, ["rules" | "links" | "vms", _]) => {
            Err((405, format!("{method} is not allowed on {url}")))
        }
        _ => Err((404, format!("no route {url}"))),
    };
    let response = match request {
        Ok(v) => match control.handle_value(&v, counters, analysis) {
            Ok(reply) => json_response(200, &reply),
            Err(e) => error(400, format!("{e:#}")),
        },
        Err((status, msg)) => error(status, msg),
    };
    let _ = req.respond(response);
}

/// Prometheus text: the switch's counters, Wren's paths and VTTIF's rows as gauges.
#[cold]
fn metrics(host: &str, counters: &[SwitchCounters], analysis: &AnalysisLoop) -> String {
    use std::fmt::Write;
    let s = SwitchCounters::snapshot_all(counters);
    let mut out = String::new();
    let h = escape(host);
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP wrenvnet_{name} {help}\n# TYPE wrenvnet_{name} counter"
        );
        let _ = writeln!(out, "wrenvnet_{name}{{host=\"{h}\"}} {v}");
    };
    counter(
        "vm_rx_packets_total",
        "Frames received from VM ports.",
        s.vm_rx,
    );
    counter("vm_tx_packets_total", "Frames sent to VM ports.", s.vm_tx);
    counter(
        "nic_rx_packets_total",
        "Frames received from the NIC.",
        s.nic_rx,
    );
    counter("nic_tx_packets_total", "Frames sent to the NIC.", s.nic_tx);
    counter(
        "encapsulated_total",
        "Frames encapsulated in VXLAN.",
        s.encapsulated,
    );
    counter(
        "decapsulated_total",
        "VXLAN frames decapsulated.",
        s.decapsulated,
    );
    counter("flooded_total", "Frames flooded.", s.flooded);
    counter(
        "transit_total",
        "Frames forwarded as a transit hop.",
        s.transit,
    );
    counter(
        "empty_polls_total",
        "Worker loops that found no packet.",
        s.empty_polls,
    );
    let _ = writeln!(
        out,
        "# HELP wrenvnet_drops_total Frames dropped, by cause.\n# TYPE wrenvnet_drops_total counter"
    );
    for (cause, n) in &s.drops {
        let _ = writeln!(
            out,
            "wrenvnet_drops_total{{host=\"{h}\",cause=\"{}\"}} {n}",
            escape(cause)
        );
    }
    if let Some(c) = s.cycles_per_packet {
        let _ = writeln!(
            out,
            "# HELP wrenvnet_cycles_per_packet Busy TSC cycles per packet.\n# TYPE wrenvnet_cycles_per_packet gauge\nwrenvnet_cycles_per_packet{{host=\"{h}\"}} {c}"
        );
    }
    if let Some(w) = analysis.view("wren") {
        let _ = writeln!(out, "# HELP wrenvnet_path_rtt_min_seconds Minimum RTT per path.\n# TYPE wrenvnet_path_rtt_min_seconds gauge");
        let _ = writeln!(out, "# HELP wrenvnet_path_avail_bw_bps Available bandwidth estimate per path (kind estimate only).\n# TYPE wrenvnet_path_avail_bw_bps gauge");
        for p in w["paths"].as_array().into_iter().flatten() {
            let labels = format!(
                "host=\"{h}\",src=\"{}\",dst=\"{}\"",
                escape(p["src"].as_str().unwrap_or("")),
                escape(p["dst"].as_str().unwrap_or(""))
            );
            if let Some(r) = p["rtt_min_us"].as_f64() {
                let _ = writeln!(out, "wrenvnet_path_rtt_min_seconds{{{labels}}} {}", r / 1e6);
            }
            if p["avail_bw_kind"] == "estimate" {
                if let Some(a) = p["avail_bw_mbps"].as_f64() {
                    let _ = writeln!(out, "wrenvnet_path_avail_bw_bps{{{labels}}} {}", a * 1e6);
                }
            }
        }
    }
    if let Some(v) = analysis.view("vttif") {
        let _ = writeln!(out, "# HELP wrenvnet_vm_traffic_bps Smoothed VM-to-VM traffic rate.\n# TYPE wrenvnet_vm_traffic_bps gauge");
        for r in v["rows"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "wrenvnet_vm_traffic_bps{{host=\"{h}\",src=\"{}\",dst=\"{}\"}} {}",
                escape(r["src"].as_str().unwrap_or("")),
                escape(r["dst"].as_str().unwrap_or("")),
                r["smoothed_mbps"].as_f64().unwrap_or(0.0) * 1e6
            );
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
