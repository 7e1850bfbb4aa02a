//! The operator's commands over running daemons, through their HTTP APIs (`--api`, the
//! daemons' `api.unix` sockets): `wrenvnet matrix` merges every daemon's VTTIF rows into
//! the global VM traffic matrix and names its topology; `wrenvnet paths` shows every
//! daemon's Wren path views; `wrenvnet status` their counters; `wrenvnet rules`, `links`
//! and `vms` list them or change one daemon's. Offline, without a daemon: `analyze`
//! (captures through the analysis engines, `plot` its charts) and `adapt` (VADAPT on a
//! problem file). Over etcd, without a daemon: `cluster` and `decisions` (the cluster
//! as etcd holds it) and `reserve` (reservations asked for, and their verdicts).

pub mod adapt;
pub mod analyze;
pub mod cluster;
pub mod plot;
pub mod reserve;

use std::collections::BTreeSet;
use std::path::PathBuf;

use analysis::vttif::{merge, topology_of, HostView, MatrixEntry};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::api_client::ApiClient;

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// A daemon's HTTP API unix socket (`api.unix`); repeat for every host.
    #[arg(long = "api", required = true)]
    apis: Vec<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PathsArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Explain one path's answer on the daemon that times it (its data sender's): the
    /// trains behind it, their rates in and out, their verdicts, and how the answer
    /// follows from them, as `analyze --explain` gives it for a capture. The path as
    /// the table names it, the data sender first; with --json, the daemon's reply.
    #[arg(long, num_args = 2, value_names = ["SRC", "DST"])]
    explain: Option<Vec<String>>,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Add or replace a rule on the one daemon named: MAC=vm:PORT or MAC=peer:NAME.
    #[arg(long, value_name = "MAC=TO", conflicts_with = "del")]
    set: Option<String>,
    /// Remove the rule for MAC on the one daemon named.
    #[arg(long, value_name = "MAC")]
    del: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Entries below this fraction of the largest are pruned from the topology.
    #[arg(long, default_value_t = 0.10)]
    threshold: f64,
}

/// Asks every daemon for `op` (stats, paths, matrix, rules) and returns (host, reply).
#[cold]
fn gather(args: &ViewArgs, op: &str) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for a in &args.apis {
        let v = ApiClient::unix(a).call("GET", &format!("/{op}"), None)?;
        out.push((v["host"].as_str().unwrap_or("?").to_string(), v));
    }
    Ok(out)
}

/// `--json`: `{"hosts":[{"host":H,KEY:...}]}`, KEY from every daemon's reply.
fn print_hosts_json(replies: &[(String, Value)], key: &str) {
    let hosts: Vec<Value> = replies
        .iter()
        .map(|(h, v)| json!({"host": h, key: v[key]}))
        .collect();
    println!("{}", json!({ "hosts": hosts }));
}

/// A table's columns: (title, field of each item, width).
type Columns = &'static [(&'static str, &'static str, usize)];

const VM_COLUMNS: Columns = &[
    ("PORT", "port", 10),
    ("VM_MAC", "mac", 17),
    ("SLOT", "slot", 5),
    ("DEVARGS", "devargs", 0),
];
const LINK_COLUMNS: Columns = &[
    ("LINK", "name", 10),
    ("UNDERLAY_IP", "ip", 15),
    ("STATIC_MAC", "mac", 17),
    ("RULES", "rules", 0),
];

/// `wrenvnet vms|links|rules` without a change: every daemon's `key` list, as JSON
/// or as a table (see `print_table`).
#[cold]
fn list(view: &ViewArgs, key: &str, cols: Columns) -> Result<()> {
    let replies = gather(view, key)?;
    if view.json {
        print_hosts_json(&replies, key);
    } else {
        print_table(&replies, key, cols);
    }
    Ok(())
}

