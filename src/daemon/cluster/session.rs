//! The control thread: one etcd session after another. A session connects to a member
//! that answers, grants a lease and keeps it alive, loads `desired/<host>` and has the
//! main loop apply it, and only then registers `hosts/<host>` (a restarted daemon is
//! ready only with its desired state in force). It then publishes each views snapshot,
//! watches `desired/<host>` (each new revision applied once) and reports
//! `applied/<host>`, all its keys under its lease. Any failure ends the session: the
//! workers forward with the rules in force, and a new session starts after a backoff
//! (100 ms doubling to 2 s, plus up to 10% jitter; back to 100 ms once registered).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use etcd_client::{
    Client, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, WatchOptions, WatchResponse,
};
use tokio::sync::{mpsc, watch};

use super::EtcdStatus;
use crate::cluster::etcd::EtcdSection;
use crate::cluster::{Applied, Desired, HostRecord, Keys};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the main loop gets to apply a desired state at registration.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The control thread's ends of the channels to the main loop.
pub struct Ends {
    pub desired_tx: mpsc::Sender<Desired>,
    pub applied_rx: mpsc::Receiver<Applied>,
    pub views_rx: watch::Receiver<Option<Arc<str>>>,
    pub shutdown: watch::Receiver<bool>,
}

pub struct Control {
    section: EtcdSection,
    keys: Keys,
    record: HostRecord,
    ends: Ends,
    status: Arc<EtcdStatus>,
    /// The last desired state applied, over every session.
    applied: Option<Applied>,
    /// The revision last handed to the main loop (applied or on its way).
    requested: Option<u64>,
    /// The previous session's lease: revoked once the next one is registered.
    old_lease: Option<i64>,
}

/// `d` and up to a tenth more, so that a fleet cut off at once does not come back in
/// lockstep.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d + d / 10 * (nanos % 1000) / 1000
}

/// The thread's body: sessions until shutdown, on the thread's runtime (which also
/// runs the API's writes, `super::writes`, until then).
#[cold]
pub fn run(rt: tokio::runtime::Runtime, control: Control) {
    rt.block_on(control.sessions());
}

impl Control {
    pub fn new(
        section: EtcdSection,
        record: HostRecord,
        ends: Ends,
        status: Arc<EtcdStatus>,
    ) -> Self {
        Self {
            keys: section.keys(),
            section,
            record,
            ends,
            status,
            applied: None,
            requested: None,
            old_lease: None,
        }
    }

    fn host(&self) -> &str {
        &self.record.host
    }

    /// Sessions until shutdown (the thread's body; the fleet simulator runs many of
    /// them on one runtime).
    #[cold]
    pub async fn sessions(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let lease = self.old_lease;
            let outcome = self.session().await;
            self.status.set_connected(false);
            let Err(e) = outcome else {
                return;
            };
            if self.old_lease != lease {
                backoff = BACKOFF_MIN; // the session had registered
            }
            let e = format!("{e:#}");
            let wait = jittered(backoff);
            log::warn!("etcd: {e}; forwarding with the rules in force, retrying in {wait:?}");
            self.status.error(&e);
            if self.sleep_or_shutdown(wait).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Sleeps `d`; true when shutdown came first.
    async fn sleep_or_shutdown(&mut self, d: Duration) -> bool {
        if *self.ends.shutdown.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.ends.shutdown.changed() => true,
        }
    }

    /// One session; `Ok` only at shutdown.
    #[cold]
    async fn session(&mut self) -> Result<()> {
        let mut c = self.section.connect().await?;
        self.status.contact();
        let lease = c
            .lease_grant(self.section.lease_ttl_s, None)
            .await
            .context("lease grant")?
            .id();
        self.status.set_lease(lease);
        let (mut keeper, mut alive) = c.lease_keep_alive(lease).await.context("keep-alive")?;
        let from = self.load_desired(&mut c, lease).await?;
        self.register(&mut c, lease).await?;
        self.publish_views(&mut c, lease).await?;
        let opts = WatchOptions::new().with_start_revision(from);
        let mut watch = c
            .watch(self.keys.desired(self.host()), Some(opts))
            .await
            .context("watch desired state")?;
        let mut tick = tokio::time::interval(self.keep_alive_every());
        loop {
            tokio::select! {
                _ = tick.tick() => self.keep_alive(&mut keeper, &mut alive, lease).await?,
                m = watch.message() => self.on_watch(m.context("watch desired state")?).await?,
                Some(a) = self.ends.applied_rx.recv() => self.report_applied(&mut c, lease, a).await?,
                r = self.ends.views_rx.changed() => {
                    r.context("the main loop is gone")?;
                    self.publish_views(&mut c, lease).await?;
                }
                _ = self.ends.shutdown.changed() => {
                    let revoked = tokio::time::timeout(self.timeout(), c.lease_revoke(lease)).await;
                    log::info!("etcd: leaving (lease {lease:x} revoked: {})", matches!(revoked, Ok(Ok(_))));
                    return Ok(());
                }
            }
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.section.timeout_ms)
    }

    /// A third of the TTL: two keep-alives may be lost before the lease expires.
    fn keep_alive_every(&self) -> Duration {
        Duration::from_millis(self.section.lease_ttl_s as u64 * 1000 / 3)
    }

    fn with_lease(lease: i64) -> Option<PutOptions> {
        Some(PutOptions::new().with_lease(lease))
    }

