//! The S3 backend: any S3-compatible endpoint through `object_store`'s `AmazonS3`.
//!
//! Create-only puts are `PutMode::Create` (`If-None-Match: *`); the server proves at start that
//! the endpoint honours it. Credentials come from `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`; a plain `http://` endpoint is accepted (meant for loopback). Every
//! key is placed under the configured prefix.

use super::file_source::FileSource;
use super::{ListedObject, PutOutcome, RemoteStorage};
use anyhow::Context;
use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;

/// Objects in an S3 bucket, under a prefix.
#[derive(Debug, Clone)]
pub struct S3 {
    store: Arc<AmazonS3>,
    prefix: String,
}

impl S3 {
    /// Connects (lazily) to `bucket` at `endpoint`, with `credentials` (key id, secret) or
    /// those of the environment.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        prefix: &str,
        credentials: Option<(String, String)>,
    ) -> anyhow::Result<S3> {
        let mut builder = AmazonS3Builder::from_env();
        if let Some((id, secret)) = credentials {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let store = builder
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region(region)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .with_context(|| format!("configure S3 bucket {bucket} at {endpoint}"))?;
        let prefix = prefix.trim_matches('/').to_string();
        Ok(S3 {
            store: Arc::new(store),
            prefix,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn key_of(&self, path: &ObjectPath) -> String {
        let p = path.as_ref();
        if self.prefix.is_empty() {
            p.to_string()
        } else {
            p.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(p)
                .to_string()
        }
    }
}

impl S3 {
    async fn put_payload(&self, key: &str, payload: PutPayload) -> anyhow::Result<PutOutcome> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&self.path(key), payload, opts).await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(anyhow::Error::new(e).context(format!("put {key}"))),
        }
    }
}

impl RemoteStorage for S3 {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(self.put_payload(key, PutPayload::from_bytes(data)))
    }
    /// A create-only put is one request (object_store's multipart uploads have no create-only
    /// mode), so the body is gathered first; as the file's chunks, never copied into one
    /// buffer. The upload queue bounds the bytes of layer uploads in flight.
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        file: &'a FileSource,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(async move {
            let chunks = file.read_all().await?;
            self.put_payload(key, chunks.into_iter().collect()).await
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        Box::pin(async move {
            match self.store.get(&self.path(key)).await {
                Ok(r) => Ok(Some(
                    r.bytes().await.with_context(|| format!("read {key}"))?,
                )),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(anyhow::Error::new(e).context(format!("get {key}"))),
            }
        })
    }

    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>> {
        Box::pin(async move {
            // object_store lists by directory: list the deepest complete directory, filter.
            let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let dir_path = match (self.prefix.is_empty(), dir.is_empty()) {
                (true, true) => None,
                (true, false) => Some(ObjectPath::from(dir)),
                (false, true) => Some(ObjectPath::from(self.prefix.as_str())),
                (false, false) => Some(ObjectPath::from(format!("{}/{dir}", self.prefix))),
            };
            let metas: Vec<object_store::ObjectMeta> = self
                .store
                .list(dir_path.as_ref())
                .try_collect()
                .await
                .with_context(|| format!("list {prefix}"))?;
            let mut listed: Vec<ListedObject> = metas
                .iter()
                .map(|m| ListedObject {
                    key: self.key_of(&m.location),
                    size: m.size,
                })
                .filter(|o| o.key.starts_with(prefix))
                .collect();
            listed.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(listed)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match self.store.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(anyhow::Error::new(e).context(format!("delete {key}"))),
            }
        })
    }
    fn remove_leftovers<'a>(&'a self, _prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        // Single-part puts: an interrupted one leaves nothing.
        Box::pin(async { Ok(0) })
    }
}
