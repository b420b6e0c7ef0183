//! The remote-storage fixture: the same suites run against the local-filesystem backend and
//! against SeaweedFS, a real S3-compatible server, with a bucket of its own per test.
//!
//! The SeaweedFS server is [`test_support::seaweedfs::seaweedfs`]: the one `scripts/test` started,
//! or one started for this process. Buckets are named after the test and never reused; a
//! bucket is deleted when the last clone of its [`Remote`] is dropped, unless the test is
//! panicking (its objects stay for the post-mortem).
//!
//! The checker and the oracles read the bucket through the pageserver's own backends
//! ([`LocalFs`], [`S3`]): listing and reading are all they need.

use bytes::Bytes;
use layer_format::io::{EngineChoice, open_engine};
use pageserver::remote::RemoteStorage;
use pageserver::remote::local::LocalFs;
use pageserver::remote::s3::S3;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Which backend a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A directory on the local filesystem (the pageserver's default backend).
    Local,
    /// A bucket of its own on the SeaweedFS server.
    S3,
}

/// One remote storage, shared by the pageservers of a test.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The backend.
    pub backend: Backend,
    /// The `remote_storage = {...}` setting that points a pageserver at it.
    pub config: String,
    /// Environment a pageserver needs for it (S3 credentials).
    pub env: Vec<(String, String)>,
    /// The directory of a local backend.
    pub local_root: Option<PathBuf>,
    /// The bucket of an S3 backend.
    pub bucket: Option<String>,
    storage: Arc<dyn RemoteStorage>,
    _bucket: Option<Arc<Bucket>>,
}

/// A bucket of this test on the SeaweedFS server, deleted on drop.
#[derive(Debug)]
struct Bucket(String);

impl Drop for Bucket {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("bucket {} kept for the post-mortem", self.0);
            return;
        }
        if let Err(e) = test_support::seaweedfs::seaweedfs().delete_bucket(&self.0) {
            eprintln!("bucket {} not deleted: {e:#}", self.0);
        }
    }
}

impl Remote {
    /// The local-filesystem backend rooted at `root`.
    pub fn local(root: &Path) -> Remote {
        let engine = open_engine(EngineChoice::Std).expect("std engine");
        let storage = LocalFs::new(root, engine).expect("local remote storage");
        Remote {
            backend: Backend::Local,
            config: format!(
                "remote_storage = {{ local_path = {:?} }}",
                root.to_str().expect("UTF-8 path")
            ),
            env: Vec::new(),
            local_root: Some(root.to_path_buf()),
            bucket: None,
            storage: Arc::new(storage),
            _bucket: None,
        }
    }

    /// A new, empty bucket on the SeaweedFS server, named after `test`.
    pub fn s3(test: &str) -> Remote {
        let mut r = Remote::s3_on(test_support::seaweedfs::seaweedfs(), test);
        r._bucket = Some(Arc::new(Bucket(r.bucket.clone().expect("an S3 bucket"))));
        r
    }

    /// A new, empty bucket named after `test` on `server` (a cluster of the test's own, which
    /// is dropped with its buckets).
    pub fn s3_on(server: &test_support::seaweedfs::SeaweedFs, test: &str) -> Remote {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let clean: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(30)
            .collect();
        let bucket = format!(
            "{}-{}-{}",
            clean.trim_matches('-'),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        server.create_bucket(&bucket).expect("create a bucket");
        let storage = S3::new(
            &server.endpoint,
            &bucket,
            "us-east-1",
            "",
            Some(server.credentials.clone()),
        )
        .expect("S3 client");
        Remote {
            backend: Backend::S3,
            config: format!(
                "remote_storage = {{ endpoint = {:?}, bucket = {bucket:?}, region = \"us-east-1\", prefix = \"\" }}",
                server.endpoint
            ),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), server.credentials.0.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), server.credentials.1.clone()),
            ],
            local_root: None,
            bucket: Some(bucket),
            storage: Arc::new(storage),
            _bucket: None,
        }
    }

    /// [`Remote::local`] under `dir` or [`Remote::s3`] named after `test`.
    pub fn new(backend: Backend, dir: &Path, test: &str) -> Remote {
        match backend {
            Backend::Local => Remote::local(&dir.join("remote_storage")),
            Backend::S3 => Remote::s3(test),
        }
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut keys = self.storage.list(prefix).await?;
        keys.sort();
        Ok(keys)
    }

    /// The bytes of `key`, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        self.storage.get(key).await
    }

    /// Every object under `prefix` with its size, sorted by key.
    pub async fn list_sized(&self, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let listed = self.storage.list_sized(prefix).await?;
        Ok(listed.into_iter().map(|o| (o.key, o.size)).collect())
    }

    /// Creates `key` (a test planting an object as a failure would have left it).
    pub async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        let outcome = self.storage.put_if_absent(key, data).await?;
        anyhow::ensure!(
            outcome == pageserver::remote::PutOutcome::Created,
            "{key} already exists"
        );
        Ok(())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.storage.delete(key).await
    }

    /// The arguments and environment that point `pagectl` at this storage, as the server.
    pub fn pagectl_args(&self, workdir: &Path) -> (Vec<String>, Vec<(String, String)>) {
        let args = vec![
            "--workdir".to_string(),
            workdir.to_str().expect("UTF-8 path").to_string(),
            "-c".to_string(),
            self.config.clone(),
        ];
        (args, self.env.clone())
    }
}
