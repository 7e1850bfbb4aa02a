//! `wrenvnet reserve add|list|del`: the operator's reservations, in etcd. `add` asks
//! for one (checked first: nothing is written that the enforcing daemon would refuse)
//! and waits for the leading controller's verdict; `list` shows every request joined
//! with its verdict from the plan record; `del` ends one. Only etcd is involved: the
//! controller admits, routes, and hands each admitted reservation to its source host
//! (see `crate::cluster`). The etcd side, shared with the daemon's `POST` and `DELETE
//! /reservations`, is `crate::cluster::requests`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use serde_json::{json, Value};

use super::cluster::{with_etcd, EtcdArgs};
use crate::cluster::requests::{self as store, Ask, Stored};
use crate::cluster::{Admission, AdmissionState, Keys, ReservationRequest};
use crate::daemon::cluster::unix_now;

/// How often `add` reads the plan while it waits for a verdict.
const POLL: Duration = Duration::from_millis(200);

/// The longest `--wait-s`.
const MAX_WAIT_S: f64 = 3600.0;

#[derive(Debug, clap::Args)]
pub struct ReserveArgs {
    #[command(subcommand)]
    command: ReserveCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReserveCommand {
    /// Ask for a reservation (frames from VM --src to VM --dst get --mbps on the source
    /// host's uplink) and wait for the controller's verdict. Exit status 1 when refused.
    Add(AddArgs),
    /// Every reservation asked for, with the controller's verdict.
    List(EtcdArgs),
    /// End a reservation, named by its id or by --src and --dst.
    Del(DelArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The sending VM's MAC.
    #[arg(long, value_name = "MAC")]
    src: String,
    /// The receiving VM's MAC.
    #[arg(long, value_name = "MAC")]
    dst: String,
    /// The rate reserved, Mbit/s.
    #[arg(long)]
    mbps: f64,
    /// The token bucket's depth (default: 10 ms at the rate, at least 64 KiB).
    #[arg(long)]
    burst_bytes: Option<u64>,
    /// How long to wait for the verdict (0: do not wait).
    #[arg(long, default_value_t = 10.0)]
    wait_s: f64,
}

#[derive(Debug, clap::Args)]
pub struct DelArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The reservation's id, as `wrenvnet reserve list` shows it.
    #[arg(
        required_unless_present_all = ["src", "dst"],
        conflicts_with_all = ["src", "dst"]
    )]
    id: Option<String>,
    /// Instead of ID: the sending VM's MAC (with --dst).
    #[arg(long, value_name = "MAC", requires = "dst")]
    src: Option<String>,
    /// Instead of ID: the receiving VM's MAC (with --src).
    #[arg(long, value_name = "MAC", requires = "src")]
    dst: Option<String>,
}

#[cold]
pub fn run(args: ReserveArgs) -> Result<()> {
    match args.command {
        ReserveCommand::Add(a) => add(a),
        ReserveCommand::List(a) => list(a),
        ReserveCommand::Del(a) => del(a),
    }
}

/// `reserve add`: checks, stores create-only, waits for the verdict.
#[cold]
fn add(args: AddArgs) -> Result<()> {
    ensure!(
        args.wait_s.is_finite() && (0.0..=MAX_WAIT_S).contains(&args.wait_s),
        "--wait-s must be 0..={MAX_WAIT_S}, not {}",
        args.wait_s
    );
    let wait = Duration::from_secs_f64(args.wait_s);
    let ask = Ask {
        src_mac: args.src.clone(),
        dst_mac: args.dst.clone(),
        mbps: args.mbps,
        burst_bytes: args.burst_bytes,
    };
    let req = ask.request(unix_now())?;
    let (key, waited) = with_etcd(&args.etcd, async |mut c, section| {
        let keys = section.keys();
        let (key, revision) = match store::store(&mut c, &keys, &req).await? {
            Stored::Created { key, revision } => (key, revision),
            Stored::Taken => bail!(store::taken(&req.id)),
        };
        let waited = wait_verdict(&mut c, &keys, &req.id, revision, wait).await;
        Ok((key, waited))
    })?;
    dataplane::process::restore_default_sigpipe();
    if args.etcd.json {
        println!(
            "{:#}",
            json!({"id": req.id, "key": key, "request": req, "verdict": waited.verdict})
        );
    } else {
        println!(
            "asked for {}: {} -> {}, {} Mbit/s ({key})",
            req.id, req.src_mac, req.dst_mac, req.mbps
        );
    }
    let line = outcome(
        &req.id,
        waited.verdict.as_ref(),
        wait,
        waited.error.as_deref(),
    )?;
    if !args.etcd.json && !line.is_empty() {
        println!("{line}");
    }
    Ok(())
}

