//! Operators' mistakes get a clear error and a non-zero exit, never a panic: a
//! malformed or missing config, bad EAL arguments, a missing device, too few lcores.

mod common;

use common::*;
use std::process::Command;
use testbed::{presets, DaemonConfig};

/// Cross-connected null ports, built as every test config is.
fn two_null_ports() -> DaemonConfig {
    DaemonConfig::xconnect("net_null0", "net_null1")
}

/// The same as text, for the configs whose point is a broken line added to it (a value
/// of the wrong type, an unknown key, a value out of range): those stay hand-written, as
/// the typed builder cannot write them.
const TWO_NULL_PORTS: &str = r#"
[[port]]
name = "a"
devargs = "net_null0"
[[port]]
name = "b"
devargs = "net_null1"
"#;

fn run(config: &std::path::Path, eal: &[String]) -> (i32, String, String) {
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(config)
        .args(["--duration", "0.5", "--"])
        .args(eal)
        .output()
        .expect("spawn wrenvnet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clean_failure(code: i32, stderr: &str, expect: &str) {
    assert_eq!(code, 1, "expected exit 1, stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
    assert!(stderr.contains("error:"), "no `error:` line:\n{stderr}");
    assert!(
        stderr.to_lowercase().contains(&expect.to_lowercase()),
        "stderr lacks {expect:?}:\n{stderr}"
    );
}

#[test]
fn malformed_and_missing_config_files() {
    let dir = TempDir::new("cli-cfg");
    let bad = write_file(&dir.0, "bad.toml", "[[port]]\nname = \"a\"\ndevargs = 3\n");
    let (code, _, err) = run(&bad, &[]);
    assert_clean_failure(code, &err, "invalid config file");
    let typo = write_file(
        &dir.0,
        "typo.toml",
        &format!("{TWO_NULL_PORTS}\n[dataplane]\nworkerz = 2\n"),
    );
    let (code, _, err) = run(&typo, &[]);
    assert_clean_failure(code, &err, "unknown field");
    let (code, _, err) = run(&dir.0.join("nope.toml"), &[]);
    assert_clean_failure(code, &err, "cannot read config file");
    let threshold = write_file(
        &dir.0,
        "vttif.toml",
        &format!("{TWO_NULL_PORTS}\n[vttif]\nthreshold = 1.5\n"),
    );
    let (code, _, err) = run(&threshold, &[]);
    assert_clean_failure(code, &err, "vttif threshold must be in [0, 1]");
}

#[test]
fn bad_eal_arguments() {
    let dir = TempDir::new("cli-eal");
    let cfg = write_file(&dir.0, "ok.toml", &two_null_ports().to_toml());
    let mut eal = eal_mem_args("clieal");
    eal.push("--no-such-eal-flag".into());
    let (code, _, err) = run(&cfg, &eal);
    assert_clean_failure(code, &err, "cannot start the DPDK EAL");
    assert!(err.contains("rte_eal_init"), "{err}");
}

#[test]
fn missing_device() {
    let dir = TempDir::new("cli-dev");
    let cfg = write_file(
        &dir.0,
        "dev.toml",
        &DaemonConfig::xconnect(&presets::af_packet(9, "wv-no-such-if"), "net_null1").to_toml(),
    );
    let mut eal = eal_mem_args("clidev");
    eal.extend(["-l".into(), "0-1".into()]);
    let (code, _, err) = run(&cfg, &eal);
    assert_clean_failure(code, &err, "cannot open port \"a\"");
    assert!(err.contains("wv-no-such-if"), "{err}");
}

#[test]
fn more_workers_than_lcores() {
    let dir = TempDir::new("cli-lc");
    let cfg = write_file(
        &dir.0,
        "lc.toml",
        &two_null_ports()
            .dataplane(|d| d.workers = Some(4))
            .to_toml(),
    );
    let mut eal = eal_mem_args("clilc");
    eal.extend(["-l".into(), "0-1".into()]);
    let (code, _, err) = run(&cfg, &eal);
    assert_clean_failure(code, &err, "worker lcore");
}

#[test]
fn null_ports_forward_and_report_a_clean_exit() {
    let dir = TempDir::new("cli-ok");
    let cfg = write_file(&dir.0, "ok.toml", &two_null_ports().to_toml());
    let summary = dir.0.join("summary.json");
    let mut eal = eal_mem_args("cliok");
    eal.extend(["-l".into(), "0-1".into()]);
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--duration", "1", "--summary-json"])
        .arg(&summary)
        .arg("--")
        .args(&eal)
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["mbufs_in_use_at_exit"], 0);
    let a_rx = s["ports"][0]["stats"]["rx_packets"].as_u64().unwrap();
    let b_tx = s["ports"][1]["stats"]["tx_packets"].as_u64().unwrap();
    assert!(a_rx > 1000, "too few packets forwarded: {a_rx}");
    // Everything received on a went out of b, except what b's queue refused (counted).
    let drops = s["xconnect"]["tx_full_drops"].as_u64().unwrap();
    assert_eq!(
        a_rx + s["ports"][1]["stats"]["rx_packets"].as_u64().unwrap(),
        b_tx + s["ports"][0]["stats"]["tx_packets"].as_u64().unwrap() + drops
    );
    assert!(s["xconnect"]["cycles_per_packet"].as_f64().unwrap() > 0.0);
}

fn run_summary(config: &DaemonConfig, tag: &str, secs: &str) -> serde_json::Value {
    let dir = TempDir::new(tag);
    let cfg = write_file(&dir.0, "c.toml", &config.to_toml());
    let summary = dir.0.join("summary.json");
    let mut eal = eal_mem_args(tag);
    eal.extend(["-l".into(), "0-1".into()]);
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--duration", secs, "--summary-json"])
        .arg(&summary)
        .arg("--")
        .args(&eal)
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

/// A deliberately slow consumer: the ring fills, records are dropped and counted,
/// forwarding goes on, every record is either analysed or counted as dropped, and no
/// mbuf leaks.
#[test]
fn slow_consumer_drops_and_counts_records_never_packets() {
    let slow = run_summary(
        &two_null_ports().monitor(|m| {
            m.ring_records = Some(1024);
            m.consumer_delay_us = Some(20000);
        }),
        "slowcons",
        "1.5",
    );
    let m = &slow["monitor"];
    let pushed = m["records_pushed"].as_u64().unwrap();
    let dropped = m["records_dropped_ring_full"].as_u64().unwrap();
    let analysed = m["records_analysed"].as_u64().unwrap();
    let packets: u64 = slow["xconnect"]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["packets"].as_u64().unwrap())
        .sum();
    assert!(dropped > 0, "the ring never filled: {m}");
    assert_eq!(
        pushed + dropped,
        packets,
        "one record per packet, pushed or dropped"
    );
    assert_eq!(analysed, pushed, "every pushed record reaches the engines");
    assert!(packets > 1_000_000, "forwarding stalled: {packets} packets");
    assert_eq!(slow["mbufs_in_use_at_exit"], 0);
    assert_eq!(slow["xconnect"]["tx_full_drops"], 0);
    // Monitoring off: no records at all.
    let off = run_summary(
        &two_null_ports().monitor(|m| m.enabled = Some(false)),
        "monoff",
        "0.5",
    );
    assert!(off["monitor"].is_null());
}

/// The benchmarks' on/off within one run: a switch that records every other 5 ms counts
/// both halves apart, records only in its recording half, and still forwards every
/// frame (net_null's all-zero frames, by a rule for their MAC, to the one peer).
#[test]
fn a_switch_alternating_its_recording_counts_both_halves_apart() {
    // net_null's frames come from the all-zero MAC, which the rules put behind B.
    let config = presets::one_vm_one_peer("net_null0,copy=0,no-rx=1", "net_null1,copy=0")
        .rule("00:00:00:00:00:00", "B")
        .port_security(false)
        .monitor(|m| m.alternate_ms = Some(5));
    let s = run_summary(&config, "alternate", "1");
    let sw = &s["switch"];
    let ab = &sw["monitor_ab"];
    for half in [
        "recording_cycles_per_packet",
        "not_recording_cycles_per_packet",
    ] {
        assert!(ab[half].as_f64().is_some_and(|c| c > 0.0), "{half}: {s}");
    }
    let vm_rx = sw["vm_rx"].as_u64().unwrap();
    assert!(vm_rx > 10_000, "{s}");
    assert_eq!(sw["encapsulated"], vm_rx, "{s}");
    // Records of about half the frames: the recording half's, and only those.
    let m = &s["monitor"];
    let recorded =
        m["records_pushed"].as_u64().unwrap() + m["records_dropped_ring_full"].as_u64().unwrap();
    assert!(
        recorded > vm_rx / 5 && recorded < vm_rx * 4 / 5,
        "{recorded} records of {vm_rx} frames"
    );
    assert_eq!(s["mbufs_in_use_at_exit"], 0);
}

#[test]
fn alternating_the_recording_needs_the_switch_with_monitoring() {
    let dir = TempDir::new("cli-alt");
    let cfg = write_file(
        &dir.0,
        "alt.toml",
        &two_null_ports()
            .monitor(|m| m.alternate_ms = Some(5))
            .to_toml(),
    );
    let mut eal = eal_mem_args("clialt");
    eal.extend(["-l".into(), "0-1".into()]);
    let (code, _, err) = run(&cfg, &eal);
    assert_clean_failure(code, &err, "alternate_ms");
}
