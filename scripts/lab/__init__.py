"""The lab: wrenvnet closing the loop on one machine.

Three hosts (A, B, C: network namespaces), each running a wrenvnet daemon (DPDK) with
one VM on a VXLAN overlay: the application's VMs on A and C are QEMU guests (TCG) on
the daemons' vhost-user ports, booted from the image scripts/guest-image.sh builds (or,
with --vms netns, namespaces on veths and af_packet ports); B's is a namespace. The
hosts' links meet in a fabric namespace: each host's access link has a one-way delay
(wrenvnet-delayline: this kernel has no netem) and every directed host-to-host link its
own capacity (tc htb, classified by the underlay source address). The application, a
long iperf3 TCP transfer from the VM on A to the VM on C, runs while the cluster's
state lives in a three-member etcd cluster (TLS, client certificates) and controller
replicas (`wrenvnet controller`, one leading through etcd's election) read what the
daemons publish there and write each host's desired state back. Midway the
A-C link is throttled (or filled with cross traffic). Live, the lab shows per link the
truth beside what wrenvnet measured, the inferred traffic topology, the routes in force
and what the controller decided; with adaptation on, the controller reroutes A->C
through B and the application recovers.

It exists so that one command shows the whole system working against a known truth,
and so that tests/closed_loop.rs can judge the closed loop from its result.json.
Everything a run creates (namespaces, processes, its work directory, DPDK runtime
files) is removed on exit, on Ctrl-C and on error.

  sudo scripts/lab.sh                 # set up the host, build, run (adaptation on)
  sudo scripts/lab.sh --adapt off     # the same scenario without adaptation
  scripts/lab.sh --help

Modules: options (the command line), procs (processes and namespaces by name and PID,
and their removal), fabric (hosts, links, the truth), hosts (the daemons', guests' and
controller replicas' configs and starts), control (the etcd members, the management
network and the PKI), scenario (the run itself), view (what the screen,
the per-second line and the summary show), plot (the SVG), migrate (the controller's
migration hook).
"""
