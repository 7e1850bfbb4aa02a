//! `wrenvnet run` in mode "switch": builds the overlay switch from the config and runs
//! it on `dataplane.workers` worker lcores (worker w owns queue w of every port), while
//! the main lcore runs `MainLoop` and answers the operators.

use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use dataplane::lcore::LcoreJob;
use dataplane::monitor::Monitor;
use dataplane::switch::announce::Announcements;
use dataplane::switch::counters::SwitchCounters;
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use dataplane::switch::mailbox::Mailbox;
use dataplane::switch::neighbors::Neighbors;
use dataplane::switch::overlay::Underlay;
use dataplane::switch::Switch;
use dataplane::xconnect::IdleBackoff;
use dataplane::{Eal, LcoreId, MacAddr, Mempool, Port, PortId, RxQueue, TxQueue};

use super::cluster;
use super::main_loop::{Ends, MainLoop, Monitoring};
use super::summary::{ModeSummary, Outcome, PortSummary};
use crate::daemon::config::{parse_mac, Config, SwitchSection};
use crate::daemon::vm_ports::{self, Devices, VmPortControl, VmPorts};

pub fn run<'e>(
    eal: &'e Eal,
    pool: Mempool<'e>,
    ports: Vec<Port<'e>>,
    config: &Config,
    monitors: Vec<Option<Monitor>>,
    monitoring: &mut Monitoring,
    ends: Ends<'_>,
) -> Result<Outcome> {
    // VM port devices are opened and removed on a thread of their own (`vm_ports`),
    // which ends once the VM ports (and their end of it) are gone.
    let (devices, device_thread) = vm_ports::device_thread();
    let port_config = config.dataplane.port_config();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("vm-devices".into())
            .spawn_scoped(s, move || device_thread.serve(eal, pool, port_config))
            .context("cannot start the VM ports' device thread")?;
        run_with(
            eal, pool, ports, config, monitors, monitoring, ends, devices,
        )
    })
}

/// The switch, with `devices` for its VM ports.
#[allow(clippy::too_many_arguments)]
fn run_with<'e>(
    eal: &'e Eal,
    pool: Mempool<'e>,
    ports: Vec<Port<'e>>,
    config: &Config,
    monitors: Vec<Option<Monitor>>,
    monitoring: &mut Monitoring,
    ends: Ends<'_>,
    devices: Devices<'e>,
) -> Result<Outcome> {
    let sw = config
        .switch
        .as_ref()
        .context("mode \"switch\" needs a [switch] section")?;
    let nic_ix = port_index(config, &sw.nic).context("switch.nic is not a port")?;
    // One slot per config port, by config index: the NIC and each VM port are taken out.
    let mut config_ports: Vec<Option<Port<'e>>> = ports.into_iter().map(Some).collect();
    // The NIC stays here (its queues borrow it); it closes when this function returns,
    // after the mailboxes its queues outlive.
    let mut nic = config_ports[nic_ix].take().context("NIC port")?;
    let nic_mac = nic.mac().context("cannot read the NIC's MAC")?;
    let mut table = forwarding_table(sw)?;
    let qos = &config.qos;
    table.set_qos(Some(
        crate::daemon::qos::policy(qos, &qos.reservations(), config.dataplane.workers)
            .context("[qos]")?,
    ));
    let fib = Arc::new(ArcSwap::from_pointee(table));
    log_switch(sw, nic_mac, &fib.load());
    let shared = Shared::new(sw, nic_mac, config.dataplane.workers, ends.quit);
    let mailboxes: Vec<Mailbox<'_>> = shared.counters.iter().map(|_| Mailbox::default()).collect();
    // VM ports go to the registry, which lends their queues to the workers and can
    // unplug them live.
    let d = &config.dataplane;
    let vm_ports = RefCell::new(VmPorts::new(&mailboxes, Arc::clone(&fib), devices));
    adopt_vm_ports(&mut vm_ports.borrow_mut(), config, &mut config_ports)?;
    drop(config_ports); // ports that are neither NIC nor VM: closed now
    let nic_port = (config.ports[nic_ix].name.clone(), nic.id());
    let port_list = || {
        let mut l = vec![nic_port.clone()];
        l.extend(vm_ports.borrow().ports());
        l
    };
    let print = |label: &str| print_switch(label, &shared.counters, &port_list());
    let mut main = MainLoop::new(ends, monitoring, d.stats_interval_ms, dataplane::tsc::now());
    {
        let (nic_rx, nic_tx) = nic.queues();
        let jobs = worker_jobs(
            eal, config, &shared, &fib, &mailboxes, pool, nic_rx, nic_tx, monitors,
        )?;
        let mut etcd = start_etcd(config, sw)?;
        let api = bind_api(config, sw, &fib, &vm_ports, etcd.as_ref())?;
        let mut uplink = crate::daemon::uplink::Learner::new(&config.qos);
        let serve = |a: &_| {
            api.ops().follow_arrivals(&shared.announcements);
            api.poll(&shared.counters, a);
            if let Some(u) = uplink.as_mut() {
                u.poll(api.ops(), a);
            }
            if let Some(e) = etcd.as_mut() {
                e.poll(api.ops(), &shared.counters, a);
            }
        };
        vm_ports.borrow_mut().set_live();
        eal.run_on_lcores(jobs, || main.run(print, serve))?;
        if let Some(e) = etcd {
            e.shut_down();
        }
    }
    let elapsed_s = main.finish(print);
    let outcome = Outcome {
        ports: port_list()
            .iter()
            .map(|(name, id)| PortSummary::read(name, *id))
            .collect(),
        mode: ModeSummary::Switch(Box::new(SwitchCounters::snapshot_all(&shared.counters))),
        elapsed_s,
    };
    // The workers are gone and returned every VM port's queues: close them all.
    vm_ports.borrow_mut().shut_down();
    Ok(outcome)
}

