//! Daemon configs for the tests and benchmarks, built as typed values and written as
//! TOML by serde, so that a config is made in one place rather than by string
//! formatting in each test and script. The types follow the daemon's own
//! (`src/config.rs`): a field left `None` is left out and takes the daemon's default.
//! `tests/config_presets.rs` runs every preset through the daemon's parser.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

/// A whole config file (`wrenvnet run --config`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonConfig {
    pub dataplane: Dataplane,
    #[serde(rename = "port", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vttif: Option<Vttif>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<Switch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<Etcd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Xconnect,
    Switch,
}

/// `[dataplane]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dataplane {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_sleep_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_clocks: Option<bool>,
}

/// `[[port]]`: a name and its DPDK devargs.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    pub name: String,
    pub devargs: String,
}

/// `[monitor]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Monitor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_records: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_delay_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_at_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_per_loop: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate_ms: Option<u64>,
}

/// `[vttif]`: the traffic matrix's windows, smoothing, pruning and damping.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Vttif {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ewma_alpha: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist_windows: Option<usize>,
}

/// `[api]`: the HTTP API on a unix socket and/or a TCP listener.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Api {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// HTTPS on the TCP listener: certificate chain and key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// `[etcd]`: the cluster's etcd (mode "switch"): its members, the key space's prefix,
/// the lease, timeouts and publication interval, TLS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Etcd {
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl_s: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// `[switch]`: this host on the underlay, its VMs, its peers and the rules.
#[derive(Debug, Clone, Serialize)]
pub struct Switch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub underlay_ip: Ipv4Addr,
    pub vni: u32,
    pub nic: String,
    #[serde(rename = "vm", skip_serializing_if = "Vec::is_empty")]
    pub vms: Vec<Vm>,
    #[serde(rename = "peer", skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
    #[serde(rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub port: String,
    pub mac: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_security: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub name: String,
    pub ip: Ipv4Addr,
    /// `None`: the daemon resolves it by ARP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub dst_mac: String,
    pub peer: String,
}

/// The overlay's VXLAN network identifier in every preset.
pub const VNI: u32 = 42;

impl DaemonConfig {
    /// Mode "xconnect" between ports "a" and "b".
    pub fn xconnect(a: &str, b: &str) -> Self {
        Self::default()
            .mode(Mode::Xconnect)
            .port("a", a)
            .port("b", b)
    }

    /// Mode "switch" on NIC port "nic" (`nic_devargs`), underlay address `underlay_ip`,
    /// VNI 42; no VMs, peers or rules yet.
    pub fn switch(underlay_ip: Ipv4Addr, nic_devargs: &str) -> Self {
        let mut c = Self::default().mode(Mode::Switch).port("nic", nic_devargs);
        c.switch = Some(Switch {
            name: None,
            underlay_ip,
            vni: VNI,
            nic: "nic".into(),
            vms: Vec::new(),
            peers: Vec::new(),
            rules: Vec::new(),
        });
        c
    }

