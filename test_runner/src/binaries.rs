//! The binaries under test: built once per test process, found beside the test executable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `pageserver` binary with the `testing` feature, built once per test process (a no-op
/// when `scripts/test`'s `cargo test --workspace --features ...` already built it).
pub fn pageserver_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("PAGESERVER_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "pageserver",
                "--features",
                "testing",
                "--bin",
                "pageserver",
                "--bin",
                "pagectl",
                "--manifest-path",
            ])
            .arg(&manifest)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the pageserver binary failed");
        // Test executables live in <target>/debug/deps; the binary in <target>/debug.
        let exe = std::env::current_exe().expect("current exe");
        let debug = exe.parent().and_then(Path::parent).expect("target/debug");
        debug.join("pageserver")
    })
}

/// The `pagectl` binary built beside [`pageserver_bin`].
pub fn pagectl_bin() -> PathBuf {
    pageserver_bin().with_file_name("pagectl")
}

/// Runs `pagectl` with `args` and environment `env`; its exit code (-1 if killed) and standard
/// output. Both streams go to the test's log.
pub fn run_pagectl(args: &[&str], env: &[(String, String)]) -> (i32, String) {
    let out = std::process::Command::new(pagectl_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run pagectl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "pagectl {args:?}: {:?}\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}
