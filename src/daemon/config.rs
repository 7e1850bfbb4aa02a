//! The daemon's TOML configuration. Unknown keys are errors, so a typo never silently
//! falls back to a default.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalSection,
    #[serde(default)]
    pub mempool: MempoolSection,
    #[serde(default)]
    pub dataplane: DataplaneSection,
    #[serde(default, rename = "port")]
    pub ports: Vec<PortSection>,
    #[serde(default)]
    pub monitor: MonitorSection,
    #[serde(default)]
    pub vttif: VttifSettings,
    /// The HTTP/JSON control API (mode "switch").
    #[serde(default)]
    pub api: crate::daemon::api::ApiSection,
    /// Mode "switch": the overlay.
    pub switch: Option<SwitchSection>,
    /// Mode "switch": the cluster in etcd (registration, views, desired state).
    pub etcd: Option<crate::cluster::etcd::EtcdSection>,
    /// Mode "switch": reservations and the uplink's capacity (`crate::daemon::qos`).
    #[serde(default)]
    pub qos: QosSection,
}

/// Reservations on the NIC egress (`dataplane::switch::qos`): frames from local VMs to
/// the overlay, reserved flows first, best-effort within what the uplink leaves.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QosSection {
    /// The uplink's capacity, Mbit/s: reserved + best-effort from local VMs stay
    /// within it. Unset: best-effort is not limited by the uplink.
    pub uplink_mbps: Option<f64>,
    /// The uplink bucket's burst (default: 10 ms at `uplink_mbps`, at least 64 KiB).
    pub uplink_burst_bytes: Option<u64>,
    /// Without `uplink_mbps`: learn the uplink's capacity from Wren's measurements of
    /// the paths local VMs send on (`crate::daemon::uplink`).
    pub learn_uplink: bool,
    /// The share of the capacity learnt that the uplink is shaped at (default 0.95):
    /// a little below it, so that the queue is the shaper's, reserved first.
    pub uplink_share: Option<f64>,
    /// Each local VM's best-effort cap, Mbit/s (unset: no cap).
    pub best_effort_vm_mbps: Option<f64>,
    pub best_effort_vm_burst_bytes: Option<u64>,
    /// Reservations in force from the start (the desired state in etcd, once it names
    /// reservations, replaces them).
    #[serde(rename = "reservation")]
    pub reservations: Vec<QosReservation>,
    /// Benchmarks: shape during every other period of this many ms and count the cycles
    /// of both halves apart (`qos_ab` in the summary); 0 = always.
    pub alternate_ms: u64,
}

/// `[[qos.reservation]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosReservation {
    pub src_mac: String,
    pub dst_mac: String,
    pub mbps: f64,
    pub burst_bytes: Option<u64>,
}

impl QosSection {
    /// The static reservations, as the desired state names them.
    pub fn reservations(&self) -> Vec<crate::cluster::ReservationSpec> {
        self.reservations
            .iter()
            .map(|r| crate::cluster::ReservationSpec {
                src_mac: r.src_mac.clone(),
                dst_mac: r.dst_mac.clone(),
                mbps: r.mbps,
                burst_bytes: r.burst_bytes,
            })
            .collect()
    }
}

/// The overlay switch: this host's underlay identity, its VMs, its peers, the rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSection {
    /// This host's name, as the controller and `wrenvnet matrix` show it
    /// (default: the underlay IP).
    pub name: Option<String>,
    /// This host's underlay IPv4 address; the daemon answers ARP for it.
    pub underlay_ip: std::net::Ipv4Addr,
    /// VXLAN network identifier of the overlay.
    pub vni: u32,
    /// The [[port]] that is the NIC.
    pub nic: String,
    /// Underlay MTU; encapsulated frames above MTU + 14 bytes are dropped and counted.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default, rename = "vm")]
    pub vms: Vec<SwitchVm>,
    #[serde(default, rename = "peer")]
    pub peers: Vec<SwitchPeer>,
    /// Remote VMs: destination MAC → peer host.
    #[serde(default, rename = "rule")]
    pub rules: Vec<SwitchRule>,
    /// After a VM announced itself on another host, how long this host's rule to it
    /// counts as a forwarding pointer (frames peers still send here go on to it).
    #[serde(default = "default_pointer_lifetime_ms")]
    pub pointer_lifetime_ms: u64,
    /// How long a VM location learned from its announcement wins over a desired state
    /// that says otherwise (the controller's plan may predate the move).
    #[serde(default = "default_location_hold_ms")]
    pub location_hold_ms: u64,
}

