//! The client of a daemon's HTTP API, for the operator's commands and the controller:
//! ureq over TCP (`api.listen`, with the bearer token) or over the API's unix socket
//! (`api.unix`). ureq speaks HTTP; for the unix socket it is given a transport that
//! connects a `UnixStream` where it would connect a TCP socket, and moves bytes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use ureq::config::Config;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};
use ureq::Agent;

/// How long one request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One daemon's API.
pub struct ApiClient {
    agent: Agent,
    /// `http://HOST:PORT` (TCP) or `http://localhost` (unix socket).
    base: String,
    token: Option<String>,
    /// Where the API is, for messages.
    peer: String,
}

fn config() -> Config {
    Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        // Daemons are reached directly, whatever HTTP_PROXY says; the API never redirects.
        .proxy(None)
        .max_redirects(0)
        // 4xx replies carry the daemon's reason as JSON: read it, do not fail first.
        .http_status_as_error(false)
        .build()
}

impl ApiClient {
    /// The API on the unix socket at `path` (`api.unix`).
    pub fn unix(path: &Path) -> Self {
        Self {
            agent: Agent::with_parts(config(), UnixConnector(path.to_path_buf()), NoResolver),
            base: "http://localhost".into(),
            token: None,
            peer: path.display().to_string(),
        }
    }

    /// The API at `addr` ("HOST:PORT", `api.listen`), with its bearer token if any.
    pub fn tcp(addr: &str, token: Option<&str>) -> Self {
        Self {
            agent: config().new_agent(),
            base: format!("http://{addr}"),
            token: token.map(str::to_string),
            peer: addr.to_string(),
        }
    }

    /// One request (`body` as JSON when given): the reply's status and JSON body.
    #[cold]
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        if !body.is_empty() {
            req = req.header("Content-Type", "application/json");
        }
        let req = req
            .body(body)
            .with_context(|| format!("{method} {path}: not a valid request"))?;
        let mut reply = self
            .agent
            .run(req)
            .with_context(|| format!("the request to the API at {} failed", self.peer))?;
        let status = reply.status().as_u16();
        let text = reply
            .body_mut()
            .read_to_string()
            .with_context(|| format!("cannot read the reply from {}", self.peer))?;
        let v = serde_json::from_str(&text)
            .with_context(|| format!("the reply from {} is not JSON", self.peer))?;
        Ok((status, v))
    }

    /// One request that must succeed (HTTP 200, `"ok": true`): the reply's JSON.
    #[cold]
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, v) = self.request(method, path, body)?;
        if status != 200 || v["ok"] != true {
            bail!(
                "{}: {method} {path}: HTTP {status}: {}",
                self.peer,
                v["error"]
            );
        }
        Ok(v)
    }
}

/// Connects every request to one unix socket, whatever the URL's host.
#[derive(Debug)]
struct UnixConnector(PathBuf);

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let stream = UnixStream::connect(&self.0)?;
        let c = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(c.input_buffer_size(), c.output_buffer_size()),
        }))
    }
}

/// A unix socket needs no name resolution: the connector ignores the addresses.
#[derive(Debug)]
struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(
        &self,
        _: &ureq::http::Uri,
        _: &Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(([127, 0, 0, 1], 0).into());
        Ok(addrs)
    }
}

#[derive(Debug)]
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

/// A timed-out read or write as ureq reports it.
fn io_error(e: io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => e.into(),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream
            .set_write_timeout(timeout.not_zero().map(|t| *t))?;
        let output = &self.buffers.output()[..amount];
        self.stream
            .write_all(output)
            .map_err(|e| io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream
            .set_read_timeout(timeout.not_zero().map(|t| *t))?;
        let n = loop {
            match self.stream.read(self.buffers.input_append_buf()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io_error(e, timeout))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    /// Open while the daemon has neither closed the connection nor sent anything unasked.
    fn is_open(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let idle =
            matches!(self.stream.read(&mut [0u8]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).is_ok() && idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server saw of a request: method, URL, Authorization header, body.
    type Seen = (String, String, Option<String>, String);

    /// A server on a unix socket that answers `n` requests with (status, body), and
    /// reports each request's method, URL, authorization and body.
    fn serve(path: &Path, replies: Vec<(u16, &'static str)>) -> std::thread::JoinHandle<Vec<Seen>> {
        let server = tiny_http::Server::http_unix(path).unwrap();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in replies {
                let mut req = server.recv().unwrap();
                let mut text = String::new();
                req.as_reader().read_to_string(&mut text).unwrap();
                let auth = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.to_string());
                seen.push((req.method().to_string(), req.url().to_string(), auth, text));
                req.respond(tiny_http::Response::from_string(body).with_status_code(status))
                    .unwrap();
            }
            seen
        })
    }

    #[test]
    fn requests_over_a_unix_socket_carry_method_path_and_body_and_read_4xx_replies() {
        let dir = std::env::temp_dir().join(format!("wrenvnet-api-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let server = serve(
            &sock,
            vec![
                (200, r#"{"ok":true,"host":"h"}"#),
                (400, r#"{"ok":false,"error":"no peer \"x\""}"#),
                (200, "not json"),
            ],
        );
        let api = ApiClient::unix(&sock);
        let v = api.call("GET", "/rules", None).unwrap();
        assert_eq!(v["host"], "h");
        let body = serde_json::json!({"to": "peer:x"});
        let err = format!(
            "{:#}",
            api.call("PUT", "/rules/02:00:00:00:00:01", Some(&body))
                .unwrap_err()
        );
        assert!(err.contains("HTTP 400") && err.contains("no peer"), "{err}");
        let err = format!("{:#}", api.request("GET", "/x", None).unwrap_err());
        assert!(err.contains("not JSON"), "{err}");
        let seen = server.join().unwrap();
        assert_eq!(
            seen[0],
            ("GET".into(), "/rules".into(), None, String::new())
        );
        assert_eq!(
            seen[1],
            (
                "PUT".into(),
                "/rules/02:00:00:00:00:01".into(),
                None,
                body.to_string()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_requests_carry_the_bearer_token() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let req = server.recv().unwrap();
            let auth = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string());
            req.respond(tiny_http::Response::from_string(r#"{"ok":true}"#))
                .unwrap();
            auth
        });
        ApiClient::tcp(&addr, Some("s3cret"))
            .call("GET", "/health", None)
            .unwrap();
        assert_eq!(t.join().unwrap().as_deref(), Some("Bearer s3cret"));
    }

    #[test]
    fn a_missing_socket_is_an_error_that_names_it() {
        let err = format!(
            "{:#}",
            ApiClient::unix(Path::new("/nonexistent/api.sock"))
                .call("GET", "/health", None)
                .unwrap_err()
        );
        assert!(err.contains("/nonexistent/api.sock"), "{err}");
    }
}
