//! A controller replica: its election session, its reads and its guarded writes (the
//! daemons' views come from a watch, views.rs). Any number of replicas run; one leads, through etcd's election API on
//! `leader` with a lease of `lease_ttl_s`, kept alive by a session thread of its own
//! (a tokio current-thread runtime) whatever the planning thread is doing. Every write
//! of the leader is a transaction that compares its election key's create revision:
//! a replica whose key is gone (lease expired, key deleted) writes nothing, whatever
//! it believes. An unreachable etcd costs retries with backoff and a new campaign,
//! never the process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, LeaderKey, LeaseKeepAliveStream,
    LeaseKeeper, SortOrder, SortTarget, Txn, TxnOp,
};
use serde::{Deserialize, Serialize};

use super::decide::Rules;
use super::views::{HostEntry, ViewsWatch};
use crate::cluster::etcd::EtcdSection;
use crate::cluster::{Desired, Keys, ReservationRequest};

/// The reservations asked for, as read from etcd.
#[derive(Debug, Default)]
pub struct Requests {
    pub asked: Vec<ReservationRequest>,
    /// Keys under `reservations/` whose value is not a request: (id, why).
    pub unreadable: Vec<(String, String)>,
}

/// Operations in one transaction: under etcd's default `--max-txn-ops` (128).
pub const MAX_TXN_OPS: usize = 120;

/// Bytes of keys and values in one transaction: under etcd's default
/// `--max-request-bytes` (1.5 MiB).
pub const MAX_TXN_BYTES: usize = 1024 * 1024;

/// One write of the leader.
#[derive(Debug, Clone, PartialEq)]
pub enum EtcdWrite {
    Put(String, String),
    /// Deletes the keys in [from, to).
    DeleteRange(String, String),
}

impl EtcdWrite {
    fn key(&self) -> &str {
        match self {
            EtcdWrite::Put(k, _) | EtcdWrite::DeleteRange(k, _) => k,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            EtcdWrite::Put(k, v) => k.len() + v.len(),
            EtcdWrite::DeleteRange(a, b) => a.len() + b.len(),
        }
    }

    fn op(&self) -> TxnOp {
        match self {
            EtcdWrite::Put(k, v) => TxnOp::put(k.as_str(), v.as_str(), None),
            EtcdWrite::DeleteRange(a, b) => TxnOp::delete(
                a.as_str(),
                Some(DeleteOptions::new().with_range(b.as_str())),
            ),
        }
    }
}

