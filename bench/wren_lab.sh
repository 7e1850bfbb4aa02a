#!/usr/bin/env bash
# Wren against ground truth on real TCP, offline (captures) and online (daemons).
#
# Two L2 segments joined in a router namespace R by a link with capacity C (tc tbf on
# the A->B side, small bucket, so C holds at the train time scale) and a one-way delay
# RTT/2 each way (wrenvnet-delayline: two TAPs bridged into the segments; this kernel
# has no netem). On side A: a plain endpoint A, a wrenvnet host hA with VM vA, a
# cross-traffic source XA; on side B the same (B, hB/vB, XB). iperf3 UDP from XA to XB
# is the cross traffic X, so the available bandwidth is C - X (X in frames on the link: the
# payload rate iperf3 paces times 1442/1400, as tbf and Wren count frames).
#
# Per case (C:X%:cc:rtt_ms:app), in mode "direct" the application runs A -> B over the
# kernel and a capture at A is analysed; in mode "overlay" it runs vA -> vB through the
# two DPDK daemons over VXLAN, daemon A's own Wren is read online (`wrenvnet paths`; the
# daemon sees the inner headers, so its paths are VM pairs: vA -> vB),
# polled every second: time to the first estimate) and its underlay is captured and
# analysed offline. Applications: bulk (iperf3), limited (iperf3 -b at half the
# available bandwidth, its default 128 KB writes), bLxD (application-limited: writes of
# L KB at A/D, each write a burst that leaves the sender at the host's rate), parN (N
# parallel bulk flows on the one path), short (bench/short_flows.py: 100 KB
# connections back to back), throttle (bulk; half way through, C drops to THROTTLE x C,
# 0.3 unless set: the truth is the new A, and the online view's reaction time is
# reported).
# cc: bbr or cubic.
# Truth: ping's min RTT on the same (underlay) path; tcptrace's RTTs on the same plain capture.
#
#   sudo bench/wren_lab.sh                       # writes bench/results/wren-lab.{md,json}
#   MODES=direct CASES="50:30:bbr:20:bulk" SECS=8 sudo bench/wren_lab.sh
#   PLOT_DIR=/tmp/plots sudo bench/wren_lab.sh   # also an SVG per case (analyze --plot)
#   KEEP_PCAP=/tmp/k/c sudo bench/wren_lab.sh     # keeps each case's underlay capture
#     (/tmp/k/c-MODE-C-XP-CC-RTT-APP.pcap, for `wrenvnet analyze --pcap .. --explain`),
#     the online polls' errors beside it, and the daemons' and delay line's logs (the delay
#     line's counters every second: its worst lateness tells where the host held frames)
#   THROTTLE=0.1 MODES=overlay CASES="100:0:cubic:20:throttle" sudo bench/wren_lab.sh
#   RUNS=3 sudo bench/wren_lab.sh                # every case three times: the report
#     counts, per case, the runs whose answer was on the wrong side or above 50%
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${CASES:-20:0:bbr:4:bulk 50:30:cubic:4:bulk 100:70:bbr:4:bulk 50:0:bbr:4:limited 20:30:cubic:4:short \
20:30:bbr:20:bulk 50:0:cubic:20:bulk 100:30:bbr:20:bulk 50:70:cubic:20:bulk 100:0:bbr:20:limited 50:0:bbr:20:short \
20:70:bbr:80:bulk 50:30:bbr:80:bulk 100:0:cubic:80:bulk 20:0:cubic:80:bulk 50:30:cubic:80:limited 20:0:bbr:80:short \
100:30:cubic:4:b64x4 100:0:bbr:20:b256x6 50:30:cubic:20:b128x3 100:50:bbr:20:b64x8 50:0:cubic:80:b256x4 \
100:30:bbr:4:par2 50:0:cubic:20:par4 100:50:cubic:20:par2 50:30:bbr:80:par4 100:0:bbr:20:throttle}"
MODES="${MODES:-direct overlay}"
SECS="${SECS:-10}"
RUNS="${RUNS:-1}"
THROTTLE="${THROTTLE:-0.3}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
cargo build --release -q
# shellcheck source=bench/lib.sh
. bench/lib.sh   # testbed_config
BIN=$PWD/target/release/wrenvnet
DELAY=$PWD/target/release/wrenvnet-delayline
SHORT=$PWD/bench/short_flows.py
id=$$
R="wlr$id"; A="wla$id"; B="wlb$id"; HA="wlha$id"; HB="wlhb$id"; VA="wlva$id"; VB="wlvb$id"; XA="wlxa$id"; XB="wlxb$id"
ALL="$R $A $B $HA $HB $VA $VB $XA $XB"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The daemons stop their ports and free their memory on TERM: give them time.
  for p in "${pids[@]}"; do for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  for n in $ALL; do ip netns pids "$n" 2>/dev/null | xargs -r kill -9; ip netns del "$n" 2>/dev/null || true; done
  if [ -n "${KEEP_PCAP:-}" ]; then
    for l in a b delay; do [ -f "$work/$l.log" ] && cp "$work/$l.log" "$KEEP_PCAP-$l.log"; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
