# Shared by the benchmarks (bench/switch.sh, bench/ovs.sh, bench/xconnect.sh, bench/ab.sh,
# bench/qos_ab.sh): sourced, not run. The ports under test, the one-VM, one-peer switch
# configuration they measure, the within-run A/B scripts' replay ports and runs, and
# testpmd io on the same ports with its cycles per packet.

# The ports under test on a bare-metal host: DUT_PORTS="P0 P1", two DPDK devargs, e.g.
# the PCI addresses of two NIC ports ("0000:3b:00.0 0000:3b:00.1", with driver options
# after a comma as `-a` takes them), each cabled to a traffic generator. Unset, each
# script makes its own vdevs and every EAL gets --no-pci: no NIC is needed or touched.
is_pci() { [[ "$1" =~ ^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7](,|$) ]]; }
# attach_args DEVARGS... -> the EAL arguments that attach them, one a line: `-a` for a
# PCI address, `--vdev` otherwise, and --no-pci unless one is PCI.
attach_args() {
  local pci=0 d
  for d in "$@"; do
    if is_pci "$d"; then printf -- '-a\n%s\n' "$d"; pci=1; else printf -- '--vdev\n%s\n' "$d"; fi
  done
  [ "$pci" = 1 ] || printf -- '--no-pci\n'
}
# dut_ports DEFAULT0 DEFAULT1 -> sets P0 and P1 from DUT_PORTS (two devargs) or the defaults,
# and PORTS_LABEL ("dut" or "null"/"pcap" as the caller names its defaults).
dut_ports() {
  if [ -n "${DUT_PORTS:-}" ]; then
    read -r P0 P1 rest <<< "$DUT_PORTS"
    [ -n "${P1:-}" ] && [ -z "${rest:-}" ] || { echo "DUT_PORTS must name two ports (devargs), not: $DUT_PORTS" >&2; exit 1; }
    PORTS_LABEL=dut
  else
    P0=$1; P1=$2
  fi
}

# empty_pcap FILE: a pcap with no packets (a port that receives nothing).
empty_pcap() {
  python3 -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<IHHiIII',0xA1B2C3D4,2,4,0,0,65535,1))" "$1"
}
# switch_nic_mac BIN CONFIG (EAL and tmp from the caller) -> the MAC of the switch's port
# "nic", read off a half-second run: decapsulation frames must be addressed to it.
switch_nic_mac() {
  "$1" run --config "$2" --duration 0.5 -- "${EAL[@]}" > "$tmp/probe.log" 2>&1 || { cat "$tmp/probe.log" >&2; return 1; }
  local mac
  mac=$(sed -n 's/.*port "nic": id [0-9]* mac \([0-9a-f:]*\).*/\1/p' "$tmp/probe.log" | head -1)
  [ -n "$mac" ] || { cat "$tmp/probe.log" >&2; echo "no NIC MAC in the log" >&2; return 1; }
  echo "$mac"
}

# The within-run A/B scripts (bench/ab.sh, bench/qos_ab.sh) set up and run the switch
# alike; these are that part, so the two measure on the same ports and EAL.
# ab_setup: a temporary directory $tmp (removed on exit), the EAL arguments EAL (cores
# 0-1, in memory, --no-pci), $tmp/empty.pcap and the ports' sink SINK.
ab_setup() {
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  EAL=(-l 0-1 --in-memory --no-pci --log-level '*:error')
  empty_pcap "$tmp/empty.pcap"
  SINK="tx_pcap=/dev/null"
}
# ab_encap_ports (SIZE from the caller) -> NIC and VM for encapsulation: the VM port
# replays SIZE-byte frames 02:00:00:00:aa:01 -> 02:00:00:00:bb:01 from memory, the NIC
# receives nothing.
ab_encap_ports() {
  python3 bench/gen_frames.py plain "$tmp/frames.pcap" --size "$SIZE"
  NIC="net_pcap0,rx_pcap=$tmp/empty.pcap,$SINK"
  VM="net_pcap1,rx_pcap=$tmp/frames.pcap,infinite_rx=1,$SINK"
}
# ab_run BIN CONFIG (SECS, EAL and tmp from the caller): one run of SECS seconds, its
# summary in $tmp/s.json; on failure, the end of its log and the calling script exits.
ab_run() {
  "$1" run --config "$2" --duration "$SECS" --summary-json "$tmp/s.json" -- "${EAL[@]}" \
    > "$tmp/run.log" 2>&1 || { tail -5 "$tmp/run.log"; echo "${0##*/}: $1 failed" >&2; exit 1; }
}

