//! Real etcd members for the tests: an N-member cluster on loopback, each member on
//! free ports with its own data dir, stopped (by PID) and removed on drop. Members can
//! be killed, paused and started again, as the fault tests need.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TempDir};

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    dir: TempDir,
    initial: String,
    /// With TLS: the folder of `scripts/certs.sh` (ca, one server cert per member,
    /// client cert "client"); clients must then present a certificate.
    pki: Option<PathBuf>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers.
    pub fn start(tag: &str, n: usize) -> Self {
        Self::start_with(tag, n, false)
    }

    /// Starts `n` members serving clients over TLS only, with client certificates
    /// required (`--client-cert-auth`), certificates made by scripts/certs.sh.
    pub fn start_tls(tag: &str, n: usize) -> Self {
        Self::start_with(tag, n, true)
    }

    fn start_with(tag: &str, n: usize, tls: bool) -> Self {
        let dir = TempDir::new(&format!("etcd-{tag}"));
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let pki = tls.then(|| make_pki(&dir.0.join("pki"), n));
        let mut c = EtcdCluster {
            members,
            dir,
            initial,
            pki,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_serving(i);
        }
        c
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.0.join(&self.members[i].name)
    }

    fn scheme(&self) -> &'static str {
        if self.pki.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The PKI folder (TLS clusters): `ca.crt`, `client.{crt,key}`, `m<i>.{crt,key}`.
    pub fn pki(&self) -> Option<&std::path::Path> {
        self.pki.as_deref()
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let client = format!("{}://127.0.0.1:{}", self.scheme(), m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = std::fs::File::create(self.dir.0.join(format!("{}.log", m.name))).unwrap();
        let child = Command::new("etcd")
            .args(["--name", &m.name, "--data-dir"])
            .arg(self.data_dir(i))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", "wrenvnet-test"])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(self.tls_args(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd (scripts/setup.sh installs etcd-server)");
        self.members[i].child = Some(child);
    }

    fn tls_args(&self, i: usize) -> Vec<String> {
        let Some(pki) = &self.pki else {
            return Vec::new();
        };
        let f = |name: &str| pki.join(name).display().to_string();
        vec![
            "--cert-file".into(),
            f(&format!("m{i}.crt")),
            "--key-file".into(),
            f(&format!("m{i}.key")),
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            f("ca.crt"),
        ]
    }

    /// Waits (20 s at most) until member i accepts client connections.
    fn wait_serving(&self, i: usize) {
        let t0 = Instant::now();
        let addr = ("127.0.0.1", self.members[i].client_port);
        while TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "etcd member {i} not serving: {}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!(
            "{}://127.0.0.1:{}",
            self.scheme(),
            self.members[i].client_port
        )
    }

    /// `endpoints = [...]` for a TOML `[etcd]` section.
    pub fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(", "))
    }

    /// SIGKILLs member i (its data dir stays, for `restart`).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member i again on its data dir and waits until it serves.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
        self.wait_serving(i);
    }

    /// `etcdctl ARGS` against every member; its stdout (panics on failure).
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints().join(",")))
            .args(["--command-timeout=5s"])
            .args(self.pki.iter().flat_map(|p| {
                ["ca.crt", "client.crt", "client.key"]
                    .iter()
                    .zip(["--cacert", "--cert", "--key"])
                    .map(|(f, flag)| format!("{flag}={}", p.join(f).display()))
                    .collect::<Vec<_>>()
            }))
            .args(args)
            .output()
            .expect("spawn etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ctl(&["get", "--print-value-only", key]);
        let v = out.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_string())
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", "--keys-only", prefix])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A CA, a server certificate per member (127.0.0.1, localhost) and a client
/// certificate "client", by scripts/certs.sh.
fn make_pki(dir: &std::path::Path, n: usize) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/certs.sh");
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(script)
            .arg(dir)
            .args(args)
            .output()
            .expect("run scripts/certs.sh");
        assert!(
            out.status.success(),
            "certs.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ca"]);
    for i in 0..n {
        run(&["server", &format!("m{i}"), "127.0.0.1", "localhost"]);
    }
    run(&["client", "client"]);
    dir.to_path_buf()
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
