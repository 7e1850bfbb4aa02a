//! The daemon's VM ports, plugged and unplugged while the workers run: their devices
//! opened and removed on a thread of their own (`devices`: seconds of kernel work at
//! worst, which the main lcore never waits for), handed to and taken back from every
//! worker through its mailbox (dataplane::switch::mailbox) by the main lcore, with the
//! rules to the port published only once every worker serves it and withdrawn before
//! any worker lets it go. A plug or unplug is asked for, then finishes later
//! (`finished`), each known by its ticket.

mod devices;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::switch::fib::{self, Dest, Fib};
use dataplane::switch::mailbox::{Mailbox, VmCommand, MAX_VMS};
use dataplane::switch::VmPort;
use dataplane::{Port, PortId};

use devices::Done;
pub use devices::{channel as device_thread, Devices, Ticket};

/// How long a change waits for every worker to carry it out (they look once per loop).
const WORKER_WAIT: Duration = Duration::from_secs(2);

/// A VM port's slot: its port, or the device work under way for it.
pub struct VmSlot<'e> {
    pub name: String,
    pub mac: [u8; 6],
    pub devargs: String,
    state: State<'e>,
    /// Plugged for a VM migrating here, not seen running yet (`arrived`).
    waiting: bool,
}

enum State<'e> {
    /// The device is being opened; the port is served once it is.
    Opening {
        ticket: Ticket,
        secured: bool,
        /// A VM migrating here: its rule moves when it announces itself on the port.
        incoming: bool,
    },
    Up(Port<'e>),
    /// No worker serves it any more; its device is being removed.
    Removing {
        ticket: Ticket,
        rules: usize,
    },
}

/// A plug or unplug that finished.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `device_ms`: how long opening the device took (off the main lcore).
    Plugged {
        port: String,
        slot: usize,
        device_ms: f64,
    },
    /// With how many rules to the port were withdrawn.
    Unplugged {
        port: String,
        rules: usize,
        device_ms: f64,
    },
}

/// What the control interface may ask of the VM ports.
pub trait VmPortControl {
    /// (slot, port name, VM MAC, devargs) of every port in service.
    fn list(&self) -> Vec<(usize, String, [u8; 6], String)>;
    /// Starts opening `devargs` as VM port `name` for the VM at `mac`; once open it is
    /// served on every worker and `mac`'s rule points at it (`Change::Plugged`).
    /// `secured`: port security (frames only from the MACs behind the port).
    /// `incoming`: a VM migrating here; `mac`'s rule stays where it points until the VM
    /// announces itself on the port (`dataplane::switch::announce`).
    fn plug(
        &mut self,
        name: &str,
        devargs: &str,
        mac: [u8; 6],
        secured: bool,
        incoming: bool,
    ) -> Result<Ticket>;
    /// Withdraws every rule to port `name` and takes its queues back from every worker
    /// at once, then starts removing the device (`Change::Unplugged`).
    fn unplug(&mut self, name: &str) -> Result<Ticket>;
    /// The plugs and unplugs finished since the last call (never waits).
    fn finished(&mut self) -> Vec<(Ticket, Result<Change>)>;
    /// (slot, MAC) of the ports plugged `incoming` whose link came up since the last
    /// call: the VM runs here now (vhost-user: the destination QEMU starts the device
    /// when the migrated guest resumes). A RARP for each is flooded to the peers.
    fn arrived(&mut self) -> Vec<(usize, [u8; 6])>;
}

