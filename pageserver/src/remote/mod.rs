//! Remote storage: a small trait of our own (so that tests can wrap it), its backends, and the
//! rules every remote write follows (I4).
//!
//! Every object is written once, with a create-only put. A put that answers "already exists"
//! is followed by a read-back: identical bytes are success (our own earlier attempt, e.g. a
//! retry after a timeout that had in fact landed), different bytes are a [`Conflict`] error
//! and a metric. Nothing is ever overwritten, so a request that lands late cannot replace
//! anything.

pub mod faults;
pub mod file_source;
pub mod generation;
pub mod local;
pub mod s3;
pub mod upload_queue;

use file_source::FileSource;

use crate::metrics::METRICS;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::fmt;

/// What a create-only put found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was created by this call.
    Created,
    /// An object of that name already existed; nothing was written.
    AlreadyExists,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The operations this server needs from an object store. Keys are `/`-separated relative
/// paths (see `index_part::names`).
pub trait RemoteStorage: Send + Sync + fmt::Debug {
    /// Creates `key` with `data` unless it exists (`If-None-Match: *`).
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>>;
    /// Creates `key` from a local file unless it exists, with the bytes checked against the
    /// file's recorded size and checksum before the object can become visible (a mismatch is
    /// an error and nothing is written). The default reads the file whole and calls
    /// [`RemoteStorage::put_if_absent`]; a backend that can write as it reads overrides it.
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        file: &'a FileSource,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(async move {
            let chunks = file.read_all().await?;
            let data: Vec<u8> = chunks.concat();
            self.put_if_absent(key, Bytes::from(data)).await
        })
    }
    /// Reads `key`; `None` if it does not exist.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>>;
    /// Every object whose key starts with `prefix`, with its size, sorted by key.
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>>;
    /// Every key that starts with `prefix`, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let listed = self.list_sized(prefix).await?;
            Ok(listed.into_iter().map(|o| o.key).collect())
        })
    }
    /// Deletes `key` (no error if it is already gone).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Removes what interrupted puts left under `prefix` (temp files of the local backend;
    /// nothing on S3, where a put is all or nothing); how many. A put still running elsewhere
    /// then fails and is retried, never half-visible.
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>>;
}

/// An object exists with other bytes than a create-only put meant to write.
#[derive(Debug, thiserror::Error)]
#[error(
    "object {key} already exists with different contents ({existing} bytes, crc32c {existing_crc:08x}; ours {ours} bytes, crc32c {ours_crc:08x})"
)]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// Size of the stored object.
    pub existing: usize,
    /// CRC32C of the stored object.
    pub existing_crc: u32,
    /// Size of what we meant to write.
    pub ours: usize,
    /// CRC32C of what we meant to write.
    pub ours_crc: u32,
}

/// How a [`create_once`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Written by this call.
    New,
    /// Already there with the same bytes.
    Identical,
}

/// Writes `key` once (I4): create-only put, and on "already exists" a read-back that must
/// find the same bytes. `kind` labels the metric.
pub async fn create_once(
    storage: &dyn RemoteStorage,
    kind: &str,
    key: &str,
    data: Bytes,
) -> anyhow::Result<Created> {
    let ours = (data.len(), crc32c::crc32c(&data));
    let put = storage.put_if_absent(key, data.clone());
    create_once_with(storage, kind, key, put, ours, |existing| {
        Ok(*existing == data)
    })
    .await
}

/// [`create_once`] from a local file, read in chunks and checked against its recorded size and
/// checksum (a layer upload): the file is never held whole in memory, except by a backend that
/// needs the body in one piece (S3: a create-only put is one request).
pub async fn create_once_file(
    storage: &dyn RemoteStorage,
    kind: &str,
    key: &str,
    file: &FileSource,
) -> anyhow::Result<Created> {
    let ours = (
        usize::try_from(file.size).unwrap_or(usize::MAX),
        file.checksum,
    );
    let put = storage.put_file_if_absent(key, file);
    create_once_with(storage, kind, key, put, ours, |existing| {
        file.same_as(existing)
    })
    .await
}

/// The rule of [`create_once`]: `put` is the create-only put; on "already exists" `same` judges
/// the stored bytes. `ours` is the size and CRC32C of what we meant to write, for the error.
async fn create_once_with(
    storage: &dyn RemoteStorage,
    kind: &str,
    key: &str,
    put: BoxFuture<'_, anyhow::Result<PutOutcome>>,
    ours: (usize, u32),
    same: impl FnOnce(&Bytes) -> anyhow::Result<bool>,
) -> anyhow::Result<Created> {
    let outcome = match put.await {
        Ok(o) => o,
        Err(e) => {
            METRICS.remote_ops.with_label_values(&[kind, "error"]).inc();
            return Err(e);
        }
    };
    if outcome == PutOutcome::Created {
        METRICS
            .remote_ops
            .with_label_values(&[kind, "created"])
            .inc();
        return Ok(Created::New);
    }
    let existing = match storage.get(key).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            METRICS.remote_ops.with_label_values(&[kind, "error"]).inc();
            anyhow::bail!("object {key} reported as existing but cannot be read back");
        }
        Err(e) => {
            METRICS.remote_ops.with_label_values(&[kind, "error"]).inc();
            return Err(e.context(format!("read back {key}")));
        }
    };
    match same(&existing) {
        Ok(true) => {
            METRICS
                .remote_ops
                .with_label_values(&[kind, "identical"])
                .inc();
            return Ok(Created::Identical);
        }
        Ok(false) => {}
        Err(e) => {
            METRICS.remote_ops.with_label_values(&[kind, "error"]).inc();
            return Err(e.context(format!("compare {key} with what we meant to write")));
        }
    }
    METRICS
        .remote_ops
        .with_label_values(&[kind, "conflict"])
        .inc();
    tracing::error!(key, "create-only put found different bytes");
    Err(Conflict {
        key: key.to_string(),
        existing: existing.len(),
        existing_crc: crc32c::crc32c(&existing),
        ours: ours.0,
        ours_crc: ours.1,
    }
    .into())
}
