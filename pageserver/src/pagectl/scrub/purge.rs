//! `pagectl purge-garbage`: deletes what a scrub found to be garbage, tenant by tenant, after
//! listing each tenant's claims once more (see [`super::judge`]).

use super::{ScrubReport, gen_text, judge};
use crate::remote::RemoteStorage;
use anyhow::Context;
use index_part::names::TenantId;
use serde::Serialize;

/// What purge did or would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeOutcome {
    /// Objects deleted (or, in a dry run, to delete).
    pub objects: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Whether they were deleted.
    pub deleted: bool,
    /// Tenants whose claims changed between the scrub and the deletion: nothing of them was
    /// deleted.
    pub skipped_tenants: Vec<String>,
}

/// Deletes the garbage `report` found, if `delete`; otherwise only says what it would delete.
pub async fn purge(
    storage: &dyn RemoteStorage,
    report: &ScrubReport,
    delete: bool,
) -> anyhow::Result<PurgeOutcome> {
    let mut out = PurgeOutcome {
        deleted: delete,
        ..PurgeOutcome::default()
    };
    for t in &report.tenants {
        let garbage: Vec<&judge::Garbage> = t
            .timelines
            .iter()
            .flat_map(|tl| tl.verdict.garbage.iter())
            .collect();
        if garbage.is_empty() {
            continue;
        }
        if delete {
            // The claims once more, just before deleting: an attachment that claimed since
            // the scrub may have loaded an index older than the one judged.
            let tenant: TenantId = t.tenant_id.parse().context("a tenant id of the report")?;
            let now = crate::remote::generation::highest_generation(storage, tenant).await?;
            if gen_text(now) != t.current_generation.as_deref().unwrap_or("none") {
                out.skipped_tenants.push(t.tenant_id.clone());
                continue;
            }
        }
        for g in garbage {
            if delete {
                storage
                    .delete(&g.object)
                    .await
                    .with_context(|| format!("delete {}", g.object))?;
                tracing::info!(object = %g.object, reason = %g.reason, "purged");
            }
            out.objects.push(g.object.clone());
            out.bytes += g.size;
        }
    }
    Ok(out)
}
