//! The switch's counters: packets by path, and drops by cause from one list.

use serde::Serialize;

use crate::counters::Counter;

/// Declares `DropCause` from one list (as VPP's `foreach_*_error`): the enum, every
/// cause in order (`DropCause::ALL`), the name each prints as (summaries, `/metrics`,
/// tests: the variant's name) and its description (its doc comment).
macro_rules! drop_causes {
    ($($(#[doc = $doc:literal])+ $cause:ident,)+) => {
        /// Why a packet was dropped. One list, so every drop has a counted cause.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum DropCause {
            $($(#[doc = $doc])+ $cause,)+
        }

        impl DropCause {
            /// Every cause, in the order of their counters.
            pub const ALL: &'static [DropCause] = &[$(DropCause::$cause,)+];

            /// The name the cause is counted under in summaries and `/metrics`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropCause::$cause => stringify!($cause),)+
                }
            }

            /// What the cause means (its doc comment), for help texts.
            pub fn description(self) -> &'static str {
                match self {
                    $(DropCause::$cause => concat!($($doc),+),)+
                }
                .trim()
            }
        }
    };
}

drop_causes! {
    /// No rule for the destination MAC, or a rule back to where the frame came from.
    NoRule,
    /// Not addressed to this daemon (other IP, not VXLAN, other ARP).
    NotForUs,
    /// VXLAN from an address that is not a configured peer.
    UnknownPeer,
    /// VXLAN with another VNI than the daemon's.
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
    /// From a VM port with a source MAC the rules do not place behind that port (a
    /// guest spoofing another VM's address, or a multicast source).
    SpoofedSource,
    /// Best-effort from a local VM (or a reserved flow's excess) beyond what the
    /// uplink's capacity leaves after the reserved traffic.
    BestEffortUplink,
    /// Best-effort from a local VM (or a reserved flow's excess) beyond that VM's cap.
    BestEffortVmCap,
}

