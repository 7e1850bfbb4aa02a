# Shared by the switch benchmarks (bench/switch.sh, bench/ovs.sh): sourced, not run.
# The one-VM, one-peer switch configuration they measure, and testpmd io on the same
# ports with its cycles per packet.

# nic_devargs vm_devargs monitor(true|false) [stage_clocks(true|false)]
switch_cfg() {
  cat <<EOF
[dataplane]
mode = "switch"
workers = ${WORKERS:-1}
burst = 32
stats_interval_ms = 100000
stage_clocks = ${4:-false}
[[port]]
name = "nic"
devargs = "$1"
[[port]]
name = "vm"
devargs = "$2"
[monitor]
enabled = $3
ring_records = ${RING:-65536}
[switch]
underlay_ip = "198.18.100.1"
vni = 42
nic = "nic"
[[switch.vm]]
port = "vm"
mac = "02:00:00:00:aa:01"
[[switch.peer]]
name = "B"
ip = "198.18.100.2"
mac = "02:00:00:00:ff:02"
[[switch.rule]]
dst_mac = "02:00:00:00:bb:01"
peer = "B"
EOF
}

# nic_devargs vm_devargs (EAL, SECS and tmp from the caller) -> cycles/packet
testpmd_io_cycles() {
  { echo start; sleep "$SECS"; echo stop; sleep 1; echo quit; } |
    dpdk-testpmd "${EAL[@]}" --vdev "$1" --vdev "$2" -- \
      -i --forward-mode=io --burst=32 --record-core-cycles --nb-cores="${WORKERS:-1}" \
      --rxq="${WORKERS:-1}" --txq="${WORKERS:-1}" >"$tmp/testpmd.log" 2>&1
  sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' "$tmp/testpmd.log" | tail -1
}
