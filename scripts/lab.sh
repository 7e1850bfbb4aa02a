#!/usr/bin/env bash
# The lab: wrenvnet closing the loop on one machine.
#
# Three hosts (A, B, C: network namespaces), each running a wrenvnet daemon (DPDK) with
# one VM on a VXLAN overlay: the application's VMs on A and C are QEMU guests (TCG) on
# the daemons' vhost-user ports, booted from the image scripts/guest-image.sh builds
# (or, with --vms netns, namespaces on veths and af_packet ports); B's is a namespace. The
# hosts' links meet in a fabric namespace: each host's access link has a one-way delay
# (wrenvnet-delayline: this kernel has no netem) and every directed host-to-host link
# its own capacity (tc htb, classified by the underlay source address). The
# application, a long iperf3 TCP transfer from the VM on A to the VM on C, runs while
# the controller (`wrenvnet controller`) reads what the daemons measure. Midway the
# A-C link is throttled. Live, it shows per link the truth beside what wrenvnet
# measured, the inferred traffic topology, the routes in force, and what the controller
# decided; with adaptation on it reroutes A->C through B and the application recovers.
# Everything it creates is removed on exit and on Ctrl-C.
#
#   sudo scripts/lab.sh                       # set up the host, build, run (adaptation on)
#   sudo scripts/lab.sh --adapt off           # the same scenario without adaptation
#   scripts/lab.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."

ADAPT=on DURATION=60 THROTTLE_AT=15 THROTTLE_MBIT=10 LINK_MBIT=100 DELAY_MS=5 EVENT=throttle
RESTART_AT="" DAEMON_RESTART_AT="" NO_LINK="" OUT="" PLAIN=0 SETUP=1 PLOT="" MIGRATE=0 VMS=qemu
usage() {
  cat <<EOF
usage: scripts/lab.sh [options]
  --adapt on|off            the controller adapts (default) or only observes and plans
  --duration S              length of the application's run (default $DURATION)
  --event throttle|cross    what happens to the A-C link midway: its capacity drops
                            (tc), or UDP cross traffic from A's site to C's takes
                            all but --throttle-mbit of it (default $EVENT)
  --throttle-at S           when (default $THROTTLE_AT)
  --throttle-mbit M         A-C's available bandwidth then (default $THROTTLE_MBIT)
  --link-mbit M             every link's capacity before (default $LINK_MBIT)
  --delay-ms D              one-way delay of each host's access link (default $DELAY_MS)
  --restart-controller-at S kill the controller at S and start it again 2 s later
  --restart-daemon-at S     restart host A's daemon at S (it comes back with its
                            config's rules; the controller puts the plan back)
  --vms qemu|netns          the application's VMs (on A and C): QEMU guests (TCG: no
                            KVM here) on vhost-user ports, booted from the image
                            scripts/guest-image.sh builds (default), or namespaces on
                            veths with af_packet ports (quicker to start)
  --migrate                 the controller may move VMs (each host takes 2): its hook,
                            scripts/lab_migrate.sh, plugs a tap for the VM on the
                            new host's daemon, hands it to the VM, unplugs the old port
  --no-link X-Y             hosts X and Y start without an overlay link between them
                            (e.g. A-B: the controller must add it to reroute via B)
  --out DIR                 keep the results there (result.json, logs, controller events)
  --plain                   one line per second instead of a redrawn screen
  --plot FILE               draw the run (SVG; default /tmp/wrenvnet-lab-adapt-on|off.svg,
                            or lab.svg in --out)
  --no-setup                skip scripts/setup.sh and the build (binaries from
                            WRENVNET_BIN / WRENVNET_DELAYLINE or target/release)
EOF
}
while [ $# -gt 0 ]; do
  case "$1" in
    --adapt) ADAPT=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --throttle-at) THROTTLE_AT=$2; shift 2 ;;
    --event) EVENT=$2; shift 2 ;;
    --throttle-mbit) THROTTLE_MBIT=$2; shift 2 ;;
    --link-mbit) LINK_MBIT=$2; shift 2 ;;
    --delay-ms) DELAY_MS=$2; shift 2 ;;
    --restart-controller-at) RESTART_AT=$2; shift 2 ;;
    --restart-daemon-at) DAEMON_RESTART_AT=$2; shift 2 ;;
    --no-link) NO_LINK=$2; shift 2 ;;
    --migrate) MIGRATE=1; shift ;;
    --vms) VMS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --plain) PLAIN=1; shift ;;
    --plot) PLOT=$2; shift 2 ;;
    --no-setup) SETUP=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "lab.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$ADAPT" in on|off) ;; *) echo "lab.sh: --adapt on|off" >&2; exit 2 ;; esac
