//! Real guests for the tests: QEMU (TCG) booting the image `scripts/guest-image.sh`
//! packs, its NIC a virtio-net device over a vhost-user socket the daemon serves. The
//! guest's /init reads its role from the kernel command line (`wv.role=server|client|
//! ping`, `wv.ip`, `wv.peer`, `wv.secs`), prints the results on the serial console,
//! says `WV-DONE` and powers off.
#![allow(dead_code)] // each test binary uses its part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The guest image (kernel and initrd), built once under build/guest.
pub fn image() -> PathBuf {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/guest");
    super::sh(&format!(
        "{}/scripts/guest-image.sh {}",
        env!("CARGO_MANIFEST_DIR"),
        image.display()
    ));
    image
}

/// A running guest: killed on drop.
pub struct Guest {
    pub child: Child,
    pub serial: PathBuf,
}

impl Guest {
    /// Boots a guest with NIC `mac` on vhost-user socket `sock` (QEMU the client,
    /// reconnecting every second when the daemon goes away), init arguments `args`,
    /// its console in `dir/NAME.serial`.
    pub fn boot(image: &Path, dir: &Path, name: &str, sock: &Path, mac: &str, args: &str) -> Self {
        Self::boot_with(image, dir, name, sock, mac, args, &[])
    }

    /// As `boot`, with `extra` QEMU arguments (e.g. `-qmp` and `-pidfile` for a guest
    /// that scripts/migrate-qemu.sh moves).
    pub fn boot_with(
        image: &Path,
        dir: &Path,
        name: &str,
        sock: &Path,
        mac: &str,
        args: &str,
        extra: &[String],
    ) -> Self {
        let serial = dir.join(format!("{name}.serial"));
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-m", "256"])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .args(["-object", "memory-backend-memfd,id=mem,size=256M,share=on"])
            .args(["-numa", "node,memdev=mem"])
            .arg("-kernel")
            .arg(image.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.join("initrd.gz"))
            .args(["-append", &format!("console=ttyS0 quiet {args}")])
            .args([
                "-chardev",
                &format!("socket,id=c0,path={},reconnect=1", sock.display()),
            ])
            .args(["-netdev", "vhost-user,id=n0,chardev=c0"])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={mac},romfile=,vectors=0"),
            ])
            .args(["-serial", &format!("file:{}", serial.display())])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn qemu-system-x86_64");
        Self { child, serial }
    }

    /// What the guest printed on its console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the console holds `what`; panics with the console after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.console().contains(what) {
            assert!(
                t0.elapsed() < limit,
                "the guest never printed {what:?}:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the guest to power off; kills it and panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) {
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the guest did not finish:\n{}", self.console());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The per-second rates (Mbit/s) of the sender's intervals in iperf3's plain output.
pub fn iperf_intervals(console: &str) -> Vec<f64> {
    console
        .lines()
        .filter(|l| l.contains(" sec ") && !l.contains("sender") && !l.contains("receiver"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| x.ends_with("bits/sec"))?;
            let v: f64 = w.get(i - 1)?.parse().ok()?;
            Some(match w[i].chars().next() {
                Some('G') => v * 1e3,
                Some('M') => v,
                Some('K') => v / 1e3,
                _ => v / 1e6,
            })
        })
        .collect()
}
