//! Ethernet ports opened from devargs, so the same code drives every kind of device:
//! `net_vhost` (VMs), `net_af_packet`/`net_tap` (lab veths), `net_ring`/`net_null`/
//! `net_pcap` (tests and benchmarks), or a PCI NIC already probed by the EAL (`-a`).
//!
//! A started port hands out its queues once (`Port::queues`); a queue is owned by one
//! worker, so rx/tx need no lock.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;

use serde::Serialize;

use crate::eal::Eal;
use crate::error::{dpdk_error, Error, Result};
use crate::mbuf::{Burst, MAX_BURST};
use crate::mempool::Mempool;

/// Linux ENOTSUP: a device that cannot do what was asked (not an error for options).
const ENOTSUP: i32 = 95;

/// A DPDK ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortId(pub u16);

/// A queue index on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QueueId(pub u16);

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub promiscuous: bool,
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// The counters DPDK keeps for a port (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the device because no rx descriptor was free.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Rx mbuf allocation failures (the pool ran dry).
    pub rx_nombuf: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// A configured, started port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port<'e> {
    id: PortId,
    name: String,
    rx_queues: u16,
    tx_queues: u16,
    /// Queue handles lent out by `lend_queues` and not yet taken back: while any is out,
    /// the port is never stopped or closed (a worker may still be polling it).
    lent: u32,
    _eal: PhantomData<&'e Eal>,
}

/// The flows RSS hashes on (rte_ethdev.h `RTE_ETH_RSS_*`, macros bindgen cannot
/// translate): IPv4 and IPv6, with TCP and UDP ports, fragments by address only. VXLAN
/// frames hash on their outer UDP source port, which the sender derives from the
/// inner flow (RFC 7348 §5), so one overlay link still spreads over every worker.
const RSS_FLOWS: u64 = (1 << 2) // IPV4
    | (1 << 3) // FRAG_IPV4
    | (1 << 4) // NONFRAG_IPV4_TCP
    | (1 << 5) // NONFRAG_IPV4_UDP
    | (1 << 7) // NONFRAG_IPV4_OTHER
    | (1 << 8) // IPV6
    | (1 << 10) // NONFRAG_IPV6_TCP
    | (1 << 11); // NONFRAG_IPV6_UDP

impl<'e> Port<'e> {
    /// Opens the device named by `devargs` (probing it if the EAL has not already),
    /// sets up its queues with buffers from `pool`, and starts it.
    #[cold]
    pub fn open(
        _eal: &'e Eal,
        devargs: &str,
        pool: &Mempool<'e>,
        config: &PortConfig,
    ) -> Result<Self> {
        let dev_name = devargs.split(',').next().unwrap_or("").trim();
        if dev_name.is_empty() {
            return Err(Error::Invalid(format!(
                "empty device name in devargs {devargs:?}"
            )));
        }
        let id = match find_port(dev_name) {
            Some(id) => id,
            None => {
                crate::vhost_socket::clear_stale(devargs);
                let c = CString::new(devargs).map_err(|_| {
                    Error::Invalid(format!("devargs {devargs:?} contain a NUL byte"))
                })?;
                // SAFETY: valid NUL-terminated devargs; EAL is up (borrowed).
                let ret = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
                if ret < 0 {
                    return Err(dpdk_error(
                        "rte_dev_probe",
                        format!("device `{devargs}`"),
                        ret,
                    ));
                }
                find_port(dev_name).ok_or_else(|| {
                    Error::Invalid(format!(
                        "device `{devargs}` was probed but is not an ethdev port"
                    ))
                })?
            }
        };
        let mut port = Port {
            id,
            name: dev_name.to_string(),
            rx_queues: config.rx_queues,
            tx_queues: config.tx_queues,
            lent: 0,
            _eal: PhantomData,
        };
        port.configure(pool, config)?;
        Ok(port)
    }

