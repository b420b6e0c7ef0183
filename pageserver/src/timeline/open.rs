//! Making a timeline: a new one (its first index uploaded before anything else), or one
//! loaded from its authoritative index; and its background compaction loop.

use super::*;

impl Timeline {
    pub(super) fn new_internal(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        generation: Generation,
        metadata: TimelineMetadata,
        next_seq: u32,
        #[allow(unused_mut, reason = "set only in builds with the testing feature")]
        mut map: LayerMap,
    ) -> Arc<Timeline> {
        let tenant_id = metadata.tenant_id;
        let timeline_id = metadata.timeline_id;
        let dcl = map.disk_consistent_lsn();
        #[cfg(feature = "testing")]
        map.set_mutation(conf.layer_map_mutation);
        let src = LayerSource {
            engine: engine.clone(),
            storage: storage.clone(),
            tenant: tenant_id,
            timeline: timeline_id,
        };
        let uploads = UploadQueue::start(
            UploadTarget {
                storage,
                engine,
                tenant: tenant_id,
                timeline: timeline_id,
                generation,
                concurrency: conf.upload_concurrency,
            },
            dcl,
        );
        // Every layer of a loaded map is in the index it came from, so in remote storage.
        uploads
            .state()
            .mark_uploaded(map.layers().map(|h| h.file_name()));
        let tl = Arc::new(Timeline {
            tenant_id,
            timeline_id,
            generation,
            dir: local_timeline_dir(&conf.workdir, tenant_id, timeline_id),
            conf,
            src,
            layers: RwLock::new(Layers {
                open: InMemoryLayer::new(Lsn(dcl.0 + 1)),
                frozen: VecDeque::new(),
                map,
            }),
            next_seq: AtomicU32::new(next_seq),
            last_record_lsn: AtomicU64::new(dcl.0),
            incarnation: next_incarnation(),
            ingest_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            compaction_lock: tokio::sync::Mutex::new(()),
            frozen_changed: Notify::new(),
            uploads,
            flush_error: Mutex::new(None),
            flush_task_running: std::sync::atomic::AtomicBool::new(false),
            shut_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            draining: std::sync::atomic::AtomicBool::new(false),
            broken: std::sync::OnceLock::new(),
        });
        tl.start_compaction_loop();
        tl
    }

    /// Runs compaction every `compaction_period` until shutdown.
    pub(super) fn start_compaction_loop(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let period = self.conf.compaction_period;
        let span = tracing::info_span!("compaction", tenant_id = %self.tenant_id, timeline_id = %self.timeline_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(tl) = weak.upgrade() else { return };
                    if tl.shut_down.load(Ordering::SeqCst) || tl.draining.load(Ordering::SeqCst) {
                        return;
                    }
                    if tl.broken_reason().is_some() {
                        return;
                    }
                    match tl.guarded("compaction", tl.compact()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!("compaction failed; it runs again in {period:?}: {e:#}");
                        }
                        Err(_) => return,
                    }
                    match tl.guarded("gc", async { tl.gc() }).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!("gc failed; it runs again in {period:?}: {e:#}")
                        }
                        Err(_) => return,
                    }
                }
            },
            span,
        ));
    }

    /// Creates a new timeline: local directory, and its first index uploaded before this
    /// returns, so that the timeline exists remotely from the start.
    pub async fn create(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        generation: Generation,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        seq: u32,
    ) -> anyhow::Result<Arc<Timeline>> {
        let created_at = index_part::whole_seconds(std::time::SystemTime::now());
        let index = IndexPart::new(
            generation,
            TimelineMetadata {
                tenant_id,
                timeline_id,
                created_at,
            },
        );
        let dir = local_timeline_dir(&conf.workdir, tenant_id, timeline_id);
        layer_format::durable::create_dir_all_durable(&*engine, &dir)
            .with_context(|| format!("create {}", dir.display()))?;
        let (map, _) = LayerMap::load(&index, generation, &dir).context("an empty layer map")?;
        let object = IndexObjectName { generation, seq };
        let json = Bytes::from(index.to_json().context("serialize first index")?);
        create_once(
            &*storage,
            "upload_index",
            &index_object_key(tenant_id, timeline_id, object),
            json,
        )
        .await
        .context("upload the first index")?;
        let tl = Timeline::new_internal(
            conf,
            engine,
            storage,
            generation,
            index.metadata,
            seq + 1,
            map,
        );
        tl.uploads.first_index_landed(&index);
        Ok(tl)
    }

    /// Loads a timeline from its authoritative index, reconciling the local directory (I3).
    pub async fn load(
        conf: Arc<PageServerConf>,
        engine: Arc<dyn IoEngine>,
        storage: Arc<dyn RemoteStorage>,
        generation: Generation,
        index: IndexPart,
        next_seq: u32,
    ) -> anyhow::Result<Arc<Timeline>> {
        let dir = local_timeline_dir(
            &conf.workdir,
            index.metadata.tenant_id,
            index.metadata.timeline_id,
        );
        let (e, d, idx) = (engine.clone(), dir.clone(), index.clone());
        let report =
            tokio::task::spawn_blocking(move || -> anyhow::Result<reconcile::ReconcileReport> {
                layer_format::durable::create_dir_all_durable(&*e, &d)
                    .with_context(|| format!("create {}", d.display()))?;
                reconcile::reconcile(&e, &d, &idx)
            })
            .await
            .context("reconcile task panicked")??;
        tracing::info!(tenant_id = %index.metadata.tenant_id, timeline_id = %index.metadata.timeline_id, ?report, "reconciled local files with the index");
        // From now on this attachment writes the index: the map is this generation's. Its
        // first act is to upload the index it loaded under its own generation: from then on,
        // an index a stale attachment still uploads under an older generation can never be
        // chosen as authoritative (I8).
        let (map, applied) = LayerMap::load(&index, generation, &dir)
            .with_context(|| format!("load the layer map of {}", index.metadata.timeline_id))?;
        let tl = Timeline::new_internal(
            conf,
            engine,
            storage,
            generation,
            index.metadata,
            next_seq,
            map,
        );
        tl.queue_index_upload(&applied.index);
        Ok(tl)
    }
}
