//! Reservations asked for, in etcd (`reservations/<id>`, see `crate::cluster`): a
//! request made from its parts and checked as the daemon that would enforce it checks
//! it; stored create-only (one per ordered pair of VMs: a second ask for a pair is
//! refused, never merged); ended by deleting its key. `wrenvnet reserve` and the
//! daemon's `POST`/`DELETE /reservations` both go through here, so that they refuse
//! the same things in the same words.

use anyhow::{ensure, Context, Result};
use dataplane::MacAddr;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use serde::Deserialize;

use crate::cluster::{Keys, ReservationRequest};
use crate::daemon::config::parse_mac;
use crate::daemon::qos;

/// What is asked for: `POST /reservations`' body, `wrenvnet reserve add`'s options.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    pub src_mac: String,
    pub dst_mac: String,
    pub mbps: f64,
    #[serde(default)]
    pub burst_bytes: Option<u64>,
}

impl Ask {
    /// The request to store, asked for at `created_unix_s`: both MACs parsed, unicast
    /// and different, written lower case; the rate and burst as the enforcing host
    /// checks them (`daemon::qos::reservation`).
    pub fn request(&self, created_unix_s: f64) -> Result<ReservationRequest> {
        let src = unicast(&self.src_mac).context("src_mac")?;
        let dst = unicast(&self.dst_mac).context("dst_mac")?;
        ensure!(
            src != dst,
            "src_mac and dst_mac are the same VM ({src}): a reservation is from one VM to another"
        );
        let req = ReservationRequest {
            id: ReservationRequest::id_of(&src, &dst),
            src_mac: src,
            dst_mac: dst,
            mbps: self.mbps,
            burst_bytes: self.burst_bytes,
            created_unix_s,
        };
        qos::reservation(&req.spec())?;
        Ok(req)
    }
}

/// A VM's MAC, lower case; refused when it is not one or is multicast.
fn unicast(mac: &str) -> Result<String> {
    let m = parse_mac(mac.trim())?;
    let text = MacAddr(m).to_string();
    ensure!(
        m[0] & 1 == 0,
        "{text} is a multicast MAC: a reservation is between two VMs' unicast MACs"
    );
    Ok(text)
}

/// The id of the pair `src_mac -> dst_mac`, both MACs checked.
pub fn id_of(src_mac: &str, dst_mac: &str) -> Result<String> {
    let src = parse_mac(src_mac.trim()).context("src_mac")?;
    let dst = parse_mac(dst_mac.trim()).context("dst_mac")?;
    Ok(ReservationRequest::id_of(
        &MacAddr(src).to_string(),
        &MacAddr(dst).to_string(),
    ))
}

/// Refuses what cannot be one key under `reservations/`.
pub fn check_id(id: &str) -> Result<()> {
    ensure!(
        !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic() && c != '/'),
        "bad reservation id {id:?}: ids are as `wrenvnet reserve list` shows them \
         (SRC-DST, each MAC's hex digits)"
    );
    Ok(())
}

/// What storing a request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Written under `key`, at etcd revision `revision`.
    Created { key: String, revision: i64 },
    /// The pair has a request already: nothing written.
    Taken,
}

/// Why a pair cannot be asked for again.
pub fn taken(id: &str) -> String {
    format!("the pair is already reserved (id {id}): `wrenvnet reserve del {id}` first")
}

/// Writes `req` under `reservations/<id>`, in one transaction that writes nothing
/// when the key exists.
#[cold]
pub async fn store(c: &mut Client, keys: &Keys, req: &ReservationRequest) -> Result<Stored> {
    check_id(&req.id)?;
    let key = keys.reservation(&req.id);
    let value = serde_json::to_string(req).context("reservation request to JSON")?;
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.as_str(), value, None)]);
    let resp = c.txn(txn).await.with_context(|| format!("create {key}"))?;
    if !resp.succeeded() {
        return Ok(Stored::Taken);
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    Ok(Stored::Created { key, revision })
}