    #[cold]
    fn configure(&mut self, pool: &Mempool<'e>, config: &PortConfig) -> Result<()> {
        let p = self.id.0;
        let what = || format!("port {} ({})", p, self.name);
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: p is a valid port id (found above); info is a writable struct.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(p, &mut info) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_dev_info_get", what(), ret));
        }
        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(Error::Invalid(format!(
                "{}: queue counts must be at least 1",
                what()
            )));
        }
        if config.rx_queues > info.max_rx_queues || config.tx_queues > info.max_tx_queues {
            return Err(Error::Invalid(format!(
                "{}: asked for {} rx / {} tx queues, the device has at most {} / {}",
                what(),
                config.rx_queues,
                config.tx_queues,
                info.max_rx_queues,
                info.max_tx_queues
            )));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        // Several rx queues: spread flows over them by RSS where the device hashes
        // (NICs; Toeplitz over addresses and ports, so a flow stays on one worker). Devices
        // that cannot (af_packet spreads by its own fanout hash, vhost by the guest's
        // queue choice) keep their own way.
        let rss_hf = RSS_FLOWS & info.flow_type_rss_offloads;
        if config.rx_queues > 1 && rss_hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            log::info!(
                "{}: RSS over {} rx queues (hash types {rss_hf:#x})",
                what(),
                config.rx_queues
            );
        } else if config.rx_queues < info.max_rx_queues && dev_is_af_packet(&self.name) {
            // af_packet's fanout hashes over every queue pair it opened (qpairs=N):
            // frames hashed to a queue nobody polls are lost.
            log::warn!(
                "{}: the device has {} queue pairs (qpairs) but {} are used: frames the kernel \
                 hashes to the others are never received; set qpairs to the number of workers",
                what(),
                info.max_rx_queues,
                config.rx_queues
            );
        } else if config.rx_queues > 1 {
            log::info!(
                "{}: {} rx queues, no RSS on this device: it spreads frames itself",
                what(),
                config.rx_queues
            );
        }
        // SAFETY: valid port, stopped (just probed or found unconfigured); conf lives
        // for the call.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_configure(p, config.rx_queues, config.tx_queues, &conf)
        };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_dev_configure", what(), ret));
        }
        let (mut nrx, mut ntx) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port; both pointers are to locals.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(p, &mut nrx, &mut ntx) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_dev_adjust_nb_rx_tx_desc", what(), ret));
        }
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(p) };
        // vdevs report -1 (SOCKET_ID_ANY); pass it on as "any".
        let socket = if socket < 0 { u32::MAX } else { socket as u32 };
        for q in 0..config.rx_queues {
            // SAFETY: configured port, queue index < configured count, live pool; a
            // null rx_conf means the driver's defaults.
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(p, q, nrx, socket, std::ptr::null(), pool.as_ptr())
            };
            if ret < 0 {
                return Err(dpdk_error(
                    "rte_eth_rx_queue_setup",
                    format!("{} rx queue {q}", what()),
                    ret,
                ));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: as above, tx side.
            let ret =
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(p, q, ntx, socket, std::ptr::null()) };
            if ret < 0 {
                return Err(dpdk_error(
                    "rte_eth_tx_queue_setup",
                    format!("{} tx queue {q}", what()),
                    ret,
                ));
            }
        }
        if let Some(mtu) = config.mtu {
            // SAFETY: valid configured port.
            let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(p, mtu) };
            if ret < 0 {
                return Err(dpdk_error("rte_eth_dev_set_mtu", what(), ret));
            }
        }
        // SAFETY: valid, fully set-up port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(p) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_dev_start", what(), ret));
        }
        if config.promiscuous {
            // SAFETY: valid started port. Some devices cannot; that is not fatal.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(p) };
            if ret < 0 && ret != -ENOTSUP {
                log::warn!(
                    "{}: cannot enable promiscuous mode: {}",
                    what(),
                    crate::error::errno_text(-ret)
                );
            }
        }
        Ok(())
    }

    pub fn id(&self) -> PortId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port's queues, each to be owned by one worker. The port stays borrowed
    /// (so cannot be stopped) while any queue lives.
    /// None while queues are lent out (`lend_queues`): two owners of one queue would
    /// race.
    pub fn queues(&mut self) -> (Vec<RxQueue<'_>>, Vec<TxQueue<'_>>) {
        if self.lent > 0 {
            return (Vec::new(), Vec::new());
        }
        self.handles()
    }

    /// One handle per queue. Private: the callers decide how long they may live (a
    /// borrow of the port, or the lent count).
    fn handles<'q>(&self) -> (Vec<RxQueue<'q>>, Vec<TxQueue<'q>>) {
        let rx = (0..self.rx_queues)
            .map(|q| RxQueue {
                port: self.id,
                queue: QueueId(q),
                _port: PhantomData,
            })
            .collect();
        let tx = (0..self.tx_queues)
            .map(|q| TxQueue {
                port: self.id,
                queue: QueueId(q),
                _port: PhantomData,
            })
            .collect();
        (rx, tx)
    }

    /// The port's queues for a port that is added and removed while the workers run
    /// (a VM port plugged live): the handles do not borrow the port, which counts them
    /// instead; it is stopped or removed only once every one came back (`take_back`).
    /// Refused while an earlier set is out.
    #[cold]
    pub fn lend_queues(&mut self) -> Result<(Vec<RxQueue<'e>>, Vec<TxQueue<'e>>)> {
        if self.lent > 0 {
            return Err(Error::Invalid(format!(
                "port {}: its queues are already lent out",
                self.name
            )));
        }
        self.lent = self.rx_queues as u32 + self.tx_queues as u32;
        Ok(self.handles())
    }

    /// Takes back a lent queue pair; refused (and handed back) if it is another port's.
    #[cold]
    #[allow(clippy::result_large_err)]
    pub fn take_back<'q>(
        &mut self,
        rx: RxQueue<'q>,
        tx: TxQueue<'q>,
    ) -> std::result::Result<(), (RxQueue<'q>, TxQueue<'q>)> {
        if rx.port != self.id || tx.port != self.id || self.lent < 2 {
            return Err((rx, tx));
        }
        self.lent -= 2;
        Ok(())
    }

    /// Queue handles still lent out.
    pub fn lent(&self) -> u32 {
        self.lent
    }

    /// Stops the port and removes its device from the EAL, so the same device name can
    /// be added again later (a VM port unplugged). Refused while queues are lent out.
    #[cold]
    #[allow(clippy::result_large_err)]
    pub fn remove(mut self) -> std::result::Result<(), (Self, Error)> {
        if self.lent > 0 {
            let e = Error::Invalid(format!(
                "port {}: {} queue handle(s) still lent out",
                self.name, self.lent
            ));
            return Err((self, e));
        }
        self.drain_rx();
        let p = self.id.0;
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port; info is a writable struct.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(p, &mut info) };
        // SAFETY: no queue handle is out (lent is 0 and `queues()` borrows `self`
        // mutably), so no worker polls the port; stopping returns nothing in flight.
        unsafe {
            let r = dpdk_sys::rte_eth_dev_stop(p);
            if r < 0 {
                log::warn!("stopping port {p}: {}", crate::error::errno_text(-r));
            }
        }
        let removed = if ret == 0 && !info.device.is_null() {
            // SAFETY: the device of a stopped port nobody polls; removing it closes the
            // port (freeing its rings' mbufs) and releases the device name.
            unsafe { dpdk_sys::rte_dev_remove(info.device) }
        } else {
            -1
        };
        if removed < 0 {
            // Could not remove the device: close the port at least.
            // SAFETY: as above, a stopped port nobody polls.
            unsafe { dpdk_sys::rte_eth_dev_close(p) };
            log::warn!("port {}: device not removed, closed only", self.name);
        }
        std::mem::forget(self);
        Ok(())
    }

    pub fn stats(&self) -> Result<PortStats> {
        self.id.stats()
    }

    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        self.id.xstats()
    }

    pub fn link(&self) -> Result<LinkStatus> {
        self.id.link()
    }

    pub fn mac(&self) -> Result<MacAddr> {
        self.id.mac()
    }
}