say() { printf '[wren-lab] %s\n' "$*" >&2; }
for n in $ALL; do ip netns add "$n"; ip -n "$n" link set lo up; done
for br in bra brb; do ip -n "$R" link add "$br" type bridge; ip -n "$R" link set "$br" up; done
quiet() { ip -n "$1" link set "$2" up; ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
          ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"; }
attach() { # ns iface bridge: a veth from ns into R's bridge
  ip -n "$1" link add "$2" type veth peer name "r$1" netns "$R"
  ip -n "$R" link set "r$1" master "$3"; quiet "$R" "r$1"; quiet "$1" "$2"; }
attach "$A" eth0 bra; attach "$XA" eth0 bra; attach "$HA" u bra
attach "$B" eth0 brb; attach "$XB" eth0 brb; attach "$HB" u brb
ip -n "$A" addr add 198.18.20.1/24 dev eth0; ip -n "$B" addr add 198.18.20.2/24 dev eth0
ip -n "$XA" addr add 198.18.20.21/24 dev eth0; ip -n "$XB" addr add 198.18.20.22/24 dev eth0
# VMs behind the daemons (overlay 198.19.0.0/24, MTU 1450 for VXLAN).
for v in "$VA:$HA:02:00:00:00:0a:01:198.19.0.1" "$VB:$HB:02:00:00:00:0b:01:198.19.0.2"; do
  IFS=: read -r vn hn m1 m2 m3 m4 m5 m6 ip <<<"$v"
  ip -n "$hn" link add vm type veth peer name eth0 netns "$vn"
  ip -n "$vn" link set eth0 address "$m1:$m2:$m3:$m4:$m5:$m6" mtu 1450
  ip -n "$vn" addr add "$ip/24" dev eth0; quiet "$hn" vm; quiet "$vn" eth0
done
daemon_cfg() { # me peer_ip my_ip remote_mac api_sock vm_mac
  testbed_config switch --name "$1" --underlay-ip "$3" --api-unix "$5" \
    --nic "net_af_packet0,iface=u,qdisc_bypass=0" --vm "vm,$6,net_af_packet1,iface=vm" \
    --peer "peer,$2" --rule "$4,peer" --idle-sleep-us 20 --stats-interval-ms 1000
}
start_daemons() {
  daemon_cfg hA 198.18.20.12 198.18.20.11 02:00:00:00:0b:01 "$work/a.sock" 02:00:00:00:0a:01 > "$work/a.toml"
  daemon_cfg hB 198.18.20.11 198.18.20.12 02:00:00:00:0a:01 "$work/b.sock" 02:00:00:00:0b:01 > "$work/b.toml"
  ip netns exec "$HA" "$BIN" run --config "$work/a.toml" -- -l 0-1 --in-memory --log-level '*:warning' > "$work/a.log" 2>&1 & pids+=($!)
  ip netns exec "$HB" "$BIN" run --config "$work/b.toml" -- -l 0-1 --in-memory --log-level '*:warning' > "$work/b.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do [ -S "$work/a.sock" ] && [ -S "$work/b.sock" ] && return; sleep 0.1; done
  cat "$work/a.log" >&2; exit 1
}
delay_pid=""
set_delay() { # rtt_ms: restart the delay line with rtt/2 each way, re-bridge its taps
  [ -n "$delay_pid" ] && { kill "$delay_pid"; wait "$delay_pid" 2>/dev/null || true; }
  ip netns exec "$R" "$DELAY" --tap dta --tap dtb --delay-ms "$(python3 -c "print($1/2)")" --stats-s 1 >> "$work/delay.log" 2>&1 &
  delay_pid=$!; pids+=($delay_pid)
  for _ in $(seq 50); do ip -n "$R" link show dtb >/dev/null 2>&1 && break; sleep 0.1; done
  ip -n "$R" link set dta master bra; ip -n "$R" link set dtb master brb
}
# One line of the online series (polls.txt) per poll of vA -> vB (o.json): the poll's
# time, the answer of its busiest path (kind, value, high side), whether any of its
# paths has an estimate, and whether one has "moved": an answer (estimate or upper
# bound) within 1.3x of A (after the throttle, the new A). One interpreter per poll, so
# the polls after a throttle come about as often as asked.
online_note() { python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); a=float(sys.argv[3])
ps=[p for h in d["hosts"] for p in h["paths"] if p["src"]=="198.19.0.1"]
p=max(ps, key=lambda p: p["bytes"]) if ps else {}
top=[p["avail_bw_high_mbps"] if p["avail_bw_kind"]=="upper_bound" else p["avail_bw_mbps"] for p in ps
     if p["avail_bw_kind"] in ("estimate","upper_bound")]
print(sys.argv[2], p.get("avail_bw_kind", "none"), p.get("avail_bw_mbps"), p.get("avail_bw_high_mbps"),
      int(any(p["avail_bw_kind"]=="estimate" for p in ps)), int(bool(top) and min(top) <= 1.3*a))' "$work/o.json" "$1" "$AVAIL"; }
min_ping() { ip netns exec "$1" ping -c 20 -i 0.1 -q "$2" | sed -n 's/.*= \([0-9.]*\)\/.*/\1/p'; }
wait_ping() { for _ in $(seq 40); do ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 && return; done; say "no ping $1 -> $2"; exit 1; }

start_daemons
ip -n "$R" link show >/dev/null
echo '[' > "$work/rows.json"; first=1
for run in $(seq "$RUNS"); do
for case in $CASES; do
  IFS=: read -r C XP CC RTT APP <<<"$case"
  X=$(python3 -c "print(round($C*$XP/100, 3))")
  # iperf3 -b paces the UDP payload; the link carries each 1400-byte datagram in a
  # 1442-byte frame (UDP 8, IPv4 20, Ethernet 14), and tbf counts frames, as Wren does.
  XW=$(python3 -c "print(round($X*1442/1400, 3))")
  for MODE in $MODES; do
    tag="$MODE-$C-$XP-$CC-$RTT-$APP"; [ "$RUNS" = 1 ] || tag="$tag-r$run"
    # A delay line of its own for each case, so its counters (the worst lateness: how
    # long the host held frames past their time) are the case's.
    set_delay "$RTT"
    # Capacity: every frame from side A to side B leaves R through the delay line's TAP.
    ip netns exec "$R" tc qdisc replace dev dta root tbf rate "${C}mbit" burst 3000 latency 100ms
    AVAIL=$(python3 -c "print($C - $XW)")
    if [ "$MODE" = direct ]; then SRC=$A; DST=$B; DIP=198.18.20.2; CAP_NS=$A; CAP_IF=eth0; CAP_F='tcp'
    else SRC=$VA; DST=$VB; DIP=198.19.0.2; CAP_NS=$HA; CAP_IF=u; CAP_F='udp port 4789'; fi
    wait_ping "$SRC" "$DIP"; wait_ping "$XA" 198.18.20.22; wait_ping "$A" 198.18.20.2
    # The path's truth is ping between the two sides' plain endpoints: the underlay path
    # the daemons' records time (they see packets at the hosts, not inside the VMs). The
    # VM-to-VM ping adds the VMs' own legs and is reported beside it.
    ping_min=$(min_ping "$A" 198.18.20.2)
    ping_vm=""; [ "$MODE" = overlay ] && ping_vm=$(min_ping "$SRC" "$DIP")
    ip netns exec "$DST" iperf3 -s -1 -D -p 5201; ip netns exec "$XB" iperf3 -s -1 -D -p 5202
    [ "$APP" = short ] && { ip netns exec "$DST" python3 "$SHORT" server 5203 & pids+=($!); }
    sleep 0.5
    ip netns exec "$CAP_NS" tcpdump -i "$CAP_IF" -s 160 -w "$work/u.pcap" -U "$CAP_F" 2>/dev/null & td=$!
    ip netns exec "$SRC" tcpdump -i eth0 -s 128 -w "$work/p.pcap" -U tcp 2>/dev/null & tp=$!
    sleep 1
    xp=""
    if [ "$XP" != 0 ]; then
      ip netns exec "$XA" iperf3 -c 198.18.20.22 -p 5202 -u -b "${X}M" -l 1400 -t $((SECS + 3)) >/dev/null & xp=$!
      sleep 1
    fi
    t0=$(date +%s.%N)
    iperf=(ip netns exec "$SRC" iperf3 -c "$DIP" -p 5201 -t "$SECS" -C "$CC" -J)
    case $APP in
      bulk|throttle) "${iperf[@]}" > "$work/app.json" & ap=$! ;;
      limited) "${iperf[@]}" -b "$(python3 -c "print($AVAIL/2)")M" > "$work/app.json" & ap=$! ;;
      b[0-9]*x[0-9]*) L=${APP#b}; L=${L%x*}; D=${APP#*x}
        "${iperf[@]}" -l "${L}K" -b "$(python3 -c "print($AVAIL/$D)")M" > "$work/app.json" & ap=$! ;;
      par[0-9]*) "${iperf[@]}" -P "${APP#par}" > "$work/app.json" & ap=$! ;;
      short) ip netns exec "$SRC" python3 "$SHORT" client "$DIP" 5203 100000 "$SECS" "$CC" > "$work/app.txt" & ap=$! ;;
      *) say "unknown application $APP"; exit 2 ;;
    esac
    t_throttle=""; poll=1; : > "$work/polls.txt"; : > "$work/polls.err"
    if [ "$APP" = throttle ]; then
      # Half way, C drops to THROTTLE x C; the online view is read every 0.2 s from then on.
      sleep "$(python3 -c "print($SECS/2)")"
      ip netns exec "$R" tc qdisc change dev dta root tbf rate "$(python3 -c "print($THROTTLE*$C)")mbit" burst 3000 latency 100ms
      t_throttle=$(date +%s.%N); poll=0.2
      AVAIL=$(python3 -c "print($THROTTLE*$C - $XW)")
    fi
    while kill -0 "$ap" 2>/dev/null; do
      sleep "$poll"
      if [ "$MODE" = overlay ]; then
        if ! "$BIN" paths --api "$work/a.sock" --json > "$work/o.json" 2>>"$work/polls.err"; then
          echo "$(date +%s.%N) fail" >> "$work/polls.txt"; continue
        fi
        online_note "$(date +%s.%N)" >> "$work/polls.txt"
        cp "$work/o.json" "$work/online-last.json"
      fi
    done
    wait "$ap" || true
    [ "$APP" = throttle ] && ip netns exec "$R" tc qdisc replace dev dta root tbf rate "${C}mbit" burst 3000 latency 100ms
    if [ "$APP" = short ]; then goodput=$(awk '{print $2*8/$3/1e6}' "$work/app.txt")
    else goodput=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/1e6)' "$work/app.json"); fi
    [ -n "$xp" ] && { wait "$xp" || true; }
    late=$(grep '^delayline:' "$work/delay.log" | tail -1 | sed -n 's/.*worst_late_us \([0-9]*\).*/\1/p') || true
    sleep 0.5; kill -INT "$td" "$tp"; wait "$td" "$tp" 2>/dev/null || true
    [ "$APP" = short ] && { ip netns pids "$DST" | xargs -r kill 2>/dev/null || true; }
    # PLOT_DIR=dir: each case's underlay capture drawn (estimate, range, truth, RTT
    # over time; the trains and bursts behind the last answer, rate out vs rate in).
    plot=()
    [ -n "${PLOT_DIR:-}" ] && plot=(--plot "$PLOT_DIR/wren-lab-$tag.svg" --truth-mbps "$AVAIL")
    "$BIN" analyze --pcap "$work/u.pcap" --json ${plot[@]+"${plot[@]}"} > "$work/off.json"
    "$BIN" analyze --pcap "$work/p.pcap" --json > "$work/plain.json"
    tcptrace -r -n -l "$work/p.pcap" > "$work/tcptrace.txt" 2>/dev/null || true
    if [ -n "${KEEP_PCAP:-}" ]; then
      cp "$work/u.pcap" "$KEEP_PCAP-$tag.pcap"
      cat "$work/polls.err" >> "$KEEP_PCAP-$tag.polls.err"
    fi
    [ "$MODE" = overlay ] || echo '{"hosts":[]}' > "$work/online-last.json"
    [ $first = 1 ] || echo ',' >> "$work/rows.json"; first=0
    python3 - "$MODE" "$C" "$XW" "$CC" "$RTT" "$APP" "$ping_min" "${ping_vm:-}" "$goodput" "$work" "$AVAIL" "$t0" "${t_throttle:-}" "$run" "${late:-}" >> "$work/rows.json" <<'PY'
