//! EAL up with --no-pci and net_ring vdevs: a burst forwarded between two ports
//! arrives byte-identical, a full tx queue frees and counts what it cannot take, and
//! afterwards the mempool holds all its mbufs again.
//!
//! One EAL per process: this file is its own test binary with a single test.

use dataplane::{Burst, Eal, EalArgs, Error, Mbuf, Mempool, Port, PortConfig};

fn eal_args() -> EalArgs {
    let args = EalArgs::new("ring_forward")
        .lcores("0")
        .log_level("*:warning");
    // Hugepages when the host has them (scripts/setup.sh), anonymous memory otherwise.
    let free_huge = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    if free_huge >= 64 {
        args.in_memory(true)
    } else {
        args.no_huge(true)
            .memory_mb(256)
            .file_prefix(format!("ringfwd{}", std::process::id()))
    }
}

fn frame(i: usize) -> Vec<u8> {
    // Sizes from 60 to 1514 bytes, contents unique per frame.
    let len = 60 + (i * 97) % 1455;
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn forwarded_burst_is_byte_identical_and_no_mbuf_leaks() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    assert!(
        eal.argv().iter().any(|a| a == "--no-pci"),
        "EAL must get --no-pci: {:?}",
        eal.argv()
    );
    assert!(matches!(
        Eal::init(&eal_args()),
        Err(Error::EalAlreadyInitialized)
    ));

    let pool = Mempool::create(&eal, "ringfwd", 4095, 0, None).expect("pool");
    assert_eq!(pool.in_use(), 0);
    let cfg = PortConfig {
        rx_desc: 256,
        tx_desc: 256,
        ..PortConfig::default()
    };
    {
        let mut a = Port::open(&eal, "net_ring0", &pool, &cfg).expect("net_ring0");
        let mut b = Port::open(&eal, "net_ring1", &pool, &cfg).expect("net_ring1");
        assert_ne!(a.id(), b.id());
        let (mut a_rx, mut a_tx) = a.queues();
        let (mut b_rx, mut b_tx) = b.queues();

        let frames: Vec<Vec<u8>> = (0..32).map(frame).collect();
        let mut burst = Burst::new();
        for f in &frames {
            burst
                .push(Mbuf::from_bytes(&pool, f).expect("mbuf"))
                .expect("room");
        }
        assert_eq!(pool.in_use(), 32);

        // net_ring ports loop tx back to rx: A.tx -> A.rx -> (forward) B.tx -> B.rx.
        let out = a_tx[0].send(&mut burst);
        assert_eq!((out.sent, out.dropped), (32, 0));
        assert!(burst.is_empty());
        assert_eq!(a_rx[0].rx(&mut burst), 32);
        let out = b_tx[0].send(&mut burst);
        assert_eq!((out.sent, out.dropped), (32, 0));
        assert_eq!(b_rx[0].rx(&mut burst), 32);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(burst.data(i), &f[..], "frame {i} changed on the way");
        }
        // Dropping a burst gives its packets back.
        drop(burst);
        assert_eq!(pool.in_use(), 0);

        // Fill A's ring until it refuses: every packet is either sent or freed and counted.
        let mut offered = 0usize;
        let mut sent = 0usize;
        let mut dropped = 0usize;
        while dropped == 0 && offered < 4096 {
            let mut burst = Burst::new();
            while burst.room() > 0 {
                match Mbuf::from_bytes(&pool, &frame(offered)) {
                    Some(m) => {
                        burst.push(m).unwrap();
                        offered += 1;
                    }
                    None => break,
                }
            }
            assert!(!burst.is_empty(), "pool ran dry before the ring filled");
            let out = a_tx[0].send(&mut burst);
            sent += out.sent;
            dropped += out.dropped;
        }
        assert!(dropped > 0, "the ring never filled after {offered} packets");
        assert_eq!(sent + dropped, offered);
        assert_eq!(
            pool.in_use() as usize,
            sent,
            "dropped packets must be back in the pool"
        );

        // Leave some packets queued in the device: closing the port must return them.
        let mut burst = Burst::new();
        assert!(a_rx[0].rx(&mut burst) > 0);
        drop(burst);
        assert!(pool.in_use() > 0);

        let link = a.link().expect("link");
        assert!(link.up);
        assert!(a.stats().expect("stats").tx_packets >= 32);
        assert!(!a.xstats().expect("xstats").is_empty() || a.xstats().is_ok());
    }
    // Headroom: prepend and adj move the data start and both lengths, as DPDK's do.
    {
        let mut m = Mbuf::from_bytes(&pool, &[7u8; 60]).expect("mbuf");
        assert_eq!(m.prepend(50).expect("headroom").len(), 110);
        assert_eq!(m.pkt_len(), 110);
        assert!(m.prepend(u16::MAX).is_none(), "more than the headroom");
        assert_eq!(m.pkt_len(), 110);
        assert!(m.adj(50));
        assert_eq!((m.data(), m.pkt_len()), (&[7u8; 60][..], 60));
        assert!(!m.adj(61), "more than the data");
        assert_eq!(m.pkt_len(), 60);
    }
    // Queues lent out (a port plugged live): the port is not removed until every
    // handle is back; removed, its device name can be opened again.
    {
        let mut c = Port::open(&eal, "net_ring2", &pool, &cfg).expect("net_ring2");
        let (rx, tx) = c.lend_queues().expect("lend");
        assert!(c.lend_queues().is_err(), "lent twice");
        assert!(c.queues().0.is_empty(), "queues() while lent out");
        assert_eq!(c.lent(), 2);
        let mut c = match c.remove() {
            Err((c, e)) => {
                assert!(e.to_string().contains("lent out"), "{e}");
                c
            }
            Ok(()) => panic!("removed with its queues out"),
        };
        for (r, t) in rx.into_iter().zip(tx) {
            assert!(c.take_back(r, t).is_ok());
        }
        assert_eq!(c.lent(), 0);
        c.remove().map_err(|(_, e)| e).expect("remove");
        drop(Port::open(&eal, "net_ring2", &pool, &cfg).expect("net_ring2 again"));
    }
    // Ports stopped and closed: everything back.
    let left = pool.in_use();
    assert_eq!(left, 0, "{left} mbufs still out after the ports closed");
}
