//! `testbed-config`: prints a daemon config made by the `testbed` builder, for the
//! benchmark scripts (bench/lib.sh), so that bash and the Rust tests share one builder.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

use clap::{Args, Parser, Subcommand};
use testbed::{presets, DaemonConfig};

#[derive(Parser)]
#[command(about = "Print a wrenvnet daemon config (TOML) made by the testbed builder")]
struct Cli {
    #[command(subcommand)]
    kind: Kind,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum Kind {
    /// Mode "xconnect": port "a" <-> port "b".
    Xconnect {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
    },
    /// The benchmarks' switch: VM port "vm", peer "B", one rule (`presets::bench_switch`).
    BenchSwitch {
        #[arg(long)]
        nic: String,
        #[arg(long)]
        vm: String,
        /// Fleet size: this many more rules, for 02:0c:00:00:00:00 on
        /// (`presets::fleet_mac`), spread over `--peers` links.
        #[arg(long, default_value_t = 0)]
        rules: usize,
        #[arg(long, default_value_t = 1)]
        peers: usize,
    },
    /// A switch made of parts: NIC port "nic", then VMs, peers and rules.
    Switch(SwitchArgs),
}

#[derive(Args)]
struct SwitchArgs {
    #[arg(long)]
    underlay_ip: Ipv4Addr,
    #[arg(long)]
    nic: String,
    /// switch.name.
    #[arg(long)]
    name: Option<String>,
    /// api.unix: the HTTP API's unix socket.
    #[arg(long)]
    api_unix: Option<String>,
    /// A VM: PORT,MAC,DEVARGS (the devargs last: they hold commas). Repeatable.
    #[arg(long = "vm", value_parser = parse_vm)]
    vms: Vec<(String, String, String)>,
    /// A peer: NAME,IP[,MAC] (no MAC: resolved by ARP). Repeatable.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(String, Ipv4Addr, Option<String>)>,
    /// A rule: DST_MAC,PEER. Repeatable.
    #[arg(long = "rule", value_parser = parse_rule)]
    rules: Vec<(String, String)>,
}

/// Settings any kind takes; unset ones are left to the preset or the daemon.
#[derive(Args)]
struct Common {
    #[arg(long, global = true)]
    workers: Option<u16>,
    #[arg(long, global = true)]
    burst: Option<usize>,
    #[arg(long, global = true)]
    stats_interval_ms: Option<u64>,
    #[arg(long, global = true)]
    idle_sleep_us: Option<u32>,
    #[arg(long, global = true)]
    stage_clocks: Option<bool>,
    /// monitor.enabled.
    #[arg(long, global = true)]
    monitor: Option<bool>,
    #[arg(long, global = true)]
    ring_records: Option<usize>,
    #[arg(long, global = true)]
    publish_per_loop: Option<bool>,
    #[arg(long, global = true)]
    alternate_ms: Option<u64>,
    /// Port security on every VM port (`[[switch.vm]] port_security`).
    #[arg(long, global = true)]
    port_security: Option<bool>,
}

fn parse_vm(s: &str) -> Result<(String, String, String), String> {
    let mut it = s.splitn(3, ',');
    match (it.next(), it.next(), it.next()) {
        (Some(p), Some(m), Some(d)) => Ok((p.into(), m.into(), d.into())),
        _ => Err(format!("want PORT,MAC,DEVARGS, not {s:?}")),
    }
}

fn parse_peer(s: &str) -> Result<(String, Ipv4Addr, Option<String>), String> {
    let mut it = s.splitn(3, ',');
    let (Some(name), Some(ip)) = (it.next(), it.next()) else {
        return Err(format!("want NAME,IP[,MAC], not {s:?}"));
    };
    let ip = ip.parse().map_err(|e| format!("{ip:?}: {e}"))?;
    Ok((name.into(), ip, it.next().map(Into::into)))
}

fn parse_rule(s: &str) -> Result<(String, String), String> {
    s.split_once(',')
        .map(|(m, p)| (m.into(), p.into()))
        .ok_or_else(|| format!("want DST_MAC,PEER, not {s:?}"))
}

fn switch(a: SwitchArgs) -> DaemonConfig {
    let mut c = DaemonConfig::switch(a.underlay_ip, &a.nic);
    if let Some(n) = &a.name {
        c = c.host_name(n);
    }
    if let Some(unix) = a.api_unix {
        c = c.api_unix(unix);
    }
    for (port, mac, devargs) in &a.vms {
        c = c.vm(port, devargs, mac);
    }
    for (name, ip, mac) in &a.peers {
        c = c.peer(name, *ip, mac.as_deref());
    }
    for (mac, peer) in &a.rules {
        c = c.rule(mac, peer);
    }
    c
}

/// Lays the common settings over `c`.
fn apply(c: DaemonConfig, o: &Common) -> DaemonConfig {
    let c = match o.port_security {
        Some(on) => c.port_security(on),
        None => c,
    };
    let c = c.dataplane(|d| {
        d.workers = o.workers.or(d.workers);
        d.burst = o.burst.or(d.burst);
        d.stats_interval_ms = o.stats_interval_ms.or(d.stats_interval_ms);
        d.idle_sleep_us = o.idle_sleep_us.or(d.idle_sleep_us);
        d.stage_clocks = o.stage_clocks.or(d.stage_clocks);
    });
    let any_monitor = o.monitor.is_some()
        || o.ring_records.is_some()
        || o.publish_per_loop.is_some()
        || o.alternate_ms.is_some();
    if !any_monitor {
        return c;
    }
    c.monitor(|m| {
        m.enabled = o.monitor.or(m.enabled);
        m.ring_records = o.ring_records.or(m.ring_records);
        m.publish_per_loop = o.publish_per_loop.or(m.publish_per_loop);
        m.alternate_ms = o.alternate_ms.or(m.alternate_ms);
    })
}

fn main() {
    let cli = Cli::parse();
    let c = match cli.kind {
        Kind::Xconnect { a, b } => DaemonConfig::xconnect(&a, &b),
        Kind::BenchSwitch {
            nic,
            vm,
            rules,
            peers,
        } => presets::bench_switch_fleet(&nic, &vm, true, rules, peers),
        Kind::Switch(a) => switch(a),
    };
    print!("{}", apply(c, &cli.common).to_toml());
}
