//! The lab's delay line (wrenvnet-delayline) between two namespaces: frames pass both
//! ways (ARP, ping, TCP) and every round trip takes at least twice the one-way delay;
//! with room for one frame only, a burst overflows and the excess is counted.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn delayline_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_wrenvnet-delayline"))
}

/// Namespaces a - r - b: the delay line's two TAPs bridged to a's and b's veths in r.
fn lab(
    tag: &str,
    delay_ms: &str,
    limit: &str,
    log: &std::path::Path,
) -> (Namespaces, std::process::Child, [String; 3]) {
    let id = std::process::id() % 10000;
    let names = [
        format!("dl{tag}a{id}"),
        format!("dl{tag}r{id}"),
        format!("dl{tag}b{id}"),
    ];
    let ns = Namespaces::create(&names);
    let [a, r, b] = &names;
    for (n, br, ip) in [(a, "bra", "198.18.30.1"), (b, "brb", "198.18.30.2")] {
        sh(&format!(
            "ip -n {r} link add {br} type bridge && ip -n {r} link set {br} up"
        ));
        sh(&format!(
            "ip -n {n} link add eth0 type veth peer name v{br} netns {r}"
        ));
        sh(&format!(
            "ip -n {r} link set v{br} master {br} && ip -n {r} link set v{br} up"
        ));
        sh(&format!(
            "ip -n {n} addr add {ip}/24 dev eth0 && ip -n {n} link set eth0 up"
        ));
    }
    let child = Command::new("ip")
        .args(["netns", "exec", r])
        .arg(delayline_bin())
        .args([
            "--tap",
            "dta",
            "--tap",
            "dtb",
            "--delay-ms",
            delay_ms,
            "--limit",
            limit,
            "--stats-s",
            "1",
        ])
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if sh_out(&format!("ip -n {r} link show dtb")).status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    sh(&format!(
        "ip -n {r} link set dta master bra && ip -n {r} link set dtb master brb"
    ));
    (ns, child, names)
}

#[test]
fn frames_cross_with_the_delay_and_overflow_is_counted() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("delayline");
    let log = dir.0.join("d.log");
    let (_ns, mut child, [a, _, b]) = lab("x", "15", "4096", &log);
    // ARP and ping cross both ways; no round trip is shorter than 2 x 15 ms.
    let mut ok = false;
    for _ in 0..10 {
        if sh_out(&format!("ip netns exec {a} ping -c 1 -W 2 198.18.30.2"))
            .status
            .success()
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "no ping through the delay line");
    let out = sh(&format!("ip netns exec {a} ping -c 5 -i 0.2 198.18.30.2"));
    assert!(out.contains(" 0% packet loss"), "{out}");
    let min: f64 = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        min >= 30.0,
        "round trip {min} ms is shorter than twice the delay"
    );
    // TCP across it.
    let mut srv = Command::new("ip")
        .args(["netns", "exec", &b, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(&b, 5201);
    let r = sh(&format!("ip netns exec {a} iperf3 -c 198.18.30.2 -t 2 -J"));
    let _ = srv.wait();
    let v: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert!(
        v["end"]["sum_received"]["bytes"].as_u64().unwrap() > 100_000,
        "{r}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // Room for one frame: a burst of pings (flood) overflows it, and the drops are counted.
    let log = dir.0.join("d1.log");
    let (_ns1, mut child, [a, _, _]) = lab("y", "50", "1", &log);
    for _ in 0..10 {
        if sh_out(&format!("ip netns exec {a} ping -c 1 -W 2 198.18.30.2"))
            .status
            .success()
        {
            break;
        }
    }
    let _ = sh_out(&format!(
        "ip netns exec {a} ping -f -c 200 -W 1 198.18.30.2"
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap_or_default().to_string();
    let dropped: u64 = last
        .split_whitespace()
        .skip_while(|w| *w != "dropped_full")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "no overflow counted: {text}");
}
