//! The leading replica's part: whether this replica leads this round (and, when it
//! has just won the election, the state it resumes from etcd), and its guarded writes
//! of desired state, decisions and the plan record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::replica::{self, PlanRecord};
use super::source::Gathered;
use super::{decide, unix_now, Baseline, Controller, PERSIST_ROUNDS};
use crate::cluster::Desired;

impl Controller {
    pub(super) fn role(&self) -> &'static str {
        if self.replica.leading.is_some() {
            "leader"
        } else {
            "standby"
        }
    }

    /// Whether this replica plans and writes this round. A replica
    /// that has just won the election first resumes the state in etcd: the plan in
    /// force, its revision, the hysteresis clocks, the decision log's sequence.
    #[cold]
    pub(super) fn lead(&mut self) -> bool {
        let r = &mut self.replica;
        let key = r.leader_key();
        let same = match (&key, &r.leading) {
            (Some(k), Some(l)) => k.key() == l.key() && k.rev() == l.rev(),
            _ => false,
        };
        if same {
            return true;
        }
        if key.is_none() {
            if r.leading.take().is_some() {
                self.event(json!({"event": "standby",
                    "why": "the election is lost (lease expired, deposed, or etcd unreachable)"}));
            }
            return false;
        }
        let t0 = Instant::now();
        // Unreadable (etcd failing): not leading this round; logged by the read.
        let Ok(loaded) = r.load() else { return false };
        let max_desired = loaded.desired.values().map(|d| d.revision).max();
        r.revision = max_desired
            .into_iter()
            .chain(loaded.plan.as_ref().map(|p| p.revision))
            .max()
            .unwrap_or(0);
        r.next_seq = [
            loaded.plan.as_ref().map_or(1, |p| p.next_seq),
            loaded.last_seq.map_or(1, |s| s + 1),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        r.written = loaded.desired;
        r.last_plan = loaded.plan.clone().map(|p| PlanRecord {
            at_unix_s: 0.0,
            ..p
        });
        r.leading = key;
        let (revision, next_seq) = (r.revision, r.next_seq);
        let resumed = loaded.plan.is_some();
        let from = loaded.plan.as_ref().map(|p| p.leader.clone());
        self.resume(loaded.plan);
        if resumed && !self.replica.written.is_empty() {
            // The plan in force is what the hosts were last told.
            let rules = self.replica.written.iter();
            self.set_desired(Some(
                rules.map(|(h, d)| (h.clone(), d.rules.clone())).collect(),
            ));
        }
        self.event(json!({"event": "leading", "resumed": resumed, "from": from,
            "revision": revision, "next_decision": next_seq,
            "plan_rules": self.desired.as_ref().map(|d| d.values().map(BTreeMap::len).sum::<usize>()),
            "load_ms": t0.elapsed().as_secs_f64() * 1e3}));
        true
    }

    /// Takes the state of a plan record (none: cold start, the rules the daemons
    /// publish are adopted as the plan in force).
    #[cold]
    fn resume(&mut self, plan: Option<PlanRecord>) {
        let Some(p) = plan else {
            self.set_desired(None);
            return;
        };
        self.set_desired(p.rules);
        let baseline = p.baseline.map(Baseline::from_record);
        let seen: BTreeSet<(String, String)> = match p.seen {
            Some(g) => (g.into_iter())
                .flat_map(|(a, v)| v.into_iter().map(move |b| (a.clone(), b)))
                .collect(),
            None if !p.pairs_seen.is_empty() => p.pairs_seen.into_iter().collect(),
            None => baseline
                .as_ref()
                .map(|b| b.pairs.clone())
                .unwrap_or_default(),
        };
        self.baseline = baseline;
        self.last_run = p.last_run_unix_s.map(|u| u - self.started_unix);
        // A record without it: its last run may have adapted (damped as if it had).
        self.last_adapted =
            (p.last_adapted_unix_s.or(p.last_run_unix_s)).map(|u| u - self.started_unix);
        self.pairs_seen = (seen, p.pairs_rounds);
        self.adaptations = p.adaptations;
        self.admissions = p.reservations;
    }

    /// The pairs seen, when they are not the baseline's.
    fn pairs_seen_record(&self) -> Option<replica::Grouped<String>> {
        let seen = &self.pairs_seen.0;
        if self.baseline.as_ref().is_some_and(|b| &b.pairs == seen) {
            return None;
        }
        let mut g: replica::Grouped<String> = BTreeMap::new();
        for (a, b) in seen {
            g.entry(a.clone()).or_default().push(b.clone());
        }
        Some(g)
    }

    fn plan_record(&self, revision: u64, next_seq: u64, leader: &str) -> PlanRecord {
        PlanRecord {
            revision,
            next_seq,
            leader: leader.to_string(),
            at_unix_s: 0.0,
            rules: None,
            baseline: self.baseline.as_ref().map(Baseline::record),
            last_run_unix_s: self.last_run.map(|u| self.started_unix + u),
            last_adapted_unix_s: self.last_adapted.map(|u| self.started_unix + u),
            seen: self.pairs_seen_record(),
            pairs_seen: Vec::new(),
            pairs_rounds: self.pairs_seen.1.min(PERSIST_ROUNDS),
            adaptations: self.adaptations,
            reservations: self.admissions.clone(),
        }
    }

    /// Whether reservations are in use: asked for, enforced, or given to a host.
    fn reserving(&self) -> bool {
        let given = (self.replica.written.values())
            .any(|w| w.reservations.as_ref().is_some_and(|r| !r.is_empty()));
        !self.asked.is_empty() || !self.enforce.is_empty() || given
    }

    /// Each host's reservations in its desired state: once any is asked for (or a host
    /// was given some), every host gets its complete set, empty ones too, so that an
    /// ended reservation is removed; before, none (a daemon keeps its `[qos]` ones).
    fn with_enforced(&self, want: &mut BTreeMap<String, Desired>) {
        if !self.reserving() {
            return;
        }
        for (h, d) in want.iter_mut() {
            d.reservations = Some(self.enforce.get(h).cloned().unwrap_or_default());
        }
    }

    /// Leading: writes the desired state of every host whose state changed
    /// (a new revision), this round's decisions and the plan record, as transactions
    /// guarded by the election key; the plan last. Observing (adaptation off), or
    /// while a host's views are missing, no desired state is written.
    #[cold]
    pub(super) fn publish(&mut self, gathered: &[Arc<Gathered>], all_up: bool) {
        let Some(key) = self.replica.leading.clone() else {
            return;
        };
        let t0 = Instant::now();
        let underlay: BTreeMap<&str, &str> = gathered
            .iter()
            .filter_map(|g| Some((g.host.as_str(), g.underlay_ip.as_deref()?)))
            .collect();
        // Nothing moved since every host's desired state was found written.
        let known = (self.published.as_ref()).is_some_and(|(g, r, u)| {
            (*g, *r) == (self.desired_gen, self.replica.revision)
                && u.len() == underlay.len()
                && (u.iter())
                    .zip(&underlay)
                    .all(|((h, ip), (h2, ip2))| h == h2 && ip == ip2)
        });
        // Desired state needs every host's underlay address: not while a host is down.
        // Observing, the routes stay as adopted; reservations are still enforced.
        let writes = self.adapt || self.reserving();
        let mut want = match (&self.desired, writes && all_up && !known) {
            (Some(d), true) => decide::desired_state(d, &underlay),
            _ => BTreeMap::new(),
        };
        self.with_enforced(&mut want);
        let changed: Vec<(String, Desired)> = want
            .into_iter()
            .filter(|(h, d)| {
                self.replica.written.get(h).is_none_or(|w| {
                    w.rules != d.rules
                        || w.links != d.links
                        || (d.reservations.is_some() && w.reservations != d.reservations)
                })
            })
            .collect();
        let revision = self.replica.revision + u64::from(!changed.is_empty());
        let owned = || {
            (underlay
                .iter()
                .map(|(h, ip)| (h.to_string(), ip.to_string())))
            .collect()
        };
        let whole = self.desired.is_some() && writes && all_up;
        let published = whole.then(|| (self.desired_gen, revision, owned()));
        if changed.is_empty() && !known {
            self.published.clone_from(&published);
        }
        if !changed.is_empty() {
            let hosts: Vec<&String> = changed.iter().map(|(h, _)| h).take(20).collect();
            self.event_on_commit(json!({"event": "desired_written", "revision": revision,
                "hosts": changed.len(), "first_hosts": hosts,
                "prepare_ms": t0.elapsed().as_secs_f64() * 1e3,
                "round_at_ms": self.round_started.elapsed().as_secs_f64() * 1e3}));
        }
        let decisions = std::mem::take(&mut self.decisions);
        let id = self.replica.id.clone();
        let next_seq = self.replica.next_seq + decisions.len() as u64;
        let plan = self.plan_record(revision, next_seq, &id);
        let r = &mut self.replica;
        if changed.is_empty() && decisions.is_empty() && r.last_plan.as_ref() == Some(&plan) {
            return;
        }
        let stamped = PlanRecord {
            at_unix_s: unix_now(),
            ..plan.clone()
        };
        let writes = r.round_writes(revision, &changed, &decisions, &stamped);
        match r.write_guarded(&key, &writes) {
            Ok(true) => {
                r.committed(changed, plan, &writes);
                self.published = published;
                for mut e in std::mem::take(&mut self.unconfirmed) {
                    // When it was confirmed; etcd's decision log keeps when it was made.
                    e["decided_t"] = e["t"].take();
                    self.stamp(&mut e);
                    self.report(e);
                }
            }
            Ok(false) => {
                log::warn!(
                    "controller: replica {id}: etcd refused the write (the election key is \
                     gone: another replica leads); nothing written"
                );
                r.depose();
                let unconfirmed = self.unconfirmed_names();
                self.unconfirmed.clear();
                self.event(json!({"event": "write_refused", "revision": revision,
                    "why": "the guard failed: this replica no longer holds the election",
                    "not_written": unconfirmed}));
            }
            Err(e) => {
                // Logged by the write; the decisions wait for the next round, the desired
                // state is computed again then.
                let mut keep: Vec<Value> = decisions
                    .into_iter()
                    .filter(|d| d["event"] != "desired_written")
                    .collect();
                keep.append(&mut self.decisions);
                let skip = keep.len().saturating_sub(replica::DECISIONS_KEPT as usize);
                self.decisions = keep.split_off(skip);
                let unconfirmed = self.unconfirmed_names();
                self.unconfirmed.retain(|d| d["event"] != "desired_written");
                // A timeout may hide a transaction that landed: the next round writes
                // the same revision again (the same values), so either way etcd ends
                // up with it once a write is confirmed.
                self.event(json!({"event": "write_failed", "revision": revision,
                    "error": format!("{e:#}"), "not_confirmed": unconfirmed,
                    "outcome": "unknown: no confirmation from etcd; retried next round \
                        while this replica leads"}));
            }
        }
    }
}
