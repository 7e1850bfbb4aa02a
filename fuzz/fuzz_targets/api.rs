//! The daemon API's request bodies and paths, and the desired state a daemon reads
//! from etcd, against a host with one VM port and two links: every request is either
//! carried out or refused with a reason, never a panic, and a refused change changes
//! nothing (the rules and links read back the same).
//!
//! Input: a first byte choosing the route, then the path's parameter up to the first
//! newline, then the body.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use anyhow::{bail, Result};
use arc_swap::ArcSwap;
use dataplane::switch::fib::{Dest, Fib, PeerIx, PeerSpec, VmSlot};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wrenvnet::cluster::Desired;
use wrenvnet::daemon::api::{Identity, Operations};
use wrenvnet::daemon::vm_ports::{Change, Ticket, VmPortControl};

const VM: [u8; 6] = [2, 0, 0, 0, 0xaa, 1];

/// One VM port "vm" in slot 0; plugging refuses (no devices here).
struct OneVm;

impl VmPortControl for OneVm {
    fn list(&self) -> Vec<(usize, String, [u8; 6], String)> {
        vec![(0, "vm".into(), VM, String::new())]
    }
    fn plug(&mut self, _: &str, _: &str, _: [u8; 6], _: bool, _: bool) -> Result<Ticket> {
        bail!("no devices here")
    }
    fn unplug(&mut self, _: &str) -> Result<Ticket> {
        bail!("no devices here")
    }
    fn finished(&mut self) -> Vec<(Ticket, Result<Change>)> {
        Vec::new()
    }
    fn arrived(&mut self) -> Vec<(usize, [u8; 6])> {
        Vec::new()
    }
}

fn table() -> Arc<ArcSwap<Fib>> {
    let mut fib = Fib::default();
    fib.insert(VM, Dest::Vm(VmSlot(0)));
    for (name, ip) in [("b", [198, 18, 0, 2]), ("c", [198, 18, 0, 3])] {
        let spec = PeerSpec {
            name: name.into(),
            ip,
            mac: None,
        };
        fib.set_peer(spec).expect("two links fit");
    }
    fib.insert([2, 0, 0, 0, 0xbb, 1], Dest::Peer(PeerIx(0)));
    Arc::new(ArcSwap::from_pointee(fib))
}

fuzz_target!(|input: &[u8]| {
    let Some((&route, rest)) = input.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let Ok(param) = std::str::from_utf8(&rest[..split]) else {
        return;
    };
    let body_bytes = rest.get(split + 1..).unwrap_or(&[]);
    let vms = RefCell::new(OneVm);
    let me = Identity {
        host: "a".into(),
        underlay_ip: "198.18.0.1".into(),
    };
    let ops = Operations::new(me, table(), &vms);
    let before = (ops.rules(), ops.links());
    if route % 6 == 5 {
        // The desired state from etcd: refusals are reported per item, never a panic.
        if let Ok(d) = serde_json::from_slice::<Desired>(body_bytes) {
            let _ = ops.apply_desired(&d);
        }
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body_bytes) else {
        return;
    };
    let refused = match route % 6 {
        0 => ops.set_rule(param, &body).err(),
        1 => ops.del_rule(param).err(),
        2 => ops.set_link(param, &body).err(),
        3 => ops.del_link(param).err(),
        _ => ops.plug_vm(param, &body).err(),
    };
    if let Some(e) = refused {
        assert!(!format!("{e:#}").is_empty(), "a refusal without a reason");
        assert_eq!(
            (ops.rules(), ops.links()),
            before,
            "a refused change changed: {e:#}"
        );
    }
});
