//! The server: I/O engine, remote storage (after proving it enforces create-only), tenants,
//! and the HTTP router.

use crate::config::{PageServerConf, RemoteStorageConfig};
use crate::remote::local::LocalFs;
use crate::remote::{PutOutcome, RemoteStorage};
use crate::tenant::TenantManager;
use anyhow::{Context, bail};
use bytes::Bytes;
use layer_format::io::{IoEngine, open_engine};
use std::sync::Arc;

/// A running page server (without its listener).
#[derive(Debug)]
pub struct PageServer {
    /// Settings.
    pub conf: Arc<PageServerConf>,
    /// The I/O engine.
    pub engine: Arc<dyn IoEngine>,
    /// Remote storage.
    pub storage: Arc<dyn RemoteStorage>,
    /// Tenants.
    pub tenants: Arc<TenantManager>,
    /// Admission of state-changing requests (closed by a graceful shutdown).
    pub gate: crate::shutdown::Gate,
    /// The token verifier, with `http_auth_type = "JWT"`.
    pub auth: Option<Arc<crate::auth::JwtAuth>>,
}

/// Opens the configured remote storage.
pub fn open_storage(
    conf: &PageServerConf,
    engine: &Arc<dyn IoEngine>,
) -> anyhow::Result<Arc<dyn RemoteStorage>> {
    match &conf.remote_storage {
        RemoteStorageConfig::Local { local_path } => {
            Ok(Arc::new(LocalFs::new(local_path, engine.clone())?))
        }
        RemoteStorageConfig::S3 {
            endpoint,
            bucket,
            region,
            prefix,
            credentials,
        } => Ok(Arc::new(crate::remote::s3::S3::new(
            endpoint,
            bucket,
            region,
            prefix,
            credentials.clone(),
        )?)),
    }
}

/// Proves that `storage` refuses a second create of the same object: some S3-compatible
/// servers silently ignore `If-None-Match`, and every guarantee here rests on it.
///
/// Probe objects are `probes/create-only-<unix nanos:x>-<pid>`, deleted after the probe; those a
/// crash left behind are deleted by the next probe once they are an hour old (a younger one may
/// be another server's probe in progress).
pub async fn probe_create_only(storage: &dyn RemoteStorage) -> anyhow::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for old in storage.list("probes/").await.context("list probes")? {
        let stamp = old
            .strip_prefix("probes/create-only-")
            .and_then(|r| r.split('-').next())
            .and_then(|h| u128::from_str_radix(h, 16).ok());
        if stamp.is_some_and(|s| s + 3_600_000_000_000 < nanos) {
            storage
                .delete(&old)
                .await
                .with_context(|| format!("delete the stale probe {old}"))?;
        }
    }
    let key = format!("probes/create-only-{nanos:x}-{}", std::process::id());
    let first = storage
        .put_if_absent(&key, Bytes::from_static(b"first"))
        .await
        .context("create-only probe: first put")?;
    let second = storage
        .put_if_absent(&key, Bytes::from_static(b"second"))
        .await
        .context("create-only probe: second put")?;
    let back = storage
        .get(&key)
        .await
        .context("create-only probe: read back")?;
    let _ = storage.delete(&key).await;
    if first != PutOutcome::Created
        || second != PutOutcome::AlreadyExists
        || back.as_deref() != Some(&b"first"[..])
    {
        bail!(
            "remote storage does not enforce create-only puts (a second create of {key} was not refused); refusing to run on it"
        );
    }
    Ok(())
}

impl PageServer {
    /// Opens everything and attaches the tenants found locally.
    pub async fn start(conf: PageServerConf) -> anyhow::Result<Arc<PageServer>> {
        let engine = open_engine(conf.io_engine).context("open the I/O engine")?;
        PageServer::start_with(conf, engine, |s| s).await
    }

