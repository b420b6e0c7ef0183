//! One attempt at the queue's next work: layer uploads, an index upload with the generation
//! fence, or deletions.
//!
//! **The conflict rule (I11).** A create-only put of a layer object that finds another object
//! under the name with other bytes is, when the name carries this attachment's generation, the
//! orphan of an earlier incarnation of this attachment: a layer that an incarnation before a
//! reset uploaded and whose index never landed (or landed and lost authority). Nothing else
//! writes names of this generation: other attachments have other generations, and within one
//! incarnation a layer name is only ever uploaded from its one installed file. The orphan can
//! be referenced only by an index of an earlier incarnation, and every such index has a lower
//! sequence number than this incarnation's barrier (its first index, uploaded before any
//! layer, `pending.rs`): none of them can be chosen authoritative again. So the orphan is
//! deleted and the put made again (still create-only: nothing is overwritten), unless the
//! newest index this queue uploaded references the name (then it is never touched). Counted in
//! `pageserver_remote_operations_total{kind="upload_layer",outcome="orphan_replaced"}`.
//! Without this rule a reset followed by a resend with other bytes left the queue retrying the
//! conflict forever (`checkpoint` never finished).

use super::pending::{LayerJob, Work};
use super::{UploadState, UploadTarget};
use crate::lock::MutexExt;
use crate::metrics::{METRICS, timed};
use crate::remote::file_source::FileSource;
use crate::remote::generation::highest_generation;
use crate::remote::{Conflict, create_once, create_once_file};
use anyhow::{Context, bail};
use bytes::Bytes;
use index_part::IndexPart;
use index_part::names::{IndexObjectName, index_object_key, layer_object_key};

