//! Where VMs are, as this daemon learned it from their own announcements
//! (`dataplane::switch::announce`), without waiting for the controller: the main lcore
//! drains the workers' arrivals every pass and moves the rules at once.
//!
//! - A VM announced on a local port (with the port's own MAC), or a port plugged
//!   `"incoming": true` for a migration whose link comes up (the destination QEMU
//!   starts the vhost-user device when the guest resumes, before the guest's own
//!   announcement): its rule points at the port; until then it stays with the source
//!   host. For a link that came up, the daemon floods a RARP for the VM over the
//!   overlay itself, so that the peers move at once too.
//! - A VM announced over the overlay by peer P: its rule points at P. If the rule led
//!   to a local port, or to nothing (the port just unplugged), the VM has just left
//!   this host: the rule is a forwarding pointer for `pointer_lifetime_ms`, and the
//!   transit frames it carries (sent here by peers that had not converged yet) are
//!   counted (`pointer_forwarded`). After the lifetime the rule stays, as a rule.
//!
//! Which wins against the controller: a location learned less than
//! `location_hold_ms` ago wins over a desired state that says otherwise for that MAC
//! (the controller's plan may predate the move; the refusal is in `applied/<host>`'s
//! errors, so the controller sees it); past that, the desired state wins, as for any
//! rule to a peer. Rules to local VM ports are never the desired state's anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::switch::announce::{Announcements, Arrival};
use dataplane::switch::fib::{Dest, Fib, PeerIx};
use serde_json::{json, Value};

use super::operations::{mac_str, Operations};
use crate::daemon::cluster::unix_now;

/// How long locations are held and pointers counted (`[switch]`).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub pointer: Duration,
    pub hold: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            pointer: Duration::from_secs(5),
            hold: Duration::from_secs(10),
        }
    }
}

/// A VM's location as learned.
#[derive(Debug, Clone)]
pub struct Location {
    /// "vm:PORT" (here) or "peer:NAME".
    pub to: String,
    pub learned: Instant,
    pub unix_s: f64,
    /// Until when its rule counts as a forwarding pointer.
    pub pointer_until: Option<Instant>,
}

/// Learned locations, by MAC.
#[derive(Debug, Default)]
pub struct Locations {
    pub by_mac: BTreeMap<[u8; 6], Location>,
    pub lifetimes: Lifetimes,
    /// Arrivals that moved a rule, and those refused (port or link gone meanwhile).
    pub applied: u64,
    pub refused: u64,
}

impl Operations<'_> {
    /// Main lcore, every pass: the arrivals the workers announced, then the pointers
    /// whose lifetime is over. Never blocks.
    pub fn follow_arrivals(&self, ring: &Announcements) {
        let up = self.vms.borrow_mut().arrived();
        for (slot, mac) in up {
            self.arrival(Arrival::Local {
                slot: dataplane::switch::fib::VmSlot(slot),
                mac,
            });
        }
        while let Some(a) = ring.take() {
            self.arrival(a);
        }
        let now = Instant::now();
        let expired: Vec<[u8; 6]> = self
            .locations
            .borrow()
            .by_mac
            .iter()
            .filter(|(_, l)| l.pointer_until.is_some_and(|t| t <= now))
            .map(|(m, _)| *m)
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut next = Fib::clone(&self.fib.load());
        let mut locs = self.locations.borrow_mut();
        for m in &expired {
            next.set_pointer(*m, false);
            if let Some(l) = locs.by_mac.get_mut(m) {
                l.pointer_until = None;
            }
        }
        self.fib.store(Arc::new(next));
    }

    #[cold]
    fn arrival(&self, a: Arrival) {
        let current = self.fib.load();
        let mac = a.mac();
        let (dest, pointer) = match a {
            Arrival::Local { slot, .. } => {
                let here = self
                    .vms
                    .borrow()
                    .list()
                    .iter()
                    .any(|v| v.0 == slot.0 && v.2 == mac);
                if !here {
                    self.refused(mac, "on a port that is no longer its own");
                    return;
                }
                (Dest::Vm(slot), false)
            }
            Arrival::Remote { peer_ip, .. } => {
                let Some(p) = current.peers().iter().position(|x| x.ip == peer_ip) else {
                    self.refused(mac, "from a link that is gone");
                    return;
                };
                let left = !matches!(current.lookup(&mac), Some(Dest::Peer(_)));
                (Dest::Peer(PeerIx(p)), left)
            }
        };
        if current.lookup(&mac) == Some(dest) {
            return; // a repeated announcement
        }
        let mut next = Fib::clone(&current);
        next.insert(mac, dest);
        next.set_pointer(mac, pointer);
        let to = self.dest_str(&next, &dest);
        self.fib.store(Arc::new(next));
        let mut locs = self.locations.borrow_mut();
        let lifetime = locs.lifetimes.pointer;
        let now = Instant::now();
        locs.applied += 1;
        locs.by_mac.insert(
            mac,
            Location {
                to: to.clone(),
                learned: now,
                unix_s: unix_now(),
                pointer_until: pointer.then(|| now + lifetime),
            },
        );
        log::info!(
            "VM {} announced: rule -> {to}{}",
            mac_str(&mac),
            if pointer {
                format!(" (forwarding pointer for {lifetime:?})")
            } else {
                String::new()
            }
        );
    }

    #[cold]
    fn refused(&self, mac: [u8; 6], why: &str) {
        self.locations.borrow_mut().refused += 1;
        log::warn!("VM {} announced {why}: ignored", mac_str(&mac));
    }

    /// The location of `mac` learned less than the hold time ago, if any.
    pub(super) fn held_location(&self, mac: &[u8; 6]) -> Option<String> {
        let locs = self.locations.borrow();
        let hold = locs.lifetimes.hold;
        locs.by_mac
            .get(mac)
            .filter(|l| l.learned.elapsed() < hold)
            .map(|l| l.to.clone())
    }

    /// How many arrivals have moved a rule so far: the etcd session publishes the views
    /// early when it grows.
    pub fn arrivals_applied(&self) -> u64 {
        self.locations.borrow().applied
    }

    /// The locations learned less than `within` ago, as `GET /locations` lists them
    /// (the views published in etcd carry these).
    #[cold]
    pub fn recent_locations(&self, within: Duration) -> Value {
        let locs = self.locations.borrow();
        Value::Array(
            locs.by_mac
                .iter()
                .filter(|(_, l)| l.learned.elapsed() < within)
                .map(|(m, l)| location_json(m, l))
                .collect(),
        )
    }

    /// `GET /locations`: the VM locations learned from announcements, when (Unix time,
    /// s), and whether the rule is a forwarding pointer still.
    #[cold]
    pub fn locations(&self) -> Value {
        let locs = self.locations.borrow();
        let list: Vec<Value> = locs
            .by_mac
            .iter()
            .map(|(m, l)| location_json(m, l))
            .collect();
        json!({"ok": true, "host": self.host(), "locations": list,
               "applied": locs.applied, "refused": locs.refused,
               "pointer_lifetime_ms": locs.lifetimes.pointer.as_millis() as u64,
               "location_hold_ms": locs.lifetimes.hold.as_millis() as u64})
    }
}

