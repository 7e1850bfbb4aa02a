//! Live migration of a real QEMU guest (TCG) between daemons with scripts/migrate-qemu.sh,
//! on the three-host fabric (tests/fabric): the guest serves iperf3 on a vhost-user
//! port of host 0 and moves to host 2 while host 1's VM sends to it; a migration whose
//! destination QEMU dies during the transfer leaves the guest where it was; back and
//! forth moves leave no port behind and every mbuf back in its pool. The daemons
//! converge by themselves: after each move every daemon's rule for the guest points at
//! its new host without the test (or a controller) touching them, moved by the
//! guest's announcement (`dataplane::switch::announce`). The test plays the
//! controller's part only once, when the guest first boots.

mod common;
mod fabric;

use common::qemu::{self, Guest};
use common::*;
use fabric::Fabric;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "02:00:00:00:01:77";
const IP: &str = "198.19.0.77";

/// The hook on the fabric's daemons: (its output, success).
fn migrate(f: &Fabric, port: &str, from: usize, to: usize, extra: &[&str]) -> Output {
    let dir = f.dir.0.display().to_string();
    let hook = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/migrate-qemu.sh");
    let out = Command::new(hook)
        .args(["--run-dir", &dir, "--api", &format!("{dir}/{{host}}.sock")])
        .args(extra)
        .args([MAC, port, &format!("h{from}"), &format!("h{to}")])
        .output()
        .expect("run migrate-qemu.sh");
    println!(
        "migrate h{from} -> h{to}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The guest's port on host h (the one VM port with its MAC), if any.
fn guest_port(f: &Fabric, h: usize) -> Option<String> {
    let vms = f.api(h, "GET", "/vms", "").1;
    vms["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["mac"] == MAC)
        .map(|v| v["port"].as_str().unwrap().to_string())
}

/// Where host h's rule for the guest points ("vm:PORT" or "peer:NAME").
fn rule(f: &Fabric, h: usize) -> Option<String> {
    let rules = f.api(h, "GET", "/rules", "").1;
    rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst_mac"] == MAC)
        .map(|r| r["to"].as_str().unwrap().to_string())
}

/// Points every other host's rule for the guest at host `at` (the controller's part).
fn follow(f: &Fabric, at: usize) {
    for h in (0..f.hosts.len()).filter(|&h| h != at) {
        let (ok, v) = f.api(
            h,
            "PUT",
            &format!("/rules/{MAC}"),
            &format!(r#"{{"to":"peer:h{at}"}}"#),
        );
        assert!(ok, "{v}");
    }
}

/// Waits (3 s at most) until every host's rule for the guest points at host `at` (its
/// port `port` there) without anyone setting them; then prints how long the last host
/// took after the destination learned the arrival (the hosts' `GET /locations`);
/// (when the destination learned it, Unix s; the last host's delay, ms).
fn converged(f: &Fabric, at: usize, port: &str) -> (f64, f64) {
    let want = |h: usize| match h == at {
        true => format!("vm:{port}"),
        false => format!("peer:h{at}"),
    };
    let t0 = Instant::now();
    for h in 0..f.hosts.len() {
        while rule(f, h) != Some(want(h)) {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "host {h}'s rule for the guest is {:?}, not {:?}",
                rule(f, h),
                want(h)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let learned = |h: usize| -> f64 {
        let v = f.api(h, "GET", "/locations", "").1;
        let l = v["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["mac"] == MAC);
        l.expect("a learned location")["learned_unix_s"]
            .as_f64()
            .unwrap()
    };
    let here = learned(at);
    let last = (0..f.hosts.len()).map(learned).fold(here, f64::max);
    println!(
        "converged on h{at}: last peer {:.1} ms after the arrival; pointer_forwarded so far          (source hosts) {}",
        (last - here) * 1e3,
        (0..f.hosts.len())
            .map(|h| f.api(h, "GET", "/stats", "").1["switch"]["pointer_forwarded"].to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    (here, (last - here) * 1e3)
}

/// QEMU's downtime as the hook reports it.
fn downtime_ms(out: &Output) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout);
    let w: Vec<&str> = text.split_whitespace().collect();
    let i = w
        .iter()
        .position(|x| *x == "qemu_downtime_ms")
        .expect("downtime");
    w[i + 1].parse().unwrap()
}

/// A 10 ms ping from `ns` to the guest, timestamped (-D), until killed.
fn pinger(ns: &str) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-D", "-i", "0.01", "-W", "1", IP,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// (lost pings × 10 ms, longest gap between replies in ms) of a pinger's output.
fn traffic_gap(out: &str) -> (f64, f64) {
    let replies: Vec<(u64, f64)> = out
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let t = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((seq, t))
        })
        .collect();
    // ping counts from icmp_seq 1.
    let last = replies.iter().map(|r| r.0).max().unwrap_or(0);
    let lost = last.saturating_sub(replies.len() as u64);
    let gap = replies
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) * 1e3)
        .fold(0.0, f64::max);
    (lost as f64 * 10.0, gap)
}

/// (received at, Unix s; round trip, ms) of each reply in a `ping -D` output.
fn timed_replies(out: &str) -> Vec<(f64, f64)> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let recv: f64 = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let rtt: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((recv, rtt))
        })
        .collect()
}

