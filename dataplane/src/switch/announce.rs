//! VM arrivals, learned from the guest's own announcement. After a live migration the
//! destination QEMU announces the guest: a RARP that DPDK's vhost library injects on
//! `VHOST_USER_SEND_RARP`, or, when the guest negotiated `VIRTIO_NET_F_GUEST_ANNOUNCE`,
//! gratuitous ARPs the guest sends itself. Both are broadcast from the guest's MAC.
//!
//! The worker only notices them, off the per-packet path: on a VM port, among the
//! frames port security refuses (a source the rules place elsewhere), an announcement
//! from the port's own MAC; from the overlay, among broadcast frames, an announcement
//! whose source the rules place behind another link than the one it came over. Each is
//! pushed as an `Arrival` into a bounded lock-free ring (no allocation, lock or
//! syscall), counted, and the control path (`wrenvnet` daemon, main lcore) moves the
//! rule. A frame refused or a full ring is counted, never waited on. Once the rule has
//! moved, the guest's further announcements match it and post nothing.
//!
//! What a guest can claim: only the MAC its port was plugged with (the operator's
//! assignment), so a hostile guest cannot pull another VM's traffic by announcing its
//! MAC; the announcement from the port is let through (flooded) so that every peer
//! sees it. What a peer can claim: a configured peer's overlay frames are trusted as
//! its daemon's (the underlay is the operator's), and its daemon floods only
//! announcements its own port security let through.

use crossbeam::queue::ArrayQueue;

use super::fib::VmSlot;

/// Arrivals waiting for the control path, at most (per daemon, all workers).
pub const RING: usize = 256;

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_RARP: [u8; 2] = [0x80, 0x35];

/// A VM announced itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// On local VM port `slot`, with the port's own MAC: the VM arrived here.
    Local { slot: VmSlot, mac: [u8; 6] },
    /// Over the overlay from the peer at `peer_ip`: the VM is now behind that peer.
    Remote { peer_ip: [u8; 4], mac: [u8; 6] },
}

impl Arrival {
    pub fn mac(&self) -> [u8; 6] {
        match *self {
            Arrival::Local { mac, .. } | Arrival::Remote { mac, .. } => mac,
        }
    }
}

/// The ring from the workers to the control path.
pub struct Announcements {
    ring: ArrayQueue<Arrival>,
}

impl Default for Announcements {
    fn default() -> Self {
        Self {
            ring: ArrayQueue::new(RING),
        }
    }
}

impl Announcements {
    /// Worker: hands an arrival over; false when the ring is full.
    #[cold]
    pub fn post(&self, a: Arrival) -> bool {
        self.ring.push(a).is_ok()
    }

    /// Control path: the next arrival, oldest first.
    pub fn take(&self) -> Option<Arrival> {
        self.ring.pop()
    }
}

/// A RARP announcing `mac` (as DPDK's vhost library and QEMU build it), padded to the
/// Ethernet minimum: what the daemon floods on behalf of a VM that just arrived.
pub fn rarp(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_RARP);
    // Ethernet, IPv4, 6-byte and 4-byte addresses, "reverse request".
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    f[22..28].copy_from_slice(&mac);
    f[32..38].copy_from_slice(&mac);
    f
}

/// The MAC a frame announces, if it is an announcement: broadcast, and a RARP, or a
/// gratuitous ARP (request or reply whose sender and target IPv4 are the same). The
/// announced MAC is the frame's source.
#[inline]
pub fn announced_mac(frame: &[u8]) -> Option<[u8; 6]> {
    if frame.len() < 42 || frame[..6] != [0xff; 6] {
        return None;
    }
    let src: [u8; 6] = frame[6..12].try_into().ok()?;
    let ethertype = [frame[12], frame[13]];
    if ethertype == ETHERTYPE_RARP {
        return Some(src);
    }
    let gratuitous = ethertype == ETHERTYPE_ARP
        && frame[16..18] == [0x08, 0x00] // IPv4
        && frame[28..32] == frame[38..42]; // sender IP == target IP
    gratuitous.then_some(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x77];

    fn arp(dst: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&MAC);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn rarp_and_gratuitous_arp_announce_their_source_and_nothing_else_does() {
        let bc = [0xff; 6];
        let ip = [198, 19, 0, 77];
        assert_eq!(announced_mac(&arp(bc, ip, ip)), Some(MAC));
        // A plain ARP request, a unicast GARP, a truncated one.
        assert_eq!(announced_mac(&arp(bc, ip, [198, 19, 0, 10])), None);
        assert_eq!(announced_mac(&arp([2, 0, 0, 0, 0, 1], ip, ip)), None);
        assert_eq!(announced_mac(&arp(bc, ip, ip)[..41]), None);
        // RARP (as DPDK's vhost library builds it: ARP's layout, ethertype 0x8035).
        let mut built = arp(bc, [0; 4], [1; 4]);
        built[12..14].copy_from_slice(&ETHERTYPE_RARP);
        assert_eq!(announced_mac(&built), Some(MAC));
        assert_eq!(announced_mac(&rarp(MAC)), Some(MAC));
        // IPv4 unicast.
        let mut ipv4 = arp(bc, ip, ip);
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(announced_mac(&ipv4), None);
    }

    #[test]
    fn the_ring_is_bounded_and_hands_over_in_order() {
        let a = Announcements::default();
        let arrival = |i: usize| Arrival::Local {
            slot: VmSlot(i % 64),
            mac: MAC,
        };
        for i in 0..RING {
            assert!(a.post(arrival(i)));
        }
        assert!(!a.post(arrival(RING)), "full: refused, not waited on");
        assert_eq!(a.take(), Some(arrival(0)));
        assert_eq!(a.take().map(|x| x.mac()), Some(MAC));
    }
}
