//! Records of real TCP transfers (iperf3 between network namespaces, captured by
//! tcpdump) match what tshark reports for the same packets: counts, flows, seq/ack,
//! lengths, TCP timestamps, capture times. Once on a plain capture, once on an
//! underlay capture of the Linux kernel's own VXLAN (tshark decodes the inner packet).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

struct Kill(u32);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = sh_out(&format!("kill {} 2>/dev/null", self.0));
    }
}

/// Runs iperf3 (server in `ns_b` on `dst`) from `ns_a` while tcpdump in `cap_ns`
/// captures `cap_if` into `file`.
fn capture_iperf3(
    ns_a: &str,
    ns_b: &str,
    dst: &str,
    cap_ns: &str,
    cap_if: &str,
    file: &std::path::Path,
    nano: bool,
) {
    let _server = Kill(
        Command::new("ip")
            .args(["netns", "exec", ns_b, "iperf3", "-s", "-1", "-B", dst])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
            .id(),
    );
    let mut dump = Command::new("ip")
        .args(["netns", "exec", cap_ns, "tcpdump", "-i", cap_if, "-w"])
        .arg(file)
        .args(if nano { vec!["--nano"] } else { vec![] })
        .args(["-U"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(ns_b, 5201);
    std::thread::sleep(Duration::from_millis(1500));
    sh(&format!(
        "ip netns exec {ns_a} iperf3 -c {dst} -t 1 -b 30M -l 8000 >/dev/null"
    ));
    std::thread::sleep(Duration::from_millis(500));
    sh(&format!("kill -INT {}", dump.id()));
    let _ = dump.wait();
}

#[derive(Debug, PartialEq)]
struct Pkt {
    time_us: u64,
    src: String,
    dst: String,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    len: u32,
    tsval: Option<u32>,
    tsecr: Option<u32>,
}

fn tshark(file: &std::path::Path) -> (usize, Vec<Pkt>) {
    let total = sh(&format!("tshark -r {} 2>/dev/null | wc -l", file.display()))
        .trim()
        .parse()
        .unwrap();
    let out = sh(&format!(
        "tshark -r {} -Y tcp -E occurrence=l -T fields -e frame.time_epoch -e ip.src -e ip.dst -e tcp.srcport \
         -e tcp.dstport -e tcp.seq_raw -e tcp.ack_raw -e tcp.len -e tcp.options.timestamp.tsval \
         -e tcp.options.timestamp.tsecr 2>/dev/null",
        file.display()
    ));
    let pkts = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (secs, frac) = f[0].split_once('.').unwrap();
            let frac6: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            let opt = |s: &str| (!s.is_empty()).then(|| s.parse().unwrap());
            Pkt {
                time_us: secs.parse::<u64>().unwrap() * 1_000_000 + frac6.parse::<u64>().unwrap(),
                src: f[1].into(),
                dst: f[2].into(),
                sport: f[3].parse().unwrap(),
                dport: f[4].parse().unwrap(),
                seq: f[5].parse().unwrap(),
                ack: f[6].parse().unwrap(),
                len: f[7].parse().unwrap(),
                tsval: opt(f[8]),
                tsecr: opt(f[9]),
            }
        })
        .collect();
    (total, pkts)
}

