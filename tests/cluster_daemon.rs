//! The daemon as an etcd client (`[etcd]`), against real etcd members: it registers
//! under a lease and publishes its views; a desired state written to etcd is applied
//! and reported in `applied/`; a desired state present before it starts is in force
//! before it registers; with etcd gone it keeps forwarding with its rules, says so in
//! `/stats` and `/metrics`, and registers again when etcd returns; killed, its keys
//! leave with its lease; over TLS it connects with its client certificate, and without
//! one it is refused. Root: DPDK daemons (run under `flock /tmp/wrenvnet-root.lock`).

mod common;

use common::etcd::EtcdCluster;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testbed::{presets, DaemonConfig, Etcd};

const PREFIX: &str = "/wrenvnet/cd";
const TTL_S: u64 = 3;

/// One daemon at a time in this binary: the figures printed are each daemon's own,
/// not those of daemons competing for the two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pcap file (microseconds, Ethernet) holding `frames`.
fn pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut b = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        b.extend(v.to_le_bytes());
    }
    for f in frames {
        for v in [0u32, 0, f.len() as u32, f.len() as u32] {
            b.extend(v.to_le_bytes());
        }
        b.extend(f);
    }
    std::fs::write(path, b).unwrap();
}

/// A 60-byte IPv4 frame from the local VM to the remote one (behind peer B).
fn vm_frame() -> Vec<u8> {
    let mac = |s: &str| -> Vec<u8> {
        s.split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    };
    let mut f = mac(presets::REMOTE_MAC);
    f.extend(mac(presets::VM_MAC));
    f.extend([0x08, 0x00, 0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend([10, 0, 0, 1, 10, 0, 0, 2]);
    f.resize(60, 0);
    f
}

/// `[etcd]` for `etcd`: TTL 3 s, timeouts 500 ms, views every 250 ms.
fn etcd_section(etcd: &EtcdCluster) -> Etcd {
    Etcd {
        endpoints: etcd.endpoints(),
        prefix: Some(PREFIX.into()),
        lease_ttl_s: Some(TTL_S as i64),
        timeout_ms: Some(500),
        publish_interval_ms: Some(250),
        ..Etcd::default()
    }
}

/// A switch on pcap ports (one VM, peer B, a rule for the remote VM to B) named
/// `host`, its API on `dir/api.sock`. With `traffic` the VM port replays a frame to the
/// remote VM endlessly (monitoring off), so the switch encapsulates all along.
fn config(dir: &Path, host: &str, etcd: Etcd, traffic: bool) -> DaemonConfig {
    let empty = dir.join("empty.pcap");
    pcap(&empty, &[]);
    let frames = dir.join("vm.pcap");
    pcap(&frames, &[vm_frame()]);
    let nic = format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null", empty.display());
    let vm = if traffic {
        format!(
            "net_pcap1,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1",
            frames.display()
        )
    } else {
        format!("net_pcap1,rx_pcap={},tx_pcap=/dev/null", empty.display())
    };
    presets::one_vm_one_peer(&nic, &vm)
        .dataplane(|d| d.idle_sleep_us = Some(100))
        .monitor(|m| m.enabled = Some(!traffic))
        .host_name(host)
        .api_unix(dir.join("api.sock"))
        .etcd(etcd)
}

struct Daemon {
    child: Child,
    sock: PathBuf,
    log: PathBuf,
    started: Instant,
    _guard: KillOnDrop,
}

impl Daemon {
    fn start(dir: &Path, c: &DaemonConfig) -> Self {
        let cfg = write_file(dir, "d.toml", &c.to_toml());
        let mut eal = eal_mem_args(&format!("cd{}", dir.display().to_string().len()));
        eal.extend(["-l".into(), "0-1".into()]);
        let log = dir.join("d.log");
        let started = Instant::now();
        let child = Command::new(wrenvnet_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--")
            .args(&eal)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        let sock = dir.join("api.sock");
        wait_for_path(&sock, &log);
        Daemon {
            child,
            sock,
            log,
            started,
            _guard: guard,
        }
    }

    fn get(&self, path: &str) -> Value {
        let (status, v) = api(&self.sock, "GET", path, "");
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    fn etcd(&self) -> Value {
        self.get("/stats")["etcd"].clone()
    }

    fn rules(&self) -> Vec<(String, String)> {
        let v = self.get("/rules");
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dst_mac"].as_str().unwrap().into(),
                    r["to"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    fn metrics(&self) -> String {
        let s = std::os::unix::net::UnixStream::connect(&self.sock).unwrap();
        http(s, "GET", "/metrics", "", "").1
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status must be success.
    fn stop(mut self) {
        sh(&format!("kill -TERM {}", self.child.id()));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "daemon failed: {}", self.log());
    }
}

/// A daemon "h0" registered in a fresh `members`-member etcd, which held desired
/// revision `desired` (`desired_to_c`) before the daemon started.
struct Lab {
    d: Daemon,
    etcd: EtcdCluster,
    _dir: TempDir,
}

impl Lab {
    fn start(tag: &str, members: usize, desired: Option<u64>, traffic: bool) -> Self {
        let dir = TempDir::new(&format!("cd-{tag}"));
        let etcd = EtcdCluster::start(&format!("cd-{tag}"), members);
        if let Some(rev) = desired {
            etcd.put(&key("desired", "h0"), &desired_to_c(rev));
        }
        let d = Daemon::start(&dir.0, &config(&dir.0, "h0", etcd_section(&etcd), traffic));
        wait_until("hosts/h0", Duration::from_secs(15), || {
            etcd.get(&key("hosts", "h0")).is_some()
        });
        println!(
            "{tag}: daemon start -> hosts/h0 registered: {:.0} ms (EAL and ports included)",
            d.started.elapsed().as_secs_f64() * 1e3
        );
        Lab { d, etcd, _dir: dir }
    }
}

/// Polls `f` every 20 ms until it holds; how long that took. Panics after `limit`.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn key(dir: &str, host: &str) -> String {
    format!("{PREFIX}/{dir}/{host}")
}

/// The value at `key` as JSON, if any.
fn get_json(etcd: &EtcdCluster, key: &str) -> Option<Value> {
    etcd.get(key)
        .map(|v| serde_json::from_str(&v).unwrap_or_else(|e| panic!("{key}: {e}: {v}")))
}

/// `key`'s create revision in etcd (0: absent).
fn create_revision(etcd: &EtcdCluster, key: &str) -> i64 {
    let v: Value = serde_json::from_str(&etcd.ctl(&["get", "-w", "json", key])).unwrap();
    v["kvs"][0]["create_revision"].as_i64().unwrap_or(0)
}

const C_MAC: &str = "02:00:00:00:cc:01";

/// Revision `rev`: the remote VM moves behind a new link C, and a second remote VM
/// sits behind C too.
fn desired_to_c(rev: u64) -> String {
    format!(
        r#"{{"revision":{rev},"rules":{{"{}":"peer:C","{C_MAC}":"peer:C"}},"links":{{"C":{{"ip":"198.18.100.3","mac":"02:00:00:00:ff:03"}}}}}}"#,
        presets::REMOTE_MAC
    )
}

fn rules_to_c() -> Vec<(String, String)> {
    vec![
        (presets::VM_MAC.into(), "vm:vm".into()),
        (presets::REMOTE_MAC.into(), "peer:C".into()),
        (C_MAC.into(), "peer:C".into()),
    ]
}

#[test]
fn a_daemon_registers_publishes_its_views_and_applies_desired_state() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { d, etcd, _dir } = Lab::start("apply", 1, None, false);
    let host = get_json(&etcd, &key("hosts", "h0")).unwrap();
    assert_eq!(host["pid"], d.child.id(), "{host}");
    assert_eq!(host["underlay_ip"], presets::UNDERLAY_IP.to_string());
    let views = get_json(&etcd, &key("views", "h0")).expect("views/h0 with hosts/h0");
    assert_eq!(views["host"], "h0");
    let rules = views["rules"]["rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["dst_mac"] == presets::REMOTE_MAC && r["to"] == "peer:B"),
        "{views}"
    );
    assert_eq!(views["links"]["links"][0]["name"], "B", "{views}");
    assert_eq!(views["vms"]["vms"][0]["port"], "vm", "{views}");
    assert!(views["stats"]["switch"].is_object(), "{views}");
    assert!(
        views["matrix"]["vttif"].is_object(),
        "monitoring on: {views}"
    );
    // Views are published every interval.
    let at = views["at_unix_s"].as_f64().unwrap();
    let newer = wait_until("a newer views/h0", Duration::from_secs(5), || {
        get_json(&etcd, &key("views", "h0")).unwrap()["at_unix_s"].as_f64() > Some(at)
    });
    println!(
        "views/h0 republished within {:.0} ms (interval 250 ms)",
        newer.as_secs_f64() * 1e3
    );

    let put_at = unix_now();
    etcd.put(&key("desired", "h0"), &desired_to_c(1));
    let seen = wait_until("applied/h0 revision 1", Duration::from_secs(10), || {
        get_json(&etcd, &key("applied", "h0")).is_some_and(|a| a["revision"] == 1)
    });
    let applied = get_json(&etcd, &key("applied", "h0")).unwrap();
    println!(
        "desired put (etcdctl start) -> rules applied on the daemon: {:.1} ms; \
         put returned -> applied/h0 seen by etcdctl polls: {:.0} ms",
        (applied["at_unix_s"].as_f64().unwrap() - put_at) * 1e3,
        seen.as_secs_f64() * 1e3
    );
    assert_eq!(applied["errors"], serde_json::json!([]), "{applied}");
    assert_eq!(d.rules(), rules_to_c());
    let e = d.etcd();
    assert_eq!(
        (e["connected"].as_bool(), e["applied_revision"].as_u64()),
        (Some(true), Some(1)),
        "{e}"
    );
    let m = d.metrics();
    for line in [
        "wrenvnet_etcd_connected{host=\"h0\"} 1",
        "wrenvnet_etcd_applied_revision{host=\"h0\"} 1",
        "wrenvnet_etcd_seconds_since_contact{host=\"h0\"}",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
    let status =
        String::from_utf8(wrenvnet_ok(["status", "--api", d.sock.to_str().unwrap()])).unwrap();
    assert!(
        status.contains("etcd: connected, applied revision 1"),
        "{status}"
    );

    // A refused rule is reported with its reason; the rest of the revision applies.
    let rev2 = desired_to_c(2).replace("peer:C\",\"02", "peer:nowhere\",\"02");
    etcd.put(&key("desired", "h0"), &rev2);
    wait_until("applied/h0 revision 2", Duration::from_secs(10), || {
        get_json(&etcd, &key("applied", "h0")).is_some_and(|a| a["revision"] == 2)
    });
    let applied = get_json(&etcd, &key("applied", "h0")).unwrap();
    let errors = applied["errors"].to_string();
    assert!(errors.contains("no link \\\"nowhere\\\""), "{applied}");
    assert_eq!(
        d.rules(),
        rules_to_c(),
        "the refused rule's MAC keeps its rule"
    );
    d.stop();
    assert!(
        etcd.get(&key("hosts", "h0")).is_none(),
        "a clean exit revokes the lease"
    );
}

#[test]
fn desired_state_present_at_start_is_in_force_before_the_host_registers() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { d, etcd, _dir } = Lab::start("cold", 1, Some(7), false);
    let (applied_at, host_at) = (
        create_revision(&etcd, &key("applied", "h0")),
        create_revision(&etcd, &key("hosts", "h0")),
    );
    println!("etcd revisions: applied/h0 created at {applied_at}, hosts/h0 at {host_at}");
    assert!(
        applied_at > 0 && applied_at < host_at,
        "applied/h0 ({applied_at}) must precede hosts/h0 ({host_at})"
    );
    assert_eq!(
        get_json(&etcd, &key("applied", "h0")).unwrap()["revision"],
        7
    );
    assert_eq!(d.rules(), rules_to_c());
    let log = d.log();
    let (applied, registered) = (
        log.find("applied desired revision 7")
            .or(log.find("desired revision 7")),
        log.find("etcd: registered"),
    );
    assert!(applied < registered && applied.is_some(), "{log}");
    d.stop();
}

#[test]
fn with_etcd_gone_the_daemon_forwards_says_so_and_registers_again() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { d, mut etcd, _dir } = Lab::start("outage", 1, None, true);
    let encap = |d: &Daemon| d.get("/stats")["switch"]["encapsulated"].as_u64().unwrap();
    let rules = d.rules();
    etcd.kill(0);
    let down = Instant::now();
    let noticed = wait_until("/stats says disconnected", Duration::from_secs(10), || {
        d.etcd()["connected"] == false
    });
    println!(
        "etcd killed -> /stats connected=false: {:.0} ms",
        noticed.as_secs_f64() * 1e3
    );
    let before = encap(&d);
    std::thread::sleep(Duration::from_secs(3));
    let during = encap(&d) - before;
    let e = d.etcd();
    println!(
        "etcd down {:.1} s: {during} frames encapsulated in the last 3 s, etcd status {e}",
        down.elapsed().as_secs_f64()
    );
    assert!(during > 0, "the switch forwards while etcd is down");
    assert_eq!(d.rules(), rules, "the rules stand");
    assert!(e["seconds_since_contact"].as_f64().unwrap() >= 2.0, "{e}");
    assert!(
        e["errors"].as_u64().unwrap() > 0 && e["last_error"] != "",
        "{e}"
    );
    assert!(d
        .metrics()
        .contains("wrenvnet_etcd_connected{host=\"h0\"} 0"));
    let status =
        String::from_utf8(wrenvnet_ok(["status", "--api", d.sock.to_str().unwrap()])).unwrap();
    assert!(status.contains("etcd: DISCONNECTED"), "{status}");

    etcd.restart(0);
    let back = Instant::now();
    let again = wait_until("registered again", Duration::from_secs(15), || {
        let e = d.etcd();
        e["connected"] == true && e["registrations"] == 2
    });
    wait_until("hosts/h0 again", Duration::from_secs(5), || {
        etcd.get(&key("hosts", "h0")).is_some()
    });
    println!(
        "etcd serving again -> daemon registered again: {:.0} ms (outage {:.1} s)",
        again.as_secs_f64() * 1e3,
        (back - down).as_secs_f64()
    );
    assert!(get_json(&etcd, &key("views", "h0")).is_some());
    d.stop();
}

#[test]
fn a_killed_daemon_leaves_hosts_and_views_within_its_lease_ttl() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { mut d, etcd, _dir } = Lab::start("kill", 1, Some(3), false);
    wait_until("views/h0", Duration::from_secs(5), || {
        etcd.get(&key("views", "h0")).is_some()
    });
    d.child.kill().unwrap(); // SIGKILL
    d.child.wait().unwrap();
    let limit = Duration::from_secs(TTL_S + 3);
    let gone = wait_until("hosts/h0 and views/h0 gone", limit, || {
        etcd.keys(&format!("{PREFIX}/hosts/")).is_empty()
            && etcd.keys(&format!("{PREFIX}/views/")).is_empty()
    });
    println!(
        "SIGKILL -> hosts/h0 and views/h0 gone: {:.0} ms (lease TTL {TTL_S} s)",
        gone.as_secs_f64() * 1e3
    );
    assert!(
        etcd.get(&key("applied", "h0")).is_none(),
        "applied/ is on the lease too"
    );
    assert!(
        etcd.get(&key("desired", "h0")).is_some(),
        "desired state outlives the host"
    );
}

#[test]
fn over_tls_the_daemon_connects_with_its_client_certificate_and_without_one_is_refused() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let etcd = EtcdCluster::start_tls("cd-tls", 1);
    let pki = etcd.pki().unwrap().to_path_buf();
    let tls = Etcd {
        ca_file: Some(pki.join("ca.crt")),
        cert_file: Some(pki.join("client.crt")),
        key_file: Some(pki.join("client.key")),
        ..etcd_section(&etcd)
    };
    let no_cert = Etcd {
        cert_file: None,
        key_file: None,
        ..tls.clone()
    };
    let dir = TempDir::new("cd-tls-nocert");
    let d = Daemon::start(&dir.0, &config(&dir.0, "h1", no_cert, false));
    wait_until("an error in /stats", Duration::from_secs(10), || {
        d.etcd()["errors"].as_u64() > Some(0)
    });
    let e = d.etcd();
    println!("without a client certificate: {e}");
    assert_eq!(e["connected"], false, "{e}");
    assert!(etcd.get(&key("hosts", "h1")).is_none());
    d.stop();

    let dir = TempDir::new("cd-tls");
    let d = Daemon::start(&dir.0, &config(&dir.0, "h0", tls, false));
    wait_until("hosts/h0 over TLS", Duration::from_secs(15), || {
        etcd.get(&key("hosts", "h0")).is_some()
    });
    println!(
        "over TLS with a client certificate: daemon start -> hosts/h0: {:.0} ms",
        d.started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(d.etcd()["connected"], true);
    d.stop();
}

/// The PID of the process listening on TCP `port` (an etcd member).
fn listener_pid(port: &str) -> u32 {
    let out = sh(&format!("ss -Hltnp 'sport = :{port}'"));
    let pid = out.split("pid=").nth(1).and_then(|s| s.split(',').next());
    pid.and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {port}: {out}"))
}

/// The index of the member (among `etcd`'s endpoints) process `pid` has a connection to.
fn member_in_use(etcd: &EtcdCluster, pid: u32) -> Option<usize> {
    let conns = sh("ss -Htnp state established");
    etcd.endpoints().iter().position(|e| {
        let port = e.rsplit(':').next().unwrap();
        conns.lines().any(|l| {
            l.contains(&format!("pid={pid},"))
                && l.split_whitespace()
                    .any(|w| w.ends_with(&format!(":{port}")))
        })
    })
}

#[test]
fn the_member_a_daemon_talks_to_dies_and_the_host_stays_registered() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { d, mut etcd, _dir } = Lab::start("member", 3, None, true);
    let used = member_in_use(&etcd, d.child.id()).expect("a connection to a member");
    let encap = |d: &Daemon| d.get("/stats")["switch"]["encapsulated"].as_u64().unwrap();
    let before = encap(&d);
    etcd.kill(used);
    let back = wait_until(
        "registered through another member",
        Duration::from_secs(10),
        || {
            let e = d.etcd();
            e["connected"] == true && e["registrations"] == 2
        },
    );
    let now_used = member_in_use(&etcd, d.child.id());
    println!(
        "member m{used} killed -> registered through m{} : {:.0} ms",
        now_used.map_or("?".into(), |m| m.to_string()),
        back.as_secs_f64() * 1e3
    );
    assert!(now_used.is_some_and(|m| m != used));
    // The host never left hosts/ (its former lease lives on the surviving members).
    assert!(etcd.get(&key("hosts", "h0")).is_some());
    etcd.put(&key("desired", "h0"), &desired_to_c(1));
    wait_until("applied/h0 revision 1", Duration::from_secs(10), || {
        get_json(&etcd, &key("applied", "h0")).is_some_and(|a| a["revision"] == 1)
    });
    assert_eq!(d.rules(), rules_to_c());
    assert!(encap(&d) > before, "forwarding went on");
    std::thread::sleep(Duration::from_millis(TTL_S * 1000 + 500));
    let leases = etcd.ctl(&["lease", "list"]);
    println!("leases after a TTL: {}", leases.replace('\n', " "));
    assert!(
        leases.starts_with("found 1 leases"),
        "one lease left: {leases}"
    );
    d.stop();
}

#[test]
fn a_member_that_hangs_is_noticed_by_the_keep_alive_and_the_daemon_comes_back() {
    if !require_root() {
        return;
    }
    let _one = one_at_a_time();
    let Lab { d, etcd, _dir } = Lab::start("hang", 1, None, false);
    let pid = listener_pid(etcd.endpoint(0).rsplit(':').next().unwrap());
    sh(&format!("kill -STOP {pid}"));
    let stopped = Instant::now();
    // Keep-alives go every TTL/3 = 1 s and wait 500 ms for their answer.
    let noticed = std::panic::catch_unwind(|| {
        wait_until("/stats disconnected", Duration::from_secs(5), || {
            d.etcd()["connected"] == false
        })
    });
    std::thread::sleep(Duration::from_secs(1));
    sh(&format!("kill -CONT {pid}"));
    let noticed = noticed.expect("a hung member is noticed");
    println!(
        "etcd SIGSTOPped -> /stats connected=false: {:.0} ms (keep-alive every 1 s, timeout 500 ms)",
        noticed.as_secs_f64() * 1e3
    );
    let again = wait_until("registered again", Duration::from_secs(15), || {
        let e = d.etcd();
        e["connected"] == true && e["registrations"] == 2
    });
    println!(
        "SIGCONT -> registered again: {:.0} ms (stopped {:.1} s)",
        again.as_secs_f64() * 1e3,
        stopped.elapsed().as_secs_f64() - again.as_secs_f64()
    );
    assert!(etcd.get(&key("hosts", "h0")).is_some());
    d.stop();
}