/// `writes` cut into transactions of at most `MAX_TXN_OPS` operations and
/// `MAX_TXN_BYTES` bytes (a larger write goes alone), in order.
pub fn chunks(writes: &[EtcdWrite]) -> Vec<&[EtcdWrite]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, w) in writes.iter().enumerate() {
        let full = i - start == MAX_TXN_OPS || (i > start && bytes + w.bytes() > MAX_TXN_BYTES);
        if full {
            out.push(&writes[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += w.bytes();
    }
    if start < writes.len() {
        out.push(&writes[start..]);
    }
    out
}

/// The first write that no transaction can carry (over `MAX_TXN_BYTES` alone), as
/// an error that names its key and size: etcd would refuse it with a gRPC size error
/// that names neither.
pub fn check_sizes(writes: &[EtcdWrite]) -> Result<()> {
    match writes.iter().find(|w| w.bytes() > MAX_TXN_BYTES) {
        Some(w) => bail!(
            "{}: {} bytes, over the {MAX_TXN_BYTES}-byte limit of one transaction",
            w.key(),
            w.bytes()
        ),
        None => Ok(()),
    }
}

/// Decisions kept in `decisions/`.
pub const DECISIONS_KEPT: u64 = 100;

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `plan`: the state a leader works from, so that the next one resumes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The revision of the last desired state written.
    pub revision: u64,
    /// The sequence number of the next decision.
    pub next_seq: u64,
    /// The replica that wrote it.
    pub leader: String,
    pub at_unix_s: f64,
    /// Unused: the plan in force is every host's `desired/` key (a copy here grew
    /// with the fleet past etcd's request limit). Read for records that carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    /// What the last VADAPT run was made from (see the controller's triggers).
    pub baseline: Option<BaselineRecord>,
    /// When VADAPT last ran, and when a run last changed the plan (damping:
    /// `min_interval_s`).
    pub last_run_unix_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_adapted_unix_s: Option<f64>,
    /// The demand pairs seen last, by source VM, when they are not the baseline's
    /// (in a steady state they are), and for how many rounds in a row (at most the
    /// rounds a new set must hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Grouped<String>>,
    /// Older records' flat list of the pairs seen; read.
    #[serde(default, skip_serializing)]
    pub pairs_seen: Vec<(String, String)>,
    pub pairs_rounds: u32,
    pub adaptations: u64,
    /// Every reservation's verdict, by id (`reservations/<id>`; see the controller's
    /// admission).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reservations: BTreeMap<String, crate::cluster::Admission>,
}

/// Entries keyed by their first name: a source VM's demands, or a host's links. A
/// fleet's record repeats neither name nor digits it does not need: at 500 hosts and
/// 7,228 demands the flat lists (pairs, demands, pairs seen, full-precision rates)
/// made a 1.04 MB record, at the 1-MiB limit of one etcd transaction.
pub type Grouped<T> = BTreeMap<String, Vec<T>>;

/// `(a, b, v)` entries grouped by `a`, `v` to 0.01 (Mbit/s).
pub fn grouped<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str, f64)>,
) -> Grouped<(String, f64)> {
    let mut out: Grouped<(String, f64)> = BTreeMap::new();
    for (a, b, v) in entries {
        let v = (v * 100.0).round() / 100.0;
        out.entry(a.to_string())
            .or_default()
            .push((b.to_string(), v));
    }
    out
}

/// The `(a, b, v)` entries of a grouped map.
pub fn flat(g: &Grouped<(String, f64)>) -> impl Iterator<Item = (&str, &str, f64)> {
    g.iter()
        .flat_map(|(a, v)| v.iter().map(move |(b, x)| (a.as_str(), b.as_str(), *x)))
}

/// What the last VADAPT run was made from; demands and links by their first name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecord {
    /// Source VM -> (destination VM, Mbit/s). Its pairs are the demand pairs planned.
    #[serde(default)]
    pub demands: Grouped<(String, f64)>,
    /// Host -> (peer, Mbit/s): the links whose bandwidth was not their nominal one (the
    /// others read as nominal).
    #[serde(default)]
    pub links: Grouped<(String, f64)>,
    /// Older records' flat lists, (src, dst, Mbit/s) and (from, to, Mbit/s); read.
    #[serde(default, skip_serializing)]
    pub demand: Vec<(String, String, f64)>,
    #[serde(default, skip_serializing)]
    pub bw: Vec<(String, String, f64)>,
}

/// What a new leader reads before it plans.
pub struct Loaded {
    pub plan: Option<PlanRecord>,
    pub desired: BTreeMap<String, Desired>,
    /// The newest decision's sequence number.
    pub last_seq: Option<u64>,
}

/// State shared by the planning thread and the session thread.
#[derive(Default)]
struct Shared {
    /// The election key while this replica leads.
    leader: Mutex<Option<LeaderKey>>,
    /// Set by the planner when a guarded write was refused: the session ends, and
    /// campaigns again with a new lease.
    deposed: AtomicBool,
    quit: AtomicBool,
}

