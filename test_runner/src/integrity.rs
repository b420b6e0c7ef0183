//! The integrity checker and the history oracle, for either remote backend.
//!
//! * Every layer the authoritative index references exists remotely with the recorded size and
//!   checksum; no temp file remains locally; every local layer file is in the index.
//! * The history oracle records the bytes (CRC32C and length) of every remote object when first
//!   seen and fails if an object ever changes: nothing is overwritten (I4, I5).

use crate::remote::Remote;
use anyhow::{Context, bail, ensure};
use index_part::names::{Generation, IndexObjectName, LocalFile, classify_local};
use index_part::{IndexPart, ParseMode, select_authoritative};
use std::collections::HashMap;
use std::path::Path;

/// Every remote object's bytes as first seen.
#[derive(Debug, Default)]
pub struct History {
    seen: HashMap<String, (usize, u32)>,
}

impl History {
    /// Records every object of `remote`; fails if one differs from what was seen.
    pub async fn observe(&mut self, remote: &Remote) -> anyhow::Result<usize> {
        let mut n = 0;
        for key in remote.list("").await? {
            let Some(bytes) = remote.get(&key).await? else {
                continue;
            }; // deleted meanwhile
            let now = (bytes.len(), crc32c::crc32c(&bytes));
            match self.seen.get(&key) {
                Some(first) if *first != now => {
                    bail!("remote object {key} changed: first {first:?}, now {now:?}")
                }
                Some(_) => {}
                None => {
                    self.seen.insert(key, now);
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

/// What the checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    /// The authoritative index.
    pub index: IndexObjectName,
    /// Layers it references (all present remotely and sound).
    pub layers: usize,
}

/// Checks the invariants of the timeline `tenant/timeline` whose remote storage is `remote`
/// and local files are under `workdir`. The index checked is the authoritative one for the
/// highest generation claimed.
pub async fn check(
    remote: &Remote,
    workdir: &Path,
    tenant: &str,
    timeline: &str,
) -> anyhow::Result<Integrity> {
    let prefix = format!("tenants/{tenant}/timelines/{timeline}/");
    let keys = remote.list(&prefix).await?;
    let generations = remote
        .list(&format!("tenants/{tenant}/generations/"))
        .await?;
    let mine = generations
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.parse::<Generation>().ok())
        .max()
        .context("no generation claimed")?;
    let sel = select_authoritative(
        keys.iter().map(|k| k.strip_prefix(&prefix).unwrap_or(k)),
        mine,
    )?;
    let object = sel.authoritative.context("no index uploaded")?;
    let bytes = remote
        .get(&format!("{prefix}{object}"))
        .await?
        .with_context(|| format!("{object} vanished"))?;
    let index = IndexPart::from_json_object(&bytes, object, ParseMode::Strict)?;
    for (name, meta) in &index.layers {
        let file = IndexPart::file_name(name, meta);
        let data = remote
            .get(&format!("{prefix}{file}"))
            .await?
            .with_context(|| format!("{object} references missing {file}"))?;
        ensure!(
            data.len() as u64 == meta.file_size,
            "{file}: size {} but the index records {}",
            data.len(),
            meta.file_size
        );
        ensure!(
            crc32c::crc32c(&data) == meta.checksum,
            "{file}: checksum differs from the index"
        );
    }
    let local = workdir
        .join("tenants")
        .join(tenant)
        .join("timelines")
        .join(timeline);
    for e in std::fs::read_dir(&local).with_context(|| format!("list {}", local.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        match classify_local(&name) {
            LocalFile::Temp => bail!("temp file {name} remains"),
            LocalFile::Layer(f) => {
                ensure!(
                    index
                        .layers
                        .get(&f.layer)
                        .is_some_and(|m| m.generation == f.generation),
                    "local layer {name} is not in the index"
                );
            }
            LocalFile::LostAndFound | LocalFile::Unrecognised => {}
        }
    }
    Ok(Integrity {
        index: object,
        layers: index.layers.len(),
    })
}
