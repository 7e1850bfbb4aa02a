//! A lab of several hosts on one L2 fabric: a bridge in a "fabric" namespace joins
//! every host's NIC veth; each host namespace runs a wrenvnet daemon (switch mode,
//! af_packet ports) with its lab VMs (namespaces on veths) and its HTTP API on a unix
//! socket; every
//! daemon has a rule for every remote VM through that VM's host. Everything is removed
//! on drop (daemons killed by PID, namespaces deleted).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::*;
use testbed::presets;

pub struct Vm {
    pub ns: String,
    pub host: usize,
    pub mac: String,
    pub ip: String,
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub summary: PathBuf,
    pub socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = sh_out(&format!("kill -9 {} 2>/dev/null", self.child.id()));
    }
}

pub struct Fabric {
    pub fabric_ns: String,
    pub hosts: Vec<String>,
    pub vms: Vec<Vm>,
    pub daemons: Vec<Option<Daemon>>,
    pub dir: TempDir,
    /// Workers per daemon (each port then has as many queue pairs).
    pub workers: usize,
    // Dropped last: daemons die before their namespaces go.
    _ns: Namespaces,
}

fn quiet_link(ns: &str, iface: &str) {
    sh(&format!("ip -n {ns} link set {iface} up"));
    sh(&format!(
        "ip netns exec {ns} ethtool -K {iface} tx off tso off gso off gro off >/dev/null 2>&1 || true"
    ));
    sh(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv6.conf.{iface}.disable_ipv6=1"
    ));
}

impl Fabric {
    /// `hosts` hosts with `vms_per_host` VMs each. VM i (counting across hosts) gets
    /// IP 198.19.0.(10+i) and MAC 02:00:00:00:(host+1):(i+1); host h's underlay IP is
    /// 198.18.100.(h+1).
    pub fn new(tag: &str, hosts: usize, vms_per_host: usize) -> Self {
        Self::with_workers(tag, hosts, vms_per_host, 1)
    }

    /// As `new`, each daemon running `workers` workers (af_packet `qpairs`, the kernel's
    /// fanout hash spreading flows over them).
    pub fn with_workers(tag: &str, hosts: usize, vms_per_host: usize, workers: usize) -> Self {
        let id = std::process::id() % 10000;
        let fabric_ns = format!("wf{tag}fab{id}");
        let host_ns: Vec<String> = (0..hosts).map(|h| format!("wf{tag}h{h}-{id}")).collect();
        let mut vms = Vec::new();
        for h in 0..hosts {
            for _ in 0..vms_per_host {
                let i = vms.len();
                vms.push(Vm {
                    ns: format!("wf{tag}v{i}-{id}"),
                    host: h,
                    mac: format!("02:00:00:00:{:02x}:{:02x}", h + 1, i + 1),
                    ip: format!("198.19.0.{}", 10 + i),
                });
            }
        }
        let mut all = vec![fabric_ns.clone()];
        all.extend(host_ns.iter().cloned());
        all.extend(vms.iter().map(|v| v.ns.clone()));
        let ns = Namespaces::create(&all);
        sh(&format!(
            "ip -n {fabric_ns} link add br0 type bridge && ip -n {fabric_ns} link set br0 up"
        ));
        for (h, hn) in host_ns.iter().enumerate() {
            sh(&format!(
                "ip -n {hn} link add u type veth peer name f{h} netns {fabric_ns}"
            ));
            sh(&format!(
                "ip -n {fabric_ns} link set f{h} master br0 && ip -n {fabric_ns} link set f{h} up"
            ));
            quiet_link(hn, "u");
        }
        for (i, v) in vms.iter().enumerate() {
            let hn = &host_ns[v.host];
            sh(&format!(
                "ip -n {hn} link add vm{i} type veth peer name eth0 netns {}",
                v.ns
            ));
            sh(&format!(
                "ip -n {} link set eth0 address {} mtu 1450",
                v.ns, v.mac
            ));
            sh(&format!("ip -n {} addr add {}/24 dev eth0", v.ns, v.ip));
            quiet_link(hn, &format!("vm{i}"));
            quiet_link(&v.ns, "eth0");
        }
        let mut f = Fabric {
            fabric_ns,
            hosts: host_ns,
            vms,
            daemons: Vec::new(),
            dir: TempDir::new(&format!("fabric-{tag}")),
            workers,
            _ns: ns,
        };
        for h in 0..hosts {
            let d = f.start(h);
            f.daemons.push(Some(d));
        }
        f
    }

    pub fn socket(&self, h: usize) -> PathBuf {
        self.dir.0.join(format!("h{h}.sock"))
    }

    /// Host h's config: its VMs, every other host as a peer, a rule per remote VM.
    pub fn config(&self, h: usize) -> String {
        self.daemon_config(h).to_toml()
    }

