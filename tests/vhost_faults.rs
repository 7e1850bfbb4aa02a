//! Faults of vhost-user guests, end to end with real QEMU guests (TCG): the daemon
//! killed under running guests, a guest killed and booted again on its socket. Each
//! asserts that traffic comes back, that the other VMs' traffic goes on and that no
//! mbuf leaks, and prints what it measured.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Per-second rates' (median, minimum, seconds below a tenth of the median).
fn stalls(rates: &[f64]) -> (f64, f64, usize) {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let stalled = rates.iter().filter(|&&r| r < median / 10.0).count();
    (median, sorted[0], stalled)
}

/// A vhost-user lab: host A (namespace) serves QEMU guest ports over vhost-user, host
/// B an af_packet VM (namespace `vb`, 198.19.0.2, running iperf3 -s); the hosts'
/// NICs a veth pair. With `neighbour`, host A also has an af_packet VM (namespace
/// `va`, 198.19.0.3). Returns the namespaces (removed on drop), A's config and B's
/// daemon.
struct VhostLab {
    dir: TempDir,
    ha: String,
    hb: String,
    vb: String,
    va: Option<String>,
    cfg_a: testbed::DaemonConfig,
    _ns: Namespaces,
}

impl VhostLab {
    const GUEST_MAC: &str = "02:00:00:00:0a:01";
    const VB_MAC: &str = "02:00:00:00:0b:01";
    const VA_MAC: &str = "02:00:00:00:0a:02";

    fn new(tag: &str) -> Self {
        Self::build(tag, false)
    }

    fn with_neighbour(tag: &str) -> Self {
        Self::build(tag, true)
    }

    fn build(tag: &str, neighbour: bool) -> Self {
        use testbed::presets;
        let id = std::process::id() % 10000;
        let names: Vec<String> = ["ha", "hb", "vb", "va"][..3 + usize::from(neighbour)]
            .iter()
            .map(|n| format!("w{tag}{n}{id}"))
            .collect();
        let ns = Namespaces::create(&names);
        let (ha, hb, vb) = (names[0].clone(), names[1].clone(), names[2].clone());
        let va = names.get(3).cloned();
        if let Some(va) = &va {
            sh(&format!(
                "ip -n {ha} link add vma type veth peer name eth0 netns {va}"
            ));
            sh(&format!(
                "ip -n {va} link set eth0 address {} mtu 1450",
                Self::VA_MAC
            ));
            sh(&format!("ip -n {va} addr add 198.19.0.3/24 dev eth0"));
            for (n, i) in [(&ha, "vma"), (va, "eth0")] {
                sh(&format!("ip -n {n} link set {i} up"));
                sh(&format!("ip netns exec {n} ethtool -K {i} tx off tso off gso off gro off >/dev/null 2>&1 || true"));
            }
        }
        sh(&format!(
            "ip -n {ha} link add u1 type veth peer name u2 netns {hb}"
        ));
        sh(&format!(
            "ip -n {hb} link add vmb type veth peer name eth0 netns {vb}"
        ));
        sh(&format!(
            "ip -n {vb} link set eth0 address {} mtu 1450",
            Self::VB_MAC
        ));
        sh(&format!("ip -n {vb} addr add 198.19.0.2/24 dev eth0"));
        for (n, i) in [(&ha, "u1"), (&hb, "u2"), (&hb, "vmb"), (&vb, "eth0")] {
            sh(&format!("ip -n {n} link set {i} up"));
            sh(&format!("ip netns exec {n} ethtool -K {i} tx off tso off gso off gro off >/dev/null 2>&1 || true"));
        }
        let dir = TempDir::new(tag);
        let sock = dir.0.join("g1.sock");
        let mut cfg_a = presets::lab_switch(1, &presets::af_packet(0, "u1"))
            .vm(
                "vm0",
                &format!("net_vhost0,iface={},client=0", sock.display()),
                Self::GUEST_MAC,
            )
            .peer("peer", presets::lab_ip(2), None)
            .rule(Self::VB_MAC, "peer");
        if va.is_some() {
            cfg_a = cfg_a.vm("vm1", &presets::af_packet(1, "vma"), Self::VA_MAC);
        }
        Self {
            dir,
            ha,
            hb,
            vb,
            va,
            cfg_a,
            _ns: ns,
        }
    }

