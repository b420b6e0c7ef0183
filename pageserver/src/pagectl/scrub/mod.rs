//! `pagectl scrub` and `pagectl purge-garbage`: remote storage checked against the indexes.
//!
//! Scrub walks the bucket tenant by tenant. For each tenant it lists the generation claims
//! first and the timelines second (the order the safety argument in [`judge`] needs), reads
//! each timeline's authoritative index by the server's rule and judges the listing against it;
//! with `verify_checksums` it also downloads every referenced layer object and compares its
//! CRC32C with the index. Purge runs the same scrub and deletes exactly its garbage.
//!
//! Nothing here writes to remote storage except [`purge`] with `delete`.

pub mod judge;
mod progress;
mod purge;
mod report;

pub use purge::{PurgeOutcome, purge};
pub use report::{render_purge, render_text};

use progress::Progress;

use crate::remote::{ListedObject, RemoteStorage};
use anyhow::Context;
use index_part::names::{
    Generation, IndexObjectName, TenantId, TimelineId, generations_prefix, parse_generation_claim,
    tenant_prefix, timeline_prefix,
};
use index_part::{IndexPart, ParseMode};
use judge::{Problem, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to scrub and how.
#[derive(Debug, Clone)]
pub struct ScrubOptions {
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Download every referenced layer object and check its CRC32C.
    pub verify_checksums: bool,
    /// Index versions kept below the authoritative one.
    pub keep_index_versions: usize,
    /// Draw a progress bar on standard error (only if it is a terminal).
    pub progress: bool,
}

/// One timeline's findings.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    /// The timeline.
    pub timeline_id: String,
    /// What was found.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// One tenant's findings.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    /// The tenant.
    pub tenant_id: String,
    /// The highest generation claimed, when it was listed.
    pub current_generation: Option<String>,
    /// Generation claims listed (never deleted).
    pub generations_claimed: usize,
    /// Claimed generations that wrote no object still stored (attachments that ended before
    /// uploading, or whose objects were all replaced): claims are kept forever (I8), so this
    /// is for information only.
    pub generations_without_objects: Vec<String>,
    /// Its timelines.
    pub timelines: Vec<TimelineReport>,
    /// Objects under the tenant that belong to no timeline and are not claims.
    pub problems: Vec<Problem>,
}

/// Totals of a scrub.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Tenants scrubbed.
    pub tenants: usize,
    /// Timelines scrubbed.
    pub timelines: usize,
    /// Objects listed.
    pub objects: usize,
    /// Layers the authoritative indexes reference.
    pub layers_referenced: usize,
    /// Their bytes.
    pub bytes_referenced: u64,
    /// Layer objects whose CRC32C was checked.
    pub checksums_verified: usize,
    /// Problems found.
    pub problems: usize,
    /// Objects purge would delete.
    pub garbage_objects: usize,
    /// Their bytes.
    pub garbage_bytes: u64,
    /// Unreferenced objects kept.
    pub kept_objects: usize,
}

/// Everything a scrub found.
#[derive(Debug, Clone, Serialize)]
pub struct ScrubReport {
    /// Per tenant.
    pub tenants: Vec<TenantReport>,
    /// Objects outside any tenant that this build does not recognise.
    pub problems: Vec<Problem>,
    /// Totals.
    pub summary: Summary,
}

impl ScrubReport {
    /// Whether nothing is wrong.
    pub fn clean(&self) -> bool {
        self.summary.problems == 0
    }

    /// Every timeline's verdict.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.tenants
            .iter()
            .flat_map(|t| t.timelines.iter().map(|tl| &tl.verdict))
    }
}

/// Scrubs `storage`. An error means the scrub could not run (exit 2), not that it found
/// problems.
pub async fn scrub(
    storage: &dyn RemoteStorage,
    opts: &ScrubOptions,
) -> anyhow::Result<ScrubReport> {
    let mut bucket_problems = Vec::new();
    let mut objects = 0usize;
    let tenants: Vec<TenantId> = match opts.tenant {
        Some(t) => vec![t],
        None => {
            let all = storage.list_sized("").await.context("list the bucket")?;
            let mut ids = std::collections::BTreeSet::new();
            for o in all {
                let mut parts = o.key.splitn(3, '/');
                match (parts.next(), parts.next().map(str::parse::<TenantId>)) {
                    (Some("tenants"), Some(Ok(t))) => {
                        ids.insert(t);
                    }
                    (Some("probes"), _) => {}
                    _ => {
                        objects += 1;
                        bucket_problems.push(Problem {
                            kind: "unknown_object",
                            object: o.key,
                            detail: "outside any tenant; never deleted".into(),
                        });
                    }
                }
            }
            ids.into_iter().collect()
        }
    };
    let progress = Progress::new(opts.progress, tenants.len());
    let mut reports = Vec::new();
    for tenant in tenants {
        let (report, listed) = scrub_tenant(storage, tenant, opts, &progress)
            .await
            .with_context(|| format!("tenant {tenant}"))?;
        objects += listed;
        reports.push(report);
        progress.tenant_done();
    }
    progress.finish();
    let mut summary = Summary {
        tenants: reports.len(),
        objects,
        problems: bucket_problems.len(),
        ..Summary::default()
    };
    for t in &reports {
        summary.problems += t.problems.len();
        for tl in &t.timelines {
            let v = &tl.verdict;
            summary.timelines += 1;
            summary.layers_referenced += v.layers_referenced;
            summary.bytes_referenced += v.bytes_referenced;
            summary.problems += v.problems.len();
            summary.garbage_objects += v.garbage.len();
            summary.garbage_bytes += v.garbage.iter().map(|g| g.size).sum::<u64>();
            summary.kept_objects += v.kept.len();
            if opts.verify_checksums {
                summary.checksums_verified += v.to_verify.len();
            }
        }
    }
    Ok(ScrubReport {
        tenants: reports,
        problems: bucket_problems,
        summary,
    })
}