    /// Reads `desired/<host>` and has the main loop apply it (unless that revision is
    /// in force already), then reports `applied/<host>`. Returns the revision to watch
    /// from.
    #[cold]
    async fn load_desired(&mut self, c: &mut Client, lease: i64) -> Result<i64> {
        // A revision handed over in a session that failed may never have been applied.
        self.requested = self.applied.as_ref().map(|a| a.revision);
        let resp = c
            .get(self.keys.desired(self.host()), None)
            .await
            .context("read desired state")?;
        self.status.contact();
        let from = resp.header().map_or(0, |h| h.revision()) + 1;
        if let Some(d) = resp.kvs().first().and_then(|kv| self.parse(kv.value())) {
            let want = d.revision;
            if self.request(d).await? {
                self.wait_applied(want).await?;
            }
        }
        if let Some(a) = &self.applied {
            let v = serde_json::to_vec(a)?;
            c.put(self.keys.applied(self.host()), v, Self::with_lease(lease))
                .await
                .context("write applied revision")?;
        }
        Ok(from)
    }

    /// Waits until the main loop applied revision `want`.
    #[cold]
    async fn wait_applied(&mut self, want: u64) -> Result<()> {
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        loop {
            let a = tokio::time::timeout_at(deadline, self.ends.applied_rx.recv())
                .await
                .context("the main loop did not apply the desired state")?
                .context("the main loop is gone")?;
            let got = a.revision;
            self.note_applied(a);
            if got == want {
                return Ok(());
            }
        }
    }

    #[cold]
    async fn register(&mut self, c: &mut Client, lease: i64) -> Result<()> {
        let key = self.keys.host(self.host());
        c.put(
            key.as_str(),
            serde_json::to_vec(&self.record)?,
            Self::with_lease(lease),
        )
        .await
        .context("register")?;
        self.status.contact();
        self.status.registered();
        log::info!("etcd: registered {key} (lease {lease:x})");
        if let Some(old) = self.old_lease.replace(lease) {
            // Its keys were all written again under the new lease.
            let _ = tokio::time::timeout(self.timeout(), c.lease_revoke(old)).await;
        }
        Ok(())
    }

    #[cold]
    async fn keep_alive(
        &mut self,
        keeper: &mut LeaseKeeper,
        alive: &mut LeaseKeepAliveStream,
        lease: i64,
    ) -> Result<()> {
        keeper.keep_alive().await.context("keep-alive")?;
        let r = tokio::time::timeout(self.timeout(), alive.message())
            .await
            .context("no keep-alive answer in time")?
            .context("keep-alive")?
            .context("the keep-alive stream ended")?;
        ensure!(r.ttl() > 0, "lease {lease:x} expired");
        self.status.contact();
        Ok(())
    }

    /// A desired state from its JSON; a malformed one is counted and left out.
    #[cold]
    fn parse(&self, value: &[u8]) -> Option<Desired> {
        match serde_json::from_slice(value) {
            Ok(d) => Some(d),
            Err(e) => {
                let e = format!("desired/{} is not a desired state: {e}", self.host());
                log::warn!("etcd: {e}");
                self.status.error(&e);
                None
            }
        }
    }

    /// Hands `d` to the main loop unless its revision is applied or on its way: true
    /// when handed.
    #[cold]
    async fn request(&mut self, d: Desired) -> Result<bool> {
        if self.requested == Some(d.revision) {
            return Ok(false);
        }
        self.requested = Some(d.revision);
        self.ends
            .desired_tx
            .send(d)
            .await
            .ok()
            .context("the main loop is gone")?;
        Ok(true)
    }

    #[cold]
    async fn on_watch(&mut self, m: Option<WatchResponse>) -> Result<()> {
        let Some(resp) = m else {
            bail!("the watch of desired state ended");
        };
        if resp.canceled() {
            bail!(
                "the watch of desired state was cancelled: {}",
                resp.cancel_reason()
            );
        }
        self.status.contact();
        let mut latest = None;
        for ev in resp.events() {
            match (ev.event_type(), ev.kv()) {
                (EventType::Put, Some(kv)) => latest = self.parse(kv.value()).or(latest),
                _ => log::warn!("etcd: desired state deleted; the rules in force stay"),
            }
        }
        if let Some(d) = latest {
            self.request(d).await?;
        }
        Ok(())
    }

    fn note_applied(&mut self, a: Applied) {
        self.status.set_applied(a.revision);
        if !a.errors.is_empty() {
            log::warn!(
                "etcd: desired revision {}: refused {}",
                a.revision,
                a.errors.join("; ")
            );
        }
        self.applied = Some(a);
    }

    #[cold]
    async fn report_applied(&mut self, c: &mut Client, lease: i64, a: Applied) -> Result<()> {
        let v = serde_json::to_vec(&a)?;
        log::info!("etcd: applied desired revision {}", a.revision);
        self.note_applied(a);
        c.put(self.keys.applied(self.host()), v, Self::with_lease(lease))
            .await
            .context("write applied revision")?;
        self.status.contact();
        Ok(())
    }

    #[cold]
    async fn publish_views(&mut self, c: &mut Client, lease: i64) -> Result<()> {
        let Some(text) = self.ends.views_rx.borrow_and_update().clone() else {
            return Ok(());
        };
        c.put(
            self.keys.views(self.host()),
            text.as_bytes(),
            Self::with_lease(lease),
        )
        .await
        .context("publish views")?;
        self.status.contact();
        self.status.views_published();
        Ok(())
    }
}