/// Of the pings sent after `t` (Unix s: the destination daemon learned the arrival,
/// the guest runs there), the first that was answered: (how long after `t` it was
/// sent, its round trip) in ms. A request sent a few ms after `t` and answered shows
/// the network carrying traffic to the guest's new place; its round trip, how long
/// the guest took to answer.
fn first_after(out: &str, t: f64) -> Option<(f64, f64)> {
    (timed_replies(out).into_iter())
        .map(|(recv, rtt)| (recv - rtt / 1e3, rtt))
        .filter(|(sent, _)| *sent >= t)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(sent, rtt)| ((sent - t) * 1e3, rtt))
}

/// A daemon's VM-port frame counters (`vm_rx`, `vm_tx` of `/stats`) sampled every
/// 2 ms while a migration comes to it: on the destination, whose own VM is idle,
/// they are the guest's frames.
struct VmFrames {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, u64, u64)>>,
}

struct Samples(Vec<(f64, u64, u64)>);

impl VmFrames {
    fn watch(sock: PathBuf) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (_, v) = api(&sock, "GET", "/stats", "");
                let n = |k: &str| v["switch"][k].as_u64().unwrap_or(0);
                out.push((unix_s(), n("vm_rx"), n("vm_tx")));
                std::thread::sleep(Duration::from_millis(2));
            }
            out
        });
        VmFrames { stop, thread }
    }

    fn stop(self) -> Samples {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Samples(self.thread.join().unwrap())
    }
}

impl Samples {
    /// How long after `t` (Unix s, ms) the counter `pick` (rx from, tx to the VM
    /// ports) had grown by 4 frames beyond its value at `t` (one frame may be the
    /// RARP the vhost library injects); -1 when it did not.
    fn first_after(&self, t: f64, pick: impl Fn(&(f64, u64, u64)) -> u64) -> f64 {
        let base = self.0.iter().rfind(|s| s.0 <= t).map_or(0, &pick);
        (self.0.iter())
            .find(|s| s.0 > t && pick(s) >= base + 4)
            .map_or(-1.0, |s| ((s.0 - t) * 1e4).round() / 10.0)
    }
}

/// The median round trip of the pings answered before `t` (Unix s).
fn rtt_before(out: &str, t: f64) -> f64 {
    let mut rtts: Vec<f64> = (timed_replies(out).into_iter())
        .filter_map(|(recv, rtt)| (recv < t).then_some(rtt))
        .collect();
    rtts.sort_by(f64::total_cmp);
    rtts.get(rtts.len() / 2).copied().unwrap_or(-1.0)
}

