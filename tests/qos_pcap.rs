//! Reservations in the real switch loop (root, DPDK, no namespaces): one VM port
//! replays two flows as fast as it can (net_pcap, `infinite_rx`), the application's
//! (02:00:00:00:aa:01 -> 02:00:00:00:bb:01, reserved 40 Mbit/s) and another
//! (-> 02:00:00:00:bb:02, best-effort), through an uplink of 100 Mbit/s. The reserved
//! flow gets its 40, best-effort (the other flow and the reserved one's excess) the
//! remaining 60, what leaves on the NIC is exactly what conformed, and every other frame
//! is dropped and counted (`BestEffortUplink`), no mbuf lost.

mod common;

use common::*;
use std::ffi::OsStr;

use testbed::presets::bench_switch;

const APP: [u8; 6] = [2, 0, 0, 0, 0xaa, 1];
const RESERVED_TO: [u8; 6] = [2, 0, 0, 0, 0xbb, 1];
const OTHER_TO: [u8; 6] = [2, 0, 0, 0, 0xbb, 2];
/// The largest inner frame the preset's underlay MTU (1500) carries.
const FRAME: usize = 1464;
/// On the wire: encapsulated.
const WIRE: u64 = FRAME as u64 + 50;

fn frame(dst: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; FRAME];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&APP);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f
}

/// A classic pcap of `frames`.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend(v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [0, i as u32, f.len() as u32, f.len() as u32] {
            out.extend(v.to_le_bytes());
        }
        out.extend(f);
    }
    out
}

#[test]
fn the_reserved_flow_gets_its_rate_and_best_effort_the_rest_of_the_uplink() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("qos");
    let frames: Vec<Vec<u8>> = (0..64)
        .map(|i| frame(if i % 2 == 0 { RESERVED_TO } else { OTHER_TO }))
        .collect();
    let traffic = dir.0.join("traffic.pcap");
    std::fs::write(&traffic, pcap(&frames)).unwrap();
    let empty = dir.0.join("empty.pcap");
    std::fs::write(&empty, pcap(&[])).unwrap();
    let nic = format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null", empty.display());
    let vm = format!(
        "net_pcap1,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null",
        traffic.display()
    );
    let config = bench_switch(&nic, &vm, false).rule("02:00:00:00:bb:02", "B");
    let text = format!(
        "{}\n[qos]\nuplink_mbps = 100\n[[qos.reservation]]\nsrc_mac = \"02:00:00:00:aa:01\"\n\
         dst_mac = \"02:00:00:00:bb:01\"\nmbps = 40\n",
        config.to_toml()
    );
    let cfg = write_file(&dir.0, "qos.toml", &text);
    let summary = dir.0.join("summary.json");
    let mut eal = eal_mem_args("qos");
    eal.extend(["-l".into(), "0-1".into(), "--no-pci".into()]);
    let mut args: Vec<&OsStr> = vec![
        "run".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--duration".as_ref(),
        "4".as_ref(),
        "--summary-json".as_ref(),
        summary.as_os_str(),
        "--".as_ref(),
    ];
    args.extend(eal.iter().map(OsStr::new));
    wrenvnet_ok(args);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let sw = &s["switch"];
    let q = &sw["qos"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let secs = s["elapsed_s"].as_f64().unwrap();
    let mbps = |bytes: u64| bytes as f64 * 8.0 / secs / 1e6;
    let reserved = mbps(n(&q["reserved"]["conforming_bytes"]));
    let best_effort = mbps(n(&q["best_effort"]["conforming_bytes"]));
    eprintln!(
        "over {secs:.2} s: reserved {reserved:.1} Mbit/s, best-effort {best_effort:.1} Mbit/s, \
         dropped {} frames; switch {sw}",
        n(&sw["drops"]["BestEffortUplink"])
    );
    // The daemon's elapsed time includes its start before the workers: rates a little
    // under the configured ones; the buckets' bursts (64 KiB each) a little over.
    assert!(
        (36.0..=42.0).contains(&reserved),
        "reserved {reserved:.1} Mbit/s"
    );
    assert!(
        (54.0..=63.0).contains(&best_effort),
        "best-effort {best_effort:.1} Mbit/s"
    );
    assert!(n(&q["reserved"]["exceeding_packets"]) > 0);
    let sent = n(&q["reserved"]["conforming_packets"]) + n(&q["best_effort"]["conforming_packets"]);
    let dropped = n(&q["best_effort"]["dropped_packets"]);
    assert_eq!(n(&sw["drops"]["BestEffortUplink"]), dropped);
    assert_eq!(n(&sw["drops"]["BestEffortVmCap"]), 0);
    assert_eq!(n(&sw["drops"]["Oversize"]), 0);
    assert_eq!(
        n(&sw["encapsulated"]),
        sent,
        "what conformed, and only it, was encapsulated"
    );
    assert_eq!(n(&sw["vm_rx"]), sent + dropped + n(&sw["drops"]["NoMbuf"]));
    assert_eq!(
        n(&q["best_effort"]["conforming_bytes"]) + n(&q["reserved"]["conforming_bytes"]),
        sent * WIRE
    );
    assert_eq!(s["mbufs_in_use_at_exit"], 0, "every mbuf sent or freed");
}