case "$EVENT" in throttle|cross) ;; *) echo "lab.sh: --event throttle|cross" >&2; exit 2 ;; esac
case "$VMS" in netns|qemu) ;; *) echo "lab.sh: --vms netns|qemu" >&2; exit 2 ;; esac
[ "$VMS" = qemu ] && [ "$MIGRATE" = 1 ] && { echo "lab.sh: --migrate moves namespace VMs only (add --vms netns)" >&2; exit 2; }
case "$NO_LINK" in ""|A-B|A-C|B-C|B-A|C-A|C-B) ;; *) echo "lab.sh: --no-link X-Y with X, Y in A B C" >&2; exit 2 ;; esac
linked() { [ "$1-$2" != "$NO_LINK" ] && [ "$2-$1" != "$NO_LINK" ]; }
for v in DURATION THROTTLE_AT THROTTLE_MBIT LINK_MBIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "lab.sh: ${v,,} must be a whole number" >&2; exit 2; }
done
[[ "$DELAY_MS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "lab.sh: --delay-ms must be a number" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "lab.sh: run as root (namespaces, hugepages)" >&2; exit 1; }
[ -t 1 ] || PLAIN=1
if [ -z "$PLOT" ]; then
  if [ -n "$OUT" ]; then mkdir -p "$OUT"; PLOT=$OUT/lab.svg; else PLOT=/tmp/wrenvnet-lab-adapt-$ADAPT.svg; fi
fi

step() { printf '\033[1m== %s\033[0m\n' "$*"; }
if [ "$SETUP" = 1 ]; then
  step "host setup (packages, hugepages): scripts/setup.sh"
  bash scripts/setup.sh > /tmp/wrenvnet-setup.log 2>&1 || { cat /tmp/wrenvnet-setup.log; exit 1; }
  step "build (cargo build --release)"
  cargo build --release -q
fi
if [ "$VMS" = qemu ]; then
  step "guest image (Debian's cloud kernel + busybox + iperf3): scripts/guest-image.sh"
  bash scripts/guest-image.sh build/guest 2>&1 | sed 's/^/   /'
  [ -s build/guest/vmlinuz ] || { echo "lab.sh: no guest image" >&2; exit 1; }
fi
BIN=${WRENVNET_BIN:-$PWD/target/release/wrenvnet}
DELAYLINE=${WRENVNET_DELAYLINE:-$PWD/target/release/wrenvnet-delayline}
[ -x "$BIN" ] && [ -x "$DELAYLINE" ] || { echo "lab.sh: no $BIN or $DELAYLINE (build first)" >&2; exit 1; }

id=$$
HOSTS=(A B C)
FAB="wlf$id"
work=$(mktemp -d /tmp/wrenvnet-lab.XXXXXX)
pids=() ctl_pid=""
nsname() { echo "wl$1$id"; }   # host namespaces: wlA<pid>; VMs: wlvA<pid>
cleanup() {
  trap - EXIT INT TERM
  [ -n "$ctl_pid" ] && kill -TERM "$ctl_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $ctl_pid; do wait "$p" 2>/dev/null || true; done
  for h in "${HOSTS[@]}"; do
    for n in "$(nsname "$h")" "$(nsname "v$h")" "$(nsname "x$h")"; do
      ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$n" 2>/dev/null || true
    done
  done
  ip netns pids "$FAB" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$FAB" 2>/dev/null || true
  if [ -n "$OUT" ]; then mkdir -p "$OUT" && cp -rL "$work"/. "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

hnum() { case "$1" in A) echo 1 ;; B) echo 2 ;; C) echo 3 ;; esac; }
quiet() { # ns iface: up, no offloads (frames as the daemons see them), no IPv6 chatter
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1" 2>/dev/null || true
}