import json, re, sys
mode, c, x, cc, rtt, app, ping_min, ping_vm, goodput, work, avail, t0, t_thr, run, late = sys.argv[1:]
# The online series: each poll's time from the start, and its answer (kind, value,
# high side), or a failed poll.
num = lambda v: None if v == "None" else float(v)
polls = [l.split() for l in open(work + "/polls.txt") if l.strip()]
series = [[round(float(p[0]) - float(t0), 2)] + ([p[1], num(p[2]), num(p[3])] if p[1] != "fail" else ["fail", None, None])
          for p in polls]
# The first estimate (before any throttle) from the start; the first answer within 1.3x
# of the new A after the throttle, from it.
ok = [p for p in polls if p[1] != "fail"]
thr = float(t_thr) if t_thr else None
first_est = next((float(p[0]) - float(t0) for p in ok if p[4] == "1" and (thr is None or float(p[0]) < thr)), None)
reaction = next((float(p[0]) - thr for p in ok if thr is not None and float(p[0]) >= thr and p[5] == "1"), None)
c, x = float(c), float(x)
truth = float(avail)
src = "198.18.20.11" if mode == "overlay" else "198.18.20.1"
def path(doc, src):
    ps = [p for p in doc["paths"] if p["src"] == src]
    return max(ps, key=lambda p: p["bytes"]) if ps else None
