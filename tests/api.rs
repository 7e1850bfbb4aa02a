//! The daemon's HTTP/JSON API (config `[api]`): read and change over a unix socket and
//! a TCP listener; requests without the bearer token on TCP are refused; malformed
//! requests get a 4xx with a reason and change nothing; Prometheus text at /metrics.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request over `stream`; returns (status, body).
fn http<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn unix(sock: &std::path::Path, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (st, b) = http(s, method, path, "", body);
    (
        st,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &std::path::Path, api: &str) -> std::path::PathBuf {
    let empty = dir.join("empty.pcap");
    let mut hdr = Vec::new();
    for v in [
        0xa1b2c3d4u32.to_le_bytes().to_vec(),
        2u16.to_le_bytes().to_vec(),
        4u16.to_le_bytes().to_vec(),
        0i32.to_le_bytes().to_vec(),
        0u32.to_le_bytes().to_vec(),
        65535u32.to_le_bytes().to_vec(),
        1u32.to_le_bytes().to_vec(),
    ] {
        hdr.extend(v);
    }
    std::fs::write(&empty, hdr).unwrap();
    let e = empty.display();
    write_file(
        dir,
        "api.toml",
        &format!(
            "[dataplane]\nmode = \"switch\"\nidle_sleep_us = 100\nstats_interval_ms = 100000\n\
             [[port]]\nname = \"nic\"\ndevargs = \"net_pcap0,rx_pcap={e},tx_pcap=/dev/null\"\n\
             [[port]]\nname = \"vm\"\ndevargs = \"net_pcap1,rx_pcap={e},tx_pcap=/dev/null\"\n\
             {api}\n\
             [switch]\nname = \"hosta\"\nunderlay_ip = \"198.18.100.1\"\nvni = 42\nnic = \"nic\"\n\
             [[switch.vm]]\nport = \"vm\"\nmac = \"02:00:00:00:aa:01\"\n\
             [[switch.peer]]\nname = \"B\"\nip = \"198.18.100.2\"\nmac = \"02:00:00:00:ff:02\"\n\
             [[switch.rule]]\ndst_mac = \"02:00:00:00:bb:01\"\npeer = \"B\"\n"
        ),
    )
}

#[test]
fn api_reads_changes_and_refuses() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("api");
    let sock = dir.0.join("api.sock");
    let port = free_port();
    let cfg = config(
        &dir.0,
        &format!(
            "[api]\nunix = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ntoken = \"s3cret\"\n",
            sock.display()
        ),
    );
    let mut eal = eal_mem_args("api");
    eal.extend(["-l".into(), "0-1".into()]);
    let log = dir.0.join("d.log");
    let mut child = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--")
        .args(&eal)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no API socket: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (st, v) = unix(&sock, "GET", "/health", "");
    assert_eq!((st, &v["host"]), (200, &serde_json::json!("hosta")), "{v}");
    let (st, v) = unix(&sock, "GET", "/stats", "");
    assert_eq!(st, 200);
    assert!(v["switch"]["drops"].is_object(), "{v}");
    let rules = |sock: &std::path::Path| unix(sock, "GET", "/rules", "").1["rules"].clone();
    let before = rules(&sock);
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}"); // the VM and the rule

    // A change...
    let (st, v) = unix(
        &sock,
        "PUT",
        "/rules/02:00:00:00:cc:01",
        r#"{"to":"peer:B"}"#,
    );
    assert_eq!(st, 200, "{v}");
    let after = rules(&sock);
    assert!(after.to_string().contains("02:00:00:00:cc:01"), "{after}");
    // ...and malformed requests: a reason, a 4xx, nothing changed.
    for (method, path, body, status, reason) in [
        ("PUT", "/rules/02:00:00:00:dd:01", "{bad", 400, "not JSON"),
        (
            "PUT",
            "/rules/02:00:00:00:dd:01",
            r#"{"via":"x"}"#,
            400,
            "needs \"to\"",
        ),
        ("PUT", "/rules/zz:zz", r#"{"to":"peer:B"}"#, 400, "MAC"),
        (
            "PUT",
            "/rules/02:00:00:00:dd:01",
            r#"{"to":"peer:Nobody"}"#,
            400,
            "no peer",
        ),
        ("DELETE", "/rules/02:00:00:00:dd:01", "", 400, "no rule"),
        ("POST", "/rules", "", 405, "not allowed"),
        ("GET", "/nothing", "", 404, "no route"),
    ] {
        let (st, v) = unix(&sock, method, path, body);
        assert_eq!(st, status, "{method} {path}: {v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
        assert_eq!(rules(&sock), after, "{method} {path} changed the rules");
    }
    let (st, _) = unix(&sock, "DELETE", "/rules/02:00:00:00:cc:01", "");
    assert_eq!(st, 200);
    assert_eq!(rules(&sock), before);

    // Links: read, add, rule onto it, refused removal while used, removal after.
    let links = |sock: &std::path::Path| unix(sock, "GET", "/links", "").1["links"].clone();
    let l0 = links(&sock);
    assert_eq!(l0[0]["name"], "B", "{l0}");
    assert_eq!(l0[0]["ip"], "198.18.100.2");
    assert_eq!(l0[0]["rules"], 1);
    let (st, v) = unix(&sock, "PUT", "/links/C", r#"{"ip":"198.18.100.3"}"#);
    assert_eq!(st, 200, "{v}");
    let (st, v) = unix(
        &sock,
        "PUT",
        "/rules/02:00:00:00:cc:01",
        r#"{"to":"peer:C"}"#,
    );
    assert_eq!(st, 200, "{v}");
    let l1 = links(&sock);
    for (method, path, body, reason) in [
        ("DELETE", "/links/C", "", "used by 1 rule"),
        ("DELETE", "/links/Z", "", "no link"),
        (
            "PUT",
            "/links/D",
            r#"{"ip":"198.18.100.3"}"#,
            "already link \"C\"",
        ),
        ("PUT", "/links/D", r#"{"ip":"300.1.1.1"}"#, "IPv4"),
        ("PUT", "/links/D", r#"{"addr":"1.2.3.4"}"#, "needs \"ip\""),
    ] {
        let (st, v) = unix(&sock, method, path, body);
        assert_eq!(st, 400, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
        assert_eq!(links(&sock), l1, "{method} {path} changed the links");
    }
    assert_eq!(unix(&sock, "DELETE", "/rules/02:00:00:00:cc:01", "").0, 200);
    assert_eq!(unix(&sock, "DELETE", "/links/C", "").0, 200);
    assert_eq!(links(&sock), l0);
    assert_eq!(rules(&sock), before);
    let (st, v) = unix(&sock, "GET", "/vms", "");
    assert_eq!(st, 200);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{v}");
    assert_eq!(
        (&vms[0]["port"], &vms[0]["mac"], &vms[0]["slot"]),
        (&"vm".into(), &"02:00:00:00:aa:01".into(), &0.into()),
        "{v}"
    );

    // Prometheus text.
    let s = UnixStream::connect(&sock).unwrap();
    let (st, text) = http(s, "GET", "/metrics", "", "");
    assert_eq!(st, 200);
    assert!(
        text.contains("# TYPE wrenvnet_vm_rx_packets_total counter"),
        "{text}"
    );
    assert!(
        text.contains("wrenvnet_drops_total{host=\"hosta\",cause=\"NoRule\"}"),
        "{text}"
    );

    // TCP: the token is required.
    let tcp = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    assert_eq!(http(tcp(), "GET", "/health", "", "").0, 401);
    assert_eq!(
        http(
            tcp(),
            "GET",
            "/health",
            "Authorization: Bearer wrong\r\n",
            ""
        )
        .0,
        401
    );
    assert_eq!(
        http(
            tcp(),
            "PUT",
            "/rules/02:00:00:00:ee:01",
            "",
            r#"{"to":"peer:B"}"#
        )
        .0,
        401
    );
    assert_eq!(
        rules(&sock),
        before,
        "an unauthorized request changed the rules"
    );
    let (st, body) = http(
        tcp(),
        "GET",
        "/rules",
        "Authorization: Bearer s3cret\r\n",
        "",
    );
    assert_eq!(st, 200, "{body}");

    // The operators' CLI on top of the API.
    let cli = |args: &[&str]| {
        let out = Command::new(wrenvnet_bin()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let api = sock.to_str().unwrap();
    let (ok, out, err) = cli(&["status", "--api", api]);
    assert!(
        ok && out.contains("hosta") && out.contains("CYC/PKT"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&["rules", "--api", api, "--set", "02:00:00:00:cc:02=peer:B"]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = cli(&["rules", "--api", api, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        ok && v["hosts"][0]["rules"]
            .to_string()
            .contains("02:00:00:00:cc:02"),
        "{v}"
    );
    let (ok, _, err) = cli(&[
        "rules",
        "--api",
        api,
        "--set",
        "02:00:00:00:cc:03=peer:Nobody",
    ]);
    assert!(!ok && err.contains("no peer"), "{err}");
    let (ok, out, err) = cli(&["rules", "--api", api, "--del", "02:00:00:00:cc:02"]);
    assert!(ok, "{out}{err}");
    assert_eq!(rules(&sock), before);
    for view in ["paths", "matrix"] {
        let (ok, out, err) = cli(&[view, "--api", api, "--json"]);
        assert!(ok, "{view}: {out}{err}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{view}: {out}"
        );
    }

    sh(&format!("kill -TERM {}", child.id()));
    assert!(child.wait().unwrap().success());
    assert!(!sock.exists(), "the API socket is removed at exit");
}

#[test]
fn a_tcp_listener_off_loopback_needs_a_token() {
    let dir = TempDir::new("api-cfg");
    let cfg = config(&dir.0, "[api]\nlisten = \"0.0.0.0:9280\"\n");
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not on loopback: set api.token"), "{err}");
}