/// What every worker shares with the others and the main lcore.
struct Shared<'q> {
    underlay: Underlay,
    counters: Vec<SwitchCounters>,
    /// Peer MACs learned by any worker.
    neighbors: Neighbors,
    /// VM arrivals the workers saw announced, for the main lcore.
    announcements: Announcements,
    quit: &'q AtomicBool,
}

impl<'q> Shared<'q> {
    fn new(sw: &SwitchSection, nic_mac: MacAddr, workers: u16, quit: &'q AtomicBool) -> Self {
        Self {
            underlay: Underlay {
                ip: sw.underlay_ip.octets(),
                mac: nic_mac.0,
                vni: sw.vni,
                max_frame: sw.mtu as usize + 14,
            },
            counters: (0..workers).map(|_| SwitchCounters::default()).collect(),
            neighbors: Neighbors::default(),
            announcements: Announcements::default(),
            quit,
        }
    }
}

/// This host's name: `switch.name`, else its underlay address.
fn host_name(sw: &SwitchSection) -> String {
    sw.name
        .clone()
        .unwrap_or_else(|| sw.underlay_ip.to_string())
}

/// The operators' way in, the HTTP API, answered by the main loop between its polls.
#[cold]
fn bind_api<'v>(
    config: &Config,
    sw: &SwitchSection,
    fib: &Arc<ArcSwap<Fib>>,
    vm_ports: &'v RefCell<dyn VmPortControl + 'v>,
    etcd: Option<&cluster::Link>,
) -> Result<crate::daemon::api::Api<'v>> {
    let identity = crate::daemon::api::Identity {
        host: host_name(sw),
        underlay_ip: sw.underlay_ip.to_string(),
    };
    let lifetimes = crate::daemon::api::locations::Lifetimes {
        pointer: std::time::Duration::from_millis(sw.pointer_lifetime_ms),
        hold: std::time::Duration::from_millis(sw.location_hold_ms),
    };
    let mut ops = crate::daemon::api::Operations::new(identity, Arc::clone(fib), vm_ports)
        .with_lifetimes(lifetimes);
    if let Some(e) = etcd {
        ops = ops.with_etcd(e.status()).with_etcd_writes(e.writes());
    }
    crate::daemon::api::Api::bind(&config.api, ops)
}

/// With `[etcd]`: the session's control thread, started before the main loop (which
/// applies the desired state the session loads before it registers the host).
#[cold]
fn start_etcd(config: &Config, sw: &SwitchSection) -> Result<Option<cluster::Link>> {
    let Some(section) = &config.etcd else {
        return Ok(None);
    };
    let record = crate::cluster::HostRecord {
        host: host_name(sw),
        underlay_ip: sw.underlay_ip.to_string(),
        started_unix_s: cluster::unix_now(),
        pid: std::process::id(),
    };
    cluster::Link::start(section, record).map(Some)
}

fn port_index(config: &Config, name: &str) -> Option<usize> {
    config.ports.iter().position(|p| p.name == name)
}

/// The rules and links of `[switch]`: each VM's MAC to its port, each rule's MAC to its
/// peer.
#[cold]
fn forwarding_table(sw: &SwitchSection) -> Result<Fib> {
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
    Ok(fib)
}