pub struct Replica {
    pub id: String,
    pub keys: Keys,
    section: EtcdSection,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    /// No request before this (backoff after a failure), and the next wait.
    retry_at: Option<Instant>,
    backoff: Duration,
    shared: Arc<Shared>,
    session: Option<JoinHandle<()>>,
    /// Every daemon's views, kept by a watch (views.rs).
    watch: ViewsWatch,
    /// The election key the leader state below was loaded under.
    pub leading: Option<LeaderKey>,
    /// The desired state in etcd, per host, as this leader last read or wrote it.
    pub written: BTreeMap<String, Desired>,
    pub revision: u64,
    pub next_seq: u64,
    /// The plan record last written (`at_unix_s` zeroed), to write only changes.
    pub last_plan: Option<PlanRecord>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// A retry at least this often: etcd back is etcd used within this.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Replica {
    /// Starts the session thread (it campaigns at once).
    #[cold]
    pub fn start(section: EtcdSection, id: String) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start a tokio runtime")?;
        let shared = Arc::new(Shared::default());
        let session = {
            let (section, id, shared) = (section.clone(), id.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("etcd-session".into())
                .spawn(move || session_thread(&section, &id, &shared))
                .context("cannot start the etcd session thread")?
        };
        let watch = ViewsWatch::start(section.clone())?;
        Ok(Replica {
            id,
            keys: section.keys(),
            watch,
            section,
            rt,
            client: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
            shared,
            session: Some(session),
            leading: None,
            written: BTreeMap::new(),
            revision: 0,
            next_seq: 1,
            last_plan: None,
        })
    }

    /// The election key while this replica's session holds the election.
    pub fn leader_key(&self) -> Option<LeaderKey> {
        self.shared.leader.lock().ok()?.clone()
    }

    /// A guarded write was refused: this replica no longer leads. Its session starts
    /// over (new lease, new campaign).
    #[cold]
    pub fn depose(&mut self) {
        self.leading = None;
        if let Ok(mut l) = self.shared.leader.lock() {
            *l = None;
        }
        self.shared.deposed.store(true, Ordering::Relaxed);
    }