fn location_json(mac: &[u8; 6], l: &Location) -> Value {
    json!({"mac": mac_str(mac), "to": l.to, "learned_unix_s": l.unix_s,
           "pointer": l.pointer_until.is_some()})
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use dataplane::switch::fib::VmSlot;

    use super::*;
    use crate::daemon::api::operations::tests::{desired, host_a, rules, table, OneVm, VM};

    const OTHER: [u8; 6] = [2, 0, 0, 0, 0xbb, 1];

    fn rule_of(ops: &Operations<'_>, mac: &str) -> String {
        let r = rules(ops).into_iter().find(|r| r.0 == mac);
        r.map(|r| r.1).unwrap_or_default()
    }

    #[test]
    fn a_vm_announced_by_a_peer_moves_its_rule_and_leaves_a_pointer_here() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let ops = host_a(&vms, &fib);
        let ring = Announcements::default();
        // Our VM announced by peer c (198.18.0.3): it left; the rule is a pointer.
        let remote = |mac| Arrival::Remote {
            peer_ip: [198, 18, 0, 3],
            mac,
        };
        for a in [remote(VM), remote(VM), remote(OTHER)] {
            assert!(ring.post(a));
        }
        ops.follow_arrivals(&ring);
        assert_eq!(rule_of(&ops, "02:00:00:00:aa:01"), "peer:c");
        assert_eq!(rule_of(&ops, "02:00:00:00:bb:01"), "peer:c");
        assert!(fib.load().is_pointer(&VM), "the VM left: a pointer");
        assert!(!fib.load().is_pointer(&OTHER), "OTHER was remote already");
        let l = ops.locations();
        assert_eq!(
            (l["applied"].as_u64(), l["refused"].as_u64()),
            (Some(2), Some(0))
        );
        // A desired state that predates the move does not move it back while held...
        let d = desired(r#"{"revision":1,"rules":{"02:00:00:00:bb:01":"peer:b"},"links":{}}"#);
        let a = ops.apply_desired(&d);
        assert_eq!(rule_of(&ops, "02:00:00:00:bb:01"), "peer:c");
        assert!(
            a.errors[0].contains("announced itself at peer:c"),
            "{:?}",
            a.errors
        );
        // ... and one that agrees is applied without complaint.
        let d = desired(r#"{"revision":2,"rules":{"02:00:00:00:bb:01":"peer:c"},"links":{}}"#);
        assert!(ops.apply_desired(&d).errors.is_empty());
    }

    #[test]
    fn pointers_expire_and_unknown_ports_or_links_are_refused() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let ops = host_a(&vms, &fib).with_lifetimes(Lifetimes {
            pointer: Duration::ZERO,
            hold: Duration::ZERO,
        });
        let ring = Announcements::default();
        let a = Arrival::Remote {
            peer_ip: [198, 18, 0, 2],
            mac: VM,
        };
        assert!(ring.post(a));
        ops.follow_arrivals(&ring);
        assert_eq!(rule_of(&ops, "02:00:00:00:aa:01"), "peer:b");
        ops.follow_arrivals(&ring);
        assert!(!fib.load().is_pointer(&VM), "expired");
        // Back on our port (slot 0 holds the VM's MAC): the rule follows it.
        let back = Arrival::Local {
            slot: VmSlot(0),
            mac: VM,
        };
        // Not our port's MAC, a link nobody has.
        let wrong = Arrival::Local {
            slot: VmSlot(0),
            mac: OTHER,
        };
        let stranger = Arrival::Remote {
            peer_ip: [198, 18, 0, 9],
            mac: OTHER,
        };
        for a in [back, wrong, stranger] {
            assert!(ring.post(a));
        }
        ops.follow_arrivals(&ring);
        assert_eq!(rule_of(&ops, "02:00:00:00:aa:01"), "vm:vm");
        assert_eq!(rule_of(&ops, "02:00:00:00:bb:01"), "peer:b");
        assert_eq!(ops.locations()["refused"].as_u64(), Some(2));
    }
}
