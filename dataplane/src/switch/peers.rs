//! The worker's overlay links: following the snapshot's links, learning and sharing
//! the peers' MACs, answering and sending ARP.

use super::fib::{Fib, MAX_PEERS};
use super::overlay::{arp_reply_in_place, arp_request, EncapTemplate, Underlay};
use super::{DropCause, MacAddr, Outputs, Switch};
use crate::mbuf::Mbuf;

/// The worker's state of an overlay link (`Fib::peers` has the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: [u8; 4],
    /// Learned by ARP or from its VXLAN frames; configured for static setups.
    pub(super) mac: Option<MacAddr>,
    /// The outer headers towards the peer, built when its MAC becomes known.
    pub(super) encap: Option<EncapTemplate>,
}

impl Peer {
    fn new(ip: [u8; 4], mac: Option<MacAddr>, u: &Underlay) -> Self {
        Self {
            ip,
            mac,
            encap: mac.map(|m| EncapTemplate::new(u, ip, m.0)),
        }
    }

    pub fn mac(&self) -> Option<MacAddr> {
        self.mac
    }

    #[cold]
    fn set_mac(&mut self, mac: MacAddr, u: &Underlay) {
        if self.mac != Some(mac) {
            *self = Self::new(self.ip, Some(mac), u);
        }
    }
}

impl<'p, 'c, 'e> Switch<'p, 'c, 'e> {
    /// An ARP request for our address: answered in place, and its sender learned.
    #[cold]
    pub(super) fn answer_arp(&mut self, out: &mut Outputs<'e>, mut m: Mbuf<'e>) {
        if let Some((ip, mac)) = arp_reply_in_place(m.data_mut(), &self.underlay) {
            self.learn(ip, mac);
        }
        self.counters.arp_replies.add(1);
        self.queue_for_nic(out, m);
    }

    pub(super) fn learn(&mut self, ip: [u8; 4], mac: MacAddr) {
        if let Some(p) = self.peers.iter().position(|p| p.ip == ip) {
            self.learned(p, mac);
        }
    }

    /// Peer `p` is at `mac` (new or changed): keep it and tell the other workers.
    #[cold]
    pub(super) fn learned(&mut self, p: usize, mac: MacAddr) {
        self.peers[p].set_mac(mac, &self.underlay);
        self.neighbors.learn(self.peers[p].ip, mac);
    }

    /// Peer `p`'s MAC as another worker learned it, kept from now on: whether it had one.
    #[cold]
    pub(super) fn adopt_neighbor(&mut self, p: usize) -> bool {
        let Some(mac) = self.peers.get(p).and_then(|x| self.neighbors.lookup(x.ip)) else {
            return false;
        };
        self.peers[p].set_mac(mac, &self.underlay);
        true
    }

    /// Follows a new snapshot's links: keeps what was learned of each address, without
    /// allocating (the vector holds `MAX_PEERS` from the start).
    #[cold]
    pub(super) fn sync_peers(&mut self, fib: &Fib) {
        let mut learned = [None::<([u8; 4], MacAddr)>; MAX_PEERS];
        for (slot, p) in learned.iter_mut().zip(&self.peers) {
            *slot = p.mac.map(|m| (p.ip, m));
        }
        self.peers.clear();
        for spec in fib.peers().iter().take(MAX_PEERS) {
            let mac = spec.mac.map(MacAddr).or_else(|| {
                learned
                    .iter()
                    .flatten()
                    .find(|(ip, _)| *ip == spec.ip)
                    .map(|(_, m)| *m)
            });
            self.peers.push(Peer::new(spec.ip, mac, &self.underlay));
        }
    }

    /// Once a second: follows what the other workers learned (a peer that came back
    /// with another MAC), and (worker 0) asks by ARP for the peers nobody has resolved.
    #[cold]
    pub(super) fn resolve_peers(&mut self, out: &mut Outputs<'e>) {
        for i in 0..self.peers.len() {
            if let Some(mac) = self.neighbors.lookup(self.peers[i].ip) {
                self.peers[i].set_mac(mac, &self.underlay);
            }
            if self.peers[i].mac.is_some() || self.worker != 0 {
                continue;
            }
            let frame = arp_request(&self.underlay, self.peers[i].ip);
            match Mbuf::from_bytes(&self.pool, &frame) {
                Some(m) => {
                    self.counters.arp_requests.add(1);
                    self.queue_for_nic(out, m);
                }
                None => self.counters.drop(DropCause::NoMbuf, 1),
            }
        }
    }
}