    /// The TOML text the daemon reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a DaemonConfig is always TOML")
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.dataplane.mode = Some(mode);
        self
    }

    /// Adds a `[[port]]`.
    pub fn port(mut self, name: &str, devargs: &str) -> Self {
        self.ports.push(Port {
            name: name.into(),
            devargs: devargs.into(),
        });
        self
    }

    /// Gives port `name` other devargs (e.g. a VM's vhost-user socket instead of a veth);
    /// panics if there is no such port.
    pub fn devargs(mut self, name: &str, devargs: &str) -> Self {
        let port = self.ports.iter_mut().find(|p| p.name == name);
        port.unwrap_or_else(|| panic!("no port {name:?}")).devargs = devargs.into();
        self
    }

    /// Changes `[dataplane]`.
    pub fn dataplane(mut self, f: impl FnOnce(&mut Dataplane)) -> Self {
        f(&mut self.dataplane);
        self
    }

    /// Changes `[vttif]` (made empty first if absent).
    pub fn vttif(mut self, f: impl FnOnce(&mut Vttif)) -> Self {
        f(self.vttif.get_or_insert_with(Vttif::default));
        self
    }

    /// Changes `[monitor]` (made empty first if absent).
    pub fn monitor(mut self, f: impl FnOnce(&mut Monitor)) -> Self {
        f(self.monitor.get_or_insert_with(Monitor::default));
        self
    }

    pub fn api(mut self, api: Api) -> Self {
        self.api = Some(api);
        self
    }

    /// The cluster's etcd (`[etcd]`).
    pub fn etcd(mut self, etcd: Etcd) -> Self {
        self.etcd = Some(etcd);
        self
    }

    /// The `[switch]` section; panics on a config made without `switch`.
    fn sw(&mut self) -> &mut Switch {
        self.switch
            .as_mut()
            .expect("a switch section: start from DaemonConfig::switch")
    }

    /// The host's name (`switch.name`).
    pub fn host_name(mut self, name: &str) -> Self {
        self.sw().name = Some(name.into());
        self
    }

    /// The HTTP API on the unix socket `path` (`api.unix`), nothing else in `[api]`.
    pub fn api_unix(self, path: impl Into<PathBuf>) -> Self {
        self.api(Api {
            unix: Some(path.into()),
            ..Api::default()
        })
    }

    /// A VM: its `[[port]]` (`devargs`) and its `[[switch.vm]]` with `mac`.
    pub fn vm(mut self, port: &str, devargs: &str, mac: &str) -> Self {
        self.sw().vms.push(Vm {
            port: port.into(),
            mac: mac.into(),
            port_security: None,
        });
        self.port(port, devargs)
    }

    /// Port security on every VM port (`[[switch.vm]] port_security`).
    pub fn port_security(mut self, on: bool) -> Self {
        for v in &mut self.sw().vms {
            v.port_security = Some(on);
        }
        self
    }

    /// A peer host; `mac: None` has the daemon resolve it by ARP.
    pub fn peer(mut self, name: &str, ip: Ipv4Addr, mac: Option<&str>) -> Self {
        self.sw().peers.push(Peer {
            name: name.into(),
            ip,
            mac: mac.map(Into::into),
        });
        self
    }

    /// Frames to `dst_mac` go to peer `peer`.
    pub fn rule(mut self, dst_mac: &str, peer: &str) -> Self {
        self.sw().rules.push(Rule {
            dst_mac: dst_mac.into(),
            peer: peer.into(),
        });
        self
    }
}

/// The configs more than one test or script runs.
pub mod presets {
    use super::*;