step "three hosts, a fabric with ${LINK_MBIT} Mbit/s links and ${DELAY_MS} ms per access link, one VM per host"
ip netns add "$FAB"; ip -n "$FAB" link set lo up
ip -n "$FAB" link add br0 type bridge; ip -n "$FAB" link set br0 up
for h in "${HOSTS[@]}"; do
  n=$(hnum "$h"); hn=$(nsname "$h"); vn=$(nsname "v$h")
  ip netns add "$hn"; ip -n "$hn" link set lo up
  ip netns add "$vn"; ip -n "$vn" link set lo up
  # The access link: host NIC u -- r$h [bridge a$h] TAP da$h ~delay~ TAP db$h [br0].
  ip -n "$hn" link add u type veth peer name "r$h" netns "$FAB"
  ip -n "$FAB" link add "a$h" type bridge; ip -n "$FAB" link set "a$h" up
  ip -n "$FAB" link set "r$h" master "a$h"; quiet "$FAB" "r$h"; quiet "$hn" u
  ip netns exec "$FAB" "$DELAYLINE" --tap "da$h" --tap "db$h" --delay-ms "$DELAY_MS" --limit 1024 \
    > "$work/delay-$h.log" 2>&1 & pids+=($!)
  for _ in $(seq 50); do ip -n "$FAB" link show "db$h" >/dev/null 2>&1 && break; sleep 0.1; done
  ip -n "$FAB" link set "da$h" master "a$h"; ip -n "$FAB" link set "db$h" master br0
  quiet "$FAB" "da$h"; quiet "$FAB" "db$h"
  # Capacity of every directed link X -> h: an htb class on the way into h's access
  # link, chosen by the underlay source address; everything else (ARP) unshaped.
  ip netns exec "$FAB" tc qdisc add dev "db$h" root handle 1: htb default 99
  ip netns exec "$FAB" tc class add dev "db$h" parent 1: classid 1:99 htb rate 10gbit quantum 60000
  for x in "${HOSTS[@]}"; do
    [ "$x" = "$h" ] && continue
    m=$(hnum "$x")
    ip netns exec "$FAB" tc class add dev "db$h" parent 1: classid "1:$m" htb \
      rate "${LINK_MBIT}mbit" ceil "${LINK_MBIT}mbit" burst 4k cburst 4k quantum 1514
    ip netns exec "$FAB" tc qdisc add dev "db$h" parent "1:$m" pfifo limit 200
    # The host's site: its daemon (.m) and its cross-traffic source (.1m) share the link.
    for src in "$m" "1$m"; do
      ip netns exec "$FAB" tc filter add dev "db$h" parent 1: protocol ip prio 1 u32 \
        match ip src "198.18.100.$src/32" flowid "1:$m"
    done
  done
  # A cross-traffic endpoint at the host's site (not a VM: its traffic is not overlay).
  xn=$(nsname "x$h"); ip netns add "$xn"; ip -n "$xn" link set lo up
  ip -n "$xn" link add eth0 type veth peer name "x$h" netns "$FAB"
  ip -n "$xn" addr add "198.18.100.1$n/24" dev eth0; quiet "$xn" eth0
  ip -n "$FAB" link set "x$h" master "a$h"; quiet "$FAB" "x$h"
  # The host's VM.
  ip -n "$hn" link add vm type veth peer name eth0 netns "$vn"
  ip -n "$vn" link set eth0 address "02:00:00:00:0$n:01" mtu 1450
  ip -n "$vn" addr add "198.19.0.$n/24" dev eth0
  quiet "$hn" vm; quiet "$vn" eth0
done
set_link() { # from to mbit: the capacity of the directed link from -> to
  ip netns exec "$FAB" tc class change dev "db$2" parent 1: classid "1:$(hnum "$1")" htb \
    rate "$3mbit" ceil "$3mbit" burst 4k cburst 4k quantum 1514
  python3 - "$work/truth.json" "$1" "$2" "$3" <<'PY'
import json, sys, os
path, a, b, mbit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = json.load(open(path)) if os.path.exists(path) else {"links": {}}
t["links"][a + "->" + b] = mbit
json.dump(t, open(path + ".tmp", "w")); os.replace(path + ".tmp", path)
PY
}
cross_truth() { # from to mbit: cross traffic on the directed link from -> to
  python3 - "$work/truth.json" "$1" "$2" "$3" <<'PY'
import json, sys, os
path, a, b, mbit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = json.load(open(path))
t.setdefault("cross", {})[a + "->" + b] = mbit
json.dump(t, open(path + ".tmp", "w")); os.replace(path + ".tmp", path)
PY
}
for a in "${HOSTS[@]}"; do for b in "${HOSTS[@]}"; do
  [ "$a" != "$b" ] && set_link "$a" "$b" "$LINK_MBIT"
