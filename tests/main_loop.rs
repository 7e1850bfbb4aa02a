//! The daemon's main lcore tells the engines the time in the records' own time base, in
//! either mode: VTTIF's windows close, and a topology is reported, while traffic is
//! idle. A few TCP frames between two VMs are replayed once from a pcap (net_pcap), then
//! nothing arrives; the report must follow within a few windows, before the daemon exits.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use analysis::wire::sample_frames::sample_frame;
use testbed::DaemonConfig;

/// A classic pcap (microseconds, Ethernet) of `frames`, one millisecond apart.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend(1u32.to_le_bytes());
        out.extend((i as u32 * 1000).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend((f.len() as u32).to_le_bytes());
        out.extend(f);
    }
    out
}

/// The number of topology changes a `vttif:` report line gives, if `line` is one.
fn changes_reported(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("vttif: ")?;
    let end = rest.find(" change(s) reported")?;
    rest[..end].rsplit(' ').next()?.parse().ok()
}

/// Runs xconnect mode on `a` = the pcap's frames then silence, `b` = silence, and
/// returns the daemon's stdout lines as they come, until it exits.
fn spawn_xconnect(dir: &TempDir) -> (std::process::Child, mpsc::Receiver<String>) {
    let frames = vec![sample_frame(false, 100); 8];
    let traffic = write_file(&dir.0, "traffic.pcap", "");
    std::fs::write(&traffic, pcap(&frames)).unwrap();
    let silence = write_file(&dir.0, "silence.pcap", "");
    std::fs::write(&silence, pcap(&[])).unwrap();
    let pcap_port = |i: u32, rx: &std::path::Path| {
        format!("net_pcap{i},rx_pcap={},tx_pcap=/dev/null", rx.display())
    };
    let config = DaemonConfig::xconnect(&pcap_port(0, &traffic), &pcap_port(1, &silence))
        .dataplane(|d| d.stats_interval_ms = Some(50))
        .vttif(|v| {
            v.window_ms = Some(100);
            v.persist_windows = Some(2);
        });
    let cfg = write_file(&dir.0, "xc.toml", &config.to_toml());
    let mut eal = eal_mem_args("mainloop");
    eal.extend(["-l".into(), "0-1".into()]);
    let mut child = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--")
        .args(&eal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wrenvnet");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn xconnect_vttif_reports_a_topology_while_traffic_is_idle() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("mainloop");
    let (mut child, lines) = spawn_xconnect(&dir);
    let _guard = KillOnDrop(child.id());
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reported = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let n = changes_reported(&line);
                seen.push(line);
                if n.is_some_and(|n| n >= 1) {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    assert!(
        reported,
        "no VTTIF topology reported within 10 s of idle traffic (windows never closed):\n{}",
        seen.join("\n")
    );
    assert!(status.success(), "{status}\n{}", seen.join("\n"));
    assert!(
        seen.iter()
            .any(|l| l.starts_with("monitor: 8 records pushed")),
        "the pcap's 8 frames were not all recorded:\n{}",
        seen.join("\n")
    );
}
