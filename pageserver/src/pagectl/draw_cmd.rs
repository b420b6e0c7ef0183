//! `pagectl timeline draw`: a timeline's layer map as SVG, from the local directory or from
//! its authoritative index in remote storage.
//!
//! From the local directory the tool sees layer file names only: delta levels follow the
//! inference rule for layers without a recorded level ([`index_part::LevelInference`]) and no
//! LSN is marked. From the index it draws the recorded levels and marks the index's GC cutoff
//! and its `disk_consistent_lsn`, which is the `remote_consistent_lsn` it acknowledges.

use crate::remote::RemoteStorage;
use crate::timeline::draw::{Drawn, Marks, svg};
use anyhow::Context;
use index_part::names::{
    LocalFile, TenantId, TimelineId, classify_local, generations_prefix, local_timeline_dir,
    parse_generation_claim, timeline_prefix,
};
use index_part::{IndexPart, LevelInference, ParseMode};
use std::path::Path;

/// The drawing of the layer files in the local timeline directory under `workdir`.
pub fn draw_local(
    workdir: &Path,
    tenant: TenantId,
    timeline: TimelineId,
) -> anyhow::Result<String> {
    let dir = local_timeline_dir(workdir, tenant, timeline);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("read {}", dir.display()))?;
        if let Some(LocalFile::Layer(f)) = entry.file_name().to_str().map(classify_local) {
            files.push(f);
        }
    }
    files.sort_by_key(|f| f.to_string());
    let inference = LevelInference::new(files.iter().map(|f| &f.layer));
    let layers: Vec<Drawn> = files
        .iter()
        .map(|f| Drawn {
            name: f.layer.clone(),
            level: inference.level(&f.layer),
            generation: f.generation,
        })
        .collect();
    let title = format!(
        "tenant {tenant} timeline {timeline}, local files of {}",
        workdir.display()
    );
    Ok(svg(&title, &layers, &Marks::default()))
}

/// The drawing of the timeline's authoritative index in `storage` (the server's rule, for an
/// attachment of the highest generation claimed).
pub async fn draw_remote(
    storage: &dyn RemoteStorage,
    tenant: TenantId,
    timeline: TimelineId,
) -> anyhow::Result<String> {
    let claims = storage
        .list_sized(&format!("{}/", generations_prefix(tenant)))
        .await
        .context("list generation claims")?;
    let current = claims
        .iter()
        .filter_map(|o| parse_generation_claim(&o.key))
        .max();
    let prefix = format!("{}/", timeline_prefix(tenant, timeline));
    let objects = storage
        .list_sized(&prefix)
        .await
        .context("list the timeline")?;
    let name = super::scrub::judge::authoritative(&prefix, &objects, current)
        .with_context(|| format!("no index under {prefix}"))?;
    let key = format!("{prefix}{name}");
    let bytes = storage
        .get(&key)
        .await?
        .with_context(|| format!("{key} listed but gone"))?;
    let index = IndexPart::from_json_object(&bytes, name, ParseMode::Strict)
        .with_context(|| format!("index {key}"))?;
    let layers: Vec<Drawn> = index
        .layers
        .iter()
        .map(|(layer, meta)| Drawn {
            name: layer.clone(),
            level: meta.level,
            generation: meta.generation,
        })
        .collect();
    let marks = Marks {
        gc_cutoff: index.gc_cutoff_lsn,
        remote_consistent: Some(index.disk_consistent_lsn),
    };
    let title = format!("tenant {tenant} timeline {timeline}, {name}");
    Ok(svg(&title, &layers, &marks))
}
