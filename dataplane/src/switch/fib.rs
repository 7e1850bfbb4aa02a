//! The forwarding table (VNET style): destination MAC → a local VM port or an overlay
//! link to a peer host, and the overlay links (peers) themselves, so a rule and the link
//! it names always come in one snapshot. Built on the control path; workers only read it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::qos::QosPolicy;

/// At most this many overlay links per daemon, a fleet's host peering with a thousand
/// others (the worker's peer state is sized for it once, so a change of links never
/// allocates on the worker).
pub const MAX_PEERS: usize = 1024;

/// An overlay link as configured: the peer host's name, underlay IPv4 and, for static
/// setups, its MAC (otherwise resolved by ARP and learned from its traffic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub name: String,
    pub ip: [u8; 4],
    pub mac: Option<[u8; 6]>,
}

/// A change of links the table refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no link {0:?}")]
    NoSuchLink(String),
    #[error("link {name:?} is used by {rules} rule(s): move them to another link first")]
    InUse { name: String, rules: usize },
    #[error("address {ip} is already link {other:?}")]
    DuplicateIp { ip: String, other: String },
    #[error("at most {MAX_PEERS} links")]
    TooMany,
}

/// A local VM port's slot: its index in the switch's VM list and in the mailbox's
/// slots (below `mailbox::MAX_VMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmSlot(pub usize);

/// An overlay link's index in `Fib::peers` (and in the worker's peer state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIx(pub usize);

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A local VM port.
    Vm(VmSlot),
    /// A peer host over the overlay.
    Peer(PeerIx),
}

/// The hash of a MAC lookup, once per packet: the six bytes as one word, multiplied by
/// a 64-bit odd constant (Fibonacci hashing), high bits folded down. SipHash (the
/// default, built against hash flooding) costs tens of cycles per lookup; the keys
/// here are set by the operator, not by the traffic.
#[derive(Default)]
pub struct MacHasher(u64);

impl Hasher for MacHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        // Slices and arrays hash their length first: a constant, fold it in cheaply.
        self.0 ^= n as u64;
    }

    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 32)
    }
}

/// Destination MAC → destination, and the shaping policy of the NIC egress.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    rules: HashMap<[u8; 6], Dest, BuildHasherDefault<MacHasher>>,
    peers: Vec<PeerSpec>,
    /// Forwarding pointers: MACs of VMs that just left this host, whose rules to their
    /// new host are counted when they carry a transit frame (consulted only on the
    /// transit path, and empty but for a few seconds after a migration).
    pointers: HashMap<[u8; 6], (), BuildHasherDefault<MacHasher>>,
    /// Reservations and capacities (`switch::qos`), published with the rules: a loop
    /// takes both from one snapshot.
    qos: Option<Arc<QosPolicy>>,
}

impl Fib {
    /// The shaping policy, if any.
    #[inline(always)]
    pub fn qos(&self) -> Option<&Arc<QosPolicy>> {
        self.qos.as_ref()
    }

    /// The shaping policy in force while the worker loops (it is shared by the clones
    /// of this table until one sets another).
    pub fn set_qos(&mut self, qos: Option<QosPolicy>) {
        self.qos = qos.map(Arc::new);
    }

    /// The overlay links; `Dest::Peer(i)` is `peers()[i]`.
    pub fn peers(&self) -> &[PeerSpec] {
        &self.peers
    }

    pub fn peer_index(&self, name: &str) -> Option<PeerIx> {
        self.peers.iter().position(|p| p.name == name).map(PeerIx)
    }

    /// Adds a link, or changes the address/MAC of the link of that name (its rules stay).
    pub fn set_peer(&mut self, spec: PeerSpec) -> Result<PeerIx, LinkError> {
        if let Some(other) = self
            .peers
            .iter()
            .find(|p| p.ip == spec.ip && p.name != spec.name)
        {
            return Err(LinkError::DuplicateIp {
                ip: std::net::Ipv4Addr::from(spec.ip).to_string(),
                other: other.name.clone(),
            });
        }
        if let Some(i) = self.peer_index(&spec.name) {
            self.peers[i.0] = spec;
            return Ok(i);
        }
        if self.peers.len() >= MAX_PEERS {
            return Err(LinkError::TooMany);
        }
        self.peers.push(spec);
        Ok(PeerIx(self.peers.len() - 1))
    }

    /// Removes a link no rule uses; rules to later links are renumbered with it.
    pub fn remove_peer(&mut self, name: &str) -> Result<PeerSpec, LinkError> {
        let k = self
            .peer_index(name)
            .ok_or_else(|| LinkError::NoSuchLink(name.to_string()))?;
        let rules = self.rules.values().filter(|d| **d == Dest::Peer(k)).count();
        if rules > 0 {
            return Err(LinkError::InUse {
                name: name.to_string(),
                rules,
            });
        }
        for d in self.rules.values_mut() {
            if let Dest::Peer(i) = d {
                if *i > k {
                    i.0 -= 1;
                }
            }
        }
        Ok(self.peers.remove(k.0))
    }