/// The VM ports of a switch whose workers read `mailboxes` (one each).
pub struct VmPorts<'e, 'p, 'm> {
    slots: Vec<Option<VmSlot<'e>>>,
    mailboxes: &'m [Mailbox<'p>],
    /// Commands posted to each worker so far.
    posted: Vec<u64>,
    fib: Arc<ArcSwap<Fib>>,
    /// Whether the workers run (before they start, nothing can be waited for).
    live: bool,
    devices: Devices<'e>,
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl<'e: 'p, 'p, 'm> VmPorts<'e, 'p, 'm> {
    /// VM ports whose devices `devices`' thread opens and removes.
    pub fn new(mailboxes: &'m [Mailbox<'p>], fib: Arc<ArcSwap<Fib>>, devices: Devices<'e>) -> Self {
        Self {
            slots: Vec::new(),
            mailboxes,
            posted: vec![0; mailboxes.len()],
            fib,
            live: false,
            devices,
        }
    }

    /// Adopts a port opened from the config as the next slot, before the workers
    /// start (its rule is in the initial table already). Returns the slot.
    #[cold]
    pub fn adopt(
        &mut self,
        name: &str,
        devargs: &str,
        mac: [u8; 6],
        secured: bool,
        port: Port<'e>,
    ) -> Result<usize> {
        let slot = self.free_slot()?;
        self.attach(slot, name, (devargs, mac, secured), port)?;
        Ok(slot)
    }

    /// From now on every change waits for the workers.
    pub fn set_live(&mut self) {
        self.live = true;
    }

    /// Port ids and names of every plugged port (stats).
    pub fn ports(&self) -> Vec<(String, PortId)> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| match &s.state {
                State::Up(p) => Some((s.name.clone(), p.id())),
                _ => None,
            })
            .collect()
    }

    fn free_slot(&self) -> Result<usize> {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => Ok(i),
            None if self.slots.len() < MAX_VMS => Ok(self.slots.len()),
            None => bail!("at most {MAX_VMS} VM ports"),
        }
    }

    /// Lends the port's queues, queue w to worker w, and keeps the port in `slot`.
    fn attach(
        &mut self,
        slot: usize,
        name: &str,
        (devargs, mac, secured): (&str, [u8; 6], bool),
        mut port: Port<'e>,
    ) -> Result<()> {
        let (rx, tx) = port.lend_queues()?;
        if rx.len() < self.mailboxes.len() || tx.len() < self.mailboxes.len() {
            bail!(
                "port {name:?} has {} rx / {} tx queues for {} workers",
                rx.len(),
                tx.len(),
                self.mailboxes.len()
            );
        }
        for (w, (rx, tx)) in rx.into_iter().zip(tx).enumerate() {
            let command = VmCommand::Attach {
                slot,
                port: VmPort {
                    rx,
                    tx,
                    secured,
                    mac: Some(dataplane::MacAddr(mac)),
                },
            };
            if self.mailboxes[w].post(command).is_err() {
                bail!("worker {w}'s mailbox is full");
            }
            self.posted[w] += 1;
        }
        while self.slots.len() <= slot {
            self.slots.push(None);
        }
        self.slots[slot] = Some(VmSlot {
            name: name.to_string(),
            mac,
            devargs: devargs.to_string(),
            state: State::Up(port),
            waiting: false,
        });
        self.wait_for_workers()
    }

    /// Waits until every worker carried out what was posted to it.
    fn wait_for_workers(&self) -> Result<()> {
        if !self.live {
            return Ok(());
        }
        let t0 = Instant::now();
        while self
            .mailboxes
            .iter()
            .zip(&self.posted)
            .any(|(m, &posted)| m.done() < posted)
        {
            if t0.elapsed() > WORKER_WAIT {
                bail!("a worker did not take the change within {WORKER_WAIT:?} (stopped?)");
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(())
    }

    /// Takes back every queue pair the workers returned, into its slot's port.
    fn collect_returned(&mut self) {
        for m in self.mailboxes {
            while let Some((slot, VmPort { rx, tx, .. })) = m.take_returned() {
                let taken = match self.slots.get_mut(slot).and_then(Option::as_mut) {
                    Some(VmSlot {
                        state: State::Up(port),
                        ..
                    }) => port.take_back(rx, tx).is_ok(),
                    _ => false,
                };
                if !taken {
                    log::error!(
                        "a worker returned queues for VM slot {slot}, which holds no such port"
                    );
                }
            }
        }
    }

    /// After the workers stopped: the device work under way finishes, every port's
    /// queues are back; stop and close them all.
    #[cold]
    pub fn shut_down(&mut self) {
        self.live = false;
        while self
            .slots
            .iter()
            .flatten()
            .any(|s| !matches!(s.state, State::Up(_)))
        {
            let Some(done) = self.devices.wait_finished() else {
                break;
            };
            self.on_done(done);
        }
        self.collect_returned();
        for s in self.slots.iter_mut().filter_map(Option::take) {
            if let State::Up(port) = s.state {
                if port.lent() > 0 {
                    log::error!("VM port {}: {} queue(s) not returned", s.name, port.lent());
                }
                drop(port);
            }
        }
    }

    /// Carries a finished device job through: an opened port served and its rule
    /// published, a removed one's slot freed.
    #[cold]
    fn on_done(&mut self, done: Done<'e>) -> Option<(Ticket, Result<Change>)> {
        match done {
            Done::Opened { ticket, port, ms } => {
                let slot = self.slot_of(ticket)?;
                Some((ticket, self.opened(slot, port, ms)))
            }
            Done::Removed {
                ticket,
                refused,
                ms,
            } => {
                let slot = self.slot_of(ticket)?;
                Some((ticket, self.removed(slot, refused, ms)))
            }
        }
    }

    fn slot_of(&self, ticket: Ticket) -> Option<usize> {
        self.slots.iter().position(|s| {
            s.as_ref().is_some_and(|s| match s.state {
                State::Opening { ticket: t, .. } | State::Removing { ticket: t, .. } => t == ticket,
                State::Up(_) => false,
            })
        })
    }

    /// A device opened (or not) for the plug in `slot`.
    #[cold]
    fn opened(&mut self, slot: usize, port: Result<Port<'e>, String>, ms: f64) -> Result<Change> {
        let s = self.slots[slot].take().context("slot emptied meanwhile")?;
        let State::Opening {
            secured, incoming, ..
        } = s.state
        else {
            bail!("slot {slot} is not being plugged");
        };
        let port = port
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot open VM port {:?} ({})", s.name, s.devargs))?;
        if !self.live {
            // The workers are gone (shutdown): the port closes here.
            bail!("the daemon is stopping");
        }
        self.attach(slot, &s.name, (&s.devargs, s.mac, secured), port)?;
        // Every worker serves the port: now the VM's MAC may lead to it (replacing a
        // rule to a peer), unless the VM is still running elsewhere (incoming).
        if let Some(s) = self.slots[slot].as_mut() {
            s.waiting = incoming;
        }
        if !incoming {
            let mut next = Fib::clone(&self.fib.load());
            next.insert(s.mac, Dest::Vm(fib::VmSlot(slot)));
            self.fib.store(Arc::new(next));
        }
        log::info!(
            "VM port {:?} plugged as slot {slot} in {ms:.0} ms: {}, VM {}{}{}",
            s.name,
            s.devargs,
            mac_str(&s.mac),
            if secured { "" } else { ", port security off" },
            if incoming {
                ", incoming (its rule moves when the VM announces itself)"
            } else {
                ""
            }
        );
        Ok(Change::Plugged {
            port: s.name,
            slot,
            device_ms: ms,
        })
    }

    /// The device of the unplug in `slot` removed (or handed back, kept).
    #[cold]
    fn removed(
        &mut self,
        slot: usize,
        refused: Option<(Port<'e>, String)>,
        ms: f64,
    ) -> Result<Change> {
        let s = self.slots[slot].take().context("slot emptied meanwhile")?;
        let State::Removing { rules, .. } = s.state else {
            bail!("slot {slot} is not being unplugged");
        };
        if let Some((port, e)) = refused {
            // Never close what a worker might poll: the port stays, out of service.
            self.slots[slot] = Some(VmSlot {
                state: State::Up(port),
                ..s
            });
            bail!("cannot remove the port: {e}");
        }
        log::info!(
            "VM port {:?} (slot {slot}) unplugged in {ms:.0} ms, {rules} rule(s) withdrawn",
            s.name
        );
        Ok(Change::Unplugged {
            port: s.name,
            rules,
            device_ms: ms,
        })
    }
}

impl<'e: 'p, 'p, 'm> VmPortControl for VmPorts<'e, 'p, 'm> {
    fn list(&self) -> Vec<(usize, String, [u8; 6], String)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                matches!(s.state, State::Up(_))
                    .then(|| (i, s.name.clone(), s.mac, s.devargs.clone()))
            })
            .collect()
    }

    #[cold]
    fn plug(
        &mut self,
        name: &str,
        devargs: &str,
        mac: [u8; 6],
        secured: bool,
        incoming: bool,
    ) -> Result<Ticket> {
        if name.is_empty() {
            bail!("a VM port needs a name");
        }
        if let Some(s) = self
            .slots
            .iter()
            .flatten()
            .find(|s| s.name == name || s.mac == mac)
        {
            bail!(
                "VM port {:?} (MAC {}) is {}",
                s.name,
                mac_str(&s.mac),
                match s.state {
                    State::Up(_) => "already plugged: unplug it first",
                    State::Opening { .. } => "being plugged",
                    State::Removing { .. } => "being unplugged: try again",
                }
            );
        }
        let slot = self.free_slot()?;
        let ticket = self.devices.open(devargs).map_err(|e| anyhow!(e))?;
        while self.slots.len() <= slot {
            self.slots.push(None);
        }
        self.slots[slot] = Some(VmSlot {
            name: name.to_string(),
            mac,
            devargs: devargs.to_string(),
            state: State::Opening {
                ticket,
                secured,
                incoming,
            },
            waiting: false,
        });
        Ok(ticket)
    }

    #[cold]
    fn unplug(&mut self, name: &str) -> Result<Ticket> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.name == name))
            .with_context(|| format!("no VM port {name:?}"))?;
        if !matches!(
            self.slots[slot].as_ref().map(|s| &s.state),
            Some(State::Up(_))
        ) {
            bail!("VM port {name:?} is being plugged or unplugged: try again");
        }
        self.devices.has_room().map_err(|e| anyhow!(e))?;
        // No new frame is queued for the port once the workers take this table.
        let mut next = Fib::clone(&self.fib.load());
        let gone: Vec<[u8; 6]> = next
            .iter()
            .filter(|(_, d)| **d == Dest::Vm(fib::VmSlot(slot)))
            .map(|(m, _)| *m)
            .collect();
        for m in &gone {
            next.remove(m);
        }
        self.fib.store(Arc::new(next));
        for (w, m) in self.mailboxes.iter().enumerate() {
            if m.post(VmCommand::Detach { slot }).is_err() {
                bail!("worker {w}'s mailbox is full");
            }
            self.posted[w] += 1;
        }
        self.wait_for_workers()?;
        self.collect_returned();
        let s = self.slots[slot].take().context("slot emptied meanwhile")?;
        let State::Up(port) = s.state else {
            bail!("slot {slot} changed meanwhile");
        };
        if port.lent() > 0 {
            // Some queue is still out: keep the port (never close what a worker polls).
            let lent = port.lent();
            self.slots[slot] = Some(VmSlot {
                state: State::Up(port),
                ..s
            });
            bail!("cannot remove the port: {lent} queue handle(s) still lent out");
        }
        let ticket = self.devices.remove(port);
        self.slots[slot] = Some(VmSlot {
            state: State::Removing {
                ticket,
                rules: gone.len(),
            },
            ..s
        });
        Ok(ticket)
    }

    fn finished(&mut self) -> Vec<(Ticket, Result<Change>)> {
        let mut out = Vec::new();
        while let Some(done) = self.devices.finished() {
            out.extend(self.on_done(done));
        }
        out
    }

    fn arrived(&mut self) -> Vec<(usize, [u8; 6])> {
        let mut up = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s.as_mut().filter(|s| s.waiting) else {
                continue;
            };
            if let State::Up(port) = &s.state {
                if port.link().is_ok_and(|l| l.up) {
                    s.waiting = false;
                    up.push((i, s.mac));
                }
            }
        }
        for (_, mac) in &up {
            // Worker 0 floods it (one copy per link is enough).
            if let Some(m) = self.mailboxes.first() {
                if m.post(VmCommand::Announce { mac: *mac }).is_ok() {
                    self.posted[0] += 1;
                }
            }
        }
        up
    }
}
