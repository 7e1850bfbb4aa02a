//! The main lcore's loop, the same in both modes: it drains the workers' record rings
//! into the engines, tells the engines the time in the records' own time base (the
//! TSC) so that their windows close while traffic is idle, prints stats on a timer,
//! serves the mode's requests (the switch's API), and ends the run on the quit flag or
//! after `--duration`. Every time in it is a TSC reading, the clock the records carry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use analysis::engine::AnalysisLoop;
use analysis::ring::RingCounters;

use super::summary::MonitorSummary;

/// What ends a run: the quit flag (signals) or its duration in seconds.
#[derive(Clone, Copy)]
pub struct Ends<'a> {
    pub quit: &'a AtomicBool,
    pub duration: Option<f64>,
}

/// The records' way from the workers' rings to the engines, which the main lcore runs.
pub struct Monitoring {
    pub analysis: AnalysisLoop,
    /// Each worker's ring counters (none with monitoring off).
    pub rings: Vec<Arc<RingCounters>>,
    pub enabled: bool,
    /// A deliberately slow consumer (tests): the main lcore sleeps this long before
    /// each poll.
    pub consumer_delay: Duration,
    /// Fault injection (tests): once, this long after start, the main lcore stops
    /// draining the rings for the second duration.
    pub stall: Option<(Duration, Duration)>,
    /// A poll that drained fewer records than this is followed by a short rest.
    pub rest_below: usize,
    /// The longest pass of the main loop so far (ms): while a pass lasts the rings are
    /// not drained and the API waits, so anything slow belongs off this thread.
    pub longest_pass_ms: f64,
}

impl Monitoring {
    pub fn summary(&self) -> MonitorSummary {
        MonitorSummary {
            records_pushed: self.rings.iter().map(|r| r.pushed()).sum(),
            records_dropped_ring_full: self.rings.iter().map(|r| r.dropped()).sum(),
            records_analysed: self.analysis.drained(),
            records_late: self.analysis.late_records(),
        }
    }

    #[cold]
    fn print(&self) {
        let m = self.summary();
        println!(
            "monitor: {} records pushed, {} dropped (ring full), {} analysed",
            m.records_pushed, m.records_dropped_ring_full, m.records_analysed
        );
    }
}

/// After an empty poll with monitoring on, the main lcore naps this long: traffic that
/// resumes after a pause fills a ring in a few milliseconds.
const NAP_MONITORING: Duration = Duration::from_micros(200);
/// After an empty poll with monitoring off: only the stats timer, requests and the
/// quit flag wait.
const NAP_IDLE: Duration = Duration::from_millis(10);
/// A pass that takes longer than this is logged (with monitoring on, a ring fills in
/// milliseconds at line rate).
const LONG_PASS_MS: f64 = 250.0;
/// After a poll that drained a little, the main lcore waits this long so the rings
/// fill in batches. Polling back to back would pull each ring's tail line over from its
/// worker after every burst (a cross-core transfer per burst on the worker).
const BATCH_WAIT_US: u64 = 50;

/// The main lcore's loop (see the module doc).
pub struct MainLoop<'a> {
    ends: Ends<'a>,
    monitoring: &'a mut Monitoring,
    /// TSC ticks per second (the records' time base).
    hz: u64,
    started: u64,
    deadline: Option<u64>,
    stats_every: u64,
    next_stats: u64,
}

impl<'a> MainLoop<'a> {
    /// A loop that starts at TSC time `now` and prints stats every `stats_interval_ms`.
    pub fn new(
        ends: Ends<'a>,
        monitoring: &'a mut Monitoring,
        stats_interval_ms: u64,
        now: u64,
    ) -> Self {
        let hz = monitoring.analysis.timebase().hz;
        let stats_every = stats_interval_ms.saturating_mul(hz) / 1000;
        Self {
            deadline: ends.duration.map(|s| now + (s * hz as f64) as u64),
            ends,
            monitoring,
            hz,
            started: now,
            stats_every,
            next_stats: now + stats_every,
        }
    }

