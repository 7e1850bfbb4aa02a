"""--reserve X-Y:M and --noisy: a reservation for the application, and a second VM on
A that floods C with parallel TCP flows while the application runs.

With either, every daemon shapes its uplink ([qos] uplink_mbps) a little below the
links' capacity (UPLINK_SHARE), so that the queue builds at the daemon, where reserved
traffic goes first, and not in the fabric's htb, which knows no classes; with
--learn-uplink the daemons are not told the capacity and learn it from Wren
(src/daemon/uplink.rs), shaping at the same share of it. The
reservation is asked of the controller through etcd (`wrenvnet reserve add`, on the
management network) once a replica leads; its verdict is printed and kept. The noise
starts --noisy-at S after the application (default 5); the figures for --summary-json are
taken from SETTLE_S after the noise starts to the end.
"""
import json
import re
import socket
import subprocess

from .fabric import hnum, quiet, vm_mac
from .procs import in_ns, output, run
from .view import throughput

NOISY_MAC = "02:00:00:00:01:02"
NOISY_IP = "198.19.0.11"
NOISY_PORT = 5202
SETTLE_S = 10
UPLINK_SHARE = 0.95
SUM = re.compile(r"\[SUM\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\w?Bytes\s+([\d.]+)\s+(\w?)bits/sec")


def parse(text):
    """"X-Y:M" as (X, Y, M), or None when it is not one."""
    m = re.fullmatch(r"([ABC])-([ABC]):([0-9]+(?:\.[0-9]+)?)", text)
    if not m or m.group(1) == m.group(2) or float(m.group(3)) <= 0:
        return None
    return m.group(1), m.group(2), float(m.group(3))


def shaped(opts):
    return bool(opts.reserve) or opts.noisy


def config_lines(h, opts):
    """Host h's daemon config additions: the uplink's capacity, and on A the noisy VM's
    port (an af_packet port on its veth)."""
    if not shaped(opts):
        return []
    lines = ["[qos]", "learn_uplink = true\nuplink_share = %g" % UPLINK_SHARE
             if opts.learn_uplink else
             "uplink_mbps = %.1f" % (opts.link_mbit * UPLINK_SHARE)]
    if opts.noisy and h == "A":
        lines += ["[[port]]", 'name = "noisy"',
                  'devargs = "net_af_packet2,iface=noisy,qdisc_bypass=0"',
                  "[[switch.vm]]", 'port = "noisy"', 'mac = "%s"' % NOISY_MAC]
    return lines


def build_noisy(fabric):
    """The noisy VM: a namespace on a veth ("noisy" on A's side)."""
    hn, nn = fabric.ns("", "A"), fabric.ns("n", "A")
    fabric.res.add_netns(nn)
    run("ip", "-n", hn, "link", "add", "noisy", "type", "veth", "peer", "name", "eth0",
        "netns", nn)
    run("ip", "-n", nn, "link", "set", "eth0", "address", NOISY_MAC, "mtu", "1450")
    run("ip", "-n", nn, "addr", "add", NOISY_IP + "/24", "dev", "eth0")
    quiet(hn, "noisy")
    quiet(nn, "eth0")


def ask(lab):
    """Asks for the reservation; its verdict as `wrenvnet reserve add` printed it."""
    src, dst, mbps = parse(lab.opts.reserve)
    argv = in_ns(lab.control.ns, lab.bin, "reserve", "add", "--config",
                 lab.path("controller-c1.toml"), "--src", vm_mac(hnum(src)),
                 "--dst", vm_mac(hnum(dst)), "--mbps", "%g" % mbps, "--wait-s", "30")
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    for line in (r.stdout + r.stderr).splitlines():
        print("   " + line)
    verdict = (output(*in_ns(lab.control.ns, lab.bin, "reserve", "list", "--config",
                             lab.path("controller-c1.toml"), "--json")) or "[]")
    with open(lab.path("reservations.json"), "w") as f:
        f.write(verdict)
    return r.returncode == 0


