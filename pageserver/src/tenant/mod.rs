//! Tenants: which are attached here, with which generation, and their timelines.
//!
//! Each attach (and each start of the process, for every tenant with a local directory)
//! claims a new generation before anything else, then lists the timelines' index objects and
//! loads each timeline from its authoritative index (I3, I8). Create, attach and detach are
//! serialized by one lock.

use crate::config::PageServerConf;
use crate::remote::RemoteStorage;
use crate::remote::generation::{claim_generation, highest_generation};
use crate::timeline::Timeline;
use anyhow::Context;
use index_part::names::{
    Generation, IndexObjectName, TenantId, TimelineId, local_timeline_dir, tenant_prefix,
};
use index_part::{IndexPart, ParseMode, select_authoritative};
use layer_format::io::IoEngine;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// A tenant attached to this server.
#[derive(Debug)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// This attachment's generation.
    pub generation: Generation,
    timelines: Mutex<BTreeMap<TimelineId, Arc<Timeline>>>,
}

/// What `GET /v1/tenant/{id}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct TenantInfo {
    /// The tenant.
    pub tenant_id: String,
    /// This attachment's generation.
    pub generation: u32,
    /// `Active`, or `Stale` once a newer attachment has been seen.
    pub state: &'static str,
    /// Its timelines.
    pub timelines: Vec<String>,
}

impl Tenant {
    /// A timeline.
    pub fn timeline(&self, id: TimelineId) -> Option<Arc<Timeline>> {
        self.timelines
            .lock()
            .expect("not poisoned")
            .get(&id)
            .cloned()
    }

    /// The tenant's info.
    pub fn info(&self) -> TenantInfo {
        let tls = self.timelines.lock().expect("not poisoned");
        let stale = tls.values().any(|t| t.info().stale);
        TenantInfo {
            tenant_id: self.id.to_string(),
            generation: self.generation.0,
            state: if stale { "Stale" } else { "Active" },
            timelines: tls.keys().map(|k| k.to_string()).collect(),
        }
    }

    fn shutdown(&self) {
        for t in self.timelines.lock().expect("not poisoned").values() {
            t.shutdown();
        }
    }

    async fn stop(&self) {
        let timelines: Vec<Arc<Timeline>> = self
            .timelines
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        for t in timelines {
            t.stop().await;
        }
    }
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// Unknown tenant or timeline (404).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Anything else (500).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Every tenant of this server.
#[derive(Debug)]
pub struct TenantManager {
    conf: Arc<PageServerConf>,
    engine: Arc<dyn IoEngine>,
    storage: Arc<dyn RemoteStorage>,
    tenants: RwLock<HashMap<TenantId, Arc<Tenant>>>,
    ops: tokio::sync::Mutex<()>,
}

impl TenantManager {
    /// Attaches every tenant that has a local directory, each with a new generation.
    pub async fn start(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
    ) -> anyhow::Result<Arc<TenantManager>> {
        let mgr = Arc::new(TenantManager {
            conf,
            engine,
            storage,
            tenants: RwLock::default(),
            ops: tokio::sync::Mutex::new(()),
        });
        let dir = mgr.tenants_dir();
        layer_format::durable::create_dir_all_durable(&*mgr.engine, &dir)
            .with_context(|| format!("create {}", dir.display()))?;
        for name in mgr
            .engine
            .list_dir(&dir)
            .with_context(|| format!("list {}", dir.display()))?
        {
            let Some(id) = name.to_str().and_then(|n| n.parse::<TenantId>().ok()) else {
                tracing::warn!(name = ?name, dir = %dir.display(), "ignoring an entry that is not a tenant id");
                continue;
            };
            let tenant = mgr
                .attach_inner(id)
                .await
                .with_context(|| format!("attach tenant {id} at start-up"))?;
            mgr.tenants
                .write()
                .expect("not poisoned")
                .insert(id, tenant);
        }
        Ok(mgr)
    }

    fn tenants_dir(&self) -> PathBuf {
        self.conf.workdir.join("tenants")
    }

