//! Controller replicas in etcd mode against a real 3-member etcd cluster on loopback,
//! with the daemons simulated by their `views/<host>` keys (the documents a daemon's
//! API serves): one leader among three replicas; a throttled link measured in the
//! views makes the leader write a reroute to `desired/`; a SIGKILLed leader is
//! replaced within the lease TTL and its successor resumes the plan's revision; a
//! deposed leader (its key deleted, or paused with SIGSTOP past its lease) writes
//! nothing, and reports what it planned as not written; the controller survives a
//! full etcd outage, and with two replicas a leader writes within about a TTL of
//! etcd's return; 200 hosts
//! are written within etcd's per-transaction limits. Each test prints what it measured.
//! No root needed.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::etcd::EtcdCluster;
use common::sim::*;
use common::*;
use serde_json::{json, Value};

/// The tests run one at a time: their timings are what they print.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn one_of_three_replicas_leads_reroutes_and_a_standby_takes_over_from_the_plan() {
    let _serial = serial();
    let (dir, etcd, mut hosts) = triangle_cluster("cc-failover");
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&dir.0, &etcd, &format!("r{i}"), &hosts))
        .collect();

    // One leader, which adopts the daemons' rules at revision 1.
    let elected = wait_for(Duration::from_secs(15), || {
        replicas.iter().any(|r| r.count("leading") > 0)
    })
    .unwrap_or_else(|| panic!("no leader: {}", logs(&replicas.iter().collect::<Vec<_>>())));
    let cold = wait_for(Duration::from_secs(10), || {
        plan(&etcd).is_some_and(|p| p["revision"] == 1)
    })
    .expect("no plan at revision 1");
    std::thread::sleep(Duration::from_secs(1));
    let leaders: Vec<&Replica> = replicas.iter().filter(|r| r.count("leading") > 0).collect();
    assert_eq!(leaders.len(), 1, "{}", logs(&leaders));
    let first = leaders[0].id.clone();
    assert_eq!(leader(&etcd).as_deref(), Some(first.as_str()));
    assert_eq!(plan(&etcd).unwrap()["leader"], first.as_str());
    // The operator sees the same: `wrenvnet cluster` and `wrenvnet decisions`.
    let cluster = operator(&etcd, "cluster");
    assert_eq!(cluster["controller_leader"], first.as_str(), "{cluster:#}");
    assert!(
        cluster["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["desired_revision"] == 1),
        "{cluster:#}"
    );
    let decisions = operator(&etcd, "decisions");
    let names: Vec<&str> = decisions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["event"].as_str())
        .collect();
    assert_eq!(
        names,
        ["leading", "adopted", "desired_written"],
        "{decisions:#}"
    );
    assert_eq!(desired_rule(&etcd, "A", C1.0).as_deref(), Some("peer:C"));
    println!(
        "election: {first} leads {:.2} s after 3 replicas started; cold-start plan (revision 1) written {:.2} s after start",
        elected.as_secs_f64(),
        (elected + cold).as_secs_f64()
    );

    // The A-C link throttled: Wren on A measures 8 Mbit/s; the leader reroutes via B.
    hosts[0].paths = vec![path(A1, C1, 8.0)];
    hosts[0].publish(&etcd);
    let reaction = wait_for(Duration::from_secs(15), || {
        desired_rule(&etcd, "A", C1.0).as_deref() == Some("peer:B")
    })
    .unwrap_or_else(|| panic!("no reroute: {}", logs(&replicas.iter().collect::<Vec<_>>())));
    println!(
        "reaction: throttled measurement in views/A -> reroute in desired/A: {:.0} ms",
        reaction.as_secs_f64() * 1e3
    );
    let a = get_json(&etcd, "desired/A").unwrap();
    assert_eq!(a["revision"], 2, "{a}");
    assert_eq!(a["links"]["B"]["ip"], "198.18.0.2", "{a}");
    let b = get_json(&etcd, "desired/B").unwrap();
    assert_eq!(b["rules"][C1.0], "peer:C", "{b}");
    assert_eq!(b["links"]["A"]["ip"], "198.18.0.1", "{b}");
    wait_for(Duration::from_secs(5), || {
        plan(&etcd).is_some_and(|p| p["revision"] == 2)
    })
    .expect("plan at revision 2");
    // The simulated daemons apply it.
    for h in hosts.iter_mut() {
        if let Some(d) = get_json(&etcd, &format!("desired/{}", h.name)) {
            for (mac, to) in d["rules"].as_object().unwrap() {
                h.rules
                    .insert(mac.clone(), to.as_str().unwrap().to_string());
            }
            h.publish(&etcd);
        }
    }
    let before = all_desired(&etcd);
    let last_seq = etcd.keys(&key("decisions/")).len();

    // SIGKILL the leader: a standby takes over within the lease TTL and resumes.
    let ix = replicas.iter().position(|r| r.id == first).unwrap();
    let killed_unix = unix_now();
    replicas[ix].kill();
    let failover = wait_for(Duration::from_secs(LEASE_TTL_S * 3 + 5), || {
        replicas
            .iter()
            .any(|r| r.id != first && r.count("leading") > 0)
    })
    .unwrap_or_else(|| {
        panic!(
            "no takeover: {}",
            logs(&replicas.iter().collect::<Vec<_>>())
        )
    });
    let next = replicas
        .iter()
        .find(|r| r.id != first && r.count("leading") > 0)
        .unwrap();
    wait_for(Duration::from_secs(5), || {
        plan(&etcd).is_some_and(|p| p["leader"] == next.id.as_str())
    })
    .expect("the new leader wrote no plan");
    let took = next
        .events()
        .into_iter()
        .find(|e| e["event"] == "leading")
        .unwrap();
    let p = plan(&etcd).unwrap();
    let took_s = took["unix_s"].as_f64().unwrap() - killed_unix;
    let wrote_s = p["at_unix_s"].as_f64().unwrap() - killed_unix;
    println!(
        "failover: {first} SIGKILLed -> {} leads after {:.0} ms, writes the plan after {:.0} ms (lease TTL {LEASE_TTL_S} s; seen by the test after {:.0} ms)",
        next.id,
        took_s * 1e3,
        wrote_s * 1e3,
        failover.as_secs_f64() * 1e3
    );
    assert!(
        took_s <= (LEASE_TTL_S + 3) as f64,
        "takeover took {took_s:.1} s"
    );
    assert_eq!(took["resumed"], true, "{took}");
    assert_eq!(took["revision"], 2, "{took}");
    assert_eq!(p["revision"], 2, "the plan's revision went on: {p}");
    assert_eq!(
        all_desired(&etcd),
        before,
        "the new leader rewrote desired state"
    );
    assert!(etcd.keys(&key("decisions/")).len() > last_seq);

    // A new demand after the takeover is planned from there: revision 3.
    hosts[2].vms.push((C2.0.into(), C2.1.into(), "p1".into()));
    hosts[2].rules.insert(C2.0.into(), "vm:p1".into());
    for h in hosts.iter_mut().take(2) {
        h.rules.insert(C2.0.into(), "peer:C".into());
    }
    hosts[0].rows.push(row(A1, C2, 20.0));
    for h in &hosts {
        h.publish(&etcd);
    }
    let t = wait_reroute(&etcd, C2.0, 3, next);
    println!(
        "after the takeover, a new demand over the throttled link rerouted at revision 3 in {:.0} ms",
        t.as_secs_f64() * 1e3
    );
}

