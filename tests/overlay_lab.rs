//! The overlay switch in a two-host lab: two daemons in host namespaces, their NIC
//! ports (af_packet) joined by a veth "wire", VMs (namespaces) on af_packet ports.
//! ping and iperf3 TCP between VMs on different hosts and on one host; the underlay
//! frames decode in tshark as VXLAN; strangers' and malformed frames are counted and
//! dropped while forwarding goes on; SIGTERM ends both daemons with every mbuf back.

mod common;

use common::qemu::{self, Guest};
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testbed::{presets, DaemonConfig};

/// Brings interfaces up for af_packet use: offloads off (frames are copied as they are,
/// so they must be MTU-sized and fully checksummed), IPv6 off (no stray traffic).
fn bring_up(links: &[(&String, &str)]) {
    for (n, i) in links {
        sh(&format!("ip -n {n} link set {i} up"));
        sh(&format!("ip netns exec {n} ethtool -K {i} tx off tso off gso off gro off >/dev/null 2>&1 || true"));
        sh(&format!(
            "ip netns exec {n} sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1"
        ));
    }
}

/// A VM: namespace `vm` attached to host namespace `host` by a veth (`iface` on the host
/// side, eth0 in the VM) with the VM's MAC, IP and the overlay MTU.
fn add_vm(host: &str, vm: &String, iface: &str, mac: &str, ip: &str) {
    sh(&format!(
        "ip -n {host} link add {iface} type veth peer name eth0 netns {vm}"
    ));
    sh(&format!("ip -n {vm} link set eth0 address {mac} mtu 1450"));
    sh(&format!("ip -n {vm} addr add {ip}/24 dev eth0"));
}

/// Waits (30 s at most) until `vm` can ping `dst`; `log` explains a failure.
fn wait_for_ping(vm: &str, dst: &str, log: &std::path::Path) {
    let t0 = Instant::now();
    while !sh_out(&format!("ip netns exec {vm} ping -c 1 -W 1 {dst}"))
        .status
        .success()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no ping from {vm} to {dst} after 30 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// `count` pings from `vm` to `dst`, none lost.
fn assert_ping(vm: &str, dst: &str, count: u32) {
    let ping = sh(&format!("ip netns exec {vm} ping -c {count} -i 0.2 {dst}"));
    assert!(ping.contains(" 0% packet loss"), "{ping}");
}

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
    summary: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = sh_out(&format!("kill -9 {} 2>/dev/null", self.child.id()));
    }
}

/// Host `me`'s config: VMs (interface, MAC) on af_packet ports "vm0", "vm1", ..., one
/// peer "peer" (host `peer`) and a rule through it for every MAC of `remote`.
fn config(me: u8, peer: u8, vms: &[(&str, &str)], remote: &[&str]) -> DaemonConfig {
    let mut c = local_vms(
        presets::lab_switch(me, &presets::af_packet(0, &format!("u{me}"))),
        vms,
    )
    .peer("peer", presets::lab_ip(peer), None);
    for mac in remote {
        c = c.rule(mac, "peer");
    }
    c
}

/// `c` with VMs (interface, MAC) on af_packet ports "vm0", "vm1", ...
fn local_vms(mut c: DaemonConfig, vms: &[(&str, &str)]) -> DaemonConfig {
    for (i, (iface, mac)) in vms.iter().enumerate() {
        c = c.vm(&format!("vm{i}"), &presets::af_packet(i + 1, iface), mac);
    }
    c
}

fn start(ns: &str, dir: &std::path::Path, name: &str, cfg: &DaemonConfig) -> Daemon {
    let (child, log, summary) = spawn_daemon(ns, dir, name, &cfg.to_toml());
    Daemon {
        child,
        log,
        summary,
    }
}

fn stop(mut d: Daemon) -> serde_json::Value {
    sh(&format!("kill -TERM {}", d.child.id()));
    let st = d.child.wait().unwrap();
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(st.success(), "daemon exit {st}:\n{log}");
    assert!(log.contains("back in the pool"), "{log}");
    serde_json::from_slice(&std::fs::read(&d.summary).unwrap()).unwrap()
}

