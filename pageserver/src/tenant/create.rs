//! Creating a timeline, and adopting our own earlier attempt whose first index landed.

use super::*;

impl TenantManager {
    /// Creates a timeline of a tenant.
    pub async fn create_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
    ) -> Result<Arc<Timeline>, TenantError> {
        let _ops = self.ops.lock().await;
        let tenant = self.get(tenant_id)?;
        if let Some(reason) = tenant.broken_reason() {
            return Err(TenantError::Conflict(format!(
                "tenant {tenant_id} is broken: {reason}; reset or detach it"
            )));
        }
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
            .lock_unpoisoned()
            .insert(timeline_id, tl.clone());
        Ok(tl)
    }

    /// If `keys` (everything under the timeline's prefix) are only index versions of this
    /// attachment's generation and the newest is empty (no layer, nothing ingested), loads the
    /// timeline from it: a retried creation whose first attempt's index landed.
    pub(super) async fn adopt_own_creation(
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
            .lock_unpoisoned()
            .insert(timeline_id, tl.clone());
        Ok(Some(tl))
    }
}