    /// A tenant.
    pub fn get(&self, id: TenantId) -> Result<Arc<Tenant>, TenantError> {
        self.tenants
            .read()
            .expect("not poisoned")
            .get(&id)
            .cloned()
            .ok_or_else(|| TenantError::NotFound(format!("tenant {id} not found")))
    }

    /// Every tenant, by id.
    pub fn list(&self) -> Vec<Arc<Tenant>> {
        let mut v: Vec<Arc<Tenant>> = self
            .tenants
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Creates a new tenant: claims its first generation and makes its local directory.
    pub async fn create_tenant(&self, id: TenantId) -> Result<Arc<Tenant>, TenantError> {
        let _ops = self.ops.lock().await;
        if self.get(id).is_ok() {
            return Err(TenantError::Conflict(format!("tenant {id} already exists")));
        }
        if highest_generation(&*self.storage, id).await?.is_some() {
            return Err(TenantError::Conflict(format!(
                "tenant {id} exists in remote storage; attach it instead"
            )));
        }
        let generation = claim_generation(&*self.storage, id).await?;
        self.make_tenant_dir(id)?;
        let tenant = Arc::new(Tenant {
            id,
            generation,
            timelines: Mutex::default(),
        });
        self.tenants
            .write()
            .expect("not poisoned")
            .insert(id, tenant.clone());
        Ok(tenant)
    }

    fn make_tenant_dir(&self, id: TenantId) -> anyhow::Result<()> {
        let dir = self.tenants_dir().join(id.to_string()).join("timelines");
        layer_format::durable::create_dir_all_durable(&*self.engine, &dir)
            .with_context(|| format!("create {}", dir.display()))?;
        // The tenant's entry, which marks it attached here at the next start.
        let tenants = self.tenants_dir();
        self.engine
            .fsync_dir(&tenants)
            .with_context(|| format!("fsync {}", tenants.display()))?;
        Ok(())
    }

    /// Attaches a tenant from remote storage with a new generation.
    pub async fn attach_tenant(&self, id: TenantId) -> Result<Arc<Tenant>, TenantError> {
        let _ops = self.ops.lock().await;
        if self.get(id).is_ok() {
            return Err(TenantError::Conflict(format!(
                "tenant {id} is already attached"
            )));
        }
        // A tenant that never existed is not created by attaching it: no claim is made.
        if highest_generation(&*self.storage, id).await?.is_none() {
            return Err(TenantError::NotFound(format!(
                "tenant {id} does not exist in remote storage (no generation was ever claimed); create it instead"
            )));
        }
        let tenant = self.attach_inner(id).await?;
        self.tenants
            .write()
            .expect("not poisoned")
            .insert(id, tenant.clone());
        Ok(tenant)
    }

    /// Stops a tenant's jobs and reloads every timeline from its authoritative index with the
    /// same generation, reconciling local files (I3); with `drop_cache`, every local layer file
    /// is removed first and fetched again on demand. In-memory records not yet uploaded are
    /// dropped, as in a restart: the storage node resends from `remote_consistent_lsn`.
    pub async fn reset_tenant(
        &self,
        id: TenantId,
        drop_cache: bool,
    ) -> Result<Arc<Tenant>, TenantError> {
        let _ops = self.ops.lock().await;
        let old = self.get(id)?;
        old.stop().await;
        if drop_cache {
            let timelines: Vec<TimelineId> = old
                .timelines
                .lock()
                .expect("not poisoned")
                .keys()
                .copied()
                .collect();
            for tl in timelines {
                let dir = local_timeline_dir(&self.conf.workdir, id, tl);
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || drop_local_layers(&engine, &dir))
                    .await
                    .context("drop cache task panicked")??;
            }
        }
        // Never reuse a sequence number the old timelines may have tried: an upload whose
        // outcome was unknown may still land (I5).
        let floors: BTreeMap<TimelineId, u32> = old
            .timelines
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(k, t)| (*k, t.next_seq()))
            .collect();
        let tenant = self.load_tenant(id, old.generation, &floors).await?;
        self.tenants
            .write()
            .expect("not poisoned")
            .insert(id, tenant.clone());
        tracing::info!(tenant_id = %id, drop_cache, "reset");
        Ok(tenant)
    }

