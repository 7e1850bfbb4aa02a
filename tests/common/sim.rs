//! A simulated fleet for the controller's tests: hosts whose daemons are only their
//! `views/<host>` keys in a real etcd (the documents a daemon's API serves), controller
//! replicas started as processes, and readers of what they write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::etcd::EtcdCluster;
use super::*;

pub const PREFIX: &str = "/wrenvnet/cc";
pub const LEASE_TTL_S: u64 = 3;

pub fn key(rel: &str) -> String {
    format!("{PREFIX}/{rel}")
}

/// A simulated daemon: what it publishes in `views/<host>`.
#[derive(Clone)]
pub struct SimHost {
    pub name: String,
    pub underlay_ip: String,
    /// (MAC, IP, port) of its VMs.
    pub vms: Vec<(String, String, String)>,
    /// Destination MAC -> "vm:PORT" | "peer:NAME".
    pub rules: BTreeMap<String, String>,
    pub links: Vec<String>,
    pub rows: Vec<Value>,
    pub paths: Vec<Value>,
    /// What its daemon says it shapes its uplink at (`stats.uplink_mbps`).
    pub uplink_mbps: Option<f64>,
}

impl SimHost {
    pub fn views(&self) -> String {
        let h = &self.name;
        let local: Vec<&String> = self.vms.iter().map(|v| &v.0).collect();
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|(m, to)| json!({"dst_mac": m, "to": to}))
            .collect();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|p| json!({"name": p, "ip": "0.0.0.0", "mac": null, "rules": 0}))
            .collect();
        let monitored = !self.rows.is_empty() || !self.paths.is_empty();
        json!({
            "host": h,
            "at_unix_s": 0.0,
            "rules": {"ok": true, "host": h, "rules": rules},
            "links": {"ok": true, "host": h, "underlay_ip": self.underlay_ip, "links": links},
            "vms": {"ok": true, "host": h, "vms": []},
            "paths": if monitored {
                json!({"ok": true, "host": h, "local_vms": local, "wren": {"paths": self.paths}})
            } else { Value::Null },
            "matrix": if monitored {
                json!({"ok": true, "host": h, "local_vms": local, "vttif": {"rows": self.rows}})
            } else { Value::Null },
            "stats": {"uplink_mbps": self.uplink_mbps},
        })
        .to_string()
    }

    pub fn publish(&self, etcd: &EtcdCluster) {
        etcd.put(&key(&format!("views/{}", self.name)), &self.views());
    }
}

/// Hosts `names`, each with the VMs `vms[i]` (MAC, IP), every host's rules straight to
/// every remote VM, every host linked to every other.
pub fn fleet(names: &[&str], vms: &[&[(&str, &str)]]) -> Vec<SimHost> {
    let all: Vec<(String, &str)> = names
        .iter()
        .zip(vms)
        .flat_map(|(h, v)| v.iter().map(move |(m, _)| (m.to_string(), *h)))
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, h)| SimHost {
            name: h.to_string(),
            underlay_ip: format!("198.18.0.{}", i + 1),
            vms: vms[i]
                .iter()
                .enumerate()
                .map(|(k, (m, ip))| (m.to_string(), ip.to_string(), format!("p{k}")))
                .collect(),
            rules: all
                .iter()
                .map(|(m, on)| {
                    let to = if on == h {
                        let k = vms[i].iter().position(|(x, _)| x == m).unwrap();
                        format!("vm:p{k}")
                    } else {
                        format!("peer:{on}")
                    };
                    (m.clone(), to)
                })
                .collect(),
            links: names
                .iter()
                .filter(|x| *x != h)
                .map(|x| x.to_string())
                .collect(),
            rows: Vec::new(),
            paths: Vec::new(),
            uplink_mbps: None,
        })
        .collect()
}

pub const A1: (&str, &str) = ("02:00:00:00:0a:01", "10.9.0.1");
pub const B1: (&str, &str) = ("02:00:00:00:0b:01", "10.9.0.2");
pub const C1: (&str, &str) = ("02:00:00:00:0c:01", "10.9.0.3");
pub const C2: (&str, &str) = ("02:00:00:00:0c:02", "10.9.0.4");

/// A, B, C with one VM each; A's VM sends 20 Mbit/s to C's.
pub fn triangle() -> Vec<SimHost> {
    let mut f = fleet(&["A", "B", "C"], &[&[A1], &[B1], &[C1]]);
    f[0].rows.push(row(A1, C1, 20.0));
    f
}

pub fn row(src: (&str, &str), dst: (&str, &str), mbps: f64) -> Value {
    json!({"src": src.0, "dst": dst.0, "bytes": 1_000_000, "packets": 1000,
        "rate_mbps": mbps, "smoothed_mbps": mbps, "src_also": src.1, "dst_also": dst.1})
}

/// Wren's answer on the path src -> dst: an estimate of `mbps` on 10 trains.
pub fn path(src: (&str, &str), dst: (&str, &str), mbps: f64) -> Value {
    json!({"src": src.1, "dst": dst.1, "avail_bw_kind": "estimate", "avail_bw_mbps": mbps,
        "rtt_min_us": 10000.0, "throughput_mbps": 9.0, "trains": 10})
}