/// The destination QEMU that a migration left running (daemonized, known by pidfile).
fn qemu_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

struct KillPids(PathBuf);

impl Drop for KillPids {
    fn drop(&mut self) {
        for pid in qemu_pids(&self.0) {
            let _ = sh_out(&format!("kill -9 {pid} 2>/dev/null"));
        }
    }
}

/// Boots the guest on a vhost-user port `g` of host 0 (the other hosts' rules pointed
/// at it), serving iperf3 and reachable from host 1's VM; the guest and what kills
/// the QEMUs a migration leaves daemonized.
fn boot_guest(f: &Fabric) -> (Guest, KillPids) {
    let image = qemu::image();
    f.warm_up();
    let dir = f.dir.0.clone();
    let kill = KillPids(dir.clone());
    let sock = dir.join("h0-g.sock");
    let plug = format!(
        r#"{{"devargs":"net_vhost5,iface={},client=0","mac":"{MAC}"}}"#,
        sock.display()
    );
    let (ok, v) = f.api(0, "PUT", "/vms/g", &plug);
    assert!(ok, "{v}");
    follow(f, 0);
    let extra: Vec<String> = [
        "-qmp",
        &format!("unix:{}/h0-g.qmp,server=on,wait=off", dir.display()),
        "-pidfile",
        &format!("{}/h0-g.pid", dir.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let guest = Guest::boot_with(
        &image,
        &dir,
        "h0-g",
        &sock,
        MAC,
        &format!("wv.role=serve wv.ip={IP}"),
        &extra,
    );
    guest.wait_for("Server listening", Duration::from_secs(120));
    wait_reachable(&f.vms[1].ns);
    (guest, kill)
}

#[test]
fn a_qemu_guest_migrates_live_and_keeps_its_connection() {
    if !require_root() {
        return;
    }
    let mut f = Fabric::new("q", 3, 1);
    let (guest, _kill) = boot_guest(&f);
    let dir = f.dir.0.clone();
    let client_ns = f.vms[1].ns.clone();

    // 1. Host 0 -> host 2 while host 1's VM sends to the guest over TCP: the move
    // starts once the connection carries data, and the guest must acknowledge new
    // data on the same connection after it.
    let client = Client::start(&client_ns, 40);
    let flowing = acked_beyond(&client_ns, 0, 1 << 20, Duration::from_secs(30));
    assert!(
        flowing.is_some(),
        "no TCP data reached the guest in 30 s, before any migration\n{}",
        diagnosis(&f, &guest)
    );
    let ping = pinger(&client_ns);
    std::thread::sleep(Duration::from_secs(1));
    let out = migrate(&f, "g", 0, 2, &[]);
    assert!(out.status.success(), "the migration failed");
    let at_move = acked(&client_ns);
    let port = guest_port(&f, 2).expect("the guest's port on host 2");
    converged(&f, 2, &port);
    assert_eq!(guest_port(&f, 0), None, "the old port stays on host 0");
    let source = f.api(0, "GET", "/locations", "").1;
    assert!(
        source["locations"][0]["pointer"] == true,
        "host 0's rule is no forwarding pointer: {source}"
    );
    // Within TCP's own patience: a guest starved during the move (TCG on a busy host,
    // auto-converge's CPU throttle) may leave the sender backed off for tens of
    // seconds while the network already carries pings (their gap is printed).
    let resumed = acked_beyond(&client_ns, at_move, 1 << 20, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(1));
    sh(&format!("kill -INT {}", ping.id()));
    let pings = String::from_utf8(ping.wait_with_output().unwrap().stdout).unwrap();
    std::fs::write(dir.join("pings.txt"), &pings).unwrap();
    let (lost_ms, gap_ms) = traffic_gap(&pings);
    println!(
        "migration h0 -> h2: qemu_downtime_ms {} traffic_gap_ms lost {lost_ms} longest {gap_ms:.1}; \
         the TCP connection carried 1 MiB more {resumed:?} after QEMU completed",
        downtime_ms(&out),
    );
    assert!(
        resumed.is_some(),
        "the TCP connection did not survive: the guest acknowledged {} bytes in 90 s \
         after the move\n{}",
        acked(&client_ns) - at_move,
        diagnosis(&f, &guest)
    );
    drop(client);
    for h in 0..3 {
        let want = if h == 2 {
            format!("vm:{port}")
        } else {
            "peer:h2".into()
        };
        assert_eq!(rule(&f, h), Some(want), "host {h}'s rule");
    }

    // 2. A migration whose destination QEMU dies during the transfer (slowed to
    // 40 Mbit/s so that it lasts): the guest stays on host 2 with its port and rules.
    let rules_before: Vec<Option<String>> = (0..3).map(|h| rule(&f, h)).collect();
    let killer = {
        let dir = dir.clone();
        let source = qemu_pids(&dir);
        std::thread::spawn(move || kill_incoming(&dir, &source))
    };
    let out = migrate(&f, &port, 2, 0, &["--max-mbps", "40"]);
    assert!(killer.join().unwrap(), "no incoming migration seen to kill");
    assert!(!out.status.success(), "the migration did not fail");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("migration failed"), "{why}");
    assert_eq!(guest_port(&f, 2), Some(port.clone()));
    assert_eq!(guest_port(&f, 0), None, "the destination port stays");
    assert_eq!(
        (0..3).map(|h| rule(&f, h)).collect::<Vec<_>>(),
        rules_before
    );
    assert_eq!(qemu_pids(&dir).len(), 1, "the destination QEMU stays");
    assert_ping(&client_ns);

    // 3. Back and forth: host 2 -> 0 -> 2 -> 0 -> 2.
    let mut at = 2;
    let mut port = port;
    for to in [0, 2, 0, 2] {
        let out = migrate(&f, &port, at, to, &[]);
        assert!(out.status.success(), "migration h{at} -> h{to} failed");
        at = to;
        port = guest_port(&f, at).expect("the guest's new port");
        converged(&f, at, &port);
        assert_ping(&client_ns);
    }
    for h in 0..3 {
        let guest_ports = usize::from(h == at);
        let vms = f.api(h, "GET", "/vms", "").1["vms"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(vms, 1 + guest_ports, "host {h}'s VM ports");
    }
    let socks = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-g-m"))
        .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
        .count();
    assert_eq!(socks, 1, "vhost-user sockets left behind");
    drop(guest);
    drop(_kill);
    for h in 0..3 {
        f.stop(h); // checks that every mbuf is back in its pool
    }
}

/// Pauses the guest behind QMP socket `qmp` (`stop`) for `pause`, then resumes it
/// (`cont`); when it resumed (Unix s).
fn pause_resume(qmp: &Path, pause: Duration) -> f64 {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(qmp).expect("QMP");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    r.read_line(&mut String::new()).unwrap(); // the greeting
    let mut line = String::new();
    let mut answer = |s: &mut std::os::unix::net::UnixStream, cmd: &str| {
        s.write_all(format!("{{\"execute\":\"{cmd}\"}}\n").as_bytes())
            .unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.contains("\"return\"") || line.contains("\"error\"") {
                return;
            }
        }
    };
    answer(&mut s, "qmp_capabilities");
    answer(&mut s, "stop");
    std::thread::sleep(pause);
    answer(&mut s, "cont");
    unix_s()
}

/// The status of an incoming migration, asked over QMP socket `qmp` (None when QEMU
/// does not answer).
fn incoming_status(qmp: &Path) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(qmp).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?; // the greeting
    s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-migrate\"}\n")
        .ok()?;
    for _ in 0..10 {
        line.clear();
        r.read_line(&mut line).ok()?;
        let v: Value = serde_json::from_str(&line).ok()?;
        if let Some(st) = v["return"]["status"].as_str() {
            return Some(st.to_string());
        }
    }
    None
}

