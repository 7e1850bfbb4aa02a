//! The daemon as an etcd v3 client (`[etcd]`, mode "switch"): its registration, its
//! published views and its desired state (key space: `crate::cluster`). The session
//! runs on a control thread of its own, on a tokio current-thread runtime
//! (`session.rs`); the main lcore's loop exchanges with it through bounded channels
//! and never waits on it: every publish interval it hands over a snapshot of its views,
//! and it applies each desired state it receives with the API's lossless RCU updates.
//! The workers never see any of it: with etcd gone they forward with the rules in force.
//! The thread is spawned from the main lcore and inherits its CPU set, never a worker's.
//! Its runtime also runs the writes the HTTP API makes for an operator (`writes.rs`).

pub(crate) mod session;
mod status;
mod views;
pub(crate) mod writes;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use analysis::engine::AnalysisLoop;
use anyhow::{Context, Result};
use dataplane::switch::counters::SwitchCounters;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

pub use status::{unix_now, EtcdStatus};

use crate::cluster::etcd::EtcdSection;
use crate::cluster::{
    Applied, Desired, HostRecord, HostViews, LOCATIONS_RECENT_S, MAX_VALUE_BYTES,
};
use crate::daemon::api::Operations;

/// Desired states in flight to the main loop, and applied ones back: the main loop
/// drains both every pass, so a handful is plenty.
const CHANNEL: usize = 4;

/// The shortest time between two publications of the views, an arrival's early one
/// included.
const EARLY_VIEWS: Duration = Duration::from_millis(100);

/// The main loop's end of the session.
pub struct Link {
    status: Arc<EtcdStatus>,
    desired_rx: mpsc::Receiver<Desired>,
    applied_tx: mpsc::Sender<Applied>,
    /// The latest views (JSON); the control thread publishes each new one.
    views_tx: watch::Sender<Option<Arc<str>>>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    host: String,
    every: Duration,
    next_views: Instant,
    /// Arrivals applied as of the last views handed over: a new one is published
    /// without waiting for the interval (at most one early publication per
    /// `EARLY_VIEWS`), so that the controller sees a migrated VM where it is now.
    arrivals: u64,
    last_views: Instant,
    /// How long the control thread gets to revoke its lease at exit.
    exit_wait: Duration,
    /// The API's writes, on the control thread's runtime.
    writes: writes::Writes,
}

impl Link {
    /// Starts the control thread; it connects (and keeps reconnecting) on its own.
    #[cold]
    pub fn start(section: &EtcdSection, record: HostRecord) -> Result<Self> {
        section.validate().context("[etcd]")?;
        let status = Arc::new(EtcdStatus::default());
        let (desired_tx, desired_rx) = mpsc::channel(CHANNEL);
        let (applied_tx, applied_rx) = mpsc::channel(CHANNEL);
        let (views_tx, views_rx) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let host = record.host.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a tokio runtime for the etcd control thread")?;
        let writes = writes::Writes::new(rt.handle().clone(), section.clone());
        let control = session::Control::new(
            section.clone(),
            record,
            session::Ends {
                desired_tx,
                applied_rx,
                views_rx,
                shutdown: shutdown_rx,
            },
            Arc::clone(&status),
        );
        let thread = std::thread::Builder::new()
            .name("etcd".into())
            .spawn(move || session::run(rt, control))
            .context("cannot start the etcd control thread")?;
        log::info!(
            "etcd: host {host} at {} (prefix {})",
            section.endpoints.join(","),
            section.keys().prefix()
        );
        Ok(Self {
            status,
            desired_rx,
            applied_tx,
            views_tx,
            shutdown,
            thread: Some(thread),
            host,
            every: Duration::from_millis(section.publish_interval_ms),
            next_views: Instant::now(),
            arrivals: 0,
            last_views: Instant::now(),
            exit_wait: Duration::from_millis(section.timeout_ms * 2),
            writes,
        })
    }

    pub fn status(&self) -> Arc<EtcdStatus> {
        Arc::clone(&self.status)
    }

    /// The HTTP API's way to etcd (`POST`/`DELETE /reservations`).
    pub fn writes(&self) -> writes::Writes {
        self.writes.clone()
    }

    /// One pass of the main loop: applies the desired states received, hands over the
    /// views when their interval is up. Never blocks.
    pub fn poll(&mut self, ops: &Operations<'_>, counters: &[SwitchCounters], a: &AnalysisLoop) {
        while let Ok(desired) = self.desired_rx.try_recv() {
            self.apply(ops, &desired);
        }
        let now = Instant::now();
        let arrived = ops.arrivals_applied() != self.arrivals;
        if now >= self.next_views || (arrived && now >= self.last_views + EARLY_VIEWS) {
            self.next_views = now + self.every;
            self.last_views = now;
            self.arrivals = ops.arrivals_applied();
            self.hand_over_views(ops, counters, a);
        }
    }

    #[cold]
    fn apply(&self, ops: &Operations<'_>, desired: &Desired) {
        let applied = ops.apply_desired(desired);
        if self.applied_tx.try_send(applied).is_err() {
            // The control thread re-reads the desired state when its session resumes.
            self.status
                .error("the applied revision could not be handed to the control thread");
        }
    }

    #[cold]
    fn hand_over_views(&self, ops: &Operations<'_>, counters: &[SwitchCounters], a: &AnalysisLoop) {
        let doc = |r: Result<Value>| r.unwrap_or(Value::Null);
        let v = HostViews {
            host: self.host.clone(),
            at_unix_s: unix_now(),
            rules: ops.rules(),
            links: ops.links(),
            vms: ops.vms(),
            paths: doc(ops.view(a, "wren")),
            matrix: doc(ops.view(a, "vttif")),
            stats: ops.stats(counters),
            locations: ops.recent_locations(Duration::from_secs_f64(LOCATIONS_RECENT_S)),
        };
        let text = match views::bounded(v, MAX_VALUE_BYTES) {
            views::Bounded::Whole(t) => t,
            views::Bounded::Trimmed(t) => {
                self.status.views_trimmed();
                t
            }
            views::Bounded::TooBig(n) => {
                self.status.views_trimmed();
                self.status.error(&format!(
                    "views of {n} bytes exceed {MAX_VALUE_BYTES} even trimmed: not published"
                ));
                return;
            }
        };
        self.views_tx.send_replace(Some(text.into()));
    }

    /// Ends the session: the control thread revokes its lease (the host leaves
    /// `hosts/` at once) within a bounded wait; past it the thread is left to the exit.
    #[cold]
    pub fn shut_down(mut self) {
        let _ = self.shutdown.send(true);
        let t0 = Instant::now();
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && t0.elapsed() < self.exit_wait {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Link {
    /// A run that fails still ends the session (the lease then expires on its own).
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
