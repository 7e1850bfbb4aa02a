//! `wrenvnet run` in mode "xconnect": every packet from port 0 goes out of port 1 and
//! the reverse (testpmd's io mode), worker w on queue w of both ports; the baseline the
//! switch is measured against.

use std::sync::atomic::AtomicBool;

use analysis::record::Direction;
use anyhow::Result;
use dataplane::lcore::LcoreJob;
use dataplane::monitor::Monitor;
use dataplane::xconnect::{self, IdleBackoff, Leg, LegCounters, WorkerCounters};
use dataplane::{Eal, LcoreId, Port, PortId};

use super::main_loop::{Ends, MainLoop, Monitoring};
use super::summary::{ModeSummary, Outcome, PortSummary, XconnectSummary};
use crate::daemon::config::Config;

pub fn run(
    eal: &Eal,
    mut ports: Vec<Port<'_>>,
    config: &Config,
    monitors: Vec<Option<Monitor>>,
    monitoring: &mut Monitoring,
    ends: Ends<'_>,
) -> Result<Outcome> {
    let d = &config.dataplane;
    let workers = d.workers as usize;
    let port_ids: Vec<PortId> = ports.iter().map(|p| p.id()).collect();
    let names: Vec<String> = config.ports.iter().map(|p| p.name.clone()).collect();
    let counters: Vec<WorkerCounters> = (0..workers).map(|_| WorkerCounters::default()).collect();
    let legs_counters: Vec<[LegCounters; 2]> = (0..workers).map(|_| Default::default()).collect();
    let lcores = eal.worker_lcores();
    let print = |label: &str| print_stats(label, &port_ids, &names, &counters);
    let mut main = MainLoop::new(ends, monitoring, d.stats_interval_ms, dataplane::tsc::now());
    {
        let jobs = worker_jobs(
            &mut ports,
            &lcores,
            config,
            &counters,
            &legs_counters,
            ends.quit,
            monitors,
        );
        log::info!("xconnect: {workers} worker(s) on {:?}", &lcores[..workers]);
        eal.run_on_lcores(jobs, || main.run(print, |_| {}))?;
    }
    let elapsed_s = main.finish(print);
    let port_summaries = port_ids
        .iter()
        .zip(&names)
        .map(|(&id, name)| PortSummary::read(name, id))
        .collect();
    drop(ports); // stop + close: rx rings give their mbufs back
    Ok(Outcome {
        ports: port_summaries,
        mode: ModeSummary::Xconnect(summary(&counters, &legs_counters)),
        elapsed_s,
    })
}

/// Worker w forwards queue w of port 0 to queue w of port 1 and the reverse.
fn worker_jobs<'j>(
    ports: &'j mut [Port<'_>],
    lcores: &[LcoreId],
    config: &Config,
    counters: &'j [WorkerCounters],
    legs_counters: &'j [[LegCounters; 2]],
    quit: &'j AtomicBool,
    mut monitors: Vec<Option<Monitor>>,
) -> Vec<(LcoreId, LcoreJob<'j>)> {
    let d = &config.dataplane;
    let idle = IdleBackoff {
        empty_polls_before_sleep: d.idle_polls,
        sleep_us: d.idle_sleep_us,
    };
    let (a, b) = ports.split_at_mut(1);
    let (mut a_rx, mut a_tx) = a[0].queues();
    let (mut b_rx, mut b_tx) = b[0].queues();
    let mut jobs: Vec<(LcoreId, LcoreJob<'j>)> = Vec::new();
    for w in (0..counters.len()).rev() {
        let mut legs = vec![
            Leg {
                rx: a_rx.remove(w),
                tx: b_tx.remove(w),
                counters: &legs_counters[w][0],
                direction: Direction::ToNic,
            },
            Leg {
                rx: b_rx.remove(w),
                tx: a_tx.remove(w),
                counters: &legs_counters[w][1],
                direction: Direction::FromNic,
            },
        ];
        let counters = &counters[w];
        let burst = d.burst;
        let mut monitor = monitors.pop().flatten();
        jobs.push((
            lcores[w],
            Box::new(move || {
                xconnect::run(&mut legs, counters, quit, idle, burst, monitor.as_mut())
            }),
        ));
    }
    jobs
}

fn summary(workers: &[WorkerCounters], legs: &[[LegCounters; 2]]) -> XconnectSummary {
    let snaps: Vec<_> = workers.iter().map(|w| w.snapshot()).collect();
    let busy: u64 = snaps.iter().map(|s| s.busy_cycles).sum();
    let packets: u64 = snaps.iter().map(|s| s.packets).sum();
    XconnectSummary {
        workers: snaps,
        cycles_per_packet: (packets > 0).then(|| busy as f64 / packets as f64),
        tx_full_drops: legs.iter().flatten().map(|l| l.tx_full_drops.get()).sum(),
    }
}

#[cold]
fn print_stats(label: &str, ports: &[PortId], names: &[String], workers: &[WorkerCounters]) {
    println!("--- stats ({label}) ---");
    println!(
        "{:<10} {:>12} {:>12} {:>14} {:>14} {:>10} {:>10} {:>10}",
        "port", "rx_pkts", "tx_pkts", "rx_bytes", "tx_bytes", "rx_missed", "rx_nombuf", "tx_errors"
    );
    for (id, name) in ports.iter().zip(names) {
        match id.stats() {
            Ok(s) => println!(
                "{:<10} {:>12} {:>12} {:>14} {:>14} {:>10} {:>10} {:>10}",
                name,
                s.rx_packets,
                s.tx_packets,
                s.rx_bytes,
                s.tx_bytes,
                s.rx_missed,
                s.rx_nombuf,
                s.tx_errors
            ),
            Err(e) => println!("{name:<10} stats unavailable: {e}"),
        }
    }
    for (i, w) in workers.iter().enumerate() {
        let s = w.snapshot();
        let cpp = s
            .cycles_per_packet()
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "worker {i}: packets {} cycles/packet {} polls {} empty {}",
            s.packets, cpp, s.polls, s.empty_polls
        );
    }
}
