//! The overlay switch: frames between local VM ports and the NIC, across a VXLAN
//! overlay to peer hosts, by VNET-style rules (destination MAC → local VM or peer).
//! Broadcast and multicast reach every local VM and every peer once (frames that came
//! over the overlay are not sent back over it: split horizon). The daemon answers ARP
//! for its underlay address and resolves its peers' MACs by ARP and from their traffic.
//!
//! One or more workers; each owns one rx and one tx queue of every port (RSS or the
//! port's own spreading decides which worker receives a frame), its counters and its
//! record ring, and shares only the immutable rule snapshot and the learned peer MACs
//! (`neighbors`). Each loop: receive a burst per port, sort each packet to a
//! per-destination burst, transmit those bursts; every mbuf is sent or freed and
//! counted. The TSC is read at each rx and at the end of the loop's transmits.

pub mod counters;
pub mod fib;
pub mod mailbox;
pub mod neighbors;
pub mod overlay;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use analysis::record::Direction;

use crate::mbuf::{Burst, Mbuf};
use crate::mempool::Mempool;
use crate::monitor::{Monitor, WholeVxlan};
use crate::port::{RxQueue, TxQueue};
use crate::tsc;
use crate::xconnect::IdleBackoff;
use counters::{Drop, SwitchCounters};
use fib::{is_multicast, Dest, Fib, LookupCache, MAX_PEERS};
use mailbox::{Mailbox, VmCommand, MAX_VMS};
use neighbors::Neighbors;
use overlay::{
    arp_reply_in_place, arp_request, classify, classify_whole_vxlan, EncapTemplate, FromNic,
    Underlay, ENCAP_LEN, HOP_LIMIT, ORIGIN_TTL,
};

/// The worker's state of an overlay link (`Fib::peers` has the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub ip: [u8; 4],
    /// Learned by ARP or from its VXLAN frames; configured for static setups.
    mac: Option<[u8; 6]>,
    /// The outer headers towards the peer, built when its MAC becomes known.
    encap: Option<EncapTemplate>,
}

impl Peer {
    fn new(ip: [u8; 4], mac: Option<[u8; 6]>, u: &Underlay) -> Self {
        Self {
            ip,
            mac,
            encap: mac.map(|m| EncapTemplate::new(u, ip, m)),
        }
    }

    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    #[cold]
    fn set_mac(&mut self, mac: [u8; 6], u: &Underlay) {
        if self.mac != Some(mac) {
            *self = Self::new(self.ip, Some(mac), u);
        }
    }
}

/// A local VM's port.
pub struct VmPort<'p> {
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
}

/// Everything one worker owns.
pub struct Switch<'p, 'c, 'e> {
    /// This worker's index; worker 0 sends the ARP requests for unresolved peers.
    pub worker: usize,
    pub nic_rx: RxQueue<'p>,
    pub nic_tx: TxQueue<'p>,
    /// VM ports by slot (`Dest::Vm(slot)`); `None` for a free slot. Changed only
    /// through `mailbox`, between loops.
    pub vms: Vec<Option<VmPort<'p>>>,
    /// VM ports plugged and unplugged by the control path.
    pub mailbox: &'c Mailbox<'p>,
    /// One per `Fib::peers` entry, same order; synced when the snapshot changes (MACs
    /// learned are kept by address). Start it empty.
    pub peers: Vec<Peer>,
    /// The rules and links, replaced whole by the control path (RCU): the worker takes
    /// the current snapshot once per loop, so a loop never mixes two tables and nothing
    /// waits.
    pub fib: Arc<ArcSwap<Fib>>,
    pub underlay: Underlay,
    pub pool: Mempool<'e>,
    pub counters: &'c SwitchCounters,
    /// Peer MACs learned by any worker of this daemon.
    pub neighbors: &'c Neighbors,
    /// Clock each stage of the loop into `counters.stages` (benchmarks).
    pub stage_clocks: bool,
    /// Benchmarks: record only every other period of this many TSC cycles, and count
    /// the cycles of both halves apart (`counters.ab_*`); 0 = record always.
    pub alternate_tsc: u64,
}

