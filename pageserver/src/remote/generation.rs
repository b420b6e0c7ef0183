//! Generations (I8): each attachment claims a new generation before it reads or writes
//! anything else, with a create-only put of `tenants/<tenant>/generations/<generation>`: list,
//! take the highest plus one, and try again if another attachment won the race. Claims are
//! never reused or deleted.

use super::{PutOutcome, RemoteStorage};
use crate::metrics::METRICS;
use anyhow::Context;
use bytes::Bytes;
use index_part::names::{
    Generation, TenantId, generation_claim_key, generations_prefix, parse_generation_claim,
};

/// How often a claim is retried when other attachments keep winning.
const CLAIM_ATTEMPTS: usize = 16;

/// The highest generation claimed for `tenant`, if any.
pub async fn highest_generation(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
) -> anyhow::Result<Option<Generation>> {
    let keys = storage
        .list(&format!("{}/", generations_prefix(tenant)))
        .await
        .context("list generation claims")?;
    Ok(keys.iter().filter_map(|k| parse_generation_claim(k)).max())
}

/// Claims the next generation of `tenant`.
pub async fn claim_generation(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
) -> anyhow::Result<Generation> {
    for _ in 0..CLAIM_ATTEMPTS {
        let next = match highest_generation(storage, tenant).await? {
            None => Generation(1),
            Some(g) => Generation(g.0.checked_add(1).context("generations exhausted")?),
        };
        let body = format!(
            "{{\"claimed_at\":\"{}\",\"pid\":{}}}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
            std::process::id()
        );
        let key = generation_claim_key(tenant, next);
        match storage.put_if_absent(&key, Bytes::from(body)).await {
            Ok(PutOutcome::Created) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "created"])
                    .inc();
                tracing::info!(%tenant, generation = next.0, "claimed generation");
                return Ok(next);
            }
            Ok(PutOutcome::AlreadyExists) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "conflict"])
                    .inc();
            }
            Err(e) => {
                // The claim may or may not have landed: list again and claim the next free
                // one (a generation skipped this way is never used by anyone).
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "error"])
                    .inc();
                tracing::warn!("claim {key} failed, retrying: {e:#}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    anyhow::bail!(
        "could not claim a generation for tenant {tenant} after {CLAIM_ATTEMPTS} attempts"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::local::LocalFs;
    use layer_format::io::{EngineChoice, open_engine};

    #[tokio::test]
    async fn claims_are_increasing_and_unique_under_races() {
        let dir = tempfile::tempdir().unwrap();
        let fs = std::sync::Arc::new(
            LocalFs::new(dir.path(), open_engine(EngineChoice::Std).unwrap()).unwrap(),
        );
        let tenant = TenantId([3; 16]);
        assert_eq!(highest_generation(&*fs, tenant).await.unwrap(), None);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let fs = fs.clone();
            tasks.push(tokio::spawn(async move {
                claim_generation(&*fs, tenant).await.unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().0);
        }
        got.sort();
        assert_eq!(
            got,
            (1..=8).collect::<Vec<u32>>(),
            "every racer got its own generation"
        );
        assert_eq!(
            highest_generation(&*fs, tenant).await.unwrap(),
            Some(Generation(8))
        );
    }
}
