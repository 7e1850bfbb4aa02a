//! `wrenvnet cluster` and `wrenvnet decisions`: the cluster as etcd holds it, for the
//! operator. `cluster` lists the etcd members (health, raft leader), the controller
//! replica that leads, and every host (registered or only desired) with its lease's
//! remaining TTL, the desired and applied revisions, and whether it lags; `decisions`
//! prints the controller's decision log, oldest first. Both read etcd only: no daemon
//! or controller need be up.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use serde_json::{json, Value};

use crate::cluster::etcd::EtcdSection;
use crate::cluster::{Applied, Desired, HostRecord, Keys};

#[derive(Debug, clap::Args)]
pub struct EtcdArgs {
    /// A wrenvnet config (daemon or controller) whose `[etcd]` section says where etcd
    /// is and how to reach it (TLS files included).
    #[arg(
        long,
        required_unless_present = "endpoints",
        conflicts_with = "endpoints"
    )]
    config: Option<PathBuf>,
    /// An etcd client URL, instead of --config (repeat for every member).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// The cluster's key prefix (with --endpoint).
    #[arg(long, default_value = "/wrenvnet/default")]
    prefix: String,
    /// TLS (with --endpoint): the members' CA, and this client's certificate and key.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    cert_file: Option<PathBuf>,
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DecisionsArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The newest N decisions.
    #[arg(long, default_value_t = 20)]
    last: i64,
}

impl EtcdArgs {
    #[cold]
    pub(crate) fn section(&self) -> Result<EtcdSection> {
        let section = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let doc: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("{} is not TOML", path.display()))?;
                let etcd = doc
                    .get("etcd")
                    .with_context(|| format!("{} has no [etcd] section", path.display()))?;
                etcd.clone().try_into::<EtcdSection>()?
            }
            None => {
                let mut t = toml::Table::new();
                t.insert("endpoints".into(), self.endpoints.clone().into());
                t.insert("prefix".into(), self.prefix.clone().into());
                for (k, v) in [
                    ("ca_file", &self.ca_file),
                    ("cert_file", &self.cert_file),
                    ("key_file", &self.key_file),
                ] {
                    if let Some(p) = v {
                        t.insert(k.into(), p.display().to_string().into());
                    }
                }
                toml::Value::Table(t).try_into::<EtcdSection>()?
            }
        };
        section.validate()?;
        Ok(section)
    }
}

/// Runs `f` against etcd on a runtime of this thread.
#[cold]
pub(crate) fn with_etcd<T>(
    args: &EtcdArgs,
    f: impl AsyncFnOnce(Client, &EtcdSection) -> Result<T>,
) -> Result<T> {
    let section = args.section()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    rt.block_on(async {
        let client = section.connect().await?;
        f(client, &section).await
    })
}

#[cold]
pub fn cluster(args: EtcdArgs) -> Result<()> {
    let report = with_etcd(&args, async |mut c, section| {
        let keys = section.keys();
        Ok(json!({
            "prefix": keys.prefix(),
            "members": members(&mut c, section).await?,
            "controller_leader": controller_leader(&mut c, &keys).await?,
            "hosts": hosts(&mut c, &keys).await?,
        }))
    })?;
    dataplane::process::restore_default_sigpipe();
    if args.json {
        println!("{report:#}");
    } else {
        print_cluster(&report);
    }
    Ok(())
}

#[cold]
pub fn decisions(args: DecisionsArgs) -> Result<()> {
    let last = args.last.max(1);
    let list = with_etcd(&args.etcd, async |mut c, section| {
        let keys = section.keys();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(last);
        let resp = c.get(keys.decisions(), Some(opts)).await?;
        let mut out: Vec<Value> = resp
            .kvs()
            .iter()
            .map(|kv| {
                serde_json::from_slice(kv.value())
                    .unwrap_or_else(|_| json!(kv.value_str().unwrap_or("?")))
            })
            .collect();
        out.reverse();
        Ok(out)
    })?;
    dataplane::process::restore_default_sigpipe();
    if args.etcd.json {
        println!("{:#}", Value::Array(list));
    } else if list.is_empty() {
        println!("no decisions");
    } else {
        for d in &list {
            println!("{d}");
        }
    }
    Ok(())
}

