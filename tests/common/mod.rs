//! Helpers shared by the integration tests: running the `wrenvnet` binary, EAL
//! arguments that fit the host, and network namespaces that clean up after themselves.
#![allow(dead_code)]

pub mod etcd;
pub mod prometheus;
pub mod qemu;
pub mod sim;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A loopback TCP port for a server the test starts, free when picked. Picked below
/// the kernel's ephemeral range (`ip_local_port_range`, 32768 up by default): a port
/// the kernel handed out for `bind(0)` and that was released may be taken as the source
/// port of any outgoing connection (etcd's clients, the daemons' gRPC) before the
/// server binds it ("address already in use"); ports below that range are never
/// handed out so. Each test process walks its own stretch (by PID), so tests running
/// at once rarely meet, and a port still bound elsewhere is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() * 97) % SPAN;
    for _ in 0..SPAN {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (base + k) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

pub fn wrenvnet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wrenvnet"))
}

/// Runs `wrenvnet ARGS` to the end, panicking with its stderr if it fails; its stdout.
pub fn wrenvnet_ok<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(wrenvnet_bin())
        .args(args)
        .output()
        .expect("spawn wrenvnet");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Waits (30 s at most) until `path` exists: a daemon's socket once it is up. Panics
/// with the daemon's log `log` if it does not come.
pub fn wait_for_path(path: &Path, log: &Path) {
    let t0 = std::time::Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "no {} after 30 s: {}",
            path.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs a shell command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell command and returns its output whatever the status.
pub fn sh_out(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh")
}

/// The line a root-only test prints when it skips; scripts/test.sh counts them and, as
/// root (CI), fails the run if there is any.
pub const SKIP_MARKER: &str = "SKIPPED (needs root):";

/// Whether this process runs as root (network namespaces, veths, iperf3 in them). If
/// not, says `SKIPPED (needs root): <test>` and the caller returns at once:
/// `if !require_root() { return; }`. The line goes to the process's stderr directly,
/// past libtest's capture of `eprintln!`, so it shows for passing tests too.
#[must_use = "a test that needs root must return when this is false"]
pub fn require_root() -> bool {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if euid == Some(0) {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let _ = writeln!(std::io::stderr(), "\n{SKIP_MARKER} {test}");
    false
}

/// EAL memory arguments that work on this host: hugepages in memory when reserved,
/// anonymous memory otherwise. Each process also gets its own file prefix.
pub fn eal_mem_args(tag: &str) -> Vec<String> {
    let free_huge = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mut v = vec!["--log-level".to_string(), "*:warning".to_string()];
    if free_huge >= 128 {
        v.push("--in-memory".into());
    } else {
        v.extend(["--no-huge".into(), "-m".into(), "512".into()]);
        v.extend([
            "--file-prefix".into(),
            format!("{tag}{}", std::process::id()),
        ]);
    }
    v
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("wrenvnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // WRENVNET_KEEP_TEST_DIRS=1 keeps the logs of a failed run for a look.
        if std::env::var_os("WRENVNET_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Network namespaces created by a test and deleted (with their veths) on drop.
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    pub fn create(names: &[String]) -> Self {
        let ns = Namespaces(Vec::new());
        let mut ns = ns;
        for n in names {
            let _ = sh_out(&format!("ip netns del {n} 2>/dev/null"));
            sh(&format!("ip netns add {n}"));
            ns.0.push(n.clone());
            sh(&format!("ip -n {n} link set lo up"));
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = sh_out(&format!(
                "ip netns pids {n} | xargs -r kill -9; ip netns del {n}"
            ));
        }
    }
}

/// Links created in the root namespace, deleted on drop.
pub struct Links(pub Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = sh_out(&format!("ip link del {l} 2>/dev/null"));
        }
    }
}

/// Makes a veth pair `outer` (root namespace, for a DPDK af_packet port) and `inner`
/// (moved into `ns` with `addr`). Offloads are turned off on both ends: af_packet
/// copies frames as they are, so segments must be MTU-sized and fully checksummed.
pub fn veth_into_ns(outer: &str, inner: &str, ns: &str, addr: &str) {
    // The peer gets a unique name first: `inner` may exist in the root namespace.
    sh(&format!("ip link add {outer} type veth peer name {outer}i"));
    sh(&format!("ip link set {outer}i netns {ns}"));
    sh(&format!("ip -n {ns} link set {outer}i name {inner}"));
    sh(&format!("ip -n {ns} addr add {addr} dev {inner}"));
    sh(&format!("ip -n {ns} link set {inner} up"));
    sh(&format!("ip link set {outer} up"));
    sh(&format!(
        "ethtool -K {outer} tx off tso off gso off gro off >/dev/null 2>&1 || true"
    ));
    sh(&format!(
        "ip netns exec {ns} ethtool -K {inner} tx off tso off gso off gro off >/dev/null 2>&1 || true"
    ));
    sh(&format!("sysctl -qw net.ipv6.conf.{outer}.disable_ipv6=1"));
}

/// Starts `wrenvnet run` in namespace `ns` on config `cfg` (written to `dir/name.toml`),
/// its output in `dir/name.log` and its exit summary in `dir/name.json`; returns the
/// child and those two paths.
pub fn spawn_daemon(
    ns: &str,
    dir: &Path,
    name: &str,
    cfg: &str,
) -> (std::process::Child, PathBuf, PathBuf) {
    spawn_daemon_on(ns, dir, name, cfg, &["-l".into(), "0-1".into()])
}

/// As `spawn_daemon`, with the EAL's core arguments (`-l ...` or `--lcores ...`).
pub fn spawn_daemon_on(
    ns: &str,
    dir: &Path,
    name: &str,
    cfg: &str,
    cores: &[String],
) -> (std::process::Child, PathBuf, PathBuf) {
    let path = write_file(dir, &format!("{name}.toml"), cfg);
    let log = dir.join(format!("{name}.log"));
    let summary = dir.join(format!("{name}.json"));
    let mut eal = eal_mem_args(name);
    eal.extend(cores.iter().cloned());
    let f = std::fs::File::create(&log).expect("log file");
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&path)
        .arg("--summary-json")
        .arg(&summary)
        .arg("--")
        .args(&eal)
        .stdout(f.try_clone().expect("log file"))
        .stderr(f)
        .spawn()
        .expect("spawn wrenvnet");
    (child, log, summary)
}

/// Waits until a TCP socket listens on `port` in namespace `ns` (a server just spawned):
/// a client started before that fails at once. Panics after 10 s.
pub fn wait_listening(ns: &str, port: u16) {
    for _ in 0..100 {
        let out = sh_out(&format!("ip netns exec {ns} ss -Hltn 'sport = :{port}'"));
        if out.status.success() && !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing listens on TCP port {port} in namespace {ns} after 10 s");
}

/// An iperf3 TCP transfer of `secs` seconds from namespace `client` to `dst`, served
/// in namespace `server`: the bytes received and the rate in Mbit/s.
pub fn iperf3(client: &str, server: &str, dst: &str, secs: u32) -> (u64, f64) {
    let mut srv = std::process::Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(server, 5201);
    let out = sh(&format!(
        "ip netns exec {client} iperf3 -c {dst} -t {secs} -J"
    ));
    let _ = srv.wait();
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sum = &r["end"]["sum_received"];
    (
        sum["bytes"].as_u64().unwrap(),
        sum["bits_per_second"].as_f64().unwrap() / 1e6,
    )
}

/// Kills process `0` (SIGKILL) when dropped, if it still runs: a test that fails half
/// way leaves no daemon behind (namespaced ones go with their namespace).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = sh_out(&format!("kill -9 {} 2>/dev/null", self.0));
    }
}

