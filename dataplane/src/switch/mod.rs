//! The overlay switch: frames between local VM ports and the NIC, across a VXLAN
//! overlay to peer hosts, by VNET-style rules (destination MAC → local VM or peer).
//! Broadcast and multicast reach every local VM and every peer once (frames that came
//! over the overlay are not sent back over it: split horizon). The daemon answers ARP
//! for its underlay address and resolves its peers' MACs by ARP and from their traffic.
//!
//! One or more workers; each owns one rx and one tx queue of every port (RSS or the
//! port's own spreading decides which worker receives a frame), its counters and its
//! record ring, and shares only the immutable rule snapshot and the learned peer MACs
//! (`neighbors`). Each loop (`Switch::run`): take the rule snapshot, apply the
//! mailbox's port changes, receive a burst from the NIC and from each VM port, decide
//! each frame's fate (`forward::decide`) and queue it to a per-destination burst,
//! run the timers, transmit those bursts; every mbuf is sent or freed and counted. The
//! TSC is read once per loop (more only with the benchmark `instruments` on). Frames
//! from local VMs to the overlay are policed by class when the snapshot's shaping
//! policy is active (`qos`). A VM's announcement (RARP or gratuitous ARP after a live
//! migration) that contradicts the rules is handed to the control path through a
//! bounded ring (`announce`), from the paths that already set such frames apart (port
//! security's refusals, broadcasts from the overlay), so that the rule follows the VM.

pub mod announce;
pub mod counters;
pub mod fib;
pub mod forward;
mod instruments;
pub mod mailbox;
pub mod neighbors;
mod output;
pub mod overlay;
mod peers;
pub mod qos;

pub use peers::Peer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use analysis::record::Direction;

use crate::mbuf::{Burst, Mbuf};
use crate::mempool::Mempool;
use crate::monitor::{Monitor, WholeVxlan};
use crate::port::{MacAddr, RxQueue, TxQueue};
use crate::tsc;
use crate::xconnect::IdleBackoff;
use announce::{announced_mac, Announcements, Arrival};
use counters::{DropCause, Stage, SwitchCounters};
use fib::{Fib, LookupCache, PeerIx, VmSlot, MAX_PEERS};
use forward::{decide, dst_mac, source_allowed, Decision, Ingress, VmSet};
use instruments::Instruments;
use mailbox::{Mailbox, VmCommand, MAX_VMS};
use neighbors::Neighbors;
use overlay::{classify, classify_whole_vxlan, FromNic, Underlay, ENCAP_LEN};
use qos::{QosPolicy, Shaper};

/// A local VM's port.
pub struct VmPort<'p> {
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
    /// Port security: frames from a source MAC the rules do not place behind this port
    /// are dropped (`SpoofedSource`). Off only for ports whose traffic is known to
    /// carry other sources (a generator's all-zero frames, a nested switch).
    pub secured: bool,
    /// The MAC the port was plugged with: the one address a guest may announce on it
    /// (`announce`), moving that MAC's rule to the port.
    pub mac: Option<MacAddr>,
}

/// Everything one worker owns.
pub struct Switch<'p, 'c, 'e> {
    /// This worker's index; worker 0 sends the ARP requests for unresolved peers.
    pub worker: usize,
    pub nic_rx: RxQueue<'p>,
    pub nic_tx: TxQueue<'p>,
    /// VM ports by slot (`Dest::Vm(VmSlot(i))` is `vms[i]`); `None` for a free slot.
    /// Changed only through `mailbox`, between loops.
    pub vms: Vec<Option<VmPort<'p>>>,
    /// VM ports plugged and unplugged by the control path.
    pub mailbox: &'c Mailbox<'p>,
    /// One per `Fib::peers` entry, same order (`Dest::Peer(PeerIx(i))` is `peers[i]`);
    /// synced when the snapshot changes (MACs learned are kept by address). Start it
    /// empty.
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
    /// VM arrivals announced, for the control path (`announce`).
    pub announcements: &'c Announcements,
    /// Clock each stage of the loop into `counters.stages` (benchmarks).
    pub stage_clocks: bool,
    /// Benchmarks: record only every other period of this many TSC cycles, and count
    /// the cycles of both halves apart (`counters.ab_*`); 0 = record always.
    pub alternate_tsc: u64,
    /// Benchmarks, with `alternate_tsc`: alternate shaping (`qos`) instead of recording,
    /// the halves' cycles counted in `counters.qos_ab_*`.
    pub alternate_qos: bool,
}