#[test]
fn a_deposed_leader_writes_nothing() {
    let _serial = serial();
    let (_dir, etcd, mut hosts, r0) = one_replica("cc-deposed");
    std::thread::sleep(Duration::from_secs(1));

    // Its election key deleted, and another candidate in line first: r0 still believes
    // it leads, but its guard no longer holds.
    let mine = etcd.keys(&key("leader/"));
    assert_eq!(mine.len(), 1, "{mine:?}");
    etcd.ctl(&["del", &mine[0]]);
    etcd.put(&key("leader/intruder"), "intruder");
    let before = Written::of(&etcd);

    // A throttled link: the deposed replica plans the reroute and tries to write it.
    hosts[0].paths = vec![path(A1, C1, 8.0)];
    hosts[0].publish(&etcd);
    let refused = wait_for(Duration::from_secs(15), || r0.count("write_refused") > 0)
        .unwrap_or_else(|| panic!("no refused write: {}", r0.log()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(Written::of(&etcd), before, "a deposed leader wrote");
    let refusal = r0
        .events()
        .into_iter()
        .find(|e| e["event"] == "write_refused")
        .unwrap();
    assert_eq!(
        refusal["revision"], 2,
        "the refused write was the reroute: {refusal}"
    );
    // What it planned is reported as not written, never as applied or written.
    for claim in ["applied", "desired_written"] {
        let n = r0.events().iter().filter(|e| e["event"] == claim).count();
        let cold = usize::from(claim == "desired_written");
        assert_eq!(n, cold, "a refused write reported as {claim}: {}", r0.log());
    }
    assert_eq!(
        refusal["not_written"],
        json!(["applied", "desired_written"]),
        "{refusal}"
    );
    assert_eq!(leader(&etcd).as_deref(), Some("intruder"));
    println!(
        "deposed: the reroute it planned was refused by the guard {:.0} ms after the throttle; desired/, plan, decisions/ unchanged 2 s later",
        refused.as_secs_f64() * 1e3
    );

    // The other candidate gone, r0 leads again (a new campaign) and writes the reroute.
    etcd.ctl(&["del", &key("leader/intruder")]);
    let back = wait_reroute(&etcd, C1.0, 2, &r0);
    assert_eq!(r0.count("leading"), 2);
    let confirmed = wait_for(Duration::from_secs(5), || {
        r0.events()
            .iter()
            .any(|e| e["event"] == "desired_written" && e["revision"] == 2)
    });
    assert!(
        confirmed.is_some(),
        "the landed write is reported: {}",
        r0.log()
    );
    println!(
        "re-elected: the reroute written at revision 2 {:.0} ms after the other candidate left",
        back.as_secs_f64() * 1e3
    );
}

#[test]
fn the_controller_survives_a_full_etcd_outage_and_resumes() {
    let _serial = serial();
    let (_dir, mut etcd, mut hosts, mut r0) = one_replica("cc-outage");

    for i in 0..3 {
        etcd.kill(i);
    }
    let lost = wait_for(Duration::from_secs(15), || r0.count("standby") > 0)
        .unwrap_or_else(|| panic!("leadership not given up: {}", r0.log()));
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        r0.child.try_wait().unwrap().is_none(),
        "the controller died: {}",
        r0.log()
    );
    let log = r0.log();
    assert!(log.contains("etcd"), "{log}");
    for i in 0..3 {
        etcd.restart(i);
    }
    let back = wait_for(Duration::from_secs(30), || r0.count("leading") >= 2)
        .unwrap_or_else(|| panic!("no new leadership: {}", r0.log()));
    let took = r0
        .events()
        .into_iter()
        .rfind(|e| e["event"] == "leading")
        .unwrap();
    assert_eq!(took["resumed"], true, "{took}");
    assert_eq!(took["revision"], 1, "{took}");
    println!(
        "outage: leadership given up {:.0} ms after etcd stopped; {} etcd warnings logged; leads again {:.0} ms after etcd returned",
        lost.as_secs_f64() * 1e3,
        r0.log().matches("WARN").count(),
        back.as_secs_f64() * 1e3
    );

    hosts[0].paths = vec![path(A1, C1, 8.0)];
    hosts[0].publish(&etcd);
    let t = wait_reroute(&etcd, C1.0, 2, &r0);
    println!(
        "after the outage: throttled view -> reroute at revision 2 in {:.0} ms",
        t.as_secs_f64() * 1e3
    );
    r0.kill();
}

#[test]
fn two_hundred_hosts_are_written_within_the_transaction_limits() {
    let _serial = serial();
    let dir = TempDir::new("cc-many");
    let etcd = EtcdCluster::start("cc-many", 3);
    const N: usize = 200;
    let names: Vec<String> = (0..N).map(|i| format!("H{i:03}")).collect();
    let vm = |i: usize| format!("02:00:00:01:{:02x}:{:02x}", i / 256, i % 256);
    // Each host reaches the VMs of its next 5 hosts, straight.
    let hosts: Vec<SimHost> = (0..N)
        .map(|i| {
            let mut rules: BTreeMap<String, String> = BTreeMap::new();
            rules.insert(vm(i), "vm:p0".into());
            let mut links = Vec::new();
            for k in 1..=5 {
                let j = (i + k) % N;
                rules.insert(vm(j), format!("peer:{}", names[j]));
                links.push(names[j].clone());
            }
            SimHost {
                name: names[i].clone(),
                underlay_ip: format!("198.18.{}.{}", i / 250, i % 250 + 1),
                vms: vec![(
                    vm(i),
                    format!("10.9.{}.{}", i / 250, i % 250 + 1),
                    "p0".into(),
                )],
                rules,
                links,
                rows: Vec::new(),
                paths: Vec::new(),
                uplink_mbps: None,
            }
        })
        .collect();
    // One etcdctl txn per 100 views (etcd takes at most 128 operations per txn).
    for batch in hosts.chunks(100) {
        // No compares, the puts, no failure operations.
        let mut script = String::from("\n");
        for h in batch {
            script += &format!(
                "put {} {}\n",
                key(&format!("views/{}", h.name)),
                serde_json::to_string(&h.views()).unwrap()
            );
        }
        script += "\n\n";
        let path = write_file(&dir.0, "txn", &script);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ETCDCTL_API=3 etcdctl --endpoints={} txn < {}",
                etcd.endpoints().join(","),
                path.display()
            ))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(etcd.keys(&key("views/")).len(), N);

    let r0 = Replica::start(&dir.0, &etcd, "r0", &hosts);
    let written = wait_for(Duration::from_secs(60), || plan(&etcd).is_some())
        .unwrap_or_else(|| panic!("no plan: {}", r0.log()));
    let desired = etcd.keys(&key("desired/"));
    assert_eq!(desired.len(), N);
    for (i, h) in hosts.iter().enumerate().step_by(37) {
        let d = get_json(&etcd, &format!("desired/{}", h.name)).unwrap();
        assert_eq!(d["revision"], 1, "{d}");
        let peers: BTreeMap<String, String> = h
            .rules
            .iter()
            .filter(|(_, to)| to.starts_with("peer:"))
            .map(|(m, to)| (m.clone(), to.clone()))
            .collect();
        assert_eq!(
            d["rules"],
            json!(peers),
            "desired/{} is not its rules",
            h.name
        );
        // Linked to the 5 hosts it reaches and the 5 that reach it.
        assert_eq!(d["links"].as_object().unwrap().len(), 10, "{d}");
        let prev = &hosts[(i + N - 1) % N];
        assert_eq!(d["links"][&prev.name]["ip"], prev.underlay_ip.as_str());
    }
    assert_eq!(plan(&etcd).unwrap()["revision"], 1);
    let log = r0.log();
    let line = log
        .lines()
        .find(|l| l.contains("revision 1: desired state of"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("200 host(s)"), "{line}");
    assert!(!log.contains("too many operations"), "{log}");
    println!(
        "{N} hosts: cold-start desired state and plan written {:.2} s after the replica started ({})",
        written.as_secs_f64(),
        line.split("controller: ").nth(1).unwrap_or(line)
    );
}

#[test]
fn a_leader_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let _serial = serial();
    let (dir, etcd, mut hosts) = triangle_cluster("cc-paused");
    let replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start(&dir.0, &etcd, &format!("r{i}"), &hosts))
        .collect();
    wait_for(Duration::from_secs(15), || {
        plan(&etcd).is_some_and(|p| p["revision"] == 1)
    })
    .expect("no plan");
    let old = replicas.iter().find(|r| r.count("leading") > 0).unwrap();
    let new = replicas.iter().find(|r| r.id != old.id).unwrap();
    let signal = |sig: &str| sh(&format!("kill -{sig} {}", old.child.id()));

    signal("STOP");
    let took = wait_for(Duration::from_secs(LEASE_TTL_S * 3 + 5), || {
        new.count("leading") > 0
    });
    if took.is_none() {
        signal("CONT");
        panic!("no takeover: {}", new.log());
    }
    // While the old leader sleeps, the link is throttled and the new one reroutes.
    hosts[0].paths = vec![path(A1, C1, 8.0)];
    hosts[0].publish(&etcd);
    wait_reroute(&etcd, C1.0, 2, new);
    std::thread::sleep(Duration::from_secs(1));
    let before = Written::of(&etcd);

    // The old leader wakes up believing it leads, with views it has not planned for.
    signal("CONT");
    let stepped_down = wait_for(Duration::from_secs(10), || {
        old.count("standby") > 0 || old.count("write_refused") > 0
    })
    .unwrap_or_else(|| panic!("the paused leader never stepped down: {}", old.log()));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        Written::of(&etcd),
        before,
        "the paused leader wrote; new leader: {}",
        new.log()
    );
    assert_eq!(leader(&etcd).as_deref(), Some(new.id.as_str()));
    println!(
        "paused leader: {} took over {:.0} ms after SIGSTOP; resumed, {} stepped down after {:.0} ms ({} refused write(s)), desired/, plan, decisions/ unchanged",
        new.id,
        took.unwrap().as_secs_f64() * 1e3,
        old.id,
        stepped_down.as_secs_f64() * 1e3,
        old.count("write_refused")
    );
}

