//! The daemon's HTTP/JSON API (config `[api]`): rules, links and VM ports read and
//! changed over a unix socket and a TCP listener; requests without the bearer token on
//! TCP are refused; malformed requests get a 4xx with a reason and
//! change nothing; /metrics is Prometheus text that agrees with /stats.

mod common;

use common::prometheus::{parse_prometheus, Sample};
use common::*;
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::{presets, Api};

/// `scripts/certs.sh DIR ARGS`.
fn certs(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/certs.sh"))
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The API's config: one VM, one peer on empty pcap ports (nothing arrives), host "hosta".
fn config(dir: &std::path::Path, api: Api) -> std::path::PathBuf {
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
    let pcap = |i: u32| format!("net_pcap{i},rx_pcap={},tx_pcap=/dev/null", empty.display());
    let c = presets::one_vm_one_peer(&pcap(0), &pcap(1))
        .dataplane(|d| d.idle_sleep_us = Some(100))
        .host_name("hosta")
        .api(api);
    write_file(dir, "api.toml", &c.to_toml())
}

/// The bearer token of the TCP listener.
const TOKEN: &str = "s3cret";

/// A daemon with the API on a unix socket and on a loopback TCP port (token `TOKEN`);
/// killed on drop if a test fails before `stop`.
struct Daemon {
    child: std::process::Child,
    sock: std::path::PathBuf,
    port: u16,
    _guard: KillOnDrop,
    dir: TempDir,
}

impl Daemon {
    /// Starts one for the calling test; `None` (the test skipped) without root.
    fn start(tag: &str) -> Option<Self> {
        Self::start_with(tag, false)
    }

    /// With `tls`, the TCP listener speaks HTTPS with a certificate for 127.0.0.1 from
    /// scripts/certs.sh (CA in `pki/ca.crt` of the daemon's folder).
    fn start_with(tag: &str, tls: bool) -> Option<Self> {
        if !require_root() {
            return None;
        }
        let dir = TempDir::new(tag);
        let sock = dir.0.join("api.sock");
        let port = free_port();
        let pki = dir.0.join("pki");
        if tls {
            certs(&pki, &["ca"]);
            certs(&pki, &["server", "api", "127.0.0.1"]);
        }
        let cfg = config(
            &dir.0,
            Api {
                unix: Some(sock.clone()),
                listen: Some(format!("127.0.0.1:{port}")),
                token: Some(TOKEN.into()),
                tls_cert: tls.then(|| pki.join("api.crt")),
                tls_key: tls.then(|| pki.join("api.key")),
            },
        );
        let mut eal = eal_mem_args(tag);
        eal.extend(["-l".into(), "0-1".into()]);
        let log = dir.0.join("d.log");
        let child = Command::new(wrenvnet_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--")
            .args(&eal)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        wait_for_path(&sock, &log);
        Some(Daemon {
            child,
            sock,
            port,
            _guard: guard,
            dir,
        })
    }

    fn unix(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        api(&self.sock, method, path, body)
    }

    fn rules(&self) -> serde_json::Value {
        self.unix("GET", "/rules", "").1["rules"].clone()
    }

    fn links(&self) -> serde_json::Value {
        self.unix("GET", "/links", "").1["links"].clone()
    }

    fn vms(&self) -> serde_json::Value {
        self.unix("GET", "/vms", "").1["vms"].clone()
    }

    /// `GET /stats`'s switch counters.
    fn switch_stats(&self) -> serde_json::Value {
        self.unix("GET", "/stats", "").1["switch"].clone()
    }

    fn tcp(&self) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// SIGTERM: a clean exit that removes the API socket.
    fn stop(mut self) {
        sh(&format!("kill -TERM {}", self.child.id()));
        assert!(self.child.wait().unwrap().success());
        assert!(!self.sock.exists(), "the API socket is removed at exit");
    }
}

/// A change is seen by the next read; malformed requests get a 4xx with a reason and
/// change nothing.
fn assert_refused_unchanged(
    d: &Daemon,
    read: impl Fn(&Daemon) -> serde_json::Value,
    requests: &[(&str, &str, &str, u16, &str)],
) {
    let before = read(d);
    for &(method, path, body, status, reason) in requests {
        let (st, v) = d.unix(method, path, body);
        assert_eq!(st, status, "{method} {path}: {v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(
            v["error"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
        assert_eq!(read(d), before, "{method} {path} changed what it read");
    }
}

#[test]
fn api_reads_health_stats_and_vms() {
    let Some(d) = Daemon::start("api-read") else {
        return;
    };
    let (st, v) = d.unix("GET", "/health", "");
    assert_eq!((st, &v["host"]), (200, &serde_json::json!("hosta")), "{v}");
    let (st, v) = d.unix("GET", "/stats", "");
    assert_eq!(st, 200);
    assert!(v["switch"]["drops"].is_object(), "{v}");
    let rules = d.rules();
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules}"); // the VM and the rule
    let (st, v) = d.unix("GET", "/vms", "");
    assert_eq!(st, 200);
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{v}");
    assert_eq!(
        (&vms[0]["port"], &vms[0]["mac"], &vms[0]["slot"]),
        (&"vm".into(), &"02:00:00:00:aa:01".into(), &0.into()),
        "{v}"
    );
    d.stop();
}

#[test]
fn api_changes_rules_and_refuses_malformed_requests() {
    let Some(d) = Daemon::start("api-rules") else {
        return;
    };
    let before = d.rules();
    let (st, v) = d.unix("PUT", "/rules/02:00:00:00:cc:01", r#"{"to":"peer:B"}"#);
    assert_eq!(st, 200, "{v}");
    let after = d.rules();
    assert!(after.to_string().contains("02:00:00:00:cc:01"), "{after}");
    assert_refused_unchanged(
        &d,
        Daemon::rules,
        &[
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
        ],
    );
    let (st, _) = d.unix("DELETE", "/rules/02:00:00:00:cc:01", "");
    assert_eq!(st, 200);
    assert_eq!(d.rules(), before);
    d.stop();
}

/// Links: read, add, a rule onto it, removal refused while used, removal after.
#[test]
fn api_changes_links_and_keeps_one_in_use() {
    let Some(d) = Daemon::start("api-links") else {
        return;
    };
    let (rules, l0) = (d.rules(), d.links());
    assert_eq!(l0[0]["name"], "B", "{l0}");
    assert_eq!(l0[0]["ip"], "198.18.100.2");
    assert_eq!(l0[0]["rules"], 1);
    let (st, v) = d.unix("PUT", "/links/C", r#"{"ip":"198.18.100.3"}"#);
    assert_eq!(st, 200, "{v}");
    let (st, v) = d.unix("PUT", "/rules/02:00:00:00:cc:01", r#"{"to":"peer:C"}"#);
    assert_eq!(st, 200, "{v}");
    assert_refused_unchanged(
        &d,
        Daemon::links,
        &[
            ("DELETE", "/links/C", "", 400, "used by 1 rule"),
            ("DELETE", "/links/Z", "", 400, "no link"),
            (
                "PUT",
                "/links/D",
                r#"{"ip":"198.18.100.3"}"#,
                400,
                "already link \"C\"",
            ),
            ("PUT", "/links/D", r#"{"ip":"300.1.1.1"}"#, 400, "IPv4"),
            (
                "PUT",
                "/links/D",
                r#"{"addr":"1.2.3.4"}"#,
                400,
                "needs \"ip\"",
            ),
        ],
    );
    assert_eq!(d.unix("DELETE", "/rules/02:00:00:00:cc:01", "").0, 200);
    assert_eq!(d.unix("DELETE", "/links/C", "").0, 200);
    assert_eq!(d.links(), l0);
    assert_eq!(d.rules(), rules);
    d.stop();
}

/// VM ports: one plugged live is listed and its rule follows; malformed or clashing
/// plugs are refused; unplugged, it and its rule are gone.
#[test]
fn api_plugs_and_unplugs_a_vm_port() {
    let Some(d) = Daemon::start("api-vms") else {
        return;
    };
    let (vms, rules) = (d.vms(), d.rules());
    let empty = d.dir.0.join("empty.pcap");
    let plug = format!(
        r#"{{"devargs":"net_pcap7,rx_pcap={},tx_pcap=/dev/null","mac":"02:00:00:00:aa:02"}}"#,
        empty.display()
    );
    let (st, v) = d.unix("PUT", "/vms/vm2", &plug);
    assert_eq!(st, 200, "{v}");
    let plugged = d.vms();
    assert_eq!(plugged.as_array().unwrap().len(), 2, "{plugged}");
    assert!(
        plugged
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["port"] == "vm2"),
        "{plugged}"
    );
    let with_rule = d.rules();
    assert!(
        with_rule
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst_mac"] == "02:00:00:00:aa:02" && r["to"] == "vm:vm2"),
        "{with_rule}"
    );
    let no_devargs = r#"{"mac":"02:00:00:00:aa:03"}"#;
    assert_refused_unchanged(
        &d,
        |d| serde_json::json!([d.vms(), d.rules()]),
        &[
            ("PUT", "/vms/vm3", no_devargs, 400, "needs \"devargs\""),
            ("PUT", "/vms/vm3", "{bad", 400, "not JSON"),
            ("PUT", "/vms/vm3", &plug, 400, "already plugged"),
            ("DELETE", "/vms/nosuch", "", 400, "no VM port"),
        ],
    );
    let (st, v) = d.unix("DELETE", "/vms/vm2", "");
    assert_eq!((st, &v["rules_withdrawn"]), (200, &1.into()), "{v}");
    assert_eq!(d.vms(), vms);
    assert_eq!(d.rules(), rules);
    d.stop();
}

/// The value of the one counter `name` with labels `host="hosta"` and `extra`.
fn one_counter(samples: &[Sample], name: &str, extra: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = std::iter::once(("host", "hosta"))
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.name == name && x.labels == want)
        .collect();
    assert_eq!(found.len(), 1, "{name} {want:?} in {samples:?}");
    assert_eq!(found[0].kind, "counter", "{name}");
    found[0].value
}

/// Every counter of /stats is at /metrics, by the same name with the host, between
/// the values /stats gave just before and just after the scrape (counters only grow).
#[test]
fn api_serves_prometheus_text_that_agrees_with_stats() {
    let Some(d) = Daemon::start("api-metrics") else {
        return;
    };
    let before = d.switch_stats();
    let s = UnixStream::connect(&d.sock).unwrap();
    let (st, text) = http(s, "GET", "/metrics", "", "");
    assert_eq!(st, 200, "{text}");
    let after = d.switch_stats();
    let samples = parse_prometheus(&text);
    let between = |what: &str, v: f64, lo: &serde_json::Value, hi: &serde_json::Value| {
        let (lo, hi) = (lo.as_f64().unwrap(), hi.as_f64().unwrap());
        assert!(lo <= v && v <= hi, "{what}: {v} not in [{lo}, {hi}]");
    };
    for (metric, stat) in [
        ("wrenvnet_vm_rx_packets_total", "vm_rx"),
        ("wrenvnet_nic_tx_packets_total", "nic_tx"),
        ("wrenvnet_encapsulated_total", "encapsulated"),
        ("wrenvnet_empty_polls_total", "empty_polls"),
    ] {
        let v = one_counter(&samples, metric, &[]);
        between(metric, v, &before[stat], &after[stat]);
    }
    let causes = before["drops"].as_object().unwrap();
    assert!(!causes.is_empty(), "{before}");
    for (cause, n) in causes {
        let v = one_counter(&samples, "wrenvnet_drops_total", &[("cause", cause)]);
        between(cause, v, n, &after["drops"][cause]);
    }
    d.stop();
}

#[test]
fn api_on_tcp_needs_the_token() {
    let Some(d) = Daemon::start("api-tcp") else {
        return;
    };
    let before = d.rules();
    assert_eq!(http(d.tcp(), "GET", "/health", "", "").0, 401);
    let wrong = "Authorization: Bearer wrong\r\n";
    assert_eq!(http(d.tcp(), "GET", "/health", wrong, "").0, 401);
    let put = http(
        d.tcp(),
        "PUT",
        "/rules/02:00:00:00:ee:01",
        "",
        r#"{"to":"peer:B"}"#,
    );
    assert_eq!(put.0, 401);
    assert_eq!(
        d.rules(),
        before,
        "an unauthorized request changed the rules"
    );
    let right = format!("Authorization: Bearer {TOKEN}\r\n");
    let (st, body) = http(d.tcp(), "GET", "/rules", &right, "");
    assert_eq!(st, 200, "{body}");
    d.stop();
}

/// The operators' CLI on top of the API.
#[test]
fn operators_cli_reads_and_changes_through_the_api() {
    let Some(d) = Daemon::start("api-cli") else {
        return;
    };
    let before = d.rules();
    let cli = |args: &[&str]| {
        let out = Command::new(wrenvnet_bin()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let api = d.sock.to_str().unwrap();
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
    let nobody = "02:00:00:00:cc:03=peer:Nobody";
    let (ok, _, err) = cli(&["rules", "--api", api, "--set", nobody]);
    assert!(!ok && err.contains("no peer"), "{err}");
    let (ok, out, err) = cli(&["rules", "--api", api, "--del", "02:00:00:00:cc:02"]);
    assert!(ok, "{out}{err}");
    assert_eq!(d.rules(), before);
    for view in ["paths", "matrix"] {
        let (ok, out, err) = cli(&[view, "--api", api, "--json"]);
        assert!(ok, "{view}: {out}{err}");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{view}: {out}"
        );
    }
    d.stop();
}

#[test]
fn a_tcp_listener_off_loopback_needs_a_token() {
    let dir = TempDir::new("api-cfg");
    let cfg = config(
        &dir.0,
        Api {
            listen: Some("0.0.0.0:9280".into()),
            ..Api::default()
        },
    );
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not on loopback: set api.token"), "{err}");
}

/// `curl` to the daemon's HTTPS listener: (exit code, HTTP status, body).
fn curl(d: &Daemon, path: &str, extra: &[&str]) -> (i32, String) {
    let url = format!("https://127.0.0.1:{}{path}", d.port);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("spawn curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn api_on_tcp_with_tls_speaks_https_only() {
    let Some(d) = Daemon::start_with("api-tls", true) else {
        return;
    };
    let ca = d.dir.0.join("pki/ca.crt");
    let ca = ca.to_str().unwrap();
    let auth = format!("Authorization: Bearer {TOKEN}");
    // A client that trusts the CA, with the token: served.
    let (code, out) = curl(&d, "/health", &["--cacert", ca, "-H", &auth]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("\n200") && out.contains("\"hosta\""), "{out}");
    // The token is still required over TLS.
    let (code, out) = curl(&d, "/health", &["--cacert", ca]);
    assert!(code == 0 && out.ends_with("\n401"), "{out}");
    // A client that does not trust the CA refuses the daemon's certificate (curl: 60).
    let (code, _) = curl(&d, "/health", &["-H", &auth]);
    assert_eq!(
        code, 60,
        "the daemon's certificate was accepted without its CA"
    );
    // Plaintext HTTP to the TLS listener gets no HTTP answer, and changes nothing.
    let s = d.tcp();
    let (status, _) = http(
        s,
        "PUT",
        "/rules/02:00:00:00:ee:01",
        &format!("{auth}\r\n"),
        r#"{"to":"peer:B"}"#,
    );
    assert_ne!(status, 200, "plaintext was served on the TLS listener");
    assert!(!d.rules().to_string().contains("02:00:00:00:ee:01"));
    // The daemon serves on.
    assert_eq!(d.unix("GET", "/health", "").0, 200);
    d.stop();
}

#[test]
fn api_tls_settings_are_checked_at_start() {
    let dir = TempDir::new("api-tls-cfg");
    for (api, reason) in [
        (
            Api {
                listen: Some("127.0.0.1:9281".into()),
                tls_cert: Some("/x.crt".into()),
                ..Api::default()
            },
            "go together",
        ),
        (
            Api {
                unix: Some(dir.0.join("s")),
                tls_cert: Some("/x.crt".into()),
                tls_key: Some("/x.key".into()),
                ..Api::default()
            },
            "set api.listen",
        ),
    ] {
        let cfg = config(&dir.0, api);
        let out = Command::new(wrenvnet_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(reason), "{err}");
    }
}
