//! What the daemon's etcd session is doing, for `/stats`, `/metrics` and `wrenvnet
//! status`: written by the control thread (and the main loop's views trimming), read by
//! the API on the main lcore. Atomics, so neither side ever waits for the other; the
//! last error's text sits behind a mutex taken only on those control paths.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde_json::{json, Value};

/// Unix time now, in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn unix_ms() -> u64 {
    (unix_now() * 1000.0) as u64
}

#[derive(Debug)]
pub struct EtcdStatus {
    /// Registered (`hosts/<host>` under a live lease) and the session healthy.
    connected: AtomicBool,
    /// The lease the daemon's keys hang on (0: none).
    lease_id: AtomicI64,
    /// The desired revision last applied, plus one (0: none yet).
    applied_revision_plus1: AtomicU64,
    /// Unix ms of the last answer from etcd; the daemon's start until the first.
    last_contact_ms: AtomicU64,
    registrations: AtomicU64,
    views_published: AtomicU64,
    /// Views that did not fit `MAX_VALUE_BYTES`: trimmed (matrix, then paths dropped)
    /// or, when still too big, not sent.
    views_trimmed: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<String>,
}

impl Default for EtcdStatus {
    fn default() -> Self {
        Self {
            connected: AtomicBool::new(false),
            lease_id: AtomicI64::new(0),
            applied_revision_plus1: AtomicU64::new(0),
            last_contact_ms: AtomicU64::new(unix_ms()),
            registrations: AtomicU64::new(0),
            views_published: AtomicU64::new(0),
            views_trimmed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        }
    }
}

impl EtcdStatus {
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Relaxed);
    }

    pub fn set_lease(&self, id: i64) {
        self.lease_id.store(id, Relaxed);
    }

    pub fn applied_revision(&self) -> Option<u64> {
        self.applied_revision_plus1.load(Relaxed).checked_sub(1)
    }

    pub fn set_applied(&self, revision: u64) {
        self.applied_revision_plus1
            .store(revision.saturating_add(1), Relaxed);
    }

    /// etcd answered.
    pub fn contact(&self) {
        self.last_contact_ms.store(unix_ms(), Relaxed);
    }

    pub fn seconds_since_contact(&self) -> f64 {
        unix_ms().saturating_sub(self.last_contact_ms.load(Relaxed)) as f64 / 1000.0
    }

    pub fn registered(&self) {
        self.registrations.fetch_add(1, Relaxed);
        self.set_connected(true);
    }

    pub fn views_published(&self) {
        self.views_published.fetch_add(1, Relaxed);
    }

    pub fn views_trimmed(&self) {
        self.views_trimmed.fetch_add(1, Relaxed);
    }

    /// Counts an error and keeps its text as the last one.
    #[cold]
    pub fn error(&self, what: &str) {
        self.errors.fetch_add(1, Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            what.clone_into(&mut e);
        }
    }

    /// The `etcd` object of `/stats`.
    #[cold]
    pub fn to_json(&self) -> Value {
        let lease = self.lease_id.load(Relaxed);
        json!({
            "connected": self.connected(),
            "applied_revision": self.applied_revision(),
            "seconds_since_contact": (self.seconds_since_contact() * 1000.0).round() / 1000.0,
            "lease_id": (lease != 0).then(|| format!("{lease:x}")),
            "registrations": self.registrations.load(Relaxed),
            "views_published": self.views_published.load(Relaxed),
            "views_trimmed": self.views_trimmed.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "last_error": self.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_revision_until_one_is_applied_and_errors_keep_the_last_text() {
        let s = EtcdStatus::default();
        assert_eq!(s.applied_revision(), None);
        assert_eq!(s.to_json()["applied_revision"], Value::Null);
        s.set_applied(0);
        assert_eq!(s.applied_revision(), Some(0));
        s.error("a");
        s.error("b");
        let j = s.to_json();
        assert_eq!(j["errors"], 2);
        assert_eq!(j["last_error"], "b");
        assert_eq!(j["connected"], false);
        s.set_lease(0x1f);
        s.registered();
        let j = s.to_json();
        assert_eq!(
            (j["lease_id"].as_str(), j["connected"].as_bool()),
            (Some("1f"), Some(true))
        );
    }
}