/// Deletes `reservations/<id>`: false when there was none.
#[cold]
pub async fn remove(c: &mut Client, keys: &Keys, id: &str) -> Result<bool> {
    check_id(id)?;
    let key = keys.reservation(id);
    let resp = c
        .delete(key.as_str(), None)
        .await
        .with_context(|| format!("delete {key}"))?;
    Ok(resp.deleted() > 0)
}

/// Why there is nothing to delete.
pub fn absent(id: &str) -> String {
    format!("no reservation {id} (`wrenvnet reserve list` lists them)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(src: &str, dst: &str, mbps: f64, burst: Option<u64>) -> Ask {
        Ask {
            src_mac: src.into(),
            dst_mac: dst.into(),
            mbps,
            burst_bytes: burst,
        }
    }

    #[test]
    fn a_request_is_checked_and_written_lower_case() {
        let r = ask("02:00:00:00:01:0A", " 02:00:00:00:03:01", 40.0, None)
            .request(12.5)
            .unwrap();
        assert_eq!(r.id, "02000000010a-020000000301");
        assert_eq!(
            (r.src_mac.as_str(), r.dst_mac.as_str()),
            ("02:00:00:00:01:0a", "02:00:00:00:03:01")
        );
        assert_eq!(
            (r.mbps, r.burst_bytes, r.created_unix_s),
            (40.0, None, 12.5)
        );
        let with_burst = ask("02:00:00:00:01:01", "02:00:00:00:03:01", 5.0, Some(20_000));
        assert_eq!(with_burst.request(0.0).unwrap().burst_bytes, Some(20_000));
    }

    #[test]
    fn refusals_name_the_field_and_the_reason() {
        let a = "02:00:00:00:01:01";
        let b = "02:00:00:00:03:01";
        for (bad, reason) in [
            (ask("zz", b, 1.0, None), "src_mac: bad MAC address \"zz\""),
            (ask(a, "02:00:00:00:03", 1.0, None), "dst_mac: bad MAC"),
            (
                ask("01:00:5e:00:00:01", b, 1.0, None),
                "src_mac: 01:00:5e:00:00:01 is a multicast MAC",
            ),
            (ask(a, "ff:ff:ff:ff:ff:ff", 1.0, None), "dst_mac: ff:ff"),
            (ask(a, "02:00:00:00:01:01", 1.0, None), "the same VM"),
            (ask(a, b, 0.0, None), "a rate must be above 0"),
            (ask(a, b, f64::NAN, None), "a rate must be above 0"),
            (ask(a, b, 1e9, None), "a rate must be above 0"),
            (ask(a, b, 10.0, Some(100)), "a burst must be"),
        ] {
            let e = format!("{:#}", bad.request(0.0).unwrap_err());
            assert!(e.contains(reason), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_body_with_an_unknown_field_is_refused() {
        let ok: Ask =
            serde_json::from_str(r#"{"src_mac":"a","dst_mac":"b","mbps":1,"burst_bytes":9018}"#)
                .unwrap();
        assert_eq!(ok.burst_bytes, Some(9018));
        let e = serde_json::from_str::<Ask>(r#"{"src_mac":"a","dst_mac":"b","mbps":1,"x":1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        assert!(serde_json::from_str::<Ask>(r#"{"src_mac":"a","mbps":1}"#).is_err());
    }

    #[test]
    fn ids_are_one_key_under_reservations() {
        assert_eq!(
            id_of("02:00:00:00:01:0A", "02:00:00:00:03:01").unwrap(),
            "02000000010a-020000000301"
        );
        assert!(id_of("02:00:00:00:01:0A", "x").is_err());
        check_id("02000000010a-020000000301").unwrap();
        for bad in ["", "a/b", "a b", &"x".repeat(200)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(taken("x-y").contains("`wrenvnet reserve del x-y` first"));
    }
}
