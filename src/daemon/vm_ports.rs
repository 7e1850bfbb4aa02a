//! The daemon's VM ports, plugged and unplugged while the workers run: opened and
//! closed here on the main lcore, handed to and taken back from every worker through
//! its mailbox (dataplane::switch::mailbox), with the rules to the port published only
//! once every worker serves it and withdrawn before any worker lets it go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use dataplane::switch::fib::{self, Dest, Fib};
use dataplane::switch::mailbox::{Mailbox, VmCommand, MAX_VMS};
use dataplane::switch::VmPort;
use dataplane::{Eal, Mempool, Port, PortConfig, PortId};

/// How long a change waits for every worker to carry it out (they look once per loop).
const WORKER_WAIT: Duration = Duration::from_secs(2);

/// A plugged VM port.
pub struct VmSlot<'e> {
    pub name: String,
    pub mac: [u8; 6],
    pub devargs: String,
    port: Port<'e>,
}

/// What the control interface may ask of the VM ports.
pub trait VmPortControl {
    /// (slot, port name, VM MAC, devargs) of every plugged port.
    fn list(&self) -> Vec<(usize, String, [u8; 6], String)>;
    /// Opens `devargs` as VM port `name` for the VM at `mac`, serves it on every worker
    /// and points `mac`'s rule at it. Returns the slot.
    /// `secured`: port security (frames only from the MACs behind the port).
    fn plug(&mut self, name: &str, devargs: &str, mac: [u8; 6], secured: bool) -> Result<usize>;
    /// Withdraws every rule to port `name`, takes its queues back from every worker
    /// and removes the device. Returns how many rules went with it.
    fn unplug(&mut self, name: &str) -> Result<usize>;
}

/// The VM ports of a switch whose workers read `mailboxes` (one each).
pub struct VmPorts<'e, 'p, 'm> {
    eal: &'e Eal,
    pool: Mempool<'e>,
    config: PortConfig,
    slots: Vec<Option<VmSlot<'e>>>,
    mailboxes: &'m [Mailbox<'p>],
    /// Commands posted to each worker so far.
    posted: Vec<u64>,
    fib: Arc<ArcSwap<Fib>>,
    /// Whether the workers run (before they start, nothing can be waited for).
    live: bool,
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl<'e: 'p, 'p, 'm> VmPorts<'e, 'p, 'm> {
    pub fn new(
        eal: &'e Eal,
        pool: Mempool<'e>,
        config: PortConfig,
        mailboxes: &'m [Mailbox<'p>],
        fib: Arc<ArcSwap<Fib>>,
    ) -> Self {
        Self {
            eal,
            pool,
            config,
            slots: Vec::new(),
            mailboxes,
            posted: vec![0; mailboxes.len()],
            fib,
            live: false,
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
            .map(|s| (s.name.clone(), s.port.id()))
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
                port: VmPort { rx, tx, secured },
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
            port,
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
                    Some(s) => s.port.take_back(rx, tx).is_ok(),
                    None => false,
                };
                if !taken {
                    log::error!(
                        "a worker returned queues for VM slot {slot}, which holds no such port"
                    );
                }
            }
        }
    }

    /// After the workers stopped: every port's queues are back; stop and close them all.
    #[cold]
    pub fn shut_down(&mut self) {
        self.collect_returned();
        for s in self.slots.iter_mut().filter_map(Option::take) {
            if s.port.lent() > 0 {
                log::error!(
                    "VM port {}: {} queue(s) not returned",
                    s.name,
                    s.port.lent()
                );
            }
            drop(s.port);
        }
    }
}

impl<'e: 'p, 'p, 'm> VmPortControl for VmPorts<'e, 'p, 'm> {
    fn list(&self) -> Vec<(usize, String, [u8; 6], String)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .map(|s| (i, s.name.clone(), s.mac, s.devargs.clone()))
            })
            .collect()
    }

    #[cold]
    fn plug(&mut self, name: &str, devargs: &str, mac: [u8; 6], secured: bool) -> Result<usize> {
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
                "VM port {:?} (MAC {}) is already plugged: unplug it first",
                s.name,
                mac_str(&s.mac)
            );
        }
        let slot = self.free_slot()?;
        let port = Port::open(self.eal, devargs, &self.pool, &self.config)
            .with_context(|| format!("cannot open VM port {name:?} ({devargs})"))?;
        self.attach(slot, name, (devargs, mac, secured), port)?;
        // Every worker serves the port: now the VM's MAC may lead to it (replacing a
        // rule to a peer, as when the VM just migrated here).
        let mut next = Fib::clone(&self.fib.load());
        next.insert(mac, Dest::Vm(fib::VmSlot(slot)));
        self.fib.store(Arc::new(next));
        log::info!(
            "VM port {name:?} plugged as slot {slot}: {devargs}, VM {}{}",
            mac_str(&mac),
            if secured { "" } else { ", port security off" }
        );
        Ok(slot)
    }

    #[cold]
    fn unplug(&mut self, name: &str) -> Result<usize> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.name == name))
            .with_context(|| format!("no VM port {name:?}"))?;
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
        if let Err((port, e)) = s.port.remove() {
            // Some queue is still out: keep the port (never close what a worker polls).
            self.slots[slot] = Some(VmSlot { port, ..s });
            return Err(e).context("cannot remove the port");
        }
        log::info!(
            "VM port {name:?} (slot {slot}) unplugged, {} rule(s) withdrawn",
            gone.len()
        );
        Ok(gone.len())
    }
}
