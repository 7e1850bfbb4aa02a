//! `wrenvnet fleet-sim`: a fleet of simulated hosts in one process, each a real etcd
//! client through the daemon's own session code (lease, registration, views, the watch
//! of its desired state, applied revisions), against the same etcd and the same
//! `wrenvnet controller` replicas as real daemons. What a host does with its desired
//! state and what it publishes is simulated (host.rs): an in-memory FIB and views
//! generated from a scenario of applications (scenario.rs). Every `--change-every`
//! seconds one link that a demand crosses drops below that demand, as Wren would see
//! it, and the event log says when; the bench (bench/fleet.sh) measures from there to
//! the last affected host's applied revision.

mod events;
mod host;
mod scenario;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::cluster::etcd::EtcdSection;
use crate::cluster::HostRecord;
use crate::daemon::cluster::session::{self, Control};
use crate::daemon::cluster::{unix_now, EtcdStatus};
use analysis::vadapt::rng::Rng;
use events::Events;
use host::SimHost;
use scenario::{HostIx, Network, Scenario};

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// A TOML file with the daemons' `[etcd]` section (endpoints, prefix, TLS files,
    /// lease_ttl_s, publish_interval_ms).
    #[arg(long)]
    etcd: PathBuf,
    /// Simulated hosts, named h0000, h0001, ...
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    #[arg(long, default_value_t = 4)]
    vms_per_host: usize,
    /// Every host pair's capacity until a change (the controller's default_link_bw_mbps).
    #[arg(long, default_value_t = 1000.0)]
    nominal_mbps: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between two link changes (0: none).
    #[arg(long, default_value_t = 0.0)]
    change_every: f64,
    /// Seconds before the first change.
    #[arg(long, default_value_t = 30.0)]
    change_after: f64,
    /// Link changes in all (0: one every `--change-every` until the end).
    #[arg(long, default_value_t = 0)]
    changes: usize,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Event log (JSON lines): applied revisions, link changes.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Summary (JSON) written at the end.
    #[arg(long)]
    summary: Option<PathBuf>,
}

#[derive(Deserialize)]
struct EtcdFile {
    etcd: EtcdSection,
}