fn default_pointer_lifetime_ms() -> u64 {
    5000
}

fn default_location_hold_ms() -> u64 {
    10_000
}

fn default_mtu() -> u16 {
    1500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchVm {
    /// The [[port]] the VM is attached to.
    pub port: String,
    /// The VM's MAC: frames to it go to this port.
    pub mac: String,
    /// Port security: frames from the port must come from a MAC the rules place behind
    /// it (its own), else they are dropped and counted (`SpoofedSource`). Off only for
    /// a port whose traffic carries other sources (a traffic generator, a nested switch).
    #[serde(default = "yes")]
    pub port_security: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchPeer {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    /// Optional: otherwise resolved by ARP.
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRule {
    pub dst_mac: String,
    /// The peer host (by name) behind which the destination lives.
    pub peer: String,
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC address {s:?}: want six hex bytes like 02:00:00:00:00:01");
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| anyhow::anyhow!("bad MAC address {s:?}"))?;
    }
    Ok(m)
}

/// The free measurement path: packet records from the workers to the analysis core.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSection {
    /// Off: workers forward without parsing or recording anything.
    pub enabled: bool,
    /// Records each worker's ring holds (64 bytes each; the ring's memory is a whole
    /// number of 2 MiB pages, on transparent huge pages where the kernel allows).
    pub ring_records: usize,
    /// Testing only: the analysis core waits this long between drains (a slow consumer).
    pub consumer_delay_us: u64,
    /// Fault injection (tests only): the analysis core stops draining the rings once,
    /// `stall_at_s` seconds after start, for `stall_for_ms` (a stalled analysis: the
    /// rings fill and drop records while the workers forward on).
    pub stall_at_s: Option<f64>,
    pub stall_for_ms: u64,
    /// Workers publish a burst's records at the top of their next loop instead of
    /// right after the burst: saves the store stall of the fence (~10 cycles/packet at
    /// 64 B here). Only for workers on cores of their own (isolated): a worker preempted
    /// between a burst and its next loop holds that burst's records for the other
    /// thread's time slice, late for the analysis core's merge. Ignored for a worker
    /// the EAL maps onto a CPU shared with another lcore.
    pub publish_per_loop: bool,
    /// Benchmarks only (switch mode): the workers record during every other period of
    /// this many milliseconds and count the cycles per packet of both halves apart
    /// (`monitor_ab` in the summary): monitoring's cost within one run, where the
    /// machine's slower drifts fall on both halves alike. 0 = record always.
    pub alternate_ms: u64,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            enabled: true,
            ring_records: 65536,
            consumer_delay_us: 0,
            stall_at_s: None,
            stall_for_ms: 0,
            publish_per_loop: false,
            alternate_ms: 0,
        }
    }
}

/// VTTIF's knobs, the same in the daemon's `[vttif]` section and on `wrenvnet analyze`.
#[derive(Debug, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct VttifSettings {
    /// VTTIF window (ms): traffic is counted per window and smoothed across windows.
    #[arg(long = "vttif-window-ms", default_value_t = 1000)]
    pub window_ms: u64,
    /// Weight of the newest window in the smoothed rate (EWMA), in (0, 1].
    #[arg(long = "vttif-alpha", default_value_t = 0.5)]
    pub ewma_alpha: f64,
    /// Matrix entries below this fraction of the largest are pruned from the topology.
    #[arg(long = "vttif-threshold", default_value_t = 0.10)]
    pub threshold: f64,
    /// Windows a new topology must persist before it is reported (damping).
    #[arg(long = "vttif-persist", default_value_t = 3)]
    pub persist_windows: usize,
}

