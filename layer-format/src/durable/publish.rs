//! Publishing synced temp files under their final names without ever overwriting.

use super::temp::{SyncedFile, TempFile};
use crate::error::{LayerError, Result};
use crate::failpoints::io_failpoint;
use std::io;
use std::path::{Path, PathBuf};

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Moves the temp file to its final name without replacing anything.
fn rename_into_place(tf: &mut TempFile) -> Result<()> {
    let engine = tf.engine().clone();
    let (temp, target) = (tf.temp_path().to_path_buf(), tf.final_path().to_path_buf());
    match engine.rename_noreplace(&temp, &target) {
        Ok(()) => {
            tf.disarm();
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(LayerError::AlreadyExists { path: target })
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            // The filesystem has no RENAME_NOREPLACE. A hard link also refuses to replace.
            match engine.link(&temp, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(LayerError::AlreadyExists { path: target });
                }
                Err(e) => return Err(LayerError::io("link", target, e)),
            }
            match engine.unlink(&temp) {
                Ok(()) => tf.disarm(),
                // The file is published; the second name stays armed and `Drop` retries it.
                Err(e) => {
                    tracing::warn!(path = %temp.display(), "remove temp name after link: {e}")
                }
            }
            Ok(())
        }
        Err(e) => Err(LayerError::io("rename", temp, e)),
    }
}

/// The steps after the rename(s): failpoint `layer-publish-after-rename`, then the directory
/// fsync that makes the new names durable.
fn sync_dir_after_rename(tf: &TempFile, dir: &Path) -> Result<()> {
    (|| -> io::Result<()> {
        io_failpoint!("layer-publish-after-rename");
        tf.engine().fsync_dir(dir)
    })()
    .map_err(|e| LayerError::io("fsync directory", dir, e))
}

/// Removes names this call published, after a later step failed. Best effort: a name that
/// cannot be removed is logged and left to start-up reconciliation (the file is complete).
fn unpublish(tf: &TempFile, paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = tf.engine().unlink(path) {
            tracing::warn!(path = %path.display(), "remove published file after failed publish: {e}");
        }
    }
    if let Err(e) = tf.engine().fsync_dir(parent(tf.final_path())) {
        tracing::warn!("fsync directory after removing published files: {e}");
    }
}

/// Publishes one synced file under its final name and fsyncs the directory.
///
/// On `AlreadyExists` neither file is changed and the temp file is removed. If the directory
/// fsync fails, the new name is removed again and the error returned.
pub fn publish(file: SyncedFile) -> Result<PathBuf> {
    let mut tf = file.0;
    rename_into_place(&mut tf)?;
    let target = tf.final_path().to_path_buf();
    if let Err(e) = sync_dir_after_rename(&tf, parent(&target)) {
        unpublish(&tf, std::slice::from_ref(&target));
        return Err(e);
    }
    Ok(target)
}

/// A batch that was not published. Every name the batch had published is removed again.
#[derive(Debug, thiserror::Error)]
#[error("publish batch: {error}")]
pub struct BatchPublishError {
    /// What failed; [`LayerError::AlreadyExists`] names the taken final name.
    #[source]
    pub error: LayerError,
    /// Files of the batch still under their temp names, in batch order, starting with the one
    /// whose rename failed: the caller may move a leftover aside and publish them again. Empty
    /// if the failure came after all the renames (the files are then gone).
    pub unpublished: Vec<SyncedFile>,
}

/// Publishes files of one directory as a batch: one rename each, then one directory fsync.
///
/// All or nothing: if any rename fails, the renames already done are undone and the files not
/// yet renamed are handed back in [`BatchPublishError::unpublished`], still synced temp files.
pub fn publish_batch(files: Vec<SyncedFile>) -> Result<Vec<PathBuf>, BatchPublishError> {
    let Some(first) = files.first() else {
        return Ok(Vec::new());
    };
    let dir = parent(first.final_path()).to_path_buf();
    assert!(
        files.iter().all(|f| parent(f.final_path()) == dir),
        "a batch publishes into one directory"
    );
    let mut published = Vec::with_capacity(files.len());
    let mut done: Vec<TempFile> = Vec::with_capacity(files.len());
    let mut rest = files.into_iter();
    while let Some(SyncedFile(mut tf)) = rest.next() {
        if let Err(error) = rename_into_place(&mut tf) {
            unpublish(&tf, &published);
            let mut unpublished = vec![SyncedFile(tf)];
            unpublished.extend(rest);
            return Err(BatchPublishError { error, unpublished });
        }
        published.push(tf.final_path().to_path_buf());
        done.push(tf);
    }
    let last = done.last().expect("batch is not empty");
    if let Err(error) = sync_dir_after_rename(last, &dir) {
        unpublish(last, &published);
        return Err(BatchPublishError {
            error,
            unpublished: Vec::new(),
        });
    }
    Ok(published)
}