/// Per-stage cycles of one loop iteration, added to the counters only when the
/// iteration moved packets (so idle polling is in no stage, as in `busy_cycles`).
struct StageClock {
    on: bool,
    last: u64,
    spent: [u64; 4],
}

impl StageClock {
    /// Charges the time since the last lap to stage `i`.
    #[inline(always)]
    fn lap(&mut self, i: usize) {
        if self.on {
            let t = tsc::now();
            self.spent[i] += t.saturating_sub(self.last);
            self.last = t;
        }
    }
}

const RX: usize = 0;
const RECORD: usize = 1;
const FORWARD: usize = 2;
const TX: usize = 3;

/// Per-destination bursts, reused every loop.
struct Outputs<'e> {
    nic: Burst<'e>,
    vms: Vec<Burst<'e>>,
}

impl<'p, 'c, 'e> Switch<'p, 'c, 'e> {
    /// Queues `m` for the NIC, flushing first when the burst is full.
    #[inline(always)]
    fn queue_for_nic(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>) {
        if let Err(m) = out.nic.push(m) {
            self.flush_nic_then_queue(out, m);
        }
    }

    /// A burst that filled before the loop's end (frames from several ports): out of
    /// the per-packet code.
    #[cold]
    fn flush_nic_then_queue(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>) {
        self.flush_nic(out);
        let _ = out.nic.push(m);
    }

    #[inline]
    fn queue_for_vm(&mut self, out: &mut Outputs<'e>, i: usize, m: Mbuf<'e>) {
        if !matches!(self.vms.get(i), Some(Some(_))) {
            // A rule of an older snapshot, to a port just unplugged.
            self.counters.drop(Drop::PortGone, 1);
            return;
        }
        if let Err(m) = out.vms[i].push(m) {
            self.flush_vm(out, i);
            let _ = out.vms[i].push(m);
        }
    }

    fn flush_nic(&mut self, out: &mut Outputs<'e>) {
        if !out.nic.is_empty() {
            let r = self.nic_tx.send(&mut out.nic);
            self.counters.nic_tx.add(r.sent as u64);
            if r.dropped > 0 {
                self.counters.drop(Drop::TxFull, r.dropped as u64);
            }
        }
    }

    fn flush_vm(&mut self, out: &mut Outputs<'e>, i: usize) {
        if out.vms[i].is_empty() {
            return;
        }
        let Some(Some(vm)) = self.vms.get_mut(i) else {
            let n = out.vms[i].free_all();
            self.counters.drop(Drop::PortGone, n as u64);
            return;
        };
        {
            let r = vm.tx.send(&mut out.vms[i]);
            self.counters.vm_tx.add(r.sent as u64);
            if r.dropped > 0 {
                self.counters.drop(Drop::TxFull, r.dropped as u64);
            }
        }
    }

    /// Encapsulates `m` towards peer `p` and queues it for the NIC.
    #[inline]
    fn encap(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, p: usize) {
        self.encap_ttl(out, m, p, ORIGIN_TTL);
    }

    /// As `encap`, with the outer TTL to send (a transit hop's is one less than it got).
    #[inline]
    fn encap_ttl(&mut self, out: &mut Outputs<'e>, mut m: Mbuf<'e>, p: usize, ttl: u8) {
        let Some(peer) = self.peers.get(p) else {
            self.counters.drop(Drop::NoRule, 1);
            return;
        };
        if peer.encap.is_none() && !self.adopt_neighbor(p) {
            self.counters.drop(Drop::PeerUnresolved, 1);
            return;
        }
        if m.data().len() + ENCAP_LEN > self.underlay.max_frame || m.segments() != 1 {
            self.counters.drop(Drop::Oversize, 1);
            return;
        }
        let written = match (m.prepend(ENCAP_LEN as u16), &self.peers[p].encap) {
            (Some(frame), Some(template)) => template.write(frame, ttl),
            _ => false,
        };
        if written {
            self.counters.encapsulated.add(1);
            self.queue_for_nic(out, m);
        } else {
            self.counters.drop(Drop::Oversize, 1);
        }
    }

