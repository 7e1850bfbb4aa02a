//! Reservations through the control plane, end to end without root: a real etcd, a
//! real controller replica, the daemons simulated by their `views/` keys, and the
//! operator's `wrenvnet reserve`. A reservation that fits is admitted and given to its
//! source host's desired state (every other host gets an empty set); one that fits on
//! no path is refused with the link that lacks, and one beyond what its source host
//! shapes its uplink at (the daemon's `stats.uplink_mbps`) with that; a throttle
//! measured on an admitted
//! reservation's link moves it round through another host and says so; deleting one
//! takes it off its host. (The dataplane's enforcement under real TCP is the lab's:
//! tests/reservation_lab.rs.)

mod common;

use std::process::Command;
use std::time::Duration;

use common::etcd::EtcdCluster;
use common::sim::*;
use common::*;
use serde_json::{json, Value};

/// `wrenvnet reserve ARGS --json` against `etcd`: (exit status ok, stdout, stderr).
fn reserve(etcd: &EtcdCluster, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(wrenvnet_bin());
    cmd.arg("reserve").args(args.iter().take(1));
    cmd.args(["--prefix", PREFIX]);
    for e in etcd.endpoints() {
        cmd.args(["--endpoint", &e]);
    }
    cmd.args(args.iter().skip(1));
    let out = cmd.output().expect("run wrenvnet reserve");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn verdict(etcd: &EtcdCluster, id: &str) -> Value {
    plan(etcd).map_or(Value::Null, |p| p["reservations"][id].clone())
}

fn reservations_of(etcd: &EtcdCluster, host: &str) -> Value {
    get_json(etcd, &format!("desired/{host}")).map_or(Value::Null, |d| d["reservations"].clone())
}

fn id(src: &str, dst: &str) -> String {
    format!("{}-{}", src.replace(':', ""), dst.replace(':', ""))
}

#[test]
fn reservations_are_admitted_enforced_at_their_source_refused_with_a_reason_and_moved_by_a_throttle(
) {
    let (_dir, etcd, mut hosts, r0) = one_replica("rs-admit");
    // A second VM on C, so that two pairs from A reach C.
    hosts[2].vms.push((C2.0.into(), C2.1.into(), "p1".into()));
    hosts[2].rules.insert(C2.0.into(), "vm:p1".into());
    for h in hosts.iter_mut().take(2) {
        h.rules.insert(C2.0.into(), "peer:C".into());
    }
    // B's daemon says it shapes its uplink at 60 Mbit/s.
    hosts[1].uplink_mbps = Some(60.0);
    for h in &hosts {
        h.publish(&etcd);
    }
    let mbps = |m: u32| m.to_string();
    let add = |src: &str, dst: &str, m: u32| {
        reserve(
            &etcd,
            &[
                "add",
                "--src",
                src,
                "--dst",
                dst,
                "--mbps",
                &mbps(m),
                "--wait-s",
                "15",
                "--json",
            ],
        )
    };

    // A1 -> C1 40 Mbit/s on the 100 Mbit/s A->C: admitted there, enforced by A.
    let (ok, out, err) = add(A1.0, C1.0, 40);
    assert!(ok, "{out}{err}\n{}", r0.log());
    let first = id(A1.0, C1.0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"]["state"], "admitted", "{v}");
    assert_eq!(v["verdict"]["path"], json!(["A", "C"]));
    let on_a = json!([{"src_mac": A1.0, "dst_mac": C1.0, "mbps": 40.0}]);
    let given = wait_for(Duration::from_secs(10), || {
        reservations_of(&etcd, "A") == on_a && reservations_of(&etcd, "C") == json!([])
    });
    assert!(
        given.is_some(),
        "A: {} C: {}",
        reservations_of(&etcd, "A"),
        reservations_of(&etcd, "C")
    );

    // B1 -> C1 50 on B->C; then A1 -> C2 80 fits nowhere: A->C has 60 left, A->B->C 50.
    assert!(add(B1.0, C1.0, 50).0);
    let (ok, out, err) = add(A1.0, C2.0, 80);
    assert!(
        !ok,
        "an 80 Mbit/s reservation with 60 left was not refused: {out}"
    );
    println!("refused: {}", err.trim());
    for words in [
        "refused",
        "80 Mbit/s asked",
        "A->C has 60.0 Mbit/s left",
        "A->B->C, has 50.0 (link B->C)",
    ] {
        assert!(err.contains(words), "{words:?} not in: {err}");
    }
    assert_eq!(verdict(&etcd, &id(A1.0, C2.0))["state"], "refused");
    assert_eq!(
        reservations_of(&etcd, "A").as_array().map(Vec::len),
        Some(1),
        "refused: not enforced"
    );

    // 50 of B's 60 Mbit/s uplink are reserved (B1 -> C1): 20 more from B fit B->A,
    // not B's uplink.
    let (ok, out, err) = add(B1.0, A1.0, 20);
    assert!(!ok, "20 Mbit/s beyond B's uplink was not refused: {out}");
    assert!(
        err.contains("B's uplink is shaped at 60.0 Mbit/s and 50.0 of it is reserved"),
        "{err}"
    );

    // Wren measures A->C at 10 Mbit/s: the first reservation goes round through B,
    // which has 50 left, and the controller says so.
    hosts[0].paths.push(path(A1, C1, 10.0));
    hosts[0].publish(&etcd);
    let moved = wait_for(Duration::from_secs(20), || {
        verdict(&etcd, &first)["path"] == json!(["A", "B", "C"])
            && desired_rule(&etcd, "A", C1.0).as_deref() == Some("peer:B")
    });
    let moved =
        moved.unwrap_or_else(|| panic!("not rerouted: {}\n{}", verdict(&etcd, &first), r0.log()));
    println!(
        "a reservation its throttled link no longer holds rerouted through B in {:.0} ms",
        moved.as_secs_f64() * 1e3
    );
    let ev = r0.events();
    let rerouted = ev
        .iter()
        .find(|e| e["event"] == "reservation_rerouted" && e["id"] == first.as_str());
    assert!(
        rerouted.is_some_and(|e| e["was"]["path"] == json!(["A", "C"])),
        "{ev:?}"
    );
    assert_eq!(verdict(&etcd, &first)["state"], "admitted");

    // Withdrawn: off A's desired state.
    let (ok, out, err) = reserve(&etcd, &["del", &first]);
    assert!(ok, "{out}{err}");
    let gone = wait_for(Duration::from_secs(10), || {
        reservations_of(&etcd, "A") == json!([])
    });
    assert!(gone.is_some(), "A: {}", reservations_of(&etcd, "A"));
    assert!(r0
        .events()
        .iter()
        .any(|e| e["event"] == "reservation_ended" && e["id"] == first.as_str()));
}