    /// Runs until the quit flag or the deadline, then raises the quit flag for the
    /// workers. `print_stats(label)` prints the mode's counters; `serve` answers the
    /// mode's pending requests after each poll.
    pub fn run(&mut self, mut print_stats: impl FnMut(&str), mut serve: impl FnMut(&AnalysisLoop)) {
        if self.monitoring.enabled {
            // The naps after an empty poll must end on time (see NAP_MONITORING).
            dataplane::lcore::shorten_timer_slack(
                "analysis loop",
                "records may overflow the rings after idle pauses",
            );
        }
        while let Some(drained) = self.step(dataplane::tsc::now(), &mut print_stats, &mut serve) {
            self.rest(drained);
        }
        self.ends.quit.store(true, Ordering::Relaxed);
    }

    /// The injected stall (`monitor.stall_at_s`), when its time has come.
    #[cold]
    fn stall_if_due(&mut self, now: u64) {
        let Some((at, length)) = self.monitoring.stall else {
            return;
        };
        let since =
            Duration::from_secs_f64(now.saturating_sub(self.started) as f64 / self.hz as f64);
        if since >= at {
            log::warn!("fault injection: the analysis stops draining the rings for {length:?}");
            std::thread::sleep(length);
            self.monitoring.stall = None;
        }
    }

    /// One pass at TSC time `now`: `None` when the run is over, else how many records
    /// it drained.
    fn step(
        &mut self,
        now: u64,
        print_stats: &mut impl FnMut(&str),
        serve: &mut impl FnMut(&AnalysisLoop),
    ) -> Option<usize> {
        if self.ends.quit.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d) {
            return None;
        }
        if !self.monitoring.consumer_delay.is_zero() {
            std::thread::sleep(self.monitoring.consumer_delay);
        }
        self.stall_if_due(now);
        let drained = self.monitoring.analysis.poll();
        serve(&self.monitoring.analysis);
        if now >= self.next_stats {
            print_stats("periodic");
            self.report(now);
            self.next_stats += self.stats_every;
            if self.next_stats <= now {
                // Held up past a whole interval: one print, the next an interval on.
                self.next_stats = now + self.stats_every;
            }
        }
        self.timed(now);
        Some(drained)
    }

    /// Keeps the longest pass, from its start at `started`; says so when one is long.
    fn timed(&mut self, started: u64) {
        let ms = dataplane::tsc::now().saturating_sub(started) as f64 * 1e3 / self.hz as f64;
        if ms > self.monitoring.longest_pass_ms {
            self.monitoring.longest_pass_ms = ms;
        }
        if ms > LONG_PASS_MS {
            long_pass(ms);
        }
    }

    /// Tells the engines the time and prints the monitoring counters and their reports.
    #[cold]
    fn report(&mut self, now: u64) {
        if self.monitoring.enabled {
            self.monitoring.print();
        }
        let a = &mut self.monitoring.analysis;
        a.tick(a.timebase().to_ns(now));
        for r in a.reports() {
            println!("{r}");
        }
    }

    /// Waits before the next poll: a nap after an empty one, a short spin after one
    /// that drained a little (a sleep would overshoot by up to milliseconds here, and a
    /// ring then overflows at 8 Mpps).
    fn rest(&self, drained: usize) {
        if drained == 0 {
            let nap = if self.monitoring.enabled {
                NAP_MONITORING
            } else {
                NAP_IDLE
            };
            std::thread::sleep(nap);
        } else if drained < self.monitoring.rest_below {
            let until = dataplane::tsc::now() + self.hz * BATCH_WAIT_US / 1_000_000;
            while dataplane::tsc::now() < until {
                std::hint::spin_loop();
            }
        }
    }

    /// After the workers stopped: analyses what is left in the rings, prints the final
    /// stats and reports, and returns how long the run lasted in seconds.
    #[cold]
    pub fn finish(&mut self, mut print_stats: impl FnMut(&str)) -> f64 {
        self.monitoring.analysis.finish();
        let now = dataplane::tsc::now();
        print_stats("final");
        self.report(now);
        now.saturating_sub(self.started) as f64 / self.hz.max(1) as f64
    }
}

