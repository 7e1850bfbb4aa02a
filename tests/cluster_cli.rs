//! The operator's view of the cluster in etcd (`wrenvnet cluster`, `wrenvnet
//! decisions`) against real etcd members: members and their health, the controller
//! replica that holds the election (a real `etcdctl elect` campaign), every host's
//! lease, desired and applied revisions and lag; the decision log in order; and etcd
//! with TLS and client certificates, which refuses a client without one.

mod common;

use common::etcd::EtcdCluster;
use common::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "/wrenvnet/t";

fn wrenvnet(args: &[&str]) -> Output {
    Command::new(wrenvnet_bin())
        .args(args)
        .output()
        .expect("spawn wrenvnet")
}

/// `wrenvnet cluster --json` against `etcd` (every member named); the report.
fn cluster_json(etcd: &EtcdCluster) -> Value {
    try_cluster_json(etcd).unwrap_or_else(|e| panic!("{e}"))
}

/// `cluster_json`, or the command's stderr when it fails.
fn try_cluster_json(etcd: &EtcdCluster) -> Result<Value, String> {
    let mut args = vec!["cluster".to_string(), "--json".into()];
    args.extend(["--prefix".into(), PREFIX.into()]);
    for e in etcd.endpoints() {
        args.extend(["--endpoint".into(), e]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wrenvnet(&args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn host<'v>(report: &'v Value, name: &str) -> &'v Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report:#}"))
}

/// A lease of `ttl` seconds; its id in hex, as etcdctl takes it.
fn grant(etcd: &EtcdCluster, ttl: u32) -> String {
    let out = etcd.ctl(&["lease", "grant", &ttl.to_string()]);
    // "lease 694d7b3c1a2b3c4d granted with TTL(30s)"
    out.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn cluster_lists_members_the_leader_and_every_hosts_revisions() {
    let mut etcd = EtcdCluster::start("cli", 3);
    let lease = grant(&etcd, 30);
    let rec = |h: &str| {
        format!(r#"{{"host":"{h}","underlay_ip":"198.18.100.1","started_unix_s":0,"pid":1}}"#)
    };
    for h in ["h0", "h1"] {
        etcd.ctl(&[
            "put",
            &format!("--lease={lease}"),
            &format!("{PREFIX}/hosts/{h}"),
            &rec(h),
        ]);
    }
    let desired = |rev: u32| format!(r#"{{"revision":{rev},"rules":{{}},"links":{{}}}}"#);
    let applied = |rev: u32| format!(r#"{{"revision":{rev},"at_unix_s":0,"errors":[]}}"#);
    etcd.put(&format!("{PREFIX}/desired/h0"), &desired(3));
    etcd.put(&format!("{PREFIX}/applied/h0"), &applied(2));
    etcd.put(&format!("{PREFIX}/desired/h1"), &desired(4));
    etcd.put(&format!("{PREFIX}/applied/h1"), &applied(4));
    etcd.put(&format!("{PREFIX}/desired/h2"), &desired(1));

    // No replica campaigns yet: no leader.
    assert_eq!(cluster_json(&etcd)["controller_leader"], Value::Null);
    let mut elect = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", etcd.endpoints().join(",")))
        .args(["elect", &format!("{PREFIX}/leader"), "replica-a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _elect = KillOnDrop(elect.id());
    let t0 = Instant::now();
    let r = loop {
        let r = cluster_json(&etcd);
        if r["controller_leader"] == "replica-a" || t0.elapsed() > Duration::from_secs(10) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r["controller_leader"], "replica-a", "{r:#}");
    let members = r["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{r:#}");
    assert!(members.iter().all(|m| m["healthy"] == true), "{r:#}");
    let leaders = members.iter().filter(|m| m["raft_leader"] == true).count();
    assert_eq!(leaders, 1, "exactly one raft leader: {r:#}");

    let h0 = host(&r, "h0");
    assert_eq!(
        (h0["up"].clone(), h0["lagging"].clone()),
        (true.into(), true.into()),
        "{h0}"
    );
    assert_eq!(
        (
            h0["desired_revision"].as_u64(),
            h0["applied_revision"].as_u64()
        ),
        (Some(3), Some(2))
    );
    let ttl = h0["lease_ttl_s"].as_i64().unwrap();
    assert!((1..=30).contains(&ttl), "{h0}");
    assert_eq!(host(&r, "h1")["lagging"], false, "{r:#}");
    let h2 = host(&r, "h2");
    assert_eq!(
        (h2["up"].clone(), h2["lagging"].clone()),
        (false.into(), true.into()),
        "{h2}"
    );
    println!("lease TTL left on h0: {ttl} s of 30");

    // One member down: the report comes from the others and names it. If it led raft,
    // the others elect a leader first, and a request in that window times out (within
    // its bound, saying so): asked again until the election is over.
    etcd.kill(2);
    let t0 = std::time::Instant::now();
    let r = loop {
        match try_cluster_json(&etcd) {
            Ok(r) => break r,
            Err(e) if t0.elapsed().as_secs() < 10 => {
                println!("while the members elect a leader: {}", e.trim());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => panic!("no report from the 2 members left within 10 s: {e}"),
        }
    };
    let healthy: Vec<bool> = r["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["healthy"] == true)
        .collect();
    assert_eq!(healthy.iter().filter(|h| !**h).count(), 1, "{r:#}");
    let _ = elect.kill();
    let _ = elect.wait();
}

#[test]
fn decisions_are_printed_oldest_first() {
    let etcd = EtcdCluster::start("decisions", 1);
    for seq in 1..=25u64 {
        etcd.put(
            &format!("{PREFIX}/decisions/{seq:020}"),
            &format!(r#"{{"seq":{seq},"what":"reroute"}}"#),
        );
    }
    let out = wrenvnet(&[
        "decisions",
        "--json",
        "--last",
        "5",
        "--prefix",
        PREFIX,
        "--endpoint",
        &etcd.endpoint(0),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let seqs: Vec<u64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![21, 22, 23, 24, 25]);
}

#[test]
fn etcd_with_tls_refuses_a_client_without_a_certificate() {
    let etcd = EtcdCluster::start_tls("tls", 1);
    let pki = etcd.pki().unwrap().to_path_buf();
    let f = |name: &str| pki.join(name).display().to_string();
    let endpoint = etcd.endpoint(0);
    let base = [
        "cluster",
        "--json",
        "--prefix",
        PREFIX,
        "--endpoint",
        &endpoint,
    ];
    let (ca, cert, key) = (f("ca.crt"), f("client.crt"), f("client.key"));

    let with_cert = wrenvnet(
        &[
            &base[..],
            &["--ca-file", &ca, "--cert-file", &cert, "--key-file", &key],
        ]
        .concat(),
    );
    assert!(
        with_cert.status.success(),
        "{}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    let r: Value = serde_json::from_slice(&with_cert.stdout).unwrap();
    assert_eq!(r["members"][0]["healthy"], true, "{r:#}");

    // TLS without a client certificate: the member refuses (a clear error, no hang).
    let t0 = Instant::now();
    let no_cert = wrenvnet(&[&base[..], &["--ca-file", &ca]].concat());
    assert!(
        !no_cert.status.success(),
        "a client without a certificate was served"
    );
    let err = String::from_utf8_lossy(&no_cert.stderr);
    assert!(err.contains("error"), "{err}");
    println!(
        "refused in {:.2} s: {}",
        t0.elapsed().as_secs_f64(),
        err.lines().next().unwrap_or("")
    );

    // Plaintext to a TLS member is refused before any byte is sent: the config says so.
    let plain = endpoint.replace("https://", "http://");
    let out = wrenvnet(&["cluster", "--endpoint", &plain, "--ca-file", &ca]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not https://"),
        "{err}"
    );

    // The same settings from a config file's [etcd] section.
    let dir = TempDir::new("tls-cfg");
    let cfg = write_file(
        &dir.0,
        "c.toml",
        &format!(
            "[etcd]\nendpoints = [{endpoint:?}]\nprefix = {PREFIX:?}\nca_file = {ca:?}\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
    );
    let out = wrenvnet(&["cluster", "--json", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
