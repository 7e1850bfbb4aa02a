//! Every config the tests and benchmarks build (the `testbed` crate's presets and
//! parts) is one the daemon accepts: each goes through `wrenvnet run`'s parser, which
//! reads and checks the whole config before the EAL starts. An EAL argument the EAL
//! refuses then stops the run at once, with no root, ports or huge pages needed.

mod common;

use common::*;
use std::process::Command;
use testbed::{presets, Api, DaemonConfig, Etcd};

/// Runs the daemon's parser on `c`: panics with its error if it refuses the config.
fn assert_accepted(name: &str, c: &DaemonConfig) {
    let dir = TempDir::new(&format!("preset-{name}"));
    let path = write_file(&dir.0, "c.toml", &c.to_toml());
    let out = Command::new(wrenvnet_bin())
        .args(["run", "--config"])
        .arg(&path)
        .args(["--", "--no-such-eal-flag"])
        .output()
        .expect("spawn wrenvnet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot start the DPDK EAL"),
        "{name}: the daemon refused the config:\n{err}\n{}",
        c.to_toml()
    );
}

#[test]
fn every_preset_and_part_parses_in_the_daemon() {
    let (nic, vm) = ("net_null0", "net_null1");
    let full = presets::lab_switch(1, &presets::af_packet(0, "u"))
        .host_name("h0")
        .vttif(|v| {
            v.window_ms = Some(100);
            v.ewma_alpha = Some(0.3);
            v.threshold = Some(0.2);
            v.persist_windows = Some(2);
        })
        .vm("vm0", &presets::af_packet(1, "vm0"), "02:00:00:00:01:01")
        .vm("vm1", &presets::af_packet(2, "vm1"), "02:00:00:00:01:02")
        .devargs(
            "vm1",
            "net_vhost0,iface=/tmp/wrenvnet-preset-vm1.sock,client=0",
        )
        .peer("h1", presets::lab_ip(2), None)
        .peer("h2", presets::lab_ip(3), Some("02:00:00:00:ff:03"))
        .rule("02:00:00:00:02:01", "h1")
        .rule("02:00:00:00:03:01", "h2")
        .dataplane(|d| {
            d.workers = Some(2);
            d.burst = Some(16);
            d.stage_clocks = Some(true);
        })
        .api(Api {
            unix: Some("/tmp/wrenvnet-preset-api.sock".into()),
            listen: Some("127.0.0.1:9280".into()),
            token: Some("t".into()),
            tls_cert: Some("/tmp/wrenvnet-preset.crt".into()),
            tls_key: Some("/tmp/wrenvnet-preset.key".into()),
        })
        .etcd(Etcd {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            prefix: Some("/wrenvnet/preset".into()),
            lease_ttl_s: Some(3),
            timeout_ms: Some(500),
            publish_interval_ms: Some(250),
            ca_file: Some("/tmp/wrenvnet-preset-ca.crt".into()),
            cert_file: Some("/tmp/wrenvnet-preset-client.crt".into()),
            key_file: Some("/tmp/wrenvnet-preset-client.key".into()),
        });
    let monitor_all = presets::bench_switch(nic, vm, true).monitor(|m| {
        m.ring_records = Some(8192);
        m.consumer_delay_us = Some(10);
        m.alternate_ms = Some(5);
    });
    for (name, c) in [
        ("xconnect", DaemonConfig::xconnect(nic, vm)),
        ("one_vm_one_peer", presets::one_vm_one_peer(nic, vm)),
        ("bench_switch_off", presets::bench_switch(nic, vm, false)),
        ("bench_switch_on", presets::bench_switch(nic, vm, true)),
        ("lab_switch", presets::lab_switch(1, nic)),
        ("every_switch_part", full),
        ("every_monitor_setting", monitor_all),
    ] {
        assert_accepted(name, &c);
    }
}

/// The check above can fail: a config the daemon refuses is reported as refused.
#[test]
fn a_config_the_daemon_refuses_is_caught() {
    let bad =
        presets::one_vm_one_peer("net_null0", "net_null1").rule("02:00:00:00:bb:02", "Nobody");
    let r = std::panic::catch_unwind(|| assert_accepted("unknown_peer", &bad));
    let msg = r.expect_err("a rule to an unknown peer is refused");
    let msg = msg.downcast_ref::<String>().expect("a formatted panic");
    assert!(msg.contains("names unknown peer"), "{msg}");
}