#[test]
fn two_hosts_three_vms_over_vxlan() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["ha", "hb", "va", "va2", "vb"]
        .iter()
        .map(|n| format!("wo{n}{id}"))
        .collect();
    let (ha, hb, va, va2, vb) = (&ns[0], &ns[1], &ns[2], &ns[3], &ns[4]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {ha} link add u1 type veth peer name u2 netns {hb}"
    ));
    add_vm(ha, va, "vma", "02:00:00:00:0a:01", "198.19.0.1");
    add_vm(ha, va2, "vma2", "02:00:00:00:0a:02", "198.19.0.3");
    add_vm(hb, vb, "vmb", "02:00:00:00:0b:01", "198.19.0.2");
    bring_up(&[
        (ha, "u1"),
        (ha, "vma"),
        (ha, "vma2"),
        (hb, "u2"),
        (hb, "vmb"),
        (va, "eth0"),
        (va2, "eth0"),
        (vb, "eth0"),
    ]);
    let dir = TempDir::new("overlay");
    let a = start(
        ha,
        &dir.0,
        "hosta",
        &config(
            1,
            2,
            &[("vma", "02:00:00:00:0a:01"), ("vma2", "02:00:00:00:0a:02")],
            &["02:00:00:00:0b:01"],
        ),
    );
    let b = start(
        hb,
        &dir.0,
        "hostb",
        &config(
            2,
            1,
            &[("vmb", "02:00:00:00:0b:01")],
            &["02:00:00:00:0a:01", "02:00:00:00:0a:02"],
        ),
    );

    // Across the overlay (ARP between the VMs goes by flooding; the daemons resolve each other).
    wait_for_ping(va, "198.19.0.2", &a.log);
    assert_ping(va, "198.19.0.2", 5);
    // On one host (local switching) and from the second local VM across.
    assert_ping(va, "198.19.0.3", 3);
    assert_ping(va2, "198.19.0.2", 3);

    // iperf3 TCP across, with the underlay captured for tshark.
    let server = Command::new("ip")
        .args(["netns", "exec", vb, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pcap = dir.0.join("underlay.pcap");
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", ha, "tcpdump", "-i", "u1", "-c", "200", "-U", "-w",
        ])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(vb, 5201);
    std::thread::sleep(Duration::from_millis(700));
    let out = sh(&format!("ip netns exec {va} iperf3 -c 198.19.0.2 -t 3 -J"));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bytes = r["end"]["sum_received"]["bytes"].as_u64().unwrap();
    let mbps = r["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e6;
    println!("iperf3 TCP across the VXLAN overlay: {mbps:.0} Mbit/s");
    assert!(bytes > 5_000_000, "iperf3 moved only {bytes} bytes");
    let _ = dump.wait();
    let mut server = server;
    let _ = server.wait();
    let fields = sh(&format!(
        "tshark -r {} -Y 'vxlan && tcp' -T fields -E occurrence=a -e ip.src -e ip.dst -e vxlan.vni -e udp.dstport 2>/dev/null | head -5",
        pcap.display()
    ));
    let line = fields
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no VXLAN/TCP frames decoded: {fields:?}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert!(
        cols[0] == "198.18.100.1,198.19.0.1" || cols[0] == "198.18.100.2,198.19.0.2",
        "{line}"
    );
    assert_eq!(cols[2], "42");
    assert_eq!(cols[3], "4789");

    // Strangers and garbage on the wire to host A: a wrong VNI, an unknown sender, a
    // truncated VXLAN header. Sent from a raw socket on host B's end of the wire.
    let inject = r#"
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("u2", 0))
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
def csum(b):
    t = sum(struct.unpack("!10H", b)); t = (t & 0xffff) + (t >> 16); return (~t) & 0xffff
