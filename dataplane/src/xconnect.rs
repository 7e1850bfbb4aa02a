//! Cross-connect: every packet received on one port is sent out of the other, untouched.
//! This is the io mode of the switch (testpmd's `--forward-mode=io`), kept as the
//! baseline the benchmarks compare everything against.
//!
//! One loop you can read at a glance, as DPDK's l2fwd: the TSC read at each rx and tx
//! burst, a quit flag, counters with one writer each, and the stats printed elsewhere on a timer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use analysis::record::Direction;

use crate::counters::Counter;
use crate::mbuf::Burst;
use crate::monitor::Monitor;
use crate::port::{RxQueue, TxQueue};
use crate::tsc;

/// Counters of one direction (rx port → tx port) of one worker.
#[derive(Debug, Default)]
pub struct LegCounters {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    /// Packets the tx queue had no room for (freed, never leaked).
    pub tx_full_drops: Counter,
}

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// TSC cycles from each rx burst that brought packets to the end of their tx burst
    /// (testpmd's `--record-core-cycles` counts the same way per stream, so the two
    /// compare directly; the loop's own overhead is in neither).
    pub busy_cycles: Counter,
    pub packets: Counter,
    pub polls: Counter,
    pub empty_polls: Counter,
}

/// A snapshot of `WorkerCounters`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WorkerSnapshot {
    pub busy_cycles: u64,
    pub packets: u64,
    pub polls: u64,
    pub empty_polls: u64,
}

impl WorkerCounters {
    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            busy_cycles: self.busy_cycles.get(),
            packets: self.packets.get(),
            polls: self.polls.get(),
            empty_polls: self.empty_polls.get(),
        }
    }
}

impl WorkerSnapshot {
    /// Busy TSC cycles per forwarded packet, or `None` before any packet.
    pub fn cycles_per_packet(&self) -> Option<f64> {
        (self.packets > 0).then(|| self.busy_cycles as f64 / self.packets as f64)
    }
}

/// What a worker does when its queues are empty. Off (pure busy polling) suits
/// isolated cores; on a shared machine a short sleep after a run of empty polls lets
/// several daemons share the CPUs. Sleeping happens only when no packet is waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleBackoff {
    /// Consecutive empty polls before sleeping.
    pub empty_polls_before_sleep: u32,
    /// Sleep length in microseconds; 0 disables the back-off.
    pub sleep_us: u32,
}

impl IdleBackoff {
    /// Readies the calling worker thread to back off: its sleeps end when asked (every
    /// packet that finds the worker asleep waits for the sleep to end).
    #[cold]
    pub fn prepare_thread(&self) {
        if self.sleep_us > 0 {
            crate::lcore::shorten_timer_slack("worker", "idle sleeps may overrun");
        }
    }

    /// After a poll: counts a run of empty polls (`moved == 0`) and sleeps once the run
    /// is long enough. Never sleeps when packets moved.
    #[inline]
    pub fn after_poll(&self, moved: usize, empty_run: &mut u32) {
        if moved > 0 {
            *empty_run = 0;
            return;
        }
        *empty_run = empty_run.saturating_add(1);
        if self.sleep_us > 0 && *empty_run >= self.empty_polls_before_sleep {
            std::thread::sleep(Duration::from_micros(self.sleep_us as u64));
        }
    }
}

/// One direction of the cross-connect.
pub struct Leg<'p, 'c> {
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
    pub counters: &'c LegCounters,
    /// How packets of this leg cross the host (port 0 faces the VMs, port 1 the NIC).
    pub direction: Direction,
}

/// Packets per rx burst unless configured otherwise (DPDK's customary 32).
pub const DEFAULT_BURST: usize = 32;

/// Runs the cross-connect on this lcore until `quit` is set, receiving at most
/// `burst` packets per rx call.
pub fn run(
    legs: &mut [Leg<'_, '_>],
    worker: &WorkerCounters,
    quit: &AtomicBool,
    idle: IdleBackoff,
    burst_size: usize,
    mut monitor: Option<&mut Monitor>,
) {
    let burst_size = burst_size.clamp(1, crate::mbuf::MAX_BURST);
    let mut burst = Burst::new();
    let mut empty_run: u32 = 0;
    idle.prepare_thread();
    while !quit.load(Ordering::Relaxed) {
        if let Some(m) = monitor.as_deref_mut() {
            m.publish();
        }
        let mut moved = 0usize;
        let mut busy = 0u64;
        for leg in legs.iter_mut() {
            // The TSC at rx and at tx: the stamps the measurement path will use.
            let rx_tsc = tsc::now();
            let n = leg.rx.rx_up_to(&mut burst, burst_size);
            if n == 0 {
                continue;
            }
            if let Some(m) = monitor.as_deref_mut() {
                m.record_burst(&burst, rx_tsc, leg.direction, leg.rx.port().0 as u8);
            }
            let out = leg.tx.send(&mut burst);
            busy += tsc::now() - rx_tsc;
            leg.counters.rx_packets.add(n as u64);
            leg.counters.tx_packets.add(out.sent as u64);
            if out.dropped > 0 {
                leg.counters.tx_full_drops.add(out.dropped as u64);
            }
            moved += n;
        }
        worker.polls.add(1);
        if moved > 0 {
            worker.busy_cycles.add(busy);
            worker.packets.add(moved as u64);
        } else {
            worker.empty_polls.add(1);
        }
        idle.after_poll(moved, &mut empty_run);
    }
    if let Some(m) = monitor {
        m.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_timer_slack_ns() -> i32 {
        // SAFETY: PR_GET_TIMERSLACK reads the calling thread's slack; no pointers.
        unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) }
    }

    #[test]
    fn a_worker_that_backs_off_sleeps_no_longer_than_asked_and_a_busy_one_is_left_alone() {
        std::thread::spawn(|| {
            let before = own_timer_slack_ns();
            IdleBackoff::default().prepare_thread();
            assert_eq!(
                own_timer_slack_ns(),
                before,
                "no back-off: nothing to change"
            );
            IdleBackoff {
                empty_polls_before_sleep: 4,
                sleep_us: 20,
            }
            .prepare_thread();
            assert_eq!(
                own_timer_slack_ns() as u64,
                crate::lcore::SHORT_TIMER_SLACK_NS
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn only_a_run_of_empty_polls_counts_towards_sleeping() {
        let idle = IdleBackoff {
            empty_polls_before_sleep: 3,
            sleep_us: 1,
        };
        let mut run = 0;
        idle.after_poll(0, &mut run);
        idle.after_poll(0, &mut run);
        assert_eq!(run, 2);
        idle.after_poll(5, &mut run);
        assert_eq!(run, 0, "a packet ends the run");
        for _ in 0..5 {
            idle.after_poll(0, &mut run);
        }
        assert_eq!(run, 5);
    }
}
