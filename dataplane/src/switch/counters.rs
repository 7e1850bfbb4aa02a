//! The switch's counters: packets by path, and drops by cause from one list.

use serde::Serialize;

use crate::counters::Counter;

/// Why a packet was dropped. One list, so every drop has a counted cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Drop {
    /// No rule for the destination MAC.
    NoRule,
    /// Not addressed to this daemon (other IP, not VXLAN, other ARP).
    NotForUs,
    /// VXLAN from an address that is not a configured peer.
    UnknownPeer,
    WrongVni,
    /// Truncated or inconsistent headers.
    Malformed,
    /// Would exceed the NIC's frame size once encapsulated.
    Oversize,
    /// The peer's MAC is not resolved yet (ARP pending).
    PeerUnresolved,
    /// A tx queue had no room.
    TxFull,
    /// No mbuf for a flood copy or an ARP frame.
    NoMbuf,
    /// A transit frame that already crossed `HOP_LIMIT` overlay hops (a forwarding loop).
    HopLimit,
    /// For a VM port being unplugged (a rule of the snapshot before its removal).
    PortGone,
}

pub const DROP_CAUSES: [Drop; 11] = [
    Drop::NoRule,
    Drop::NotForUs,
    Drop::UnknownPeer,
    Drop::WrongVni,
    Drop::Malformed,
    Drop::Oversize,
    Drop::PeerUnresolved,
    Drop::TxFull,
    Drop::NoMbuf,
    Drop::HopLimit,
    Drop::PortGone,
];

#[derive(Debug, Default)]
pub struct SwitchCounters {
    pub vm_rx: Counter,
    pub vm_tx: Counter,
    pub nic_rx: Counter,
    pub nic_tx: Counter,
    pub encapsulated: Counter,
    pub decapsulated: Counter,
    pub flooded: Counter,
    /// Unicast frames with no rule for their destination, flooded like broadcast.
    pub unknown_unicast: Counter,
    pub arp_replies: Counter,
    pub arp_requests: Counter,
    drops: [Counter; 11],
    /// Frames that arrived over the overlay and left over it again (this host is a transit hop).
    pub transit: Counter,
    /// Busy TSC cycles (rx to end of tx, as in xconnect) and packets received.
    pub busy_cycles: Counter,
    pub packets: Counter,
    /// Loop iterations that found no packet on any port (how idle the worker is).
    pub empty_polls: Counter,
    /// Busy TSC cycles per stage (`STAGES`), when the worker clocks its stages.
    pub stages: [Counter; 4],
    /// Busy cycles and packets of loops that did not record ([0]) and did ([1]), when
    /// the worker alternates (`Switch::alternate_tsc`).
    pub ab_busy_cycles: [Counter; 2],
    pub ab_packets: [Counter; 2],
}

/// The stages of the switch loop, as `SwitchCounters::stages` counts them: receiving
/// bursts, writing their records, forwarding (lookup, encapsulation or decapsulation,
/// ARP, queueing per destination), transmitting.
pub const STAGES: [&str; 4] = ["rx", "record", "forward", "tx"];

impl SwitchCounters {
    #[inline]
    pub fn drop(&self, cause: Drop, n: u64) {
        self.drops[cause as usize].add(n);
    }

    pub fn drops(&self) -> Vec<(Drop, u64)> {
        DROP_CAUSES
            .iter()
            .map(|&c| (c, self.drops[c as usize].get()))
            .collect()
    }
}

/// A snapshot for reports.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchSnapshot {
    pub vm_rx: u64,
    pub vm_tx: u64,
    pub nic_rx: u64,
    pub nic_tx: u64,
    pub encapsulated: u64,
    pub decapsulated: u64,
    pub flooded: u64,
    pub unknown_unicast: u64,
    pub arp_replies: u64,
    pub arp_requests: u64,
    pub transit: u64,
    pub drops: std::collections::BTreeMap<String, u64>,
    pub cycles_per_packet: Option<f64>,
    pub empty_polls: u64,
    /// Cycles per packet by stage, when clocked (`dataplane.stage_clocks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_cycles_per_packet: Option<std::collections::BTreeMap<String, f64>>,
    /// Each worker's share (cycles per packet above are over all of them).
    pub workers: Vec<WorkerLoad>,
    /// When the workers alternated recording and not: each half's cycles per packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_ab: Option<MonitorAb>,
}