#[cold]
fn long_pass(ms: f64) {
    log::warn!(
        "the main loop's pass took {ms:.0} ms: the record rings were not drained and the \
         API did not answer meanwhile"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use analysis::pcap::{frame_record, HostTable};
    use analysis::record::Timebase;
    use analysis::ring::record_ring;
    use analysis::vttif::{Config, Vttif};
    use analysis::wire::sample_frames::sample_frame;

    const MS: u64 = 1_000_000;
    /// A TSC reading hours after boot, as the records' times are: far from zero.
    const T0: u64 = 5_000_000 * MS;

    /// A monitoring with VTTIF only (100 ms windows, reported after 2) on a ring that
    /// holds 8 records of one VM's TCP frames to another, all at `T0`; times in ns.
    fn vttif_with_records() -> Monitoring {
        let (mut ring, consumer) = record_ring(1024);
        let vttif = Vttif::new(Config {
            window_ns: 100 * MS,
            persist_windows: 2,
            ..Default::default()
        });
        let frame = sample_frame(false, 100);
        let mut hosts = HostTable::default();
        let records: Vec<_> = (0..8)
            .map(|i| frame_record(&frame, frame.len(), T0 + i, &mut hosts))
            .collect();
        assert_eq!(ring.push_batch(&records), 8);
        Monitoring {
            analysis: AnalysisLoop::new(vec![consumer], vec![Box::new(vttif)], Timebase::NANOS),
            rings: vec![ring.counters()],
            enabled: true,
            consumer_delay: Duration::ZERO,
            stall: None,
            rest_below: 1,
            longest_pass_ms: 0.0,
        }
    }

    #[test]
    fn windows_close_and_a_topology_is_reported_while_no_records_arrive() {
        let quit = AtomicBool::new(false);
        let ends = Ends {
            quit: &quit,
            duration: None,
        };
        let mut monitoring = vttif_with_records();
        let mut main = MainLoop::new(ends, &mut monitoring, 50, T0);
        let (mut printed, mut served) = (Vec::new(), 0);
        let mut print = |label: &str| printed.push(label.to_string());
        let mut serve = |_: &AnalysisLoop| served += 1;
        assert_eq!(main.step(T0, &mut print, &mut serve), Some(8));
        for k in 1..=5 {
            let now = T0 + k * 100 * MS;
            assert_eq!(main.step(now, &mut print, &mut serve), Some(0));
        }
        let v = main.monitoring.analysis.view("vttif").unwrap();
        assert_eq!(v["windows"], 5, "{v}");
        let changes = v["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{v}");
        assert_eq!(changes[0]["edges"], 1, "{v}");
        quit.store(true, Ordering::Relaxed);
        assert_eq!(main.step(T0 + 600 * MS, &mut print, &mut serve), None);
        assert_eq!(printed, vec!["periodic"; 5]);
        assert_eq!(served, 6);
    }

    #[test]
    fn the_run_ends_at_its_duration() {
        let quit = AtomicBool::new(false);
        let ends = Ends {
            quit: &quit,
            duration: Some(0.25),
        };
        let mut monitoring = vttif_with_records();
        let mut main = MainLoop::new(ends, &mut monitoring, 1000, T0);
        let mut print = |_: &str| {};
        let mut serve = |_: &AnalysisLoop| {};
        assert_eq!(main.step(T0 + 249 * MS, &mut print, &mut serve), Some(8));
        assert_eq!(main.step(T0 + 250 * MS, &mut print, &mut serve), None);
    }
}