/// One HTTP/1.1 request over `stream` (closed after the reply), written by hand so the
/// tests see exactly what goes over the wire: (status, body). A connection the server
/// breaks (a TLS listener given plaintext closes it mid-write) is status 0, the error
/// as the body.
pub fn http<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let sent = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    let mut raw = Vec::new();
    if let Err(e) = sent.and_then(|()| stream.read_to_end(&mut raw).map(|_| ())) {
        return (0, format!("connection broken: {e}"));
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (&raw[..], &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A chunked HTTP/1.1 body decoded (a large reply comes in chunks: hex size, CRLF,
/// data, CRLF, up to a chunk of size 0); what a broken chunk leaves is kept as is.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            break;
        };
        let data = &rest[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return out;
        }
        out.extend_from_slice(&data[..size]);
        rest = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
    out.extend_from_slice(rest);
    out
}

/// One request to a daemon's HTTP API on its unix socket (`api.unix`): the status and
/// the body as JSON (as a JSON string when it is not JSON).
pub fn api(sock: &Path, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let s = std::os::unix::net::UnixStream::connect(sock)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", sock.display()));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let (st, b) = http(s, method, path, "", body);
    (
        st,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::String(b)),
    )
}

/// Now, in Unix seconds (to compare with the timestamps of `ping -D` and the daemons).
pub fn unix_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `scripts/lab.sh --no-setup --plain ARGS` with this build's binaries, to its end: its
/// output (stdout, then stderr), printed under `what`; panics with it when the lab
/// fails (it does when the application's iperf3 does).
pub fn run_lab(args: &[String], what: &str) -> String {
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab.sh"))
        .args(["--no-setup", "--plain"])
        .args(args)
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
    println!("--- lab ({what}) ---\n{text}");
    assert!(output.status.success(), "lab.sh failed:\n{text}");
    text
}