    /// Copies of `m` to every local VM except `except`, and (unless it came from the
    /// overlay) to every peer; `m` itself goes to the last destination.
    fn flood(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, except: Option<usize>, to_peers: bool) {
        // Destinations in order: local VMs but `except`, then (maybe) every peer. No
        // list is built: the hot path does not allocate.
        let vms = self.vms.len();
        let total = vms + if to_peers { self.peers.len() } else { 0 };
        let dest = |k: usize| {
            if k < vms {
                Dest::Vm(k)
            } else {
                Dest::Peer(k - vms)
            }
        };
        // Plugged slots as a bit set (MAX_VMS is 64): the loop below needs `self` mutably.
        let plugged =
            self.vms.iter().enumerate().fold(
                0u64,
                |set, (k, v)| if v.is_some() { set | 1 << k } else { set },
            );
        let wanted = |k: usize| k >= vms || (Some(k) != except && plugged & (1 << k) != 0);
        let Some(last) = (0..total).rev().find(|&k| wanted(k)) else {
            return;
        };
        self.counters.flooded.add(1);
        for k in (0..last).filter(|&k| wanted(k)) {
            match m.copy(&self.pool) {
                Some(c) => self.send_to(out, c, dest(k)),
                None => self.counters.drop(Drop::NoMbuf, 1),
            }
        }
        self.send_to(out, m, dest(last));
    }

    #[inline]
    fn send_to(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, d: Dest) {
        match d {
            Dest::Vm(i) => self.queue_for_vm(out, i, m),
            Dest::Peer(p) => self.encap(out, m, p),
        }
    }

    fn handle_nic_frame(
        &mut self,
        out: &mut Outputs<'e>,
        rules: &mut LookupCache<'_>,
        mut m: Mbuf<'e>,
        whole_vxlan: bool,
    ) {
        let class = if whole_vxlan {
            classify_whole_vxlan(m.data(), &self.underlay)
        } else {
            classify(m.data(), &self.underlay)
        };
        match class {
            FromNic::Vxlan {
                peer_ip,
                peer_mac,
                ttl,
            } => {
                let Some(p) = self.peers.iter().position(|p| p.ip == peer_ip) else {
                    self.counters.drop(Drop::UnknownPeer, 1);
                    return;
                };
                if self.peers[p].mac != Some(peer_mac) {
                    self.learned(p, peer_mac);
                }
                if !m.adj(ENCAP_LEN as u16) {
                    self.counters.drop(Drop::Malformed, 1);
                    return;
                }
                self.counters.decapsulated.add(1);
                let dst: [u8; 6] = m.data()[0..6].try_into().unwrap_or([0xff; 6]);
                if is_multicast(&dst) {
                    // Split horizon: what came over the overlay is not flooded back over it.
                    self.flood(out, m, None, false);
                } else {
                    match rules.lookup(&dst) {
                        Some(Dest::Vm(i)) => self.queue_for_vm(out, i, m),
                        // Unknown unicast: to the local VMs only (split horizon, as above).
                        None => {
                            self.counters.unknown_unicast.add(1);
                            self.flood(out, m, None, false);
                        }
                        // A transit hop: forward over the next overlay link, one hop
                        // older; a frame past the hop limit is in a loop.
                        Some(Dest::Peer(q)) if q != p => {
                            if ttl <= ORIGIN_TTL.saturating_sub(HOP_LIMIT) || ttl > ORIGIN_TTL {
                                self.counters.drop(Drop::HopLimit, 1);
                            } else {
                                self.counters.transit.add(1);
                                self.encap_ttl(out, m, q, ttl - 1);
                            }
                        }
                        // Straight back to the peer it came from: split horizon.
                        Some(Dest::Peer(_)) => self.counters.drop(Drop::NoRule, 1),
                    }
                }
            }
            FromNic::ArpRequest => {
                if let Some((ip, mac)) = arp_reply_in_place(m.data_mut(), &self.underlay) {
                    self.learn(ip, mac);
                }
                self.counters.arp_replies.add(1);
                self.queue_for_nic(out, m);
            }
            FromNic::ArpFrom { ip, mac } => self.learn(ip, mac),
            FromNic::Drop(cause) => self.counters.drop(cause, 1),
        }
    }

    fn learn(&mut self, ip: [u8; 4], mac: [u8; 6]) {
        if let Some(p) = self.peers.iter().position(|p| p.ip == ip) {
            self.learned(p, mac);
        }
    }