/// Monitoring's cost measured within one run: the cycles per packet of the periods the
/// workers recorded and of those they did not, interleaved every few milliseconds, so
/// the machine's slower drifts fall on both alike.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MonitorAb {
    pub recording_cycles_per_packet: f64,
    pub not_recording_cycles_per_packet: f64,
    /// recording / not recording.
    pub ratio: f64,
}

/// One worker's load, in the snapshot of several.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerLoad {
    pub packets: u64,
    pub vm_rx: u64,
    pub vm_tx: u64,
    pub nic_rx: u64,
    pub nic_tx: u64,
    /// Packets this worker dropped, all causes.
    pub drops: u64,
    pub cycles_per_packet: Option<f64>,
    pub empty_polls: u64,
}

impl SwitchCounters {
    /// This worker's counters alone.
    pub fn snapshot(&self) -> SwitchSnapshot {
        Self::snapshot_all(std::slice::from_ref(self))
    }

    /// The daemon's counters: every worker's summed, and each worker's load.
    pub fn snapshot_all(all: &[SwitchCounters]) -> SwitchSnapshot {
        let sum = |f: fn(&SwitchCounters) -> &Counter| all.iter().map(|c| f(c).get()).sum::<u64>();
        let pk = sum(|c| &c.packets);
        let busy = sum(|c| &c.busy_cycles);
        let stages: Vec<u64> = (0..STAGES.len())
            .map(|i| all.iter().map(|c| c.stages[i].get()).sum())
            .collect();
        SwitchSnapshot {
            vm_rx: sum(|c| &c.vm_rx),
            vm_tx: sum(|c| &c.vm_tx),
            nic_rx: sum(|c| &c.nic_rx),
            nic_tx: sum(|c| &c.nic_tx),
            encapsulated: sum(|c| &c.encapsulated),
            decapsulated: sum(|c| &c.decapsulated),
            flooded: sum(|c| &c.flooded),
            unknown_unicast: sum(|c| &c.unknown_unicast),
            arp_replies: sum(|c| &c.arp_replies),
            arp_requests: sum(|c| &c.arp_requests),
            transit: sum(|c| &c.transit),
            drops: DROP_CAUSES
                .iter()
                .map(|&d| {
                    let n = all.iter().map(|c| c.drops[d as usize].get()).sum();
                    (format!("{d:?}"), n)
                })
                .collect(),
            cycles_per_packet: (pk > 0).then(|| busy as f64 / pk as f64),
            empty_polls: sum(|c| &c.empty_polls),
            stage_cycles_per_packet: (pk > 0 && stages.iter().any(|&c| c > 0)).then(|| {
                STAGES
                    .iter()
                    .zip(&stages)
                    .map(|(n, &c)| (n.to_string(), c as f64 / pk as f64))
                    .collect()
            }),
            monitor_ab: {
                let cpp = |i: usize| {
                    let p: u64 = all.iter().map(|c| c.ab_packets[i].get()).sum();
                    let b: u64 = all.iter().map(|c| c.ab_busy_cycles[i].get()).sum();
                    (p > 0).then(|| b as f64 / p as f64)
                };
                match (cpp(1), cpp(0)) {
                    (Some(on), Some(off)) => Some(MonitorAb {
                        recording_cycles_per_packet: on,
                        not_recording_cycles_per_packet: off,
                        ratio: on / off,
                    }),
                    _ => None,
                }
            },
            workers: all
                .iter()
                .map(|c| {
                    let p = c.packets.get();
                    WorkerLoad {
                        packets: p,
                        vm_rx: c.vm_rx.get(),
                        vm_tx: c.vm_tx.get(),
                        nic_rx: c.nic_rx.get(),
                        nic_tx: c.nic_tx.get(),
                        drops: c.drops.iter().map(Counter::get).sum(),
                        cycles_per_packet: (p > 0).then(|| c.busy_cycles.get() as f64 / p as f64),
                        empty_polls: c.empty_polls.get(),
                    }
                })
                .collect(),
        }
    }
}
