//! End to end: the lab (scripts/lab.sh) with three hosts (A and B not linked at first),
//! an application whose VMs talk across the A-C link, and that link throttled midway. Run twice, adaptation off and
//! on, same scenario: with it on, Wren must see the drop, VADAPT must reroute through
//! B, and the application must recover to at least twice what it gets without, on the
//! one TCP connection it opened. The adaptive run also kills the controller after the
//! reroute and starts it again: forwarding must not stop, and the new controller must
//! resume from the daemons' rules instead of undoing the plan. Then it restarts host
//! A's daemon, which comes back with its config's rules (direct to C): the controller
//! must put the plan back, and the application's connection must survive.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const DURATION: u32 = 56;
const THROTTLE_AT: u32 = 12;
const RESTART_AT: u32 = 38;
const DAEMON_RESTART_AT: u32 = 46;

fn lab(out: &Path, adapt: &str, extra: &[&str]) -> Value {
    lab_for(out, adapt, DURATION, extra)
}

fn lab_for(out: &Path, adapt: &str, duration: u32, extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh");
    let delayline = wrenvnet_bin().with_file_name("wrenvnet-delayline");
    let output = Command::new("bash")
        .arg(&script)
        .args(["--no-setup", "--plain", "--adapt", adapt])
        // Namespace VMs unless the caller asks for guests (`extra` may say --vms qemu).
        .args(if extra.contains(&"--vms") {
            vec![]
        } else {
            vec!["--vms", "netns"]
        })
        .args(["--duration", &duration.to_string()])
        .args(["--throttle-at", &THROTTLE_AT.to_string()])
        .args([
            "--throttle-mbit",
            "10",
            "--link-mbit",
            "100",
            "--delay-ms",
            "5",
        ])
        // A and B start unlinked: the detour needs the controller to add that link.
        .args(["--no-link", "A-B"])
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("WRENVNET_BIN", wrenvnet_bin())
        .env("WRENVNET_DELAYLINE", &delayline)
        .output()
        .expect("run scripts/lab.sh");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("--- lab (adaptation {adapt}) ---\n{text}");
    // lab.sh fails when iperf3 does: the application's one connection broke.
    assert!(output.status.success(), "lab.sh failed:\n{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("iperf3.rc"))
            .unwrap()
            .trim(),
        "0"
    );
    // Every run of every daemon (A may have run twice) ended with its mbufs back.
    for h in ["A", "B", "C"] {
        let log = std::fs::read_to_string(out.join(format!("{h}.log"))).unwrap();
        let runs = log.matches("DPDK DPDK").count();
        assert!(runs >= 1, "daemon {h}:\n{log}");
        assert_eq!(
            log.matches("back in the pool").count(),
            runs,
            "daemon {h}:\n{log}"
        );
    }
    serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap()
}

