//! How a run's remote storage is wired: as in production, or one of the broken orders the
//! explorer must catch.

use super::*;
use futures::future::BoxFuture;

/// How a run's remote storage is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Upload {
    /// As in production.
    Correct,
    /// Broken: a layer object is written only after the next index object (the index is
    /// uploaded before its layers).
    IndexBeforeLayers,
    /// Broken: the layer objects an index drops are deleted before that index is written.
    DeletesBeforeIndex,
}

/// Holds layer puts back until the next index put has landed.
#[derive(Debug)]
pub(super) struct IndexFirst {
    pub(super) inner: Arc<dyn RemoteStorage>,
    pub(super) held: Mutex<Vec<(String, Bytes)>>,
    /// Layer puts landed after an index put they preceded.
    pub(super) hits: Arc<AtomicU64>,
}

impl RemoteStorage for IndexFirst {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(async move {
            if key.contains("index_part.json") {
                let outcome = self.inner.put_if_absent(key, data).await?;
                let held = std::mem::take(&mut *self.held.lock().unwrap());
                for (k, d) in held {
                    self.inner.put_if_absent(&k, d).await?;
                    self.hits.fetch_add(1, Ordering::SeqCst);
                }
                Ok(outcome)
            } else if key.contains("/timelines/") {
                self.held.lock().unwrap().push((key.to_string(), data));
                Ok(PutOutcome::Created)
            } else {
                self.inner.put_if_absent(key, data).await
            }
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        self.inner.get(key)
    }
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<pageserver::remote::ListedObject>>> {
        self.inner.list_sized(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.delete(key)
    }
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.remove_leftovers(prefix)
    }
}

/// Before writing an index object, deletes the layer objects the previous index of the same
/// timeline referenced and this one does not (the upload queue's own deletions then find
/// nothing).
#[derive(Debug)]
pub(super) struct DeletesFirst {
    pub(super) inner: Arc<dyn RemoteStorage>,
    pub(super) referenced: Mutex<HashMap<String, HashSet<String>>>,
    /// Layer objects deleted before the index that drops them.
    pub(super) hits: Arc<AtomicU64>,
}

impl RemoteStorage for DeletesFirst {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(async move {
            let Some((prefix, object)) = key.rsplit_once('/') else {
                return self.inner.put_if_absent(key, data).await;
            };
            let Ok(name) = object.parse() else {
                return self.inner.put_if_absent(key, data).await;
            };
            let index = IndexPart::from_json_object(&data, name, ParseMode::Strict)?;
            let now: HashSet<String> = index
                .layers
                .iter()
                .map(|(n, m)| IndexPart::file_name(n, m).to_string())
                .collect();
            let before = self
                .referenced
                .lock()
                .unwrap()
                .insert(prefix.to_string(), now.clone())
                .unwrap_or_default();
            for gone in before.difference(&now) {
                self.inner.delete(&format!("{prefix}/{gone}")).await?;
                self.hits.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.put_if_absent(key, data).await
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        self.inner.get(key)
    }
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<pageserver::remote::ListedObject>>> {
        self.inner.list_sized(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.delete(key)
    }
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.remove_leftovers(prefix)
    }
}