/// A table of every item of every daemon's `key` list, after the host: one column
/// per (title, field, width); a missing field shows as "-".
fn print_table(replies: &[(String, Value)], key: &str, cols: &[(&str, &str, usize)]) {
    let row = |host: &str, cells: Vec<String>| {
        let mut line = format!("{host:<10}");
        for ((_, _, w), c) in cols.iter().zip(cells) {
            line += &format!(" {c:<w$}");
        }
        println!("{}", line.trim_end());
    };
    row("HOST", cols.iter().map(|c| c.0.to_string()).collect());
    for (h, v) in replies {
        for item in v[key].as_array().into_iter().flatten() {
            let cells = cols
                .iter()
                .map(|(_, f, _)| match &item[*f] {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".to_string(),
                    other => other.to_string(),
                })
                .collect();
            row(h, cells);
        }
    }
}

pub(crate) fn host_view(host: &str, reply: &Value) -> Result<HostView> {
    let rows: Vec<Value> = reply["vttif"]["rows"]
        .as_array()
        .context("the daemon sent no matrix rows")?
        .clone();
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    let s = |r: &Value, k: &str| r[k].as_str().map(str::to_string);
    Ok(HostView {
        host: host.to_string(),
        local_vms: reply["local_vms"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        rows: rows
            .iter()
            .map(|r| MatrixEntry {
                src: s(r, "src").unwrap_or_default(),
                dst: s(r, "dst").unwrap_or_default(),
                bytes: r["bytes"].as_u64().unwrap_or(0),
                packets: r["packets"].as_u64().unwrap_or(0),
                rate_mbps: f(r, "rate_mbps"),
                smoothed_mbps: f(r, "smoothed_mbps"),
                src_also: s(r, "src_also"),
                dst_also: s(r, "dst_also"),
            })
            .collect(),
    })
}

/// `wrenvnet matrix`.
#[cold]
pub fn matrix(args: MatrixArgs) -> Result<()> {
    let replies = gather(&args.view, "matrix")?;
    let views: Vec<HostView> = replies
        .iter()
        .map(|(h, v)| host_view(h, v))
        .collect::<Result<_>>()?;
    let merged = merge(&views);
    let topology = topology_of(&merged, args.threshold);
    if args.view.json {
        let hosts: Vec<Value> = replies
            .iter()
            .map(|(h, v)| {
                json!({"host": h, "local_vms": v["local_vms"], "topology": v["vttif"]["topology"]})
            })
            .collect();
        println!(
            "{}",
            json!({"hosts": hosts, "matrix": merged, "topology": topology})
        );
        return Ok(());
    }
    let owner = |vm: &str| {
        views
            .iter()
            .find(|v| v.local_vms.contains(vm))
            .map(|v| v.host.as_str())
            .unwrap_or("-")
    };
    let edges: BTreeSet<(&str, &str)> = topology
        .edges
        .iter()
        .map(|[s, d]| (s.as_str(), d.as_str()))
        .collect();
    println!(
        "{:<17} {:<8} {:<17} {:<8} {:>10} {:>12} {:>5}",
        "SRC", "HOST", "DST", "HOST", "MBIT/S", "BYTES", "EDGE"
    );
    for e in &merged {
        println!(
            "{:<17} {:<8} {:<17} {:<8} {:>10.2} {:>12} {:>5}",
            e.src,
            owner(&e.src),
            e.dst,
            owner(&e.dst),
            e.smoothed_mbps,
            e.bytes,
            if edges.contains(&(e.src.as_str(), e.dst.as_str())) {
                "yes"
            } else {
                ""
            }
        );
    }
    println!(
        "topology: {} ({} edges at {:.0}% of the largest)",
        topology.shape,
        topology.edges.len(),
        topology.threshold * 100.0
    );
    Ok(())
}

/// `wrenvnet paths`.
#[cold]
pub fn paths(args: PathsArgs) -> Result<()> {
    if let Some([src, dst]) = args.explain.as_deref() {
        return explain_path(&args.view, src, dst);
    }
    let args = args.view;
    let replies = gather(&args, "paths")?;
    if args.json {
        let hosts: Vec<Value> = replies
            .iter()
            .map(|(h, v)| json!({"host": h, "paths": v["wren"]["paths"]}))
            .collect();
        println!("{}", json!({ "hosts": hosts }));
        return Ok(());
    }
    let num = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:<8} {:<15} {:<15} {:>9} {:>9} {:>9} {:>9} {:<12} {:>6}",
        "HOST", "SRC", "DST", "RTT_MIN", "SRTT_US", "TPUT", "AVAIL", "KIND", "TRAINS"
    );
    for (h, v) in &replies {
        for p in v["wren"]["paths"].as_array().into_iter().flatten() {
            println!(
                "{:<8} {:<15} {:<15} {:>9} {:>9} {:>9} {:>9} {:<12} {:>6}",
                h,
                p["src"].as_str().unwrap_or("?"),
                p["dst"].as_str().unwrap_or("?"),
                num(&p["rtt_min_us"]),
                num(&p["rtt_srtt_us"]),
                num(&p["throughput_mbps"]),
                num(&p["avail_bw_mbps"]),
                p["avail_bw_kind"].as_str().unwrap_or("?"),
                p["trains"]
            );
        }
    }
    Ok(())
}