def start_noise(lab):
    """The noisy VM's flows to C's VM, until the application's end."""
    vc = lab.fabric.ns("v", "C")
    lab.res.spawn(in_ns(vc, "iperf3", "-s", "-1", "-p", str(NOISY_PORT)),
                  log=lab.path("noisy-server.log"))
    lab.wait_listening(vc, NOISY_PORT)
    secs = max(1, lab.opts.duration - lab.opts.noisy_at)
    lab.res.spawn(in_ns(lab.fabric.ns("n", "A"), "iperf3", "-c", "198.19.0.%d" % hnum("C"),
                        "-p", str(NOISY_PORT), "-P", str(lab.opts.noisy_flows), "-t", str(secs),
                        "-i", "1", "--forceflush"),
                  log=lab.path("noisy.log"))


def api_get(sock, path):
    """A daemon's JSON answer to GET `path` on its API socket (None when it fails)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(sock)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
                      % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


def save_uplinks(lab, hosts):
    """Each daemon's uplink at the end (GET /reservations), into uplinks.json."""
    out = {}
    for h in hosts:
        r = api_get(lab.path("api-%s.sock" % h), "/reservations") or {}
        out[h] = {"source": r.get("uplink_source"),
                  "learnt_mbps": r.get("uplink_learnt_mbps"),
                  "learning": r.get("uplink_learning"),
                  "shaped_mbps": (r.get("uplink") or {}).get("mbps")}
    with open(lab.path("uplinks.json"), "w") as f:
        json.dump(out, f)


def noisy_tput(path):
    """The noisy VM's per-second Mbit/s (iperf3's [SUM] lines)."""
    return throughput(path, SUM)


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def figures(lab, tput, status):
    """--summary-json's reservation figures (`status`: the leading replica's last)."""
    o = lab.opts
    start = o.noisy_at + SETTLE_S if o.noisy else SETTLE_S
    noisy = noisy_tput(lab.path("noisy.log"))
    try:
        with open(lab.path("reservations.json")) as f:
            listed = json.load(f)
    except (OSError, ValueError):
        listed = []
    try:
        with open(lab.path("uplinks.json")) as f:
            uplinks = json.load(f)
    except (OSError, ValueError):
        uplinks = {}
    return {
        "reserved_mbps": parse(o.reserve)[2] if o.reserve else None,
        "reservations": listed,
        "reservations_at_end": status.get("reservations", []),
        "uplink_mbps": None if o.learn_uplink else o.link_mbit * UPLINK_SHARE,
        "uplinks": uplinks,
        "reserved_flow_mbps": mean(tput[start:]),
        "noisy_mbps": mean(noisy[SETTLE_S:]) if o.noisy else None,
        "window_s": [start, len(tput)],
    }


def line_text(lab, tput):
    """The screen's addition: the application beside its reservation, and the noise."""
    o = lab.opts
    parts = []
    if o.reserve:
        parts.append("reserved %g Mbit/s, app %.1f" % (parse(o.reserve)[2],
                                                       tput[-1] if tput else 0.0))
    if o.noisy:
        n = noisy_tput(lab.path("noisy.log"))
        parts.append("noisy VM %.1f Mbit/s" % (n[-1] if n else 0.0))
    return "  ".join(parts)


def closing_text(f):
    """The closing summary's lines on the reservation and the noise."""
    def mbps(x):
        return "-" if x is None else "%.1f Mbit/s" % x
    states = ", ".join("%s %s" % (r.get("id"), r.get("state") or "no verdict")
                       for r in f["reservations"]) or "none"
    return ("  reservation: %s reserved, the application %s from %d s to the end, the noisy "
            "VM %s; uplinks shaped to %s; verdicts: %s" % (
                mbps(f["reserved_mbps"]), mbps(f["reserved_flow_mbps"]), f["window_s"][0],
                mbps(f["noisy_mbps"]), shaping(f), states))


def shaping(f):
    """How the uplinks were shaped at the end, and where their capacity came from."""
    def one(h, u):
        return "%s %s (%s)" % (h, "-" if u.get("shaped_mbps") is None
                               else "%.1f" % u["shaped_mbps"], u.get("source") or "none")
    return ", ".join(one(h, u) for h, u in sorted(f["uplinks"].items())) or \
        "%.1f Mbit/s" % f["uplink_mbps"]
