//! `wrenvnet run`: bring the EAL, the pool and the ports up, run the workers on their
//! lcores, print stats on a timer from the main lcore, and shut down cleanly on
//! SIGINT/SIGTERM with every mbuf back in its pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analysis::engine::{AnalysisLoop, Engine, FlowTable};
use analysis::record::{Direction, Timebase};
use analysis::ring::{record_ring, RingCounters};
use anyhow::{bail, Context, Result};
use dataplane::lcore::LcoreJob;
use dataplane::monitor::Monitor;
use dataplane::xconnect::{self, IdleBackoff, Leg, LegCounters, WorkerCounters, WorkerSnapshot};
use dataplane::{Eal, EalArgs, Mempool, Port, PortConfig, PortId, PortStats};
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// TOML config file (see config/xconnect.example.toml).
    #[arg(short, long)]
    config: PathBuf,
    /// Stop after this many seconds (benchmarks, tests); default: run until SIGINT/SIGTERM.
    #[arg(long)]
    duration: Option<f64>,
    /// Write the final statistics as JSON to this file at exit.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// EAL arguments, after `--` (e.g. `-- -l 0-1 --file-prefix wv0 --vdev net_null0`).
    #[arg(last = true)]
    eal_args: Vec<String>,
}

/// What `run` reports at exit.
#[derive(Debug, Serialize)]
struct Summary {
    ports: Vec<PortSummary>,
    workers: Vec<WorkerSnapshot>,
    cycles_per_packet: Option<f64>,
    tsc_hz: u64,
    tx_full_drops: u64,
    monitor: Option<MonitorSummary>,
    mbufs_total: u32,
    mbufs_in_use_at_exit: u32,
    elapsed_s: f64,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
struct MonitorSummary {
    records_pushed: u64,
    records_dropped_ring_full: u64,
    records_analysed: u64,
    /// Several workers: records that reached the time-order merge after newer ones had
    /// been handed to the engines (see `AnalysisLoop::with_merge`).
    records_late: u64,
}

#[derive(Debug, Serialize)]
struct PortSummary {
    name: String,
    port_id: PortId,
    stats: PortStats,
}

pub fn run(args: RunArgs) -> Result<()> {
    let config = Config::load(&args.config)?;

    // Signals first: the flag is the workers' quit flag.
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&quit))
            .with_context(|| format!("cannot install handler for signal {sig}"))?;
    }

    let e = &config.eal;
    let mut eal_args = EalArgs::new("wrenvnet")
        .in_memory(e.in_memory)
        .no_huge(e.no_huge)
        .passthrough(args.eal_args.iter().cloned());
    if let Some(l) = &e.lcores {
        eal_args = eal_args.lcores(l.clone());
    }
    if let Some(p) = &e.file_prefix {
        eal_args = eal_args.file_prefix(p.clone());
    }
    if let Some(m) = e.memory_mb {
        eal_args = eal_args.memory_mb(m);
    }
    if let Some(l) = &e.log_level {
        eal_args = eal_args.log_level(l.clone());
    }
    for a in &e.pci {
        eal_args = eal_args.pci(a.clone());
    }
    let eal = Eal::init(&eal_args).context("cannot start the DPDK EAL")?;
    log::info!(
        "DPDK {} (built against {})",
        eal.runtime_version(),
        dataplane::dpdk_build_version()
    );
    if !dataplane::tsc::cpu_has_invariant_tsc() {
        log::warn!("CPU lacks constant_tsc/nonstop_tsc: cycle counts and record times may not track wall time");
    }
    check_tsc_rate();

    let d = &config.dataplane;
    let lcores = eal.worker_lcores();
    if lcores.len() < d.workers as usize {
        bail!(
            "{} worker(s) configured but the EAL has {} worker lcore(s); give more with `-- -l` \
             (the first lcore is the main/control lcore)",
            d.workers,
            lcores.len()
        );
    }

    let pool = Mempool::create(
        &eal,
        "wrenvnet_pool",
        config.mempool.mbufs,
        config.mempool.cache,
        None,
    )
    .context("cannot create the mbuf pool (are hugepages reserved? see scripts/setup.sh)")?;
    let port_cfg = d.port_config();
    let mut ports = Vec::new();
    for p in &config.ports {
        let cfg = PortConfig {
            mtu: p.mtu,
            promiscuous: p.promiscuous,
            ..port_cfg.clone()
        };
        let port = Port::open(&eal, &p.devargs, &pool, &cfg)
            .with_context(|| format!("cannot open port {:?}", p.name))?;
        log::info!(
            "port {:?}: id {} mac {} devargs {}",
            p.name,
            port.id().0,
            port.mac().map(|m| m.to_string()).unwrap_or_default(),
            p.devargs
        );
        ports.push(port);
    }
    let port_ids: Vec<PortId> = ports.iter().map(|p| p.id()).collect();
    let names: Vec<String> = config.ports.iter().map(|p| p.name.clone()).collect();

    let workers: Vec<WorkerCounters> = (0..d.workers).map(|_| WorkerCounters::default()).collect();
    let legs_counters: Vec<[LegCounters; 2]> = (0..d.workers).map(|_| Default::default()).collect();
    let idle = IdleBackoff {
        empty_polls_before_sleep: d.idle_polls,
        sleep_us: d.idle_sleep_us,
    };
    // One record ring per worker; the analysis core (the main lcore) drains them all.
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    let mut ring_counters: Vec<Arc<RingCounters>> = Vec::new();
    if config.monitor.enabled {
        for w in 0..d.workers as usize {
            let (p, c) = record_ring(config.monitor.ring_records);
            ring_counters.push(p.counters());
            let shared = lcores.get(w).is_some_and(|&l| eal.shares_cpu(l));
            if shared && config.monitor.publish_per_loop {
                log::warn!(
                    "worker {w} shares its CPU with another lcore: it publishes its records after every burst (monitor.publish_per_loop ignored)"
                );
            }
            let per_burst = shared || !config.monitor.publish_per_loop;
            producers.push(Some(Monitor::new(p).publish_each_burst(per_burst)));
            consumers.push(c);
        }
    } else {
        producers.extend((0..d.workers).map(|_| None));
    }
    let timebase = Timebase {
        hz: dataplane::tsc::hz(),
    };
    let engines: Vec<Box<dyn Engine>> = vec![
        Box::new(FlowTable::default()),
        Box::new(analysis::wren::Wren::new(Default::default())),
        Box::new(analysis::vttif::Vttif::new(config.vttif.to_config(false)?)),
    ];
    let mut analysis = AnalysisLoop::new(consumers, engines, timebase);
    if d.workers > 1 {
        // Several rings: one time order for the engines, records held 5 ms.
        analysis = analysis.with_merge(timebase.hz / 200, dataplane::tsc::now);
    }
    let monitor_on = config.monitor.enabled;
    let consumer_delay = Duration::from_micros(config.monitor.consumer_delay_us);

    if d.mode == crate::config::Mode::Switch {
        let outcome = crate::switch_mode::run(
            &eal,
            pool,
            ports,
            &config,
            &quit,
            args.duration,
            producers,
            &mut analysis,
        )?;
        let monitor_sum = monitor_on.then(|| monitor_summary(&analysis, &ring_counters));
        let in_use = pool.in_use();
        if let Some(path) = &args.summary_json {
            let json = serde_json::json!({
                "switch": outcome.snapshot,
                "monitor": monitor_sum,
                "mbufs_total": pool.size(),
                "mbufs_in_use_at_exit": in_use,
                "elapsed_s": outcome.elapsed_s,
            });
            std::fs::write(path, serde_json::to_string_pretty(&json)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if in_use != 0 {
            bail!(
                "{in_use} of {} mbufs were not returned to the pool (leak)",
                pool.size()
            );
        }
        println!("mbufs: all {} back in the pool", pool.size());
        return Ok(());
    }
    let started = Instant::now();
    {
        let (a, b) = ports.split_at_mut(1);
        let (mut a_rx, mut a_tx) = a[0].queues();
        let (mut b_rx, mut b_tx) = b[0].queues();
        let mut jobs: Vec<(dataplane::LcoreId, LcoreJob<'_>)> = Vec::new();
        for w in (0..d.workers as usize).rev() {
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
            let counters = &workers[w];
            let quit = &*quit;
            let burst = d.burst;
            let mut monitor = producers.pop().flatten();
            jobs.push((
                lcores[w],
                Box::new(move || {
                    xconnect::run(&mut legs, counters, quit, idle, burst, monitor.as_mut())
                }),
            ));
        }
        log::info!(
            "xconnect: {} worker(s) on {:?}",
            d.workers,
            &lcores[..d.workers as usize]
        );
        eal.run_on_lcores(jobs, || {
            main_loop(
                &quit,
                &port_ids,
                &names,
                &workers,
                d.stats_interval_ms,
                args.duration,
                started,
                monitor_on.then_some((&mut analysis, ring_counters.as_slice(), consumer_delay)),
            )
        })?;
        // Workers are done: what is left in the rings is analysed too.
        analysis.finish();
    }
    let elapsed = started.elapsed().as_secs_f64();

    let port_summaries: Vec<PortSummary> = port_ids
        .iter()
        .zip(&names)
        .map(|(id, name)| PortSummary {
            name: name.clone(),
            port_id: *id,
            stats: id.stats().unwrap_or_default(),
        })
        .collect();
    let snaps: Vec<WorkerSnapshot> = workers.iter().map(|w| w.snapshot()).collect();
    let tx_full_drops = legs_counters
        .iter()
        .flatten()
        .map(|l| l.tx_full_drops.get())
        .sum();
    print_stats("final", &port_ids, &names, &workers);
    let monitor = monitor_on.then(|| monitor_summary(&analysis, &ring_counters));
    if let Some(m) = &monitor {
        println!(
            "monitor: {} records pushed, {} dropped (ring full), {} analysed",
            m.records_pushed, m.records_dropped_ring_full, m.records_analysed
        );
    }

    drop(ports); // stop + close: rx rings give their mbufs back
    let in_use = pool.in_use();
    let total_busy: u64 = snaps.iter().map(|s| s.busy_cycles).sum();
    let total_pkts: u64 = snaps.iter().map(|s| s.packets).sum();
    let summary = Summary {
        ports: port_summaries,
        workers: snaps,
        cycles_per_packet: (total_pkts > 0).then(|| total_busy as f64 / total_pkts as f64),
        tsc_hz: dataplane::tsc::hz(),
        tx_full_drops,
        monitor,
        mbufs_total: pool.size(),
        mbufs_in_use_at_exit: in_use,
        elapsed_s: elapsed,
    };
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if in_use != 0 {
        bail!(
            "{in_use} of {} mbufs were not returned to the pool (leak)",
            pool.size()
        );
    }
    println!("mbufs: all {} back in the pool", pool.size());
    Ok(())
}

fn monitor_summary(analysis: &AnalysisLoop, rings: &[Arc<RingCounters>]) -> MonitorSummary {
    MonitorSummary {
        records_pushed: rings.iter().map(|r| r.pushed()).sum(),
        records_dropped_ring_full: rings.iter().map(|r| r.dropped()).sum(),
        records_analysed: analysis.drained(),
        records_late: analysis.late_records(),
    }
}

/// The main lcore: drains the record rings into the engines (when monitoring is on),
/// prints stats on a timer, and ends the run on a signal or after `duration`.
#[allow(clippy::too_many_arguments)]
fn main_loop(
    quit: &AtomicBool,
    ports: &[PortId],
    names: &[String],
    workers: &[WorkerCounters],
    interval_ms: u64,
    duration: Option<f64>,
    started: Instant,
    mut analysis: Option<(&mut AnalysisLoop, &[Arc<RingCounters>], Duration)>,
) {
    let interval = Duration::from_millis(interval_ms);
    let mut next = Instant::now() + interval;
    // As the switch's analysis loop: naps that end on time, so a burst after a pause
    // finds the rings drained (see switch_mode).
    if analysis.is_some() {
        dataplane::lcore::shorten_timer_slack(
            "analysis loop",
            "records may overflow the rings after idle pauses",
        );
    }
    while !quit.load(Ordering::Relaxed) {
        if duration.is_some_and(|d| started.elapsed().as_secs_f64() >= d) {
            break;
        }
        let drained = match analysis.as_mut() {
            Some((a, _, delay)) => {
                if !delay.is_zero() {
                    std::thread::sleep(*delay);
                }
                a.poll()
            }
            None => 0,
        };
        if Instant::now() >= next {
            print_stats("periodic", ports, names, workers);
            if let Some((a, rings, _)) = analysis.as_mut() {
                let m = monitor_summary(a, rings);
                println!(
                    "monitor: {} records pushed, {} dropped (ring full), {} analysed",
                    m.records_pushed, m.records_dropped_ring_full, m.records_analysed
                );
                a.tick(started.elapsed().as_nanos() as u64);
                for r in a.reports() {
                    println!("{r}");
                }
            }
            next += interval;
        }
        if drained == 0 {
            std::thread::sleep(Duration::from_micros(if analysis.is_some() {
                50
            } else {
                10_000
            }));
        }
    }
    quit.store(true, Ordering::Relaxed);
}

/// Checks DPDK's TSC rate against the system clock over 50 ms and warns when they
/// disagree by more than 1% (record times would then be off by as much).
#[cold]
fn check_tsc_rate() {
    let hz = dataplane::tsc::hz();
    let t0 = Instant::now();
    let c0 = dataplane::tsc::now();
    std::thread::sleep(Duration::from_millis(50));
    let c1 = dataplane::tsc::now();
    let measured = (c1 - c0) as f64 / t0.elapsed().as_secs_f64();
    let err = (measured - hz as f64).abs() / hz.max(1) as f64;
    if err > 0.01 {
        log::warn!(
            "TSC runs at {measured:.0} Hz by the system clock, DPDK says {hz} Hz ({:.1}% apart)",
            err * 100.0
        );
    } else {
        log::info!(
            "TSC {hz} Hz (system clock agrees within {:.2}%); record times resolve to one poll",
            err * 100.0
        );
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