done; done
python3 - "$work/truth.json" "$DELAY_MS" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["access_delay_ms"] = float(sys.argv[2])
json.dump(t, open(sys.argv[1], "w"))
PY

wait_listening() { # ns port: until a TCP socket listens on port in ns (10 s at most)
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.1
  done
  echo "lab.sh: nothing listens on TCP port $2 in $1 after 10 s" >&2
  return 1
}
qemu_vm() { [ "$VMS" = qemu ] && [ "$1" != B ]; }  # A's and C's VMs are guests
conf() { # host
  local h=$1 n; n=$(hnum "$1")
  printf '[dataplane]\nmode = "switch"\nidle_sleep_us = 20\nstats_interval_ms = 100000\n'
  printf '[[port]]\nname = "nic"\ndevargs = "net_af_packet0,iface=u,qdisc_bypass=0"\n'
  if qemu_vm "$h"; then
    printf '[[port]]\nname = "vm"\ndevargs = "net_vhost0,iface=%s/vm-%s.sock,client=0"\n' "$work" "$h"
  else
    printf '[[port]]\nname = "vm"\ndevargs = "net_af_packet1,iface=vm,qdisc_bypass=0"\n'
  fi
  printf '[api]\nunix = "%s/api-%s.sock"\n' "$work" "$h"
  printf '[switch]\nname = "%s"\nunderlay_ip = "198.18.100.%s"\nvni = 42\nnic = "nic"\n' "$h" "$n"
  printf '[[switch.vm]]\nport = "vm"\nmac = "02:00:00:00:0%s:01"\n' "$n"
  for x in "${HOSTS[@]}"; do
    [ "$x" = "$h" ] && continue
    linked "$h" "$x" || continue
    printf '[[switch.peer]]\nname = "%s"\nip = "198.18.100.%s"\n' "$x" "$(hnum "$x")"
    printf '[[switch.rule]]\ndst_mac = "02:00:00:00:0%s:01"\npeer = "%s"\n' "$(hnum "$x")" "$x"
  done
}
eal_mem() { # hugepages when there are enough free, else plain memory
  local free; free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${free:-0}" -ge 128 ]; then echo "--in-memory"; else echo "--no-huge -m 512 --file-prefix wl$1$id"; fi
}
step "starting the daemons (DPDK --no-pci, af_packet ports, HTTP API on unix sockets)"
start_daemon() { # host: (re)starts its daemon, log appended
  # shellcheck disable=SC2046
  ip netns exec "$(nsname "$1")" "$BIN" run --config "$work/$1.toml" --summary-json "$work/$1-summary.json" \
    -- -l 0-1 $(eal_mem "$1") --log-level '*:warning' >> "$work/$1.log" 2>&1 & pids+=($!)
  eval "DAEMON_$1=$!"
}
for h in "${HOSTS[@]}"; do
  conf "$h" > "$work/$h.toml"
  start_daemon "$h"
done
for h in "${HOSTS[@]}"; do
  for _ in $(seq 100); do [ -S "$work/api-$h.sock" ] && break; sleep 0.2; done
  [ -S "$work/api-$h.sock" ] || { echo "daemon $h did not start:"; cat "$work/$h.log"; exit 1; }
done
for pair in "A 3" "A 2" "B 3"; do
  set -- $pair
  [ "$VMS" = qemu ] && continue   # the guests ping until they reach each other
  linked "$1" "$(echo "- A B C" | cut -d' ' -f$(($2 + 1)))" || continue
  for _ in $(seq 60); do
    ip netns exec "$(nsname "v$1")" ping -c1 -W1 "198.19.0.$2" >/dev/null 2>&1 && break; sleep 0.5
  done
done

