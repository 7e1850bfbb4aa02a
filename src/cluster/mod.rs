//! The cluster's state in etcd v3: one key space shared by the daemons (each watches
//! and writes its own slice) and the controller replicas (the leader writes desired
//! state; every replica reads the views). etcd is the only path between them: the
//! controller never calls a daemon.
//!
//! Key space, under one prefix (`/wrenvnet/<cluster>/`, configurable):
//!
//! | key | written by | lease | value |
//! |---|---|---|---|
//! | `hosts/<host>` | the host's daemon | the daemon's | [`HostRecord`] |
//! | `views/<host>` | the host's daemon, every publish interval | the daemon's | [`HostViews`] |
//! | `desired/<host>` | the leader, in a transaction guarded by its election key | none | [`Desired`] |
//! | `applied/<host>` | the host's daemon, after applying a desired state | the daemon's | [`Applied`] |
//! | `leader/<lease>` | the election (etcd's v3election API on `leader`) | the replica's | its replica id |
//! | `plan` | the leader (guarded) | none | the controller's state in force (see the controller) |
//! | `decisions/<seq>` | the leader (guarded), the last N kept | none | one decision (JSON) |
//! | `reservations/<id>` | an operator (`wrenvnet reserve`, a daemon's `POST /reservations`) | none | [`ReservationRequest`] |
//!
//! Semantics of `desired/<host>`: once present it is the complete set of the host's
//! rules to peers (`peer:NAME`): the daemon sets those and removes any other rule to a
//! peer; rules to its own VMs are never touched. Links in it are added or updated,
//! never removed (a link goes through the API, and only when no rule uses it). The
//! daemon applies a revision once, idempotently, and writes `applied/<host>` with that
//! revision and what it refused. At cold start (no `plan` key) the leader adopts the
//! rules the daemons publish as the plan in force and writes them unchanged.
//!
//! Values are JSON. A daemon's keys carry its lease (a TTL of a few seconds, kept
//! alive by its control thread): a host that dies disappears from `hosts/` and
//! `views/` within the TTL. Desired state outlives both: a restarted daemon reads it
//! before it announces itself ready.

pub mod etcd;
pub mod requests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest value a daemon publishes (bytes); a view past it is trimmed and counted,
/// never sent (etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` is normalised to end in exactly one `/`.
    pub fn new(prefix: &str) -> Self {
        let mut p = prefix.trim_end_matches('/').to_string();
        p.push('/');
        Keys { prefix: p }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn host(&self, host: &str) -> String {
        format!("{}hosts/{host}", self.prefix)
    }

    pub fn hosts(&self) -> String {
        format!("{}hosts/", self.prefix)
    }

    pub fn views(&self, host: &str) -> String {
        format!("{}views/{host}", self.prefix)
    }

    pub fn all_views(&self) -> String {
        format!("{}views/", self.prefix)
    }

    pub fn desired(&self, host: &str) -> String {
        format!("{}desired/{host}", self.prefix)
    }

    pub fn all_desired(&self) -> String {
        format!("{}desired/", self.prefix)
    }

    pub fn applied(&self, host: &str) -> String {
        format!("{}applied/{host}", self.prefix)
    }

    pub fn all_applied(&self) -> String {
        format!("{}applied/", self.prefix)
    }

    /// The election's name: candidates' keys are `leader/<lease id>`.
    pub fn election(&self) -> String {
        format!("{}leader", self.prefix)
    }

    pub fn plan(&self) -> String {
        format!("{}plan", self.prefix)
    }

    /// Decision `seq`, zero-padded so that keys sort as numbers.
    pub fn decision(&self, seq: u64) -> String {
        format!("{}decisions/{seq:020}", self.prefix)
    }

    pub fn decisions(&self) -> String {
        format!("{}decisions/", self.prefix)
    }

    /// A reservation asked for (`id` as `ReservationRequest::id_of` makes it).
    pub fn reservation(&self, id: &str) -> String {
        format!("{}reservations/{id}", self.prefix)
    }

    pub fn reservations(&self) -> String {
        format!("{}reservations/", self.prefix)
    }

    /// The host named by a key under `dir` (`hosts/`, `views/`, ...), if it is one.
    pub fn host_of<'k>(&self, dir: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix(dir)?
            .strip_prefix('/')
            .filter(|h| !h.is_empty() && !h.contains('/'))
    }
}

/// `hosts/<host>`: a daemon that is up and ready (its desired state loaded and applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub host: String,
    pub underlay_ip: String,
    /// Unix time (s) the daemon started.
    pub started_unix_s: f64,
    pub pid: u32,
}

/// `views/<host>`: what the controller reads of a daemon, the same documents its HTTP
/// API serves (`GET /rules`, `/links`, `/vms`, `/paths`, `/matrix`, `/stats`), so one
/// parser serves both. `paths` and `matrix` are `null` with monitoring off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostViews {
    pub host: String,
    /// Unix time (s) of this publication.
    pub at_unix_s: f64,
    pub rules: Value,
    pub links: Value,
    pub vms: Value,
    pub paths: Value,
    pub matrix: Value,
    pub stats: Value,
    /// The VM locations the daemon learned from announcements in the last
    /// `LOCATIONS_RECENT_S` (`GET /locations`' list); absent from daemons without it.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub locations: Value,
}

/// How long a learned location stays in a daemon's views: long enough for every
/// replica to see the arrival and every peer's convergence, short enough that a
/// fleet's views do not carry every migration ever made.
pub const LOCATIONS_RECENT_S: f64 = 60.0;