def frame(src_ip, vni, cut=None):
    inner = bytes.fromhex("020000000a01020000000b010800") + bytes(46)
    vx = struct.pack("!BBHI", 8, 0, 0, vni << 8) + inner
    udp = struct.pack("!HHHH", 5555, 4789, 8 + len(vx), 0) + vx
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, socket.inet_aton(src_ip), socket.inet_aton("198.18.100.1"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    f = dst + bytes.fromhex("020000000f0f") + b"\x08\x00" + ip + udp
    return f if cut is None else f[:cut]
for _ in range(5):
    s.send(frame("198.18.100.2", 7))
    s.send(frame("198.18.100.9", 42))
    s.send(frame("198.18.100.2", 42, cut=14 + 20 + 8 + 4))
"#;
    let mac = sh(&format!("ip netns exec {ha} cat /sys/class/net/u1/address"));
    let script = write_file(&dir.0, "inject.py", inject);
    sh(&format!(
        "ip netns exec {hb} python3 {} {}",
        script.display(),
        mac.trim()
    ));
    std::thread::sleep(Duration::from_millis(300));
    let ping = sh(&format!("ip netns exec {va} ping -c 3 -i 0.2 198.19.0.2"));
    assert!(
        ping.contains(" 0% packet loss"),
        "forwarding stopped after bad frames: {ping}"
    );

    let log_a = a.log.clone();
    let sa = stop(a);
    let sb = stop(b);
    // Online measurement: host A's daemon published Wren's view of the VM-to-VM path
    // (RTT from its own records) and VTTIF's topology on its stats timer.
    let log = std::fs::read_to_string(&log_a).unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("198.19.0.1 -> 198.19.0.2: rtt min"))
        .unwrap_or_else(|| panic!("no online Wren view in the log:\n{log}"));
    assert!(!line.contains("rtt min -"), "no RTT sample online: {line}");
    assert!(log.contains("vttif: topology"), "{log}");
    let drops = &sa["switch"]["drops"];
    assert!(drops["WrongVni"].as_u64().unwrap() >= 5, "{sa}");
    assert!(drops["UnknownPeer"].as_u64().unwrap() >= 5, "{sa}");
    assert!(drops["Malformed"].as_u64().unwrap() >= 5, "{sa}");
    assert_eq!(sa["mbufs_in_use_at_exit"], 0);
    assert_eq!(sb["mbufs_in_use_at_exit"], 0);
    assert!(sa["switch"]["encapsulated"].as_u64().unwrap() > 1000);
    assert!(sb["switch"]["decapsulated"].as_u64().unwrap() > 1000);
    // Local traffic stayed local: A forwarded between its two VM ports.
    assert!(sa["switch"]["vm_tx"].as_u64().unwrap() > sb["switch"]["nic_tx"].as_u64().unwrap() / 2);
}

/// Interoperability with a VXLAN peer no one here wrote: host B is the Linux kernel's
/// own VXLAN device. Our encapsulated frames must decapsulate there and the reverse;
/// ARP for the underlay addresses goes both ways too.
#[test]
fn interoperates_with_the_linux_kernel_vxlan() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["ha", "kb", "va"]
        .iter()
        .map(|n| format!("wk{n}{id}"))
        .collect();
    let (ha, kb, va) = (&ns[0], &ns[1], &ns[2]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {ha} link add u1 type veth peer name u2 netns {kb}"
    ));
    sh(&format!(
        "ip -n {ha} link add vma type veth peer name eth0 netns {va}"
    ));
    sh(&format!(
        "ip -n {va} link set eth0 address 02:00:00:00:0a:01 mtu 1450"
    ));
    sh(&format!("ip -n {va} addr add 198.19.0.1/24 dev eth0"));
    bring_up(&[(ha, "u1"), (ha, "vma"), (kb, "u2"), (va, "eth0")]);
    // Host B: the kernel owns the underlay address and a VXLAN device (VNI 42, UDP 4789)
    // whose MAC is the remote VM's.
    sh(&format!("ip -n {kb} addr add 198.18.100.2/24 dev u2"));
    sh(&format!("ip -n {kb} link add vx0 type vxlan id 42 remote 198.18.100.1 local 198.18.100.2 dstport 4789 dev u2"));
    sh(&format!(
        "ip -n {kb} link set vx0 address 02:00:00:00:0b:01 mtu 1450"
    ));
    sh(&format!("ip -n {kb} addr add 198.19.0.2/24 dev vx0"));
    sh(&format!("ip -n {kb} link set vx0 up"));
    let dir = TempDir::new("kvxlan");
    let a = start(
        ha,
        &dir.0,
        "hosta",
        &config(
            1,
            2,
            &[("vma", "02:00:00:00:0a:01")],
            &["02:00:00:00:0b:01"],
        ),
    );
    wait_for_ping(va, "198.19.0.2", &a.log);
    assert_ping(va, "198.19.0.2", 5);
    // And the other way: the kernel side initiates.
    assert_ping(kb, "198.19.0.1", 3);
    let (bytes, mbps) = iperf3(va, kb, "198.19.0.2", 2);
    println!("iperf3 TCP to the kernel's VXLAN: {mbps:.0} Mbit/s");
    assert!(bytes > 2_000_000, "iperf3 moved only {bytes} bytes");
    let s = stop(a);
    assert!(s["switch"]["decapsulated"].as_u64().unwrap() > 100);
    assert!(s["switch"]["encapsulated"].as_u64().unwrap() > 1000);
    // We resolved the kernel's MAC by ARP (the kernel learns ours from that request).
    assert!(s["switch"]["arp_requests"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["mbufs_in_use_at_exit"], 0);
}

