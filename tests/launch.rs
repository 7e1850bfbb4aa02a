//! scripts/launch.sh, the bare-metal launcher, in --dry-run (it changes nothing and never
//! touches a device): the EAL arguments it would start the daemon with, and its refusals.
//! No test here names a real PCI device: this machine's NIC is never to be probed.

use std::process::Command;

fn launch(args: &[&str]) -> (bool, String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/launch.sh");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/switch.example.toml");
    let out = Command::new("bash")
        .arg(script)
        .args(["--dry-run", "--config", config])
        .args(args)
        .output()
        .expect("run launch.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dry_run_says_how_the_daemon_would_start() {
    let (ok, out, err) = launch(&["--lcores", "0-2", "--", "--log-level", "*:info"]);
    assert!(ok, "{out}{err}");
    let cmd = out
        .lines()
        .find(|l| l.contains("would run:") && l.contains(" run --config "))
        .unwrap_or_else(|| panic!("no daemon command: {out}"));
    for want in [
        "-l 0-2",
        "--huge-dir /dev/hugepages",
        "--no-pci",
        "--log-level *:info",
    ] {
        assert!(cmd.contains(want), "{want:?} missing from {cmd}");
    }
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    for (args, reason) in [
        (&["--pci", "zz"][..], "is not a PCI address"),
        (&["--pci", "0000:ff:1f.7"][..], "no PCI device 0000:ff:1f.7"),
        (&["--hugepage-size", "4M"][..], "must be 2M or 1G"),
        (
            &["--lcores", "3"][..],
            "need a main lcore and at least one worker",
        ),
        (&["--unbind", "ixgbe"][..], "needs the --pci devices"),
        (&["--frobnicate"][..], "unknown option"),
    ] {
        let (ok, out, err) = launch(args);
        assert!(!ok, "{args:?} was accepted: {out}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}