    fn sock(&self) -> std::path::PathBuf {
        self.dir.0.join("g1.sock")
    }

    /// Starts host A's daemon (again); waits until its workers run, its vhost-user
    /// socket listening (a socket file a killed daemon left behind stays there for the
    /// daemon to deal with).
    fn start_a(&self, name: &str) -> std::process::Child {
        let (child, log, _) = spawn_daemon(&self.ha, &self.dir.0, name, &self.cfg_a.to_toml());
        let t0 = Instant::now();
        let log = || std::fs::read_to_string(&log).unwrap_or_default();
        while !(self.sock().exists() && log().contains("worker(s) on lcores")) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the daemon did not start: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn start_b(&self) -> std::process::Child {
        use testbed::presets;
        let mut cfg = presets::lab_switch(2, &presets::af_packet(0, "u2"))
            .vm("vm0", &presets::af_packet(1, "vmb"), Self::VB_MAC)
            .peer("peer", presets::lab_ip(1), None)
            .rule(Self::GUEST_MAC, "peer");
        if self.va.is_some() {
            cfg = cfg.rule(Self::VA_MAC, "peer");
        }
        spawn_daemon(&self.hb, &self.dir.0, "hostb", &cfg.to_toml()).0
    }

    /// iperf3 -s in B's VM, for one client.
    fn iperf_server(&self) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.vb, "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Ends host `name`'s daemon with SIGTERM: it must exit cleanly with every mbuf
    /// back in its pool (its log says so).
    fn stop(&self, d: &mut std::process::Child, name: &str) {
        sh(&format!("kill -TERM {}", d.id()));
        assert!(d.wait().unwrap().success(), "daemon {name} failed at exit");
        let log = std::fs::read_to_string(self.dir.0.join(format!("{name}.log"))).unwrap();
        assert!(log.contains("back in the pool"), "{name}: {log}");
    }
}

#[test]
fn a_daemon_killed_and_restarted_under_running_qemu_guests_carries_their_traffic_again() {
    use common::qemu::{image, iperf_intervals, Guest};
    if !require_root() {
        return;
    }
    let image = image();
    let lab = VhostLab::new("vr");
    let mut b = lab.start_b();
    let mut a = lab.start_a("hosta");
    let srv = lab.iperf_server();
    let mut guest = Guest::boot(
        &image,
        &lab.dir.0,
        "g1",
        &lab.sock(),
        VhostLab::GUEST_MAC,
        "wv.role=client wv.ip=198.19.0.1 wv.peer=198.19.0.2 wv.secs=20",
    );
    guest.wait_for("bits/sec", Duration::from_secs(240));
    std::thread::sleep(Duration::from_secs(4));
    // SIGKILL: no cleanup, the socket file left behind, the guest's vrings mid-use.
    let killed_at = Instant::now();
    sh(&format!("kill -KILL {}", a.id()));
    let _ = a.wait();
    a = lab.start_a("hosta2");
    let restarted_s = killed_at.elapsed().as_secs_f64();
    guest.wait_exit(Duration::from_secs(240));
    let console = guest.console();
    assert!(
        console.contains("receiver"),
        "the transfer did not survive:\n{console}"
    );
    let rates = iperf_intervals(&console);
    let (median, _, stalled) = stalls(&rates);
    println!(
        "daemon restarted {restarted_s:.2} s after SIGKILL; the guest's iperf3 over {} s: median {median:.0} Mbit/s, {stalled} s below a tenth of it: {rates:?}",
        rates.len()
    );
    assert!(
        stalled <= 3,
        "the guest's traffic stalled for {stalled} s: {rates:?}"
    );
    let mut srv = srv;
    let _ = srv.kill();
    let _ = srv.wait();
    for (d, name) in [(&mut a, "A"), (&mut b, "B")] {
        sh(&format!("kill -TERM {}", d.id()));
        assert!(d.wait().unwrap().success(), "daemon {name} failed at exit");
    }
}

/// A QEMU guest killed (SIGKILL: its vrings mid-use, no goodbye) and booted again on
/// the same vhost-user socket, while another VM of the same daemon sends over TCP: the
/// daemon serves the new guest (a ping from B's VM every 100 ms is answered within
/// 2 s of the guest's network coming up), the other VM's transfer never stalls, and
/// every mbuf is back in its pool at the end.
#[test]
fn a_qemu_guest_killed_and_booted_again_on_its_socket_is_served_and_others_go_on() {
    use common::qemu::{image, iperf_intervals, Guest};
    if !require_root() {
        return;
    }
    let image = image();
    let lab = VhostLab::with_neighbour("vk");
    let va = lab.va.clone().unwrap();
    let mut b = lab.start_b();
    let mut a = lab.start_a("hosta");
    let srv = lab.iperf_server();
    let boot = |name: &str| {
        let g = Guest::boot(
            &image,
            &lab.dir.0,
            name,
            &lab.sock(),
            VhostLab::GUEST_MAC,
            "wv.role=serve wv.ip=198.19.0.1",
        );
        let t0 = Instant::now();
        while !g.console().contains("WV-UP") {
            assert!(t0.elapsed() < Duration::from_secs(240), "{}", g.console());
            std::thread::sleep(Duration::from_millis(20));
        }
        g
    };
    let first = boot("g1");
    let pinger = |tag: &str| {
        Command::new("ip")
            .args([
                "netns", "exec", &lab.vb, "ping", "-D", "-i", "0.1", "-W", "1",
            ])
            .arg("198.19.0.1")
            .stdout(std::fs::File::create(lab.dir.0.join(format!("ping-{tag}.txt"))).unwrap())
            .spawn()
            .unwrap()
    };
    let mut ping = pinger("g1");
    let other_log = lab.dir.0.join("other.txt");
    let mut other = Command::new("ip")
        .args([
            "netns",
            "exec",
            &va,
            "iperf3",
            "-c",
            "198.19.0.2",
            "-t",
            "45",
            "-i",
            "1",
        ])
        .args(["--forceflush", "--connect-timeout", "5000"])
        .stdout(std::fs::File::create(&other_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answered = |tag: &str| -> Vec<f64> {
        let t = std::fs::read_to_string(lab.dir.0.join(format!("ping-{tag}.txt"))).unwrap();
        t.lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect()
    };
    let t0 = Instant::now();
    while answered("g1").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the first guest never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    drop(first); // SIGKILL
    let _ = ping.kill();
    let _ = ping.wait();
    std::thread::sleep(Duration::from_secs(2));
    let mut ping = pinger("g2");
    let second = boot("g2");
    let up = unix_s();
    let t0 = Instant::now();
    while answered("g2").is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let resumed = answered("g2").first().map(|t| t - up);
    let _ = ping.kill();
    let _ = ping.wait();
    assert!(
        other.wait().unwrap().success(),
        "the other VM's transfer failed"
    );
    let rates = iperf_intervals(&std::fs::read_to_string(&other_log).unwrap());
    let (median, min, stalled) = stalls(&rates);
    println!(
        "the second guest answered {resumed:?} s after its network came up; the other VM \
         over {} s: median {median:.0} Mbit/s, min {:.0}, {stalled} s below a tenth: {rates:?}",
        rates.len(),
        min
    );
    assert!(
        resumed.is_some_and(|s| s < 2.0),
        "the guest booted again on its socket was not served within 2 s: {resumed:?}"
    );
    assert_eq!(stalled, 0, "the other VM's traffic stalled: {rates:?}");
    drop(second);
    let mut srv = srv;
    let _ = srv.kill();
    let _ = srv.wait();
    lab.stop(&mut a, "hosta");
    lab.stop(&mut b, "hostb");
}
