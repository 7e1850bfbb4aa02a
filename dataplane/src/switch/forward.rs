//! What the switch does with one frame, as a pure function of its destination MAC,
//! where it came from, the rules, the plugged VM slots and the number of overlay
//! links: the worker loop (`Switch`) carries the decision out, and the unit tests
//! below check the overlay's rules (split horizon, hop limit, flooding, rules to a
//! port just unplugged) without an EAL or root.

use super::counters::DropCause;
use super::fib::{is_multicast, Dest, LookupCache, PeerIx, VmSlot};
use super::mailbox::MAX_VMS;
use super::overlay::{HOP_LIMIT, ORIGIN_TTL};
use crate::port::MacAddr;

const _: () = assert!(MAX_VMS <= u64::BITS as usize);

/// A set of VM slots (bit `i` for slot `i`), such as the slots with a port plugged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmSet(u64);

impl VmSet {
    /// Adds `s`; slots past `MAX_VMS` are never in a set.
    #[inline]
    pub fn insert(&mut self, s: VmSlot) {
        if s.0 < MAX_VMS {
            self.0 |= 1 << s.0;
        }
    }

    #[inline]
    pub fn remove(&mut self, s: VmSlot) {
        if s.0 < MAX_VMS {
            self.0 &= !(1 << s.0);
        }
    }

    #[inline]
    pub fn contains(self, s: VmSlot) -> bool {
        s.0 < MAX_VMS && self.0 >> s.0 & 1 != 0
    }

    #[inline]
    fn without(mut self, s: VmSlot) -> Self {
        self.remove(s);
        self
    }

    /// The slots in the set, lowest first.
    #[inline]
    pub fn iter(self) -> impl Iterator<Item = VmSlot> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                VmSlot(i)
            })
        })
    }
}

/// Where a frame entered the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// From a local VM port.
    Vm(VmSlot),
    /// Over the overlay from a configured peer, with the outer TTL it arrived with.
    Peer { peer: PeerIx, ttl: u8 },
}

/// The destinations of a flood: VM slots as a bit set, then the first `peers` overlay
/// links; an iterator, so that flooding allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodSet {
    vms: VmSet,
    peers: std::ops::Range<usize>,
}

impl FloodSet {
    pub(super) fn new(vms: VmSet, peers: usize) -> Self {
        Self {
            vms,
            peers: 0..peers,
        }
    }

    /// Takes out the last destination: the one the frame itself goes to (the others
    /// get copies).
    #[inline]
    pub fn pop_last(&mut self) -> Option<Dest> {
        if let Some(p) = self.peers.next_back() {
            return Some(Dest::Peer(PeerIx(p)));
        }
        let i = u64::BITS.checked_sub(self.vms.0.leading_zeros() + 1)? as usize;
        self.vms.remove(VmSlot(i));
        Some(Dest::Vm(VmSlot(i)))
    }
}

impl Iterator for FloodSet {
    type Item = Dest;

    /// VM slots lowest first, then the links in order.
    #[inline]
    fn next(&mut self) -> Option<Dest> {
        let bits = self.vms.0;
        if bits != 0 {
            self.vms.0 = bits & (bits - 1);
            return Some(Dest::Vm(VmSlot(bits.trailing_zeros() as usize)));
        }
        self.peers.next().map(|p| Dest::Peer(PeerIx(p)))
    }
}

/// What the switch does with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Queue it for a local VM port.
    ToVm(VmSlot),
    /// Encapsulate it towards a peer, with outer TTL `ttl` (one less than it came with
    /// when this host is a transit hop).
    Encap { peer: PeerIx, ttl: u8 },
    /// Copies to every destination of `to`; `unknown` when it is unicast without a rule.
    Flood { to: FloodSet, unknown: bool },
    /// Drop it, counted under `DropCause`.
    Drop(DropCause),
}

