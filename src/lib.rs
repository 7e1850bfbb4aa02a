//! wrenvnet: a DPDK overlay switch for virtual machines that measures the network from
//! the application's own traffic and adapts the application to it. The library holds
//! everything the `wrenvnet` command runs; it is a library so that the fuzz targets
//! (fuzz/) reach the parsers of what operators and guests hand the daemon (its config,
//! the API's request bodies) in process.
#![forbid(unsafe_code)]

// Who runs what: the daemon on every host (`daemon/`: its modes, config, API, VM
// ports), the controller (`controller/`), the operator's commands (`operator/`: over
// running daemons, and offline over captures and problem files). The API's client
// serves the controller and the operator alike; `cluster/` is the key space in etcd
// that the daemons and the controller share; `fleet/` simulates many daemons at once
// against it.
pub mod api_client;
pub mod cluster;
pub mod controller;
pub mod daemon;
pub mod fleet;
pub mod operator;
