//! The daemon's side of reservations: `[qos]` (the uplink's capacity, the per-VM
//! best-effort cap, static reservations) and the desired state's reservations, turned
//! into the policy the workers enforce (`dataplane::switch::qos`), and shown by
//! `GET /reservations`.

use anyhow::{Context, Result};
use dataplane::switch::qos::{QosPolicy, Rate, Reservation};
use dataplane::MacAddr;
use serde_json::{json, Value};

use crate::cluster::ReservationSpec;
use crate::daemon::config::{parse_mac, QosSection};

/// One reservation, checked: both MACs, the rate and burst.
pub fn reservation(spec: &ReservationSpec) -> Result<Reservation> {
    let src = parse_mac(&spec.src_mac).context("src_mac")?;
    let dst = parse_mac(&spec.dst_mac).context("dst_mac")?;
    if src[0] & 1 != 0 || dst[0] & 1 != 0 {
        anyhow::bail!("a reservation's source and destination must be unicast MACs");
    }
    let rate = Rate::from_mbps(spec.mbps, spec.burst_bytes)
        .with_context(|| format!("mbps {}", spec.mbps))?;
    let r = Reservation { src, dst, rate };
    // The burst is checked with the policy (`Rate::from_mbps` checks the rate only).
    QosPolicy::new(None, None, vec![r], 1)
        .with_context(|| format!("burst_bytes {}", rate.burst_bytes))?;
    Ok(r)
}

/// How a reservation is named in errors and logs.
pub fn name(spec: &ReservationSpec) -> String {
    format!("{}->{}", spec.src_mac, spec.dst_mac)
}

/// The policy of `[qos]` with `reservations`, for `workers` workers.
pub fn policy(q: &QosSection, reservations: &[ReservationSpec], workers: u16) -> Result<QosPolicy> {
    let uplink = q
        .uplink_mbps
        .map(|m| Rate::from_mbps(m, q.uplink_burst_bytes))
        .transpose()
        .context("qos.uplink_mbps")?;
    let vm_cap = q
        .best_effort_vm_mbps
        .map(|m| Rate::from_mbps(m, q.best_effort_vm_burst_bytes))
        .transpose()
        .context("qos.best_effort_vm_mbps")?;
    let list = reservations
        .iter()
        .map(|r| reservation(r).with_context(|| format!("reservation {}", name(r))))
        .collect::<Result<Vec<_>>>()?;
    let p = QosPolicy::new(uplink, vm_cap, list, workers as u32)?;
    // Bursts are checked by `QosPolicy::new` (rates were by `from_mbps`).
    Ok(p)
}

/// `GET /reservations`: the capacities and reservations in force.
pub fn to_json(p: Option<&QosPolicy>) -> Value {
    let Some(p) = p else {
        return json!({"active": false, "reservations": []});
    };
    let rate = |r: Option<Rate>| r.map(|r| json!({"mbps": r.mbps(), "burst_bytes": r.burst_bytes}));
    let list: Vec<Value> = p
        .reservations()
        .iter()
        .map(|r| {
            json!({"src_mac": MacAddr(r.src).to_string(), "dst_mac": MacAddr(r.dst).to_string(),
                "mbps": r.rate.mbps(), "burst_bytes": r.rate.burst_bytes})
        })
        .collect();
    json!({
        "active": p.is_active(),
        "uplink": rate(p.uplink()),
        "best_effort_vm_cap": rate(p.vm_cap()),
        "reserved_mbps": p.reserved_bps() as f64 / 1e6,
        "oversubscribed": p.oversubscribed(),
        "workers": p.workers(),
        "reservations": list,
    })
}
