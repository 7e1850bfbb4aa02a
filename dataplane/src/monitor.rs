//! The free measurement path on a worker: for every packet of a burst, a 64-byte
//! record (parsed headers, the burst's TSC stamp, direction, port; the switch stamps
//! every burst of a loop iteration with the TSC it read at the iteration's start),
//! streamed in one batch onto the worker's SPSC ring (see `stream`),
//! published once per loop. A full ring drops records and counts them; the packets
//! themselves are never delayed or dropped for measurement.

use analysis::record::{record_words, Direction, Record, RecordWords, FLAG_VXLAN};
use analysis::ring::RecordProducer;

use crate::mbuf::Burst;
use crate::stream::StreamedRing;

/// The record of `frame` through the vector path where the build has it
/// (`record_sse`), and whether that path found it a whole VXLAN datagram.
#[inline(always)]
fn record_words_fastest(
    frame: &[u8],
    tsc: u64,
    direction: Direction,
    port: u8,
) -> Option<(RecordWords, bool)> {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "ssse3",
        target_feature = "sse4.1"
    ))]
    if let Some(fast) = crate::record_sse::record_words(frame, tsc, direction, port) {
        return Some(fast);
    }
    Some((record_words(frame, tsc, direction, port)?, false))
}

const _: () = assert!(crate::mbuf::MAX_BURST <= u64::BITS as usize);

/// Which frames of a burst the record stage found to be whole VXLAN datagrams (bit `i`
/// for frame `i`), so that the switch does not check their outer headers a second time
/// (`switch::overlay::classify_whole_vxlan`). Empty when nothing was recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeVxlan(u64);

impl WholeVxlan {
    #[inline]
    pub fn contains(self, i: usize) -> bool {
        i < u64::BITS as usize && (self.0 >> i) & 1 != 0
    }
}

/// A worker's measurement state.
pub struct Monitor {
    ring: StreamedRing,
    /// Publish right after each burst instead of at the next loop (the default, see
    /// `monitor.publish_per_loop`). A worker preempted between its record stage and the
    /// next loop would hold that burst's records back for the other thread's time
    /// slice (milliseconds: late for the analysis core's time-order merge); one on an
    /// isolated core is never preempted, and saves the store stall (see `stream`).
    publish_each_burst: bool,
}

impl Monitor {
    pub fn new(ring: RecordProducer) -> Self {
        Self {
            ring: StreamedRing::new(ring),
            publish_each_burst: false,
        }
    }

    /// For a worker that shares its CPU with another lcore (`Eal::shares_cpu`).
    pub fn publish_each_burst(mut self, on: bool) -> Self {
        self.publish_each_burst = on;
        self
    }

    /// Makes the records of earlier bursts visible to the analysis core: once per loop,
    /// at its top (see `stream` for why not right after each burst).
    #[inline]
    pub fn publish(&mut self) {
        self.ring.publish();
    }

    /// Records every packet of `burst`, stamped `tsc`, streamed straight into the ring;
    /// returns which of them it found to be whole VXLAN datagrams (none of those it had
    /// no room to record).
    #[inline]
    pub fn record_burst(
        &mut self,
        burst: &Burst<'_>,
        tsc: u64,
        direction: Direction,
        port: u8,
    ) -> WholeVxlan {
        burst.prefetch_data();
        let mut whole_vxlan = 0u64;
        self.ring.stage(burst.len(), |i| {
            let frame = burst.data(i);
            match record_words_fastest(frame, tsc, direction, port) {
                // A VM's frame read as VXLAN is the guest's own VXLAN: recorded as it
                // is, not decapsulated (`Record::from_frame`).
                Some((words, vxlan))
                    if direction != Direction::ToNic
                        || Record::from_words(words).flags & FLAG_VXLAN == 0 =>
                {
                    whole_vxlan |= (vxlan as u64) << i;
                    words
                }
                _ => Record::from_frame_dissected(frame, tsc, direction, port).to_words(),
            }
        });
        if self.publish_each_burst {
            self.ring.publish();
        }
        WholeVxlan(whole_vxlan)
    }
}
