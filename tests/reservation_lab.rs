//! End to end, root: the lab (scripts/lab.sh, namespace VMs, real daemons, etcd, a
//! controller, iperf3) with a 100 Mbit/s A-C link, every uplink shaped to 95 Mbit/s,
//! the application's TCP flow A -> C, and a noisy VM on A flooding C with 8 TCP flows
//! from 5 s on. Run twice, the same scenario (adaptation off: no route moves), with a
//! reservation of 40 Mbit/s for the application and without: with it the application
//! holds at least 90% of its reservation, and the noise takes the rest (the link is not
//! left idle). The test prints both runs' figures. Without the reservation the
//! application, its BBR flow started 5 s before the noise, kept 30.9 and 35.1 Mbit/s
//! against 8 flows in two runs (43.0 against 4): more than a fair share, less than 90%
//! of the reservation (47.0 with it), so the bound fails without the reserved class.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const RESERVED_MBPS: f64 = 40.0;
const UPLINK_MBPS: f64 = 95.0;

/// One lab run with `extra` options; its --summary-json document.
fn lab(out: &Path, extra: &[&str]) -> Value {
    let summary = out.with_extension("json");
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args([
            "--no-setup",
            "--plain",
            "--vms",
            "netns",
            "--adapt",
            "off",
            "--event",
            "none",
        ])
        .args([
            "--duration",
            "35",
            "--link-mbit",
            "100",
            "--delay-ms",
            "5",
            "--noisy",
            "--noisy-flows",
            "8",
        ])
        .arg("--out")
        .arg(out)
        .arg("--summary-json")
        .arg(&summary)
        .args(extra)
        .env("WRENVNET_BIN", wrenvnet_bin())
        .env(
            "WRENVNET_DELAYLINE",
            wrenvnet_bin().with_file_name("wrenvnet-delayline"),
        )
        .output()
        .expect("run scripts/lab.sh");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("--- lab {extra:?} ---\n{text}");
    assert!(output.status.success(), "lab.sh failed:\n{text}");
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

fn mbps(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no {key} in {v:#}"))
}

#[test]
fn a_reserved_flow_holds_its_rate_beside_a_noisy_vm_and_the_noise_takes_the_rest() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("reservation-lab");
    let with = lab(&dir.0.join("reserved"), &["--reserve", "A-C:40"]);
    let without = lab(&dir.0.join("best-effort"), &[]);
    let (app, noise) = (mbps(&with, "reserved_flow_mbps"), mbps(&with, "noisy_mbps"));
    let (app0, noise0) = (
        mbps(&without, "reserved_flow_mbps"),
        mbps(&without, "noisy_mbps"),
    );
    println!(
        "reserved {RESERVED_MBPS} Mbit/s: the application {app:.1}, the noisy VM {noise:.1}; \
         without the reservation: the application {app0:.1}, the noisy VM {noise0:.1} \
         (uplinks {UPLINK_MBPS} Mbit/s, from {:?} s)",
        with["window_s"]
    );
    assert!(with["application_ok"].as_bool().unwrap(), "{with:#}");
    let verdicts = with["reservations"].as_array().unwrap();
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0]["state"], "admitted", "{verdicts:?}");
    assert!(
        app >= 0.9 * RESERVED_MBPS,
        "the application {app:.1} Mbit/s"
    );
    assert!(
        app + noise >= 0.8 * UPLINK_MBPS,
        "the link left idle: {app:.1} + {noise:.1} Mbit/s"
    );
    assert!(noise > 0.0 && noise0 > 0.0, "no noise at all");
}