    /// Peer `p` is at `mac` (new or changed): keep it and tell the other workers.
    #[cold]
    fn learned(&mut self, p: usize, mac: [u8; 6]) {
        self.peers[p].set_mac(mac, &self.underlay);
        self.neighbors.learn(self.peers[p].ip, mac);
    }

    /// Peer `p`'s MAC as another worker learned it, kept from now on: whether it had one.
    #[cold]
    fn adopt_neighbor(&mut self, p: usize) -> bool {
        let Some(mac) = self.peers.get(p).and_then(|x| self.neighbors.lookup(x.ip)) else {
            return false;
        };
        self.peers[p].set_mac(mac, &self.underlay);
        true
    }

    fn handle_vm_frame(
        &mut self,
        out: &mut Outputs<'e>,
        rules: &mut LookupCache<'_>,
        j: usize,
        m: Mbuf<'e>,
    ) {
        let Some(dst) = m.data().get(0..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) else {
            self.counters.drop(Drop::Malformed, 1);
            return;
        };
        if is_multicast(&dst) {
            self.flood(out, m, Some(j), true);
            return;
        }
        match rules.lookup(&dst) {
            Some(Dest::Vm(i)) if i != j => self.queue_for_vm(out, i, m),
            Some(Dest::Peer(p)) => self.encap(out, m, p),
            // Unknown unicast reaches every VM of the overlay once, as broadcast does.
            None => {
                self.counters.unknown_unicast.add(1);
                self.flood(out, m, Some(j), true);
            }
            // Back to the port it came from.
            Some(Dest::Vm(_)) => self.counters.drop(Drop::NoRule, 1),
        }
    }

    /// Carries out the control path's VM port changes (between loops, never mid-burst).
    #[cold]
    fn apply_commands(&mut self, out: &mut Outputs<'e>) {
        while let Some(c) = self.mailbox.next() {
            match c {
                VmCommand::Attach { slot, port } if slot < MAX_VMS => {
                    while self.vms.len() <= slot {
                        self.vms.push(None); // within the capacity reserved at start
                    }
                    if let Some(old) = self.vms[slot].replace(port) {
                        // Never done by the control path (it detaches first); if it
                        // were, the old queues go back rather than vanish.
                        let _ = self.mailbox.give_back(slot, old);
                    }
                }
                VmCommand::Attach { port, slot } => {
                    let _ = self.mailbox.give_back(slot, port);
                }
                VmCommand::Detach { slot } => {
                    if slot < out.vms.len() {
                        self.flush_vm(out, slot);
                    }
                    if let Some(port) = self.vms.get_mut(slot).and_then(Option::take) {
                        let _ = self.mailbox.give_back(slot, port);
                    }
                }
            }
            self.mailbox.mark_done();
        }
    }

