//! Every daemon's `views/<host>`, kept current by a watch rather than read each round.
//!
//! A thread of its own (a tokio current-thread runtime) reads `views/` once, in pages
//! of one snapshot, then watches the prefix from the revision after that snapshot and
//! applies each put and delete to a shared map of parsed views: a planning round takes
//! a copy of the map (reference-counted views), with no etcd request. A daemon's views
//! hang on its lease, so a dead host's delete reaches the map within the TTL.
//!
//! The map is trusted only while the watch is known to be live: after a silence (two
//! publish intervals: daemons publish every `publish_interval_ms`) the member behind it
//! must answer a read on the same connection. When the watch fails, is cancelled (a
//! compacted revision) or its member does not answer, the map is marked stale with the reason,
//! rounds see an error instead of old views, and the thread reads a new snapshot, with
//! backoff.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions, WatchResponse};

use crate::cluster::etcd::EtcdSection;
use crate::cluster::{HostViews, Keys};

/// Keys per read of `views/`: a daemon's views may reach `MAX_VALUE_BYTES`.
const VIEWS_PAGE: i64 = 16;

/// The largest read reply taken (tonic's default is 4 MiB).
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One host's views, parsed, or why they could not be.
pub type HostEntry = std::result::Result<Arc<HostViews>, String>;

/// The map as the watch keeps it.
#[derive(Default)]
struct Cache {
    views: BTreeMap<String, HostEntry>,
    /// `None` while the map follows etcd; the reason otherwise.
    stale: Option<String>,
    /// The revision the map reflects (snapshot or last event).
    revision: i64,
    /// Events applied since the thread started (puts and deletes).
    events: u64,
}

struct Shared {
    cache: Mutex<Cache>,
    quit: AtomicBool,
}

/// The watching thread and the map it keeps.
pub struct ViewsWatch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ViewsWatch {
    /// Starts the thread; the map is stale ("not read yet") until its first snapshot.
    #[cold]
    pub fn start(section: EtcdSection) -> Result<Self> {
        let shared = Arc::new(Shared {
            cache: Mutex::new(Cache {
                stale: Some("views not read yet".into()),
                ..Cache::default()
            }),
            quit: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("etcd-views".into())
                .spawn(move || watch_thread(&section, &shared))
                .context("cannot start the views watch thread")?
        };
        Ok(ViewsWatch {
            shared,
            thread: Some(thread),
        })
    }

    /// Every host's views as the watch has them; an error while the map is stale.
    pub fn views(&self) -> Result<BTreeMap<String, HostEntry>> {
        let c = self
            .shared
            .cache
            .lock()
            .map_err(|_| anyhow::anyhow!("views lock"))?;
        if let Some(why) = &c.stale {
            bail!("{why}");
        }
        Ok(c.views.clone())
    }

    /// (revision the map reflects, events applied so far), for the status.
    pub fn progress(&self) -> (i64, u64) {
        self.shared
            .cache
            .lock()
            .map_or((0, 0), |c| (c.revision, c.events))
    }
}

impl Drop for ViewsWatch {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cold]
fn watch_thread(section: &EtcdSection, shared: &Shared) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            stale(shared, format!("no runtime for the views watch: {e}"));
            return;
        }
    };
    rt.block_on(async {
        let mut backoff = BACKOFF_MIN;
        while !shared.quit.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            let Err(e) = follow(section, shared).await else {
                return;
            };
            let why = format!("etcd: views: {e:#}");
            log::warn!("controller: {why}; reading them again");
            stale(shared, why);
            // A watch that ran for a while earned a quick retry; a failing one backs off.
            if t0.elapsed() > BACKOFF_MAX * 4 {
                backoff = BACKOFF_MIN;
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !shared.quit.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    });
}

fn stale(shared: &Shared, why: String) {
    if let Ok(mut c) = shared.cache.lock() {
        c.stale = Some(why);
    }
}

/// How long the watch may stay silent before its member is asked whether it lives.
fn silence(section: &EtcdSection) -> Duration {
    Duration::from_millis((2 * section.publish_interval_ms).max(2000))
}