# testbed_config ARGS... -> a daemon config (TOML) from the typed builder that the Rust
# tests use too (testbed/, `testbed-config --help`), built on first use.
testbed_config() {
  if [ -z "${TESTBED_CONFIG:-}" ]; then
    cargo build --release -q -p testbed --bin testbed-config >&2 || return 1
    TESTBED_CONFIG=target/release/testbed-config
  fi
  "$TESTBED_CONFIG" "$@"
}

# nic_devargs vm_devargs monitor(true|false) [stage_clocks(true|false)] [builder flags...]
# -> the one-VM, one-peer switch (VM port "vm" 02:00:00:00:aa:01, peer B 198.18.100.2
# 02:00:00:00:ff:02, rule 02:00:00:00:bb:01 -> B; testbed::presets::bench_switch), with
# WORKERS workers and RING records per worker ring. Records are published once per loop:
# the worker has core 1 to itself here, as on an isolated core in production.
switch_cfg() {
  testbed_config bench-switch --nic "$1" --vm "$2" --monitor "$3" --stage-clocks "${4:-false}" \
    --workers "${WORKERS:-1}" --ring-records "${RING:-65536}" "${@:5}"
}

# nic_devargs vm_devargs (EAL, SECS and tmp from the caller) -> cycles/packet
testpmd_io_cycles() {
  local attach
  mapfile -t attach < <(attach_args "$1" "$2")
  { echo start; sleep "$SECS"; echo stop; sleep 1; echo quit; } |
    dpdk-testpmd "${EAL[@]}" "${attach[@]}" -- \
      -i --forward-mode=io --burst=32 --record-core-cycles --nb-cores="${WORKERS:-1}" \
      --rxq="${WORKERS:-1}" --txq="${WORKERS:-1}" >"$tmp/testpmd.log" 2>&1
  sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' "$tmp/testpmd.log" | tail -1
}

# Open vSwitch with DPDK (Debian's openvswitch-switch-dpdk), started by hand with its own
# run, log and db directories under $tmp (nothing system-wide is touched), `--no-pci
# --in-memory` in dpdk-extra, main thread on core 0, PMD on core 1.
VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
vsctl() { ovs-vsctl --db="unix:$tmp/db.sock" --timeout=30 "$@"; }
ovs_up() { # ovsdb-server, ovs-vswitchd and an empty netdev bridge br0
  [ -x "$VSWITCHD" ] || apt-get install -y openvswitch-switch-dpdk >/dev/null
  export OVS_RUNDIR=$tmp OVS_LOGDIR=$tmp OVS_DBDIR=$tmp
  ovsdb-tool create "$tmp/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$tmp/conf.db" --remote="punix:$tmp/db.sock" --pidfile="$tmp/ovsdb-server.pid" \
    --unixctl="$tmp/ovsdb-server.ctl" --detach --log-file="$tmp/ovsdb.log" 2>>"$tmp/ovsdb.stderr"
  vsctl --no-wait init
  # --no-pci unless the ports under test are PCI devices (DUT_PORTS).
  local no_pci="--no-pci"
  [ "${PORTS_LABEL:-}" = dut ] && attach_args $DUT_PORTS | grep -qx -- -a && no_pci=""
  vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 \
    "other_config:dpdk-extra=$no_pci --in-memory --log-level=*:error"
  "$VSWITCHD" "unix:$tmp/db.sock" --pidfile="$tmp/ovs-vswitchd.pid" --unixctl="$tmp/ovs-vswitchd.ctl" \
    --detach --log-file="$tmp/vswitchd.log" 2>>"$tmp/vswitchd.stderr"
  vsctl add-br br0 -- set bridge br0 datapath_type=netdev
}
ovs_pmd_cycles() { # seconds -> the PMD's "avg processing cycles per packet" over them
  local ctl=(ovs-appctl -t "$tmp/ovs-vswitchd.ctl")
  "${ctl[@]}" dpif-netdev/pmd-stats-clear >/dev/null
  sleep "$1"
  "${ctl[@]}" dpif-netdev/pmd-stats-show > "$tmp/pmd.txt"
  sed -n 's/.*avg processing cycles per packet: \([0-9.]*\).*/\1/p' "$tmp/pmd.txt" | head -1
}
ovs_stop() { # stops both daemons and removes their database and sockets
  for f in "$tmp"/ovs-vswitchd.pid "$tmp"/ovsdb-server.pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    [ -f "$tmp/ovs-vswitchd.pid" ] && kill -0 "$(cat "$tmp/ovs-vswitchd.pid" 2>/dev/null)" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$tmp"/conf.db "$tmp"/*.pid "$tmp"/db.sock
}
ovs_kill() { # on exit: whatever is still running
  for f in "$tmp"/ovs-vswitchd.pid "$tmp"/ovsdb-server.pid; do
    [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true
  done
}