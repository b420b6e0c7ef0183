//! Tenants: which are attached here, with which generation, and their timelines.
//!
//! Each attach (and each start of the process, for every tenant with a local directory)
//! claims a new generation before anything else, then lists the timelines' index objects and
//! loads each timeline from its authoritative index (I3, I8). Create, attach and detach are
//! serialized by one lock.

use crate::config::PageServerConf;
use crate::lock::{MutexExt, RwLockExt};
use crate::remote::RemoteStorage;
use crate::remote::generation::{claim_generation_recorded, highest_generation};
use crate::timeline::Timeline;
use anyhow::Context;
use index_part::names::{
    Generation, IndexObjectName, TenantId, TimelineId, local_timeline_dir, tenant_prefix,
};
use index_part::{IndexPart, ParseMode, select_authoritative};
use layer_format::io::IoEngine;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

pub mod attachment;
mod create;
mod load;

use attachment::{Decision, Markers};

/// A tenant attached to this server.
#[derive(Debug)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// This attachment's generation.
    pub generation: Generation,
    timelines: Mutex<BTreeMap<TimelineId, Arc<Timeline>>>,
    /// Why the tenant could not be loaded (start-up); a broken tenant has no timelines, and
    /// only a reset (which loads it again) or a detach changes it.
    broken: Option<String>,
}

/// A tenant's state at one moment.
#[derive(Debug, Clone)]
pub struct TenantStatus {
    /// The tenant.
    pub tenant_id: TenantId,
    /// This attachment's generation.
    pub generation: Generation,
    /// Why it could not be loaded, if it could not.
    pub broken_reason: Option<String>,
    /// Whether a newer attachment has been seen (by any of its timelines).
    pub stale: bool,
    /// Its timelines.
    pub timelines: Vec<TimelineId>,
    /// Those of its timelines that are broken.
    pub broken_timelines: Vec<TimelineId>,
}

impl Tenant {
    /// A timeline.
    pub fn timeline(&self, id: TimelineId) -> Option<Arc<Timeline>> {
        self.timelines.lock_unpoisoned().get(&id).cloned()
    }

    /// The tenant's status.
    pub fn status(&self) -> TenantStatus {
        // Not under the map's lock: a timeline's status takes that timeline's own lock.
        let tls = self.timelines();
        TenantStatus {
            tenant_id: self.id,
            generation: self.generation,
            broken_reason: self.broken.clone(),
            stale: tls.iter().any(|t| t.status().stale),
            timelines: tls.iter().map(|t| t.timeline_id).collect(),
            broken_timelines: tls
                .iter()
                .filter(|t| t.broken_reason().is_some())
                .map(|t| t.timeline_id)
                .collect(),
        }
    }

    /// A tenant that could not be loaded: no timelines, `reason` in its info.
    fn broken(id: TenantId, generation: Generation, reason: String) -> Arc<Tenant> {
        tracing::error!(tenant_id = %id, generation = generation.0, "tenant is broken: {reason}");
        crate::metrics::METRICS
            .broken
            .with_label_values(&["tenant"])
            .inc();
        Arc::new(Tenant {
            id,
            generation,
            timelines: Mutex::default(),
            broken: Some(reason),
        })
    }

