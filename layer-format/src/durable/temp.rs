//! Temp files: created exclusively next to their final name, removed unless published.

use crate::error::{LayerError, Result};
use crate::failpoints::io_failpoint;
use crate::io::{IoEngine, IoFile};
use crate::name::temp_file_name;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How often creation retries with a new nonce when a temp name is taken.
const CREATE_ATTEMPTS: u32 = 8;

/// A file being written under a temp name. Dropping it removes the temp file.
#[must_use = "a temp file is removed when dropped"]
#[derive(Debug)]
pub struct TempFile {
    engine: Arc<dyn IoEngine>,
    file: Option<Arc<dyn IoFile>>,
    temp_path: PathBuf,
    final_path: PathBuf,
    /// Whether the temp name still exists and must be removed on drop.
    armed: bool,
}

fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

impl TempFile {
    /// Creates `<final name>.<nonce>.___temp` with `O_EXCL` in the directory of `final_path`.
    pub fn create(engine: &Arc<dyn IoEngine>, final_path: &Path) -> Result<TempFile> {
        let dir = final_path.parent().unwrap_or(Path::new("."));
        let name = final_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| {
                panic!("final path {} has no UTF-8 file name", final_path.display())
            });
        let mut attempt = 0;
        loop {
            let temp_path = dir.join(temp_file_name(name, nonce()));
            match engine.create_exclusive(&temp_path) {
                Ok(file) => {
                    return Ok(TempFile {
                        engine: engine.clone(),
                        file: Some(Arc::from(file)),
                        temp_path,
                        final_path: final_path.to_path_buf(),
                        armed: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < CREATE_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(LayerError::io("create", temp_path, e)),
            }
        }
    }

    /// The open file.
    #[expect(
        clippy::expect_used,
        reason = "only consuming methods take the file, and they consume the TempFile"
    )]
    pub fn file(&self) -> &dyn IoFile {
        self.file
            .as_deref()
            .expect("file is open until the TempFile is consumed")
    }

    /// A shared handle to the open file, for a helper thread that writes it. The helper must
    /// be done with it before the file is synced.
    #[expect(
        clippy::expect_used,
        reason = "only consuming methods take the file, and they consume the TempFile"
    )]
    pub fn shared_file(&self) -> Arc<dyn IoFile> {
        self.file
            .clone()
            .expect("file is open until the TempFile is consumed")
    }

    /// The temp path.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// The name this file will be published under.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Writes `buf` at `offset`, naming the temp file and offset on error.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file()
            .write_all_at(buf, offset)
            .map_err(|source| LayerError::Io {
                op: "write",
                path: self.temp_path.clone(),
                offset: Some(offset),
                source,
            })
    }

    /// Fsyncs the file (failpoint `layer-fsync`). On error the temp file is removed: after a
    /// failed fsync its contents are unknown and it must never be published (I2).
    pub fn sync(self) -> Result<SyncedFile> {
        let res = fsync_file(self.file());
        match res {
            Ok(()) => Ok(SyncedFile(self)),
            Err(source) => Err(LayerError::io("fsync", self.temp_path.clone(), source)),
            // `self` is dropped here on error, which removes the temp file.
        }
    }

    /// Changes the name the file will be published under, inside the same directory (a writer
    /// learns its final key range only when it finishes).
    pub fn retarget(&mut self, final_path: &Path) {
        assert_eq!(
            final_path.parent(),
            self.final_path.parent(),
            "a temp file is published in its own directory"
        );
        self.final_path = final_path.to_path_buf();
    }

    pub(super) fn engine(&self) -> &Arc<dyn IoEngine> {
        &self.engine
    }

    /// Called once the temp name no longer exists (renamed or unlinked).
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Called when the file is back under its temp name.
    pub(super) fn rearm(&mut self) {
        self.armed = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if self.armed {
            match self.engine.unlink(&self.temp_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Start-up reconciliation removes every leftover `.___temp` file.
                Err(e) => tracing::warn!(path = %self.temp_path.display(), "remove temp file: {e}"),
            }
        }
    }
}

/// A temp file whose contents are durable: the only thing [`publish`](super::publish) accepts.
/// Dropping it removes the temp file.
#[must_use = "a synced file is removed when dropped unless published"]
#[derive(Debug)]
pub struct SyncedFile(pub(super) TempFile);

impl SyncedFile {
    /// The name this file will be published under.
    pub fn final_path(&self) -> &Path {
        self.0.final_path()
    }

    /// The temp path.
    pub fn temp_path(&self) -> &Path {
        self.0.temp_path()
    }
}

/// The file's fsync, behind failpoint `layer-fsync`.
fn fsync_file(file: &dyn IoFile) -> io::Result<()> {
    io_failpoint!("layer-fsync");
    file.fsync()
}
