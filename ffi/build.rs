//! Build script of dpdk-sys: finds the system DPDK with pkg-config, generates the
//! bindings with bindgen, and compiles the C wrappers of DPDK's static-inline functions.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "apt-get install libdpdk-dev dpdk clang libclang-dev pkg-config";

fn pkg_config(args: &[&str]) -> Option<String> {
    let out = Command::new("pkg-config").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn fail(msg: &str) -> ! {
    // One clear line; cargo shows the build script's stderr on failure.
    eprintln!("error: dpdk-sys: {msg}");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion", "libdpdk"]).unwrap_or_else(|| {
        fail(&format!(
            "libdpdk (>= {MIN_VERSION}) not found by pkg-config; install it with: {INSTALL_HINT}"
        ))
    });
    if pkg_config(&["--atleast-version", MIN_VERSION, "libdpdk"]).is_none() {
        fail(&format!(
            "libdpdk {version} is too old, need >= {MIN_VERSION}; install it with: {INSTALL_HINT}"
        ));
    }
    println!("cargo:rustc-env=DPDK_PKG_VERSION={version}");

    // The pkg-config crate drops `-include rte_config.h` and `-march=...`, which DPDK's
    // headers need (rte_memcpy.h fails to inline without -march); read the flags ourselves.
    let cflags_line = pkg_config(&["--cflags", "libdpdk"]).unwrap_or_default();
    let cflags: Vec<String> = split_flags(&cflags_line);
    let mut clang_args = cflags.clone();
    clang_args.push("-D_GNU_SOURCE".into());
    clang_args.push("-DALLOW_EXPERIMENTAL_API".into());

    let libs_line = pkg_config(&["--libs", "libdpdk"]).unwrap_or_default();
    for flag in split_flags(&libs_line) {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if flag.starts_with("-Wl,") {
            println!("cargo:rustc-link-arg={flag}");
        }
    }

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    // wrap_static_fns generates C that includes the header by the path given: absolute.
    let header = manifest.join("wrapper.h");
    let static_wrappers = out.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(&clang_args)
        .allowlist_function("rte_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_function("wrenvnet_.*")
        // These two break the Rust build (packed bitfield layout bindgen cannot express).
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_wrappers)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DPDK headers: {e}")));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));

    let mut build = cc::Build::new();
    build
        .file(static_wrappers.with_extension("c"))
        .file(manifest.join("shim.c"))
        .include(&manifest)
        .define("_GNU_SOURCE", None)
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(3)
        .warnings(false);
    let mut iter = cflags.iter();
    while let Some(flag) = iter.next() {
        if flag == "-include" {
            if let Some(file) = iter.next() {
                build.flag("-include").flag(file);
            }
        } else {
            build.flag(flag);
        }
    }
    build.compile("dpdk_sys_wrappers");
}

fn split_flags(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}
