//! The one install sequence (I6, I10): every change to a timeline's layers goes through
//! [`Timeline::install`].
//!
//! Under the `layers` write lock: the change is made from the layer map as it is now and
//! applied to it ([`LayerMap::apply`], which refuses stale inputs, duplicates and anything that
//! breaks the structural invariant, changing nothing); a flushed in-memory layer leaves; then
//! the uploads the change needs are queued in order: new layers not yet in remote storage, the
//! index derived from the map, and the deletion of the removed layers' objects, which the
//! queue runs only after that index is uploaded (I5, I8). After the lock, the local files of
//! removed layers are deleted durably. A broken timeline (its lock poisoned, or a panic in one
//! of its jobs) installs nothing. A stopped timeline installs nothing: its successor may
//! own the directory and the remote index by now.

use super::inmemory::InMemoryLayer;
use super::layer_map::{Applied, Change};
use super::publish::remove_files;
use super::{LayerMap, Timeline};
use crate::remote::upload_queue::UploadOp;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The timeline stopped (reset, detach, shutdown): nothing was installed.
#[derive(Debug, thiserror::Error)]
#[error("the timeline is stopping; nothing was installed")]
pub struct Stopped;

impl Timeline {
    /// Makes a change from the layer map as it is now (`make` may decide there is none) and
    /// installs it; `flushed` is the frozen layer a [`Change::Flush`] came from. Errors are
    /// [`Stopped`] or a [`layer_map::ApplyError`](super::layer_map::ApplyError), inside
    /// `anyhow`.
    pub(super) fn install(
        &self,
        make: impl FnOnce(&LayerMap) -> Option<Change>,
        flushed: Option<&Arc<InMemoryLayer>>,
    ) -> anyhow::Result<Option<Applied>> {
        let applied = {
            let mut l = self.layers_write();
            if self.shut_down.load(Ordering::SeqCst) {
                return Err(Stopped.into());
            }
            if let Some(reason) = self.broken_reason() {
                anyhow::bail!("the timeline is broken: {reason}");
            }
            // Under the lock: `panic` here is a bug in a change, as production had one
            // (a panic while the layer map was being changed); `return` is not supported.
            fail::fail_point!("layer-map-install");
            let Some(change) = make(&l.map) else {
                return Ok(None);
            };
            let applied = l.map.apply(change)?;
            if let Some(frozen) = flushed {
                let front = l
                    .frozen
                    .pop_front()
                    .expect("only the flush removes frozen layers");
                assert!(
                    Arc::ptr_eq(&front, frozen),
                    "frozen layers are flushed in order"
                );
            }
            let state = self.uploads.state();
            for h in &applied.added {
                if !state.is_uploaded(&h.file_name()) {
                    self.uploads.push(UploadOp::Layer {
                        file_name: h.file_name(),
                        path: h.path.clone(),
                        meta: h.meta,
                    });
                }
            }
            self.queue_index_upload(&applied.index);
            if !applied.removed.is_empty() {
                self.uploads.push(UploadOp::Delete {
                    layers: applied.removed.iter().map(|h| h.file_name()).collect(),
                });
            }
            applied
        };
        if flushed.is_some() {
            self.frozen_changed.notify_waiters();
        }
        if !applied.removed.is_empty() {
            let paths: Vec<PathBuf> = applied.removed.iter().map(|h| h.path.clone()).collect();
            remove_files(&self.src.engine, &self.dir, &paths, &self.shut_down);
        }
        Ok(Some(applied))
    }

    /// Installs `change` as a job would (tests only): lets a simulation replay or forge a
    /// change, to check that the layer map refuses what it must and changes nothing then.
    #[cfg(feature = "testing")]
    pub fn install_for_test(&self, change: Change) -> anyhow::Result<Option<Applied>> {
        self.install(|_| Some(change), None)
    }
}