/// Upper bound on bursts drained per rx queue at close: some devices (net_null)
/// always have packets, and draining must end.
const DRAIN_MAX_BURSTS: usize = 1024;

impl Port<'_> {
    /// Receives and frees what the rx queues still hold. Software devices (net_ring,
    /// net_vhost) keep mbufs in their queues, and closing them does not free those.
    #[cold]
    fn drain_rx(&mut self) -> usize {
        let mut drained = 0;
        let (mut rxs, _) = self.queues();
        for rx in rxs.iter_mut() {
            let mut burst = Burst::new();
            for _ in 0..DRAIN_MAX_BURSTS {
                if rx.rx(&mut burst) == 0 {
                    break;
                }
                drained += burst.free_all();
            }
        }
        drained
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        if self.lent > 0 {
            // A worker may still poll these queues: leaking the device is the safe way.
            log::error!(
                "port {}: {} queue handle(s) never came back; the port is left running",
                self.name,
                self.lent
            );
            return;
        }
        let drained = self.drain_rx();
        if drained > 0 {
            log::debug!(
                "port {}: freed {drained} packets left in its rx queues",
                self.name
            );
        }
        let p = self.id.0;
        // SAFETY: no queue handle is alive (they borrow the port mutably); stopping
        // and closing a started port returns its rx mbufs to their pool.
        unsafe {
            let ret = dpdk_sys::rte_eth_dev_stop(p);
            if ret < 0 {
                log::warn!("stopping port {p}: {}", crate::error::errno_text(-ret));
            }
            let ret = dpdk_sys::rte_eth_dev_close(p);
            if ret < 0 {
                log::warn!("closing port {p}: {}", crate::error::errno_text(-ret));
            }
        }
    }
}

fn dev_is_af_packet(name: &str) -> bool {
    name.starts_with("net_af_packet") || name.starts_with("eth_af_packet")
}

fn find_port(name: &str) -> Option<PortId> {
    let c = CString::new(name).ok()?;
    let mut id: u16 = 0;
    // SAFETY: valid NUL-terminated name and a writable u16.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(PortId(id))
}

