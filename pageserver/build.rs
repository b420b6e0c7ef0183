//! Records the git revision of the build for `pageserver --version` and
//! `pageserver_build_info` (`unknown` when the source is not a git checkout, as in a
//! container build that copies the tree without `.git`).

fn main() {
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PAGESERVER_BUILD_REVISION={revision}");
    // Rebuild when HEAD moves (the reflog grows at every commit and checkout).
    for path in ["../.git/HEAD", "../.git/logs/HEAD"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