fn ours(file: &std::path::Path) -> (usize, Vec<Pkt>, Vec<serde_json::Value>) {
    let out = wrenvnet_ok([
        "analyze".as_ref(),
        "--records".as_ref(),
        "--pcap".as_ref(),
        file.as_os_str(),
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pkts = lines
        .iter()
        .filter(|r| r["protocol"] == 6 && r["broken"] == false)
        .map(|r| Pkt {
            time_us: r["time_ns"].as_u64().unwrap() / 1000,
            src: r["src_ip"].as_str().unwrap().into(),
            dst: r["dst_ip"].as_str().unwrap().into(),
            sport: r["src_port"].as_u64().unwrap() as u16,
            dport: r["dst_port"].as_u64().unwrap() as u16,
            seq: r["seq"].as_u64().unwrap() as u32,
            ack: r["ack"].as_u64().unwrap() as u32,
            len: r["payload_len"].as_u64().unwrap() as u32,
            tsval: r["tsval"].as_u64().map(|v| v as u32),
            tsecr: r["tsecr"].as_u64().map(|v| v as u32),
        })
        .collect();
    (lines.len(), pkts, lines)
}

fn compare(file: &std::path::Path) -> Vec<serde_json::Value> {
    let (t_total, t) = tshark(file);
    let (o_total, o, lines) = ours(file);
    assert_eq!(o_total, t_total, "frame counts differ");
    assert!(t.len() > 100, "too few TCP packets captured: {}", t.len());
    assert_eq!(o.len(), t.len(), "TCP packet counts differ");
    for (i, (a, b)) in o.iter().zip(&t).enumerate() {
        assert_eq!(a, b, "packet {i} differs (ours, tshark)");
    }
    let flows: std::collections::HashSet<_> = o
        .iter()
        .map(|p| (&p.src, p.sport, &p.dst, p.dport))
        .collect();
    assert!(
        flows.len() >= 4,
        "expected iperf3's control and data flows both ways: {flows:?}"
    );
    lines
}

#[test]
fn plain_capture_matches_tshark() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 100000;
    let (a, b) = (format!("wvta{id}"), format!("wvtb{id}"));
    let _ns = Namespaces::create(&[a.clone(), b.clone()]);
    sh(&format!(
        "ip -n {a} link add eth0 type veth peer name eth0 netns {b}"
    ));
    sh(&format!(
        "ip -n {a} addr add 198.18.5.1/24 dev eth0 && ip -n {a} link set eth0 up"
    ));
    sh(&format!(
        "ip -n {b} addr add 198.18.5.2/24 dev eth0 && ip -n {b} link set eth0 up"
    ));
    let dir = TempDir::new("tshark-plain");
    let file = dir.0.join("plain.pcap");
    capture_iperf3(&a, &b, "198.18.5.2", &a, "eth0", &file, false);
    compare(&file);
    // The same capture drawn over time: the sender's path, both panels, the truth line.
    let svg = dir.0.join("plot.svg");
    let out = Command::new(wrenvnet_bin())
        .args(["analyze", "--pcap"])
        .arg(&file)
        .arg("--plot")
        .arg(&svg)
        .args(["--truth-rtt-ms", "0.05"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("RTT 198.18.5.1 -&gt; 198.18.5.2"), "{text}");
    // min RTT, smoothed RTT and the truth are lines in the RTT panel.
    assert!(text.matches("<polyline").count() >= 3, "{text}");
    let out = Command::new(wrenvnet_bin())
        .args(["analyze", "--pcap"])
        .arg(&file)
        .arg("--plot")
        .arg(dir.0.join("none.svg"))
        .args(["--plot-path", "10.9.9.9>10.9.9.8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no path 10.9.9.9 -> 10.9.9.8"));
}

#[test]
fn vxlan_underlay_pcapng_capture_matches_tshark() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 100000;
    let (a, b) = (format!("wvva{id}"), format!("wvvb{id}"));
    let _ns = Namespaces::create(&[a.clone(), b.clone()]);
    sh(&format!(
        "ip -n {a} link add u0 type veth peer name u0 netns {b}"
    ));
    for (ns, me, peer, inner) in [
        (&a, "198.18.6.1", "198.18.6.2", "198.19.6.1"),
        (&b, "198.18.6.2", "198.18.6.1", "198.19.6.2"),
    ] {
        sh(&format!(
            "ip -n {ns} addr add {me}/24 dev u0 && ip -n {ns} link set u0 up"
        ));
        sh(&format!(
            "ip -n {ns} link add vx0 type vxlan id 42 remote {peer} local {me} dstport 4789 dev u0"
        ));
        sh(&format!(
            "ip -n {ns} addr add {inner}/24 dev vx0 && ip -n {ns} link set vx0 up"
        ));
    }
    let dir = TempDir::new("tshark-vxlan");
    // tcpdump writes nanosecond pcap here; editcap turns it into pcapng (if_tsresol 9).
    let nano = dir.0.join("underlay-ns.pcap");
    capture_iperf3(&a, &b, "198.19.6.2", &a, "u0", &nano, true);
    compare(&nano);
    let file = dir.0.join("underlay.pcapng");
    sh(&format!(
        "editcap -F pcapng {} {}",
        nano.display(),
        file.display()
    ));
    assert_eq!(
        &std::fs::read(&file).unwrap()[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "not pcapng"
    );
    let lines = compare(&file);
    // Every TCP record came out of VXLAN, between the two underlay addresses.
    for r in lines.iter().filter(|r| r["protocol"] == 6) {
        assert_eq!(r["vxlan"], true);
        let pair = (
            r["outer_src"].as_str().unwrap(),
            r["outer_dst"].as_str().unwrap(),
        );
        assert!(
            pair == ("198.18.6.1", "198.18.6.2") || pair == ("198.18.6.2", "198.18.6.1"),
            "{pair:?}"
        );
    }
}