pub fn config(dir: &Path, etcd: &EtcdCluster, id: &str, hosts: &[SimHost]) -> PathBuf {
    let mut text = format!(
        "[controller]\ninterval_ms = 250\nmin_interval_s = 1\nmin_trains = 3\n\
         default_link_bw_mbps = 100\nevents_file = \"{}\"\n",
        dir.join(format!("{id}.events")).display()
    );
    for h in hosts {
        text += &format!("[[host]]\nname = \"{}\"\n", h.name);
    }
    text += &format!(
        "[etcd]\nendpoints = {}\nprefix = \"{PREFIX}\"\nlease_ttl_s = {LEASE_TTL_S}\ntimeout_ms = 500\n",
        etcd.endpoints_toml()
    );
    write_file(dir, &format!("{id}.toml"), &text)
}

/// One `wrenvnet controller` replica, SIGKILLed on drop if it still runs.
pub struct Replica {
    pub id: String,
    pub child: Child,
    pub dir: PathBuf,
}

impl Replica {
    pub fn start(dir: &Path, etcd: &EtcdCluster, id: &str, hosts: &[SimHost]) -> Self {
        let cfg = config(dir, etcd, id, hosts);
        let log = std::fs::File::create(dir.join(format!("{id}.log"))).unwrap();
        let child = Command::new(wrenvnet_bin())
            .args(["controller", "--replica-id", id, "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn wrenvnet controller");
        Replica {
            id: id.to_string(),
            child,
            dir: dir.to_path_buf(),
        }
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(format!("{}.events", self.id)))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.id))).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 50 ms for `limit`; how long it took to hold.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

pub fn get_json(etcd: &EtcdCluster, rel: &str) -> Option<Value> {
    etcd.get(&key(rel))
        .map(|v| serde_json::from_str(&v).unwrap())
}

pub fn plan(etcd: &EtcdCluster) -> Option<Value> {
    get_json(etcd, "plan")
}

pub fn desired_rule(etcd: &EtcdCluster, host: &str, mac: &str) -> Option<String> {
    get_json(etcd, &format!("desired/{host}"))?["rules"][mac]
        .as_str()
        .map(str::to_string)
}

/// Every `desired/` value, by key.
pub fn all_desired(etcd: &EtcdCluster) -> BTreeMap<String, String> {
    etcd.keys(&key("desired/"))
        .into_iter()
        .map(|k| {
            let v = etcd.get(&k).unwrap_or_default();
            (k, v)
        })
        .collect()
}

/// `wrenvnet CMD --json` against `etcd`: its report.
pub fn operator(etcd: &EtcdCluster, cmd: &str) -> Value {
    let mut args = vec![
        cmd.to_string(),
        "--json".into(),
        "--prefix".into(),
        PREFIX.into(),
    ];
    for e in etcd.endpoints() {
        args.extend(["--endpoint".into(), e]);
    }
    serde_json::from_slice(&wrenvnet_ok(&args)).unwrap()
}

/// Everything a leader writes: `desired/`, `plan`, the keys of `decisions/`.
#[derive(Debug, PartialEq)]
pub struct Written {
    pub desired: BTreeMap<String, String>,
    pub plan: Option<String>,
    pub decisions: Vec<String>,
}

impl Written {
    pub fn of(etcd: &EtcdCluster) -> Self {
        Written {
            desired: all_desired(etcd),
            plan: etcd.get(&key("plan")),
            decisions: etcd.keys(&key("decisions/")),
        }
    }
}

/// The replica id holding the election (the oldest candidate key).
pub fn leader(etcd: &EtcdCluster) -> Option<String> {
    let out = etcd.ctl(&[
        "get",
        "--prefix",
        &key("leader/"),
        "--sort-by=CREATE",
        "--order=ASCEND",
        "--limit=1",
        "--print-value-only",
    ]);
    let v = out.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Waits for the leader to write `mac` on A through B at `revision`; how long it took.
pub fn wait_reroute(etcd: &EtcdCluster, mac: &str, revision: u64, who: &Replica) -> Duration {
    let t = wait_for(Duration::from_secs(20), || {
        desired_rule(etcd, "A", mac).as_deref() == Some("peer:B")
    })
    .unwrap_or_else(|| panic!("no reroute of {mac}: {}", who.log()));
    let a = get_json(etcd, "desired/A").unwrap();
    assert_eq!(a["revision"], revision, "{a}");
    t
}

/// A 3-member etcd cluster with the triangle's views.
pub fn triangle_cluster(tag: &str) -> (TempDir, EtcdCluster, Vec<SimHost>) {
    let dir = TempDir::new(tag);
    let etcd = EtcdCluster::start(tag, 3);
    let hosts = triangle();
    for h in &hosts {
        h.publish(&etcd);
    }
    (dir, etcd, hosts)
}

/// The triangle's cluster and one replica r0 that has written the cold-start plan
/// (revision 1).
pub fn one_replica(tag: &str) -> (TempDir, EtcdCluster, Vec<SimHost>, Replica) {
    let (dir, etcd, hosts) = triangle_cluster(tag);
    let r0 = Replica::start(&dir.0, &etcd, "r0", &hosts);
    wait_for(Duration::from_secs(15), || {
        plan(&etcd).is_some_and(|p| p["revision"] == 1)
    })
    .unwrap_or_else(|| panic!("no plan: {}", r0.log()));
    (dir, etcd, hosts, r0)
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn logs(replicas: &[&Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {} ---\n{}", r.id, r.log()))
        .collect()
}
