//! Reservations on the NIC egress: frames from local VMs to the overlay, in two classes.
//!
//! - **Reserved**: frames whose inner source/destination MAC pair has a reservation,
//!   within that reservation's rate (a token bucket each). They always pass, and are
//!   charged to the uplink's bucket whatever it holds (down to one burst of debt):
//!   reserved traffic goes first.
//! - **Best-effort**: every other frame from a local VM to a peer, and a reserved
//!   flow's excess over its rate. It passes within the VM's best-effort cap (if
//!   configured) and within what the uplink's bucket has left after the reserved
//!   traffic, so reserved + best-effort stays within the uplink's capacity, and what a
//!   reservation leaves unused is best-effort's.
//!
//! Frames that do not fit are dropped (a policer), counted under their `DropCause` and
//! per class (`SwitchCounters::qos`). Policing rather than queueing: the switch runs to
//! completion, each loop sending or freeing every mbuf it received, and a shaper would
//! hold mbufs across loops in per-class queues (mempool pressure, latency, a scheduler
//! such as rte_sched on the loop's path) for the same outcome with the guests' TCP,
//! which backs off on a drop either way. The buckets' bursts (10 ms at their rate by
//! default) let TCP reach its rate through the policer.
//!
//! Not shaped: frames to local VMs, floods (broadcast, unknown unicast) and transit
//! frames (another host's traffic). Time is the TSC the loop read once for the burst;
//! a bucket is refilled at most once per burst and the per-frame work is integer
//! compares and adds. Each worker enforces its share of every rate (rate / workers):
//! exact with one worker, or when a flow's frames spread evenly over the workers.
//!
//! With no reservation and no per-VM cap the policy is inactive and the loop takes the
//! unshaped path, one branch per burst.

mod bucket;
mod policy;
mod shaper;

pub use bucket::{TokenBucket, Units, MAX_BURST_BYTES};
pub use policy::{
    default_burst, Pair, QosError, QosPolicy, Rate, Reservation, MAX_RATE_BPS, MAX_RESERVATIONS,
    MIN_BURST_BYTES,
};
pub use shaper::{Shaper, Tally};