/// Declares `Stage` from one list: the stages of the switch loop that
/// `SwitchCounters::stages` counts, and the names they print as.
macro_rules! stages {
    ($($(#[doc = $doc:literal])+ $stage:ident = $name:literal,)+) => {
        /// A stage of the switch loop, clocked when `dataplane.stage_clocks` is on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Stage {
            $($(#[doc = $doc])+ $stage,)+
        }

        impl Stage {
            /// Every stage, in the order of their counters.
            pub const ALL: &'static [Stage] = &[$(Stage::$stage,)+];

            /// The name the stage prints as in summaries.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Stage::$stage => $name,)+
                }
            }
        }
    };
}

stages! {
    /// Receiving bursts (and the loop's own work before them).
    Rx = "rx",
    /// Writing their records.
    Record = "record",
    /// Lookup, encapsulation or decapsulation, ARP, queueing per destination.
    Forward = "forward",
    /// Transmitting the per-destination bursts.
    Tx = "tx",
}

/// Declares `QosClass` from one list: the classes of the NIC egress (`switch::qos`),
/// each counted in `SwitchCounters::qos`, and the names they print as.
macro_rules! qos_classes {
    ($($(#[doc = $doc:literal])+ $class:ident = $name:literal,)+) => {
        /// A class of frames from local VMs to the uplink.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum QosClass {
            $($(#[doc = $doc])+ $class,)+
        }

        impl QosClass {
            /// Every class, in the order of their counters.
            pub const ALL: &'static [QosClass] = &[$(QosClass::$class,)+];

            /// The name the class is counted under in summaries and `/metrics`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(QosClass::$class => $name,)+
                }
            }

            /// What the class is (its doc comment), for help texts.
            pub fn description(self) -> &'static str {
                match self {
                    $(QosClass::$class => concat!($($doc),+),)+
                }
                .trim()
            }
        }
    };
}

qos_classes! {
    /// Frames of a reservation (inner source/destination MAC pair), within its rate:
    /// exceeding ones go on as best-effort, dropped ones are those best-effort dropped.
    Reserved = "reserved",
    /// Other frames from local VMs to the uplink, and reserved flows' excess.
    BestEffort = "best_effort",
}

/// The number of drop causes, of stages and of QoS classes (counter array sizes).
pub const DROP_CAUSE_COUNT: usize = DropCause::ALL.len();
pub const STAGE_COUNT: usize = Stage::ALL.len();
pub const QOS_CLASS_COUNT: usize = QosClass::ALL.len();

/// One QoS class's frames: within its rate (conforming), beyond it (exceeding), and
/// of those, dropped.
#[derive(Debug, Default)]
pub struct ClassCounters {
    pub conforming_packets: Counter,
    pub conforming_bytes: Counter,
    pub exceeding_packets: Counter,
    pub exceeding_bytes: Counter,
    pub dropped_packets: Counter,
    pub dropped_bytes: Counter,
}

/// A QoS class's counters, summed over the workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassSnapshot {
    pub conforming_packets: u64,
    pub conforming_bytes: u64,
    pub exceeding_packets: u64,
    pub exceeding_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

impl ClassSnapshot {
    fn sum(all: &[SwitchCounters], class: QosClass) -> Self {
        let s = |f: fn(&ClassCounters) -> &Counter| {
            all.iter()
                .map(|c| f(&c.qos[class as usize]).get())
                .sum::<u64>()
        };
        Self {
            conforming_packets: s(|c| &c.conforming_packets),
            conforming_bytes: s(|c| &c.conforming_bytes),
            exceeding_packets: s(|c| &c.exceeding_packets),
            exceeding_bytes: s(|c| &c.exceeding_bytes),
            dropped_packets: s(|c| &c.dropped_packets),
            dropped_bytes: s(|c| &c.dropped_bytes),
        }
    }
}

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
    drops: [Counter; DROP_CAUSE_COUNT],
    /// Frames that arrived over the overlay and left over it again (this host is a transit hop).
    pub transit: Counter,
    /// VM arrivals announced (RARP or gratuitous ARP from a MAC the rules place
    /// elsewhere) and handed to the control path (`switch::announce`).
    pub announcements: Counter,
    /// Announcements not handed over: the ring to the control path was full.
    pub announcements_lost: Counter,
    /// Transit frames sent on by a forwarding pointer (a departed VM's MAC).
    pub pointer_forwarded: Counter,
    /// Busy TSC cycles and packets received: each loop iteration that moved packets
    /// is charged from its start to the next one's (see `Switch::run`).
    pub busy_cycles: Counter,
    pub packets: Counter,
    /// Loop iterations that found no packet on any port (how idle the worker is).
    pub empty_polls: Counter,
    /// Busy TSC cycles per stage (`Stage`), when the worker clocks its stages.
    pub stages: [Counter; STAGE_COUNT],
    /// Busy cycles and packets of loops that did not record ([0]) and did ([1]), when
    /// the worker alternates (`Switch::alternate_tsc`).
    pub ab_busy_cycles: [Counter; 2],
    pub ab_packets: [Counter; 2],
    /// Frames from local VMs to the uplink by QoS class (`QosClass`), when shaped.
    pub qos: [ClassCounters; QOS_CLASS_COUNT],
    /// Busy cycles and packets of loops that did not shape ([0]) and did ([1]), when
    /// the worker alternates shaping (`Switch::alternate_qos`).
    pub qos_ab_busy_cycles: [Counter; 2],
    pub qos_ab_packets: [Counter; 2],
}

impl SwitchCounters {
    #[inline]
    pub fn drop(&self, cause: DropCause, n: u64) {
        self.drops[cause as usize].add(n);
    }