    async fn attach_inner(&self, id: TenantId) -> anyhow::Result<Arc<Tenant>> {
        // Claim first, list second (I8).
        let generation = claim_generation(&*self.storage, id).await?;
        self.load_tenant(id, generation, &BTreeMap::new()).await
    }

    /// Loads every timeline of `id` from remote storage for an attachment of `generation`;
    /// no timeline uses a sequence number below its entry in `seq_floors`.
    async fn load_tenant(
        &self,
        id: TenantId,
        generation: Generation,
        seq_floors: &BTreeMap<TimelineId, u32>,
    ) -> anyhow::Result<Arc<Tenant>> {
        self.make_tenant_dir(id)?;
        // Temp objects of puts a crash interrupted (local backend); any attachment still
        // writing is older and fenced, and retries a put that loses its temp object.
        let removed = self
            .storage
            .remove_leftovers(&format!("{}/", tenant_prefix(id)))
            .await
            .context("remove the leftovers of interrupted puts")?;
        if removed > 0 {
            crate::metrics::METRICS
                .reconcile_actions
                .with_label_values(&["remove_remote_temp"])
                .inc_by(removed as u64);
            tracing::info!(tenant_id = %id, removed, "removed temp objects of interrupted puts");
        }
        let prefix = format!("{}/timelines/", tenant_prefix(id));
        let keys = self.storage.list(&prefix).await.context("list timelines")?;
        let mut by_timeline: BTreeMap<TimelineId, Vec<String>> = BTreeMap::new();
        for key in keys {
            let Some(tl) = key
                .strip_prefix(&prefix)
                .and_then(|r| r.split('/').next())
                .and_then(|t| t.parse::<TimelineId>().ok())
            else {
                continue;
            };
            by_timeline.entry(tl).or_default().push(key);
        }
        let mut timelines = BTreeMap::new();
        for (tl, keys) in by_timeline {
            let sel = select_authoritative(keys.iter().map(String::as_str), generation)
                .map_err(anyhow::Error::from)?;
            let Some(object) = sel.authoritative else {
                continue;
            };
            let index = self.fetch_index(id, tl, object).await?;
            let timeline = Timeline::load(
                self.conf.clone(),
                self.engine.clone(),
                self.storage.clone(),
                generation,
                index,
                sel.next_seq.max(seq_floors.get(&tl).copied().unwrap_or(0)),
            )
            .await?;
            timelines.insert(tl, timeline);
        }
        tracing::info!(tenant_id = %id, generation = generation.0, timelines = timelines.len(), "loaded");
        Ok(Arc::new(Tenant {
            id,
            generation,
            timelines: Mutex::new(timelines),
        }))
    }

    async fn fetch_index(
        &self,
        tenant: TenantId,
        timeline: TimelineId,
        object: IndexObjectName,
    ) -> anyhow::Result<IndexPart> {
        let key = index_part::names::index_object_key(tenant, timeline, object);
        let bytes = self
            .storage
            .get(&key)
            .await?
            .with_context(|| format!("index {key} listed but missing"))?;
        IndexPart::from_json_object(&bytes, object, ParseMode::Strict)
            .with_context(|| format!("index {key}"))
    }