{
  printf '[controller]\ninterval_ms = 1000\nmin_interval_s = 5\nchange_threshold = 0.3\nimprovement = 0.25\n'
  printf 'adapt = %s\nstatus_file = "%s/controller.json"\nevents_file = "%s/events.jsonl"\n' \
    "$([ "$ADAPT" = on ] && echo true || echo false)" "$work" "$work"
  if [ "$MIGRATE" = 1 ]; then
    printf 'allow_migration = true\nmigrate_command = "WRENVNET_BIN=%s bash %s/scripts/lab_migrate.sh %s %s {vm} {port} {from} {to}"\n' \
      "$BIN" "$PWD" "$work" "$id"
  fi
  for h in "${HOSTS[@]}"; do
    printf '[[host]]\nname = "%s"\napi = "%s/api-%s.sock"\n' "$h" "$work" "$h"
    if [ "$MIGRATE" = 1 ]; then printf 'capacity = 2\n'; fi
  done
  for l in "A B" "A C" "B C"; do
    set -- $l
    printf '[[link]]\na = "%s"\nb = "%s"\nbw_mbps = %s\nlatency_ms = %s\n' "$1" "$2" "$LINK_MBIT" \
      "$(python3 -c "print(2 * $DELAY_MS)")"
  done
} > "$work/controller.toml"
start_controller() {
  "$BIN" controller --config "$work/controller.toml" >> "$work/controller.log" 2>&1 &
  ctl_pid=$!
}
step "starting the controller (adaptation $ADAPT)"
start_controller

step "the application: iperf3 TCP from the VM on A (198.19.0.1) to the VM on C (198.19.0.3), ${DURATION} s"
guest() { # host kernel-args: a QEMU guest (TCG) on the host daemon's vhost-user port
  local n; n=$(hnum "$1")
  for _ in $(seq 100); do [ -S "$work/vm-$1.sock" ] && break; sleep 0.1; done
  qemu-system-x86_64 -accel tcg -cpu max -m 256 -display none -monitor none -no-reboot \
    -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
    -kernel build/guest/vmlinuz -initrd build/guest/initrd.gz \
    -append "console=ttyS0 quiet $2" \
    -chardev "socket,id=c0,path=$work/vm-$1.sock,reconnect=1" \
    -netdev vhost-user,id=n0,chardev=c0 \
    -device "virtio-net-pci,netdev=n0,mac=02:00:00:00:0$n:01,romfile=,vectors=0" \
    -serial "file:$work/guest-$1.serial" > /dev/null 2>&1 &
  pids+=($!)
}
if [ "$VMS" = qemu ]; then
  guest C "wv.role=server wv.ip=198.19.0.3"
  guest A "wv.role=client wv.ip=198.19.0.1 wv.peer=198.19.0.3 wv.secs=$DURATION"
  app=${pids[-1]}
  ln -sf "$work/guest-A.serial" "$work/iperf3.log"
  printf '   booting the guests (TCG: no KVM here)'
  for _ in $(seq 600); do
    grep -q "Connecting to host" "$work/guest-A.serial" 2>/dev/null && break
    kill -0 "$app" 2>/dev/null || break
    printf '.'; sleep 0.5
  done
  echo
  grep -q "Connecting to host" "$work/guest-A.serial" 2>/dev/null \
    || { echo "lab.sh: the guest on A never started iperf3:"; cat "$work/guest-A.serial"; exit 1; }
else
  ip netns exec "$(nsname vC)" iperf3 -s -1 > "$work/iperf3-server.log" 2>&1 & pids+=($!)
  wait_listening "$(nsname vC)" 5201
  ip netns exec "$(nsname vA)" iperf3 -c 198.19.0.3 -t "$DURATION" -i 1 --forceflush \
    > "$work/iperf3.log" 2>&1 &
  app=$!; pids+=($app)
fi
t0=$(date +%s.%N)
elapsed() { python3 -c "print(int($(date +%s.%N) - $t0))"; }

view() { python3 scripts/lab_view.py --work "$work" --since "$t0" ${1:-} \
  --throttle-at "$THROTTLE_AT" --adapt "$ADAPT"; }
