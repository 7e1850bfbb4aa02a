//! What the HTTP API writes in etcd for an operator (`POST` and `DELETE
//! /reservations`): each write a task on the control thread's runtime, with a client
//! of its own and a bounded wait, so that the main lcore only hands it over and later
//! picks its answer up (`Waiting::poll`, which never blocks). A member that does not
//! answer costs the request a 503 once the bound is up, never a hang; a few writes at
//! a time at most, the next ones refused (503) until those end.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use etcd_client::Client;
use serde_json::{json, Value};
use tokio::runtime::Handle;
use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::cluster::etcd::EtcdSection;
use crate::cluster::requests::{self as store, Stored};
use crate::cluster::{Keys, ReservationRequest};

/// Writes under way at most; more are refused until one ends.
const MAX_IN_FLIGHT: usize = 8;

/// How long past a write's own bound the main lcore waits before it answers 503 (the
/// control thread's runtime is then stuck, which it should never be).
const GRACE: Duration = Duration::from_secs(1);

/// An answer for the API: its status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn error(status: u16, msg: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"ok": false, "error": msg.into()}),
        }
    }
}

/// A write under way; its answer comes from `poll`.
pub struct Waiting {
    rx: oneshot::Receiver<Reply>,
    deadline: Instant,
}

impl Waiting {
    /// The answer, once there is one: a 503 past the deadline or when the task is
    /// gone (the daemon is stopping). Never blocks.
    pub fn poll(&mut self) -> Option<Reply> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) if Instant::now() < self.deadline => None,
            Err(TryRecvError::Empty) => Some(Reply::error(
                503,
                "no answer from the daemon's etcd control thread in time",
            )),
            Err(TryRecvError::Closed) => Some(Reply::error(
                503,
                "the daemon's etcd control thread is gone",
            )),
        }
    }
}

/// The API's way to etcd: the control thread's runtime and the `[etcd]` section.
#[derive(Clone)]
pub struct Writes {
    rt: Handle,
    section: EtcdSection,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a write in flight until dropped (the task ended, or its runtime did).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Writes {
    pub fn new(rt: Handle, section: EtcdSection) -> Self {
        Self {
            rt,
            section,
            in_flight: Arc::default(),
        }
    }

    /// The bound on one write: a connection (each member tried in turn, `timeout_ms`
    /// to connect and as much to answer) and the request.
    pub fn bound(&self) -> Duration {
        let t = Duration::from_millis(self.section.timeout_ms);
        t * (2 * self.section.endpoints.len() as u32 + 1)
    }

    /// Stores `req` as `wrenvnet reserve add` does: 201 with its id and key, 409 when
    /// the pair has one already, 503 when etcd does not answer.
    #[cold]
    pub fn reserve(&self, req: ReservationRequest) -> Result<Waiting, Reply> {
        let what = format!("reservation {}", req.id);
        self.submit(what, move |mut c: Client, keys: Keys| async move {
            Ok(match store::store(&mut c, &keys, &req).await? {
                Stored::Created { key, .. } => Reply {
                    status: 201,
                    body: json!({"ok": true, "id": req.id, "key": key}),
                },
                Stored::Taken => Reply::error(409, store::taken(&req.id)),
            })
        })
    }

    /// Deletes reservation `id` as `wrenvnet reserve del` does: 200, or 404 when there
    /// is none.
    #[cold]
    pub fn unreserve(&self, id: String) -> Result<Waiting, Reply> {
        let what = format!("reservation {id}");
        self.submit(what, move |mut c: Client, keys: Keys| async move {
            Ok(match store::remove(&mut c, &keys, &id).await? {
                true => Reply {
                    status: 200,
                    body: json!({"ok": true, "id": id, "deleted": true}),
                },
                false => Reply::error(404, store::absent(&id)),
            })
        })
    }

    /// Runs `f` with a client on the control thread's runtime, within `bound`.
    #[cold]
    fn submit<F, Fut>(&self, what: String, f: F) -> Result<Waiting, Reply>
    where
        F: FnOnce(Client, Keys) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Reply>> + Send,
    {
        if self.in_flight.fetch_add(1, Relaxed) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Relaxed);
            return Err(Reply::error(
                503,
                format!("{MAX_IN_FLIGHT} etcd writes under way already: try again"),
            ));
        }
        let guard = InFlight(Arc::clone(&self.in_flight));
        let (tx, rx) = oneshot::channel();
        let (section, bound) = (self.section.clone(), self.bound());
        self.rt.spawn(async move {
            let _guard = guard;
            let work = async {
                let c = section.connect().await?;
                f(c, section.keys()).await
            };
            let reply = match tokio::time::timeout(bound, work).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Reply::error(503, format!("{what}: {e:#}")),
                Err(_) => Reply::error(
                    503,
                    format!(
                        "{what}: etcd did not answer within {} ms",
                        bound.as_millis()
                    ),
                ),
            };
            let _ = tx.send(reply);
        });
        Ok(Waiting {
            rx,
            deadline: Instant::now() + bound + GRACE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime on a thread of its own, as the control thread's; stopped on drop.
    struct Thread {
        rt: Handle,
        stop: Option<oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Thread {
        fn start() -> Self {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let handle = rt.handle().clone();
            let thread = std::thread::spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                })
            });
            Self {
                rt: handle,
                stop: Some(stop),
                thread: Some(thread),
            }
        }

        fn stop(&mut self) {
            drop(self.stop.take());
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    impl Drop for Thread {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn request() -> ReservationRequest {
        crate::cluster::requests::Ask {
            src_mac: "02:00:00:00:01:01".into(),
            dst_mac: "02:00:00:00:03:01".into(),
            mbps: 10.0,
            burst_bytes: None,
        }
        .request(0.0)
        .unwrap()
    }

    fn wait(mut w: Waiting) -> Reply {
        loop {
            if let Some(r) = w.poll() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_member_that_never_answers_costs_a_503_within_the_bound_and_no_more() {
        // Accepts connections (the kernel's backlog) and never says a word.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let text = format!(
            "endpoints = [\"http://{}\"]\ntimeout_ms = 100",
            silent.local_addr().unwrap()
        );
        let section: EtcdSection = toml::from_str(&text).unwrap();
        let mut thread = Thread::start();
        let writes = Writes::new(thread.rt.clone(), section);
        assert_eq!(writes.bound(), Duration::from_millis(300));
        let t0 = Instant::now();
        let waiting: Vec<Waiting> = (0..MAX_IN_FLIGHT)
            .map(|_| writes.reserve(request()).ok().unwrap())
            .collect();
        let busy = writes.unreserve("a-b".into()).err().unwrap();
        assert_eq!(busy.status, 503);
        assert!(busy.body["error"].as_str().unwrap().contains("under way"));
        for w in waiting {
            let r = wait(w);
            assert_eq!(r.status, 503, "{r:?}");
            assert!(r.body["error"]
                .as_str()
                .unwrap()
                .starts_with("reservation 020000000101-020000000301: "));
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_millis(300) + GRACE, "{took:?}");
        // Once they ended, writes are taken again; with the runtime gone, a 503 at once.
        thread.stop();
        let r = wait(writes.unreserve("a-b".into()).ok().unwrap());
        assert_eq!(r.status, 503);
        assert!(
            r.body["error"].as_str().unwrap().contains("is gone"),
            "{r:?}"
        );
    }
}