/// What waiting for a verdict came to.
#[derive(Debug, Default)]
struct Waited {
    /// The verdict: not pending, or pending when the wait ended so.
    verdict: Option<Admission>,
    /// The last failure to read the plan (the request is stored all the same).
    error: Option<String>,
}

/// Reads the plan every `POLL` until it holds a verdict on `id` other than pending,
/// written after etcd revision `after` (the request's; an older plan's verdict on
/// the id is of an earlier request of the pair), or `wait` ends.
#[cold]
async fn wait_verdict(c: &mut Client, keys: &Keys, id: &str, after: i64, wait: Duration) -> Waited {
    let mut seen = Waited::default();
    if wait.is_zero() {
        return seen;
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match plan_verdict(c, keys, id, after).await {
            Ok(Some(a)) if a.state != AdmissionState::Pending => {
                seen.verdict = Some(a);
                return seen;
            }
            Ok(v) => seen.verdict = v,
            Err(e) => seen.error = Some(format!("{e:#}")),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return seen;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// The plan's verdict on `id`, if the plan was written after revision `after`.
async fn plan_verdict(
    c: &mut Client,
    keys: &Keys,
    id: &str,
    after: i64,
) -> Result<Option<Admission>> {
    let resp = c
        .get(keys.plan(), None)
        .await
        .with_context(|| format!("read {}", keys.plan()))?;
    let Some(kv) = resp.kvs().first().filter(|kv| kv.mod_revision() > after) else {
        return Ok(None);
    };
    match verdicts(kv.value())?.remove(id) {
        None => Ok(None),
        Some(Ok(a)) => Ok(Some(a)),
        Some(Err(e)) => bail!("{}: the verdict on {id} is malformed: {e}", keys.plan()),
    }
}

/// The line `add` ends with, or the refusal as an error.
fn outcome(
    id: &str,
    verdict: Option<&Admission>,
    wait: Duration,
    error: Option<&str>,
) -> Result<String> {
    let Some(a) = verdict else {
        if wait.is_zero() {
            return Ok(String::new());
        }
        let why = error.map_or_else(String::new, |e| format!(" (last error: {e})"));
        return Ok(format!(
            "asked for; no verdict from a controller within {} s (is one leading?){why}",
            wait.as_secs_f64()
        ));
    };
    let on = path(&a.path, " -> ");
    Ok(match a.state {
        AdmissionState::Admitted => format!("admitted on {on}: {}", a.reason),
        AdmissionState::Degraded => format!("degraded on {on}: {}", a.reason),
        AdmissionState::Pending => format!(
            "asked for; pending after {} s: {}",
            wait.as_secs_f64(),
            a.reason
        ),
        AdmissionState::Refused => bail!(
            "refused: {} (the request stays under reservations/: \
             `wrenvnet reserve del {id}` withdraws it)",
            a.reason
        ),
    })
}

fn path(hosts: &[String], sep: &str) -> String {
    match hosts.is_empty() {
        true => "-".into(),
        false => hosts.join(sep),
    }
}

/// Every verdict in a plan record's text, by id; an entry that is not an
/// [`Admission`] is kept with why.
type Verdicts = BTreeMap<String, Result<Admission, String>>;

fn verdicts(plan: &[u8]) -> Result<Verdicts> {
    let v: Value = serde_json::from_slice(plan).context("the plan is not JSON")?;
    let list = match v.get("reservations") {
        None | Some(Value::Null) => return Ok(Verdicts::new()),
        Some(Value::Object(m)) => m,
        Some(_) => bail!("the plan's \"reservations\" is not an object"),
    };
    Ok(list
        .iter()
        .map(|(id, a)| {
            let a = serde_json::from_value(a.clone()).map_err(|e| e.to_string());
            (id.clone(), a)
        })
        .collect())
}

/// `reserve list`.
#[cold]
fn list(args: EtcdArgs) -> Result<()> {
    let (rows, plan_error) = with_etcd(&args, async |mut c, section| {
        let keys = section.keys();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp = c
            .get(keys.reservations(), Some(opts))
            .await
            .with_context(|| format!("read {}", keys.reservations()))?;
        let asked: Vec<(String, Vec<u8>)> = resp
            .kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                (key, kv.value().to_vec())
            })
            .collect();
        let plan = c
            .get(keys.plan(), None)
            .await
            .with_context(|| format!("read {}", keys.plan()))?;
        let verdicts = match plan.kvs().first() {
            None => Ok(Verdicts::new()),
            Some(kv) => verdicts(kv.value()).map_err(|e| format!("{}: {e:#}", keys.plan())),
        };
        let none = Verdicts::new();
        let rows = rows(&keys, &asked, verdicts.as_ref().unwrap_or(&none));
        Ok((rows, verdicts.err()))
    })?;
    dataplane::process::restore_default_sigpipe();
    if let Some(e) = plan_error {
        eprintln!("warning: {e}: verdicts unknown");
    }
    if args.json {
        println!("{:#}", Value::Array(rows));
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// One JSON object per request (`asked`: key, value), joined with its verdict.
fn rows(keys: &Keys, asked: &[(String, Vec<u8>)], verdicts: &Verdicts) -> Vec<Value> {
    asked
        .iter()
        .map(|(key, value)| {
            let id = key.strip_prefix(&keys.reservations()).unwrap_or(key);
            let mut row = request_row(id, value);
            row["key"] = json!(key);
            match verdicts.get(id) {
                None => row["state"] = Value::Null,
                Some(Ok(a)) => {
                    row["state"] = json!(a.state);
                    row["path"] = json!(a.path);
                    row["reason"] = json!(a.reason);
                    row["admitted_mbps"] = json!(a.mbps);
                }
                Some(Err(e)) => row["verdict_error"] = json!(format!("malformed verdict: {e}")),
            }
            row
        })
        .collect()
}

/// A request's fields, or `malformed` saying why it is not one.
fn request_row(id: &str, value: &[u8]) -> Value {
    let req: ReservationRequest = match serde_json::from_slice(value) {
        Ok(r) => r,
        Err(e) => {
            let text = String::from_utf8_lossy(value);
            let shown: String = text.chars().take(200).collect();
            return json!({"id": id, "malformed": format!("not a reservation request: {e}"),
                "value": shown});
        }
    };
    let mut row = json!({"id": id, "src_mac": req.src_mac, "dst_mac": req.dst_mac,
        "mbps": req.mbps, "burst_bytes": req.burst_bytes, "created_unix_s": req.created_unix_s});
    let pair = ReservationRequest::id_of(&req.src_mac, &req.dst_mac);
    if req.id != id || pair != id {
        row["malformed"] = json!(format!(
            "its id {:?} and its MACs' {pair:?} should both be its key's",
            req.id
        ));
    }
    row
}

/// `list`'s table.
fn table(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "no reservations\n".into();
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let hosts: Vec<String> = r["path"]
                .as_array()
                .map(|p| p.iter().map(text).collect())
                .unwrap_or_default();
            let (state, reason) = match (&r["malformed"], &r["verdict_error"]) {
                (Value::String(m), _) => ("MALFORMED".into(), m.clone()),
                (_, Value::String(e)) => ("?".into(), e.clone()),
                _ => (text(&r["state"]), text(&r["reason"])),
            };
            let id = text(&r["id"]);
            let (src, dst, mbps) = (text(&r["src_mac"]), text(&r["dst_mac"]), text(&r["mbps"]));
            [id, src, dst, mbps, state, path(&hosts, "->"), reason]
        })
        .collect();
    let head = ["ID", "SRC", "DST", "MBPS", "STATE", "PATH", "REASON"];
    let mut width = head.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    // Left-aligned, but MBPS; two spaces between columns; none after the last.
    let line = |c: [&str; 7]| {
        let mut l = String::new();
        for (i, s) in c.iter().enumerate() {
            let pad = " ".repeat(width[i].saturating_sub(s.chars().count()));
            match i {
                3 => l.push_str(&format!("{pad}{s}  ")),
                6 => l.push_str(s),
                _ => l.push_str(&format!("{s}{pad}  ")),
            }
        }
        format!("{}\n", l.trim_end())
    };
    let mut out = line(head);
    for c in &cells {
        out.push_str(&line(c.each_ref().map(String::as_str)));
    }
    out
}

/// `reserve del`.
#[cold]
fn del(args: DelArgs) -> Result<()> {
    let id = match (&args.id, &args.src, &args.dst) {
        (Some(id), _, _) => id.clone(),
        (None, Some(src), Some(dst)) => store::id_of(src, dst)?,
        _ => bail!("name the reservation: ID, or --src and --dst"),
    };
    store::check_id(&id)?;
    let deleted = with_etcd(&args.etcd, async |mut c, section| {
        store::remove(&mut c, &section.keys(), &id).await
    })?;
    dataplane::process::restore_default_sigpipe();
    ensure!(deleted, store::absent(&id));
    match args.etcd.json {
        true => println!("{}", json!({"id": id, "deleted": true})),
        false => println!("reservation {id} deleted"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(state: AdmissionState, path: &[&str], reason: &str) -> Admission {
        Admission {
            state,
            reason: reason.into(),
            path: path.iter().map(|s| s.to_string()).collect(),
            mbps: 40.0,
        }
    }

    #[test]
    fn the_verdict_line_and_a_refusal_as_an_error() {
        let ten = Duration::from_secs(10);
        let ok = admission(AdmissionState::Admitted, &["h0", "h2"], "fits");
        assert_eq!(
            outcome("x", Some(&ok), ten, None).unwrap(),
            "admitted on h0 -> h2: fits"
        );
        let no = admission(AdmissionState::Refused, &[], "no path has 40 Mbit/s");
        let e = format!("{:#}", outcome("x", Some(&no), ten, None).unwrap_err());
        assert!(e.starts_with("refused: no path has 40 Mbit/s"), "{e}");
        assert!(e.contains("`wrenvnet reserve del x`"), "{e}");
        let wait = admission(
            AdmissionState::Pending,
            &[],
            "VM 02:00:00:00:03:01 on no host",
        );
        assert!(outcome("x", Some(&wait), ten, None)
            .unwrap()
            .contains("pending after 10 s: VM 02:00:00:00:03:01"));
        assert_eq!(
            outcome("x", None, ten, Some("timed out")).unwrap(),
            "asked for; no verdict from a controller within 10 s (is one leading?) \
             (last error: timed out)"
        );
        assert_eq!(outcome("x", None, Duration::ZERO, None).unwrap(), "");
    }

    #[test]
    fn verdicts_are_read_from_the_plan_and_a_malformed_one_is_kept_with_why() {
        assert!(verdicts(br#"{"revision":3}"#).unwrap().is_empty());
        assert!(verdicts(br#"{"reservations":null}"#).unwrap().is_empty());
        assert!(verdicts(b"not json").is_err());
        assert!(verdicts(br#"{"reservations":[1]}"#).is_err());
        let v = verdicts(
            br#"{"reservations":{"a-b":{"state":"admitted","reason":"fits","path":["h0","h1"],"mbps":40},
                "c-d":{"state":"maybe"}}}"#,
        )
        .unwrap();
        let a = v["a-b"].as_ref().unwrap();
        assert_eq!((a.state, a.path.len()), (AdmissionState::Admitted, 2));
        assert!(v["c-d"].as_ref().unwrap_err().contains("unknown variant"));
    }

    #[test]
    fn the_table_joins_requests_and_verdicts_and_shows_malformed_values() {
        let keys = Keys::new("/wrenvnet/t");
        let req = |src: &str, dst: &str| {
            let id = ReservationRequest::id_of(src, dst);
            let body = format!(
                r#"{{"id":"{id}","src_mac":"{src}","dst_mac":"{dst}","mbps":40,"created_unix_s":1}}"#
            );
            (keys.reservation(&id), body.into_bytes())
        };
        let a = req("02:00:00:00:01:01", "02:00:00:00:03:01");
        let b = req("02:00:00:00:01:02", "02:00:00:00:03:01");
        let c = req("02:00:00:00:01:03", "02:00:00:00:03:01");
        let bad = (keys.reservation("junk"), b"{oops".to_vec());
        let mut v = Verdicts::new();
        let ok = admission(
            AdmissionState::Admitted,
            &["h0", "h1", "h2"],
            "fits on h0->h1->h2",
        );
        v.insert("020000000101-020000000301".into(), Ok(ok));
        v.insert("020000000103-020000000301".into(), Err("bad".into()));
        let rows = rows(&keys, &[a, b, c, bad], &v);
        assert_eq!(rows[0]["state"], "admitted");
        assert_eq!(
            rows[0]["key"],
            "/wrenvnet/t/reservations/020000000101-020000000301"
        );
        assert_eq!(rows[1]["state"], Value::Null);
        assert_eq!(rows[3]["id"], "junk");
        assert!(rows[3]["malformed"]
            .as_str()
            .unwrap()
            .contains("not a reservation"));
        let t = table(&rows);
        let want = "\
ID                         SRC                DST                MBPS  STATE      PATH        REASON
020000000101-020000000301  02:00:00:00:01:01  02:00:00:00:03:01  40.0  admitted   h0->h1->h2  fits on h0->h1->h2
020000000102-020000000301  02:00:00:00:01:02  02:00:00:00:03:01  40.0  -          -           -
020000000103-020000000301  02:00:00:00:01:03  02:00:00:00:03:01  40.0  ?          -           malformed verdict: bad
junk                       -                  -                     -  MALFORMED  -           not a reservation request: ";
        assert!(t.starts_with(want), "{t}");
        assert_eq!(t.lines().count(), 5, "{t}");
        assert_eq!(table(&[]), "no reservations\n");
    }

    #[test]
    fn a_value_whose_id_is_not_its_keys_is_malformed() {
        let row = request_row(
            "020000000101-020000000399",
            br#"{"id":"020000000101-020000000301","src_mac":"02:00:00:00:01:01",
                "dst_mac":"02:00:00:00:03:01","mbps":40,"created_unix_s":1}"#,
        );
        assert!(row["malformed"]
            .as_str()
            .unwrap()
            .contains("should both be"));
        assert_eq!(row["src_mac"], "02:00:00:00:01:01");
    }
}