/// One snapshot and the watch that follows it; `Ok` only when asked to quit.
#[cold]
async fn follow(section: &EtcdSection, shared: &Shared) -> Result<()> {
    let keys = section.keys();
    let c = section.connect_unbounded().await?;
    let (views, revision) = tokio::time::timeout(
        Duration::from_millis(section.timeout_ms.max(1000) * 4),
        snapshot(&c, &keys),
    )
    .await
    .context("reading views/: no answer")??;
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut w = c.watch_client();
    let mut stream = w
        .watch(keys.all_views(), Some(opts))
        .await
        .context("watching views/")?;
    if let Ok(mut cache) = shared.cache.lock() {
        cache.views = views;
        cache.revision = revision;
        cache.stale = None;
    }
    let quiet = silence(section);
    let answer_within = Duration::from_millis(section.timeout_ms.max(500) * 2);
    let mut last = Instant::now();
    loop {
        if shared.quit.load(Ordering::Relaxed) {
            return Ok(());
        }
        if last.elapsed() > quiet {
            alive(&c, &keys, answer_within).await?;
            last = Instant::now();
        }
        tokio::select! {
            m = stream.message() => {
                apply(&keys, shared, m.context("watch of views/")?)?;
                last = Instant::now();
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// After a silence: whether the member behind the watch still answers (a count of
/// `views/` on the same connection, within `within`).
async fn alive(c: &Client, keys: &Keys, within: Duration) -> Result<()> {
    let mut kv = c.kv_client();
    let opts = GetOptions::new().with_prefix().with_count_only();
    tokio::time::timeout(within, kv.get(keys.all_views(), Some(opts)))
        .await
        .with_context(|| {
            format!(
                "the watch of views/ was silent and its member did not answer within {:.1} s",
                within.as_secs_f64()
            )
        })?
        .context("the watch of views/ was silent and its member failed a read")?;
    Ok(())
}

/// `views/` in pages of one snapshot: the parsed views and the snapshot's revision.
async fn snapshot(c: &Client, keys: &Keys) -> Result<(BTreeMap<String, HostEntry>, i64)> {
    let mut kv = c.kv_client().max_decoding_message_size(MAX_REPLY_BYTES);
    let prefix = keys.all_views();
    let end = format!("{}0", prefix.trim_end_matches('/'));
    let mut from = prefix.clone();
    let mut revision = 0;
    let mut out = BTreeMap::new();
    loop {
        let opts = GetOptions::new()
            .with_range(end.as_str())
            .with_limit(VIEWS_PAGE)
            .with_revision(revision);
        let resp = kv.get(from.as_str(), Some(opts)).await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        for kv in resp.kvs() {
            from = format!("{}\0", kv.key_str().unwrap_or(""));
            if let Some((h, v)) = parse(keys, kv) {
                out.insert(h, v);
            }
        }
        if !resp.more() || resp.kvs().is_empty() {
            return Ok((out, revision));
        }
    }
}

/// A `views/<host>` key's host and its value parsed (`None`: not a host's key).
fn parse(keys: &Keys, kv: &KeyValue) -> Option<(String, HostEntry)> {
    let h = keys.host_of("views", kv.key_str().ok()?)?.to_string();
    let v = serde_json::from_slice::<HostViews>(kv.value())
        .map(Arc::new)
        .map_err(|e| format!("views/{h} is not a host's views: {e}"));
    Some((h, v))
}

/// One watch response into the map; an error when the watch was cancelled or ended.
fn apply(keys: &Keys, shared: &Shared, m: Option<WatchResponse>) -> Result<()> {
    let Some(resp) = m else {
        bail!("the watch of views/ ended");
    };
    if resp.canceled() {
        bail!(
            "the watch of views/ was cancelled (compacted at {}): {}",
            resp.compact_revision(),
            resp.cancel_reason()
        );
    }
    // Parsed outside the lock: the planner's copy never waits on JSON.
    let mut changes = Vec::with_capacity(resp.events().len());
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        match ev.event_type() {
            EventType::Put => changes.extend(parse(keys, kv).map(|(h, v)| (h, Some(v)))),
            EventType::Delete => {
                if let Some(h) = kv.key_str().ok().and_then(|k| keys.host_of("views", k)) {
                    changes.push((h.to_string(), None));
                }
            }
        }
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut c = shared
        .cache
        .lock()
        .map_err(|_| anyhow::anyhow!("views lock"))?;
    c.events += changes.len() as u64;
    for (h, v) in changes {
        match v {
            Some(v) => c.views.insert(h, v),
            None => c.views.remove(&h),
        };
    }
    c.revision = c.revision.max(revision);
    Ok(())
}