    /// Marks (or unmarks) `mac`'s rule as a forwarding pointer.
    pub fn set_pointer(&mut self, mac: [u8; 6], on: bool) {
        if on {
            self.pointers.insert(mac, ());
        } else {
            self.pointers.remove(&mac);
        }
    }

    /// Whether `mac`'s rule is a forwarding pointer.
    #[inline]
    pub fn is_pointer(&self, mac: &[u8; 6]) -> bool {
        !self.pointers.is_empty() && self.pointers.contains_key(mac)
    }

    /// The MACs marked as forwarding pointers.
    pub fn pointers(&self) -> impl Iterator<Item = &[u8; 6]> {
        self.pointers.keys()
    }

    pub fn insert(&mut self, mac: [u8; 6], dest: Dest) -> Option<Dest> {
        self.rules.insert(mac, dest)
    }

    pub fn remove(&mut self, mac: &[u8; 6]) -> Option<Dest> {
        self.rules.remove(mac)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 6], &Dest)> {
        self.rules.iter()
    }

    #[inline]
    pub fn lookup(&self, mac: &[u8; 6]) -> Option<Dest> {
        self.rules.get(mac).copied()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One loop's lookups in one snapshot, remembering the last answer (as VPP's l2-fwd
/// node keeps its cached key across a frame): the frames of a burst mostly go to the
/// same few MACs, often one after another, and comparing six bytes costs less than a
/// hash probe. Built per loop, so it never outlives the snapshot it answers from.
pub struct LookupCache<'f> {
    fib: &'f Fib,
    last: Option<([u8; 6], Option<Dest>)>,
}

impl<'f> LookupCache<'f> {
    pub fn new(fib: &'f Fib) -> Self {
        Self { fib, last: None }
    }

    /// The snapshot it answers from.
    #[inline]
    pub fn fib(&self) -> &'f Fib {
        self.fib
    }

    /// `Fib::lookup`, answered from the last lookup when the MAC is the same.
    #[inline]
    pub fn lookup(&mut self, mac: &[u8; 6]) -> Option<Dest> {
        match self.last {
            Some((m, d)) if m == *mac => d,
            _ => {
                let d = self.fib.lookup(mac);
                self.last = Some((*mac, d));
                d
            }
        }
    }
}

/// Whether a MAC is broadcast or multicast (the I/G bit).
#[inline]
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, last: u8) -> PeerSpec {
        PeerSpec {
            name: name.into(),
            ip: [198, 18, 0, last],
            mac: None,
        }
    }

    #[test]
    fn the_cached_lookup_answers_as_the_table_does() {
        let mut f = Fib::default();
        f.set_peer(peer("A", 1)).unwrap();
        f.insert([2, 0, 0, 0, 0, 1], Dest::Peer(PeerIx(0)));
        f.insert([2, 0, 0, 0, 0, 2], Dest::Vm(VmSlot(0)));
        f.insert([2, 0, 0, 0, 1, 2], Dest::Vm(VmSlot(1)));
        let mut cache = LookupCache::new(&f);
        // Repeats, alternations, unknown MACs (cached as unknown) and MACs that differ
        // only in one byte, in a fixed pseudo-random order.
        let macs = [
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 1, 2],
            [2, 0, 0, 0, 0, 3],
            [3, 0, 0, 0, 0, 2],
        ];
        let mut x = 7u32;
        for _ in 0..1000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mac = macs[(x >> 16) as usize % macs.len()];
            assert_eq!(cache.lookup(&mac), f.lookup(&mac), "{mac:?}");
            assert_eq!(cache.lookup(&mac), f.lookup(&mac), "{mac:?} again");
        }
    }

    #[test]
    fn links_change_without_breaking_the_rules_that_use_others() {
        let mut f = Fib::default();
        assert_eq!(f.set_peer(peer("A", 1)), Ok(PeerIx(0)));
        assert_eq!(f.set_peer(peer("B", 2)), Ok(PeerIx(1)));
        assert_eq!(f.set_peer(peer("C", 3)), Ok(PeerIx(2)));
        f.insert([2, 0, 0, 0, 0, 3], Dest::Peer(PeerIx(2)));
        f.insert([2, 0, 0, 0, 0, 9], Dest::Vm(VmSlot(0)));
        // In use: refused, nothing changes.
        assert_eq!(
            f.remove_peer("C"),
            Err(LinkError::InUse {
                name: "C".into(),
                rules: 1
            })
        );
        // Removing an earlier link renumbers the rules to later ones.
        assert_eq!(f.remove_peer("A").unwrap().name, "A");
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 3]), Some(Dest::Peer(PeerIx(1))));
        assert_eq!(f.peers()[1].name, "C");
        assert_eq!(f.lookup(&[2, 0, 0, 0, 0, 9]), Some(Dest::Vm(VmSlot(0))));
        // Same name: changed in place; same address under another name: refused.
        assert_eq!(f.set_peer(peer("C", 7)), Ok(PeerIx(1)));
        assert!(matches!(
            f.set_peer(peer("D", 7)),
            Err(LinkError::DuplicateIp { .. })
        ));
        assert_eq!(f.remove_peer("Z"), Err(LinkError::NoSuchLink("Z".into())));
    }
}
