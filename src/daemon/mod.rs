//! `wrenvnet run`: the daemon. Setup brings the EAL, the pool, the ports and the
//! analysis up; the mode (xconnect or switch) runs the workers on their lcores while
//! the main lcore runs `MainLoop`; finish writes the exit summary and fails the run
//! when an mbuf did not come back to its pool. SIGINT/SIGTERM end the run cleanly.
//!
//! Beside the modes: `config` (the TOML file), `api` (the HTTP API served from the main
//! lcore), `cluster` (the etcd session of a switch with `[etcd]`, on a control thread)
//! `vm_ports` (VM ports plugged and unplugged while the workers run), `qos` (the
//! reservations' policy) and `uplink` (the uplink's capacity learnt from Wren).

pub mod api;
pub(crate) mod cluster;
pub mod config;
mod main_loop;
pub mod qos;
mod setup;
mod summary;
mod switch_mode;
pub mod uplink;
pub mod vm_ports;
mod xconnect_mode;

use std::path::PathBuf;

use anyhow::Result;

use crate::daemon::config::{Config, Mode};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// TOML config file (see config/xconnect.example.toml).
    #[arg(short, long)]
    config: PathBuf,
    /// Stop after this many seconds (benchmarks, tests); default: run until SIGINT/SIGTERM.
    #[arg(long)]
    duration: Option<f64>,
    /// Write the final statistics as JSON to this file at exit.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// EAL arguments, after `--` (e.g. `-- -l 0-1 --file-prefix wv0 --vdev net_null0`).
    #[arg(last = true)]
    eal_args: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    // Signals first: the flag is the workers' quit flag.
    let quit = setup::quit_on_signals()?;
    let eal = setup::start_eal(&config, &args.eal_args)?;
    let pool = setup::mempool(&eal, &config)?;
    let ports = setup::open_ports(&eal, &pool, &config)?;
    let (mut monitoring, producers) = setup::monitoring(&eal, &config)?;
    let ends = main_loop::Ends {
        quit: &quit,
        duration: args.duration,
    };
    let outcome = match config.dataplane.mode {
        Mode::Xconnect => {
            xconnect_mode::run(&eal, ports, &config, producers, &mut monitoring, ends)?
        }
        Mode::Switch => {
            switch_mode::run(&eal, pool, ports, &config, producers, &mut monitoring, ends)?
        }
    };
    summary::finish(outcome, &monitoring, pool, args.summary_json.as_deref())
}
