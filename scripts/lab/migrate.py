"""The lab's migration hook (controller.migrate_command with --migrate): moves a lab
VM from one host's daemon to another's, the way a hypervisor's live migration moves a
VM's device, keeping its MAC, its address and its TCP connections.

  scripts/lab.sh migrate WORK ID VM_MAC PORT FROM TO

1. The destination daemon plugs a new VM port for an incoming VM, a tap it creates
   (net_tap: not af_packet, which disturbs the daemon's other af_packet ports when
   opened live; see README, VM ports): once the tap's link is up the daemon points the
   VM's rule at it and announces the VM to its peers (a RARP over the overlay), as it
   does for a QEMU guest that arrives by live migration.
2. The tap is handed to the VM's namespace and takes over the VM's MAC and address
   from its old interface, which goes down.
3. The source daemon unplugs the VM's old port (its rule is withdrawn first).
The controller then points the other daemons' rules for the VM's MAC at TO.
"""
import os
import subprocess
import sys
import time

from .fabric import ns_name, plain_frames
from .options import HOSTS
from .procs import in_ns, output, run

USAGE = "usage: lab.sh migrate WORK ID VM_MAC PORT FROM TO"


def main(argv):
    """Moves the VM; exit status 0 when it moved, 1 or 2 (usage) when not."""
    if len(argv) != 6:
        print(USAGE, file=sys.stderr)
        return 2
    work, lab_id, mac, port, frm, to = argv
    n = mac[13:14]   # 02:00:00:00:0N:01 -> N (the VM's lab number)
    if not n or n not in "123456789":
        print("lab.sh migrate: %s is not a lab VM" % mac, file=sys.stderr)
        return 2
    n = int(n)
    vm_ns = ns_name("v", HOSTS[n - 1] if n <= len(HOSTS) else "", lab_id)
    if vm_ns not in [row.split()[0] for row in output("ip", "netns", "list").splitlines() if row]:
        print("lab.sh migrate: no namespace %s" % vm_ns, file=sys.stderr)
        return 1
    try:
        move(work, mac, n, port, frm, to, vm_ns, ns_name("", to, lab_id))
    except subprocess.CalledProcessError as e:
        print("lab.sh migrate: %s failed (exit %d)" % (" ".join(e.cmd), e.returncode),
              file=sys.stderr)
        return 1
    return 0


def move(work, mac, n, port, frm, to, vm_ns, to_ns):
    """The three steps, and a gratuitous ARP for the VM's neighbours."""
    wrenvnet = os.environ.get("WRENVNET_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "target", "release", "wrenvnet")
    ip = "198.19.0.%d" % n
    k = time.time_ns() // 1_000_000 % 100000   # each plug makes a new device: a new name
    tap, new_port = "mv%d-%d" % (n, k), "vm%d-%d" % (n, k)
    print("migrating VM %s (%s) from %s (port %s) to %s as port %s (%s)" % (
        mac, ip, frm, port, to, new_port, tap), flush=True)
    run(wrenvnet, "vms", "--api", os.path.join(work, "api-%s.sock" % to), "--plug", new_port,
        "--devargs", "net_tap%d,iface=%s" % (k, tap), "--mac", mac, "--incoming")
    run("ip", "-n", to_ns, "link", "set", tap, "netns", vm_ns)
    addrs = output("ip", "-n", vm_ns, "-o", "-4", "addr", "show").splitlines()
    old = [f[1] for f in (row.split() for row in addrs) if len(f) > 3 and f[3] == ip + "/24"]
    run("ip", "-n", vm_ns, "link", "set", tap, "address", mac, "mtu", "1450")
    plain_frames(vm_ns, tap)
    if old:
        run("ip", "-n", vm_ns, "addr", "del", ip + "/24", "dev", old[0])
        run("ip", "-n", vm_ns, "link", "set", old[0], "down")
    run("ip", "-n", vm_ns, "addr", "add", ip + "/24", "dev", tap)
    run("ip", "-n", vm_ns, "link", "set", tap, "up")
    run(wrenvnet, "vms", "--api", os.path.join(work, "api-%s.sock" % frm), "--unplug", port)
    # Tell the VM's neighbours where it is now (as QEMU does after a migration: a RARP).
    run(*in_ns(vm_ns, "arping", "-c", "1", "-U", "-I", tap, ip), check=False, quiet=True)
    print("migrated VM %s to %s" % (mac, to), flush=True)