/// The decision for a frame to `dst` that entered at `from`, by the rules of one
/// snapshot, with the VM slots `plugged` and `peers` overlay links:
/// - broadcast, multicast and unicast without a rule flood to every plugged VM but the
///   ingress, and over every link unless the frame came over the overlay (split
///   horizon: what came over it is never flooded back over it);
/// - a rule back to where the frame came from (its VM, or the peer it came from)
///   drops it (`NoRule`), as does a rule to a link the snapshot does not have;
/// - a rule to a VM slot without a port (just unplugged) drops it (`PortGone`);
/// - a frame from a peer with a rule to another peer goes on one hop older, unless it
///   already took `HOP_LIMIT` overlay hops or its TTL is not one this overlay set
///   (`HopLimit`: a forwarding loop).
#[inline]
pub fn decide(
    dst: MacAddr,
    from: Ingress,
    rules: &mut LookupCache<'_>,
    plugged: VmSet,
    peers: usize,
) -> Decision {
    let flood = |unknown| {
        let to = match from {
            Ingress::Vm(j) => FloodSet::new(plugged.without(j), peers),
            Ingress::Peer { .. } => FloodSet::new(plugged, 0),
        };
        Decision::Flood { to, unknown }
    };
    if is_multicast(&dst.0) {
        return flood(false);
    }
    match (rules.lookup(&dst.0), from) {
        (None, _) => flood(true),
        (Some(Dest::Vm(i)), Ingress::Vm(j)) if i == j => Decision::Drop(DropCause::NoRule),
        (Some(Dest::Vm(i)), _) if !plugged.contains(i) => Decision::Drop(DropCause::PortGone),
        (Some(Dest::Vm(i)), _) => Decision::ToVm(i),
        (Some(Dest::Peer(p)), _) if p.0 >= peers => Decision::Drop(DropCause::NoRule),
        (Some(Dest::Peer(peer)), Ingress::Vm(_)) => Decision::Encap {
            peer,
            ttl: ORIGIN_TTL,
        },
        (Some(Dest::Peer(p)), Ingress::Peer { peer, .. }) if p == peer => {
            Decision::Drop(DropCause::NoRule)
        }
        (Some(Dest::Peer(peer)), Ingress::Peer { ttl, .. }) => {
            if ttl <= ORIGIN_TTL.saturating_sub(HOP_LIMIT) || ttl > ORIGIN_TTL {
                Decision::Drop(DropCause::HopLimit)
            } else {
                Decision::Encap { peer, ttl: ttl - 1 }
            }
        }
    }
}

/// Whether a frame from VM slot `j` may enter the switch: its source MAC must be one
/// the rules place behind that very port (port security). A guest cannot send as
/// another VM, local or remote, nor from a multicast address, so it can neither steal
/// another VM's traffic nor pass its frames off as another VM's to the analysis.
/// Frames too short to carry a source MAC are let through to `dst_mac`'s check.
#[inline]
pub fn source_allowed(frame: &[u8], j: VmSlot, sources: &mut LookupCache<'_>) -> bool {
    match frame.get(6..12).and_then(|b| <&[u8; 6]>::try_from(b).ok()) {
        Some(src) => sources.lookup(src) == Some(Dest::Vm(j)),
        None => true,
    }
}

