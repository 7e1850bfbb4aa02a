//! `wrenvnet run` in mode "switch": builds the overlay switch from the config, runs it
//! on `dataplane.workers` worker lcores (worker w owns queue w of every port), and
//! drains records, serves the control path, prints stats and shuts down on the main one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use analysis::engine::AnalysisLoop;
use anyhow::{Context, Result};
use dataplane::lcore::LcoreJob;
use dataplane::monitor::Monitor;
use dataplane::switch::counters::{SwitchCounters, SwitchSnapshot};
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use dataplane::switch::mailbox::Mailbox;
use dataplane::switch::neighbors::Neighbors;
use dataplane::switch::overlay::Underlay;
use dataplane::switch::Switch;
use dataplane::xconnect::IdleBackoff;
use dataplane::{Eal, Mempool, Port, PortId};

use crate::config::{parse_mac, Config};
use crate::vm_ports::VmPorts;

/// What the switch reports at exit.
pub struct SwitchOutcome {
    pub snapshot: SwitchSnapshot,
    pub elapsed_s: f64,
}

#[allow(clippy::too_many_arguments)]
pub fn run<'e>(
    eal: &'e Eal,
    pool: Mempool<'e>,
    ports: Vec<Port<'e>>,
    config: &Config,
    quit: &AtomicBool,
    duration: Option<f64>,
    monitors: Vec<Option<Monitor>>,
    analysis: &mut AnalysisLoop,
) -> Result<SwitchOutcome> {
    let sw = config
        .switch
        .as_ref()
        .context("mode \"switch\" needs a [switch] section")?;
    let index = |name: &str| config.ports.iter().position(|p| p.name == name);
    let nic_ix = index(&sw.nic).context("switch.nic is not a port")?;
    let nic_mac = ports[nic_ix].mac().context("cannot read the NIC's MAC")?;
    let underlay = Underlay {
        ip: sw.underlay_ip.octets(),
        mac: nic_mac.0,
        vni: sw.vni,
        max_frame: sw.mtu as usize + 14,
    };
    let mut fib = Fib::default();
    for (i, v) in sw.vms.iter().enumerate() {
        fib.insert(parse_mac(&v.mac)?, Dest::Vm(VmSlot(i)));
    }
    for p in &sw.peers {
        fib.set_peer(PeerSpec {
            name: p.name.clone(),
            ip: p.ip.octets(),
            mac: p.mac.as_deref().map(parse_mac).transpose()?,
        })
        .with_context(|| format!("switch.peer {:?}", p.name))?;
    }
    for r in &sw.rules {
        let p = sw
            .peers
            .iter()
            .position(|p| p.name == r.peer)
            .context("rule names an unknown peer")?;
        fib.insert(parse_mac(&r.dst_mac)?, Dest::Peer(PeerIx(p)));
    }
    let vm_ix: Vec<usize> = sw
        .vms
        .iter()
        .map(|v| index(&v.port).context("switch vm port is not a port"))
        .collect::<Result<_>>()?;
    log::info!(
        "switch: underlay {} mac {} vni {}, {} VM(s), {} peer(s), {} rule(s)",
        sw.underlay_ip,
        nic_mac,
        sw.vni,
        sw.vms.len(),
        fib.peers().len(),
        fib.len()
    );

    let d = &config.dataplane;
    let workers = d.workers as usize;
    let counters: Vec<SwitchCounters> = (0..workers).map(|_| SwitchCounters::default()).collect();
    let neighbors = Neighbors::default();
    let idle = IdleBackoff {
        empty_polls_before_sleep: d.idle_polls,
        sleep_us: d.idle_sleep_us,
    };
    let lcores = eal.worker_lcores();
    let started = Instant::now();
    // The NIC stays here (its queues borrow it); VM ports go to the VM port registry,
    // which lends their queues to the workers and can unplug them live.
    // One slot per config port, by config index: the NIC and each VM port are taken out.
    let mut config_ports: Vec<Option<Port<'e>>> = ports.into_iter().map(Some).collect();
    let mut nic = config_ports[nic_ix].take().context("NIC port")?;
    let nic_name = config.ports[nic_ix].name.clone();
    let nic_id = nic.id();
    let mailboxes: Vec<Mailbox<'_>> = (0..workers).map(|_| Mailbox::default()).collect();
    let fib = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(fib));
    let hot_config = d.port_config();
    let vm_ports = RefCell::new(VmPorts::new(
        eal,
        pool,
        hot_config,
        &mailboxes,
        std::sync::Arc::clone(&fib),
    ));
    {
        let mut registry = vm_ports.borrow_mut();
        for (v, &i) in sw.vms.iter().zip(&vm_ix) {
            let port = config_ports[i]
                .take()
                .with_context(|| format!("port {:?} is used twice", v.port))?;
            registry.adopt(&v.port, &config.ports[i].devargs, parse_mac(&v.mac)?, port)?;
        }
    }
    drop(config_ports); // ports that are neither NIC nor VM: closed now
    let outcome = {
        let (mut nic_rx, mut nic_tx) = {
            let (rx, tx) = nic.queues();
            (rx.into_iter(), tx.into_iter())
        };
        let ops = crate::api::Operations::new(
            crate::api::Identity {
                host: sw
                    .name
                    .clone()
                    .unwrap_or_else(|| sw.underlay_ip.to_string()),
                underlay_ip: sw.underlay_ip.to_string(),
            },
            std::sync::Arc::clone(&fib),
            &vm_ports,
        );
        let api = crate::api::Api::bind(&config.api, ops)?;
        let burst = d.burst;
        let mut jobs: Vec<(dataplane::LcoreId, LcoreJob<'_>)> = Vec::new();
        for (w, mut monitor) in monitors.into_iter().enumerate().take(workers) {
            let mut switch = Switch {
                worker: w,
                nic_rx: nic_rx
                    .next()
                    .context("the NIC has fewer queues than workers")?,
                nic_tx: nic_tx
                    .next()
                    .context("the NIC has fewer queues than workers")?,
                vms: Vec::new(), // plugged through the mailbox before the first burst
                mailbox: &mailboxes[w],
                peers: Vec::new(),
                fib: std::sync::Arc::clone(&fib),
                underlay,
                pool,
                counters: &counters[w],
                neighbors: &neighbors,
                stage_clocks: d.stage_clocks,
                alternate_tsc: config
                    .monitor
                    .alternate_ms
                    .saturating_mul(dataplane::tsc::hz())
                    / 1000,
            };
            jobs.push((
                lcores[w],
                Box::new(move || switch.run(quit, idle, burst, monitor.as_mut())),
            ));
        }
        log::info!(
            "switch: {} worker(s) on lcores {:?}",
            jobs.len(),
            &lcores[..jobs.len()]
        );
        let port_list = || {
            let mut l = vec![(nic_name.clone(), nic_id)];
            l.extend(vm_ports.borrow().ports());
            l
        };
        vm_ports.borrow_mut().set_live();
        // A 32nd of a ring: at 10 Mpps a 64k ring takes 200 us to gather it, 6.5 ms to fill.
        let rest_below = (config.monitor.ring_records / 32).max(1);
        let rest_ticks = dataplane::tsc::hz() / 20_000; // 50 us
        eal.run_on_lcores(jobs, || {
            // The analysis loop's naps after an empty poll must end on time: traffic
            // that resumes after a pause fills a ring in a few milliseconds.
            dataplane::lcore::shorten_timer_slack(
                "analysis loop",
                "records may overflow the rings after idle pauses",
            );
            let interval = Duration::from_millis(d.stats_interval_ms);
            let mut next = Instant::now() + interval;
            while !quit.load(Ordering::Relaxed) {
                if duration.is_some_and(|s| started.elapsed().as_secs_f64() >= s) {
                    break;
                }
                let drained = analysis.poll();
                api.poll(&counters, analysis);
                if Instant::now() >= next {
                    print_switch(&SwitchCounters::snapshot_all(&counters), &port_list());
                    // In the records' own time base, so windows close on time.
                    analysis.tick(analysis.timebase().to_ns(dataplane::tsc::now()));
                    for r in analysis.reports() {
                        println!("{r}");
                    }
                    next += interval;
                }
                if drained == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                } else if drained < rest_below {
                    // Drained a little: wait a moment so the rings fill in batches.
                    // Polling back to back would pull each ring's tail line over from
                    // its worker after every burst (a cross-core transfer per burst on
                    // the worker). Spun, not slept: a sleep overshoots by up to
                    // milliseconds here, and a ring then overflowed at 8 Mpps.
                    let until = dataplane::tsc::now() + rest_ticks;
                    while dataplane::tsc::now() < until {
                        std::hint::spin_loop();
                    }
                }
            }
            quit.store(true, Ordering::Relaxed);
        })?;
        analysis.finish();
        let snapshot = SwitchCounters::snapshot_all(&counters);
        println!("--- switch (final) ---");
        print_switch(&snapshot, &port_list());
        snapshot
    };
    // The workers are gone and returned every VM port's queues: close them all.
    vm_ports.borrow_mut().shut_down();
    // (`nic` closes when this function returns, after the mailboxes its queues outlive.)
    for r in analysis.reports() {
        println!("{r}");
    }
    Ok(SwitchOutcome {
        snapshot: outcome,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

#[cold]
fn print_switch(s: &SwitchSnapshot, ports: &[(String, PortId)]) {
    println!(
        "switch: vm rx {} tx {} | nic rx {} tx {} | encap {} decap {} flood {} (unknown unicast {}) | arp replies {} requests {} | cycles/pkt {} | empty polls {}",
        s.vm_rx,
        s.vm_tx,
        s.nic_rx,
        s.nic_tx,
        s.encapsulated,
        s.decapsulated,
        s.flooded,
        s.unknown_unicast,
        s.arp_replies,
        s.arp_requests,
        s.cycles_per_packet.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()),
        s.empty_polls
    );
    let drops: Vec<String> = s
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "drops: {}",
        if drops.is_empty() {
            "none".to_string()
        } else {
            drops.join(", ")
        }
    );
    for (name, id) in ports {
        if let Ok(st) = id.stats() {
            println!(
                "  port {name:<10} rx {:>10} tx {:>10} missed {:>6} errors rx {} tx {}",
                st.rx_packets, st.tx_packets, st.rx_missed, st.rx_errors, st.tx_errors
            );
        }
    }
}