impl Default for VttifSettings {
    fn default() -> Self {
        let c = analysis::vttif::Config::default();
        Self {
            window_ms: c.window_ns / 1_000_000,
            ewma_alpha: c.ewma_alpha,
            threshold: c.threshold,
            persist_windows: c.persist_windows,
        }
    }
}

impl VttifSettings {
    #[cold]
    pub fn to_config(&self, by_ip: bool) -> Result<analysis::vttif::Config> {
        if self.window_ms == 0 {
            bail!("vttif window must be at least 1 ms");
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            bail!("vttif alpha must be in (0, 1], got {}", self.ewma_alpha);
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            bail!("vttif threshold must be in [0, 1], got {}", self.threshold);
        }
        if self.persist_windows == 0 {
            bail!("vttif persist must be at least 1 window");
        }
        Ok(analysis::vttif::Config {
            window_ns: self.window_ms * 1_000_000,
            ewma_alpha: self.ewma_alpha,
            threshold: self.threshold,
            persist_windows: self.persist_windows,
            by_ip,
            ..Default::default()
        })
    }
}

/// EAL settings; arguments after `--` on the command line are appended and win.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// `-l`, e.g. "0-1": the first lcore is the main (control) lcore, the others run workers.
    pub lcores: Option<String>,
    pub file_prefix: Option<String>,
    #[serde(default)]
    pub in_memory: bool,
    #[serde(default)]
    pub no_huge: bool,
    pub memory_mb: Option<u32>,
    pub log_level: Option<String>,
    /// PCI NICs to probe (`-a`); naming any turns off `--no-pci`.
    #[serde(default)]
    pub pci: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    pub mbufs: u32,
    pub cache: u32,
}