/// `desired/<host>`: the overlay rules and links the leader wants on a host. Rules to
/// the host's own VMs (`vm:PORT`) are the daemon's (its VM ports), never in here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The plan's revision: grows with every plan the leader writes.
    pub revision: u64,
    /// Destination VM MAC -> "peer:NAME".
    pub rules: std::collections::BTreeMap<String, String>,
    /// Peer name -> its underlay address (and MAC when not resolved by ARP).
    pub links: std::collections::BTreeMap<String, DesiredLink>,
    /// The reservations this host enforces on its NIC egress (`dataplane::switch::qos`):
    /// once present, the complete set (an empty list removes them all); absent, as in
    /// records written before reservations existed, those in force stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<ReservationSpec>>,
}

/// A reservation: frames from VM `src_mac` to VM `dst_mac` get `mbps` Mbit/s on the
/// sending host's uplink, with a token bucket of `burst_bytes` (default: 10 ms at that
/// rate, at least 64 KiB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationSpec {
    pub src_mac: String,
    pub dst_mac: String,
    pub mbps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<u64>,
}

/// `reservations/<id>`: a reservation an operator asked for. The leader admits it (or
/// refuses it, with the reason) and routes it; its verdict is in the plan record's
/// `reservations` ([`Admission`]); an admitted one is enforced by the source VM's host
/// (`Desired::reservations`). Deleting the key ends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    pub id: String,
    pub src_mac: String,
    pub dst_mac: String,
    pub mbps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<u64>,
    /// When it was asked for: reservations are admitted in this order (first come).
    pub created_unix_s: f64,
}

impl ReservationRequest {
    /// The id of the reservation of a pair (one per ordered pair of VMs): both MACs'
    /// hex digits, lower case, `src-dst`.
    pub fn id_of(src_mac: &str, dst_mac: &str) -> String {
        let hex = |m: &str| -> String {
            m.chars()
                .filter(char::is_ascii_hexdigit)
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        format!("{}-{}", hex(src_mac), hex(dst_mac))
    }

    /// What the source host enforces.
    pub fn spec(&self) -> ReservationSpec {
        ReservationSpec {
            src_mac: self.src_mac.to_ascii_lowercase(),
            dst_mac: self.dst_mac.to_ascii_lowercase(),
            mbps: self.mbps,
            burst_bytes: self.burst_bytes,
        }
    }
}

/// The leader's verdict on a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionState {
    /// Fits on its path; enforced by its source host.
    Admitted,
    /// Does not fit on any path (or is malformed); not enforced.
    Refused,
    /// A VM it names is not on any host yet; decided once both are seen.
    Pending,
    /// Was admitted, and no path has its rate any more (a link's measured bandwidth
    /// fell): still enforced (it goes first on its source's uplink), not guaranteed.
    Degraded,
}

/// A reservation's verdict, in the plan record (`plan`'s `reservations`, by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admission {
    pub state: AdmissionState,
    /// Why, in words an operator acts on.
    pub reason: String,
    /// The hosts its traffic crosses (admitted, degraded), source first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    pub mbps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredLink {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// `applied/<host>`: the last desired revision a daemon applied, and what failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub revision: u64,
    pub at_unix_s: f64,
    /// Changes the daemon refused (each with its reason); empty when all applied.
    #[serde(default)]
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sit_under_one_prefix_and_name_their_host() {
        let k = Keys::new("/wrenvnet/lab//");
        assert_eq!(k.host("h0"), "/wrenvnet/lab/hosts/h0");
        assert_eq!(k.desired("h1"), "/wrenvnet/lab/desired/h1");
        assert_eq!(
            k.decision(7),
            "/wrenvnet/lab/decisions/00000000000000000007"
        );
        assert_eq!(k.host_of("views", "/wrenvnet/lab/views/h2"), Some("h2"));
        assert_eq!(k.host_of("views", "/wrenvnet/lab/hosts/h2"), None);
        assert_eq!(k.host_of("views", "/wrenvnet/lab/views/"), None);
        assert_eq!(k.host_of("views", "/wrenvnet/other/views/h2"), None);
        assert!(k.decision(10) > k.decision(9));
        assert_eq!(
            k.reservation(&ReservationRequest::id_of(
                "02:00:00:00:01:0A",
                "02:00:00:00:03:01"
            )),
            "/wrenvnet/lab/reservations/02000000010a-020000000301"
        );
    }

    #[test]
    fn desired_state_round_trips_and_tolerates_a_missing_mac() {
        let d: Desired = serde_json::from_str(
            r#"{"revision":3,"rules":{"02:00:00:00:03:01":"peer:h1"},"links":{"h1":{"ip":"198.18.100.2"}}}"#,
        )
        .unwrap();
        assert_eq!(d.revision, 3);
        assert_eq!(d.links["h1"].mac, None);
        assert_eq!(
            d.reservations, None,
            "a record without reservations keeps those in force"
        );
        let back: Desired = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert!(!serde_json::to_string(&d).unwrap().contains("reservations"));
        let r: Desired = serde_json::from_str(
            r#"{"revision":4,"rules":{},"links":{},"reservations":[{"src_mac":"02:00:00:00:01:01","dst_mac":"02:00:00:00:03:01","mbps":40}]}"#,
        )
        .unwrap();
        let list = r.reservations.as_deref().unwrap();
        assert_eq!((list[0].mbps, list[0].burst_bytes), (40.0, None));
        let back: Desired = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
