//! The switch loop's optional instruments, for benchmarks: per-stage clocks
//! (`dataplane.stage_clocks`) and monitoring's on/off A/B within one run
//! (`monitor.alternate_ms`). Off, each costs the loop one well-predicted branch and no
//! TSC read: the loop's own TSC read, once per iteration, serves both.

use super::counters::{Stage, SwitchCounters, STAGE_COUNT};
use crate::tsc;

/// One worker's instruments.
pub(super) struct Instruments {
    /// Clock the stages: one TSC read per lap.
    stage_clocks: bool,
    /// The TSC at the last lap (or the iteration's start).
    last: u64,
    /// This iteration's cycles per stage, added to the counters when it moved packets
    /// (so that idle polling is in no stage, as it is in no busy cycle).
    spent: [u64; STAGE_COUNT],
    /// Alternate recording and not every `period` cycles; 0 = record always.
    period: u64,
    next_flip: u64,
    recording: bool,
    /// What alternates is shaping, not recording: charge `counters.qos_ab_*`.
    qos: bool,
}

impl Instruments {
    pub fn new(stage_clocks: bool, alternate_tsc: u64, alternate_qos: bool, now: u64) -> Self {
        Self {
            stage_clocks,
            last: now,
            spent: [0; STAGE_COUNT],
            period: alternate_tsc,
            next_flip: match alternate_tsc {
                0 => u64::MAX,
                period => now.saturating_add(period),
            },
            recording: true,
            qos: alternate_qos,
        }
    }

    /// Starts an iteration at `now`: whether it is in the half that records (or
    /// shapes): always, unless alternating.
    #[inline(always)]
    pub fn begin(&mut self, now: u64) -> bool {
        if now >= self.next_flip {
            self.flip(now);
        }
        self.last = now;
        self.recording
    }

    #[cold]
    fn flip(&mut self, now: u64) {
        self.recording = !self.recording;
        self.next_flip = now.saturating_add(self.period);
    }

    /// Charges the time since the last lap to `stage`.
    #[inline(always)]
    pub fn lap(&mut self, stage: Stage) {
        if self.stage_clocks {
            let t = tsc::now();
            self.spent[stage as usize] += t.saturating_sub(self.last);
            self.last = t;
        }
    }

    /// Ends an iteration: its stages count if it moved packets.
    #[inline(always)]
    pub fn end(&mut self, counters: &SwitchCounters, moved: bool) {
        if self.stage_clocks {
            if moved {
                for (c, &v) in counters.stages.iter().zip(&self.spent) {
                    c.add(v);
                }
            }
            self.spent = [0; STAGE_COUNT];
        }
    }

    /// Charges an iteration's busy cycles and packets to the half it was in (`on`:
    /// recorded, or shaped), when alternating.
    #[inline(always)]
    pub fn charge(&self, counters: &SwitchCounters, busy: u64, packets: u64, on: bool) {
        if self.period > 0 {
            let half = on as usize;
            let (cycles, pk) = match self.qos {
                false => (&counters.ab_busy_cycles, &counters.ab_packets),
                true => (&counters.qos_ab_busy_cycles, &counters.qos_ab_packets),
            };
            cycles[half].add(busy);
            pk[half].add(packets);
        }
    }
}