impl PortId {
    /// DPDK's counters for the port. Safe from any thread while the port exists.
    pub fn stats(self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: writable struct; ethdev checks the port id.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.0, &mut s) };
        if ret < 0 {
            return Err(dpdk_error(
                "rte_eth_stats_get",
                format!("port {}", self.0),
                ret,
            ));
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The driver's extended statistics, by name.
    #[cold]
    pub fn xstats(self) -> Result<Vec<(String, u64)>> {
        let what = || format!("port {}", self.0);
        // SAFETY: a null array with size 0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.0, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(dpdk_error("rte_eth_xstats_get_names", what(), n));
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays have n writable entries.
        let got_names =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.0, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got = unsafe { dpdk_sys::rte_eth_xstats_get(self.0, values.as_mut_ptr(), n as u32) };
        if got_names < 0 || got < 0 {
            return Err(dpdk_error("rte_eth_xstats_get", what(), got.min(got_names)));
        }
        let count = (got as usize).min(got_names as usize).min(n);
        Ok(values[..count]
            .iter()
            .map(|v| {
                let name = names
                    .get(v.id as usize)
                    .map(|n| {
                        // SAFETY: DPDK NUL-terminates every xstat name within its array.
                        unsafe { CStr::from_ptr(n.name.as_ptr()) }
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_else(|| format!("xstat{}", v.id));
                (name, v.value)
            })
            .collect())
    }

    /// Link state, without waiting for negotiation.
    pub fn link(self) -> Result<LinkStatus> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: writable struct; ethdev checks the port id.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.0, &mut l) };
        if ret < 0 {
            return Err(dpdk_error(
                "rte_eth_link_get_nowait",
                format!("port {}", self.0),
                ret,
            ));
        }
        Ok(LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    /// The port's MAC address.
    pub fn mac(self) -> Result<MacAddr> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: writable struct; ethdev checks the port id.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.0, &mut a) };
        if ret < 0 {
            return Err(dpdk_error(
                "rte_eth_macaddr_get",
                format!("port {}", self.0),
                ret,
            ));
        }
        Ok(MacAddr(a.addr_bytes))
    }
}

/// An rx queue, owned by one worker.
#[derive(Debug)]
pub struct RxQueue<'p> {
    port: PortId,
    queue: QueueId,
    _port: PhantomData<&'p mut ()>,
}

impl RxQueue<'_> {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives into the free room of `burst`; returns how many packets arrived.
    #[inline(always)]
    pub fn rx(&mut self, burst: &mut Burst<'_>) -> usize {
        self.rx_up_to(burst, MAX_BURST)
    }

    /// Receives at most `max` packets into the free room of `burst`.
    #[inline(always)]
    pub fn rx_up_to(&mut self, burst: &mut Burst<'_>, max: usize) -> usize {
        let (slots, len) = burst.raw_parts();
        let room = (MAX_BURST - *len).min(max) as u16;
        // SAFETY: this queue is owned by the caller alone (no concurrent rx on it);
        // the pointer addresses `room` free slots of the burst, which takes ownership
        // of the mbufs written there.
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(
                self.port.0,
                self.queue.0,
                slots.as_mut_ptr().add(*len),
                room,
            )
        } as usize;
        *len += n;
        n
    }
}

/// What a transmit did with a burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOutcome {
    pub sent: usize,
    /// Packets the queue had no room for; they were freed.
    pub dropped: usize,
}

/// A tx queue, owned by one worker.
#[derive(Debug)]
pub struct TxQueue<'p> {
    port: PortId,
    queue: QueueId,
    _port: PhantomData<&'p mut ()>,
}

impl TxQueue<'_> {
    pub fn port(&self) -> PortId {
        self.port
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Hands every packet of `burst` to the device; the ones it has no room for are
    /// freed. The burst is empty afterwards.
    #[inline(always)]
    pub fn send(&mut self, burst: &mut Burst<'_>) -> TxOutcome {
        let sent = self.try_send(burst);
        let dropped = burst.free_all();
        TxOutcome { sent, dropped }
    }

    /// Hands as many packets as the device takes; the rest stay in `burst` (moved to
    /// its front) for a retry.
    #[inline(always)]
    pub fn try_send(&mut self, burst: &mut Burst<'_>) -> usize {
        let (slots, len) = burst.raw_parts();
        if *len == 0 {
            return 0;
        }
        // SAFETY: this queue is owned by the caller alone; the first `len` slots are
        // owned mbufs, and the device takes ownership of the first `sent` of them.
        let sent = unsafe {
            dpdk_sys::rte_eth_tx_burst(self.port.0, self.queue.0, slots.as_mut_ptr(), *len as u16)
        } as usize;
        if sent < *len {
            slots.copy_within(sent..*len, 0);
        }
        *len -= sent;
        sent
    }
}
