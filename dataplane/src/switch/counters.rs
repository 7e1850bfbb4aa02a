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
}

pub const DROP_CAUSES: [Drop; 10] = [
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
    drops: [Counter; 10],
    /// Frames that arrived over the overlay and left over it again (this host is a transit hop).
    pub transit: Counter,
    /// Busy TSC cycles (rx to end of tx, as in xconnect) and packets received.
    pub busy_cycles: Counter,
    pub packets: Counter,
    /// Loop iterations that found no packet on any port (how idle the worker is).
    pub empty_polls: Counter,
    /// Busy TSC cycles per stage (`STAGES`), when the worker clocks its stages.
    pub stages: [Counter; 4],
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
}

impl SwitchCounters {
    pub fn snapshot(&self) -> SwitchSnapshot {
        let pk = self.packets.get();
        SwitchSnapshot {
            vm_rx: self.vm_rx.get(),
            vm_tx: self.vm_tx.get(),
            nic_rx: self.nic_rx.get(),
            nic_tx: self.nic_tx.get(),
            encapsulated: self.encapsulated.get(),
            decapsulated: self.decapsulated.get(),
            flooded: self.flooded.get(),
            unknown_unicast: self.unknown_unicast.get(),
            arp_replies: self.arp_replies.get(),
            arp_requests: self.arp_requests.get(),
            transit: self.transit.get(),
            drops: self
                .drops()
                .into_iter()
                .map(|(c, n)| (format!("{c:?}"), n))
                .collect(),
            cycles_per_packet: (pk > 0).then(|| self.busy_cycles.get() as f64 / pk as f64),
            empty_polls: self.empty_polls.get(),
            stage_cycles_per_packet: (pk > 0 && self.stages.iter().any(|c| c.get() > 0)).then(
                || {
                    STAGES
                        .iter()
                        .zip(&self.stages)
                        .map(|(n, c)| (n.to_string(), c.get() as f64 / pk as f64))
                        .collect()
                },
            ),
        }
    }
}
