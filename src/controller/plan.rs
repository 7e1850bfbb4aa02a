//! The leading replica's planning: what triggers VADAPT (a link that moved since the
//! plan in force was made), the problem it is given and the previous one a repair
//! starts from, the judge's verdict turned into rules, and the migration hook.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use analysis::vadapt::problem::{DefaultLink, LinkSpec};
use analysis::vadapt::{self, Problem};
use serde_json::{json, Value};

use super::decide::{self, Demand, Rules, Situation, VmInfo};
use super::{moved, Baseline, Controller};

impl Controller {
    /// A link whose planned bandwidth moved beyond `th` since `b` was taken: (link,
    /// then, now). The links measured now or then: every other one is at its nominal
    /// bandwidth both times.
    pub(super) fn moved_link(&self, b: &Baseline, th: f64) -> Option<((String, String), f64, f64)> {
        (self.view.links.keys().chain(b.bw.keys())).find_map(|k| {
            let (then, v) = (b.bw_of(k, self.view.nominal(k).0), self.view.bw_mbps(k));
            moved(then, v, th).then(|| (k.clone(), then, v))
        })
    }

    /// What the plan in force was made for (from `b`), as the trigger sees it: a link
    /// or a demand that moved less than the change threshold has not changed (else
    /// every measurement's jitter would touch every path that crosses it). Its links
    /// are `problem`'s, in the same order.
    fn previous_problem(&self, b: &Baseline, problem: &Problem, sit: Situation) -> Problem {
        let th = self.cfg.controller.change_threshold;
        let then = |old: f64, now: f64| if moved(old, now, th) { old } else { now };
        let links = (problem.links.iter())
            .map(|now| {
                let k = (now.from.clone(), now.to.clone());
                LinkSpec {
                    bw_mbps: then(b.bw_of(&k, self.view.nominal(&k).0), now.bw_mbps).max(0.0),
                    ..now.clone()
                }
            })
            .collect();
        // The reservations are today's: one the plan in force does not hold is touched
        // by the repair for that (`vadapt::repair`), not for being new.
        let now: BTreeMap<(&str, &str), (f64, f64)> = (sit.demands.iter())
            .map(|d| ((d.src.as_str(), d.dst.as_str()), (d.mbps, d.reserved_mbps)))
            .collect();
        let demands: Vec<Demand> = (b.demand.iter())
            .map(|((src, dst), &mbps)| {
                let n = now.get(&(src.as_str(), dst.as_str()));
                Demand {
                    src: src.clone(),
                    dst: dst.clone(),
                    mbps: n.map_or(mbps, |&(n, _)| then(mbps, n)),
                    reserved_mbps: n.map_or(0.0, |&(_, r)| r),
                }
            })
            .collect();
        let sit = Situation {
            demands: &demands,
            ..sit
        };
        Problem {
            links,
            default_link: problem.default_link,
            ..sit.problem()
        }
    }

