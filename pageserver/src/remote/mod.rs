//! Remote storage: a small trait of our own (so that tests can wrap it), its backends, and the
//! rules every remote write follows (I4).
//!
//! Every object is written once, with a create-only put. A put that answers "already exists"
//! is followed by a read-back: identical bytes are success (our own earlier attempt, e.g. a
//! retry after a timeout that had in fact landed), different bytes are a [`Conflict`] error
//! and a metric. Nothing is ever overwritten, so a request that lands late cannot replace
//! anything.

pub mod faults;
pub mod generation;
pub mod local;
pub mod s3;
pub mod upload_queue;

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
    let outcome = match storage.put_if_absent(key, data.clone()).await {
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
    let (ours_crc, existing_crc) = (crc32c::crc32c(&data), crc32c::crc32c(&existing));
    if existing == data {
        METRICS
            .remote_ops
            .with_label_values(&[kind, "identical"])
            .inc();
        return Ok(Created::Identical);
    }
    METRICS
        .remote_ops
        .with_label_values(&[kind, "conflict"])
        .inc();
    tracing::error!(key, "create-only put found different bytes");
    Err(Conflict {
        key: key.to_string(),
        existing: existing.len(),
        existing_crc,
        ours: data.len(),
        ours_crc,
    }
    .into())
}