/// Runs the fleet until `--duration` or a signal.
#[cold]
pub fn run(args: FleetArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.etcd)
        .with_context(|| format!("cannot read {}", args.etcd.display()))?;
    let section = toml::from_str::<EtcdFile>(&text)
        .with_context(|| format!("{}", args.etcd.display()))?
        .etcd;
    section.validate().context("[etcd]")?;
    anyhow::ensure!(args.hosts > 0, "--hosts must be at least 1");
    let events = match &args.events {
        Some(p) => Events::create(p)?,
        None => Events::none(),
    };
    let world = Arc::new(Scenario::new(
        args.hosts,
        args.vms_per_host,
        args.nominal_mbps,
        args.seed,
    ));
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&quit)).context("signal handlers")?;
    }
    // One thread carries the whole fleet: a host's work is a few milliseconds a
    // publish interval, and etcd needs the rest of the machine.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let summary = rt.block_on(async {
        let fleet = Fleet::start(&section, &world, &events);
        log::info!(
            "fleet-sim: {} hosts, {} VMs, {} applications, {} demands; views {} bytes on average",
            world.hosts.len(),
            world.vms.len(),
            world.apps.len(),
            world.demands.len(),
            fleet.views_bytes.0
        );
        let t0 = Instant::now();
        let mut changes = Changes::new(&args, &world);
        let running = |t: f64| args.duration.is_none_or(|d| t < d);
        while !quit.load(Ordering::Relaxed) && running(t0.elapsed().as_secs_f64()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            changes.poll(t0.elapsed().as_secs_f64(), &fleet.net, &events);
            events.flush();
        }
        fleet.stop(&world, changes.made).await
    });
    events.flush();
    log::info!("fleet-sim: {summary}");
    if let Some(p) = &args.summary {
        std::fs::write(p, format!("{summary:#}\n"))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

struct Fleet {
    net: Arc<Network>,
    statuses: Vec<Arc<EtcdStatus>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Mean and largest views published at start (bytes).
    views_bytes: (usize, usize),
}

impl Fleet {
    #[cold]
    fn start(section: &EtcdSection, world: &Arc<Scenario>, events: &Events) -> Self {
        let net = Arc::new(Network::new(world.nominal_mbps));
        let (shutdown, _) = watch::channel(false);
        let every = Duration::from_millis(section.publish_interval_ms);
        let mut rng = Rng::new(1);
        let (mut statuses, mut tasks, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, h) in world.hosts.iter().enumerate() {
            let (desired_tx, desired_rx) = mpsc::channel(4);
            let (applied_tx, applied_rx) = mpsc::channel(4);
            let (views_tx, views_rx) = watch::channel(None);
            let mut sim = SimHost::new(
                HostIx(i),
                Arc::clone(world),
                Arc::clone(&net),
                events.clone(),
            );
            sizes.push(sim.views().len());
            let record = HostRecord {
                host: h.name.clone(),
                underlay_ip: h.underlay_ip.clone(),
                started_unix_s: unix_now(),
                pid: std::process::id(),
            };
            let status = Arc::new(EtcdStatus::default());
            let ends = session::Ends {
                desired_tx,
                applied_rx,
                views_rx,
                shutdown: shutdown.subscribe(),
            };
            let control = Control::new(section.clone(), record, ends, Arc::clone(&status));
            tasks.push(tokio::spawn(control.sessions()));
            let host_ends = host::Ends {
                desired_rx,
                applied_tx,
                views_tx,
                shutdown: shutdown.subscribe(),
            };
            let offset = every.mul_f64(rng.unit());
            tasks.push(tokio::spawn(sim.run(host_ends, every, offset)));
            statuses.push(status);
        }
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let mean = sizes.iter().sum::<usize>() / sizes.len().max(1);
        Fleet {
            net,
            statuses,
            shutdown,
            tasks,
            views_bytes: (mean, largest),
        }
    }

    /// Ends every session (each revokes its lease) and says how the fleet stood.
    #[cold]
    async fn stop(self, world: &Scenario, changes: usize) -> serde_json::Value {
        let connected = self.statuses.iter().filter(|s| s.connected()).count();
        let applied = self
            .statuses
            .iter()
            .filter(|s| s.applied_revision().is_some())
            .count();
        let stats: Vec<serde_json::Value> = self.statuses.iter().map(|s| s.to_json()).collect();
        let sum = |k: &str| stats.iter().filter_map(|s| s[k].as_u64()).sum::<u64>();
        let _ = self.shutdown.send(true);
        let all = futures_join(self.tasks);
        let ended = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_ok();
        let shape = |name: &str| {
            world
                .apps
                .iter()
                .filter(|a| a.topology.name() == name)
                .count()
        };
        json!({
            "hosts": world.hosts.len(), "vms": world.vms.len(), "demands": world.demands.len(),
            "applications": {"ring": shape("ring"), "mesh": shape("mesh"),
                "all-to-all": shape("all-to-all")},
            "largest_application_vms": world.apps.iter().map(|a| a.vms.len()).max(),
            "views_bytes_mean": self.views_bytes.0, "views_bytes_max": self.views_bytes.1,
            "connected_at_end": connected, "hosts_with_applied_revision": applied,
            "registrations": sum("registrations"), "views_published": sum("views_published"),
            "views_trimmed": sum("views_trimmed"), "session_errors": sum("errors"),
            "link_changes": changes, "ended_cleanly": ended,
        })
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// The world's link changes: one every `--change-every` seconds after
/// `--change-after` (at most `--changes`), each on a link a demand crosses directly (its two hosts differ and
/// the link has not changed before), to 30% of that demand: the route must move.
struct Changes<'w> {
    world: &'w Scenario,
    every: f64,
    next: f64,
    rng: Rng,
    made: usize,
    /// At most this many (0: no bound).
    limit: usize,
}

impl<'w> Changes<'w> {
    fn new(args: &FleetArgs, world: &'w Scenario) -> Self {
        Changes {
            world,
            every: args.change_every,
            next: args.change_after,
            rng: Rng::new(args.seed ^ 0xc4a9),
            made: 0,
            limit: args.changes,
        }
    }

    #[cold]
    fn poll(&mut self, now: f64, net: &Network, events: &Events) {
        if self.every <= 0.0 || now < self.next || (self.limit > 0 && self.made >= self.limit) {
            return;
        }
        self.next += self.every;
        let w = self.world;
        for _ in 0..1000 {
            let d = &w.demands[self.rng.below(w.demands.len())];
            let (a, b) = (w.host_of(d.src), w.host_of(d.dst));
            if a == b || net.changed(a, b) {
                continue;
            }
            let mbps = 0.3 * d.mbps;
            net.set(a, b, mbps);
            self.made += 1;
            events.write(json!({"event": "link_changed", "at_unix_s": unix_now(),
                "from": w.hosts[a.0].name, "to": w.hosts[b.0].name, "mbps": mbps,
                "demand": {"src": w.vms[d.src.0].mac, "dst": w.vms[d.dst.0].mac,
                    "mbps": d.mbps}}));
            return;
        }
    }
}
