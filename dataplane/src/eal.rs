//! The DPDK Environment Abstraction Layer: its arguments and its one life per process.
//!
//! `EalArgs` builds the command line the way operators know it from testpmd: typed
//! settings for what wrenvnet needs, plus any EAL arguments passed through verbatim.
//! It always adds `--no-pci` unless PCI devices are named (`-a`/`--allow`/`-b`), so a
//! host's own NIC is never probed by accident.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{dpdk_error, Error, Result};

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The arguments of one EAL.
#[derive(Debug, Clone, Default)]
pub struct EalArgs {
    program: String,
    lcores: Option<String>,
    file_prefix: Option<String>,
    in_memory: bool,
    no_huge: bool,
    memory_mb: Option<u32>,
    vdevs: Vec<String>,
    pci_allow: Vec<String>,
    log_level: Option<String>,
    passthrough: Vec<String>,
}

impl EalArgs {
    /// Arguments for a program called `program` (`argv[0]`, shown in EAL's messages).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// The lcore list (`-l`), e.g. `"0-1"` or `"0,2"`.
    pub fn lcores(mut self, list: impl Into<String>) -> Self {
        self.lcores = Some(list.into());
        self
    }

    /// The runtime file prefix (`--file-prefix`): one per process that shares a host.
    pub fn file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = Some(prefix.into());
        self
    }

    /// `--in-memory`: no files under /var/run/dpdk and no shared hugepage files.
    pub fn in_memory(mut self, on: bool) -> Self {
        self.in_memory = on;
        self
    }

    /// `--no-huge`: anonymous memory instead of hugepages (about twice the per-packet
    /// cost; for machines without hugepages).
    pub fn no_huge(mut self, on: bool) -> Self {
        self.no_huge = on;
        self
    }

    /// `-m`: memory to reserve, in MiB.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = Some(mb);
        self
    }

    /// A virtual device (`--vdev`), e.g. `"net_null0,size=64"`.
    pub fn vdev(mut self, devargs: impl Into<String>) -> Self {
        self.vdevs.push(devargs.into());
        self
    }

    /// A PCI device to probe (`-a`). Naming one turns off the automatic `--no-pci`.
    pub fn pci(mut self, addr: impl Into<String>) -> Self {
        self.pci_allow.push(addr.into());
        self
    }

    /// `--log-level`, e.g. `"*:warning"` or `"lib.eal:debug"`.
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }

    /// EAL arguments given by the operator (after `--`), appended verbatim; they win
    /// over the typed settings where EAL takes the last occurrence.
    pub fn passthrough<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.passthrough.extend(args.into_iter().map(Into::into));
        self
    }

    /// Whether the passthrough arguments already set an option (e.g. `-l`).
    fn passthrough_has(&self, names: &[&str]) -> bool {
        self.passthrough.iter().any(|arg| {
            names
                .iter()
                .any(|name| arg == name || arg.starts_with(&format!("{name}=")))
        })
    }

    /// Whether any PCI device is named, typed or passed through.
    pub fn names_pci_devices(&self) -> bool {
        !self.pci_allow.is_empty()
            || self.passthrough_has(&["-a", "--allow", "-b", "--block", "-w", "--pci-whitelist"])
            || self.passthrough.iter().any(|a| {
                (a.starts_with("-a") || a.starts_with("-b")) && a.len() > 2 && !a.starts_with("--")
            })
    }

    /// The full argv handed to `rte_eal_init`.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = vec![self.program.clone()];
        if let Some(l) = &self.lcores {
            if !self.passthrough_has(&["-l", "-c", "--lcores"]) {
                argv.extend(["-l".into(), l.clone()]);
            }
        }
        if let Some(p) = &self.file_prefix {
            argv.extend(["--file-prefix".into(), p.clone()]);
        }
        if self.in_memory {
            argv.push("--in-memory".into());
        }
        if self.no_huge {
            argv.push("--no-huge".into());
        }
        if let Some(m) = self.memory_mb {
            argv.extend(["-m".into(), m.to_string()]);
        }
        for v in &self.vdevs {
            argv.extend(["--vdev".into(), v.clone()]);
        }
        for a in &self.pci_allow {
            argv.extend(["-a".into(), a.clone()]);
        }
        if let Some(l) = &self.log_level {
            argv.extend(["--log-level".into(), l.clone()]);
        }
        if !self.names_pci_devices() && !self.passthrough_has(&["--no-pci"]) {
            argv.push("--no-pci".into());
        }
        argv.extend(self.passthrough.iter().cloned());
        argv
    }
}

