//! The connection to etcd: where it is (`[etcd]` in the daemon's and the controller's
//! configs), the key space's prefix, the lease TTL, and a client with timeouts, so a
//! dead member costs a bounded wait and never a hang. The client is async (tonic); its
//! users run it on a current-thread runtime of their own control thread, never on a
//! worker or the main lcore.

use std::time::Duration;

use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use serde::Deserialize;

use super::Keys;

/// The shortest interval between HTTP/2 keep-alive pings (see `connect_with`).
const KEEP_ALIVE_MIN: Duration = Duration::from_secs(6);

fn default_prefix() -> String {
    "/wrenvnet/default".into()
}

fn default_lease_ttl_s() -> i64 {
    5
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_publish_interval_ms() -> u64 {
    1000
}

/// `[etcd]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    /// Client URLs of the members, e.g. `["http://127.0.0.1:2379"]`.
    pub endpoints: Vec<String>,
    /// The key space's prefix, one per cluster (`/wrenvnet/<cluster>`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// TTL (s) of the lease a daemon's or a controller replica's keys hang on: how long
    /// a dead one stays listed, and how soon a standby controller takes over.
    #[serde(default = "default_lease_ttl_s")]
    pub lease_ttl_s: i64,
    /// Bound on connecting to a member and on every request (ms).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often a daemon publishes its views (`views/<host>`), and the controller's
    /// pace of reading them (ms).
    #[serde(default = "default_publish_interval_ms")]
    pub publish_interval_ms: u64,
    /// TLS: the CA that signed the members' certificates (PEM). With it every endpoint
    /// must be `https://`; without it every endpoint must be `http://`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TLS client authentication (etcd's `--client-cert-auth`): this client's
    /// certificate and key (PEM), signed by a CA the members trust. Both or neither.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl EtcdSection {
    pub fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }

    /// Refuses what cannot work, with the reason.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(!self.endpoints.is_empty(), "etcd.endpoints is empty");
        anyhow::ensure!(
            self.prefix.starts_with('/') && self.prefix.trim_end_matches('/').len() > 1,
            "etcd.prefix must be an absolute key prefix such as /wrenvnet/lab, not {:?}",
            self.prefix
        );
        anyhow::ensure!(
            (2..=60).contains(&self.lease_ttl_s),
            "etcd.lease_ttl_s must be 2..=60 s, not {}",
            self.lease_ttl_s
        );
        anyhow::ensure!(
            (50..=30_000).contains(&self.timeout_ms),
            "etcd.timeout_ms must be 50..=30000, not {}",
            self.timeout_ms
        );
        anyhow::ensure!(
            (100..=60_000).contains(&self.publish_interval_ms),
            "etcd.publish_interval_ms must be 100..=60000, not {}",
            self.publish_interval_ms
        );
        self.validate_tls()
    }

    fn validate_tls(&self) -> Result<()> {
        let scheme = if self.ca_file.is_some() {
            "https://"
        } else {
            "http://"
        };
        if let Some(e) = self.endpoints.iter().find(|e| !e.starts_with(scheme)) {
            match self.ca_file {
                Some(_) => {
                    bail!("etcd.endpoints: {e} is not https:// (etcd.ca_file is set: TLS only)")
                }
                None => bail!("etcd.endpoints: {e} is not http:// (TLS needs etcd.ca_file)"),
            }
        }
        ensure!(
            self.cert_file.is_some() == self.key_file.is_some(),
            "etcd.cert_file and etcd.key_file go together"
        );
        ensure!(
            self.cert_file.is_none() || self.ca_file.is_some(),
            "etcd.cert_file needs etcd.ca_file (client certificates are for TLS)"
        );
        Ok(())
    }

    /// The TLS settings, files read; `None` for plaintext.
    #[cold]
    fn tls(&self) -> Result<Option<TlsOptions>> {
        let Some(ca) = &self.ca_file else {
            return Ok(None);
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }

    /// A client of one member that answers: the members are tried in turn, starting
    /// at one chosen by this process's id (so that a fleet's clients spread over the
    /// members), each given `timeout_ms` to connect and answer a status request. A
    /// client of a member that dies later fails its requests; callers reconnect, and
    /// reach the next member that answers. (A client over all endpoints at once keeps
    /// sending some requests to a dead member.) Fails when none answers, naming each
    /// member's error.
    #[cold]
    pub async fn connect(&self) -> Result<Client> {
        self.connect_any(true).await
    }

    /// Like [`connect`](Self::connect), but the client's requests carry no time bound:
    /// for requests that wait by design, such as an election campaign (it answers only
    /// once the candidate leads). Connecting is still bounded, and HTTP/2 keep-alive
    /// (a ping every 6 s, answered within `timeout_ms`) still finds a member that died
    /// under a waiting request.
    #[cold]
    pub async fn connect_unbounded(&self) -> Result<Client> {
        self.connect_any(false).await
    }

    async fn connect_any(&self, bounded: bool) -> Result<Client> {
        let n = self.endpoints.len();
        let first = std::process::id() as usize % n.max(1);
        let mut errors = Vec::new();
        for i in 0..n {
            let endpoint = &self.endpoints[(first + i) % n];
            match self.connect_with(endpoint, bounded).await {
                Ok(client) => return Ok(client),
                Err(e) => errors.push(format!("{endpoint}: {e:#}")),
            }
        }
        bail!("cannot reach etcd: {}", errors.join("; "))
    }

    #[cold]
    async fn connect_with(&self, endpoint: &str, bounded: bool) -> Result<Client> {
        let t = Duration::from_millis(self.timeout_ms);
        // HTTP/2 pings no more often than etcd allows (`--grpc-keepalive-min-time`, 5 s
        // by default): a client that pings faster is sent away (GOAWAY, "too many
        // pings") and its watches and campaigns break.
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(t)
            .with_keep_alive(t.max(KEEP_ALIVE_MIN), t);
        opts = match bounded {
            true => opts.with_timeout(t),
            false => opts.with_keep_alive_while_idle(true),
        };
        if let Some(tls) = self.tls()? {
            opts = opts.with_tls(tls);
        }
        let mut client = Client::connect([endpoint], Some(opts)).await?;
        tokio::time::timeout(t, client.status())
            .await
            .context("no answer to a status request")??;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EtcdSection> {
        let s: EtcdSection = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    #[test]
    fn defaults_and_refusals() {
        let s = parse("endpoints = [\"http://127.0.0.1:2379\"]").unwrap();
        assert_eq!(s.keys().prefix(), "/wrenvnet/default/");
        assert_eq!(s.lease_ttl_s, 5);
        for (bad, reason) in [
            ("endpoints = []", "empty"),
            ("endpoints = [\"x\"]\nprefix = \"wrenvnet\"", "absolute"),
            ("endpoints = [\"x\"]\nlease_ttl_s = 1", "lease_ttl_s"),
            ("endpoints = [\"x\"]\ntimeout_ms = 0", "timeout_ms"),
            ("endpoints = [\"x\"]\nttl = 3", "unknown field"),
            ("endpoints = [\"https://a:1\"]", "not http://"),
            (
                "endpoints = [\"http://a:1\"]\nca_file = \"ca.crt\"",
                "not https://",
            ),
            (
                "endpoints = [\"https://a:1\"]\nca_file = \"c\"\ncert_file = \"x\"",
                "go together",
            ),
        ] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
