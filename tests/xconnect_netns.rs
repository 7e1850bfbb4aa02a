//! The binary cross-connects two `net_af_packet` ports on veth pairs into two network
//! namespaces: ping and an iperf3 TCP transfer between the namespaces pass through it,
//! its counters show them, and SIGTERM shuts it down with every mbuf back in the pool.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::{presets, DaemonConfig};

#[test]
fn ping_and_iperf3_tcp_cross_the_switch() {
    if !require_root() {
        return;
    }
    let id = std::process::id() % 100000;
    let (ns_a, ns_b) = (format!("wvxa{id}"), format!("wvxb{id}"));
    let (out_a, out_b) = (format!("wvxa{id}o"), format!("wvxb{id}o"));
    let _ns = Namespaces::create(&[ns_a.clone(), ns_b.clone()]);
    let _links = Links(vec![out_a.clone(), out_b.clone()]);
    veth_into_ns(&out_a, "eth0", &ns_a, "198.18.0.1/24");
    veth_into_ns(&out_b, "eth0", &ns_b, "198.18.0.2/24");

    let dir = TempDir::new("xc-netns");
    let cfg = write_file(
        &dir.0,
        "xc.toml",
        &DaemonConfig::xconnect(
            &presets::af_packet(0, &out_a),
            &presets::af_packet(1, &out_b),
        )
        .dataplane(|d| d.idle_sleep_us = Some(20))
        .to_toml(),
    );
    let summary = dir.0.join("summary.json");
    let mut eal = eal_mem_args("xcnetns");
    eal.extend(["-l".into(), "0-1".into()]);
    let log = std::fs::File::create(dir.0.join("wrenvnet.log")).unwrap();
    let mut child = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--")
        .args(&eal)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn wrenvnet");
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = sh_out(&format!("kill -9 {} 2>/dev/null", self.0));
        }
    }
    let _guard = Kill(child.id());

    // Wait until the switch passes traffic (EAL init, port start).
    let start = Instant::now();
    loop {
        let p = sh_out(&format!("ip netns exec {ns_a} ping -c 1 -W 1 198.18.0.2"));
        if p.status.success() {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "wrenvnet exited early ({st}): {}",
                std::fs::read_to_string(dir.0.join("wrenvnet.log")).unwrap()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no ping through the switch after 30 s"
        );
    }
    let ping = sh(&format!(
        "ip netns exec {ns_a} ping -c 5 -i 0.2 -W 2 198.18.0.2"
    ));
    assert!(ping.contains("5 received"), "{ping}");

    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns_b,
            "iperf3",
            "-s",
            "-1",
            "-B",
            "198.18.0.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    let _server_guard = Kill(server.id());
    std::thread::sleep(Duration::from_millis(500));
    let client = sh(&format!(
        "ip netns exec {ns_a} iperf3 -c 198.18.0.2 -t 3 -J"
    ));
    let report: serde_json::Value = serde_json::from_str(&client).expect("iperf3 JSON");
    let bytes = report["end"]["sum_received"]["bytes"].as_u64().unwrap();
    let mbps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e6;
    assert!(bytes > 1_000_000, "iperf3 moved only {bytes} bytes");
    println!("iperf3 TCP through the cross-connect: {mbps:.0} Mbit/s, {bytes} bytes");
    let _ = server.wait();

    // SIGTERM: clean shutdown, every mbuf back, counters that saw the transfer.
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    let log_text = std::fs::read_to_string(dir.0.join("wrenvnet.log")).unwrap();
    assert!(status.success(), "wrenvnet exit {status}:\n{log_text}");
    assert!(log_text.contains("back in the pool"), "{log_text}");
    assert!(log_text.contains("stats (final)"), "{log_text}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["mbufs_in_use_at_exit"], 0);
    let fwd_bytes = s["ports"][0]["stats"]["rx_bytes"].as_u64().unwrap();
    assert!(
        fwd_bytes >= bytes,
        "port a received {fwd_bytes} bytes, iperf3 sent {bytes}"
    );
}