/// `wrenvnet paths --explain SRC DST`: the first daemon that knows the path explains
/// it (`GET /paths/{src}/{dst}`).
#[cold]
fn explain_path(args: &ViewArgs, src: &str, dst: &str) -> Result<()> {
    let route = format!("/paths/{src}/{dst}");
    let mut missing = Vec::new();
    for a in &args.apis {
        match ApiClient::unix(a).call("GET", &route, None) {
            Ok(v) if args.json => {
                println!("{v}");
                return Ok(());
            }
            Ok(v) => {
                let ex: analysis::wren::Explanation = serde_json::from_value(v["explain"].clone())
                    .context("the daemon's explanation")?;
                println!("host {}", v["host"].as_str().unwrap_or("?"));
                println!("{}", analyze::explanation_text(&ex, ex.first_ns));
                return Ok(());
            }
            Err(e) => missing.push(format!("{}: {e:#}", a.display())),
        }
    }
    anyhow::bail!("no daemon explains {src} -> {dst}: {}", missing.join("; "))
}

/// `wrenvnet status`: every daemon's counters, a line each (and its etcd session's,
/// with `[etcd]`).
#[cold]
pub fn status(args: ViewArgs) -> Result<()> {
    let replies = gather(&args, "stats")?;
    if args.json {
        let hosts: Vec<Value> = replies
            .iter()
            .map(|(h, v)| {
                let mut o = json!({"host": h, "switch": v["switch"]});
                if let Some(e) = v.get("etcd") {
                    o["etcd"] = e.clone();
                }
                o
            })
            .collect();
        println!("{}", json!({ "hosts": hosts }));
        return Ok(());
    }
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9}",
        "HOST", "VM_RX", "VM_TX", "NIC_RX", "NIC_TX", "ENCAP", "DECAP", "DROPS", "CYC/PKT"
    );
    for (h, v) in &replies {
        let s = &v["switch"];
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        let drops: u64 = s["drops"]
            .as_object()
            .map(|d| d.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        println!(
            "{:<10} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9}",
            h,
            n("vm_rx"),
            n("vm_tx"),
            n("nic_rx"),
            n("nic_tx"),
            n("encapsulated"),
            n("decapsulated"),
            drops,
            s["cycles_per_packet"]
                .as_f64()
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into())
        );
        let causes: Vec<String> = s["drops"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        if !causes.is_empty() {
            println!("           drops: {}", causes.join(", "));
        }
        if let Some(e) = v.get("etcd") {
            println!("           etcd: {}", etcd_line(e));
        }
    }
    Ok(())
}

/// A daemon's etcd session (`/stats` `etcd`) in one line.
#[cold]
fn etcd_line(e: &Value) -> String {
    let mut s = if e["connected"] == true {
        "connected".to_string()
    } else {
        "DISCONNECTED (forwarding with the rules in force)".to_string()
    };
    match e["applied_revision"].as_u64() {
        Some(r) => s.push_str(&format!(", applied revision {r}")),
        None => s.push_str(", no desired state applied"),
    }
    let since = e["seconds_since_contact"].as_f64().unwrap_or(0.0);
    s.push_str(&format!(", last contact {since:.1} s ago"));
    if let Some(l) = e["lease_id"].as_str() {
        s.push_str(&format!(", lease {l}"));
    }
    let n = |k: &str| e[k].as_u64().unwrap_or(0);
    if n("views_trimmed") > 0 {
        s.push_str(&format!(", {} views trimmed", n("views_trimmed")));
    }
    if n("errors") > 0 {
        let last = e["last_error"].as_str().unwrap_or("");
        s.push_str(&format!(", {} errors (last: {last})", n("errors")));
    }
    s
}

