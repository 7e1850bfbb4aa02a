//! The daemon's HTTP/JSON API (config `[api]`): rules, links and VM ports read and
//! changed over a unix socket and a TCP listener; requests without the bearer token on
//! TCP are refused, the controller's too; malformed requests get a 4xx with a reason and
//! change nothing; /metrics is Prometheus text that agrees with /stats.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One sample of a Prometheus text exposition: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4): every sample's family has a `# TYPE`
/// before it, counters are named `*_total`, label values are unescaped.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(l.strip_suffix('}').expect("labels end in }")),
            ),
            None => (series, BTreeMap::new()),
        };
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("no # TYPE for {name}"));
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes in the values.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {key} in {text}");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?} in {text}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
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
    require_root();
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

    let (st, v) = api(&sock, "GET", "/health", "");
    assert_eq!((st, &v["host"]), (200, &serde_json::json!("hosta")), "{v}");
    let (st, v) = api(&sock, "GET", "/stats", "");
    assert_eq!(st, 200);
    assert!(v["switch"]["drops"].is_object(), "{v}");
    let rules = |sock: &std::path::Path| api(sock, "GET", "/rules", "").1["rules"].clone();
    let before = rules(&sock);
    assert_eq!(before.as_array().unwrap().len(), 2, "{before}"); // the VM and the rule

    // A change...
    let (st, v) = api(
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
        let (st, v) = api(&sock, method, path, body);
        assert_eq!(st, status, "{method} {path}: {v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
        assert_eq!(rules(&sock), after, "{method} {path} changed the rules");
    }
    let (st, _) = api(&sock, "DELETE", "/rules/02:00:00:00:cc:01", "");
    assert_eq!(st, 200);
    assert_eq!(rules(&sock), before);

    // Links: read, add, rule onto it, refused removal while used, removal after.
    let links = |sock: &std::path::Path| api(sock, "GET", "/links", "").1["links"].clone();
    let l0 = links(&sock);
    assert_eq!(l0[0]["name"], "B", "{l0}");
    assert_eq!(l0[0]["ip"], "198.18.100.2");
    assert_eq!(l0[0]["rules"], 1);
    let (st, v) = api(&sock, "PUT", "/links/C", r#"{"ip":"198.18.100.3"}"#);
    assert_eq!(st, 200, "{v}");
    let (st, v) = api(
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
        let (st, v) = api(&sock, method, path, body);
        assert_eq!(st, 400, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
        assert_eq!(links(&sock), l1, "{method} {path} changed the links");
    }
    assert_eq!(api(&sock, "DELETE", "/rules/02:00:00:00:cc:01", "").0, 200);
    assert_eq!(api(&sock, "DELETE", "/links/C", "").0, 200);
    assert_eq!(links(&sock), l0);
    assert_eq!(rules(&sock), before);
    let (st, v) = api(&sock, "GET", "/vms", "");
    assert_eq!(st, 200);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{v}");
    assert_eq!(
        (&vms[0]["port"], &vms[0]["mac"], &vms[0]["slot"]),
        (&"vm".into(), &"02:00:00:00:aa:01".into(), &0.into()),
        "{v}"
    );

    // VM ports: plug one live, its rule follows; unplug it, its rule goes.
    let e = dir.0.join("empty.pcap");
    let plug = format!(
        r#"{{"devargs":"net_pcap7,rx_pcap={},tx_pcap=/dev/null","mac":"02:00:00:00:aa:02"}}"#,
        e.display()
    );
    let (st, v) = api(&sock, "PUT", "/vms/vm2", &plug);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        api(&sock, "GET", "/vms", "").1["vms"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        rules(&sock)
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst_mac"] == "02:00:00:00:aa:02" && r["to"] == "vm:vm2"),
        "{}",
        rules(&sock)
    );
    for (method, path, body, reason) in [
        (
            "PUT",
            "/vms/vm3",
            r#"{"mac":"02:00:00:00:aa:03"}"#,
            "needs \"devargs\"",
        ),
        ("PUT", "/vms/vm3", "{bad", "not JSON"),
        ("PUT", "/vms/vm3", &plug, "already plugged"),
        ("DELETE", "/vms/nosuch", "", "no VM port"),
    ] {
        let (st, v) = api(&sock, method, path, body);
        assert_eq!(st, 400, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
    }
    let (st, v) = api(&sock, "DELETE", "/vms/vm2", "");
    assert_eq!((st, &v["rules_withdrawn"]), (200, &1.into()), "{v}");
    assert_eq!(
        api(&sock, "GET", "/vms", "").1["vms"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(rules(&sock), before);

    // Prometheus text: every counter of /stats, by the same name, with the host.
    let s = UnixStream::connect(&sock).unwrap();
    let (st, text) = http(s, "GET", "/metrics", "", "");
    assert_eq!(st, 200);
    let samples = parse_prometheus(&text);
    let stats = api(&sock, "GET", "/stats", "").1;
    let one = |name: &str, extra: &[(&str, &str)]| {
        let want: BTreeMap<String, String> = std::iter::once(("host", "hosta"))
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = samples
            .iter()
            .filter(|x| x.name == name && x.labels == want)
            .collect();
        assert_eq!(found.len(), 1, "{name} {want:?} in:\n{text}");
        found[0].value
    };
    for (metric, stat) in [
        ("wrenvnet_vm_rx_packets_total", "vm_rx"),
        ("wrenvnet_nic_tx_packets_total", "nic_tx"),
        ("wrenvnet_encapsulated_total", "encapsulated"),
        ("wrenvnet_empty_polls_total", "empty_polls"),
    ] {
        let v = one(metric, &[]);
        // Counters only grow: the scrape came first.
        assert!(
            v <= stats["switch"][stat].as_f64().unwrap(),
            "{metric} {v}: {stats}"
        );
    }
    let causes = stats["switch"]["drops"].as_object().unwrap();
    assert!(!causes.is_empty());
    for (cause, n) in causes {
        assert_eq!(
            one("wrenvnet_drops_total", &[("cause", cause)]),
            n.as_f64().unwrap(),
            "{cause}"
        );
    }

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

    // The controller reaches the API over TCP with the token, and not with a wrong one.
    for (token, up) in [("s3cret", true), ("wrong", false)] {
        let status = dir.0.join(format!("controller-{token}.json"));
        let cfg = write_file(
            &dir.0,
            "controller.toml",
            &format!(
                "[controller]\nstatus_file = \"{}\"\nadapt = false\n\
                 [[host]]\nname = \"hosta\"\nurl = \"127.0.0.1:{port}\"\ntoken = \"{token}\"\n",
                status.display()
            ),
        );
        let out = Command::new(wrenvnet_bin())
            .args(["controller", "--observe", "--duration", "1.5", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status).unwrap()).unwrap();
        let hosts_up = v["hosts_up"] == serde_json::json!(["hosta"]);
        assert_eq!(hosts_up, up, "token {token}: {v}\n{log}");
        if !up {
            assert!(log.contains("401"), "{log}");
        }
    }

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