    /// Runs `f` with a client, connecting first when needed; after a failure the next
    /// request waits out a backoff (0.5 s doubling to 2 s), and the client is dropped
    /// so that the next one reaches a member that answers.
    #[cold]
    fn call<T>(&mut self, what: &str, f: impl AsyncFnOnce(Client) -> Result<T>) -> Result<T> {
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if now < at {
                bail!(
                    "etcd unreachable; next attempt in {:.1} s",
                    (at - now).as_secs_f64()
                );
            }
        }
        let section = &self.section;
        let client = self.client.take();
        let r = self.rt.block_on(async {
            let client = match client {
                Some(c) => c,
                None => section.connect().await?,
            };
            let out = f(client.clone()).await?;
            Ok::<_, anyhow::Error>((client, out))
        });
        match r {
            Ok((client, out)) => {
                if self.retry_at.take().is_some() {
                    log::info!("controller: etcd reachable again");
                }
                self.backoff = BACKOFF_MIN;
                self.client = Some(client);
                Ok(out)
            }
            Err(e) => {
                log::warn!(
                    "controller: etcd: {what}: {e:#}; next attempt in {:.1} s",
                    self.backoff.as_secs_f64()
                );
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Err(e.context(what.to_string()))
            }
        }
    }

    /// Every host's views, as the watch keeps them (no etcd request); an error while
    /// the watch is not known to follow etcd.
    pub fn views(&self) -> Result<BTreeMap<String, HostEntry>> {
        self.watch.views()
    }

    /// (revision the views reflect, watch events applied so far).
    pub fn views_progress(&self) -> (i64, u64) {
        self.watch.progress()
    }

    /// Every reservation asked for (`reservations/`), and the keys whose value is not
    /// one, as (id, why).
    #[cold]
    pub fn reservations(&mut self) -> Result<Requests> {
        let keys = self.keys.clone();
        self.call("reading reservations", async |mut c| {
            let all = c
                .get(keys.reservations(), Some(GetOptions::new().with_prefix()))
                .await?;
            let mut out = Requests::default();
            for kv in all.kvs() {
                let key = kv.key_str().unwrap_or("");
                let id = key
                    .strip_prefix(keys.reservations().as_str())
                    .unwrap_or(key);
                match serde_json::from_slice::<ReservationRequest>(kv.value()) {
                    Ok(r) if r.id == id => out.asked.push(r),
                    Ok(r) => out
                        .unreadable
                        .push((id.into(), format!("its id says {:?}", r.id))),
                    Err(e) => out
                        .unreadable
                        .push((id.into(), format!("not a reservation: {e}"))),
                }
            }
            Ok(out)
        })
    }

    /// What a new leader resumes from: `plan`, `desired/`, the newest decision.
    #[cold]
    pub fn load(&mut self) -> Result<Loaded> {
        let keys = self.keys.clone();
        self.call("reading the plan", async |mut c| {
            let plan = match c.get(keys.plan(), None).await?.kvs().first() {
                Some(kv) => Some(
                    serde_json::from_slice::<PlanRecord>(kv.value())
                        .context("the plan in etcd is not a plan record")?,
                ),
                None => None,
            };
            let mut desired = BTreeMap::new();
            let all = c
                .get(keys.all_desired(), Some(GetOptions::new().with_prefix()))
                .await?;
            for kv in all.kvs() {
                let Some(h) = keys.host_of("desired", kv.key_str().unwrap_or("")) else {
                    continue;
                };
                match serde_json::from_slice::<Desired>(kv.value()) {
                    Ok(d) => {
                        desired.insert(h.to_string(), d);
                    }
                    Err(e) => log::warn!("controller: desired/{h} unreadable ({e}): rewritten"),
                }
            }
            let newest = GetOptions::new()
                .with_prefix()
                .with_keys_only()
                .with_sort(SortTarget::Key, SortOrder::Descend)
                .with_limit(1);
            let last = c.get(keys.decisions(), Some(newest)).await?;
            let last_seq = last
                .kvs()
                .first()
                .and_then(|kv| kv.key_str().ok()?.rsplit('/').next()?.parse().ok());
            Ok(Loaded {
                plan,
                desired,
                last_seq,
            })
        })
    }

    /// Writes `writes` in transactions (see [`chunks`]), each guarded by `key` (the
    /// election key's create revision), in order: callers put what must land last
    /// (the plan) last. `Ok(false)`: a guard failed, that chunk and the rest were not
    /// written (this replica does not lead).
    #[cold]
    pub fn write_guarded(&mut self, key: &LeaderKey, writes: &[EtcdWrite]) -> Result<bool> {
        if let Err(e) = check_sizes(writes) {
            log::warn!("controller: etcd: writing desired state: {e:#}");
            return Err(e);
        }
        let guard = Compare::create_revision(key.key(), CompareOp::Equal, key.rev());
        let txns: Vec<Vec<TxnOp>> = chunks(writes)
            .into_iter()
            .map(|c| c.iter().map(EtcdWrite::op).collect())
            .collect();
        self.call("writing desired state", async |mut c| {
            for ops in txns {
                let txn = Txn::new().when([guard.clone()]).and_then(ops);
                if !c.txn(txn).await?.succeeded() {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// One round's writes, in order: the desired state of each changed host at
    /// `revision`, the decisions from `next_seq` on, the pruning of decisions beyond the
    /// last `DECISIONS_KEPT`, and `plan` last.
    pub fn round_writes(
        &self,
        revision: u64,
        changed: &[(String, Desired)],
        decisions: &[serde_json::Value],
        plan: &PlanRecord,
    ) -> Vec<EtcdWrite> {
        let mut out = Vec::with_capacity(changed.len() + decisions.len() + 2);
        for (h, d) in changed {
            let d = Desired {
                revision,
                ..d.clone()
            };
            out.push(EtcdWrite::Put(self.keys.desired(h), to_json(&d)));
        }
        for (i, d) in decisions.iter().enumerate() {
            let seq = self.next_seq + i as u64;
            out.push(EtcdWrite::Put(self.keys.decision(seq), d.to_string()));
        }
        let next_seq = self.next_seq + decisions.len() as u64;
        if let Some(first_kept) = next_seq.checked_sub(DECISIONS_KEPT) {
            out.push(EtcdWrite::DeleteRange(
                self.keys.decision(0),
                self.keys.decision(first_kept),
            ));
        }
        out.push(EtcdWrite::Put(self.keys.plan(), to_json(plan)));
        out
    }

    /// A round's writes landed: `plan` (its `at_unix_s` zeroed) is the state in etcd.
    #[cold]
    pub fn committed(
        &mut self,
        changed: Vec<(String, Desired)>,
        plan: PlanRecord,
        writes: &[EtcdWrite],
    ) {
        if !changed.is_empty() {
            log::info!(
                "controller: revision {}: desired state of {} host(s) written, {} write(s) \
                 in {} transaction(s), the largest {} bytes (plan {} bytes)",
                plan.revision,
                changed.len(),
                writes.len(),
                chunks(writes).len(),
                writes.iter().map(EtcdWrite::bytes).max().unwrap_or(0),
                writes.last().map_or(0, EtcdWrite::bytes)
            );
        }
        for (h, d) in changed {
            let revision = plan.revision;
            self.written.insert(h, Desired { revision, ..d });
        }
        self.revision = plan.revision;
        self.next_seq = plan.next_seq;
        self.last_plan = Some(plan);
    }
}

impl Drop for Replica {
    /// Ends the session: its lease is revoked, so that a standby takes over at once.
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.session.take() {
            let _ = t.join();
        }
    }
}

/// How a session ended without an error.
enum End {
    Quit,
    Deposed,
}

#[cold]
fn session_thread(section: &EtcdSection, id: &str, shared: &Shared) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("controller: no runtime for the etcd session: {e}");
            return;
        }
    };
    rt.block_on(async {
        let mut lease: Option<Held> = None;
        let mut backoff = BACKOFF_MIN;
        while !shared.quit.load(Ordering::Relaxed) {
            let r = session(section, id, shared, &mut lease).await;
            if let Ok(mut l) = shared.leader.lock() {
                if l.take().is_some() {
                    log::warn!("controller: replica {id} no longer leads");
                }
            }
            match r {
                Ok(End::Quit) => break,
                Ok(End::Deposed) => {
                    log::warn!("controller: replica {id} was deposed; campaigning again");
                    if let Some(l) = &mut lease {
                        l.resume = false;
                    }
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    log::warn!(
                        "controller: etcd session of replica {id}: {e:#}; campaigning again in {:.1} s",
                        backoff.as_secs_f64()
                    );
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !shared.quit.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if let Some(l) = lease {
            // Resign: a standby takes over now rather than after the TTL.
            if let Ok(mut c) = section.connect().await {
                let _ = c.lease_revoke(l.id).await;
            }
        }
    });
}

/// The lease of the last session: resumed by the next one while etcd still holds it
/// (its candidate key, and the election if it led, stay this replica's), revoked
/// instead after a deposition. Forgotten only once etcd has confirmed it gone: a lease
/// abandoned during an outage would come back with etcd (which restores leases with a
/// fresh TTL) and hold the election for a TTL with nobody behind it.
struct Held {
    id: i64,
    resume: bool,
}

/// The lease of this session and its keep-alive: the last session's lease while etcd
/// keeps it, a new one otherwise. An error (no answer) keeps the last lease in `slot`.
#[cold]
async fn lease_of(
    section: &EtcdSection,
    leases: &mut etcd_client::LeaseClient,
    slot: &mut Option<Held>,
) -> Result<(i64, LeaseKeeper, LeaseKeepAliveStream)> {
    let t = Duration::from_millis(section.timeout_ms);
    match slot {
        Some(Held { id, resume: true }) => {
            match tokio::time::timeout(t, leases.keep_alive(*id))
                .await
                .context("lease keep-alive: no answer")?
            {
                Ok((keeper, stream)) => return Ok((*id, keeper, stream)),
                // Expired (etcd answered with no TTL left): a new lease.
                Err(etcd_client::Error::LeaseKeepAliveError(_)) => *slot = None,
                Err(e) => return Err(e).context("lease keep-alive"),
            }
        }
        Some(Held { id, resume: false }) => {
            match tokio::time::timeout(t, leases.revoke(*id))
                .await
                .context("lease revoke: no answer")?
            {
                Ok(_) => *slot = None,
                // Already gone (expired): "etcdserver: requested lease not found".
                Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("not found") => {
                    *slot = None
                }
                Err(e) => return Err(e).context("lease revoke"),
            }
        }
        None => {}
    }
    let lease = tokio::time::timeout(t, leases.grant(section.lease_ttl_s, None))
        .await
        .context("lease grant: no answer")??
        .id();
    *slot = Some(Held {
        id: lease,
        resume: true,
    });
    let (keeper, stream) = tokio::time::timeout(t, leases.keep_alive(lease))
        .await
        .context("lease keep-alive: no answer")??;
    Ok((lease, keeper, stream))
}

/// One lease, one campaign, leadership until the lease or etcd fails.
#[cold]
async fn session(
    section: &EtcdSection,
    id: &str,
    shared: &Shared,
    lease_slot: &mut Option<Held>,
) -> Result<End> {
    let t = Duration::from_millis(section.timeout_ms);
    let client = section.connect_unbounded().await?;
    let mut leases = client.lease_client();
    let (lease, mut keeper, mut stream) = lease_of(section, &mut leases, lease_slot).await?;
    let every = Duration::from_millis(section.lease_ttl_s as u64 * 1000 / 3);
    let keep = async move {
        let mut last = Instant::now();
        loop {
            if shared.quit.load(Ordering::Relaxed) {
                return Ok(End::Quit);
            }
            if shared.deposed.swap(false, Ordering::Relaxed) {
                return Ok(End::Deposed);
            }
            if last.elapsed() >= every {
                tokio::time::timeout(t, keeper.keep_alive())
                    .await
                    .context("lease keep-alive: no answer")??;
                let resp = tokio::time::timeout(t, stream.message())
                    .await
                    .context("lease keep-alive: no answer")??
                    .context("lease keep-alive: stream ended")?;
                if resp.ttl() <= 0 {
                    bail!("lease {lease:x} expired");
                }
                last = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::pin!(keep);
    let mut election = client.election_client();
    let name = section.keys().election();
    let won = tokio::select! {
        r = election.campaign(name, id, lease) => r.context("campaign")?,
        r = &mut keep => return r,
    };
    let key = won
        .leader()
        .context("the campaign answered without a leader key")?
        .clone();
    log::info!(
        "controller: replica {id} leads (election key {}, lease {lease:x})",
        key.key_str().unwrap_or("?")
    );
    if let Ok(mut l) = shared.leader.lock() {
        *l = Some(key);
    }
    keep.await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: usize, bytes: usize) -> EtcdWrite {
        EtcdWrite::Put(format!("k{k:04}"), "x".repeat(bytes))
    }

    #[test]
    fn writes_are_cut_under_the_ops_and_bytes_limits_in_order() {
        let many: Vec<EtcdWrite> = (0..250).map(|i| put(i, 10)).collect();
        let c = chunks(&many);
        assert_eq!(
            c.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [120, 120, 10]
        );
        assert_eq!(c.concat(), many);
        let big: Vec<EtcdWrite> = (0..5).map(|i| put(i, 400_000)).collect();
        let c = chunks(&big);
        assert!(c
            .iter()
            .all(|c| c.iter().map(EtcdWrite::bytes).sum::<usize>() <= MAX_TXN_BYTES));
        assert_eq!(c.len(), 3);
        // One value over the limit goes alone (etcd judges it).
        let huge = [put(0, 10), put(1, 2 * MAX_TXN_BYTES), put(2, 10)];
        assert_eq!(chunks(&huge).len(), 3);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn a_write_no_transaction_can_carry_is_refused_by_name() {
        assert!(check_sizes(&[put(0, 10), put(1, MAX_TXN_BYTES - 5)]).is_ok());
        let e = check_sizes(&[put(0, 10), put(7, MAX_TXN_BYTES)]).unwrap_err();
        assert!(e.to_string().starts_with("k0007: 1048581 bytes"), "{e}");
    }
}
