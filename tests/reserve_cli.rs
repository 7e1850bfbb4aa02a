//! Reservations asked for in etcd, against a real etcd member: `wrenvnet reserve add`
//! writes `reservations/<id>` create-only (a second ask for the pair is refused, a bad
//! one is refused before anything is written), waits for the verdict the test writes
//! in the plan as a leader would (refused: exit status 1 with the reason), and says so
//! when no controller gives one; `list` joins every request with its verdict and shows
//! a malformed value as such; `del` ends one, and a second `del` finds none. The
//! daemon's `POST`/`DELETE /reservations` do the same through its etcd control thread,
//! and answer 503 within their bound when etcd hangs or is gone, serving the other
//! routes meanwhile (root: a DPDK daemon).

mod common;

use common::etcd::EtcdCluster;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use testbed::{presets, Etcd};

const PREFIX: &str = "/wrenvnet/rsv";
const A: &str = "02:00:00:00:01:01";
const B: &str = "02:00:00:00:03:01";
const C: &str = "02:00:00:00:03:02";
const D: &str = "02:00:00:00:03:03";

/// `wrenvnet reserve ARGS --endpoint E --prefix PREFIX`.
fn reserve(etcd: &EtcdCluster, args: &[&str]) -> Command {
    let mut c = Command::new(wrenvnet_bin());
    c.arg("reserve")
        .args(args)
        .args(["--endpoint", &etcd.endpoint(0), "--prefix", PREFIX]);
    c
}

fn run(etcd: &EtcdCluster, args: &[&str]) -> Output {
    reserve(etcd, args).output().expect("spawn wrenvnet")
}

