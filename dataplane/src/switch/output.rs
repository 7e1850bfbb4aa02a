//! The switch's output side: per-destination bursts filled by the forwarding code
//! and transmitted once per loop, encapsulation towards a peer, and flooding.

use super::fib::{Dest, PeerIx, VmSlot};
use super::forward::FloodSet;
use super::overlay::{ENCAP_LEN, ORIGIN_TTL};
use super::{DropCause, Outputs, Switch};
use crate::mbuf::Mbuf;

impl<'p, 'c, 'e> Switch<'p, 'c, 'e> {
    /// Queues `m` for the NIC, flushing first when the burst is full.
    #[inline(always)]
    pub(super) fn queue_for_nic(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>) {
        if let Err(m) = out.nic.push(m) {
            self.flush_nic_then_queue(out, m);
        }
    }

    /// A burst that filled before the loop's end (frames from several ports): out of
    /// the per-packet code.
    #[cold]
    pub(super) fn flush_nic_then_queue(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>) {
        self.flush_nic(out);
        let _ = out.nic.push(m);
    }

    /// Queues `m` for VM slot `i` (plugged: `decide` and the flood set checked).
    #[inline]
    pub(super) fn queue_for_vm(&mut self, out: &mut Outputs<'e>, i: VmSlot, m: Mbuf<'e>) {
        let Some(burst) = out.vms.get_mut(i.0) else {
            self.counters.drop(DropCause::PortGone, 1);
            return;
        };
        if let Err(m) = burst.push(m) {
            self.flush_vm(out, i);
            let _ = out.vms[i.0].push(m);
        }
    }

    pub(super) fn flush_nic(&mut self, out: &mut Outputs<'e>) {
        if !out.nic.is_empty() {
            let r = self.nic_tx.send(&mut out.nic);
            self.counters.nic_tx.add(r.sent as u64);
            if r.dropped > 0 {
                self.counters.drop(DropCause::TxFull, r.dropped as u64);
            }
        }
    }

    pub(super) fn flush_vm(&mut self, out: &mut Outputs<'e>, i: VmSlot) {
        let Some(burst) = out.vms.get_mut(i.0).filter(|b| !b.is_empty()) else {
            return;
        };
        let Some(Some(vm)) = self.vms.get_mut(i.0) else {
            let n = burst.free_all();
            self.counters.drop(DropCause::PortGone, n as u64);
            return;
        };
        let r = vm.tx.send(burst);
        self.counters.vm_tx.add(r.sent as u64);
        if r.dropped > 0 {
            self.counters.drop(DropCause::TxFull, r.dropped as u64);
        }
    }

    /// Encapsulates `m` towards peer `p` with outer TTL `ttl` and queues it for the NIC.
    #[inline]
    pub(super) fn encap(&mut self, out: &mut Outputs<'e>, mut m: Mbuf<'e>, p: PeerIx, ttl: u8) {
        let Some(peer) = self.peers.get(p.0) else {
            self.counters.drop(DropCause::NoRule, 1);
            return;
        };
        if peer.encap.is_none() && !self.adopt_neighbor(p.0) {
            self.counters.drop(DropCause::PeerUnresolved, 1);
            return;
        }
        if m.data().len() + ENCAP_LEN > self.underlay.max_frame || m.segments() != 1 {
            self.counters.drop(DropCause::Oversize, 1);
            return;
        }
        let written = match (m.prepend(ENCAP_LEN as u16), &self.peers[p.0].encap) {
            (Some(frame), Some(template)) => template.write(frame, ttl),
            _ => false,
        };
        if written {
            self.counters.encapsulated.add(1);
            self.queue_for_nic(out, m);
        } else {
            self.counters.drop(DropCause::Oversize, 1);
        }
    }

    /// Copies of `m` to every destination of `to`; `m` itself goes to the last one.
    pub(super) fn flood(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, mut to: FloodSet) {
        let Some(last) = to.pop_last() else {
            return;
        };
        self.counters.flooded.add(1);
        for d in to {
            match m.copy(&self.pool) {
                Some(c) => self.send_to(out, c, d),
                None => self.counters.drop(DropCause::NoMbuf, 1),
            }
        }
        self.send_to(out, m, last);
    }

    #[inline]
    pub(super) fn send_to(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, d: Dest) {
        match d {
            Dest::Vm(i) => self.queue_for_vm(out, i, m),
            // A flood goes over the overlay only from a local VM: this host originates it.
            Dest::Peer(p) => self.encap(out, m, p, ORIGIN_TTL),
        }
    }
}
