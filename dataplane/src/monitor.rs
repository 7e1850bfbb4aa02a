//! The free measurement path on a worker: for every packet of a burst, a 64-byte
//! record (parsed headers, the burst's rx TSC stamp, direction, port), streamed in one
//! batch onto the worker's SPSC ring (see `stream`), published once per loop. A full ring drops records and counts them; the
//! packets themselves are never delayed or dropped for measurement.

use analysis::record::{record_words, Direction, Record, RecordWords};
use analysis::ring::RecordProducer;

use crate::mbuf::Burst;
use crate::stream::StreamedRing;

/// `record_words` through the vector path where the build has it (`record_sse`).
#[inline(always)]
fn record_words_fastest(
    frame: &[u8],
    tsc: u64,
    direction: Direction,
    port: u8,
) -> Option<RecordWords> {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "ssse3",
        target_feature = "sse4.1"
    ))]
    if let Some(words) = crate::record_sse::record_words(frame, tsc, direction, port) {
        return Some(words);
    }
    record_words(frame, tsc, direction, port)
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

    /// Records every packet of `burst`, stamped `tsc`, streamed straight into the ring.
    #[inline]
    pub fn record_burst(&mut self, burst: &Burst<'_>, tsc: u64, direction: Direction, port: u8) {
        burst.prefetch_data();
        self.ring.stage(burst.len(), |i| {
            let frame = burst.data(i);
            record_words_fastest(frame, tsc, direction, port).unwrap_or_else(|| {
                Record::from_frame_dissected(frame, tsc, direction, port).to_words()
            })
        });
        if self.publish_each_burst {
            self.ring.publish();
        }
    }
}
