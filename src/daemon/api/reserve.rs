//! `POST /reservations` and `DELETE /reservations/{id}`: a reservation asked for or
//! ended in etcd, exactly as `wrenvnet reserve add|del` do it (the same checks, key,
//! create-only transaction and words: `cluster::requests`). Checked here, on
//! the main lcore; written by a task on the etcd control thread's runtime, and
//! answered when it ends (`Deferred::Etcd`). The controller admits or refuses it; what
//! this host enforces stays `GET /reservations`.

use crate::cluster::requests::{self as store, Ask};
use crate::daemon::cluster::unix_now;
use crate::daemon::cluster::writes::{Reply, Waiting};

use super::{error, json_response, Answer, Deferred, Operations};

/// Why a daemon without `[etcd]` takes no reservation.
const NO_ETCD: &str = "this daemon has no [etcd]: reservations are admitted by the \
     controller through etcd (POST /reservations on a daemon with [etcd], or `wrenvnet \
     reserve add`); static ones go in this daemon's [qos]";

/// `POST /reservations` with `{"src_mac","dst_mac","mbps","burst_bytes"?}`: 201 with
/// its id and key; 400 refused (nothing written), 409 the pair has one already or no
/// `[etcd]`, 503 etcd did not answer in time.
#[cold]
pub(super) fn post(ops: &Operations<'_>, body: &[u8]) -> Answer {
    let Some(writes) = ops.etcd_writes() else {
        return Answer::Now(error(409, NO_ETCD));
    };
    let ask: Ask = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => {
            return Answer::Now(error(
                400,
                format!(
                    "the body must be {{\"src_mac\":M,\"dst_mac\":M,\"mbps\":R,\
                     \"burst_bytes\":B?}}: {e}"
                ),
            ))
        }
    };
    let req = match ask.request(unix_now()) {
        Ok(r) => r,
        Err(e) => return Answer::Now(error(400, format!("{e:#}"))),
    };
    log::info!(
        "api: reservation {} asked for ({} -> {}, {} Mbit/s)",
        req.id,
        req.src_mac,
        req.dst_mac,
        req.mbps
    );
    deferred(writes.reserve(req))
}

/// `DELETE /reservations/{id}`: 200, 404 when there is none.
#[cold]
pub(super) fn delete(ops: &Operations<'_>, id: &str) -> Answer {
    let Some(writes) = ops.etcd_writes() else {
        return Answer::Now(error(409, NO_ETCD));
    };
    if let Err(e) = store::check_id(id) {
        return Answer::Now(error(400, format!("{e:#}")));
    }
    log::info!("api: reservation {id} to end");
    deferred(writes.unreserve(id.to_string()))
}

fn deferred(w: Result<Waiting, Reply>) -> Answer {
    match w {
        Ok(w) => Answer::Later(Deferred::Etcd(w)),
        Err(r) => Answer::Now(json_response(r.status, &r.body)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::super::operations::tests::{host_a, table, OneVm};
    use super::*;
    use crate::daemon::cluster::writes::Writes;

    fn status(a: Answer) -> u16 {
        match a {
            Answer::Now(r) => r.status_code().0,
            Answer::Later(_) => 0,
        }
    }

    #[test]
    fn without_etcd_409_and_a_refused_body_is_400_before_anything_is_sent() {
        let (vms, fib) = (RefCell::new(OneVm), table());
        let ops = host_a(&vms, &fib);
        let body = br#"{"src_mac":"02:00:00:00:01:01","dst_mac":"02:00:00:00:03:01","mbps":5}"#;
        assert_eq!(status(post(&ops, body)), 409);
        assert_eq!(status(delete(&ops, "a-b")), 409);
        // A runtime nobody runs: nothing may be handed to it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let section = toml::from_str("endpoints = [\"http://127.0.0.1:1\"]").unwrap();
        let ops = host_a(&vms, &fib).with_etcd_writes(Writes::new(rt.handle().clone(), section));
        for bad in [
            &b"not json"[..],
            br#"{"src_mac":"02:00:00:00:01:01","mbps":5}"#,
            br#"{"src_mac":"01:00:5e:00:00:01","dst_mac":"02:00:00:00:03:01","mbps":5}"#,
            br#"{"src_mac":"02:00:00:00:01:01","dst_mac":"02:00:00:00:03:01","mbps":-1}"#,
        ] {
            assert_eq!(
                status(post(&ops, bad)),
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(status(delete(&ops, "a b")), 400);
        assert_eq!(status(post(&ops, body)), 0, "a good one is handed over");
    }
}
