#!/usr/bin/env bash
# The lab's migration hook (controller.migrate_command in scripts/lab.sh --migrate):
# moves a lab VM from one host's daemon to another's, the way a hypervisor's live
# migration moves a VM's device, keeping its MAC, its address and its TCP connections.
#
#   lab_migrate.sh WORK ID VM_MAC PORT FROM TO
#
# 1. The destination daemon plugs a new VM port, a tap it creates (net_tap: not
#    af_packet, which disturbs the daemon's other af_packet ports when opened live;
#    see README, VM ports).
# 2. The tap is handed to the VM's namespace and takes over the VM's MAC and address
#    from its old interface, which goes down.
# 3. The source daemon unplugs the VM's old port (its rule is withdrawn first).
# The controller then points the other daemons' rules for the VM's MAC at TO.
set -euo pipefail
[ $# = 6 ] || { echo "usage: lab_migrate.sh WORK ID VM_MAC PORT FROM TO" >&2; exit 2; }
work=$1 id=$2 mac=$3 port=$4 from=$5 to=$6
BIN=${WRENVNET_BIN:-$(dirname "$0")/../target/release/wrenvnet}
n=${mac:13:1}          # 02:00:00:00:0N:01 -> N (the VM's lab number)
case "$n" in [1-9]) ;; *) echo "lab_migrate.sh: $mac is not a lab VM" >&2; exit 2 ;; esac
vm_ns="wlv$(echo "- A B C" | cut -d' ' -f$((n + 1)))$id"
to_ns="wl$to$id"
ip netns list | grep -q "^$vm_ns\b" || { echo "lab_migrate.sh: no namespace $vm_ns" >&2; exit 1; }
ip="198.19.0.$n"
# A name no earlier migration of this VM used: each plug makes a new device.
k=$(( $(date +%s%N) / 1000000 % 100000 ))
tap="mv$n-$k"
new_port="vm$n-$k"
echo "migrating VM $mac ($ip) from $from (port $port) to $to as port $new_port ($tap)"
"$BIN" vms --api "$work/api-$to.sock" --plug "$new_port" \
  --devargs "net_tap$k,iface=$tap" --mac "$mac"
ip -n "$to_ns" link set "$tap" netns "$vm_ns"
old=$(ip -n "$vm_ns" -o -4 addr show | awk -v a="$ip/24" '$4 == a {print $2}' | head -1)
ip -n "$vm_ns" link set "$tap" address "$mac" mtu 1450
ip netns exec "$vm_ns" ethtool -K "$tap" tx off tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$vm_ns" sysctl -qw "net.ipv6.conf.$tap.disable_ipv6=1" 2>/dev/null || true
if [ -n "$old" ]; then
  ip -n "$vm_ns" addr del "$ip/24" dev "$old"
  ip -n "$vm_ns" link set "$old" down
fi
ip -n "$vm_ns" addr add "$ip/24" dev "$tap"
ip -n "$vm_ns" link set "$tap" up
"$BIN" vms --api "$work/api-$from.sock" --unplug "$port"
# Tell the VM's neighbours where it is now (as QEMU does after a migration: a RARP).
ip netns exec "$vm_ns" arping -c 1 -U -I "$tap" "$ip" >/dev/null 2>&1 || true
echo "migrated VM $mac to $to"