    /// Runs VADAPT and, when its plan is worth it, makes it the plan in force (true).
    #[cold]
    /// With `prior` (what the plan in force was made from), the plan is a repair of it.
    pub(super) fn plan(
        &mut self,
        why: &str,
        prior: Option<&Baseline>,
        vms: &[VmInfo],
        demands: &[Demand],
        current: &Rules,
    ) -> bool {
        if demands.is_empty() {
            self.event(json!({"event": "no_demands", "trigger": why}));
            return false;
        }
        let setup = Instant::now();
        let caps: Vec<(String, usize)> = self
            .cfg
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.capacity.unwrap_or(0)))
            .collect();
        let none = BTreeMap::new();
        let sit = Situation {
            hosts: &caps,
            vms,
            demands,
            bw: &none,
            latency: &none,
            rules: current,
            allow_migration: self.cfg.controller.allow_migration,
        };
        // The links measured, configured or measured when the plan in force was made,
        // the others at the default link; the previous problem lists the same links in
        // the same order, and the repair compares them in place.
        let tolerance = self.view.tolerance;
        let keys: BTreeSet<&(String, String)> = (self.view.links.keys())
            .chain(self.view.configured())
            .chain(prior.iter().flat_map(|b| b.bw.keys()))
            .collect();
        let links: Vec<LinkSpec> = (keys.into_iter())
            .filter_map(|k| {
                let l = self.view.link(k)?;
                let bw_mbps = l.bw_mbps(tolerance).max(0.0);
                Some(LinkSpec {
                    from: k.0.clone(),
                    to: k.1.clone(),
                    bw_mbps,
                    latency_ms: l.latency_ms(),
                    reservable_mbps: (self.yielding.get(k))
                        .map(|y| (bw_mbps + y).min(self.view.nominal(k).0)),
                })
            })
            .collect();
        let (bw_mbps, latency_ms) = self.view.default_link();
        let problem = Problem {
            links,
            default_link: Some(DefaultLink {
                bw_mbps,
                latency_ms,
            }),
            ..sit.problem()
        };
        let previous = prior.map(|b| self.previous_problem(b, &problem, sit));
        let c = &self.cfg.controller;
        let opts = vadapt::Options {
            algo: self.cfg.algo(),
            seed: c.seed,
            iterations: None,
            budget_ms: Some(if previous.is_some() {
                c.repair_budget_ms
            } else {
                c.solve_budget_ms
            }),
        };
        // The smallest nominal bandwidth of any link.
        let scale = match self.view.pairs() {
            0 => 0.0,
            _ => (self.view.configured())
                .map(|k| self.view.nominal(k).0)
                .fold(self.view.default_link().0, f64::min),
        };
        let setup_ms = setup.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        let judged = decide::judge(&problem, previous.as_ref(), &opts, c.improvement, scale);
        let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
        let verdict = match judged {
            Ok(v) => v,
            Err(e) => {
                self.event(json!({"event": "plan_failed", "trigger": why, "error": e.to_string()}));
                return false;
            }
        };
        if !verdict.apply {
            self.event(json!({"event": "kept", "trigger": why, "verdict": verdict,
                "plan_ms": plan_ms, "setup_ms": setup_ms}));
            return false;
        }
        if !self.adapt {
            self.event(
                json!({"event": "would_apply", "trigger": why, "verdict": verdict,
                "plan_ms": plan_ms}),
            );
            return false;
        }
        // The VMs the plan moves: (MAC, from, to).
        let host_of: BTreeMap<&str, &String> =
            vms.iter().map(|v| (v.mac.as_str(), &v.host)).collect();
        let moved: Vec<(String, String, String)> = verdict
            .mapping
            .iter()
            .filter_map(|(vm, to)| {
                let from = *host_of.get(vm.as_str())?;
                (from != to).then(|| (vm.clone(), from.clone(), to.clone()))
            })
            .collect();
        let moves: Vec<(String, String)> = moved
            .iter()
            .map(|(vm, _, to)| (vm.clone(), to.clone()))
            .collect();
        let realise = Instant::now();
        let base = decide::relocate(current, &moves);
        let (mut desired, followed) = decide::realise(&base, &verdict.plan, demands);
        // Only peer rules are the controller's.
        for r in desired.values_mut() {
            r.retain(|_, to| to.starts_with("peer:"));
        }
        self.adaptations += 1;
        let migrations: Vec<Value> = moved
            .iter()
            .map(|(vm, from, to)| json!({"vm": vm, "from": from, "to": to}))
            .collect();
        // The links the logged paths cross, as the plan saw them (not every link of the
        // fleet: the decision stays the size of the change).
        let crossed: BTreeSet<(&String, &String)> = (verdict.paths_changed.iter())
            .take(decide::LOGGED_PATHS)
            .flat_map(|p| p.hosts.windows(2).map(|w| (&w[0], &w[1])))
            .collect();
        let used: Vec<Value> = crossed
            .into_iter()
            .filter_map(|(a, b)| {
                let v = self.view.link(&(a.clone(), b.clone()))?.bw_mbps(tolerance);
                Some(json!({"from": a, "to": b, "bw_mbps": v}))
            })
            .collect();
        self.event_on_commit(
            json!({"event": "applied", "trigger": why, "verdict": verdict, "plan_ms": plan_ms,
            "setup_ms": setup_ms, "realise_ms": realise.elapsed().as_secs_f64() * 1e3,
            "round_at_ms": self.round_started.elapsed().as_secs_f64() * 1e3,
            "links": used, "followed": followed, "migrations": migrations}),
        );
        let mut migrated = true;
        for m in &migrations {
            migrated &= self.migrate(m, current);
        }
        if migrated {
            self.set_desired(Some(desired));
        } else {
            // Where the VMs are now is not what the plan assumed: give the plan up; the
            // rules in force are adopted as the plan and the next round starts from them.
            self.event(json!({"event": "plan_abandoned", "why": "a migration failed"}));
            self.set_desired(None);
        }
        true
    }

    /// Calls the migration hook; whether the VM moved (the hook's exit status).
    #[cold]
    fn migrate(&mut self, m: &Value, current: &Rules) -> bool {
        let Some(cmd) = self.cfg.controller.migrate_command.clone() else {
            self.event(json!({"event": "migration_skipped", "migration": m,
                "why": "controller.migrate_command is not set"}));
            return false;
        };
        let vm = m["vm"].as_str().unwrap_or_default();
        let from = m["from"].as_str().unwrap_or_default();
        let port = current
            .get(from)
            .and_then(|r| r.get(vm))
            .and_then(|to| to.strip_prefix("vm:"))
            .unwrap_or_default();
        let line = cmd
            .replace("{vm}", vm)
            .replace("{port}", port)
            .replace("{from}", from)
            .replace("{to}", m["to"].as_str().unwrap_or_default());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output();
        let (ok, detail, report) = match out {
            Ok(o) => (
                o.status.success(),
                format!("{} {}", o.status, String::from_utf8_lossy(&o.stderr).trim()),
                last_line(&o.stdout),
            ),
            Err(e) => (false, e.to_string(), String::new()),
        };
        self.event(
            json!({"event": "migration", "command": line, "ok": ok, "detail": detail,
                          "report": report}),
        );
        ok
    }
}

/// A hook's last line of output (its report, e.g. migrate-qemu.sh's QEMU downtime),
/// at most 500 bytes of it.
fn last_line(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut end = line.len().min(500);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].trim().to_string()
}