    /// Host h's config, to change before it starts (`start_with`).
    pub fn daemon_config(&self, h: usize) -> testbed::DaemonConfig {
        let q = self.workers;
        let qpairs = |devargs: String| format!("{devargs},qpairs={q}");
        let mut c = presets::lab_switch(h as u8 + 1, &qpairs(presets::af_packet(0, "u")))
            .dataplane(|d| {
                d.stage_clocks = Some(true);
                d.workers = Some(q as u16);
            })
            .host_name(&format!("h{h}"))
            .api_unix(self.socket(h));
        let local = self.vms.iter().enumerate().filter(|(_, v)| v.host == h);
        for (k, (i, v)) in local.enumerate() {
            let iface = format!("vm{i}");
            c = c.vm(&iface, &qpairs(presets::af_packet(k + 1, &iface)), &v.mac);
        }
        for p in (0..self.hosts.len()).filter(|&p| p != h) {
            c = c.peer(&format!("h{p}"), presets::lab_ip(p as u8 + 1), None);
        }
        for v in self.vms.iter().filter(|v| v.host != h) {
            c = c.rule(&v.mac, &format!("h{}", v.host));
        }
        c
    }

    /// Starts host h's daemon and waits for its API socket.
    pub fn start(&self, h: usize) -> Daemon {
        self.start_with(h, &self.config(h))
    }

    /// Starts host h's daemon with `config` and waits for its API socket.
    pub fn start_with(&self, h: usize, config: &str) -> Daemon {
        // The main lcore on CPU 0, workers alternating over CPUs 1 and 0 (2-CPU machines).
        let lcores: Vec<String> = std::iter::once("0@0".to_string())
            .chain((1..=self.workers).map(|w| format!("{w}@{}", w % 2)))
            .collect();
        let (child, log, summary) = spawn_daemon_on(
            &self.hosts[h],
            &self.dir.0,
            &format!("h{h}"),
            config,
            &["--lcores".to_string(), lcores.join(",")],
        );
        let socket = self.socket(h);
        wait_for_path(&socket, &log);
        Daemon {
            child,
            log,
            summary,
            socket,
        }
    }

    pub fn log(&self, h: usize) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("h{h}.log"))).unwrap_or_default()
    }

    /// Waits (30 s at most) until VM `from` can ping VM `to`.
    pub fn wait_for_ping(&self, from: usize, to: usize) {
        let t0 = Instant::now();
        let (f, t) = (&self.vms[from], &self.vms[to]);
        while !sh_out(&format!("ip netns exec {} ping -c 1 -W 1 {}", f.ns, t.ip))
            .status
            .success()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no ping from {} to {} after 30 s: {}",
                f.ip,
                t.ip,
                self.log(f.host)
            );
        }
    }

    /// Pings from a VM of every host to a VM of the next, until every host pair has
    /// resolved its underlay MACs (ARP, once a second until answered: a daemon that
    /// started before its peer drops and counts `PeerUnresolved` until then); returns
    /// every daemon's drop counters at that point, to judge drops from there on.
    pub fn warm_up(&self) -> Vec<serde_json::Value> {
        let first: Vec<usize> = (0..self.hosts.len())
            .filter_map(|h| self.vms.iter().position(|v| v.host == h))
            .collect();
        for (i, &a) in first.iter().enumerate() {
            self.wait_for_ping(a, first[(i + 1) % first.len()]);
        }
        (0..self.hosts.len())
            .map(|h| self.api(h, "GET", "/stats", "").1["switch"]["drops"].clone())
            .collect()
    }

    /// Ends host h's daemon with SIGTERM; its summary (mbufs back in the pool checked).
    pub fn stop(&mut self, h: usize) -> serde_json::Value {
        let mut d = self.daemons[h].take().expect("daemon running");
        sh(&format!("kill -TERM {}", d.child.id()));
        let st = d.child.wait().unwrap();
        let log = std::fs::read_to_string(&d.log).unwrap();
        assert!(st.success(), "daemon h{h} exit {st}:\n{log}");
        assert!(log.contains("back in the pool"), "{log}");
        serde_json::from_slice(&std::fs::read(&d.summary).unwrap()).unwrap()
    }

    /// One request to host h's HTTP API: (accepted (HTTP 200), reply).
    pub fn api(&self, h: usize, method: &str, path: &str, body: &str) -> (bool, serde_json::Value) {
        let (status, v) = api(&self.socket(h), method, path, body);
        (status == 200, v)
    }

    /// `--api SOCKET` for every host, for the operator's commands.
    pub fn api_args(&self) -> Vec<String> {
        (0..self.hosts.len())
            .flat_map(|h| ["--api".to_string(), self.socket(h).display().to_string()])
            .collect()
    }
}

/// Asserts daemon `h`'s summary `s` counts no more drops for want of a rule, a peer, a
/// resolved MAC, room or size than `before` (its drop counters after warm-up).
pub fn assert_no_drops_since(h: usize, s: &serde_json::Value, before: &serde_json::Value) {
    let drops = &s["switch"]["drops"];
    for cause in [
        "NoRule",
        "PeerUnresolved",
        "TxFull",
        "NoMbuf",
        "Oversize",
        "HopLimit",
    ] {
        assert_eq!(
            drops[cause], before[cause],
            "h{h} dropped for {cause} after warm-up: {s}"
        );
    }
}
