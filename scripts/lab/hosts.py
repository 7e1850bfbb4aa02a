"""What runs on the lab's hosts: the daemons, the controller, the application.

Each host's daemon (`wrenvnet run`, DPDK --no-pci with af_packet ports, or vhost-user
for a QEMU guest) is an etcd client: it publishes its views and applies its desired
state there. Its HTTP API unix socket in the work directory serves the screen, the
closing report and the migration hook. The controller replicas run on the management
network and talk to etcd only. The application is iperf3 from A's VM to C's,
in QEMU guests (TCG) or in the VM namespaces.
"""
import json
import os
import shlex
import subprocess
import sys

from . import reserve
from .fabric import hnum, vm_mac
from .options import HOSTS
from .procs import in_ns, wait_for


def toml_str(s):
    """s as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(s)


def daemon_config(h, opts, work, control):
    """Host h's daemon config: its NIC, its VM's port, its API socket, its peers, and
    its [etcd] section (`control`)."""
    n = hnum(h)
    if opts.vms == "qemu" and h != "B":
        vm_dev = "net_vhost0,iface=%s/vm-%s.sock,client=0" % (work, h)
    else:
        vm_dev = "net_af_packet1,iface=vm,qdisc_bypass=0"
    lines = [
        "[dataplane]", 'mode = "switch"', "idle_sleep_us = 20", "stats_interval_ms = 100000",
        "[[port]]", 'name = "nic"', 'devargs = "net_af_packet0,iface=u,qdisc_bypass=0"',
        "[[port]]", 'name = "vm"', "devargs = " + toml_str(vm_dev),
        "[api]", "unix = " + toml_str("%s/api-%s.sock" % (work, h)),
        "[switch]", 'name = "%s"' % h, 'underlay_ip = "198.18.100.%d"' % n, "vni = 42",
        'nic = "nic"',
        "[[switch.vm]]", 'port = "vm"', 'mac = "%s"' % vm_mac(n),
    ]
    for x in HOSTS:
        if x != h and opts.linked(h, x):
            lines += ["[[switch.peer]]", 'name = "%s"' % x, 'ip = "198.18.100.%d"' % hnum(x),
                      "[[switch.rule]]", 'dst_mac = "%s"' % vm_mac(hnum(x)), 'peer = "%s"' % x]
    lines += control.section(h)
    lines += reserve.config_lines(h, opts)
    return "\n".join(lines) + "\n"


def eal_memory(prefix):
    """EAL memory arguments: hugepages when enough are free, else plain memory (then
    with its own file prefix, which the cleanup removes)."""
    free = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                free = int(line.split()[1])
    if free >= 128:
        return ["--in-memory"]
    return ["--no-huge", "-m", "512", "--file-prefix", prefix]


def start_daemon(lab, h):
    """(Re)starts host h's daemon, its log appended to <h>.log; its Popen."""
    prefix = "wl%s%s" % (h, lab.id)
    mem = eal_memory(prefix)
    if "--file-prefix" in mem:
        lab.res.file_prefixes.append(prefix)
    argv = in_ns(lab.fabric.ns("", h), lab.bin, "run", "--config", lab.path(h + ".toml"),
                 "--summary-json", lab.path(h + "-summary.json"), "--",
                 "-l", "0-1", *mem, "--log-level", "*:warning")
    return lab.res.spawn(argv, log=lab.path(h + ".log"), append=True)


def api_socket_up(lab, h, tries, interval):
    """Whether host h's API socket appears within tries * interval s."""
    path = lab.path("api-%s.sock" % h)
    return wait_for(lambda: os.path.exists(path) and
                    os.stat(path).st_mode & 0o170000 == 0o140000, tries, interval)