impl Default for MempoolSection {
    fn default() -> Self {
        Self {
            mbufs: 16383,
            cache: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every packet from port 0 goes out of port 1 and the reverse (testpmd's io mode).
    Xconnect,
    /// The VXLAN overlay switch between VM ports and the NIC ([switch] section).
    Switch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneSection {
    pub mode: Mode,
    /// Forwarding workers; each gets its own rx and tx queue on every port.
    pub workers: u16,
    /// Packets per rx burst (1-64).
    pub burst: usize,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub stats_interval_ms: u64,
    /// Microseconds a worker sleeps after `idle_polls` empty polls; 0 = busy-poll always.
    pub idle_sleep_us: u32,
    pub idle_polls: u32,
    /// Switch mode: clock each stage of the loop (rx, record, forward, tx) per busy
    /// iteration, as VPP's per-node clocks (four more TSC reads a loop: for benchmarks).
    pub stage_clocks: bool,
}

impl DataplaneSection {
    /// How every port is opened: a queue pair per worker, the configured ring sizes.
    pub fn port_config(&self) -> dataplane::PortConfig {
        dataplane::PortConfig {
            rx_queues: self.workers,
            tx_queues: self.workers,
            rx_desc: self.rx_desc,
            tx_desc: self.tx_desc,
            promiscuous: true,
            mtu: None,
        }
    }
}

impl Default for DataplaneSection {
    fn default() -> Self {
        Self {
            mode: Mode::Xconnect,
            workers: 1,
            burst: 32,
            rx_desc: 1024,
            tx_desc: 1024,
            stats_interval_ms: 1000,
            idle_sleep_us: 0,
            idle_polls: 256,
            stage_clocks: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: String,
    /// DPDK devargs: "net_af_packet0,iface=veth0", "net_null0", "net_vhost0,iface=/run/vm0.sock",
    /// or a PCI address named in `eal.pci`.
    pub devargs: String,
    pub mtu: Option<u16>,
    #[serde(default = "default_true")]
    pub promiscuous: bool,
}

fn default_true() -> bool {
    true
}

/// A key with a replacement gets an error that names it.
#[cold]
fn with_replacement(e: toml::de::Error) -> anyhow::Error {
    if e.message().contains("unknown field `control_socket`") {
        anyhow::anyhow!(
            "{e}switch.control_socket: the daemon has no control socket; operators and the \
             controller use its HTTP API: set [api] unix = \"PATH\" and run \
             `wrenvnet rules|links|vms|status --api PATH`"
        )
    } else {
        e.into()
    }
}

impl Config {
    #[cold]
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    #[cold]
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: Config = toml::from_str(text).map_err(with_replacement)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        self.vttif.to_config(false).context("[vttif]")?;
        self.api.validate().context("[api]")?;
        self.validate_etcd()?;
        let m = &self.monitor;
        if m.stall_at_s
            .is_some_and(|at| !(0.0..=86_400.0).contains(&at))
            || m.stall_for_ms > 60_000
        {
            bail!("[monitor] stall_at_s must be within 0..86400 s and stall_for_ms at most 60000");
        }
        let d = &self.dataplane;
        if d.mode == Mode::Xconnect && self.ports.len() != 2 {
            bail!(
                "mode \"xconnect\" needs exactly two [[port]] sections, found {}",
                self.ports.len()
            );
        }
        if d.mode == Mode::Switch {
            let Some(sw) = &self.switch else {
                bail!("mode \"switch\" needs a [switch] section")
            };
            let port = |n: &str| self.ports.iter().any(|p| p.name == n);
            if !port(&sw.nic) {
                bail!("switch.nic {:?} is not a [[port]] name", sw.nic);
            }
            for v in &sw.vms {
                if !port(&v.port) || v.port == sw.nic {
                    bail!(
                        "switch vm port {:?} is not a [[port]] name (or is the NIC)",
                        v.port
                    );
                }
                parse_mac(&v.mac)?;
            }
            for p in &sw.peers {
                if let Some(m) = &p.mac {
                    parse_mac(m)?;
                }
            }
            for r in &sw.rules {
                parse_mac(&r.dst_mac)?;
                if !sw.peers.iter().any(|p| p.name == r.peer) {
                    bail!(
                        "switch rule for {} names unknown peer {:?}",
                        r.dst_mac,
                        r.peer
                    );
                }
            }
            if sw.vni >= 1 << 24 {
                bail!("switch.vni must be below 2^24, got {}", sw.vni);
            }
        }
        if d.workers == 0 {
            bail!("dataplane.workers must be at least 1");
        }
        if !(1..=64).contains(&d.burst) {
            bail!("dataplane.burst must be between 1 and 64, got {}", d.burst);
        }
        if d.stats_interval_ms == 0 {
            bail!("dataplane.stats_interval_ms must be at least 1");
        }
        if self.monitor.alternate_ms > 0 && !(self.monitor.enabled && d.mode == Mode::Switch) {
            bail!("monitor.alternate_ms needs mode \"switch\" with monitoring enabled");
        }
        self.validate_qos()?;
        if self.monitor.ring_records < 64 {
            bail!(
                "monitor.ring_records must be at least 64, got {}",
                self.monitor.ring_records
            );
        }
        if self.mempool.mbufs < 512 {
            bail!(
                "mempool.mbufs must be at least 512, got {}",
                self.mempool.mbufs
            );
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.devargs.trim().is_empty() {
                bail!("port {} ({}) has empty devargs", i, p.name);
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                bail!("port name {:?} is used twice", p.name);
            }
        }
        Ok(())
    }

    /// `[qos]`: mode "switch", every rate and burst within bounds, no pair twice, one
    /// A/B at a time.
    fn validate_qos(&self) -> Result<()> {
        let q = &self.qos;
        if *q == QosSection::default() {
            return Ok(());
        }
        if self.dataplane.mode != Mode::Switch {
            bail!("[qos] needs mode \"switch\" (it shapes the overlay's NIC egress)");
        }
        crate::daemon::qos::policy(q, &q.reservations(), self.dataplane.workers)
            .context("[qos]")?;
        if q.alternate_ms > 0 && self.monitor.alternate_ms > 0 {
            bail!("qos.alternate_ms and monitor.alternate_ms: one A/B at a time");
        }
        if q.learn_uplink && q.uplink_mbps.is_some() {
            bail!("qos.learn_uplink and qos.uplink_mbps: the capacity is learnt or given");
        }
        if !q.uplink_share.is_none_or(|s| s > 0.0 && s <= 1.0) {
            bail!("qos.uplink_share: a share of the capacity, above 0 and at most 1");
        }
        Ok(())
    }

    /// `[etcd]` works in mode "switch", where the host's name is its key.
    fn validate_etcd(&self) -> Result<()> {
        let Some(e) = &self.etcd else {
            return Ok(());
        };
        e.validate().context("[etcd]")?;
        let Some(sw) = self
            .switch
            .as_ref()
            .filter(|_| self.dataplane.mode == Mode::Switch)
        else {
            bail!("[etcd] needs mode \"switch\" (a host of the overlay)");
        };
        if let Some(name) = &sw.name {
            if name.is_empty() || name.contains('/') {
                bail!("switch.name {name:?} names this host's keys in etcd: not empty, no '/'");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_configs_parse() {
        for name in ["xconnect.example.toml", "switch.example.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(name);
            let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!cfg.ports.is_empty(), "{name}");
        }
    }

    const GOOD: &str = r#"
        [dataplane]
        mode = "xconnect"
        workers = 1
        rx_desc = 512
        tx_desc = 512
        stats_interval_ms = 500
        idle_sleep_us = 0
        idle_polls = 10

        [[port]]
        name = "a"
        devargs = "net_null0"

        [[port]]
        name = "b"
        devargs = "net_null1"
    "#;

    #[test]
    fn parses_a_complete_config() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].devargs, "net_null1");
        assert_eq!(c.dataplane.stats_interval_ms, 500);
        assert!(c.ports[0].promiscuous);
    }

    #[test]
    fn rejects_unknown_keys_wrong_port_counts_and_duplicates() {
        let typo = GOOD.replace("rx_desc", "rx_dsec");
        assert!(Config::parse(&typo).is_err());
        let one_port = r#"
            [[port]]
            name = "a"
            devargs = "net_null0"
        "#;
        let err = Config::parse(one_port).unwrap_err().to_string();
        assert!(err.contains("exactly two"), "{err}");
        let dup = GOOD.replace("name = \"b\"", "name = \"a\"");
        assert!(Config::parse(&dup)
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(Config::parse("[dataplane]\nmode = \"warp\"").is_err());
    }

    #[test]
    fn etcd_is_for_a_switch_and_its_settings_are_checked_at_start() {
        let etcd = "\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n";
        let err = format!("{:#}", Config::parse(&format!("{GOOD}{etcd}")).unwrap_err());
        assert!(err.contains("[etcd] needs mode \"switch\""), "{err}");
        let switch = GOOD.replace("\"xconnect\"", "\"switch\"")
            + "\n[switch]\nname = \"h0\"\nunderlay_ip = \"198.18.0.1\"\nvni = 1\nnic = \"a\"\n";
        let c = Config::parse(&format!("{switch}{etcd}")).unwrap();
        assert_eq!(c.etcd.unwrap().lease_ttl_s, 5);
        let bad_ttl = format!("{switch}{etcd}lease_ttl_s = 0\n");
        let err = format!("{:#}", Config::parse(&bad_ttl).unwrap_err());
        assert!(
            err.contains("[etcd]: etcd.lease_ttl_s must be 2..=60"),
            "{err}"
        );
        let slash = format!("{}{etcd}", switch.replace("\"h0\"", "\"h/0\""));
        let err = format!("{:#}", Config::parse(&slash).unwrap_err());
        assert!(err.contains("no '/'"), "{err}");
    }

    #[test]
    fn qos_is_for_a_switch_and_a_bad_value_is_refused_with_its_key_and_reason() {
        let switch = GOOD.replace("\"xconnect\"", "\"switch\"")
            + "\n[switch]\nunderlay_ip = \"198.18.0.1\"\nvni = 1\nnic = \"a\"\n";
        let qos = "\n[qos]\nuplink_mbps = 100\nbest_effort_vm_mbps = 50\n\
                   [[qos.reservation]]\nsrc_mac = \"02:00:00:00:01:01\"\n\
                   dst_mac = \"02:00:00:00:03:01\"\nmbps = 40\n";
        let c = Config::parse(&format!("{switch}{qos}")).unwrap();
        assert_eq!(c.qos.uplink_mbps, Some(100.0));
        assert_eq!(c.qos.reservations().len(), 1);
        let p = crate::daemon::qos::policy(&c.qos, &c.qos.reservations(), 1).unwrap();
        assert!(p.is_active() && !p.oversubscribed());
        // Nothing under [qos]: no policy to check, any mode.
        assert_eq!(Config::parse(GOOD).unwrap().qos, QosSection::default());
        let err = |text: String| format!("{:#}", Config::parse(&text).unwrap_err());
        let e = err(format!("{GOOD}{qos}"));
        assert!(e.contains("[qos] needs mode \"switch\""), "{e}");
        for (bad, want) in [
            (
                "uplink_mbps = 100",
                "uplink_mbps = 0",
                "qos.uplink_mbps: a rate must be above 0",
            ),
            (
                "uplink_mbps = 100",
                "uplink_mbps = -3",
                "qos.uplink_mbps: a rate",
            ),
            (
                "uplink_mbps = 100",
                "uplink_mbps = 1e9",
                "at most 400000 Mbit/s",
            ),
            (
                "best_effort_vm_mbps = 50",
                "best_effort_vm_mbps = 50\nbest_effort_vm_burst_bytes = 10",
                "a burst must be 9018..=67108864 bytes, got 10",
            ),
            (
                "mbps = 40",
                "mbps = 0",
                "reservation 02:00:00:00:01:01->02:00:00:00:03:01",
            ),
            ("\"02:00:00:00:03:01\"", "\"ff:ff:ff:ff:ff:ff\"", "unicast"),
            (
                "\"02:00:00:00:03:01\"",
                "\"02:00:00\"",
                "dst_mac: bad MAC address",
            ),
            ("mbps = 40", "mbps = 40\nburst = 5", "unknown field `burst`"),
            (
                "uplink_mbps = 100",
                "uplink_share = 1.2",
                "qos.uplink_share: a share of the capacity",
            ),
            (
                "uplink_mbps = 100",
                "uplink_mbps = 100\nlearn_uplink = true",
                "the capacity is learnt or given",
            ),
        ]
        .into_iter()
        .map(|(from, to, want)| (qos.replace(from, to), want))
        {
            let e = err(format!("{switch}{bad}"));
            assert!(e.contains(want), "{bad}: {e}");
        }
        let twice = format!("{switch}{qos}{}", &qos[qos.find("[[qos").unwrap()..]);
        assert!(err(twice).contains("two reservations for one source and destination pair"));
        let ab = qos.replace("[qos]\n", "[qos]\nalternate_ms = 5\n");
        assert_eq!(
            Config::parse(&format!("{switch}{ab}"))
                .unwrap()
                .qos
                .alternate_ms,
            5
        );
        let both = format!("{switch}{ab}[monitor]\nenabled = true\nalternate_ms = 5\n");
        let e = err(both);
        assert!(e.contains("one A/B at a time"), "{e}");
    }

    #[test]
    fn a_control_socket_key_is_refused_with_its_replacement_named() {
        let cfg = format!(
            "{GOOD}\n[switch]\nunderlay_ip = \"198.18.0.1\"\nvni = 1\nnic = \"a\"\n\
             control_socket = \"/run/x.sock\"\n"
        );
        let err = format!("{:#}", Config::parse(&cfg).unwrap_err());
        assert!(err.contains("unknown field `control_socket`"), "{err}");
        assert!(err.contains("[api] unix"), "{err}");
    }
}