/// Waits for a destination QEMU (a pidfile in `dir` not among `source`) to be
/// receiving a migration, then kills it; whether it did.
fn kill_incoming(dir: &Path, source: &[u32]) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(120) {
        let pidfiles = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path());
        for p in pidfiles.filter(|p| p.extension().is_some_and(|x| x == "pid")) {
            let Some(pid) = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            else {
                continue;
            };
            if source.contains(&pid) {
                continue;
            }
            if incoming_status(&p.with_extension("qmp")).as_deref() == Some("active") {
                sh(&format!("kill -9 {pid}"));
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// An iperf3 client in a VM's namespace sending to the guest at `mbps` (a TCG guest
/// receiving at full rate dirties its memory faster than a migration copies it, and
/// the move would last tens of seconds); killed when dropped.
struct Client(Child);

impl Client {
    fn start(ns: &str, mbps: u32) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "-c", IP, "-t", "600"])
            .args(["-b", &format!("{mbps}M"), "--connect-timeout", "5000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Client(child)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The bytes the guest has acknowledged on the busiest TCP connection from `ns` to
/// its iperf3 server (`ss`'s bytes_acked): what crossed the network and reached the
/// guest's TCP, whatever the client's own report says.
fn acked(ns: &str) -> u64 {
    let out = sh_out(&format!(
        "ip netns exec {ns} ss -tinH dst {IP} dport = :5201"
    ));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_acked:")?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Waits until the guest has acknowledged `bytes` more than `from` on the client's
/// connection; the time it took, or None after `limit`.
fn acked_beyond(ns: &str, from: u64, bytes: u64, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if acked(ns) >= from + bytes {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// What the guest (its first QEMU's console) and the daemons show, for a failure's
/// message.
fn diagnosis(f: &Fabric, guest: &Guest) -> String {
    let console = guest.console();
    let tail = &console[console.len().saturating_sub(2000)..];
    let stats: Vec<String> = (0..f.hosts.len())
        .map(|h| f.api(h, "GET", "/stats", "").1.to_string())
        .collect();
    format!(
        "guest console (tail):\n{tail}\ndaemons' stats:\n{}",
        stats.join("\n")
    )
}

/// Waits (60 s at most) until `ns` reaches the guest.
fn wait_reachable(ns: &str) {
    let t0 = Instant::now();
    while !sh_out(&format!("ip netns exec {ns} ping -c 1 -W 1 {IP}"))
        .status
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the guest is unreachable"
        );
    }
}

/// Pings from `ns` reach the guest: five replies within 30 s (a TCG guest on a busy
/// host answers late, and a guest just back from a failed migration's CPU throttle
/// catches up for a while first).
fn assert_ping(ns: &str) {
    let out = sh_out(&format!(
        "ip netns exec {ns} ping -c 5 -i 0.2 -W 2 -w 30 {IP}"
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    let received: u32 = (text.split(", ").find_map(|w| w.strip_suffix(" received")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(received >= 5, "{text}");
}

/// The measurement behind bench/migrate.sh (not a timed test: it asserts only that
/// every migration moved the guest): `MIGRATIONS` moves (default 10) back and forth
/// between hosts 0 and 2 while host 1's VM sends to the guest over TCP at `MBPS`
/// (default 40) and pings it every 10 ms; one JSON line per migration into
/// `MIGRATE_OUT`.
#[test]
#[ignore = "a benchmark: bench/migrate.sh runs it"]
fn migrations_measured() {
    if !require_root() {
        return;
    }
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, mbps) = (env("MIGRATIONS", 10), env("MBPS", 40));
    // The other end of the moves: host 2, or host 1, where the sender is (the guest
    // then receives from a VM of its own daemon there).
    let other = env("OTHER_HOST", 2) as usize;
    assert!(other == 1 || other == 2, "OTHER_HOST is 1 or 2");
    let out_path = std::env::var("MIGRATE_OUT").expect("MIGRATE_OUT: the results file");
    let mut f = Fabric::new("qb", 3, 1);
    let (guest, kill) = boot_guest(&f);
    let client_ns = f.vms[1].ns.clone();
    let client = (mbps > 0).then(|| Client::start(&client_ns, mbps));
    if client.is_some() {
        let flowing = acked_beyond(&client_ns, 0, 1 << 20, Duration::from_secs(30));
        assert!(flowing.is_some(), "no TCP data\n{}", diagnosis(&f, &guest));
    }
    // The control: the guest paused and resumed in place for QEMU's typical downtime,
    // no migration: how late it answers a ping after a resume by itself.
    let ping = pinger(&client_ns);
    std::thread::sleep(Duration::from_secs(1));
    let qmp = f.dir.0.join("h0-g.qmp");
    let resumed_at = pause_resume(&qmp, Duration::from_millis(5));
    std::thread::sleep(Duration::from_secs(1));
    sh(&format!("kill -INT {}", ping.id()));
    let pings = String::from_utf8(ping.wait_with_output().unwrap().stdout).unwrap();
    let (sent, rtt) = first_after(&pings, resumed_at).unwrap_or((-1.0, -1.0));
    let control = serde_json::json!({"control": "pause 5 ms in place",
        "first_sent_after_resume_ms": sent, "its_rtt_ms": rtt,
        "rtt_before_ms": rtt_before(&pings, resumed_at)});
    println!("{control}");
    let (mut at, mut port, mut lines) = (0, "g".to_string(), format!("{control}\n"));
    for i in 0..n {
        let to = if at == 0 { other } else { 0 };
        let ping = pinger(&client_ns);
        std::thread::sleep(Duration::from_secs(1));
        let started = unix_s();
        let watch = VmFrames::watch(f.socket(to));
        let out = migrate(&f, &port, at, to, &[]);
        assert!(out.status.success(), "migration {i} h{at} -> h{to} failed");
        let at_move = acked(&client_ns);
        port = guest_port(&f, to).expect("the guest's new port");
        let (arrived, last_peer_ms) = converged(&f, to, &port);
        let resumed = client
            .as_ref()
            .and_then(|_| acked_beyond(&client_ns, at_move, 256 << 10, Duration::from_secs(60)));
        std::thread::sleep(Duration::from_secs(1));
        sh(&format!("kill -INT {}", ping.id()));
        let pings = String::from_utf8(ping.wait_with_output().unwrap().stdout).unwrap();
        let frames = watch.stop();
        let (lost_ms, gap_ms) = traffic_gap(&pings);
        let (first_ms, first_rtt_ms) = first_after(&pings, arrived).unwrap_or((-1.0, -1.0));
        let pointer: Vec<Value> = (0..3)
            .map(|h| f.api(h, "GET", "/stats", "").1["switch"]["pointer_forwarded"].clone())
            .collect();
        let row = serde_json::json!({
            "from": format!("h{at}"), "to": format!("h{to}"),
            "qemu_downtime_ms": downtime_ms(&out), "lost_ms": lost_ms,
            "traffic_gap_ms": (gap_ms * 10.0).round() / 10.0,
            "last_peer_ms": (last_peer_ms * 10.0).round() / 10.0,
            "tcp_resumed_s": resumed.map(|d| d.as_secs_f64()),
            "pointer_forwarded": pointer, "load_mbps": mbps,
            "first_sent_after_arrival_ms": first_ms, "its_rtt_ms": first_rtt_ms,
            "rtt_before_ms": rtt_before(&pings, started),
            "to_guest_ms": frames.first_after(arrived, |s| s.2),
            "from_guest_ms": frames.first_after(arrived, |s| s.1),
        });
        println!("{row}");
        lines += &format!("{row}\n");
        at = to;
    }
    std::fs::write(&out_path, lines).unwrap();
    drop(client);
    drop(guest);
    drop(kill);
    for h in 0..3 {
        f.stop(h); // checks that every mbuf is back in its pool
    }
}