def controller_config(lab, replica):
    """Controller replica `replica`'s config: the hosts, the links' nominal figures,
    its [etcd] section, its own status and events files, and with --migrate the lab's
    migration hook (this program's `migrate` command)."""
    o = lab.opts
    suffix = "-" + replica
    latency = 2 * (float(o.delay_ms) if "." in o.delay_ms else int(o.delay_ms))
    lines = [
        "[controller]", "interval_ms = 1000", "min_interval_s = 5", "change_threshold = 0.3",
        "improvement = 0.25", "adapt = %s" % ("true" if o.adapt == "on" else "false"),
        "status_file = " + toml_str(lab.path("controller%s.json" % suffix)),
        "events_file = " + toml_str(lab.path("events%s.jsonl" % suffix)),
    ]
    if o.migrate:
        lines += ["allow_migration = true", "migrate_command = " + toml_str(migrate_command(lab))]
    for h in HOSTS:
        lines += ["[[host]]", 'name = "%s"' % h]
        if o.migrate:
            lines.append("capacity = 2")
    for a, b in (("A", "B"), ("A", "C"), ("B", "C")):
        lines += ["[[link]]", 'a = "%s"' % a, 'b = "%s"' % b, "bw_mbps = %d" % o.link_mbit,
                  "latency_ms = %s" % latency]
    lines += lab.control.section(replica)
    return "\n".join(lines) + "\n"


def migrate_command(lab):
    """The shell line the controller runs to move a VM ({vm} etc. filled in by it):
    QEMU's live migration for guests, the lab's own hook for namespace VMs."""
    scripts = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    q = shlex.quote
    if lab.opts.vms == "qemu":
        return "sh %s --run-dir %s {vm} {port} {from} {to}" % (
            q(os.path.join(scripts, "migrate-qemu.sh")), q(lab.work))
    return "WRENVNET_BIN=%s sh %s migrate %s %s {vm} {port} {from} {to}" % (
        q(lab.bin), q(os.path.join(scripts, "lab.sh")), q(lab.work), lab.id)


def start_controller(lab, replica):
    """Starts controller replica `replica` on the management network, its log appended
    to controller-REPLICA.log; its Popen."""
    config = lab.path("controller-%s.toml" % replica)
    with open(config, "w") as f:
        f.write(controller_config(lab, replica))
    argv = in_ns(lab.control.ns, lab.bin, "controller", "--config", config,
                 "--replica-id", replica, "--metrics-listen", metrics_address(replica))
    return lab.res.spawn(argv, log=lab.path("controller-%s.log" % replica), append=True)


def metrics_address(replica):
    """Where replica cN serves its Prometheus metrics: the management namespace's own
    loopback, port 9100 + N."""
    return "127.0.0.1:%d" % (9100 + int(replica.lstrip("c") or 0))


def save_metrics(lab, replica):
    """Replica `replica`'s /metrics as a scrape reads it, into controller-REPLICA.metrics
    (nothing when it does not answer)."""
    url = "http://%s/metrics" % metrics_address(replica)
    get = ("import sys, urllib.request; "
           "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())")
    r = subprocess.run(in_ns(lab.control.ns, sys.executable, "-c", get, url),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode == 0:
        with open(lab.path("controller-%s.metrics" % replica), "w") as f:
            f.write(r.stdout)


def start_guest(lab, h, kernel_args):
    """A QEMU guest (TCG) on host h's daemon's vhost-user port; its Popen. Its QMP
    socket and pidfile are those scripts/migrate-qemu.sh looks for (WORK/H-PORT.qmp,
    .pid), and its console goes to guest-H.serial through a chardev appended to, which a
    migration's destination QEMU opens again: the console stays in one file wherever
    the guest runs."""
    sock = lab.path("vm-%s.sock" % h)
    wait_for(lambda: os.path.exists(sock), 100, 0.1)
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "256", "-display", "none",
        "-monitor", "none", "-no-reboot",
        "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
        "-kernel", "build/guest/vmlinuz", "-initrd", "build/guest/initrd.gz",
        "-append", "console=ttyS0 quiet " + kernel_args,
        "-chardev", "socket,id=c0,path=%s,reconnect=1" % sock,
        "-netdev", "vhost-user,id=n0,chardev=c0",
        "-device", "virtio-net-pci,netdev=n0,mac=%s,romfile=,vectors=0" % vm_mac(hnum(h)),
        "-chardev", "file,id=s0,append=on,path=" + lab.path("guest-%s.serial" % h),
        "-serial", "chardev:s0",
        "-qmp", "unix:%s,server=on,wait=off" % lab.path("%s-vm.qmp" % h),
        "-pidfile", lab.path("%s-vm.pid" % h),
    ]
    return lab.res.spawn(argv)
