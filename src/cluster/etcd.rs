//! The connection to etcd: where it is (`[etcd]` in the daemon's and the controller's
//! configs), the key space's prefix, the lease TTL, and a client with timeouts, so a
//! dead member costs a bounded wait and never a hang. The client is async (tonic); its
//! users run it on a current-thread runtime of their own control thread, never on a
//! worker or the main lcore.

use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Client, ConnectOptions};
use serde::Deserialize;

use super::Keys;

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
        Ok(())
    }

    /// A client of the members; fails within `timeout_ms` when none answers.
    #[cold]
    pub async fn connect(&self) -> Result<Client> {
        let t = Duration::from_millis(self.timeout_ms);
        let opts = ConnectOptions::new()
            .with_connect_timeout(t)
            .with_timeout(t)
            .with_keep_alive(t, t);
        Client::connect(self.endpoints.clone(), Some(opts))
            .await
            .with_context(|| format!("cannot reach etcd at {}", self.endpoints.join(",")))
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
        ] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