/// The initialised EAL. There is at most one per process; dropping it runs
/// `rte_eal_cleanup`, which releases hugepage files and runtime state.
///
/// Every DPDK object of the safe layer borrows the `Eal`, so none can outlive it.
#[derive(Debug)]
pub struct Eal {
    argv: Vec<String>,
}

impl Eal {
    /// Initialises the EAL with `args`. Fails with DPDK's reason (bad arguments, no
    /// hugepages, ...) and never initialises twice in one process.
    #[cold]
    pub fn init(args: &EalArgs) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(Error::EalAlreadyInitialized);
        }
        let argv_strings = args.to_argv();
        let mut c_args: Vec<*mut c_char> = Vec::with_capacity(argv_strings.len() + 1);
        for a in &argv_strings {
            let c = CString::new(a.as_str())
                .map_err(|_| Error::Invalid(format!("EAL argument {a:?} contains a NUL byte")))?;
            // rte_eal_init permutes argv and keeps pointers into it for the life of the
            // process: the strings are leaked on purpose.
            c_args.push(c.into_raw());
        }
        let argc = c_args.len() as c_int;
        c_args.push(std::ptr::null_mut());
        let argv_ptr = Box::leak(c_args.into_boxed_slice()).as_mut_ptr();
        // SAFETY: argv_ptr points to argc valid, NUL-terminated, leaked (so 'static)
        // strings followed by a null pointer, as rte_eal_init requires; EAL_STARTED
        // guarantees this is the only call in the process.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv_ptr) };
        if ret < 0 {
            return Err(dpdk_error(
                "rte_eal_init",
                format!("EAL arguments `{}`", argv_strings[1..].join(" ")),
                ret,
            ));
        }
        log::debug!("EAL up: {}", argv_strings.join(" "));
        Ok(Eal { argv: argv_strings })
    }

    /// The argv the EAL was started with.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// DPDK's version string at run time.
    pub fn runtime_version(&self) -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe {
            std::ffi::CStr::from_ptr(dpdk_sys::wrenvnet_rte_version())
                .to_string_lossy()
                .into_owned()
        }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every safe-layer object borrows the Eal, so none is alive here;
        // rte_eal_cleanup is called once, from the thread that initialised the EAL.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        if ret < 0 {
            log::warn!("rte_eal_cleanup: {}", crate::error::errno_text(-ret));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pci_is_added_unless_pci_devices_are_named() {
        let argv = EalArgs::new("t").lcores("0").to_argv();
        assert!(argv.contains(&"--no-pci".to_string()));
        let argv = EalArgs::new("t").pci("0000:01:00.0").to_argv();
        assert!(!argv.contains(&"--no-pci".to_string()));
        let argv = EalArgs::new("t")
            .passthrough(["-a", "0000:01:00.0"])
            .to_argv();
        assert!(!argv.contains(&"--no-pci".to_string()));
        let argv = EalArgs::new("t").passthrough(["-a0000:01:00.0"]).to_argv();
        assert!(!argv.contains(&"--no-pci".to_string()));
        let argv = EalArgs::new("t")
            .passthrough(["--allow=0000:01:00.0"])
            .to_argv();
        assert!(!argv.contains(&"--no-pci".to_string()));
        // Given twice would be harmless but untidy.
        let argv = EalArgs::new("t").passthrough(["--no-pci"]).to_argv();
        assert_eq!(argv.iter().filter(|a| *a == "--no-pci").count(), 1);
    }

    #[test]
    fn passthrough_lcores_override_typed_ones() {
        let argv = EalArgs::new("t")
            .lcores("0-1")
            .passthrough(["-l", "3"])
            .to_argv();
        assert_eq!(argv.iter().filter(|a| *a == "-l").count(), 1);
        assert!(argv.ends_with(&["-l".to_string(), "3".to_string()]));
    }
}
