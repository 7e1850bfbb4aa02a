//! `wrenvnet controller`: closes the loop, as one of N replicas over etcd. Every
//! interval each replica reads every daemon's rules, Wren path views and VTTIF matrix
//! from `views/` (a watch keeps them, views.rs) and keeps the global traffic matrix and
//! the network view. The replica that holds etcd's election also plans: it runs VADAPT
//! when the demands or a link's measurement move beyond a threshold (damped by
//! `min_interval_s`, see `round::damped`), takes a plan only when it beats the routes
//! in force by a margin, and writes each host's desired state, guarded by its election key; each daemon
//! converges on its own (a restarted daemon loads it before it registers). No replica
//! calls a daemon or touches the fast path: daemons forward with their last rules
//! whether any replica runs or not. A new leader resumes the plan in force from etcd;
//! on a cold start it adopts the rules the daemons publish and changes nothing until
//! it has new evidence.

mod arrivals;
pub mod config;
mod decide;
mod lead;
mod metrics;
mod plan;
mod replica;
mod reserve;
mod round;
pub(crate) mod source;
mod status;
pub(crate) mod view;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

pub use config::ControllerConfig;
use decide::Rules;
use replica::{BaselineRecord, Replica};
use view::NetworkView;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Controller config (TOML; see config/controller.example.toml).
    #[arg(short, long)]
    config: PathBuf,
    /// Adaptation off: observe and plan, log what would change, change no route
    /// (reservations are still admitted and enforced).
    #[arg(long)]
    observe: bool,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// This replica's id in the election (default: HOSTNAME-PID).
    #[arg(long)]
    replica_id: Option<String>,
    /// Serve this replica's metrics for Prometheus on `GET /metrics` at this address
    /// (e.g. 127.0.0.1:9102; TCP).
    #[arg(long)]
    metrics_listen: Option<String>,
}

fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// The status lists every link of a fleet of at most this many hosts (a screen's
/// worth: the lab shows them all); of a larger one, the links measured or crossed by a
/// route in force (every directed pair of 500 hosts is 50 MB of JSON a round).
const STATUS_ALL_LINKS_HOSTS: usize = 32;

/// What the last plan was made from: VADAPT runs again when this moves, and repairs
/// the plan in force from it.
struct Baseline {
    pairs: BTreeSet<(String, String)>,
    demand: BTreeMap<(String, String), f64>,
    /// The links that were not at their nominal bandwidth (the others were).
    bw: BTreeMap<(String, String), f64>,
}

impl Baseline {
    /// A link's bandwidth then.
    fn bw_of(&self, k: &(String, String), nominal: f64) -> f64 {
        self.bw.get(k).copied().unwrap_or(nominal)
    }