/// Every member: name, client URLs, whether it answers (asked directly, with the same
/// TLS and timeouts), whether it leads raft.
async fn members(c: &mut Client, section: &EtcdSection) -> Result<Vec<Value>> {
    let list = c.member_list().await.context("member list")?;
    let mut out = Vec::new();
    for m in list.members() {
        let mut status = None;
        if let Some(url) = m.client_urls().first() {
            let one = EtcdSection {
                endpoints: vec![url.clone()],
                ..section.clone()
            };
            if let Ok(mut client) = one.connect().await {
                status = client.status().await.ok();
            }
        }
        out.push(json!({
            "name": m.name(),
            "id": format!("{:x}", m.id()),
            "client_urls": m.client_urls(),
            "healthy": status.is_some(),
            "raft_leader": status.as_ref().is_some_and(|s| s.leader() == m.id()),
        }));
    }
    Ok(out)
}

/// The replica that holds the controllers' election, if one does.
async fn controller_leader(c: &mut Client, keys: &Keys) -> Result<Value> {
    match c.leader(keys.election()).await {
        Ok(r) => Ok(r
            .kv()
            .map(|kv| json!(kv.value_str().unwrap_or("?")))
            .unwrap_or(Value::Null)),
        // etcd answers "no leader" as an error.
        Err(_) => Ok(Value::Null),
    }
}

/// Hosts registered or with a desired state: lease TTL, revisions, lag.
async fn hosts(c: &mut Client, keys: &Keys) -> Result<Vec<Value>> {
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    let prefix = GetOptions::new().with_prefix();
    for kv in c.get(keys.hosts(), Some(prefix.clone())).await?.kvs() {
        let Some(h) = keys.host_of("hosts", kv.key_str().unwrap_or("")) else {
            continue;
        };
        let rec: Option<HostRecord> = serde_json::from_slice(kv.value()).ok();
        let ttl = match kv.lease() {
            0 => None,
            l => c.lease_time_to_live(l, None).await.ok().map(|r| r.ttl()),
        };
        rows.insert(
            h.to_string(),
            json!({"host": h, "up": true, "lease_ttl_s": ttl,
                   "underlay_ip": rec.map(|r| r.underlay_ip)}),
        );
    }
    for (key, dir, field) in [
        (keys.all_desired(), "desired", "desired_revision"),
        (keys.all_applied(), "applied", "applied_revision"),
    ] {
        for kv in c.get(key, Some(prefix.clone())).await?.kvs() {
            let Some(h) = keys.host_of(dir, kv.key_str().unwrap_or("")) else {
                continue;
            };
            let rev = match dir {
                "desired" => serde_json::from_slice::<Desired>(kv.value())
                    .ok()
                    .map(|d| d.revision),
                _ => serde_json::from_slice::<Applied>(kv.value())
                    .ok()
                    .map(|a| a.revision),
            };
            let row = rows
                .entry(h.to_string())
                .or_insert_with(|| json!({"host": h, "up": false}));
            row[field] = json!(rev);
        }
    }
    Ok(rows
        .into_values()
        .map(|mut r| {
            let d = r["desired_revision"].as_u64();
            let a = r["applied_revision"].as_u64();
            r["lagging"] = json!(d.is_some_and(|d| a.is_none_or(|a| a < d)));
            r
        })
        .collect())
}

fn print_cluster(r: &Value) {
    println!("etcd members:");
    for m in r["members"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:<28} {}{}",
            m["name"].as_str().unwrap_or("?"),
            m["client_urls"][0].as_str().unwrap_or("-"),
            if m["healthy"] == true {
                "healthy"
            } else {
                "UNREACHABLE"
            },
            if m["raft_leader"] == true {
                ", raft leader"
            } else {
                ""
            }
        );
    }
    match r["controller_leader"].as_str() {
        Some(l) => println!("controller leader: {l}"),
        None => println!("controller leader: none"),
    }
    println!("hosts ({}):", r["prefix"].as_str().unwrap_or(""));
    println!(
        "  {:<12} {:<5} {:>9} {:>8} {:>8}  lagging",
        "host", "up", "lease ttl", "desired", "applied"
    );
    let opt = |v: &Value| v.as_i64().map_or("-".to_string(), |x| x.to_string());
    for h in r["hosts"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<5} {:>9} {:>8} {:>8}  {}",
            h["host"].as_str().unwrap_or("?"),
            if h["up"] == true { "yes" } else { "no" },
            opt(&h["lease_ttl_s"]),
            opt(&h["desired_revision"]),
            opt(&h["applied_revision"]),
            if h["lagging"] == true { "LAGGING" } else { "" }
        );
    }
}