/// Sends one change to the one daemon named and prints its reply.
#[cold]
fn send_change(v: &ViewArgs, method: &str, path: &str, body: Option<&Value>) -> Result<()> {
    let [api] = v.apis.as_slice() else {
        bail!("a change goes to exactly one daemon: name one --api");
    };
    let reply = ApiClient::unix(api).call(method, path, body)?;
    println!("{reply}");
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LinksArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Add a link (peer host) or change its underlay address on the one daemon named:
    /// NAME=IPV4.
    #[arg(long, value_name = "NAME=IP", conflicts_with = "del")]
    set: Option<String>,
    /// With --set: the peer's underlay MAC, fixed (otherwise resolved by ARP).
    #[arg(long, value_name = "MAC", requires = "set")]
    mac: Option<String>,
    /// Remove the link NAME on the one daemon named (refused while rules use it).
    #[arg(long, value_name = "NAME")]
    del: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct VmsArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Plug a VM port live on the one daemon named: its name (with --devargs and --mac).
    #[arg(long, value_name = "PORT", requires_all = ["devargs", "mac"], conflicts_with = "unplug")]
    plug: Option<String>,
    /// The DPDK device of the port to plug, e.g. net_vhost3,iface=/run/wrenvnet/vm3.sock.
    #[arg(long, value_name = "DEVARGS")]
    devargs: Option<String>,
    /// The MAC of the VM behind the port: its rule points at the port once plugged.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// With --plug: the VM arrives by live migration. Its rule stays where it points
    /// until the guest runs on the port (the vhost-user link comes up, or the guest
    /// announces itself), and the daemon then tells its peers.
    #[arg(long, requires = "plug")]
    incoming: bool,
    /// Unplug the VM port PORT on the one daemon named (its rules are withdrawn first).
    #[arg(long, value_name = "PORT")]
    unplug: Option<String>,
}

/// `wrenvnet vms`: every daemon's VM ports, or one plugged or unplugged.
pub fn vms(args: VmsArgs) -> Result<()> {
    if let (Some(port), Some(devargs), Some(mac)) = (&args.plug, &args.devargs, &args.mac) {
        return send_change(
            &args.view,
            "PUT",
            &format!("/vms/{port}"),
            Some(&json!({ "devargs": devargs, "mac": mac, "incoming": args.incoming })),
        );
    }
    if let Some(port) = &args.unplug {
        return send_change(&args.view, "DELETE", &format!("/vms/{port}"), None);
    }
    list(&args.view, "vms", VM_COLUMNS)
}

/// `wrenvnet links`: every daemon's overlay links, or one change.
pub fn links(args: LinksArgs) -> Result<()> {
    if let Some(set) = &args.set {
        let (name, ip) = set.split_once('=').context("--set wants NAME=IPV4")?;
        let mut body = json!({ "ip": ip });
        if let Some(mac) = &args.mac {
            body["mac"] = json!(mac);
        }
        return send_change(&args.view, "PUT", &format!("/links/{name}"), Some(&body));
    }
    if let Some(name) = &args.del {
        return send_change(&args.view, "DELETE", &format!("/links/{name}"), None);
    }
    list(&args.view, "links", LINK_COLUMNS)
}

/// `wrenvnet rules`: list every daemon's rules, or change one daemon's.
#[cold]
pub fn rules(args: RulesArgs) -> Result<()> {
    let change = match (&args.set, &args.del) {
        (Some(set), _) => {
            let (mac, to) = set
                .split_once('=')
                .context("--set wants MAC=vm:PORT or MAC=peer:NAME")?;
            Some(("PUT", mac.to_string(), Some(json!({ "to": to }))))
        }
        (None, Some(mac)) => Some(("DELETE", mac.clone(), None)),
        (None, None) => None,
    };
    if let Some((method, mac, body)) = change {
        return send_change(&args.view, method, &format!("/rules/{mac}"), body.as_ref());
    }
    list(
        &args.view,
        "rules",
        &[("DST_MAC", "dst_mac", 17), ("TO", "to", 0)],
    )
}
