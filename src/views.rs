//! Operators' views over running daemons: `wrenvnet matrix` merges every daemon's VTTIF
//! rows into the global VM traffic matrix and names its topology; `wrenvnet paths`
//! shows every daemon's Wren path views. Both read the daemons' control sockets.

use std::collections::BTreeSet;
use std::path::PathBuf;

use analysis::vttif::{merge, topology_of, HostView, MatrixEntry};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::control::query;

#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// A daemon's control socket (`switch.control_socket`); repeat for every host.
    #[arg(long = "socket", required = true)]
    sockets: Vec<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    view: ViewArgs,
    /// Entries below this fraction of the largest are pruned from the topology.
    #[arg(long, default_value_t = 0.10)]
    threshold: f64,
}

/// Asks every daemon for `op` and returns (host, reply) pairs.
#[cold]
fn gather(sockets: &[PathBuf], op: &str) -> Result<Vec<(String, Value)>> {
    sockets
        .iter()
        .map(|s| {
            let v = query(s, &json!({ "op": op }).to_string())?;
            if v["ok"] != true {
                bail!("{}: {}", s.display(), v["error"]);
            }
            let host = v["host"].as_str().unwrap_or("?").to_string();
            Ok((host, v))
        })
        .collect()
}

fn host_view(host: &str, reply: &Value) -> Result<HostView> {
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
    let replies = gather(&args.view.sockets, "matrix")?;
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
pub fn paths(args: ViewArgs) -> Result<()> {
    let replies = gather(&args.sockets, "paths")?;
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