def est(p):
    if p is None: return {"kind": "none", "estimate": None, "low": None, "high": None, "trains": 0, "rel_error": None}
    e = p["avail_bw_mbps"]
    return {"kind": p["avail_bw_kind"], "estimate": e, "low": p["avail_bw_low_mbps"], "high": p["avail_bw_high_mbps"],
            "trains": p["trains"], "rel_error": None if e is None or p["avail_bw_kind"] != "estimate" else (e - truth) / truth}
off = path(json.load(open(work + "/off.json")), src)
onl = json.load(open(work + "/online-last.json"))
onl = [p for h in onl["hosts"] for p in h["paths"] if p["src"] == ("198.19.0.1" if mode == "overlay" else src)]
onl = max(onl, key=lambda p: p["bytes"]) if onl else None
plain_src = "198.19.0.1" if mode == "overlay" else "198.18.20.1"
plain = path(json.load(open(work + "/plain.json")), plain_src)
# tcptrace: a2b RTT over every connection from the sender (samples, min, avg in ms).
n = tmin = tsum = 0.0; tmin = None
txt = open(work + "/tcptrace.txt").read()
for block in txt.split("TCP connection ")[1:]:
    # The first host of a connection is its initiator; the first column is its direction.
    h = re.search(r"^\s*host \w+:\s+([0-9.]+):", block, re.M)
    if not h or h.group(1) != plain_src: continue
    m = {k: re.search(r"^\s*RTT %s:\s+([0-9.]+)" % k, block, re.M) for k in ("samples", "min", "avg")}
    if not all(m.values()): continue
    s = float(m["samples"].group(1))
    if s <= 0: continue
    n += s; tsum += s * float(m["avg"].group(1))
    v = float(m["min"].group(1)); tmin = v if tmin is None else min(tmin, v)