    /// [`PageServer::start`] on `engine`, with the configured remote storage passed through
    /// `wrap` (tests wrap it; production passes it as it is).
    pub async fn start_with(
        conf: PageServerConf,
        engine: Arc<dyn IoEngine>,
        wrap: impl FnOnce(Arc<dyn RemoteStorage>) -> Arc<dyn RemoteStorage>,
    ) -> anyhow::Result<Arc<PageServer>> {
        let conf = Arc::new(conf);
        crate::page_cache::init(conf.page_cache_size);
        let auth = match &conf.http_auth {
            crate::config::HttpAuth::Trust => None,
            crate::config::HttpAuth::Jwt { public_key_path } => Some(Arc::new(
                crate::auth::JwtAuth::from_pem_file(public_key_path)?,
            )),
        };
        layer_format::durable::create_dir_all_durable(&*engine, &conf.workdir)
            .with_context(|| format!("create {}", conf.workdir.display()))?;
        let mut storage = wrap(open_storage(&conf, &engine)?);
        // Temp objects of a probe a crash interrupted (local backend).
        storage
            .remove_leftovers("probes/")
            .await
            .context("remove the leftovers of interrupted probes")?;
        probe_create_only(&*storage).await?;
        if let Some(faults) = conf.remote_storage_faults {
            tracing::info!(?faults, "injecting remote storage faults");
            storage = Arc::new(crate::remote::faults::FaultyStorage::new(storage, faults));
        }
        let tenants = TenantManager::start(conf.clone(), engine.clone(), storage.clone()).await?;
        Ok(Arc::new(PageServer {
            conf,
            engine,
            storage,
            tenants,
            gate: crate::shutdown::Gate::default(),
            auth,
        }))
    }

    /// Stops background work.
    pub fn shutdown(&self) {
        self.tenants.shutdown();
    }

    /// A graceful shutdown's work, within `timeout`: refuse state-changing requests (503),
    /// wait for those in flight (for a third of the budget, at most 5 s: one slow request
    /// must not cost every timeline its flush), then on every timeline stop ingest, freeze,
    /// flush and wait for the upload of the index covering it. Uploads and flushes keep
    /// running; [`PageServer::shutdown`] stops the rest afterwards.
    pub async fn drain(&self, timeout: std::time::Duration) -> crate::shutdown::DrainReport {
        use tracing::Instrument;
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let mut report = crate::shutdown::DrainReport::default();
        let requests_budget = (timeout / 3).min(std::time::Duration::from_secs(5));
        if tokio::time::timeout(requests_budget, self.gate.close())
            .await
            .is_err()
        {
            // The gate is closed all the same (the flag is set first); ingest still running
            // is refused by its timeline below, never acknowledged after the flush.
            tracing::warn!(
                "requests admitted before the signal still run after {requests_budget:?}; flushing anyway"
            );
            report.requests_cut = true;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for tenant in self.tenants.list() {
            if tenant.broken_reason().is_some() {
                report.skipped += 1;
                continue;
            }
            for timeline in tenant.timelines() {
                if timeline.broken_reason().is_some() || timeline.status().stale {
                    report.skipped += 1;
                    continue;
                }
                let span = tracing::info_span!("shutdown_flush", tenant_id = %timeline.tenant_id, timeline_id = %timeline.timeline_id);
                tasks.spawn(
                    async move {
                        let id = format!("{}/{}", timeline.tenant_id, timeline.timeline_id);
                        let work = async {
                            timeline.stop_ingest().await;
                            timeline.checkpoint().await
                        };
                        let outcome = tokio::time::timeout_at(deadline, work)
                            .await
                            .map_err(|_| anyhow::anyhow!("not uploaded by the deadline"))
                            .and_then(|r| r);
                        match &outcome {
                            Ok(()) => tracing::info!(
                                lsn = %timeline.last_record_lsn(),
                                "flushed and uploaded"
                            ),
                            Err(e) => tracing::error!("not flushed and uploaded: {e:#}"),
                        }
                        (id, outcome)
                    }
                    .instrument(span),
                );
            }
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => report.flushed += 1,
                Ok((id, Err(e))) => report.failed.push(format!("{id}: {e:#}")),
                Err(e) => report.failed.push(format!("a flush task failed: {e}")),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::local::LocalFs;
    use layer_format::io::EngineChoice;

    #[tokio::test]
    async fn the_probe_deletes_probes_a_crash_left_only_once_they_are_old() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(dir.path(), open_engine(EngineChoice::Std).unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let young = format!("probes/create-only-{now:x}-1");
        let old = format!("probes/create-only-{:x}-1", now - 2 * 3_600_000_000_000);
        for k in [&young, &old] {
            fs.put_if_absent(k, Bytes::from_static(b"first"))
                .await
                .unwrap();
        }
        probe_create_only(&fs).await.unwrap();
        assert_eq!(fs.list("probes/").await.unwrap(), vec![young]);
    }
}