/// The loop's own state, reused every iteration.
struct Local<'e> {
    /// Packets per rx call, at most.
    burst_size: usize,
    rx: Burst<'e>,
    out: Outputs<'e>,
    instruments: Instruments,
    /// When the peers' MACs are next resolved (`resolve_peers`), and the TSC's rate.
    next_arp: u64,
    tsc_hz: u64,
    /// The buckets of the shaping policy in force.
    shaper: Shaper,
}

/// Per-destination bursts, and the plugged slots the forwarding decisions see.
struct Outputs<'e> {
    nic: Burst<'e>,
    vms: Vec<Burst<'e>>,
    /// The slots of `Switch::vms` that hold a port (kept in step by `apply_commands`).
    plugged: VmSet,
}

/// What the polls of one loop iteration share: the TSC read at its start (every
/// record's stamp, the buckets' clock), the lookups in its rule snapshot (destinations,
/// and VM sources apart so that the two never evict each other), the monitor when it
/// records, and the snapshot's shaping policy when active.
struct Tick<'f, 'm> {
    now: u64,
    rules: LookupCache<'f>,
    sources: LookupCache<'f>,
    recorder: Option<&'m mut Monitor>,
    qos: Option<&'f QosPolicy>,
}

/// One loop iteration as the accounting sees it: when it started, how many packets it
/// received, and whether what the benchmark alternates (recording, or shaping) was on.
#[derive(Clone, Copy)]
struct Iteration {
    start: u64,
    moved: usize,
    on: bool,
}

impl<'p, 'c, 'e> Switch<'p, 'c, 'e> {
    /// Runs the switch on this lcore until `quit` is set.
    ///
    /// Each iteration reads the TSC once (`now`): it stamps every burst the iteration
    /// records, drives the timers and the A/B halves, and ends the previous iteration.
    /// An iteration that moved packets is charged as busy from its start to the next
    /// one's: all the loop's work for those packets (snapshot, mailbox, rx, records,
    /// forwarding, tx, and publishing their records at the top of the next iteration)
    /// and nothing else, since a worker backs off only after an iteration that moved
    /// nothing. Idle iterations are in no busy cycle.
    pub fn run(
        &mut self,
        quit: &AtomicBool,
        idle: IdleBackoff,
        burst_size: usize,
        mut monitor: Option<&mut Monitor>,
    ) {
        let start = tsc::now();
        let mut local = self.prepare(burst_size, start);
        let mut synced = self.fib.load_full();
        self.sync_peers(&synced);
        local.shaper.sync(synced.qos().map(|p| &**p));
        let mut last = Iteration {
            start,
            moved: 0,
            on: false,
        };
        let mut empty_run = 0u32;
        idle.prepare_thread();
        while !quit.load(Ordering::Relaxed) {
            let now = tsc::now();
            self.account(last, now, &local.instruments);
            if let Some(mon) = monitor.as_deref_mut() {
                mon.publish();
            }
            let on = local.instruments.begin(now);
            let (recording, shaping) = match self.alternate_qos {
                false => (on, true),
                true => (true, on),
            };
            let fib = self.take_snapshot(&mut synced, &mut local.shaper);
            if !self.mailbox.is_empty() {
                self.apply_commands(&mut local.out);
            }
            let mut tick = Tick {
                now,
                rules: LookupCache::new(&fib),
                sources: LookupCache::new(&fib),
                recorder: monitor.as_deref_mut().filter(|_| recording),
                qos: fib.qos().map(|p| &**p).filter(|p| shaping && p.is_active()),
            };
            let moved = self.poll_nic(&mut local, &mut tick) + self.poll_vms(&mut local, &mut tick);
            self.timers(&mut local, now);
            local.instruments.lap(Stage::Forward);
            self.flush(&mut local.out);
            local.instruments.lap(Stage::Tx);
            let on = match self.alternate_qos {
                false => tick.recorder.is_some(),
                true => tick.qos.is_some(),
            };
            last = self.end_iteration(&mut local, now, moved, on);
            idle.after_poll(moved, &mut empty_run);
        }
        if let Some(mon) = monitor {
            mon.publish();
        }
        self.finish(&mut local.out);
    }