/// The destination MAC of an Ethernet frame, or `None` when it is shorter than one.
#[inline]
pub fn dst_mac(frame: &[u8]) -> Option<MacAddr> {
    frame.first_chunk::<6>().map(|b| MacAddr(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::fib::{Fib, PeerSpec};

    const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    const MULTICAST: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    const UNKNOWN: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x99]);
    /// Rules: VM MACs at slots 0, 1, 2 and 63, peer MACs behind links 0, 1 and 5 (the
    /// last one past the links of `table`).
    const VM: [MacAddr; 4] = [
        MacAddr([2, 0, 0, 0, 1, 0]),
        MacAddr([2, 0, 0, 0, 1, 1]),
        MacAddr([2, 0, 0, 0, 1, 2]),
        MacAddr([2, 0, 0, 0, 1, 63]),
    ];
    const BEHIND: [MacAddr; 3] = [
        MacAddr([2, 0, 0, 0, 2, 0]),
        MacAddr([2, 0, 0, 0, 2, 1]),
        MacAddr([2, 0, 0, 0, 2, 5]),
    ];
    const PEERS: usize = 3;

    fn table() -> Fib {
        let mut f = Fib::default();
        for k in 0..PEERS as u8 {
            f.set_peer(PeerSpec {
                name: format!("p{k}"),
                ip: [198, 18, 0, k + 1],
                mac: None,
            })
            .unwrap();
        }
        for (m, slot) in VM.iter().zip([0, 1, 2, 63]) {
            f.insert(m.0, Dest::Vm(VmSlot(slot)));
        }
        for (m, p) in BEHIND.iter().zip([0, 1, 5]) {
            f.insert(m.0, Dest::Peer(PeerIx(p)));
        }
        f
    }

    fn set(slots: &[usize]) -> VmSet {
        let mut s = VmSet::default();
        for &i in slots {
            s.insert(VmSlot(i));
        }
        s
    }

    /// Slots 0, 1, 2 and 63 plugged.
    fn plugged() -> VmSet {
        set(&[0, 1, 2, 63])
    }

    fn decide_in(f: &Fib, dst: MacAddr, from: Ingress, plugged: VmSet) -> Decision {
        decide(dst, from, &mut LookupCache::new(f), plugged, PEERS)
    }

    fn vm(i: usize) -> Dest {
        Dest::Vm(VmSlot(i))
    }

    fn peer(p: usize) -> Dest {
        Dest::Peer(PeerIx(p))
    }

    fn from_peer(p: usize, ttl: u8) -> Ingress {
        Ingress::Peer {
            peer: PeerIx(p),
            ttl,
        }
    }

    /// The destinations of a flood decision, in the order they are served, the last
    /// (the frame itself) last; and whether it was unknown unicast.
    fn flood_of(d: Decision) -> (Vec<Dest>, bool) {
        let Decision::Flood { mut to, unknown } = d else {
            panic!("not a flood: {d:?}");
        };
        let last = to.pop_last();
        let mut all: Vec<Dest> = to.collect();
        all.extend(last);
        (all, unknown)
    }

    #[test]
    fn broadcast_from_a_vm_reaches_every_other_plugged_vm_and_every_peer() {
        let f = table();
        for dst in [BROADCAST, MULTICAST] {
            let (to, unknown) = flood_of(decide_in(&f, dst, Ingress::Vm(VmSlot(1)), plugged()));
            assert_eq!(to, [vm(0), vm(2), vm(63), peer(0), peer(1), peer(2)]);
            assert!(!unknown);
        }
        // Not plugged: not flooded to, even with a rule.
        let (to, _) = flood_of(decide_in(
            &f,
            BROADCAST,
            Ingress::Vm(VmSlot(0)),
            set(&[0, 2]),
        ));
        assert_eq!(to, [vm(2), peer(0), peer(1), peer(2)]);
    }

    #[test]
    fn unknown_unicast_floods_as_broadcast_and_says_so() {
        let f = table();
        let (to, unknown) = flood_of(decide_in(&f, UNKNOWN, Ingress::Vm(VmSlot(63)), plugged()));
        assert_eq!(to, [vm(0), vm(1), vm(2), peer(0), peer(1), peer(2)]);
        assert!(unknown);
    }

    #[test]
    fn split_horizon_what_came_over_the_overlay_is_never_flooded_back_over_it() {
        let f = table();
        for dst in [BROADCAST, MULTICAST, UNKNOWN] {
            let (to, unknown) = flood_of(decide_in(&f, dst, from_peer(1, ORIGIN_TTL), plugged()));
            assert_eq!(to, [vm(0), vm(1), vm(2), vm(63)], "{dst}");
            assert_eq!(unknown, dst == UNKNOWN);
        }
        // Nor sent back to the peer it came from by a rule.
        assert_eq!(
            decide_in(&f, BEHIND[1], from_peer(1, ORIGIN_TTL), plugged()),
            Decision::Drop(DropCause::NoRule)
        );
    }

    #[test]
    fn a_flood_with_nowhere_to_go_is_empty() {
        let f = table();
        let mut d = decide(
            BROADCAST,
            Ingress::Vm(VmSlot(0)),
            &mut LookupCache::new(&f),
            set(&[0]),
            0,
        );
        let Decision::Flood { to, .. } = &mut d else {
            panic!("{d:?}");
        };
        assert_eq!(to.pop_last(), None);
        let (to, _) = flood_of(decide_in(&f, BROADCAST, from_peer(0, 64), VmSet::default()));
        assert!(to.is_empty());
    }

    #[test]
    fn a_transit_hop_forwards_one_hop_older_within_the_hop_limit() {
        let f = table();
        let oldest = ORIGIN_TTL - HOP_LIMIT + 1;
        for (ttl, want) in [
            (
                ORIGIN_TTL,
                Decision::Encap {
                    peer: PeerIx(0),
                    ttl: ORIGIN_TTL - 1,
                },
            ),
            (
                oldest,
                Decision::Encap {
                    peer: PeerIx(0),
                    ttl: oldest - 1,
                },
            ),
            (oldest - 1, Decision::Drop(DropCause::HopLimit)),
            (1, Decision::Drop(DropCause::HopLimit)),
            (ORIGIN_TTL + 1, Decision::Drop(DropCause::HopLimit)),
            (255, Decision::Drop(DropCause::HopLimit)),
        ] {
            assert_eq!(
                decide_in(&f, BEHIND[0], from_peer(2, ttl), plugged()),
                want,
                "ttl {ttl}"
            );
        }
    }

    #[test]
    fn a_vm_frame_to_a_peer_leaves_with_the_origin_ttl() {
        let f = table();
        assert_eq!(
            decide_in(&f, BEHIND[1], Ingress::Vm(VmSlot(0)), plugged()),
            Decision::Encap {
                peer: PeerIx(1),
                ttl: ORIGIN_TTL
            }
        );
        // A rule to a link the snapshot does not have.
        assert_eq!(
            decide_in(&f, BEHIND[2], Ingress::Vm(VmSlot(0)), plugged()),
            Decision::Drop(DropCause::NoRule)
        );
    }

    #[test]
    fn unicast_reaches_its_vm_from_a_vm_or_a_peer() {
        let f = table();
        assert_eq!(
            decide_in(&f, VM[3], Ingress::Vm(VmSlot(0)), plugged()),
            Decision::ToVm(VmSlot(63))
        );
        assert_eq!(
            decide_in(&f, VM[0], from_peer(2, 3), plugged()),
            Decision::ToVm(VmSlot(0)),
            "the hop limit is for transit only"
        );
    }

    #[test]
    fn a_rule_back_to_the_ingress_vm_drops() {
        let f = table();
        assert_eq!(
            decide_in(&f, VM[2], Ingress::Vm(VmSlot(2)), plugged()),
            Decision::Drop(DropCause::NoRule)
        );
    }

    /// A frame from `src` to a broadcast address.
    fn frame_from(src: MacAddr) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f
    }

    #[test]
    fn a_vm_port_may_send_only_from_the_macs_behind_it() {
        let f = table();
        let mut sources = LookupCache::new(&f);
        let mut allowed =
            |src: MacAddr, slot| source_allowed(&frame_from(src), VmSlot(slot), &mut sources);
        assert!(allowed(VM[0], 0));
        assert!(allowed(VM[3], 63));
        // Another local VM's address, a remote VM's, an unknown one, a multicast one.
        assert!(!allowed(VM[1], 0));
        assert!(!allowed(BEHIND[0], 0));
        assert!(!allowed(UNKNOWN, 0));
        assert!(!allowed(MULTICAST, 0));
        assert!(!allowed(BROADCAST, 1));
        // The same source from the right port right after (the cache answers per MAC).
        assert!(allowed(VM[1], 1));
        assert!(!allowed(VM[1], 2));
        // Too short for a source MAC: left to the destination check (Malformed).
        assert!(source_allowed(&[0xff; 8], VmSlot(0), &mut sources));
    }

    #[test]
    fn a_rule_to_a_slot_just_unplugged_drops_as_port_gone() {
        let f = table();
        let without_1 = set(&[0, 2, 63]);
        for from in [Ingress::Vm(VmSlot(0)), from_peer(0, ORIGIN_TTL)] {
            assert_eq!(
                decide_in(&f, VM[1], from, without_1),
                Decision::Drop(DropCause::PortGone)
            );
        }
        // A slot no port can have.
        let mut g = table();
        g.insert(UNKNOWN.0, Dest::Vm(VmSlot(MAX_VMS)));
        assert_eq!(
            decide_in(&g, UNKNOWN, Ingress::Vm(VmSlot(0)), plugged()),
            Decision::Drop(DropCause::PortGone)
        );
    }

    #[test]
    fn vm_sets_hold_slots_below_max_vms_only() {
        let mut s = set(&[0, 5, 63, MAX_VMS, 1000]);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [VmSlot(0), VmSlot(5), VmSlot(63)]
        );
        assert!(!s.contains(VmSlot(MAX_VMS)));
        s.remove(VmSlot(5));
        assert!(!s.contains(VmSlot(5)) && s.contains(VmSlot(63)));
        assert_eq!(dst_mac(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            dst_mac(&[1, 2, 3, 4, 5, 6, 7]),
            Some(MacAddr([1, 2, 3, 4, 5, 6]))
        );
    }
}
