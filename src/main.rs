//! wrenvnet: a DPDK overlay switch for virtual machines that measures the network from
//! the application's own traffic and adapts the application to it (the command; its
//! parts are the library's).
#![forbid(unsafe_code)]

use wrenvnet::{controller, daemon, fleet, operator};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wrenvnet",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("WRENVNET_GIT_REV"), ")"),
    about = "DPDK overlay switch for VMs that measures the network for free and adapts",
    long_about = "wrenvnet switches the Ethernet frames of virtual machines between their \
vhost-user ports and the NIC, and measures latency, available bandwidth and the \
application's traffic matrix from that same traffic.\n\n\
EAL arguments go after `--`, as with dpdk-testpmd: \
`wrenvnet run --config wrenvnet.toml -- -l 0-1 --file-prefix wv0`. \
`--no-pci` is added unless PCI devices are named with -a.\n\n\
Logging: RUST_LOG=debug|info|warn (default info)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the dataplane described by a config file (mode "xconnect": port 0 <-> port 1).
    Run(daemon::RunArgs),
    /// Solve a VADAPT problem (VM mapping and overlay paths) from a JSON file.
    /// Exit code 3 when no feasible plan exists (the best-effort plan is printed).
    Adapt(operator::adapt::AdaptArgs),
    /// The global VM traffic matrix merged from every daemon's VTTIF rows, and its topology.
    Matrix(operator::MatrixArgs),
    /// Every daemon's Wren path views: RTT, throughput, available bandwidth.
    Paths(operator::PathsArgs),
    /// Every daemon's switch counters: packets each way, encap/decap, drops, cycles/packet.
    Status(operator::ViewArgs),
    /// List every daemon's forwarding rules, or change one daemon's (--set MAC=TO, --del MAC).
    Rules(operator::RulesArgs),
    /// List every daemon's overlay links (peers), or change one daemon's (--set NAME=IP,
    /// --del NAME).
    Links(operator::LinksArgs),
    /// List every daemon's VM ports, or plug one live (--plug PORT --devargs D --mac M) or
    /// unplug one (--unplug PORT) on one daemon.
    Vms(operator::VmsArgs),
    /// The cluster as etcd holds it: members, the leading controller replica, every
    /// host's lease, desired and applied revisions, lagging hosts.
    Cluster(operator::cluster::EtcdArgs),
    /// The controllers' decision log in etcd, oldest first.
    Decisions(operator::cluster::DecisionsArgs),
    /// Reservations in etcd: ask for one and wait for the controller's verdict (add),
    /// list them with their verdicts (list), end one (del).
    Reserve(operator::reserve::ReserveArgs),
    /// Read a capture (pcap/pcapng, underlay VXLAN or plain) and run the analysis engines on it.
    Analyze(operator::analyze::AnalyzeArgs),
    /// Close the loop, as one of N replicas over etcd: read every daemon's views, run
    /// VADAPT when demands or measurements move, write each host's desired state
    /// (config/controller.example.toml).
    Controller(controller::ControllerArgs),
    /// Simulated hosts against a real etcd and the real controllers: each one the
    /// daemon's etcd session with an in-memory FIB and generated views (bench/fleet.sh).
    FleetSim(fleet::FleetArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    // A tool whose output goes to a pipe ends quietly when the reader does (`| head`).
    // Processes that hold network sessions keep SIGPIPE ignored: a peer that closes
    // mid-write (an API or control-socket client, an etcd member refusing a TLS
    // handshake) is an error to handle, never a reason to die; `cluster`,
    // `decisions` and `reserve` restore the default once their etcd session is over.
    if !matches!(
        cli.command,
        Command::Run(_)
            | Command::Controller(_)
            | Command::FleetSim(_)
            | Command::Cluster(_)
            | Command::Decisions(_)
            | Command::Reserve(_)
    ) {
        dataplane::process::restore_default_sigpipe();
    }
    let result = match cli.command {
        Command::Run(args) => daemon::run(args).map(|()| ExitCode::SUCCESS),
        Command::Matrix(args) => operator::matrix(args).map(|()| ExitCode::SUCCESS),
        Command::Paths(args) => operator::paths(args).map(|()| ExitCode::SUCCESS),
        Command::Status(args) => operator::status(args).map(|()| ExitCode::SUCCESS),
        Command::Rules(args) => operator::rules(args).map(|()| ExitCode::SUCCESS),
        Command::Links(args) => operator::links(args).map(|()| ExitCode::SUCCESS),
        Command::Vms(args) => operator::vms(args).map(|()| ExitCode::SUCCESS),
        Command::Cluster(args) => operator::cluster::cluster(args).map(|()| ExitCode::SUCCESS),
        Command::Decisions(args) => operator::cluster::decisions(args).map(|()| ExitCode::SUCCESS),
        Command::Reserve(args) => operator::reserve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Analyze(args) => operator::analyze::run(args).map(|()| ExitCode::SUCCESS),
        Command::Controller(args) => controller::run(args).map(|()| ExitCode::SUCCESS),
        Command::FleetSim(args) => fleet::run(args).map(|()| ExitCode::SUCCESS),
        Command::Adapt(args) => operator::adapt::run(args).map(|feasible| {
            if feasible {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(operator::adapt::EXIT_INFEASIBLE)
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
