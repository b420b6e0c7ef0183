//! Attaching a tenant: claim a generation, list, and load every timeline from its
//! authoritative index.

use super::*;

impl TenantManager {
    /// Claims a new generation and loads the tenant; on failure, the generation claimed
    /// (0 if none) and the error.
    pub(super) async fn attach_inner(
        &self,
        id: TenantId,
    ) -> Result<Arc<Tenant>, (Generation, anyhow::Error)> {
        // The directory first (the claim is recorded in it), then claim, then list (I8).
        self.make_tenant_dir(id).map_err(|e| (Generation(0), e))?;
        let markers = Markers::new(self.engine.clone(), &self.tenant_dir(id));
        let generation = claim_generation_recorded(&*self.storage, id, Some(&markers))
            .await
            .map_err(|e| (Generation(0), e))?;
        self.load_tenant(id, generation, &BTreeMap::new())
            .await
            .map_err(|e| (generation, e))
    }

    /// Loads every timeline of `id` from remote storage for an attachment of `generation`;
    /// no timeline uses a sequence number below its entry in `seq_floors`.
    pub(super) async fn load_tenant(
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
        let mut timelines: BTreeMap<TimelineId, Arc<Timeline>> = BTreeMap::new();
        let loaded = self
            .load_timelines(id, generation, seq_floors, by_timeline, &mut timelines)
            .await;
        if let Err(e) = loaded {
            // Nothing the timelines loaded so far started may land after this returns: a
            // reset loads the tenant again with the same generation (I5).
            for t in timelines.values() {
                t.stop().await;
            }
            return Err(e);
        }
        tracing::info!(tenant_id = %id, generation = generation.0, timelines = timelines.len(), "loaded");
        Ok(Arc::new(Tenant {
            id,
            generation,
            timelines: Mutex::new(timelines),
            broken: None,
        }))
    }

    pub(super) async fn load_timelines(
        &self,
        id: TenantId,
        generation: Generation,
        seq_floors: &BTreeMap<TimelineId, u32>,
        by_timeline: BTreeMap<TimelineId, Vec<String>>,
        timelines: &mut BTreeMap<TimelineId, Arc<Timeline>>,
    ) -> anyhow::Result<()> {
        for (tl, keys) in by_timeline {
            let sel = select_authoritative(keys.iter().map(String::as_str), generation)
                .map_err(anyhow::Error::from)?;
            let Some(object) = sel.authoritative else {
                continue;
            };
            let span = tracing::info_span!("load_timeline", tenant_id = %id, timeline_id = %tl);
            let next_seq = sel.next_seq.max(seq_floors.get(&tl).copied().unwrap_or(0));
            let timeline = tracing::Instrument::instrument(
                async {
                    let index = self.fetch_index(id, tl, object).await?;
                    Timeline::load(
                        self.conf.clone(),
                        self.engine.clone(),
                        self.storage.clone(),
                        generation,
                        index,
                        next_seq,
                    )
                    .await
                },
                span,
            )
            .await
            .with_context(|| format!("load timeline {tl}"))?;
            timelines.insert(tl, timeline);
        }
        Ok(())
    }

    pub(super) async fn fetch_index(
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
}