async fn scrub_tenant(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
    opts: &ScrubOptions,
    progress: &Progress,
) -> anyhow::Result<(TenantReport, usize)> {
    // Claims first, timelines second: see `judge`.
    let claims_prefix = format!("{}/", generations_prefix(tenant));
    let claims = storage
        .list_sized(&claims_prefix)
        .await
        .context("list generation claims")?;
    let current: Option<Generation> = claims
        .iter()
        .filter_map(|o| parse_generation_claim(&o.key))
        .max();
    let mut problems = Vec::new();
    let prefix = format!("{}/", tenant_prefix(tenant));
    let listed = storage.list_sized(&prefix).await.context("list objects")?;
    let mut by_timeline: BTreeMap<TimelineId, Vec<ListedObject>> = BTreeMap::new();
    for o in &listed {
        if o.key.starts_with(&claims_prefix) {
            if parse_generation_claim(&o.key).is_none() {
                problems.push(unknown(&o.key, "not a generation claim name"));
            }
            continue;
        }
        let timeline = o
            .key
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_prefix("timelines/"))
            .and_then(|r| r.split_once('/'))
            .and_then(|(t, _)| t.parse::<TimelineId>().ok());
        match timeline {
            Some(t) => by_timeline.entry(t).or_default().push(o.clone()),
            None => problems.push(unknown(&o.key, "not under a timeline; never deleted")),
        }
    }
    let mut timelines = Vec::new();
    for (timeline, objects) in by_timeline {
        let verdict = scrub_timeline(storage, tenant, timeline, &objects, current, opts, progress)
            .await
            .with_context(|| format!("timeline {timeline}"))?;
        timelines.push(TimelineReport {
            timeline_id: timeline.to_string(),
            verdict,
        });
    }
    // An attachment that claimed while the timelines were read may have loaded an index older
    // than the one judged here: list the claims again (see `judge`).
    let now = crate::remote::generation::highest_generation(storage, tenant).await?;
    let doubt = if now != current {
        problems.push(Problem {
            kind: "claims_changed",
            object: claims_prefix.clone(),
            detail: format!(
                "highest claim {} when the scrub began, {} after it read the timelines: an attachment is starting; scrub again",
                gen_text(current),
                gen_text(now)
            ),
        });
        Some("the claims changed while the scrub ran: nothing of this tenant is deleted")
    } else if timelines.iter().any(|t| t.verdict.newer_generation_seen) {
        Some("an object above the highest claim exists in this tenant: nothing of it is deleted")
    } else {
        None
    };
    if let Some(reason) = doubt {
        for t in &mut timelines {
            t.verdict.keep_all(reason);
        }
    }
    let mut used = std::collections::BTreeSet::new();
    for o in &listed {
        let name = o.key.rsplit('/').next().unwrap_or_default();
        if let Ok(i) = name.parse::<IndexObjectName>() {
            used.insert(i.generation);
        } else if let Ok(l) = name.parse::<index_part::LayerFileName>() {
            used.insert(l.generation);
        }
    }
    let generations_without_objects = claims
        .iter()
        .filter_map(|o| parse_generation_claim(&o.key))
        .filter(|g| !used.contains(g))
        .map(|g| g.to_string())
        .collect();
    let report = TenantReport {
        tenant_id: tenant.to_string(),
        current_generation: current.map(|g| g.to_string()),
        generations_claimed: claims.len(),
        generations_without_objects,
        timelines,
        problems,
    };
    Ok((report, listed.len()))
}

/// A generation as the report writes it, or `none`.
fn gen_text(g: Option<Generation>) -> String {
    g.map_or_else(|| "none".to_string(), |g| g.to_string())
}