    /// The benchmarks' local VM (port "vm").
    pub const VM_MAC: &str = "02:00:00:00:aa:01";
    /// The benchmarks' remote VM, behind peer "B".
    pub const REMOTE_MAC: &str = "02:00:00:00:bb:01";
    /// Peer "B"'s underlay MAC (given, so nothing waits for ARP).
    pub const PEER_MAC: &str = "02:00:00:00:ff:02";
    pub const UNDERLAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
    pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);

    /// One VM, one peer: VM port "vm" with `VM_MAC`, peer "B" at `PEER_IP` with
    /// `PEER_MAC`, and a rule sending `REMOTE_MAC` to B. Stats printed only at exit.
    /// What bench/switch.sh measures and tests/api.rs drives.
    pub fn one_vm_one_peer(nic: &str, vm: &str) -> DaemonConfig {
        DaemonConfig::switch(UNDERLAY_IP, nic)
            .dataplane(|d| d.stats_interval_ms = Some(100_000))
            .vm("vm", vm, VM_MAC)
            .peer("B", PEER_IP, Some(PEER_MAC))
            .rule(REMOTE_MAC, "B")
    }

    /// The benchmarks' switch: `one_vm_one_peer` with bursts of 32, monitoring on or
    /// off, and records published once per loop (the worker has its core to itself
    /// there, as on an isolated core in production).
    pub fn bench_switch(nic: &str, vm: &str, monitor: bool) -> DaemonConfig {
        one_vm_one_peer(nic, vm)
            .dataplane(|d| d.burst = Some(32))
            .monitor(|m| {
                m.enabled = Some(monitor);
                m.publish_per_loop = Some(true);
            })
    }

    /// `bench_switch` at fleet size: `rules` rules for the MACs `fleet_mac(0..rules)`,
    /// spread round robin over `peers` links (peer B and `peers - 1` more, each with a
    /// static MAC, 198.18.<101 + i / 250>.<1 + i % 250>), beside the preset's own rule.
    pub fn bench_switch_fleet(
        nic: &str,
        vm: &str,
        monitor: bool,
        rules: usize,
        peers: usize,
    ) -> DaemonConfig {
        let mut c = bench_switch(nic, vm, monitor);
        let names: Vec<String> = (0..peers.max(1))
            .map(|i| {
                if i == 0 {
                    "B".to_string()
                } else {
                    format!("P{i}")
                }
            })
            .collect();
        for (i, name) in names.iter().enumerate().skip(1) {
            let ip = Ipv4Addr::new(198, 18, 101 + (i / 250) as u8, 1 + (i % 250) as u8);
            c = c.peer(
                name,
                ip,
                Some(&format!("02:00:00:ff:{:02x}:{:02x}", i >> 8, i & 0xff)),
            );
        }
        for k in 0..rules {
            c = c.rule(&fleet_mac(k), &names[k % names.len()]);
        }
        c
    }

    /// The k-th remote VM MAC of `bench_switch_fleet` (and of bench/gen_frames.py's
    /// `--dst-count`): 02:0c:XX:XX:XX:XX with k in the last four bytes.
    pub fn fleet_mac(k: usize) -> String {
        let b = (k as u32).to_be_bytes();
        format!("02:0c:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
    }

    /// A lab host's switch on af_packet ports (veths): workers back off when idle (the
    /// lab shares two CPUs), stats each second. Host `me` (1-254) is 198.18.100.`me`.
    pub fn lab_switch(me: u8, nic: &str) -> DaemonConfig {
        DaemonConfig::switch(lab_ip(me), nic).dataplane(|d| {
            d.idle_sleep_us = Some(20);
            d.stats_interval_ms = Some(1000);
        })
    }

    /// Lab host `me`'s underlay address.
    pub fn lab_ip(me: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 100, me)
    }

    /// An af_packet port's devargs: DPDK device index `index` on interface `iface`.
    pub fn af_packet(index: usize, iface: &str) -> String {
        format!("net_af_packet{index},iface={iface}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_are_left_out_and_tables_nest_as_the_daemon_reads_them() {
        let t = presets::one_vm_one_peer("net_null0", "net_null1").to_toml();
        assert!(!t.contains("monitor"), "{t}");
        assert!(!t.contains("workers"), "{t}");
        for part in [
            "[dataplane]\nmode = \"switch\"\nstats_interval_ms = 100000\n",
            "[[port]]\nname = \"vm\"\ndevargs = \"net_null1\"\n",
            "[[switch.vm]]\nport = \"vm\"\nmac = \"02:00:00:00:aa:01\"\n",
            "[[switch.peer]]\nname = \"B\"\nip = \"198.18.100.2\"\nmac = \"02:00:00:00:ff:02\"\n",
            "[[switch.rule]]\ndst_mac = \"02:00:00:00:bb:01\"\npeer = \"B\"\n",
            "vni = 42\n",
        ] {
            assert!(t.contains(part), "{part:?} not in:\n{t}");
        }
    }

    #[test]
    #[should_panic(expected = "DaemonConfig::switch")]
    fn switch_parts_need_a_switch_config() {
        let _ = DaemonConfig::xconnect("net_null0", "net_null1").rule(presets::REMOTE_MAC, "B");
    }
}