row = {"run": int(run), "mode": mode, "capacity_mbps": c, "cross_mbps": x, "truth_avail_mbps": truth, "cc": cc, "rtt_ms": float(rtt), "app": app,
       "offline": est(off), "online": est(onl) if mode == "overlay" else None,
       "online_first_estimate_s": round(first_est, 1) if first_est is not None else None,
       "online_reaction_s": round(reaction, 2) if reaction is not None else None,
       "online_throttle_s": round(float(t_thr) - float(t0), 2) if t_thr else None,
       "online_polls": series if mode == "overlay" else None,
       "app_goodput_mbps": float(goodput),
       "delay_line_worst_late_us": float(late) if late else None,
       "ping_min_us": float(ping_min) * 1000,
       "ping_vm_min_us": float(ping_vm) * 1000 if ping_vm else None,
       "rtt_min_us": off["rtt_min_us"] if off else None,
       "online_rtt_min_us": onl["rtt_min_us"] if onl else None,
       "plain_rtt_min_us": plain["rtt_min_us"] if plain else None,
       "plain_rtt_mean_us": plain["rtt_mean_us"] if plain else None,
       "tcptrace_rtt_min_us": tmin * 1000 if tmin is not None else None,
       "tcptrace_rtt_avg_us": tsum / n * 1000 if n else None, "tcptrace_samples": n}
print(json.dumps(row))
PY
    say "$(tail -1 "$work/rows.json" | cut -c1-400)"
  done
done
done
echo ']' >> "$work/rows.json"
RUNS=$RUNS python3 bench/wren_lab_report.py "$work/rows.json" "$OUT" "$SECS" "$CASES" "$MODES"
