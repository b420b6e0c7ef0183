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
    fsync_dir_after_rename(tf, dir).map_err(|e| LayerError::io("fsync directory", dir, e))
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

/// A batch that was not published. Nothing of the batch is left under a final name.
#[derive(Debug, thiserror::Error)]
#[error("publish batch: {error}")]
pub struct BatchPublishError {
    /// What failed; [`LayerError::AlreadyExists`] names the taken final name.
    #[source]
    pub error: LayerError,
    /// The files of the batch, in batch order, back under their temp names and still synced,
    /// when the failure was a rename: the caller may move a leftover aside and publish them
    /// again. Empty if the failure came after the renames (the directory fsync): the files
    /// were removed, since the state of a directory whose fsync failed is unknown.
    pub unpublished: Vec<SyncedFile>,
}

/// Moves a file this batch just published back to its temp name, so that the batch can be
/// handed back whole. If that fails the file is removed instead, and `false` returned.
fn move_back(tf: &mut TempFile) -> bool {
    let engine = tf.engine().clone();
    let (temp, target) = (tf.temp_path().to_path_buf(), tf.final_path().to_path_buf());
    let res = match engine.rename_noreplace(&target, &temp) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => engine
            .link(&target, &temp)
            .and_then(|()| engine.unlink(&target)),
        res => res,
    };
    match res {
        Ok(()) => {
            tf.rearm();
            true
        }
        Err(e) => {
            tracing::warn!(path = %target.display(), "move published file back to its temp name: {e}");
            if let Err(e) = engine.unlink(&target) {
                tracing::warn!(path = %target.display(), "remove published file after failed batch: {e}");
            }
            false
        }
    }
}

/// Publishes files of one directory as a batch: one rename each, then one directory fsync.
///
/// All or nothing: if a rename fails, the files already renamed are moved back to their temp
/// names and the whole batch is handed back in [`BatchPublishError::unpublished`].
pub fn publish_batch(files: Vec<SyncedFile>) -> Result<Vec<PathBuf>, BatchPublishError> {
    let Some(first) = files.first() else {
        return Ok(Vec::new());
    };
    let dir = parent(first.final_path()).to_path_buf();
    assert!(
        files.iter().all(|f| parent(f.final_path()) == dir),
        "a batch publishes into one directory"
    );
    let mut done: Vec<TempFile> = Vec::with_capacity(files.len());
    let mut rest = files.into_iter();
    while let Some(SyncedFile(mut tf)) = rest.next() {
        if let Err(error) = rename_into_place(&mut tf) {
            let mut unpublished = Vec::with_capacity(done.len() + 1 + rest.len());
            for mut d in done {
                if move_back(&mut d) {
                    unpublished.push(SyncedFile(d));
                }
            }
            unpublished.push(SyncedFile(tf));
            unpublished.extend(rest);
            if let Err(e) = engine_of(&unpublished).fsync_dir(&dir) {
                tracing::warn!("fsync directory after undoing a batch: {e}");
            }
            return Err(BatchPublishError { error, unpublished });
        }
        done.push(tf);
    }
    let published: Vec<PathBuf> = done.iter().map(|t| t.final_path().to_path_buf()).collect();
    // `done` holds every file of the batch, and the batch has a first one.
    let Some(last) = done.last() else {
        return Ok(published);
    };
    if let Err(error) = sync_dir_after_rename(last, &dir) {
        unpublish(last, &published);
        return Err(BatchPublishError {
            error,
            unpublished: Vec::new(),
        });
    }
    Ok(published)
}

fn engine_of(files: &[SyncedFile]) -> &std::sync::Arc<dyn crate::io::IoEngine> {
    files[0].0.engine()
}

/// The directory fsync after the renames, behind failpoint `layer-publish-after-rename`.
fn fsync_dir_after_rename(tf: &TempFile, dir: &Path) -> io::Result<()> {
    io_failpoint!("layer-publish-after-rename");
    tf.engine().fsync_dir(dir)
}
