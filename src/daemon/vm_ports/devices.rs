//! The VM ports' device work on a thread of its own. Probing a device and removing it
//! is kernel and driver work (a `net_tap` netdev created or deleted, a vhost-user
//! socket set up or torn down) that takes from milliseconds to seconds under load; the
//! main lcore, which drains the record rings and answers the API, hands it over here
//! and never waits for it. One job at a time, in order: DPDK's hotplug calls are not
//! meant to run concurrently with each other, and only this thread makes them once the
//! workers run.

use std::time::Instant;

use crossbeam::channel::{self, Receiver, Sender};
use dataplane::{Eal, Mempool, Port, PortConfig};

/// Identifies one job from its request to its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// Jobs waiting for the thread at most; past it a plug or unplug is refused (busy).
const QUEUE: usize = 64;

enum Job<'e> {
    Open { ticket: Ticket, devargs: String },
    Remove { ticket: Ticket, port: Port<'e> },
}

/// A finished job, with how long the device work took (milliseconds).
pub enum Done<'e> {
    Opened {
        ticket: Ticket,
        port: Result<Port<'e>, String>,
        ms: f64,
    },
    /// A port that could not be removed comes back (never closed while it might be
    /// polled: its queues are all home, but the caller decides).
    Removed {
        ticket: Ticket,
        refused: Option<(Port<'e>, String)>,
        ms: f64,
    },
}

/// The main lcore's end: posts jobs, collects what finished.
pub struct Devices<'e> {
    jobs: Sender<Job<'e>>,
    done: Receiver<Done<'e>>,
    next: u64,
}

/// The thread's end.
pub struct DeviceThread<'e> {
    jobs: Receiver<Job<'e>>,
    done: Sender<Done<'e>>,
}

/// Both ends of one device thread.
pub fn channel<'e>() -> (Devices<'e>, DeviceThread<'e>) {
    let (jobs_tx, jobs_rx) = channel::bounded(QUEUE);
    // The thread never waits to report: at most QUEUE jobs are ever in flight.
    let (done_tx, done_rx) = channel::bounded(QUEUE);
    (
        Devices {
            jobs: jobs_tx,
            done: done_rx,
            next: 0,
        },
        DeviceThread {
            jobs: jobs_rx,
            done: done_tx,
        },
    )
}

impl<'e> Devices<'e> {
    /// Whether another job may be posted now (checked before anything changes).
    pub fn has_room(&self) -> Result<(), String> {
        if self.jobs.is_full() {
            return Err(format!(
                "{QUEUE} VM port changes are already in progress: try again"
            ));
        }
        Ok(())
    }

    /// Posts the opening of `devargs`; its port comes back from `finished`.
    #[cold]
    pub fn open(&mut self, devargs: &str) -> Result<Ticket, String> {
        self.has_room()?;
        let ticket = self.ticket();
        let job = Job::Open {
            ticket,
            devargs: devargs.to_string(),
        };
        self.jobs.send(job).map_err(|_| gone())?;
        Ok(ticket)
    }

    /// Posts the removal of `port` (stopped, its queues all home). Only the main lcore
    /// posts, so after `has_room` the job fits; with the thread gone (shutdown) the
    /// port is closed here instead.
    #[cold]
    pub fn remove(&mut self, port: Port<'e>) -> Ticket {
        let ticket = self.ticket();
        if let Err(e) = self.jobs.send(Job::Remove { ticket, port }) {
            log::error!("{}: the port is closed, not removed", gone());
            drop(e.into_inner());
        }
        ticket
    }

    /// The next finished job, if any (never waits).
    pub fn finished(&self) -> Option<Done<'e>> {
        self.done.try_recv().ok()
    }

    /// Waits for the next finished job: at shutdown only.
    #[cold]
    pub fn wait_finished(&self) -> Option<Done<'e>> {
        self.done.recv().ok()
    }

    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        Ticket(self.next)
    }
}

fn gone() -> String {
    "the VM ports' device thread has ended".to_string()
}

impl<'e> DeviceThread<'e> {
    /// Carries out jobs until the main lcore's end is dropped.
    #[cold]
    pub fn serve(self, eal: &'e Eal, pool: Mempool<'e>, config: PortConfig) {
        for job in self.jobs.iter() {
            let t0 = Instant::now();
            let done = match job {
                Job::Open { ticket, devargs } => {
                    let port = Port::open(eal, &devargs, &pool, &config).map_err(|e| e.to_string());
                    Done::Opened {
                        ticket,
                        port,
                        ms: ms_since(t0),
                    }
                }
                Job::Remove { ticket, port } => Done::Removed {
                    ticket,
                    refused: port.remove().err().map(|(p, e)| (p, e.to_string())),
                    ms: ms_since(t0),
                },
            };
            if self.done.send(done).is_err() {
                return; // the main lcore's end is gone: a port in it closes on drop
            }
        }
    }
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}