throttled=0 restarted=0 daemon_restarted=0
while kill -0 "$app" 2>/dev/null; do
  e=$(elapsed)
  if [ "$throttled" = 0 ] && [ "$e" -ge "$THROTTLE_AT" ]; then
    if [ "$EVENT" = throttle ]; then
      set_link A C "$THROTTLE_MBIT"; set_link C A "$THROTTLE_MBIT"
      echo "{\"t\": $e, \"event\": \"throttled A-C to $THROTTLE_MBIT Mbit/s\"}" >> "$work/lab-events.jsonl"
    else
      x=$((LINK_MBIT - THROTTLE_MBIT))
      # A client started before its server listens exits at once ("unable to connect"),
      # and the link would then carry no cross traffic at all: wait for the server, and
      # say so loudly if the client still ends early.
      ip netns exec "$(nsname xC)" iperf3 -s -1 > "$work/cross-server.log" 2>&1 & pids+=($!)
      wait_listening "$(nsname xC)" 5201
      ip netns exec "$(nsname xA)" iperf3 -u -c 198.18.100.13 -b "${x}M" -l 1400 \
        -t $((DURATION - e + 5)) > "$work/cross.log" 2>&1 & pids+=($!)
      sleep 1
      kill -0 "${pids[-1]}" 2>/dev/null \
        || { echo "lab.sh: the cross traffic's iperf3 client ended at once:" >&2; cat "$work/cross.log" >&2; }
      cross_truth A C "$x"
      echo "{\"t\": $e, \"event\": \"UDP cross traffic A->C $x Mbit/s\"}" >> "$work/lab-events.jsonl"
    fi
    throttled=1
  fi
  if [ -n "$RESTART_AT" ] && [ "$restarted" = 0 ] && [ "$e" -ge "$RESTART_AT" ]; then
    kill -KILL "$ctl_pid"; wait "$ctl_pid" 2>/dev/null || true
    echo "{\"t\": $e, \"event\": \"controller killed\"}" >> "$work/lab-events.jsonl"
    sleep 2
    start_controller; restarted=1
    echo "{\"t\": $(elapsed), \"event\": \"controller restarted\"}" >> "$work/lab-events.jsonl"
  fi
  if [ -n "$DAEMON_RESTART_AT" ] && [ "$daemon_restarted" = 0 ] && [ "$e" -ge "$DAEMON_RESTART_AT" ]; then
    kill -TERM "$DAEMON_A"; wait "$DAEMON_A" 2>/dev/null || true
    echo "{\"t\": $e, \"event\": \"daemon A stopped\"}" >> "$work/lab-events.jsonl"
    start_daemon A
    for _ in $(seq 100); do [ -S "$work/api-A.sock" ] && break; sleep 0.1; done
    echo "{\"t\": $(elapsed), \"event\": \"daemon A restarted\"}" >> "$work/lab-events.jsonl"
    daemon_restarted=1
  fi
  if [ "$PLAIN" = 1 ]; then view "--line --timeline $work/timeline.jsonl"
  else view "--line --timeline $work/timeline.jsonl" > /dev/null; clear; view; fi
  sleep 1
done
set +e
wait "$app"; app_rc=$?
set -e
if [ "$VMS" = qemu ]; then  # the guest powers off either way: judge by iperf3's report
  grep -q "receiver" "$work/guest-A.serial" && ! grep -q "iperf3: error" "$work/guest-A.serial"
  app_rc=$?
fi
echo "$app_rc" > "$work/iperf3.rc"

step "routes and counters at the end"
"$BIN" status $(for h in "${HOSTS[@]}"; do echo --api "$work/api-$h.sock"; done) --json > "$work/status.json" || true
"$BIN" rules $(for h in "${HOSTS[@]}"; do echo --api "$work/api-$h.sock"; done) || true
kill -TERM "$ctl_pid" 2>/dev/null || true; wait "$ctl_pid" 2>/dev/null || true; ctl_pid=""
for h in "${HOSTS[@]}"; do
  p=DAEMON_$h; kill -TERM "${!p}" 2>/dev/null || true; wait "${!p}" 2>/dev/null || true
  grep -h 'mbufs' "$work/$h.log" | tail -1 | sed "s/^/  $h: /"
done
python3 scripts/lab_view.py --work "$work" --since "$t0" --summary --throttle-at "$THROTTLE_AT" \
  --adapt "$ADAPT" --result "$work/result.json" --plot "$PLOT"
[ "$app_rc" = 0 ] || { echo "the application failed (iperf3 exit $app_rc):"; tail -5 "$work/iperf3.log"; exit 1; }