    pub fn drops(&self) -> Vec<(DropCause, u64)> {
        DropCause::ALL
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
    pub announcements: u64,
    pub announcements_lost: u64,
    pub pointer_forwarded: u64,
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
    /// Frames from local VMs to the uplink by QoS class, once any was shaped.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub qos: std::collections::BTreeMap<String, ClassSnapshot>,
    /// When the workers alternated shaping and not: each half's cycles per packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos_ab: Option<QosAb>,
}

/// Shaping's cost measured within one run, as `MonitorAb` measures monitoring's.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QosAb {
    pub shaping_cycles_per_packet: f64,
    pub not_shaping_cycles_per_packet: f64,
    /// shaping / not shaping.
    pub ratio: f64,
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
        let stages: Vec<u64> = (0..STAGE_COUNT)
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
            announcements: sum(|c| &c.announcements),
            announcements_lost: sum(|c| &c.announcements_lost),
            pointer_forwarded: sum(|c| &c.pointer_forwarded),
            drops: DropCause::ALL
                .iter()
                .map(|&d| {
                    let n = all.iter().map(|c| c.drops[d as usize].get()).sum();
                    (d.name().to_string(), n)
                })
                .collect(),
            cycles_per_packet: (pk > 0).then(|| busy as f64 / pk as f64),
            empty_polls: sum(|c| &c.empty_polls),
            stage_cycles_per_packet: (pk > 0 && stages.iter().any(|&c| c > 0)).then(|| {
                Stage::ALL
                    .iter()
                    .zip(&stages)
                    .map(|(s, &c)| (s.name().to_string(), c as f64 / pk as f64))
                    .collect()
            }),
            monitor_ab: on_off(all, |c| (&c.ab_busy_cycles, &c.ab_packets)).map(|(on, off)| {
                MonitorAb {
                    recording_cycles_per_packet: on,
                    not_recording_cycles_per_packet: off,
                    ratio: on / off,
                }
            }),
            qos: QosClass::ALL
                .iter()
                .map(|&q| (q.name().to_string(), ClassSnapshot::sum(all, q)))
                .filter(|(_, c)| *c != ClassSnapshot::default())
                .collect(),
            qos_ab: on_off(all, |c| (&c.qos_ab_busy_cycles, &c.qos_ab_packets)).map(|(on, off)| {
                QosAb {
                    shaping_cycles_per_packet: on,
                    not_shaping_cycles_per_packet: off,
                    ratio: on / off,
                }
            }),
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

/// The cycles per packet of the on ([1]) and off ([0]) halves of an A/B, when both ran.
type AbCounters<'a> = (&'a [Counter; 2], &'a [Counter; 2]);

fn on_off(
    all: &[SwitchCounters],
    f: impl Fn(&SwitchCounters) -> AbCounters<'_>,
) -> Option<(f64, f64)> {
    let cpp = |i: usize| {
        let p: u64 = all.iter().map(|c| f(c).1[i].get()).sum();
        let b: u64 = all.iter().map(|c| f(c).0[i].get()).sum();
        (p > 0).then(|| b as f64 / p as f64)
    };
    Some((cpp(1)?, cpp(0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_cause_is_counted_under_its_own_name() {
        let c = SwitchCounters::default();
        for (k, &cause) in DropCause::ALL.iter().enumerate() {
            assert_eq!(cause as usize, k, "ALL is in declaration order");
            c.drop(cause, k as u64 + 1);
        }
        let s = c.snapshot();
        assert_eq!(s.drops.len(), DROP_CAUSE_COUNT);
        assert_eq!(s.drops["NoRule"], 1);
        assert_eq!(s.drops["PortGone"], 11);
        assert_eq!(s.drops["BestEffortVmCap"], DROP_CAUSE_COUNT as u64);
        assert_eq!(
            s.workers[0].drops,
            (1..=DROP_CAUSE_COUNT as u64).sum::<u64>()
        );
        assert!(DropCause::HopLimit.description().contains("HOP_LIMIT"));
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["rx", "record", "forward", "tx"]);
        assert!(s.qos.is_empty(), "nothing shaped: no QoS counters shown");
        c.qos[QosClass::BestEffort as usize].dropped_packets.add(3);
        let s = c.snapshot();
        assert_eq!(s.qos.len(), 1);
        assert_eq!(s.qos["best_effort"].dropped_packets, 3);
        assert!(QosClass::Reserved.description().contains("reservation"));
    }
}