fn main_route(r: &Value) -> Vec<String> {
    r["routes_at_end"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["src_ip"] == "198.19.0.1" && x["dst_ip"] == "198.19.0.3")
        .map(|x| {
            x["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn transit(out: &Path, host: &str) -> u64 {
    let st: Value = serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap())
        .expect("status.json");
    st["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .map(|h| h["switch"]["transit"].as_u64().unwrap())
        .unwrap()
}

#[test]
fn a_throttled_link_is_routed_around_and_the_application_recovers() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("closed-loop");
    let off_dir = dir.0.join("off");
    let on_dir = dir.0.join("on");
    let off = lab(&off_dir, "off", &[]);
    let on = lab(
        &on_dir,
        "on",
        &[
            "--restart-controller-at",
            &RESTART_AT.to_string(),
            "--restart-daemon-at",
            &DAEMON_RESTART_AT.to_string(),
        ],
    );
    let (off_after, on_after) = (
        off["after_throttle_mbps"].as_f64().unwrap(),
        on["after_throttle_mbps"].as_f64().unwrap(),
    );
    println!(
        "application after the A-C throttle (iperf3, from {} s on): adaptation off {off_after:.1} Mbit/s, on {on_after:.1} Mbit/s ({:.1}x); before the throttle {:.1} / {:.1} Mbit/s",
        THROTTLE_AT + 20,
        on_after / off_after.max(0.01),
        off["before_throttle_mbps"].as_f64().unwrap(),
        on["before_throttle_mbps"].as_f64().unwrap(),
    );
    // The application ran all along, on its one connection, in both runs.
    for r in [&off, &on] {
        assert!(
            r["per_second_mbps"].as_array().unwrap().len() >= (DURATION - 1) as usize,
            "{r}"
        );
    }
    // Without adaptation: the controller saw the drop and planned, but changed nothing.
    assert_eq!(off["adaptations"], 0);
    assert_eq!(main_route(&off), ["A", "C"]);
    assert!(
        off["controller_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "would_apply"),
        "the observing controller never planned the reroute: {}",
        off["controller_events"]
    );
    assert_eq!(transit(&off_dir, "B"), 0);
    // With it: rerouted through B, and the application got at least twice as much.
    assert!(
        on["adaptations"].as_u64().unwrap() >= 1,
        "{}",
        on["controller_events"]
    );
    let first = on["first_adaptation_s"].as_f64().unwrap();
    assert!(
        first > THROTTLE_AT as f64,
        "adapted before the throttle, at {first} s"
    );
    assert_eq!(main_route(&on), ["A", "B", "C"]);
    let links_set: Vec<&Value> = on["controller_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "links_set")
        .collect();
    assert!(
        links_set
            .iter()
            .any(|e| e["added"] == 2 && e["links"] == serde_json::json!([["A", "B"], ["B", "A"]])),
        "the controller did not link A and B for the detour: {}",
        on["controller_events"]
    );
    assert!(transit(&on_dir, "B") > 0);
    assert!(
        on_after >= 2.0 * off_after,
        "with adaptation {on_after:.1} Mbit/s, without {off_after:.1}"
    );
    // The controller restart: forwarding went on (every second carried data) and the
    // new controller adopted the rules in force and did not undo the reroute.
    let around = on["around_restart_mbps"].as_array().unwrap();
    assert!(!around.is_empty());
    assert!(
        around.iter().all(|x| x.as_f64().unwrap() > 1.0),
        "the application stalled around the controller restart: {around:?}"
    );
    let restarted_at = on["lab_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "controller restarted")
        .and_then(|e| e["t"].as_f64())
        .expect("the lab restarted the controller");
    let events = std::fs::read_to_string(on_dir.join("events.jsonl")).unwrap();
    let adopted = events.lines().filter(|l| l.contains("\"adopted\"")).count();
    assert_eq!(adopted, 2, "{events}");
    let daemon_back = on["lab_events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "daemon A restarted")
        .and_then(|e| e["t"].as_f64())
        .expect("the lab restarted daemon A");
    let since = |e: &&Value| e["unix_s"].as_f64().unwrap();
    let after_restart: Vec<&Value> = on["controller_events"]
        .as_array()
        .unwrap()
        .iter()
        .skip_while(|e| e["event"] != "adopted")
        .skip(1)
        .skip_while(|e| e["event"] != "adopted")
        .collect();
    assert!(
        !after_restart.is_empty(),
        "no events from the restarted controller (restart at {restarted_at} s)"
    );
    // Before daemon A's restart the new controller changes nothing.
    let restart_unix = on["lab_start_unix_s"].as_f64().unwrap() + daemon_back - 1.0;
    let (before, after): (Vec<&&Value>, Vec<&&Value>) =
        after_restart.iter().partition(|e| since(e) < restart_unix);
    assert!(
        before
            .iter()
            .all(|e| e["event"] != "applied" && e["event"] != "rules_set"),
        "the restarted controller changed rules: {before:?}"
    );
    // After it, A's rule towards C's VM is set back to B (whether as the plan in force
    // or by a plan made again from the restarted daemon's fresh measurements).
    assert!(
        after.iter().any(|e| e["event"] == "rules_set"
            && e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["host"] == "A"
                    && c["mac"] == "02:00:00:00:03:01"
                    && c["to"] == "peer:B")),
        "daemon A was not brought back to the plan: {after:?}"
    );
}

/// With migration allowed (each host can take two VMs), VADAPT's best plan puts the
/// application's two VMs on one host as soon as their demand shows: the controller
/// calls the lab's migration hook (`scripts/lab.sh migrate`: a tap port plugged on the
/// new host's daemon, handed to the VM with its MAC and address, the old port
/// unplugged), points every other daemon at the new host, and the application's one
/// TCP connection carries on, no longer through the A-C link that is throttled later.
#[test]
fn a_vm_is_moved_to_its_peer_and_keeps_its_connection() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("closed-loop-migrate");
    let out = dir.0.join("migrate");
    // The lab judges "after the throttle" from 20 s after it (at 12 s) to the end.
    let duration = 40;
    let r = lab_for(&out, "on", duration, &["--migrate"]);
    let events: Vec<Value> = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let migrations: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "migration")
        .collect();
    assert_eq!(migrations.len(), 1, "one move, no flapping: {events:?}");
    assert_eq!(migrations[0]["ok"], true, "{:?}", migrations[0]);
    let planned = events
        .iter()
        .find(|e| e["event"] == "applied")
        .and_then(|e| e["migrations"].as_array())
        .and_then(|m| m.first())
        .expect("an applied plan with a migration");
    let (vm, from, to) = (
        planned["vm"].as_str().unwrap(),
        planned["from"].as_str().unwrap(),
        planned["to"].as_str().unwrap(),
    );
    println!(
        "VM {vm} moved {from} -> {to}; application {:.1} Mbit/s before the A-C throttle, {:.1} after",
        r["before_throttle_mbps"].as_f64().unwrap(),
        r["after_throttle_mbps"].as_f64().unwrap()
    );
    assert!(
        ["02:00:00:00:01:01", "02:00:00:00:03:01"].contains(&vm),
        "moved a VM the application does not use: {vm}"
    );
    // The two VMs now share a host: the application's route is that host alone.
    assert_eq!(main_route(&r), [to]);
    // The old host was pointed at the new one (its port rule was withdrawn by the hook).
    assert!(
        events.iter().any(|e| e["event"] == "rules_set"
            && e["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["host"] == from && c["mac"] == vm && c["to"] == format!("peer:{to}"))),
        "{from} was not pointed at {to} for {vm}: {events:?}"
    );
    // The application ran all along on its one connection (lab() checked iperf3's
    // exit), and after the throttle it gets more than twice the throttled link's 10
    // Mbit/s, all that adaptation off would get.
    assert!(r["per_second_mbps"].as_array().unwrap().len() >= (duration - 1) as usize);
    assert!(r["after_throttle_mbps"].as_f64().unwrap() >= 20.0, "{r}");
}

/// README's main command as a newcomer runs it: the application's VMs are real QEMU
/// guests (TCG) on the daemons' vhost-user ports, iperf3 inside them. Wren must see the
/// throttle from the guests' TCP, the controller must reroute through B, and the
/// guest's one connection must recover to more than twice the throttled link's 10
/// Mbit/s, all that it gets without adaptation (the lab's --adapt off gives ~9).
#[test]
fn the_lab_with_qemu_guests_reroutes_and_recovers() {
    if !require_root() {
        return;
    }
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/guest");
    sh(&format!(
        "{}/scripts/guest-image.sh {}",
        env!("CARGO_MANIFEST_DIR"),
        image.display()
    ));
    let dir = TempDir::new("closed-loop-qemu");
    let out = dir.0.join("qemu");
    let r = lab_for(&out, "on", 50, &["--vms", "qemu"]);
    let guest = std::fs::read_to_string(out.join("guest-A.serial")).unwrap();
    assert!(guest.contains("receiver"), "{guest}");
    rerouted_through_b_and_recovered("QEMU guests", &r, &out);
}

/// After the event the controller moved A→C through B (not before), B carried it, and
/// the application got more than twice the 10 Mbit/s left on A–C.
fn rerouted_through_b_and_recovered(what: &str, r: &Value, out: &Path) {
    let first = r["first_adaptation_s"].as_f64().unwrap_or(-1.0);
    println!(
        "{what}: application {:.1} Mbit/s before the event, {:.1} from 20 s after it; adapted at {first:.1} s",
        r["before_throttle_mbps"].as_f64().unwrap(),
        r["after_throttle_mbps"].as_f64().unwrap()
    );
    assert!(first > THROTTLE_AT as f64, "adapted at {first} s: {r}");
    assert_eq!(main_route(r), ["A", "B", "C"]);
    assert!(transit(out, "B") > 0);
    assert!(r["after_throttle_mbps"].as_f64().unwrap() >= 20.0, "{r}");
}

/// The A–C link is not throttled but filled: 90 Mbit/s of UDP cross traffic from A's
/// site to C's leave 10 of its 100 Mbit/s. The drop-tail queue stays full, so the
/// application's delays show no trend; Wren must read the losses, the controller must
/// reroute through B, and the connection must get more than twice those 10 Mbit/s.
#[test]
fn a_link_saturated_by_cross_traffic_is_routed_around() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("closed-loop-cross");
    let out = dir.0.join("cross");
    let r = lab_for(&out, "on", 45, &["--event", "cross"]);
    rerouted_through_b_and_recovered("cross traffic", &r, &out);
}

/// The --summary-json document of a lab run kept in `out`.
fn summary(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

/// The state in etcd (three members, TLS), two controller replicas, the daemons etcd
/// clients: the raft leader among the members is killed before the throttle, the
/// leading replica after the reroute. The reroute (with the A-B link the controller
/// adds) goes through etcd alone; the standby takes over within the lease TTL (3 s)
/// and resumes the plan instead of undoing it; the application keeps its connection.
#[test]
fn with_the_state_in_etcd_a_reroute_survives_an_etcd_member_and_the_leader_killed() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("closed-loop-etcd");
    let out = dir.0.join("run");
    let summary_path = out.join("summary.json");
    let r = lab_for(
        &out,
        "on",
        48,
        &[
            "--etcd",
            "--kill-etcd-member-at",
            "5",
            "--kill-leader-at",
            "36",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    );
    let s = summary(&out);
    println!(
        "leaders {}; failover {} s; etcd member killed {}",
        s["leaders"], s["failover_s"], s["etcd_member_killed"]
    );
    rerouted_through_b_and_recovered("etcd, member and leader killed", &r, &out);
    let failover = s["failover_s"].as_f64().expect("a standby took over");
    assert!(failover <= 3.0 + 3.0, "failover took {failover} s");
    // The new leader resumed the plan: no second adaptation undid the reroute.
    assert_eq!(r["adaptations"], 1, "{r}");
    // At the end: two members of three answer, every host applied what it was given.
    let members = s["cluster"]["members"].as_array().unwrap();
    assert_eq!(
        members.iter().filter(|m| m["healthy"] == true).count(),
        2,
        "{s}"
    );
    for h in s["cluster"]["hosts"].as_array().unwrap() {
        assert_eq!(h["up"], true, "{h}");
        assert_eq!(h["lagging"], false, "{h}");
    }
}

/// Every etcd member stopped for 20 s mid-run (no throttle: the application runs at the
/// links' rate): the daemons forward with the rules in force, the application never
/// falls below half its rate, and once etcd is back they register again within
/// seconds and a replica leads.
#[test]
fn with_every_etcd_member_stopped_the_daemons_forward_and_come_back() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("closed-loop-etcd-outage");
    let out = dir.0.join("run");
    let summary_path = out.join("summary.json");
    lab_for(
        &out,
        "on",
        44,
        &[
            "--etcd",
            "--throttle-at",
            "1000",
            "--stop-etcd-at",
            "16",
            "--start-etcd-at",
            "36",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
    );
    let s = summary(&out);
    let outage = &s["etcd_outage"];
    println!("etcd outage: {outage}; leaders {}", s["leaders"]);
    let before = s["result"]["before_throttle_mbps"].as_f64().unwrap();
    assert!(
        outage["app_min_mbps"].as_f64().unwrap() >= before / 2.0,
        "{outage}, {before} Mbit/s before"
    );
    let back = outage["daemons_registered_again_s"]
        .as_f64()
        .expect("registered again");
    assert!(back <= 10.0, "{outage}");
    let last = s["leaders"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    assert!(
        last["replica"].is_string(),
        "no replica leads at the end: {}",
        s["leaders"]
    );
    for h in s["cluster"]["hosts"].as_array().unwrap() {
        assert_eq!(h["up"], true, "{h}");
    }
}