/// Runs `work` once: whether it made progress (something was done), and its outcome.
pub(super) async fn execute(
    t: &UploadTarget,
    work: Work,
    state: &UploadState,
) -> (bool, anyhow::Result<()>) {
    match work {
        Work::Layers(jobs) => {
            let results = futures::future::join_all(
                jobs.iter()
                    .map(|j| timed("upload_layer", upload_layer(t, j, state))),
            )
            .await;
            let mut progress = false;
            let mut first_error = None;
            for (job, r) in jobs.iter().zip(results) {
                match r {
                    Ok(()) => {
                        progress = true;
                        state.pending.lock_unpoisoned().layer_done(&job.file_name);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            (progress, first_error.map_or(Ok(()), Err))
        }
        Work::Index(index, seq) => (
            false,
            timed("upload_index", upload_index(t, &index, seq, state)).await,
        ),
        Work::Delete(layers) => delete(t, layers, state).await,
    }
}

async fn upload_layer(t: &UploadTarget, job: &LayerJob, state: &UploadState) -> anyhow::Result<()> {
    fail::fail_point!("upload-layer-before", |_| bail!(
        "failpoint upload-layer-before"
    ));
    let file = FileSource {
        engine: t.engine.clone(),
        path: job.path.clone(),
        size: job.meta.file_size,
        checksum: job.meta.checksum,
    };
    let key = layer_object_key(t.tenant, t.timeline, &job.file_name);
    match create_once_file(&*t.storage, "upload_layer", &key, &file).await {
        Ok(_) => {}
        Err(e) if e.is::<Conflict>() && job.file_name.generation == t.generation => {
            replace_orphan(t, job, state, &key, &file)
                .await
                .with_context(|| format!("{e:#}"))?;
        }
        Err(e) => return Err(e),
    }
    state.mark_uploaded([job.file_name.clone()]);
    fail::fail_point!("upload-layer-after", |_| bail!(
        "failpoint upload-layer-after"
    ));
    Ok(())
}

/// The conflict rule (module doc).
async fn replace_orphan(
    t: &UploadTarget,
    job: &LayerJob,
    state: &UploadState,
    key: &str,
    file: &FileSource,
) -> anyhow::Result<()> {
    let landed = state.pending.lock_unpoisoned().index_landed;
    let referenced = state
        .last_uploaded_refs
        .lock_unpoisoned()
        .contains(&job.file_name);
    if !landed || referenced {
        bail!(
            "the object under this name may be referenced by an index that can still be authoritative; not replaced"
        );
    }
    tracing::warn!(
        key,
        "a layer object of this generation with other bytes is an orphan of an earlier incarnation (reset); deleting it and uploading ours"
    );
    t.storage
        .delete(key)
        .await
        .with_context(|| format!("delete the orphan {key}"))?;
    METRICS
        .remote_ops
        .with_label_values(&["upload_layer", "orphan_replaced"])
        .inc();
    create_once_file(&*t.storage, "upload_layer", key, file).await?;
    Ok(())
}

async fn upload_index(
    t: &UploadTarget,
    index: &IndexPart,
    seq: u32,
    state: &UploadState,
) -> anyhow::Result<()> {
    fail::fail_point!("upload-index-before", |_| bail!(
        "failpoint upload-index-before"
    ));
    let object = IndexObjectName {
        generation: t.generation,
        seq,
    };
    let json = index.to_json().context("serialize index")?;
    create_once(
        &*t.storage,
        "upload_index",
        &index_object_key(t.tenant, t.timeline, object),
        Bytes::from(json),
    )
    .await?;
    fail::fail_point!("upload-index-after", |_| bail!(
        "failpoint upload-index-after"
    ));
    acknowledge(t, index, state).await?;
    // Done only now: a failed fence check retries the (identical) put and the check.
    *state.last_uploaded_refs.lock_unpoisoned() = super::file_names(index);
    state.pending.lock_unpoisoned().index_done(seq);
    Ok(())
}

/// Advances `remote_consistent_lsn` to the uploaded index's, if no newer attachment exists
/// (I8). An index already acknowledged by a newer one changes nothing.
async fn acknowledge(
    t: &UploadTarget,
    index: &IndexPart,
    state: &UploadState,
) -> anyhow::Result<()> {
    if fence(t, state).await? {
        state.remote_consistent_lsn.send_if_modified(|l| {
            let advance = index.disk_consistent_lsn > *l;
            if advance {
                *l = index.disk_consistent_lsn;
            }
            advance
        });
    }
    Ok(())
}

/// The generation fence (I9): whether this attachment is still the newest, checked against
/// the claims in remote storage. The first time a newer claim is seen the attachment is marked
/// stale (it never acknowledges or deletes again) and that is logged.
async fn fence(t: &UploadTarget, state: &UploadState) -> anyhow::Result<bool> {
    if state.is_stale() {
        return Ok(false);
    }
    match highest_generation(&*t.storage, t.tenant).await? {
        Some(g) if g > t.generation => {
            if state.mark_stale() {
                tracing::warn!(
                    newer = g.0,
                    "a newer generation exists; this attachment is stale and stops acknowledging uploads and deleting"
                );
            }
            Ok(false)
        }
        _ => Ok(true),
    }
}

async fn delete(
    t: &UploadTarget,
    layers: Vec<index_part::names::LayerFileName>,
    state: &UploadState,
) -> (bool, anyhow::Result<()>) {
    if let Err(e) = (|| -> anyhow::Result<()> {
        fail::fail_point!("deletion-before-execute", |_| bail!(
            "failpoint deletion-before-execute"
        ));
        Ok(())
    })() {
        return (false, Err(e));
    }
    let skip_all = |why: &str| {
        tracing::info!(count = layers.len(), "{why}: deletions skipped");
        let mut p = state.pending.lock_unpoisoned();
        for f in &layers {
            p.delete_done(f);
        }
    };
    match fence(t, state).await {
        Ok(true) => {}
        Ok(false) => {
            skip_all("stale attachment");
            return (false, Ok(()));
        }
        Err(e) => return (false, Err(e)),
    }
    // Objects already deleted leave the pending set, so that a retry makes progress even
    // when every attempt has some failure.
    let mut progress = false;
    for file in layers {
        if state.last_uploaded_refs.lock_unpoisoned().contains(&file) {
            // Never expected: the newest uploaded index references it again.
            METRICS
                .remote_ops
                .with_label_values(&["delete", "refused_referenced"])
                .inc();
            tracing::warn!(layer = %file, "not deleting an object the newest uploaded index references");
        } else {
            let key = layer_object_key(t.tenant, t.timeline, &file);
            if let Err(e) = t.storage.delete(&key).await {
                METRICS
                    .remote_ops
                    .with_label_values(&["delete", "error"])
                    .inc();
                return (progress, Err(e));
            }
            METRICS
                .remote_ops
                .with_label_values(&["delete", "ok"])
                .inc();
            state.uploaded.lock_unpoisoned().remove(&file);
        }
        state.pending.lock_unpoisoned().delete_done(&file);
        progress = true;
    }
    (progress, Ok(()))
}