fn ok(etcd: &EtcdCluster, args: &[&str]) -> String {
    let out = run(etcd, args);
    assert!(
        out.status.success(),
        "reserve {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails, and its stderr.
fn fails(etcd: &EtcdCluster, args: &[&str]) -> String {
    let out = run(etcd, args);
    assert!(!out.status.success(), "reserve {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn id(src: &str, dst: &str) -> String {
    format!("{}-{}", src.replace(':', ""), dst.replace(':', ""))
}

fn key(id: &str) -> String {
    format!("{PREFIX}/reservations/{id}")
}

fn list(etcd: &EtcdCluster) -> Vec<Value> {
    let v: Value = serde_json::from_str(&ok(etcd, &["list", "--json"])).unwrap();
    v.as_array().unwrap().clone()
}

/// The plan a leader would write, with `verdicts` (id -> admission).
fn put_plan(etcd: &EtcdCluster, verdicts: Value) {
    let plan = json!({"revision": 1, "next_seq": 0, "leader": "test", "at_unix_s": 0.0,
        "baseline": null, "last_run_unix_s": null, "pairs_rounds": 0, "adaptations": 0,
        "reservations": verdicts});
    etcd.put(&format!("{PREFIX}/plan"), &plan.to_string());
}

#[test]
fn reserve_add_list_and_del_against_a_real_etcd() {
    let etcd = EtcdCluster::start("rsv-cli", 1);
    let ab = id(A, B);
    let t0 = unix_s();
    let out = ok(
        &etcd,
        &[
            "add", "--src", A, "--dst", B, "--mbps", "40", "--wait-s", "0",
        ],
    );
    assert!(out.contains(&format!("asked for {ab}")), "{out}");
    let stored: Value = serde_json::from_str(&etcd.get(&key(&ab)).unwrap()).unwrap();
    assert_eq!(
        (
            &stored["id"],
            &stored["src_mac"],
            &stored["dst_mac"],
            &stored["mbps"]
        ),
        (&json!(ab), &json!(A), &json!(B), &json!(40.0)),
        "{stored}"
    );
    assert!(stored.get("burst_bytes").is_none(), "{stored}");
    let at = stored["created_unix_s"].as_f64().unwrap();
    assert!(at >= t0 - 1.0 && at <= unix_s() + 1.0, "{stored}");

    // The pair again, upper case: refused, the request in force unchanged.
    let upper = A.to_uppercase();
    let e = fails(
        &etcd,
        &[
            "add", "--src", &upper, "--dst", B, "--mbps", "5", "--wait-s", "0",
        ],
    );
    assert!(
        e.contains(&format!("the pair is already reserved (id {ab})")),
        "{e}"
    );
    assert!(
        e.contains(&format!("`wrenvnet reserve del {ab}` first")),
        "{e}"
    );
    assert_eq!(
        etcd.get(&key(&ab)).map(|v| v.contains("\"mbps\":40")),
        Some(true)
    );
    // Refused before anything is written.
    for (args, reason) in [
        (
            ["--src", "01:00:5e:00:00:01", "--dst", B, "--mbps", "5"],
            "multicast",
        ),
        (["--src", A, "--dst", A, "--mbps", "5"], "the same VM"),
        (
            ["--src", A, "--dst", "nope", "--mbps", "5"],
            "dst_mac: bad MAC",
        ),
        (
            ["--src", A, "--dst", C, "--mbps", "0"],
            "a rate must be above 0",
        ),
    ] {
        let e = fails(
            &etcd,
            &[&["add"][..], &args[..], &["--wait-s", "0"]].concat(),
        );
        assert!(e.contains(reason), "{args:?}: {e}");
    }
    assert_eq!(
        etcd.keys(&format!("{PREFIX}/reservations/")),
        vec![key(&ab)]
    );

    // No controller: listed without a verdict.
    let rows = list(&etcd);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["id"], &rows[0]["state"]),
        (&json!(ab), &Value::Null)
    );
    // A verdict in the plan: listed.
    let admitted = json!({"state": "admitted", "reason": "fits on h0->h1", "path": ["h0", "h1"],
        "mbps": 40.0});
    put_plan(&etcd, json!({ &ab: admitted }));
    let table = ok(&etcd, &["list"]);
    let row = table.lines().find(|l| l.starts_with(&ab)).unwrap();
    assert!(
        row.contains("admitted") && row.contains("h0->h1"),
        "{table}"
    );
    assert_eq!(list(&etcd)[0]["path"], json!(["h0", "h1"]));

    wait_for_verdicts(&etcd);

    // A malformed value is shown as such.
    etcd.put(&key("junk"), "{not json");
    let table = ok(&etcd, &["list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("junk") && l.contains("MALFORMED")),
        "{table}"
    );

    ok(&etcd, &["del", &ab]);
    let e = fails(&etcd, &["del", &ab]);
    assert!(e.contains(&format!("no reservation {ab}")), "{e}");
    ok(&etcd, &["del", "--src", A, "--dst", C]);
    ok(&etcd, &["del", "junk"]);
    assert!(etcd.keys(&format!("{PREFIX}/reservations/")).is_empty());
    assert!(ok(&etcd, &["list"]).contains("no reservations"));
}

/// `add` waits: a refusal written after the request ends it with status 1 and the
/// reason; with no verdict it says so when its wait is up (exit status 0).
fn wait_for_verdicts(etcd: &EtcdCluster) {
    let ac = id(A, C);
    let child = reserve(
        etcd,
        &[
            "add", "--src", A, "--dst", C, "--mbps", "900", "--wait-s", "5",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let _guard = KillOnDrop(child.id());
    let t0 = Instant::now();
    while etcd.get(&key(&ac)).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no {ac}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused =
        json!({"state": "refused", "reason": "no path has 900 Mbit/s free", "mbps": 900.0});
    put_plan(
        etcd,
        json!({ id(A, B): {"state": "pending", "reason": "-", "mbps": 40.0}, &ac: refused }),
    );
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused is an error: {e}");
    assert!(e.contains("refused: no path has 900 Mbit/s free"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    let t0 = Instant::now();
    let out = ok(
        etcd,
        &[
            "add", "--src", A, "--dst", D, "--mbps", "1", "--wait-s", "1",
        ],
    );
    assert!(
        out.contains("no verdict from a controller within 1 s (is one leading?)"),
        "{out}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    ok(etcd, &["del", &id(A, D)]);
}

/// A switch on empty pcap ports, its API on `dir/api.sock`, with `[etcd]`, its uplink
/// shaped at 80 Mbit/s.
fn daemon(dir: &Path, etcd: &EtcdCluster) -> (std::process::Child, KillOnDrop) {
    let empty = dir.join("empty.pcap");
    let mut hdr = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        hdr.extend(v.to_le_bytes());
    }
    std::fs::write(&empty, hdr).unwrap();
    let pcap = |i: u32| format!("net_pcap{i},rx_pcap={},tx_pcap=/dev/null", empty.display());
    let section = Etcd {
        endpoints: etcd.endpoints(),
        prefix: Some(PREFIX.into()),
        timeout_ms: Some(1000),
        ..Etcd::default()
    };
    let c = presets::one_vm_one_peer(&pcap(0), &pcap(1))
        .dataplane(|d| d.idle_sleep_us = Some(100))
        .monitor(|m| m.enabled = Some(false))
        .host_name("h0")
        .api_unix(dir.join("api.sock"))
        .etcd(section);
    let toml = format!("{}\n[qos]\nuplink_mbps = 80\n", c.to_toml());
    let cfg = write_file(dir, "d.toml", &toml);
    let mut eal = eal_mem_args("rsv");
    eal.extend(["-l".into(), "0-1".into()]);
    let log = dir.join("d.log");
    let child = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--")
        .args(&eal)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    wait_for_path(&dir.join("api.sock"), &log);
    (child, guard)
}

#[test]
fn the_daemons_post_and_delete_write_etcd_as_the_cli_does() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("rsv-api");
    let mut etcd = EtcdCluster::start("rsv-api", 1);
    let (mut child, _guard) = daemon(&dir.0, &etcd);
    let sock = dir.0.join("api.sock");
    // Registered: its etcd session is up (a debug build on 2 busy cores takes a while).
    let t0 = Instant::now();
    while etcd.get(&format!("{PREFIX}/hosts/h0")).is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the daemon never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its views say what it shapes its uplink at (the controller's admission reads it).
    let views = || {
        let v = etcd.get(&format!("{PREFIX}/views/h0"))?;
        serde_json::from_str::<Value>(&v).ok()
    };
    while views().is_none_or(|v| v["stats"]["uplink_mbps"].is_null()) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no views: {:?}",
            views()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(views().unwrap()["stats"]["uplink_mbps"], 80.0);
    let ab = id(A, B);
    let body = format!(r#"{{"src_mac":"{A}","dst_mac":"{B}","mbps":25,"burst_bytes":20000}}"#);
    let (st, v) = api(&sock, "POST", "/reservations", &body);
    assert_eq!(
        (st, &v["id"], &v["key"]),
        (201, &json!(ab), &json!(key(&ab))),
        "{v}"
    );
    let stored: Value = serde_json::from_str(&etcd.get(&key(&ab)).unwrap()).unwrap();
    assert_eq!(
        (&stored["mbps"], &stored["burst_bytes"]),
        (&json!(25.0), &json!(20000))
    );
    assert_eq!(
        list(&etcd)[0]["id"],
        json!(ab),
        "the CLI lists what the API wrote"
    );
    let (st, v) = api(&sock, "POST", "/reservations", &body);
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("already reserved"),
        "{v}"
    );
    let bad = format!(r#"{{"src_mac":"{A}","dst_mac":"ff:ff:ff:ff:ff:ff","mbps":25}}"#);
    let (st, v) = api(&sock, "POST", "/reservations", &bad);
    assert!(
        st == 400 && v["error"].as_str().unwrap().contains("multicast"),
        "{st} {v}"
    );
    assert_eq!(
        api(&sock, "DELETE", &format!("/reservations/{ab}"), "").0,
        200
    );
    assert!(etcd.get(&key(&ab)).is_none());
    let (st, v) = api(&sock, "DELETE", &format!("/reservations/{ab}"), "");
    assert!(
        st == 404 && v["error"].as_str().unwrap().contains("no reservation"),
        "{st} {v}"
    );
    assert_eq!(api(&sock, "PUT", "/reservations/x", "").0, 405);

    // etcd hung (SIGSTOP): a 503 within the bound (one member, timeout 1 s: 3 s, and
    // the main lcore's second),
    // and the daemon answers its other routes meanwhile.
    let port = etcd.endpoint(0).rsplit(':').next().unwrap().to_string();
    let out = sh(&format!("ss -Hltnp 'sport = :{port}'"));
    let pid: u32 = out
        .split("pid=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {port}: {out}"));
    sh(&format!("kill -STOP {pid}"));
    let t0 = Instant::now();
    let post = {
        let (sock, body) = (sock.clone(), body.clone());
        std::thread::spawn(move || api(&sock, "POST", "/reservations", &body))
    };
    std::thread::sleep(Duration::from_millis(200));
    let health = api(&sock, "GET", "/health", "");
    let health_at = t0.elapsed();
    let (st, v) = post.join().unwrap();
    let took = t0.elapsed();
    sh(&format!("kill -CONT {pid}"));
    assert_eq!(health.0, 200, "{health:?}");
    assert!(health_at < Duration::from_millis(1000), "{health_at:?}");
    assert_eq!(st, 503, "{v}");
    assert!(took < Duration::from_millis(4500), "{took:?}: {v}");
    println!(
        "POST /reservations with etcd hung: 503 in {:.0} ms ({}); GET /health meanwhile at {:.0} ms",
        took.as_secs_f64() * 1e3,
        v["error"],
        health_at.as_secs_f64() * 1e3
    );
    // etcd gone: a 503 at once.
    etcd.kill(0);
    let t0 = Instant::now();
    let (st, v) = api(&sock, "POST", "/reservations", &body);
    assert_eq!(st, 503, "{v}");
    assert!(t0.elapsed() < Duration::from_millis(4500), "{v}");
    sh(&format!("kill -TERM {}", child.id()));
    assert!(child.wait().unwrap().success());
}
