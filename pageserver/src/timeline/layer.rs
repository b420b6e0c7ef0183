//! A layer of the layer map: what the index records of it, and its local file, opened (and,
//! if it is missing or damaged locally, downloaded) on first use.
//!
//! A file that reconciliation kept passed the size check; its whole-file checksum is checked
//! when it is first opened. One that fails is removed and fetched again from remote storage,
//! where every object was checked before upload (I3). Downloads are published locally with
//! the same durable primitive as flushes.

use crate::metrics::METRICS;
use crate::remote::RemoteStorage;
use anyhow::{Context, bail};
use index_part::LayerMetadata;
use index_part::names::{LayerFileName, LayerName, TenantId, TimelineId, layer_object_key};
use layer_format::durable::{TempFile, publish};
use layer_format::io::IoEngine;
use layer_format::{LayerError, LayerReader};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A layer of the layer map.
#[derive(Debug)]
pub struct LayerHandle {
    /// Its name.
    pub name: LayerName,
    /// What the index records of it.
    pub meta: LayerMetadata,
    /// Its local path.
    pub path: PathBuf,
    /// Set once, on the first read, and never cleared while the handle lives: reads after the
    /// first take it without a lock.
    reader: OnceCell<Arc<LayerReader>>,
}

/// What a layer needs to find its file.
#[derive(Debug, Clone)]
pub struct LayerSource {
    /// The engine.
    pub engine: Arc<dyn IoEngine>,
    /// Remote storage, for downloads.
    pub storage: Arc<dyn RemoteStorage>,
    /// The tenant.
    pub tenant: TenantId,
    /// The timeline.
    pub timeline: TimelineId,
}

impl LayerHandle {
    /// A layer whose file may or may not be present locally.
    pub fn new(name: LayerName, meta: LayerMetadata, dir: &std::path::Path) -> LayerHandle {
        let file = LayerFileName {
            layer: name.clone(),
            generation: meta.generation,
        };
        LayerHandle {
            path: dir.join(file.to_string()),
            name,
            meta,
            reader: OnceCell::new(),
        }
    }

    /// A layer this process just wrote and opened.
    pub fn with_reader(
        name: LayerName,
        meta: LayerMetadata,
        path: PathBuf,
        reader: LayerReader,
    ) -> LayerHandle {
        LayerHandle {
            name,
            meta,
            path,
            reader: OnceCell::new_with(Some(Arc::new(reader))),
        }
    }

    /// The file and object name.
    pub fn file_name(&self) -> LayerFileName {
        LayerFileName {
            layer: self.name.clone(),
            generation: self.meta.generation,
        }
    }

    /// The open reader, opening, checking or downloading the file first if needed.
    pub async fn reader(&self, src: &LayerSource) -> anyhow::Result<Arc<LayerReader>> {
        // Concurrent first reads wait for one opening; a failed opening leaves the cell empty
        // for the next read to try again.
        let reader = self
            .reader
            .get_or_try_init(|| async {
                let reader = match self.open_checked(src).await? {
                    Some(r) => r,
                    None => {
                        self.download(src).await?;
                        self.open_checked(src)
                            .await?
                            .context("downloaded layer failed its checks")?
                    }
                };
                anyhow::Ok(Arc::new(reader))
            })
            .await?;
        Ok(reader.clone())
    }

    /// Opens the local file if it is present and matches size and checksum; removes it if not.
    async fn open_checked(&self, src: &LayerSource) -> anyhow::Result<Option<LayerReader>> {
        let (engine, path, meta) = (src.engine.clone(), self.path.clone(), self.meta);
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<LayerReader>> {
            let reader = match LayerReader::open_cached(&engine, &path, crate::page_cache::get().clone()) {
                Ok(r) => r,
                Err(LayerError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if e.is_corruption() => {
                    tracing::warn!(path = %path.display(), "local layer is corrupt, fetching it again: {e}");
                    remove(&engine, &path)?;
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let checksum = reader.file_checksum()?;
            if !meta.matches(reader.summary().file_size_bytes, checksum) {
                tracing::warn!(path = %path.display(), "local layer does not match the index (size or checksum), fetching it again");
                METRICS.reconcile_actions.with_label_values(&["remove_mismatched"]).inc();
                drop(reader);
                remove(&engine, &path)?;
                return Ok(None);
            }
            Ok(Some(reader))
        })
        .await
        .context("open task panicked")?
    }

    async fn download(&self, src: &LayerSource) -> anyhow::Result<()> {
        let key = layer_object_key(src.tenant, src.timeline, &self.file_name());
        let data = match src.storage.get(&key).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["download_layer", "error"])
                    .inc();
                bail!("layer object {key} is missing from remote storage");
            }
            Err(e) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["download_layer", "error"])
                    .inc();
                return Err(e.context(format!("download {key}")));
            }
        };
        if !self.meta.matches(data.len() as u64, crc32c::crc32c(&data)) {
            METRICS
                .remote_ops
                .with_label_values(&["download_layer", "error"])
                .inc();
            bail!("layer object {key} does not match the index (size or checksum)");
        }
        let (engine, path) = (src.engine.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let temp = TempFile::create(&engine, &path)?;
            temp.write_all_at(&data, 0)?;
            match publish(temp.sync()?) {
                Ok(_) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("publish downloaded {}", path.display())),
            }
        })
        .await
        .context("download task panicked")??;
        METRICS
            .remote_ops
            .with_label_values(&["download_layer", "ok"])
            .inc();
        Ok(())
    }
}

fn remove(engine: &Arc<dyn IoEngine>, path: &std::path::Path) -> anyhow::Result<()> {
    layer_format::durable::remove_durable(&**engine, &[path.to_path_buf()])
        .map_err(|(p, e)| anyhow::Error::new(e).context(format!("remove {}", p.display())))
}