    /// The loop's state, and room for every VM slot and link, so that nothing on the
    /// worker allocates once it runs.
    #[cold]
    fn prepare(&mut self, burst_size: usize, now: u64) -> Local<'e> {
        self.vms.reserve(MAX_VMS.saturating_sub(self.vms.len()));
        self.peers
            .reserve(MAX_PEERS.saturating_sub(self.peers.len()));
        let mut plugged = VmSet::default();
        for (i, v) in self.vms.iter().enumerate() {
            if v.is_some() {
                plugged.insert(VmSlot(i));
            }
        }
        Local {
            burst_size: burst_size.clamp(1, crate::mbuf::MAX_BURST),
            rx: Burst::new(),
            out: Outputs {
                nic: Burst::new(),
                vms: (0..MAX_VMS).map(|_| Burst::new()).collect(),
                plugged,
            },
            instruments: Instruments::new(
                self.stage_clocks,
                self.alternate_tsc,
                self.alternate_qos,
                now,
            ),
            next_arp: now,
            tsc_hz: tsc::hz().max(1),
            shaper: Shaper::new(tsc::hz().max(1)),
        }
    }

    /// Charges iteration `it`, now that the next one started at `now`: its busy cycles
    /// and packets, if it moved any.
    #[inline(always)]
    fn account(&self, it: Iteration, now: u64, instruments: &Instruments) {
        if it.moved == 0 {
            return;
        }
        let busy = now.wrapping_sub(it.start);
        self.counters.busy_cycles.add(busy);
        self.counters.packets.add(it.moved as u64);
        instruments.charge(self.counters, busy, it.moved as u64, it.on);
    }

    /// The rule snapshot for this iteration (RCU: held by a guard, without touching the
    /// shared reference count, so the iteration never mixes two tables); follows the
    /// links and the shaping policy when they changed.
    #[inline(always)]
    fn take_snapshot(
        &mut self,
        synced: &mut Arc<Fib>,
        shaper: &mut Shaper,
    ) -> arc_swap::Guard<Arc<Fib>> {
        let fib = self.fib.load();
        if !Arc::ptr_eq(&fib, synced) {
            self.snapshot_changed(&fib, synced, shaper);
        }
        fib
    }

    #[cold]
    fn snapshot_changed(&mut self, fib: &Arc<Fib>, synced: &mut Arc<Fib>, shaper: &mut Shaper) {
        if fib.peers() != synced.peers() {
            self.sync_peers(fib);
        }
        let same_qos = match (fib.qos(), synced.qos()) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.same_as(b),
            _ => false,
        };
        if !same_qos {
            shaper.sync(fib.qos().map(|p| &**p));
        }
        *synced = Arc::clone(fib);
    }

    /// Receives a burst from the NIC, records it, and forwards each frame. Returns the
    /// packets received.
    #[inline(always)]
    fn poll_nic(&mut self, local: &mut Local<'e>, tick: &mut Tick<'_, '_>) -> usize {
        let n = self.nic_rx.rx_up_to(&mut local.rx, local.burst_size);
        local.instruments.lap(Stage::Rx);
        if n == 0 {
            return 0;
        }
        self.counters.nic_rx.add(n as u64);
        let mut whole_vxlan = WholeVxlan::default();
        if let Some(mon) = tick.recorder.as_deref_mut() {
            let port = self.nic_rx.port().0 as u8;
            whole_vxlan = mon.record_burst(&local.rx, tick.now, Direction::FromNic, port);
        }
        local.instruments.lap(Stage::Record);
        for (i, m) in local.rx.drain().enumerate() {
            self.handle_nic_frame(&mut local.out, &mut tick.rules, m, whole_vxlan.contains(i));
        }
        local.instruments.lap(Stage::Forward);
        n
    }

    /// Receives a burst from each plugged VM port, drops the frames with a source the
    /// port may not use (before they are recorded: the analysis never sees them),
    /// records the rest, and forwards each frame. Returns the packets received.
    #[inline(always)]
    fn poll_vms(&mut self, local: &mut Local<'e>, tick: &mut Tick<'_, '_>) -> usize {
        let mut moved = 0;
        for j in local.out.plugged.iter() {
            let Some(vm) = self.vms.get_mut(j.0).and_then(Option::as_mut) else {
                continue;
            };
            let n = vm.rx.rx_up_to(&mut local.rx, local.burst_size);
            let (secured, own) = (vm.secured, vm.mac);
            let port = vm.rx.port().0 as u8;
            local.instruments.lap(Stage::Rx);
            if n == 0 {
                continue;
            }
            self.counters.vm_rx.add(n as u64);
            if secured {
                let sources = &mut tick.sources;
                let (counters, ring) = (self.counters, self.announcements);
                let spoofed = local.rx.retain(|f| {
                    source_allowed(f, j, sources) || arrived_here(f, j, own, counters, ring)
                });
                if spoofed > 0 {
                    self.counters.drop(DropCause::SpoofedSource, spoofed as u64);
                }
            }
            if let Some(mon) = tick.recorder.as_deref_mut() {
                mon.record_burst(&local.rx, tick.now, Direction::ToNic, port);
            }
            local.instruments.lap(Stage::Record);
            moved += n;
            match tick.qos {
                None => {
                    for m in local.rx.drain() {
                        self.handle_vm_frame(&mut local.out, &mut tick.rules, j, m, None);
                    }
                }
                Some(policy) => {
                    for m in local.rx.drain() {
                        let shaping = Some((&mut local.shaper, policy, tick.now));
                        self.handle_vm_frame(&mut local.out, &mut tick.rules, j, m, shaping);
                    }
                }
            }
            local.instruments.lap(Stage::Forward);
        }
        if tick.qos.is_some() {
            local.shaper.flush(self.counters);
        }
        moved
    }

    /// Once a second: peers' MACs (`resolve_peers`).
    #[inline(always)]
    fn timers(&mut self, local: &mut Local<'e>, now: u64) {
        if now >= local.next_arp {
            self.resolve_peers(&mut local.out);
            local.next_arp = now + local.tsc_hz;
        }
    }

    /// The iteration that started at `now` is done: its stage clocks, or an empty
    /// poll; what `account` charges once the next one starts.
    #[inline(always)]
    fn end_iteration(&self, local: &mut Local<'e>, now: u64, moved: usize, on: bool) -> Iteration {
        local.instruments.end(self.counters, moved > 0);
        if moved == 0 {
            self.counters.empty_polls.add(1);
        }
        Iteration {
            start: now,
            moved,
            on,
        }
    }

    /// Transmits every per-destination burst.
    #[inline(always)]
    fn flush(&mut self, out: &mut Outputs<'e>) {
        self.flush_nic(out);
        for i in 0..self.vms.len() {
            self.flush_vm(out, VmSlot(i));
        }
    }

    /// After the last iteration: commands posted while stopping, then every VM port's
    /// queues back to the control path, which stops the ports once all are home.
    #[cold]
    fn finish(&mut self, out: &mut Outputs<'e>) {
        self.apply_commands(out);
        self.flush_nic(out);
        for slot in 0..self.vms.len() {
            self.flush_vm(out, VmSlot(slot));
            if let Some(port) = self.vms[slot].take() {
                let _ = self.mailbox.give_back(slot, port);
            }
        }
    }

    fn handle_nic_frame(
        &mut self,
        out: &mut Outputs<'e>,
        rules: &mut LookupCache<'_>,
        m: Mbuf<'e>,
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
            } => self.decap(out, rules, m, peer_ip, peer_mac, ttl),
            FromNic::ArpRequest => self.answer_arp(out, m),
            FromNic::ArpFrom { ip, mac } => self.learn(ip, mac),
            FromNic::Drop(cause) => self.counters.drop(cause, 1),
        }
    }

    /// A VXLAN frame for us from `peer_ip`: decapsulated, then forwarded.
    #[inline]
    fn decap(
        &mut self,
        out: &mut Outputs<'e>,
        rules: &mut LookupCache<'_>,
        mut m: Mbuf<'e>,
        peer_ip: [u8; 4],
        peer_mac: MacAddr,
        ttl: u8,
    ) {
        let Some(p) = self.peers.iter().position(|p| p.ip == peer_ip) else {
            self.counters.drop(DropCause::UnknownPeer, 1);
            return;
        };
        if self.peers[p].mac != Some(peer_mac) {
            self.learned(p, peer_mac);
        }
        if !m.adj(ENCAP_LEN as u16) {
            self.counters.drop(DropCause::Malformed, 1);
            return;
        }
        self.counters.decapsulated.add(1);
        let Some(dst) = dst_mac(m.data()) else {
            self.counters.drop(DropCause::Malformed, 1);
            return;
        };
        let from = Ingress::Peer {
            peer: PeerIx(p),
            ttl,
        };
        if dst.0[0] & 1 != 0 {
            self.arrived_there(m.data(), peer_ip, PeerIx(p), rules);
        }
        let d = decide(dst, from, rules, out.plugged, self.peers.len());
        if matches!(d, Decision::Encap { .. }) {
            self.counters.transit.add(1);
            if rules.fib().is_pointer(&dst.0) {
                self.counters.pointer_forwarded.add(1);
            }
        }
        self.carry_out(out, m, d);
    }

    /// Floods a RARP for `mac` over every overlay link (the control path's `Announce`).
    #[cold]
    fn announce(&mut self, out: &mut Outputs<'e>, mac: [u8; 6]) {
        match Mbuf::from_bytes(&self.pool, &announce::rarp(mac)) {
            Some(m) => {
                let to = forward::FloodSet::new(VmSet::default(), self.peers.len());
                self.flood(out, m, to);
            }
            None => self.counters.drop(DropCause::NoMbuf, 1),
        }
    }

    /// A broadcast frame from peer `p` (at `peer_ip`): if it announces a VM that the
    /// rules place elsewhere, the VM is now behind `p` (`announce`).
    #[cold]
    fn arrived_there(
        &self,
        frame: &[u8],
        peer_ip: [u8; 4],
        p: PeerIx,
        rules: &mut LookupCache<'_>,
    ) {
        let Some(mac) = announced_mac(frame) else {
            return;
        };
        if rules.fib().lookup(&mac) != Some(fib::Dest::Peer(p)) {
            hand_over(
                self.counters,
                self.announcements,
                Arrival::Remote { peer_ip, mac },
            );
        }
    }

    /// A frame from VM slot `j`: forwarded, and when `shaping` (the loop's buckets,
    /// the policy, the loop's TSC) policed if it leaves over the overlay. Inlined into
    /// the unshaped and shaped loops of `poll_vms`, so the unshaped one has no QoS
    /// code at all.
    #[inline(always)]
    fn handle_vm_frame(
        &mut self,
        out: &mut Outputs<'e>,
        rules: &mut LookupCache<'_>,
        j: VmSlot,
        m: Mbuf<'e>,
        shaping: Option<(&mut Shaper, &QosPolicy, u64)>,
    ) {
        let Some(dst) = dst_mac(m.data()) else {
            self.counters.drop(DropCause::Malformed, 1);
            return;
        };
        let mut d = decide(dst, Ingress::Vm(j), rules, out.plugged, self.peers.len());
        if let (Some((shaper, policy, now)), Decision::Encap { .. }) = (shaping, &d) {
            // A frame too large once encapsulated is dropped by `encap` (`Oversize`)
            // without taking the uplink's tokens.
            let wire = m.pkt_len().saturating_add(ENCAP_LEN as u32);
            if wire as usize <= self.underlay.max_frame {
                if let Err(cause) = shaper.admit(policy, m.data(), j, wire, now) {
                    d = Decision::Drop(cause);
                }
            }
        }
        self.carry_out(out, m, d);
    }

    /// Does what `forward::decide` decided for `m`.
    #[inline(always)]
    fn carry_out(&mut self, out: &mut Outputs<'e>, m: Mbuf<'e>, d: Decision) {
        match d {
            Decision::ToVm(i) => self.queue_for_vm(out, i, m),
            Decision::Encap { peer, ttl } => self.encap(out, m, peer, ttl),
            Decision::Flood { to, unknown } => {
                if unknown {
                    self.counters.unknown_unicast.add(1);
                }
                self.flood(out, m, to);
            }
            Decision::Drop(cause) => self.counters.drop(cause, 1),
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
                    out.plugged.insert(VmSlot(slot));
                }
                VmCommand::Attach { port, slot } => {
                    let _ = self.mailbox.give_back(slot, port);
                }
                VmCommand::Announce { mac } => self.announce(out, mac),
                VmCommand::Detach { slot } => {
                    self.flush_vm(out, VmSlot(slot));
                    out.plugged.remove(VmSlot(slot));
                    if let Some(port) = self.vms.get_mut(slot).and_then(Option::take) {
                        let _ = self.mailbox.give_back(slot, port);
                    }
                }
            }
            self.mailbox.mark_done();
        }
    }
}

/// A frame from VM slot `j` that port security refused: if it announces the port's own
/// MAC `own` (the VM just arrived on this port), it is handed to the control path and
/// let through (flooded, so that every peer sees the announcement too).
#[cold]
fn arrived_here(
    frame: &[u8],
    j: VmSlot,
    own: Option<MacAddr>,
    counters: &SwitchCounters,
    ring: &Announcements,
) -> bool {
    match (announced_mac(frame), own) {
        (Some(mac), Some(own)) if mac == own.0 => {
            hand_over(counters, ring, Arrival::Local { slot: j, mac });
            true
        }
        _ => false,
    }
}

/// Posts an arrival to the control path, counted.
#[cold]
fn hand_over(counters: &SwitchCounters, ring: &Announcements, a: Arrival) {
    if ring.post(a) {
        counters.announcements.add(1);
    } else {
        counters.announcements_lost.add(1);
    }
}
