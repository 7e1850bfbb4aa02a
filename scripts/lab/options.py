"""The lab's command line: its options, their defaults, and the checks on them.

Written by hand rather than with argparse so that `--help` is the one usage text below
and a wrong option gets the same one-line message every other check gives.
"""
import dataclasses
import re
import sys
from typing import Optional

HOSTS = ("A", "B", "C")


@dataclasses.dataclass
class Options:
    """The lab's settings; `delay_ms` keeps its text as given (the delay lines take it)."""

    adapt: str = "on"
    duration: int = 60
    throttle_at: int = 15
    throttle_mbit: int = 10
    link_mbit: int = 100
    delay_ms: str = "5"
    event: str = "throttle"
    restart_controller_at: Optional[int] = None
    restart_daemon_at: Optional[int] = None
    no_link: str = ""
    out: str = ""
    plain: bool = False
    setup: bool = True
    plot: str = ""
    migrate: bool = False
    vms: str = "qemu"
    controllers: int = 2
    kill_leader_at: Optional[int] = None
    kill_etcd_member_at: Optional[int] = None
    stop_etcd_at: Optional[int] = None
    start_etcd_at: Optional[int] = None
    summary_json: str = ""
    reserve: str = ""
    noisy: bool = False
    noisy_flows: int = 4
    noisy_at: int = 5
    learn_uplink: bool = False

    def linked(self, a, b):
        """Whether hosts a and b start with an overlay link between them."""
        return self.no_link not in (a + "-" + b, b + "-" + a)


USAGE = """\
usage: scripts/lab.sh [options]
  --adapt on|off            the controller adapts (default) or only observes and plans
  --duration S              length of the application's run (default {o.duration})
  --event throttle|cross|none
                            what happens to the A-C link midway: its capacity drops
                            (tc), UDP cross traffic from A's site to C's takes all
                            but --throttle-mbit of it, or nothing (default {o.event})
  --throttle-at S           when (default {o.throttle_at})
  --throttle-mbit M         A-C's available bandwidth then (default {o.throttle_mbit})
  --link-mbit M             every link's capacity before (default {o.link_mbit})
  --delay-ms D              one-way delay of each host's access link (default {o.delay_ms})
  --restart-controller-at S kill the leading controller replica at S and start it
                            again 2 s later
  --restart-daemon-at S     restart host A's daemon at S (it loads its desired state
                            from etcd before it registers: back on the plan)
  --vms qemu|netns          the application's VMs (on A and C): QEMU guests (TCG: no
                            KVM here) on vhost-user ports, booted from the image
                            scripts/guest-image.sh builds (default), or namespaces on
                            veths with af_packet ports (quicker to start)
  --migrate                 the controller may move VMs (each host takes 2): QEMU
                            guests by live migration (scripts/migrate-qemu.sh), namespace
                            VMs by `scripts/lab.sh migrate` (a tap plugged on the new
                            host's daemon, handed to the VM, the old port unplugged);
                            B's VM pings A's and C's every 10 ms for the traffic gap
  --no-link X-Y             hosts X and Y start without an overlay link between them
                            (e.g. A-B: the controller must add it to reroute via B)
  --controllers N           controller replicas (default {o.controllers}); one leads through
                            etcd's election, the others stand by
  --kill-leader-at S        SIGKILL the leading replica at S
  --kill-etcd-member-at S   SIGKILL the etcd member leading raft at S
  --stop-etcd-at S          stop every etcd member at S ...
  --start-etcd-at S         ... and start them again at S
  --reserve X-Y:M           reserve M Mbit/s for the application's VM on X to the VM
                            on Y (`wrenvnet reserve add`, once a controller leads);
                            every daemon's uplink is then shaped to 95% of --link-mbit
  --noisy                   a second VM on A (198.19.0.11) floods C's VM with TCP
                            flows from --noisy-at on (--vms netns)
  --noisy-flows N           how many (default {o.noisy_flows})
  --noisy-at S              when they start, s after the application (default {o.noisy_at})
  --learn-uplink            with --reserve or --noisy, the daemons are not told their
                            uplink's capacity: each learns it from Wren and shapes at
                            95% of it
  --summary-json FILE       the run in one JSON document: the result, the lab's events,
                            leaders over time, failover and outage figures; with
                            --migrate the moves (migrations, qemu_downtime_ms,
                            traffic_gap_ms, connection_survived); with --reserve or
                            --noisy reserved_mbps, reserved_flow_mbps (the application
                            from 10 s after the noise starts to the end), noisy_mbps
  --out DIR                 keep the results there (result.json, logs, controller events)
  --plain                   one line per second instead of a redrawn screen
  --plot FILE               draw the run (SVG; default /tmp/wrenvnet-lab-adapt-on|off.svg,
                            or lab.svg in --out)
  --no-setup                skip scripts/setup.sh and the build (binaries from
                            WRENVNET_BIN / WRENVNET_DELAYLINE or target/release)
usage: scripts/lab.sh migrate WORK ID VM_MAC PORT FROM TO
                            the controller's migration hook (see --migrate)
"""