/// Every etcd member stopped with two replicas running (their leases outlive the
/// outage: etcd restores them with a fresh TTL), then started again: a leader writes
/// within about a TTL of etcd's return, and no replica
/// reported a write etcd does not hold.
#[test]
fn after_a_full_etcd_outage_a_leader_writes_within_a_ttl() {
    let _serial = serial();
    let (dir, mut etcd, hosts) = triangle_cluster("cc-restart");
    let replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start(&dir.0, &etcd, &format!("r{i}"), &hosts))
        .collect();
    let refs: Vec<&Replica> = replicas.iter().collect();
    wait_for(Duration::from_secs(15), || {
        plan(&etcd).is_some_and(|p| p["revision"] == 1)
    })
    .unwrap_or_else(|| panic!("no plan: {}", logs(&refs)));

    // The members stop one after the other (as under SIGTERM): the last one answers
    // connections and status requests for 2 s, but nothing that needs a quorum.
    etcd.kill(1);
    etcd.kill(2);
    std::thread::sleep(Duration::from_secs(2));
    etcd.kill(0);
    std::thread::sleep(Duration::from_secs(LEASE_TTL_S * 3));
    for i in 0..3 {
        etcd.restart(i);
    }
    let back = unix_now();
    // A leader that writes: its `leading` decision lands in decisions/.
    let took = wait_for(Duration::from_secs(30), || {
        etcd.ctl(&["get", "--prefix", &key("decisions/"), "--print-value-only"])
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|d| d["event"] == "leading" && d["unix_s"].as_f64() > Some(back))
    })
    .unwrap_or_else(|| panic!("no leader wrote after etcd returned: {}", logs(&refs)));
    println!(
        "full etcd outage of {} s: a leader wrote {:.0} ms after etcd returned (lease TTL {} s)",
        LEASE_TTL_S * 3,
        took.as_secs_f64() * 1e3,
        LEASE_TTL_S
    );
    assert!(
        took < Duration::from_secs(LEASE_TTL_S + 1),
        "{:?}: {}",
        took,
        logs(&refs)
    );
    let revision = plan(&etcd).unwrap()["revision"].as_u64().unwrap();
    for r in &replicas {
        for e in r
            .events()
            .iter()
            .filter(|e| e["event"] == "desired_written")
        {
            assert!(
                e["revision"].as_u64() <= Some(revision),
                "{e}: etcd holds {revision}"
            );
        }
    }
}