    /// Why the tenant is broken, if it is.
    pub fn broken_reason(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Its timelines, by id.
    pub fn timelines(&self) -> Vec<Arc<Timeline>> {
        self.timelines.lock_unpoisoned().values().cloned().collect()
    }

    fn shutdown(&self) {
        for t in self.timelines.lock_unpoisoned().values() {
            t.shutdown();
        }
    }

    async fn stop(&self) {
        for t in self.timelines() {
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
            // One tenant never stops the node: whatever fails is that tenant's, marked broken.
            let span = tracing::info_span!("startup", tenant_id = %id);
            if let Some(tenant) = tracing::Instrument::instrument(mgr.reattach(id), span).await {
                mgr.tenants.write_unpoisoned().insert(id, tenant);
            }
        }
        Ok(mgr)
    }

    /// Start-up for one tenant directory (brief section 6, "Start-up"): re-attaches the
    /// tenant if this node's claim is still the highest, and otherwise removes the local
    /// directory (the tenant moved, or was never claimed). `None` if it is not attached; a
    /// broken tenant if deciding or loading failed.
    async fn reattach(&self, id: TenantId) -> Option<Arc<Tenant>> {
        let outcome = |o: &str| {
            crate::metrics::METRICS
                .startup_tenants
                .with_label_values(&[o])
                .inc();
        };
        let markers = Markers::new(self.engine.clone(), &self.tenant_dir(id));
        let decision = match attachment::decide(&*self.storage, &markers, id).await {
            Ok(d) => d,
            Err(e) => {
                outcome("broken");
                return Some(Tenant::broken(
                    id,
                    Generation(0),
                    format!("could not decide whether to re-attach: {e:#}"),
                ));
            }
        };
        match decision {
            Decision::Reattach { own } => {
                tracing::info!(tenant_id = %id, own = own.0, "re-attaching: no higher generation was claimed since this node's");
                match self.attach_inner(id).await {
                    Ok(t) => {
                        outcome("attached");
                        Some(t)
                    }
                    Err((generation, e)) => {
                        outcome("broken");
                        Some(Tenant::broken(id, generation, format!("{e:#}")))
                    }
                }
            }
            Decision::Moved { own, highest } => {
                tracing::warn!(tenant_id = %id, own = ?own.map(|g| g.0), highest = highest.0, "not re-attaching: a higher generation was claimed since this node's claim (the tenant moved); removing the local directory");
                outcome("moved");
                self.remove_tenant_dir(id).await.err().map(|e| {
                    Tenant::broken(id, Generation(0), format!("the tenant moved to generation {highest}, and its local directory could not be removed: {e:#}"))
                })
            }
            Decision::NeverClaimed => {
                tracing::warn!(tenant_id = %id, "not attaching: no generation was ever claimed (a creation or attach that stopped early); removing the local directory");
                outcome("never_claimed");
                self.remove_tenant_dir(id).await.err().map(|e| {
                    Tenant::broken(
                        id,
                        Generation(0),
                        format!(
                            "never claimed, and its local directory could not be removed: {e:#}"
                        ),
                    )
                })
            }
        }
    }

    fn tenant_dir(&self, id: TenantId) -> PathBuf {
        self.tenants_dir().join(id.to_string())
    }

    /// Removes a tenant's local directory durably.
    async fn remove_tenant_dir(&self, id: TenantId) -> anyhow::Result<()> {
        let dir = self.tenant_dir(id);
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
        .context("remove task panicked")?
    }

    fn tenants_dir(&self) -> PathBuf {
        self.conf.workdir.join("tenants")
    }

    /// A tenant.
    pub fn get(&self, id: TenantId) -> Result<Arc<Tenant>, TenantError> {
        self.tenants
            .read_unpoisoned()
            .get(&id)
            .cloned()
            .ok_or_else(|| TenantError::NotFound(format!("tenant {id} not found")))
    }

    /// Every tenant, by id.
    pub fn list(&self) -> Vec<Arc<Tenant>> {
        let mut v: Vec<Arc<Tenant>> = self.tenants.read_unpoisoned().values().cloned().collect();
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
        // The directory first: the claim is recorded in it before it is made.
        self.make_tenant_dir(id)?;
        let markers = Markers::new(self.engine.clone(), &self.tenant_dir(id));
        let generation = claim_generation_recorded(&*self.storage, id, Some(&markers)).await?;
        let tenant = Arc::new(Tenant {
            id,
            generation,
            timelines: Mutex::default(),
            broken: None,
        });
        self.tenants.write_unpoisoned().insert(id, tenant.clone());
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
        match self.attach_inner(id).await {
            Ok(tenant) => {
                self.tenants.write_unpoisoned().insert(id, tenant.clone());
                Ok(tenant)
            }
            // Claimed but not loaded: the tenant is attached here, broken, so that an operator
            // sees why and can reset or detach it.
            Err((generation, e)) if generation.0 > 0 => {
                let t = Tenant::broken(id, generation, format!("{e:#}"));
                self.tenants.write_unpoisoned().insert(id, t);
                Err(TenantError::Internal(e))
            }
            Err((_, e)) => Err(TenantError::Internal(e)),
        }
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
        if old.broken.is_some() {
            // Loaded again as at start-up (a broken tenant runs nothing).
            return match self.reattach(id).await {
                Some(t) => {
                    self.tenants.write_unpoisoned().insert(id, t.clone());
                    Ok(t)
                }
                None => {
                    self.tenants.write_unpoisoned().remove(&id);
                    Err(TenantError::Conflict(format!(
                        "tenant {id} is not attached here any more: another attachment holds a higher generation"
                    )))
                }
            };
        }
        old.stop().await;
        if drop_cache {
            let timelines: Vec<TimelineId> =
                old.timelines.lock_unpoisoned().keys().copied().collect();
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
            .lock_unpoisoned()
            .iter()
            .map(|(k, t)| (*k, t.next_seq()))
            .collect();
        let tenant = match self.load_tenant(id, old.generation, &floors).await {
            Ok(t) => t,
            Err(e) => {
                // The old timelines are stopped: the tenant is broken until a reset loads it.
                let t = Tenant::broken(id, old.generation, format!("reset failed: {e:#}"));
                self.tenants.write_unpoisoned().insert(id, t);
                return Err(TenantError::Internal(e));
            }
        };
        self.tenants.write_unpoisoned().insert(id, tenant.clone());
        tracing::info!(tenant_id = %id, drop_cache, "reset");
        Ok(tenant)
    }

    /// Stops a tenant and forgets it locally; remote data stays.
    pub async fn detach_tenant(&self, id: TenantId) -> Result<(), TenantError> {
        let _ops = self.ops.lock().await;
        let tenant = self
            .tenants
            .write_unpoisoned()
            .remove(&id)
            .ok_or_else(|| TenantError::NotFound(format!("tenant {id} not found")))?;
        tenant.stop().await;
        self.remove_tenant_dir(id).await?;
        Ok(())
    }

    /// Stops every tenant's background work.
    pub fn shutdown(&self) {
        for t in self.tenants.read_unpoisoned().values() {
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
    let doomed: Vec<std::path::PathBuf> = names
        .iter()
        .filter_map(|name| name.to_str())
        .filter(|n| matches!(classify_local(n), LocalFile::Layer(_) | LocalFile::Temp))
        .map(|n| dir.join(n))
        .collect();
    layer_format::durable::remove_durable(&**engine, &doomed)
        .map_err(|(p, e)| anyhow::Error::new(e).context(format!("remove {}", p.display())))
}