/// One request to a daemon's HTTP API socket: (accepted (HTTP 200), reply).
fn call(sock: &std::path::Path, method: &str, path: &str, body: &str) -> (bool, serde_json::Value) {
    let (status, v) = api(sock, method, path, body);
    (status == 200, v)
}

/// Rules change while traffic flows, through the daemon's HTTP API: hundreds of
/// atomic table swaps during an iperf3 transfer lose nothing to a missing rule; a rule
/// removed turns its traffic into flooded unknown unicast (counted), put back makes it
/// unicast again; bad requests change nothing.
#[test]
fn rules_change_live_through_the_api() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["ha", "hb", "va", "vb"]
        .iter()
        .map(|n| format!("wl{n}{id}"))
        .collect();
    let (ha, hb, va, vb) = (&ns[0], &ns[1], &ns[2], &ns[3]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {ha} link add u1 type veth peer name u2 netns {hb}"
    ));
    add_vm(ha, va, "vma", "02:00:00:00:0a:01", "198.19.0.1");
    add_vm(hb, vb, "vmb", "02:00:00:00:0b:01", "198.19.0.2");
    bring_up(&[
        (ha, "u1"),
        (ha, "vma"),
        (hb, "u2"),
        (hb, "vmb"),
        (va, "eth0"),
        (vb, "eth0"),
    ]);
    let dir = TempDir::new("live");
    let sock = dir.0.join("a.sock");
    let cfg_a = config(
        1,
        2,
        &[("vma", "02:00:00:00:0a:01")],
        &["02:00:00:00:0b:01"],
    )
    .api_unix(&sock);
    let a = start(ha, &dir.0, "hosta", &cfg_a);
    let b = start(
        hb,
        &dir.0,
        "hostb",
        &config(
            2,
            1,
            &[("vmb", "02:00:00:00:0b:01")],
            &["02:00:00:00:0a:01"],
        ),
    );
    wait_for_ping(va, "198.19.0.2", &a.log);
    let (ok, v) = call(&sock, "GET", "/rules", "");
    assert!(ok, "{v}");
    assert_eq!(v["rules"].as_array().unwrap().len(), 2, "{v}");

    // Hundreds of swaps during a transfer.
    let server = Command::new("ip")
        .args(["netns", "exec", vb, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(vb, 5201);
    let client = Command::new("ip")
        .args([
            "netns",
            "exec",
            va,
            "iperf3",
            "-c",
            "198.19.0.2",
            "-t",
            "3",
            "-J",
        ])
        .output();
    let swapper = std::thread::spawn({
        let sock = sock.clone();
        move || {
            let mut n = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(2500) {
                let (ok, v) = call(
                    &sock,
                    "PUT",
                    "/rules/02:00:00:00:0b:01",
                    r#"{"to":"peer:peer"}"#,
                );
                assert!(ok, "{v}");
                n += 1;
            }
            n
        }
    });
    let out = client.unwrap();
    let swaps = swapper.join().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = r["end"]["sum_received"]["bytes"].as_u64().unwrap();
    assert!(
        bytes > 2_000_000,
        "transfer during swaps moved only {bytes} bytes"
    );
    let mut server = server;
    let _ = server.wait();
    let (_, st) = call(&sock, "GET", "/stats", "");
    assert_eq!(
        st["switch"]["drops"]["NoRule"], 0,
        "a swap lost packets: {st}"
    );
    assert_eq!(
        st["switch"]["unknown_unicast"], 0,
        "during a swap a frame found no rule: {st}"
    );
    println!(
        "{swaps} rule table swaps during a {bytes}-byte iperf3 transfer, no packet without a rule"
    );
    assert!(swaps >= 20, "only {swaps} swaps");

    // A real change: remove B's VM's rule; its traffic becomes unknown unicast, flooded
    // to every VM of the overlay (so it still arrives), and counted; put the rule back and
    // it is unicast again.
    let (ok, _) = call(&sock, "DELETE", "/rules/02:00:00:00:0b:01", "");
    assert!(ok);
    assert_ping(va, "198.19.0.2", 3);
    let (_, st) = call(&sock, "GET", "/stats", "");
    let flooded = st["switch"]["unknown_unicast"].as_u64().unwrap();
    assert!(flooded >= 3, "{st}");
    assert_eq!(st["switch"]["drops"]["NoRule"], 0, "{st}");
    let (ok, _) = call(
        &sock,
        "PUT",
        "/rules/02:00:00:00:0b:01",
        r#"{"to":"peer:peer"}"#,
    );
    assert!(ok);
    std::thread::sleep(Duration::from_millis(200));
    let (_, st) = call(&sock, "GET", "/stats", "");
    let before = st["switch"]["unknown_unicast"].as_u64().unwrap();
    assert_ping(va, "198.19.0.2", 3);
    let (_, st) = call(&sock, "GET", "/stats", "");
    assert_eq!(
        st["switch"]["unknown_unicast"].as_u64().unwrap(),
        before,
        "still flooding with the rule back: {st}"
    );

    // Nonsense is refused with a reason and changes nothing.
    for (method, path, body) in [
        ("PUT", "/rules/zz", r#"{"to":"peer:peer"}"#),
        ("PUT", "/rules/02:00:00:00:0c:01", r#"{"to":"peer:nobody"}"#),
        ("DELETE", "/rules/02:00:00:00:0c:01", ""),
        ("PUT", "/rules/02:00:00:00:0c:01", "not json"),
        ("POST", "/reboot", ""),
    ] {
        let (ok, v) = call(&sock, method, path, body);
        assert!(!ok, "{method} {path} {body} accepted: {v}");
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    let (_, v) = call(&sock, "GET", "/rules", "");
    assert_eq!(v["rules"].as_array().unwrap().len(), 2, "{v}");
    stop(a);
    stop(b);
    assert!(!sock.exists(), "the API socket is removed at exit");
}

/// A host's config for the three-host fabric: its VMs, its peers, rules for remote VMs.
fn fabric_config(
    me: u8,
    vms: &[(&str, &str)],
    peers: &[(&str, u8)],
    rules: &[(&str, &str)],
    sock: &std::path::Path,
) -> DaemonConfig {
    let nic = presets::af_packet(0, "u");
    let mut c = local_vms(presets::lab_switch(me, &nic), vms).api_unix(sock);
    for (name, ip) in peers {
        c = c.peer(name, presets::lab_ip(*ip), None);
    }
    for (mac, peer) in rules {
        c = c.rule(mac, peer);
    }
    c
}

/// Three hosts on one L2 fabric. A VM on A sends to a VM on C directly; during the
/// transfer A's rule moves that traffic to go through B (multi-hop overlay path). The
/// transfer completes, B's transit counter proves the new path, and no packet is lost
/// by any switch during the change. Then a deliberate loop (A → B → A) is stopped by the
/// hop limit and counted.
#[test]
fn reroute_through_a_transit_host_during_a_transfer() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["fab", "ha", "hb", "hc", "va", "vc"]
        .iter()
        .map(|n| format!("wr{n}{id}"))
        .collect();
    let (fab, ha, hb, hc, va, vc) = (&ns[0], &ns[1], &ns[2], &ns[3], &ns[4], &ns[5]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {fab} link add br0 type bridge && ip -n {fab} link set br0 up"
    ));
    for (h, f) in [(ha, "fa"), (hb, "fb"), (hc, "fc")] {
        sh(&format!(
            "ip -n {h} link add u type veth peer name {f} netns {fab}"
        ));
        sh(&format!(
            "ip -n {fab} link set {f} master br0 && ip -n {fab} link set {f} up"
        ));
        sh(&format!("ip -n {h} link set u up"));
        sh(&format!(
            "ip netns exec {h} ethtool -K u tx off tso off gso off gro off >/dev/null 2>&1 || true"
        ));
        sh(&format!(
            "ip netns exec {h} sysctl -qw net.ipv6.conf.u.disable_ipv6=1"
        ));
    }
    for (h, v, iface, mac, ip) in [
        (ha, va, "vma", "02:00:00:00:0a:01", "198.19.0.1"),
        (hc, vc, "vmc", "02:00:00:00:0c:01", "198.19.0.3"),
    ] {
        sh(&format!(
            "ip -n {h} link add {iface} type veth peer name eth0 netns {v}"
        ));
        sh(&format!("ip -n {v} link set eth0 address {mac} mtu 1450"));
        sh(&format!("ip -n {v} addr add {ip}/24 dev eth0"));
        for (n, i) in [(h, iface), (v, "eth0")] {
            sh(&format!("ip -n {n} link set {i} up"));
            sh(&format!("ip netns exec {n} ethtool -K {i} tx off tso off gso off gro off >/dev/null 2>&1 || true"));
            sh(&format!(
                "ip netns exec {n} sysctl -qw net.ipv6.conf.{i}.disable_ipv6=1"
            ));
        }
    }
    let (mac_a, mac_c) = ("02:00:00:00:0a:01", "02:00:00:00:0c:01");
    let dir = TempDir::new("reroute");
    let (sa, sb) = (dir.0.join("a.sock"), dir.0.join("b.sock"));
    let a = start(
        ha,
        &dir.0,
        "hosta",
        &fabric_config(
            1,
            &[("vma", mac_a)],
            &[("B", 2), ("C", 3)],
            &[(mac_c, "C")],
            &sa,
        ),
    );
    let b = start(
        hb,
        &dir.0,
        "hostb",
        &fabric_config(
            2,
            &[],
            &[("A", 1), ("C", 3)],
            &[(mac_a, "A"), (mac_c, "C")],
            &sb,
        ),
    );
    let c = start(
        hc,
        &dir.0,
        "hostc",
        &fabric_config(
            3,
            &[("vmc", mac_c)],
            &[("A", 1), ("B", 2)],
            &[(mac_a, "A")],
            &dir.0.join("c.sock"),
        ),
    );
    wait_for_ping(va, "198.19.0.3", &a.log);
    let server = Command::new("ip")
        .args(["netns", "exec", vc, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = std::thread::spawn({
        let va = va.clone();
        move || sh(&format!("ip netns exec {va} iperf3 -c 198.19.0.3 -t 4 -J"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let (_, before) = call(&sb, "GET", "/stats", "");
    let (ok, v) = call(&sa, "PUT", &format!("/rules/{mac_c}"), r#"{"to":"peer:B"}"#);
    assert!(ok, "{v}");
    assert_eq!(v["replaced"], "peer:C");
    let out = client.join().unwrap();
    let mut server = server;
    let _ = server.wait();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bytes = r["end"]["sum_received"]["bytes"].as_u64().unwrap();
    assert!(
        bytes > 2_000_000,
        "the transfer did not complete: {bytes} bytes"
    );
    let (_, after) = call(&sb, "GET", "/stats", "");
    let transit = after["switch"]["transit"].as_u64().unwrap()
        - before["switch"]["transit"].as_u64().unwrap();
    assert!(
        transit > 1000,
        "B carried only {transit} transit frames after the change"
    );
    let (_, st_a) = call(&sa, "GET", "/stats", "");
    let lost = |s: &serde_json::Value| -> u64 {
        [
            "NoRule",
            "PeerUnresolved",
            "HopLimit",
            "TxFull",
            "NoMbuf",
            "Oversize",
        ]
        .iter()
        .map(|k| s["switch"]["drops"][k].as_u64().unwrap())
        .sum()
    };
    println!("rerouted A->C through B mid-transfer: {transit} frames via B, lost by the switches: A {} B {}", lost(&st_a), lost(&after));
    assert_eq!(lost(&st_a), 0, "{st_a}");
    assert_eq!(lost(&after), 0, "{after}");

    // Sending a frame straight back to the peer it came from is refused (split horizon)...
    let (ok, _) = call(&sb, "PUT", &format!("/rules/{mac_c}"), r#"{"to":"peer:A"}"#);
    assert!(ok);
    assert!(!sh_out(&format!(
        "ip netns exec {va} ping -c 2 -i 0.3 -W 1 198.19.0.3"
    ))
    .status
    .success());
    let (_, st_b) = call(&sb, "GET", "/stats", "");
    assert!(
        st_b["switch"]["drops"]["NoRule"].as_u64().unwrap() >= 2,
        "{st_b}"
    );
    let (ok, _) = call(&sb, "PUT", &format!("/rules/{mac_c}"), r#"{"to":"peer:C"}"#);
    assert!(ok);
    // ...and a longer loop by mistake (A -> B -> C -> A for a MAC no host has) is cut
    // by the hop limit and counted.
    let phantom = "02:00:00:00:0d:01";
    for (sock, to) in [(&sa, "B"), (&sb, "C"), (&dir.0.join("c.sock"), "A")] {
        let (ok, v) = call(
            sock,
            "PUT",
            &format!("/rules/{phantom}"),
            &format!(r#"{{"to":"peer:{to}"}}"#),
        );
        assert!(ok, "{v}");
    }
    sh(&format!(
        "ip -n {va} neigh add 198.19.0.9 lladdr {phantom} dev eth0"
    ));
    assert!(!sh_out(&format!(
        "ip netns exec {va} ping -c 2 -i 0.3 -W 1 198.19.0.9"
    ))
    .status
    .success());
    std::thread::sleep(Duration::from_millis(300));
    let hop: u64 = [&sa, &sb, &dir.0.join("c.sock")]
        .iter()
        .map(|s| {
            call(s, "GET", "/stats", "").1["switch"]["drops"]["HopLimit"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        hop, 2,
        "each looping frame is dropped once, by the hop limit"
    );
    assert_ping(va, "198.19.0.3", 3);
    for d in [a, b, c] {
        let s = stop(d);
        assert_eq!(s["mbufs_in_use_at_exit"], 0);
    }
}

/// A VM on a vhost-user port: the "VM" is a DPDK process whose virtio_user device is the
/// guest side of our `net_vhost` port (testpmd in io mode bridging it to a namespace's
/// veth). Traffic from that namespace crosses the overlay to a VM on host B. The guest
/// then disconnects and comes back: no crash, forwarding resumes, no mbuf leaks.
#[test]
fn vhost_user_vm_via_virtio_user_disconnects_and_comes_back() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["ha", "hb", "va", "vb"]
        .iter()
        .map(|n| format!("wv{n}{id}"))
        .collect();
    let (ha, hb, va, vb) = (&ns[0], &ns[1], &ns[2], &ns[3]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {ha} link add u1 type veth peer name u2 netns {hb}"
    ));
    add_vm(ha, va, "vma", "02:00:00:00:0a:01", "198.19.0.1");
    add_vm(hb, vb, "vmb", "02:00:00:00:0b:01", "198.19.0.2");
    bring_up(&[
        (ha, "u1"),
        (ha, "vma"),
        (hb, "u2"),
        (hb, "vmb"),
        (va, "eth0"),
        (vb, "eth0"),
    ]);
    let dir = TempDir::new("vhost");
    let sock = dir.0.join("vm-a.sock");
    // Host A's VM port is vhost-user (we are the server); the guest side is below.
    let cfg_a = config(
        1,
        2,
        &[("vma", "02:00:00:00:0a:01")],
        &["02:00:00:00:0b:01"],
    )
    .devargs(
        "vm0",
        &format!("net_vhost0,iface={},client=0", sock.display()),
    );
    let a = start(ha, &dir.0, "hosta", &cfg_a);
    let b = start(
        hb,
        &dir.0,
        "hostb",
        &config(
            2,
            1,
            &[("vmb", "02:00:00:00:0b:01")],
            &["02:00:00:00:0a:01"],
        ),
    );
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no vhost-user socket: {}",
            std::fs::read_to_string(&a.log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The guest: testpmd with virtio_user on our socket, io-forwarding to the VM's veth.
    let guest = |tag: &str| {
        let log = std::fs::File::create(dir.0.join(format!("guest-{tag}.log"))).unwrap();
        Command::new("ip")
            // One file per memory segment list: vhost-user can map at most 8 regions.
            .args([
                "netns",
                "exec",
                ha,
                "dpdk-testpmd",
                "-l",
                "0-1",
                "--in-memory",
                "--single-file-segments",
                "-m",
                "256",
                "--no-pci",
                "--log-level",
                "*:warning",
            ])
            .arg(format!(
                "--vdev=net_virtio_user0,path={},queues=1",
                sock.display()
            ))
            .arg("--vdev=net_af_packet0,iface=vma")
            .args([
                "--",
                "--forward-mode=io",
                "--auto-start",
                "--stats-period",
                "10",
                "--nb-cores=1",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut g = guest("1");
    wait_for_ping(va, "198.19.0.2", &dir.0.join("guest-1.log"));
    assert_ping(va, "198.19.0.2", 5);
    let (bytes, mbps) = iperf3(va, vb, "198.19.0.2", 2);
    println!("iperf3 TCP from a vhost-user VM across the overlay: {mbps:.0} Mbit/s");
    assert!(bytes > 1_000_000, "{bytes}");
    // The guest vanishes (killed, no goodbye), then comes back.
    let _ = sh_out(&format!("kill -9 {}", g.id()));
    let _ = g.wait();
    assert!(
        !sh_out(&format!("ip netns exec {va} ping -c 2 -W 1 198.19.0.2"))
            .status
            .success()
    );
    let mut g = guest("2");
    wait_for_ping(va, "198.19.0.2", &dir.0.join("guest-2.log"));
    assert_ping(va, "198.19.0.2", 3);
    let _ = sh_out(&format!("kill -TERM {}", g.id()));
    let _ = g.wait();
    let sa = stop(a);
    stop(b);
    assert_eq!(sa["mbufs_in_use_at_exit"], 0, "{sa}");
}

/// Real VMs: QEMU guests (TCG) with virtio-net over vhost-user on host A's daemon. Two
/// guests on A run iperf3 between them (switched locally), and a guest on A pings a lab
/// VM on host B across the overlay. The guest image comes from scripts/guest-image.sh.
#[test]
fn qemu_guests_over_vhost_user() {
    if !require_root() {
        return;
    }
    let image = qemu::image();
    let id = std::process::id() % 10000;
    let ns: Vec<String> = ["ha", "hb", "vb"]
        .iter()
        .map(|n| format!("wq{n}{id}"))
        .collect();
    let (ha, hb, vb) = (&ns[0], &ns[1], &ns[2]);
    let _ns = Namespaces::create(&ns);
    sh(&format!(
        "ip -n {ha} link add u1 type veth peer name u2 netns {hb}"
    ));
    add_vm(hb, vb, "vmb", "02:00:00:00:0b:01", "198.19.0.2");
    bring_up(&[(ha, "u1"), (hb, "u2"), (hb, "vmb"), (vb, "eth0")]);
    let dir = TempDir::new("qemu");
    let (s1, s2) = (dir.0.join("g1.sock"), dir.0.join("g2.sock"));
    let cfg_a = config(
        1,
        2,
        &[("vma", "02:00:00:00:0a:01"), ("vma2", "02:00:00:00:0a:02")],
        &["02:00:00:00:0b:01"],
    )
    .devargs(
        "vm0",
        &format!("net_vhost0,iface={},client=0,tso=1", s1.display()),
    )
    .devargs(
        "vm1",
        &format!("net_vhost1,iface={},client=0,tso=1", s2.display()),
    );
    let mut a = start(ha, &dir.0, "hosta", &cfg_a);
    let b = start(
        hb,
        &dir.0,
        "hostb",
        &config(
            2,
            1,
            &[("vmb", "02:00:00:00:0b:01")],
            &["02:00:00:00:0a:01", "02:00:00:00:0a:02"],
        ),
    );
    let t0 = Instant::now();
    while !(s1.exists() && s2.exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no vhost-user sockets: {}",
            std::fs::read_to_string(&a.log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let guest = |sock: &std::path::Path, mac: &str, args: &str, name: &str| {
        Guest::boot(&image, &dir.0, name, sock, mac, args)
    };
    let mut server = guest(
        &s2,
        "02:00:00:00:0a:02",
        "wv.role=server wv.ip=198.19.0.3",
        "g2",
    );
    let mut client = guest(
        &s1,
        "02:00:00:00:0a:01",
        "wv.role=client wv.ip=198.19.0.1 wv.peer=198.19.0.3 wv.secs=4",
        "g1",
    );
    let limit = Duration::from_secs(150);
    client.wait_exit(limit);
    server.wait_exit(limit);
    let out = client.console();
    assert!(out.contains("WV-DONE"), "{out}");
    let line = out
        .lines()
        .rfind(|l| l.contains("receiver"))
        .unwrap_or_else(|| panic!("no iperf3 result:\n{out}"));
    println!("iperf3 between two QEMU guests on one daemon: {line}");
    assert!(out.contains(" 0% packet loss"), "{out}");
    // A guest that vanishes in the middle of a transfer to the lab VM on B (QEMU
    // killed): the daemon keeps running and loses no mbuf; its port waits for the next.
    let mut srv = Command::new("ip")
        .args(["netns", "exec", vb, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let doomed = guest(
        &s1,
        "02:00:00:00:0a:01",
        "wv.role=client wv.ip=198.19.0.1 wv.peer=198.19.0.2 wv.secs=120",
        "g4",
    );
    doomed.wait_for("bits/sec", limit);
    std::thread::sleep(Duration::from_secs(2));
    drop(doomed); // killed
    let _ = srv.kill();
    let _ = srv.wait();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "daemon A died with its guest:\n{}",
        std::fs::read_to_string(&a.log).unwrap()
    );
    // Another guest on the same port: a guest on A reaches a lab VM on B.
    let mut pinger = guest(
        &s1,
        "02:00:00:00:0a:01",
        "wv.role=ping wv.ip=198.19.0.1 wv.peer=198.19.0.2",
        "g3",
    );
    pinger.wait_exit(limit);
    let out = pinger.console();
    assert!(
        out.contains("5 packets received") || out.contains(" 0% packet loss"),
        "{out}"
    );
    let sa = stop(a);
    stop(b);
    assert_eq!(sa["mbufs_in_use_at_exit"], 0);
    let server_out = server.console();
    assert!(server_out.contains("WV-DONE"), "{server_out}");
}