    /// Follows a new snapshot's links: keeps what was learned of each address, without
    /// allocating (the vector holds `MAX_PEERS` from the start).
    #[cold]
    fn sync_peers(&mut self, fib: &Fib) {
        let mut learned = [None::<([u8; 4], [u8; 6])>; MAX_PEERS];
        for (slot, p) in learned.iter_mut().zip(&self.peers) {
            *slot = p.mac.map(|m| (p.ip, m));
        }
        self.peers.clear();
        for spec in fib.peers().iter().take(MAX_PEERS) {
            let mac = spec.mac.or_else(|| {
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
    fn resolve_peers(&mut self, out: &mut Outputs<'e>) {
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
                None => self.counters.drop(Drop::NoMbuf, 1),
            }
        }
    }

    /// Runs the switch on this lcore until `quit` is set.
    pub fn run(
        &mut self,
        quit: &AtomicBool,
        idle: IdleBackoff,
        burst_size: usize,
        mut monitor: Option<&mut Monitor>,
    ) {
        let burst_size = burst_size.clamp(1, crate::mbuf::MAX_BURST);
        let mut rx = Burst::new();
        let mut out = Outputs {
            nic: Burst::new(),
            vms: (0..MAX_VMS).map(|_| Burst::new()).collect(),
        };
        self.vms.reserve(MAX_VMS.saturating_sub(self.vms.len()));
        self.peers
            .reserve(MAX_PEERS.saturating_sub(self.peers.len()));
        let mut synced = self.fib.load_full();
        self.sync_peers(&synced);
        let hz = tsc::hz().max(1);
        let mut next_arp = tsc::now();
        let mut empty_run = 0u32;
        let mut recording = true;
        let mut next_flip = match self.alternate_tsc {
            0 => u64::MAX,
            period => tsc::now() + period,
        };
        idle.prepare_thread();
        while !quit.load(Ordering::Relaxed) {
            if let Some(mon) = monitor.as_deref_mut() {
                mon.publish();
            }
            let start = tsc::now();
            if start >= next_flip {
                recording = !recording;
                next_flip = start + self.alternate_tsc;
            }
            let mut recorder = monitor.as_deref_mut().filter(|_| recording);
            let mut clock = StageClock {
                on: self.stage_clocks,
                last: start,
                spent: [0; 4],
            };
            let mut moved = 0usize;
            let fib = self.fib.load_full();
            if !Arc::ptr_eq(&fib, &synced) {
                if fib.peers() != synced.peers() {
                    self.sync_peers(&fib);
                }
                synced = Arc::clone(&fib);
            }
            if !self.mailbox.is_empty() {
                self.apply_commands(&mut out);
            }
            let mut lookup = LookupCache::new(&fib);
            let n = self.nic_rx.rx_up_to(&mut rx, burst_size);
            clock.lap(RX);
            if n > 0 {
                self.counters.nic_rx.add(n as u64);
                let mut whole_vxlan = WholeVxlan::default();
                if let Some(mon) = recorder.as_deref_mut() {
                    let port = self.nic_rx.port().0 as u8;
                    whole_vxlan = mon.record_burst(&rx, start, Direction::FromNic, port);
                }
                clock.lap(RECORD);
                moved += n;
                for (i, m) in rx.drain().enumerate() {
                    self.handle_nic_frame(&mut out, &mut lookup, m, whole_vxlan.contains(i));
                }
                clock.lap(FORWARD);
            }
            for j in 0..self.vms.len() {
                let Some(vm) = self.vms[j].as_mut() else {
                    continue;
                };
                let rx_tsc = tsc::now();
                let n = vm.rx.rx_up_to(&mut rx, burst_size);
                let port = vm.rx.port().0 as u8;
                clock.lap(RX);
                if n == 0 {
                    continue;
                }
                self.counters.vm_rx.add(n as u64);
                if let Some(mon) = recorder.as_deref_mut() {
                    mon.record_burst(&rx, rx_tsc, Direction::ToNic, port);
                }
                clock.lap(RECORD);
                moved += n;
                for m in rx.drain() {
                    self.handle_vm_frame(&mut out, &mut lookup, j, m);
                }
                clock.lap(FORWARD);
            }
            if start >= next_arp {
                self.resolve_peers(&mut out);
                next_arp = start + hz;
            }
            clock.lap(FORWARD);
            self.flush_nic(&mut out);
            for i in 0..self.vms.len() {
                self.flush_vm(&mut out, i);
            }
            clock.lap(TX);
            if moved > 0 {
                let busy = tsc::now() - start;
                self.counters.busy_cycles.add(busy);
                self.counters.packets.add(moved as u64);
                if self.alternate_tsc > 0 {
                    let half = recorder.is_some() as usize;
                    self.counters.ab_busy_cycles[half].add(busy);
                    self.counters.ab_packets[half].add(moved as u64);
                }
                if clock.on {
                    for (c, &v) in self.counters.stages.iter().zip(&clock.spent) {
                        c.add(v);
                    }
                }
            } else {
                self.counters.empty_polls.add(1);
            }
            idle.after_poll(moved, &mut empty_run);
        }
        if let Some(mon) = monitor {
            mon.publish();
        }
        // Commands posted while stopping, then every VM port's queues back to the
        // control path, which stops the ports once all are home.
        self.apply_commands(&mut out);
        for slot in 0..self.vms.len() {
            self.flush_vm(&mut out, slot);
            if let Some(port) = self.vms[slot].take() {
                let _ = self.mailbox.give_back(slot, port);
            }
        }
    }
}
