//! Generations (I8): each attachment claims a new generation before it reads or writes
//! anything else, with a create-only put of `tenants/<tenant>/generations/<generation>`: list,
//! take the highest plus one, and try again if another attachment won the race. Claims are
//! never reused or deleted. Each claim's body holds a random token, which the claiming node
//! also records locally before the put (`tenant/attachment.rs`), so that a restarted node can
//! tell whether the highest claim is its own (brief section 6, "Start-up").

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

/// Records a node's claims locally (the attachment marker, `tenant/attachment.rs`), so that
/// at its next start the node can tell its own claim from another node's.
pub trait ClaimRecorder: Send + Sync {
    /// Called before the put of claim `generation` carrying `token`; the claim is not made
    /// unless this succeeds (durably).
    fn before_claim(&self, generation: Generation, token: &str) -> anyhow::Result<()>;
    /// The claim of `generation` was created: it is this node's.
    fn claimed(&self, generation: Generation);
    /// The claim of `generation` was refused (another attachment has it).
    fn refused(&self, generation: Generation);
}

/// Claims the next generation of `tenant` without recording it locally (tools and tests
/// that act as another node).
pub async fn claim_generation(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
) -> anyhow::Result<Generation> {
    claim_generation_recorded(storage, tenant, None).await
}

/// A fresh random token of 32 hex digits.
fn new_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let seed = (std::process::id(), std::time::SystemTime::now());
    let (a, b) = (RandomState::new(), RandomState::new());
    format!("{:016x}{:016x}", a.hash_one(seed), b.hash_one(seed))
}

/// Claims the next generation of `tenant`; `recorder` (if any) records the claim locally
/// before it is made. The claim object's body holds a fresh token.
pub async fn claim_generation_recorded(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
    recorder: Option<&dyn ClaimRecorder>,
) -> anyhow::Result<Generation> {
    // Claims are made while a request waits: the steps stop growing at 100 ms, so that
    // every attempt fails within about three seconds when the store is down.
    let mut backoff =
        crate::retry::Backoff::capped(&[&tenant.0], std::time::Duration::from_millis(100));
    for _ in 0..CLAIM_ATTEMPTS {
        let next = match highest_generation(storage, tenant).await? {
            None => Generation(1),
            Some(g) => Generation(g.0.checked_add(1).context("generations exhausted")?),
        };
        let token = new_token();
        if let Some(r) = recorder {
            r.before_claim(next, &token)
                .context("record the claim locally before making it")?;
        }
        let body = serde_json::json!({
            "claimed_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "pid": std::process::id(),
            "token": token,
        })
        .to_string();
        let key = generation_claim_key(tenant, next);
        match storage.put_if_absent(&key, Bytes::from(body)).await {
            Ok(PutOutcome::Created) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "created"])
                    .inc();
                tracing::info!(%tenant, generation = next.0, "claimed generation");
                if let Some(r) = recorder {
                    r.claimed(next);
                }
                return Ok(next);
            }
            Ok(PutOutcome::AlreadyExists) => {
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "conflict"])
                    .inc();
                if let Some(r) = recorder {
                    r.refused(next);
                }
            }
            Err(e) => {
                // The claim may or may not have landed: list again and claim the next free
                // one (a generation skipped this way is never used by anyone). Its local
                // record stays: the claim may be this node's.
                METRICS
                    .remote_ops
                    .with_label_values(&["claim_generation", "error"])
                    .inc();
                let delay = backoff.next_delay();
                tracing::warn!("claim {key} failed, retrying in {delay:?}: {e:#}");
                tokio::time::sleep(delay).await;
            }
        }
    }
    anyhow::bail!(
        "could not claim a generation for tenant {tenant} after {CLAIM_ATTEMPTS} attempts"
    )
}

/// The token in the claim object of `generation` (`None` if there is no such claim, or it
/// has no token).
pub async fn claim_token(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
    generation: Generation,
) -> anyhow::Result<Option<String>> {
    let key = generation_claim_key(tenant, generation);
    let Some(body) = storage
        .get(&key)
        .await
        .with_context(|| format!("read {key}"))?
    else {
        return Ok(None);
    };
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    Ok(v["token"].as_str().map(str::to_string))
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
