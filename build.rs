//! Build script of the `wrenvnet` binary: records the git revision for `--version`
//! style reports and benchmark results.

use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WRENVNET_GIT_REV={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