#[cold]
fn log_switch(sw: &SwitchSection, nic_mac: MacAddr, fib: &Fib) {
    log::info!(
        "switch: underlay {} mac {} vni {}, {} VM(s), {} peer(s), {} rule(s)",
        sw.underlay_ip,
        nic_mac,
        sw.vni,
        sw.vms.len(),
        fib.peers().len(),
        fib.len()
    );
    if let Some(q) = fib.qos().filter(|q| q.is_active() || q.uplink().is_some()) {
        log::info!(
            "qos: uplink {}, best-effort cap per VM {}, {} reservation(s) ({} Mbit/s){}",
            q.uplink()
                .map_or_else(|| "unlimited".into(), |r| format!("{} Mbit/s", r.mbps())),
            q.vm_cap()
                .map_or_else(|| "none".into(), |r| format!("{} Mbit/s", r.mbps())),
            q.reservations().len(),
            q.reserved_bps() as f64 / 1e6,
            if q.oversubscribed() {
                ": more than the uplink, best-effort gets nothing"
            } else {
                ""
            }
        );
    }
}

/// Hands each `[[switch.vm]]`'s port (taken out of `ports`, by config index) to the
/// VM port registry, in slot order.
#[cold]
fn adopt_vm_ports<'e: 'p, 'p>(
    registry: &mut VmPorts<'e, 'p, '_>,
    config: &Config,
    ports: &mut [Option<Port<'e>>],
) -> Result<()> {
    let sw = config.switch.as_ref().context("[switch]")?;
    for v in &sw.vms {
        let i = port_index(config, &v.port).context("switch vm port is not a port")?;
        let port = ports[i]
            .take()
            .with_context(|| format!("port {:?} is used twice", v.port))?;
        let mac = parse_mac(&v.mac)?;
        registry.adopt(
            &v.port,
            &config.ports[i].devargs,
            mac,
            v.port_security,
            port,
        )?;
    }
    Ok(())
}

/// One switch per worker lcore, on its queue of the NIC (VM ports reach it through its
/// mailbox before its first burst).
#[allow(clippy::too_many_arguments)]
#[cold]
fn worker_jobs<'j, 'p: 'j, 'e: 'j>(
    eal: &Eal,
    config: &Config,
    shared: &'j Shared<'j>,
    fib: &Arc<ArcSwap<Fib>>,
    mailboxes: &'j [Mailbox<'p>],
    pool: Mempool<'e>,
    nic_rx: Vec<RxQueue<'p>>,
    nic_tx: Vec<TxQueue<'p>>,
    monitors: Vec<Option<Monitor>>,
) -> Result<Vec<(LcoreId, LcoreJob<'j>)>> {
    let d = &config.dataplane;
    let idle = IdleBackoff {
        empty_polls_before_sleep: d.idle_polls,
        sleep_us: d.idle_sleep_us,
    };
    let lcores = eal.worker_lcores();
    let (mut nic_rx, mut nic_tx) = (nic_rx.into_iter(), nic_tx.into_iter());
    let mut jobs: Vec<(LcoreId, LcoreJob<'j>)> = Vec::new();
    for (w, mut monitor) in monitors.into_iter().enumerate().take(shared.counters.len()) {
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
            fib: Arc::clone(fib),
            underlay: shared.underlay,
            pool,
            counters: &shared.counters[w],
            neighbors: &shared.neighbors,
            announcements: &shared.announcements,
            stage_clocks: d.stage_clocks,
            alternate_tsc: config
                .monitor
                .alternate_ms
                .max(config.qos.alternate_ms)
                .saturating_mul(dataplane::tsc::hz())
                / 1000,
            alternate_qos: config.qos.alternate_ms > 0,
        };
        let (quit, burst) = (shared.quit, d.burst);
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
    Ok(jobs)
}

#[cold]
fn print_switch(label: &str, counters: &[SwitchCounters], ports: &[(String, PortId)]) {
    let s = SwitchCounters::snapshot_all(counters);
    println!("--- switch ({label}) ---");
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
    if !s.qos.is_empty() {
        let class: Vec<String> = s
            .qos
            .iter()
            .map(|(c, q)| {
                format!(
                    "{c} conforming {} exceeding {} dropped {}",
                    q.conforming_packets, q.exceeding_packets, q.dropped_packets
                )
            })
            .collect();
        println!("qos: {}", class.join(" | "));
    }
    for (name, id) in ports {
        if let Ok(st) = id.stats() {
            println!(
                "  port {name:<10} rx {:>10} tx {:>10} missed {:>6} errors rx {} tx {}",
                st.rx_packets, st.tx_packets, st.rx_missed, st.rx_errors, st.tx_errors
            );
        }
    }
}