# Options that take a value, by the Options field they set.
VALUED = {
    "--adapt": "adapt", "--duration": "duration", "--throttle-at": "throttle_at",
    "--event": "event", "--throttle-mbit": "throttle_mbit", "--link-mbit": "link_mbit",
    "--delay-ms": "delay_ms", "--restart-controller-at": "restart_controller_at",
    "--restart-daemon-at": "restart_daemon_at", "--no-link": "no_link", "--vms": "vms",
    "--out": "out", "--plot": "plot", "--controllers": "controllers",
    "--kill-leader-at": "kill_leader_at", "--kill-etcd-member-at": "kill_etcd_member_at",
    "--stop-etcd-at": "stop_etcd_at", "--start-etcd-at": "start_etcd_at",
    "--summary-json": "summary_json", "--reserve": "reserve", "--noisy-flows": "noisy_flows",
    "--noisy-at": "noisy_at",
}
# Flags, by the Options field and the value they set.
FLAGS = {"--migrate": ("migrate", True), "--noisy": ("noisy", True), "--plain": ("plain", True),
         "--no-setup": ("setup", False), "--learn-uplink": ("learn_uplink", True)}


def fail(message, code=2):
    """Exits with `lab.sh: message` on stderr (2: a usage error)."""
    print("lab.sh: " + message, file=sys.stderr)
    sys.exit(code)


def parse(argv):
    """The options in argv, checked; prints the usage and exits on -h/--help."""
    o = Options()
    raw = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(USAGE.format(o=Options()), end="")
            sys.exit(0)
        if arg in FLAGS:
            setattr(o, *FLAGS[arg])
        elif arg in VALUED and args:
            raw[VALUED[arg]] = args.pop(0)
        elif arg in VALUED:
            fail("%s needs a value" % arg)
        else:
            print("lab.sh: unknown option %s" % arg, file=sys.stderr)
            print(USAGE.format(o=Options()), end="", file=sys.stderr)
            sys.exit(2)
    for name, text in raw.items():
        setattr(o, name, number(name, text) if name in WHOLE else text)
    check(o)
    return o


# Options whose value is a whole number of seconds or Mbit/s.
WHOLE = ("duration", "throttle_at", "throttle_mbit", "link_mbit",
         "restart_controller_at", "restart_daemon_at", "controllers", "kill_leader_at",
         "kill_etcd_member_at", "stop_etcd_at", "start_etcd_at", "noisy_flows", "noisy_at")


def number(name, text):
    """The whole number text, or an exit with a message naming the option."""
    if not re.fullmatch(r"[0-9]+", text):
        fail("%s must be a whole number" % name)
    return int(text)


def check(o):
    """Exits with a message for the first option out of its range."""
    if o.adapt not in ("on", "off"):
        fail("--adapt on|off")
    if o.event not in ("throttle", "cross", "none"):
        fail("--event throttle|cross|none")
    if o.reserve and not re.fullmatch(r"([ABC])-(?!\1)[ABC]:[0-9]+(\.[0-9]+)?", o.reserve):
        fail("--reserve X-Y:M with X, Y two of A B C and M Mbit/s (e.g. A-C:40)")
    if not 1 <= o.noisy_flows <= 64:
        fail("--noisy-flows 1..64")
    if not 0 <= o.noisy_at < o.duration:
        fail("--noisy-at: from 0 to before --duration")
    if o.noisy and o.vms != "netns":
        fail("--noisy needs --vms netns (the noisy VM is a namespace)")
    if o.vms not in ("netns", "qemu"):
        fail("--vms netns|qemu")
    pairs = [a + "-" + b for a in HOSTS for b in HOSTS if a != b]
    if o.no_link and o.no_link not in pairs:
        fail("--no-link X-Y with X, Y in A B C")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", o.delay_ms):
        fail("--delay-ms must be a number")
    if not 1 <= o.controllers <= 9:
        fail("--controllers 1..9")
    if (o.start_etcd_at is None) != (o.stop_etcd_at is None):
        fail("--stop-etcd-at and --start-etcd-at go together")
    if o.stop_etcd_at is not None and o.start_etcd_at <= o.stop_etcd_at:
        fail("--start-etcd-at must come after --stop-etcd-at")