/// Reads index version `name` of the timeline under `prefix`.
async fn read_index(
    storage: &dyn RemoteStorage,
    prefix: &str,
    name: IndexObjectName,
) -> anyhow::Result<Result<IndexPart, String>> {
    let key = format!("{prefix}{name}");
    let bytes = storage
        .get(&key)
        .await
        .with_context(|| format!("get {key}"))?;
    Ok(match bytes {
        None => Err("listed but gone when read".to_string()),
        Some(bytes) => {
            IndexPart::from_json_object(&bytes, name, ParseMode::Strict).map_err(|e| e.to_string())
        }
    })
}

fn unknown(key: &str, detail: &str) -> Problem {
    Problem {
        kind: "unknown_object",
        object: key.to_string(),
        detail: detail.to_string(),
    }
}

async fn scrub_timeline(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
    timeline: TimelineId,
    objects: &[ListedObject],
    current: Option<Generation>,
    opts: &ScrubOptions,
    progress: &Progress,
) -> anyhow::Result<Verdict> {
    let prefix = format!("{}/", timeline_prefix(tenant, timeline));
    let mut others = BTreeMap::new();
    let index = match judge::authoritative(&prefix, objects, current) {
        None => None,
        Some(name) => {
            let parsed = read_index(storage, &prefix, name).await?;
            if let Ok(index) = &parsed {
                let refs = judge::refs_of(index);
                let keep = opts.keep_index_versions;
                if judge::needs_other_versions(&prefix, objects, current, name, &refs, keep) {
                    for other in judge::index_versions(&prefix, objects).filter(|n| *n != name) {
                        let read = read_index(storage, &prefix, other).await?;
                        others.insert(other, read.map(|i| judge::refs_of(&i)));
                    }
                }
            }
            Some((name, parsed))
        }
    };
    let auth = index.as_ref().map(|(n, _)| *n);
    let mut verdict = judge::judge(
        &prefix,
        objects,
        current,
        index,
        &others,
        opts.keep_index_versions,
    );
    // A listing is no snapshot: a layer and the index naming it may both land while it runs,
    // the index seen and the layer not. Look again before calling a layer missing.
    let mut confirmed = Vec::new();
    for p in std::mem::take(&mut verdict.problems) {
        if p.kind != "missing" {
            confirmed.push(p);
            continue;
        }
        match recheck_missing(storage, &prefix, &p.object, auth, current).await? {
            Recheck::Missing => confirmed.push(p),
            Recheck::Present => {}
            Recheck::Superseded(newer) => verdict.kept.push(judge::Kept {
                object: p.object,
                reason: format!(
                    "missing when listed, but the timeline has a newer index {newer} now: scrub again"
                ),
            }),
        }
    }
    verdict.problems = confirmed;
    if opts.verify_checksums {
        progress.add_objects(verdict.to_verify.len());
        for (key, expected) in verdict.to_verify.clone() {
            match storage
                .get(&key)
                .await
                .with_context(|| format!("get {key}"))?
            {
                None => match recheck_missing(storage, &prefix, &key, auth, current).await? {
                    Recheck::Missing | Recheck::Present => verdict.problems.push(Problem {
                        kind: "missing",
                        object: key,
                        detail: "listed, then gone when read, and still referenced by the authoritative index".into(),
                    }),
                    Recheck::Superseded(newer) => verdict.kept.push(judge::Kept {
                        object: key,
                        reason: format!(
                            "gone when read, and the timeline has a newer index {newer}: scrub again"
                        ),
                    }),
                },
                Some(bytes) => {
                    let actual = crc32c::crc32c(&bytes);
                    if actual != expected {
                        verdict.problems.push(Problem {
                            kind: "bad_checksum",
                            object: key,
                            detail: format!(
                                "crc32c {actual} stored, {expected} in the index ({} bytes)",
                                bytes.len()
                            ),
                        });
                    }
                }
            }
            progress.object_done();
        }
    }
    Ok(verdict)
}

/// What a second look at a layer the listing did not show found.
enum Recheck {
    /// It is there now.
    Present,
    /// Still absent, and the authoritative index is still the one that references it.
    Missing,
    /// Absent, but the timeline has a newer authoritative index now.
    Superseded(IndexObjectName),
}

async fn recheck_missing(
    storage: &dyn RemoteStorage,
    prefix: &str,
    key: &str,
    auth: Option<IndexObjectName>,
    current: Option<Generation>,
) -> anyhow::Result<Recheck> {
    let again = storage.list_sized(key).await.context("list again")?;
    if again.iter().any(|o| o.key == key) {
        return Ok(Recheck::Present);
    }
    let listing = storage.list_sized(prefix).await.context("list again")?;
    Ok(match judge::authoritative(prefix, &listing, current) {
        Some(newer) if Some(newer) != auth => Recheck::Superseded(newer),
        _ => Recheck::Missing,
    })
}

#[cfg(test)]
mod tests;
