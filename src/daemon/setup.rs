//! The daemon's setup, the same for both modes: signals, the EAL, the mbuf pool, the
//! ports, and the monitoring (one record ring per worker and the analysis engines that
//! the main lcore feeds from them).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analysis::engine::{AnalysisLoop, Engine};
use analysis::record::Timebase;
use analysis::ring::record_ring;
use anyhow::{bail, Context, Result};
use dataplane::monitor::Monitor;
use dataplane::{Eal, EalArgs, Mempool, Port, PortConfig};

use super::main_loop::Monitoring;
use crate::daemon::config::Config;

/// The quit flag, raised by SIGINT and SIGTERM; the workers and the main loop watch it.
#[cold]
pub fn quit_on_signals() -> Result<Arc<AtomicBool>> {
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&quit))
            .with_context(|| format!("cannot install handler for signal {sig}"))?;
    }
    Ok(quit)
}

/// Starts the EAL from the config's `[eal]` section and the command line's EAL
/// arguments, and checks it has a worker lcore for each configured worker.
#[cold]
pub fn start_eal(config: &Config, passthrough: &[String]) -> Result<Eal> {
    let args = eal_args(config, passthrough);
    let eal = Eal::init(&args).context("cannot start the DPDK EAL")?;
    log::info!(
        "DPDK {} (built against {})",
        eal.runtime_version(),
        dataplane::dpdk_build_version()
    );
    if !dataplane::tsc::cpu_has_invariant_tsc() {
        log::warn!("CPU lacks constant_tsc/nonstop_tsc: cycle counts and record times may not track wall time");
    }
    check_tsc_rate();
    let workers = config.dataplane.workers;
    let lcores = eal.worker_lcores().len();
    if lcores < workers as usize {
        bail!(
            "{workers} worker(s) configured but the EAL has {lcores} worker lcore(s); give more \
             with `-- -l` (the first lcore is the main/control lcore)"
        );
    }
    Ok(eal)
}

fn eal_args(config: &Config, passthrough: &[String]) -> EalArgs {
    let e = &config.eal;
    let mut args = EalArgs::new("wrenvnet")
        .in_memory(e.in_memory)
        .no_huge(e.no_huge)
        .passthrough(passthrough.iter().cloned());
    if let Some(l) = &e.lcores {
        args = args.lcores(l.clone());
    }
    if let Some(p) = &e.file_prefix {
        args = args.file_prefix(p.clone());
    }
    if let Some(m) = e.memory_mb {
        args = args.memory_mb(m);
    }
    if let Some(l) = &e.log_level {
        args = args.log_level(l.clone());
    }
    for a in &e.pci {
        args = args.pci(a.clone());
    }
    args
}

#[cold]
pub fn mempool<'e>(eal: &'e Eal, config: &Config) -> Result<Mempool<'e>> {
    Mempool::create(
        eal,
        "wrenvnet_pool",
        config.mempool.mbufs,
        config.mempool.cache,
        None,
    )
    .context("cannot create the mbuf pool (are hugepages reserved? see scripts/setup.sh)")
}

/// Opens every `[[port]]`, in config order.
#[cold]
pub fn open_ports<'e>(eal: &'e Eal, pool: &Mempool<'e>, config: &Config) -> Result<Vec<Port<'e>>> {
    let base = config.dataplane.port_config();
    let mut ports = Vec::new();
    for p in &config.ports {
        let cfg = PortConfig {
            mtu: p.mtu,
            promiscuous: p.promiscuous,
            ..base.clone()
        };
        let port = Port::open(eal, &p.devargs, pool, &cfg)
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
    Ok(ports)
}

/// The analysis the main lcore runs, and each worker's end of its record ring (`None`
/// for every worker with monitoring off).
#[cold]
pub fn monitoring(eal: &Eal, config: &Config) -> Result<(Monitoring, Vec<Option<Monitor>>)> {
    let workers = config.dataplane.workers as usize;
    let m = &config.monitor;
    let lcores = eal.worker_lcores();
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    let mut rings = Vec::new();
    for w in 0..workers {
        if !m.enabled {
            producers.push(None);
            continue;
        }
        let (p, c) = record_ring(m.ring_records);
        rings.push(p.counters());
        let shared = lcores.get(w).is_some_and(|&l| eal.shares_cpu(l));
        if shared && m.publish_per_loop {
            log::warn!(
                "worker {w} shares its CPU with another lcore: it publishes its records after every burst (monitor.publish_per_loop ignored)"
            );
        }
        let per_burst = shared || !m.publish_per_loop;
        producers.push(Some(Monitor::new(p).publish_each_burst(per_burst)));
        consumers.push(c);
    }
    let timebase = Timebase {
        hz: dataplane::tsc::hz(),
    };
    // Wren and VTTIF bound their state (flows and paths expire, Wren tracks at most
    // `max_flows`); the per-flow totals of `wrenvnet analyze` stay out of the daemon,
    // where a guest opening new flows would grow them without bound.
    let engines: Vec<Box<dyn Engine>> = vec![
        Box::new(analysis::wren::Wren::new(Default::default())),
        Box::new(analysis::vttif::Vttif::new(config.vttif.to_config(false)?)),
    ];
    let mut analysis = AnalysisLoop::new(consumers, engines, timebase);
    if workers > 1 {
        // Several rings: one time order for the engines, records held 5 ms.
        analysis = analysis.with_merge(timebase.hz / 200, dataplane::tsc::now);
    }
    let monitoring = Monitoring {
        analysis,
        rings,
        enabled: m.enabled,
        consumer_delay: Duration::from_micros(m.consumer_delay_us),
        stall: m.stall_at_s.map(|at| {
            (
                Duration::from_secs_f64(at.max(0.0)),
                Duration::from_millis(m.stall_for_ms),
            )
        }),
        // A 32nd of a ring: at 10 Mpps a 64k ring takes 200 us to gather it, 6.5 ms to fill.
        rest_below: (m.ring_records / 32).max(1),
        longest_pass_ms: 0.0,
    };
    Ok((monitoring, producers))
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