    /// Stops a tenant and forgets it locally; remote data stays.
    pub async fn detach_tenant(&self, id: TenantId) -> Result<(), TenantError> {
        let _ops = self.ops.lock().await;
        let tenant = self
            .tenants
            .write()
            .expect("not poisoned")
            .remove(&id)
            .ok_or_else(|| TenantError::NotFound(format!("tenant {id} not found")))?;
        tenant.stop().await;
        let dir = self.tenants_dir().join(id.to_string());
        let (engine, parent) = (self.engine.clone(), self.tenants_dir());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            engine
                .remove_dir_all(&dir)
                .with_context(|| format!("remove {}", dir.display()))?;
            engine
                .fsync_dir(&parent)
                .with_context(|| format!("fsync {}", parent.display()))
        })
        .await
        .context("detach task panicked")??;
        Ok(())
    }

    /// Creates a timeline of a tenant.
    pub async fn create_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
    ) -> Result<Arc<Timeline>, TenantError> {
        let _ops = self.ops.lock().await;
        let tenant = self.get(tenant_id)?;
        if tenant.timeline(timeline_id).is_some() {
            return Err(TenantError::Conflict(format!(
                "timeline {timeline_id} already exists"
            )));
        }
        let prefix = format!(
            "{}/",
            index_part::names::timeline_prefix(tenant_id, timeline_id)
        );
        let keys = self.storage.list(&prefix).await?;
        if !keys.is_empty() {
            // Our own earlier attempt whose first index put failed after landing (or whose
            // outcome was unknown) left only empty indexes of this generation: that is this
            // timeline, created. Anything else is somebody's timeline.
            if let Some(tl) = self.adopt_own_creation(&tenant, timeline_id, &keys).await? {
                return Ok(tl);
            }
            return Err(TenantError::Conflict(format!(
                "timeline {timeline_id} exists in remote storage"
            )));
        }
        let tl = Timeline::create(
            self.conf.clone(),
            self.engine.clone(),
            self.storage.clone(),
            tenant.generation,
            tenant_id,
            timeline_id,
            1,
        )
        .await?;
        debug_assert_eq!(
            tl.dir,
            local_timeline_dir(&self.conf.workdir, tenant_id, timeline_id)
        );
        tenant
            .timelines
            .lock()
            .expect("not poisoned")
            .insert(timeline_id, tl.clone());
        Ok(tl)
    }

    /// If `keys` (everything under the timeline's prefix) are only index versions of this
    /// attachment's generation and the newest is empty (no layer, nothing ingested), loads the
    /// timeline from it: a retried creation whose first attempt's index landed.
    async fn adopt_own_creation(
        &self,
        tenant: &Arc<Tenant>,
        timeline_id: TimelineId,
        keys: &[String],
    ) -> anyhow::Result<Option<Arc<Timeline>>> {
        let ours = keys.iter().all(|k| {
            k.rsplit('/')
                .next()
                .and_then(|n| n.parse::<IndexObjectName>().ok())
                .is_some_and(|o| o.generation == tenant.generation)
        });
        if !ours {
            return Ok(None);
        }
        let sel = select_authoritative(keys.iter().map(String::as_str), tenant.generation)
            .map_err(anyhow::Error::from)?;
        let Some(object) = sel.authoritative else {
            return Ok(None);
        };
        let index = self.fetch_index(tenant.id, timeline_id, object).await?;
        if !index.layers.is_empty() || index.disk_consistent_lsn.0 != 0 {
            return Ok(None);
        }
        tracing::info!(tenant_id = %tenant.id, %timeline_id, %object, "creation retried: adopting the empty index of the earlier attempt");
        let tl = Timeline::load(
            self.conf.clone(),
            self.engine.clone(),
            self.storage.clone(),
            tenant.generation,
            index,
            sel.next_seq,
        )
        .await?;
        tenant
            .timelines
            .lock()
            .expect("not poisoned")
            .insert(timeline_id, tl.clone());
        Ok(Some(tl))
    }

    /// Stops every tenant's background work.
    pub fn shutdown(&self) {
        for t in self.tenants.read().expect("not poisoned").values() {
            t.shutdown();
        }
    }
}

/// Removes every layer and temp file of a timeline directory (not `lost+found/`).
fn drop_local_layers(engine: &Arc<dyn IoEngine>, dir: &std::path::Path) -> anyhow::Result<()> {
    use index_part::names::{LocalFile, classify_local};
    let names = match engine.list_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    for name in names {
        let Some(n) = name.to_str() else { continue };
        if matches!(classify_local(n), LocalFile::Layer(_) | LocalFile::Temp) {
            engine
                .unlink(&dir.join(n))
                .with_context(|| format!("remove {}", dir.join(n).display()))?;
        }
    }
    engine
        .fsync_dir(dir)
        .with_context(|| format!("fsync {}", dir.display()))
}