    fn record(&self) -> BaselineRecord {
        let entries = |m: &'_ BTreeMap<(String, String), f64>| {
            replica::grouped(m.iter().map(|((a, b), v)| (a.as_str(), b.as_str(), *v)))
        };
        BaselineRecord {
            demands: entries(&self.demand),
            links: entries(&self.bw),
            ..BaselineRecord::default()
        }
    }

    /// From a record (older records may list links at their nominal bandwidth too).
    fn from_record(r: BaselineRecord) -> Self {
        let own = |(a, b, v): (&str, &str, f64)| ((a.to_string(), b.to_string()), v);
        let old = |(a, b, v): (String, String, f64)| ((a, b), v);
        let demand: BTreeMap<(String, String), f64> = (replica::flat(&r.demands).map(own))
            .chain(r.demand.into_iter().map(old))
            .collect();
        let bw = (replica::flat(&r.links).map(own))
            .chain(r.bw.into_iter().map(old))
            .collect();
        Baseline {
            pairs: demand.keys().cloned().collect(),
            demand,
            bw,
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Rounds a new set of demands must hold before it is planned for.
const PERSIST_ROUNDS: u32 = 3;

fn moved(old: f64, new: f64, threshold: f64) -> bool {
    (new - old).abs() > threshold * old.abs().max(1.0)
}

struct Controller {
    cfg: ControllerConfig,
    adapt: bool,
    started: Instant,
    /// Unix time of `started`: the plan record's clocks are in Unix time.
    started_unix: f64,
    replica: Replica,
    /// This round's decisions, for the decision log in etcd (the leader writes them).
    decisions: Vec<Value>,
    view: NetworkView,
    /// The rules the controller keeps every daemon on (peer rules only); set through
    /// `set_desired`, which counts each change in `desired_gen`.
    desired: Option<Rules>,
    desired_gen: u64,
    /// (`desired_gen`, revision, underlay addresses) when every host's desired state
    /// in etcd was last found to be what `desired` makes: until one of them moves,
    /// a round need not compute every host's desired state again.
    published: Option<(u64, u64, BTreeMap<String, String>)>,
    baseline: Option<Baseline>,
    /// The demand pairs seen last round and for how many rounds in a row: a new set of
    /// demands is planned for only once it has held `PERSIST_ROUNDS` rounds (as VTTIF
    /// damps its topology), not in an application's first second.
    pairs_seen: (BTreeSet<(String, String)>, u32),
    /// When VADAPT last ran, and when a run last changed the plan (seconds since the
    /// start): the damping of `round::damped`.
    last_run: Option<f64>,
    last_adapted: Option<f64>,
    adaptations: u64,
    events: Vec<Value>,
    /// Events that claim a write (`applied`, `desired_written`), stamped
    /// and in `decisions`, reported only once etcd has confirmed the transaction
    /// carrying them (`write_failed` or `write_refused` otherwise).
    unconfirmed: Vec<Value>,
    last_status: Value,
    /// The last round's duration and the longest so far (ms), for the status.
    round_ms: (f64, f64),
    /// Each daemon's views as last read.
    readings: source::Readings,
    metrics: metrics::Metrics,
    /// When this round began.
    round_started: Instant,
    /// VM arrivals the daemons are converging on by themselves.
    arrivals: arrivals::Arrivals,
    /// Every reservation's verdict, by id (the leader's; see `reserve`).
    admissions: BTreeMap<String, crate::cluster::Admission>,
    /// The reservations asked for, as last read.
    asked: Vec<crate::cluster::ReservationRequest>,
    /// Each host's enforced reservations (its desired state's).
    enforce: BTreeMap<String, Vec<crate::cluster::ReservationSpec>>,
    /// The fleet's own best-effort traffic on each link (Mbit/s), which yields to
    /// reservations: what they may take of a link counts it as free (`reserve`).
    yielding: BTreeMap<(String, String), f64>,
    /// Rounds in a row each admitted reservation's route has been short.
    short_rounds: BTreeMap<String, u32>,
}

impl Controller {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn stamp(&self, e: &mut Value) {
        e["t"] = json!((self.now() * 1000.0).round() / 1000.0);
        e["unix_s"] = json!((unix_now() * 1000.0).round() / 1000.0);
        e["replica"] = json!(self.replica.id);
    }

    /// Reports `e` (log, events file, status) and keeps it for the decision log.
    #[cold]
    fn event(&mut self, mut e: Value) {
        self.stamp(&mut e);
        self.decisions.push(e.clone());
        self.report(e);
    }

    /// An event that claims a write: it goes into this round's transaction and is
    /// reported once etcd confirms that (see `unconfirmed`).
    #[cold]
    fn event_on_commit(&mut self, mut e: Value) {
        self.stamp(&mut e);
        self.decisions.push(e.clone());
        self.unconfirmed.push(e);
    }

    /// The names of the events waiting for a confirmation.
    fn unconfirmed_names(&self) -> Vec<Value> {
        self.unconfirmed
            .iter()
            .map(|e| e["event"].clone())
            .collect()
    }

    #[cold]
    fn report(&mut self, e: Value) {
        log::info!("controller: {e}");
        self.metrics.observe(&e);
        if let Some(path) = &self.cfg.controller.events_file {
            let line = format!("{e}\n");
            let r = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(err) = r {
                log::warn!("controller: cannot append to {}: {err}", path.display());
            }
        }
        self.events.push(e);
        if self.events.len() > 50 {
            self.events.remove(0);
        }
    }

    fn set_desired(&mut self, d: Option<Rules>) {
        self.desired = d;
        self.desired_gen += 1;
    }

    /// One round: the daemons' views read, the network view and the demands updated;
    /// the leader adopts, plans and writes; every replica writes its status.
    #[cold]
    fn round(&mut self) {
        self.round_started = Instant::now();
        let now = self.now();
        let source::Round {
            gathered,
            down,
            logged,
        } = source::gather(&self.cfg, self.replica.views(), &mut self.readings);
        for d in down.iter().filter(|_| !logged) {
            log::warn!("controller: {}: {}", d["host"], d["error"]);
        }
        for mut e in self
            .arrivals
            .observe(&gathered, self.started_unix, unix_now())
        {
            self.stamp(&mut e);
            self.report(e);
        }
        // Only the leader plans and writes.
        let leading = self.lead();
        let inv = round::Inventory::of(&gathered);
        let current: Rules = gathered
            .iter()
            .map(|g| (g.host.clone(), g.rules.clone()))
            .collect();
        let (topology, demands) = self.demands(&gathered, &inv);
        self.measure(&gathered, &inv, &current, now);
        let (demands, urgent) = match leading {
            true => self.reserve(&inv, &current, demands),
            false => (demands, None),
        };
        let all_up = down.is_empty();
        if all_up && self.desired.is_none() && leading {
            self.adopt(&current, gathered.len());
        }
        if let Some(why) = self.trigger(&demands, now, all_up, urgent) {
            if leading {
                self.last_run = Some(now);
                let prior = self.baseline.replace(self.rebase(&demands));
                // The routes in force are a plan to repair, adopted ones too: a full
                // solve of a fleet takes tens of seconds and its plan, which moves
                // every demand, rarely passes the judge (see `decide::judge`).
                let prior = prior.filter(|_| self.cfg.controller.repair);
                if self.plan(&why, prior.as_ref(), &inv.vms, &demands, &current) {
                    self.last_adapted = Some(now);
                }
            }
        }
        // The daemons converge on the desired state themselves.
        if leading {
            self.publish(&gathered, all_up);
        } else {
            self.decisions.clear();
            self.unconfirmed.clear();
        }
        let round = status::RoundView {
            now,
            gathered: &gathered,
            down,
            inv: &inv,
            demands,
            topology,
            current: &current,
        };
        self.write_status(round);
    }
}

#[cold]
pub fn run(args: ControllerArgs) -> Result<()> {
    let cfg = ControllerConfig::load(&args.config)?;
    let adapt = cfg.controller.adapt && !args.observe;
    let hosts: Vec<String> = cfg.hosts.iter().map(|h| h.name.clone()).collect();
    let default_link = (cfg.controller.default_link_bw_mbps, 0.0);
    let view = NetworkView::new(
        &hosts,
        cfg.controller.measurement_tolerance,
        default_link,
        |a, b| cfg.nominal(a, b),
    );
    let interval = Duration::from_millis(cfg.controller.interval_ms);
    let section = cfg.etcd().clone();
    let id = args.replica_id.clone().unwrap_or_else(default_replica_id);
    log::info!(
        "controller: replica {id} over etcd {} (prefix {}, lease {} s)",
        section.endpoints.join(","),
        section.keys().prefix(),
        section.lease_ttl_s
    );
    let metrics = metrics::Metrics::new(&id);
    if let Some(addr) = &args.metrics_listen {
        metrics.serve(addr)?;
    }
    let replica = Replica::start(section, id)?;
    let mut c = Controller {
        cfg,
        adapt,
        started: Instant::now(),
        started_unix: unix_now(),
        replica,
        decisions: Vec::new(),
        view,
        desired: None,
        desired_gen: 0,
        published: None,
        baseline: None,
        last_run: None,
        last_adapted: None,
        adaptations: 0,
        pairs_seen: (BTreeSet::new(), 0),
        events: Vec::new(),
        unconfirmed: Vec::new(),
        last_status: Value::Null,
        round_ms: (0.0, 0.0),
        readings: source::Readings::default(),
        metrics,
        round_started: Instant::now(),
        arrivals: arrivals::Arrivals::default(),
        admissions: BTreeMap::new(),
        asked: Vec::new(),
        enforce: BTreeMap::new(),
        yielding: BTreeMap::new(),
        short_rounds: BTreeMap::new(),
    };
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&quit))
            .context("cannot set signal handlers")?;
    }
    log::info!(
        "controller: {} daemon(s), every {} ms, adaptation {}",
        hosts.len(),
        interval.as_millis(),
        if adapt { "on" } else { "off (observe only)" }
    );
    while !quit.load(Ordering::Relaxed) {
        if args.duration.is_some_and(|d| c.now() >= d) {
            break;
        }
        let t0 = Instant::now();
        c.round();
        let took = t0.elapsed().as_secs_f64() * 1e3;
        c.round_ms = (took, c.round_ms.1.max(took));
        c.metrics.round(took / 1e3, c.replica.leading.is_some());
        let rest = interval.saturating_sub(t0.elapsed());
        let until = Instant::now() + rest;
        while Instant::now() < until && !quit.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(rest));
        }
    }
    log::info!("controller: stopped after {} adaptation(s)", c.adaptations);
    // Dropping the replica ends its etcd session: its lease is revoked, a standby leads.
    drop(c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn a_baseline_comes_back_from_its_record() {
        let b = Baseline {
            pairs: [k("a1", "c1"), k("a1", "b1")].into(),
            demand: [(k("a1", "c1"), 40.123_456), (k("a1", "b1"), 5.0)].into(),
            bw: [(k("A", "C"), 12.5)].into(),
        };
        let r = b.record();
        // Demands and links by their first name; no separate pairs, no flat lists.
        assert_eq!(
            r.links,
            [("A".to_string(), vec![("C".to_string(), 12.5)])].into()
        );
        assert_eq!(r.demands["a1"].len(), 2);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("\"pairs\"") && !json.contains("\"bw\""),
            "{json}"
        );
        let back = Baseline::from_record(serde_json::from_str(&json).unwrap());
        assert_eq!(back.pairs, b.pairs);
        assert_eq!(back.bw, b.bw);
        assert_eq!(back.demand[&k("a1", "c1")], 40.12);
        // A link it does not list was at its nominal bandwidth.
        assert_eq!(back.bw_of(&k("A", "B"), 100.0), 100.0);
        assert_eq!(back.bw_of(&k("A", "C"), 100.0), 12.5);
    }

    #[test]
    fn an_older_flat_baseline_record_is_read() {
        let old = r#"{"pairs": [["a1", "c1"]], "demand": [["a1", "c1", 40.0]],
            "bw": [["A", "C", 12.5]], "planned": true}"#;
        let b = Baseline::from_record(serde_json::from_str(old).unwrap());
        assert_eq!(b.pairs, [k("a1", "c1")].into());
        assert_eq!(b.bw_of(&k("A", "C"), 100.0), 12.5);
        assert_eq!(b.demand[&k("a1", "c1")], 40.0);
    }
}
