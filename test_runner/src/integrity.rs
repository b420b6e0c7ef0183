//! The integrity checker and the history oracle (for the local remote-storage backend).
//!
//! * Every layer the authoritative index references exists remotely with the recorded size and
//!   checksum; no temp file remains locally; every local layer file is in the index.
//! * The history oracle records the bytes (CRC32C and length) of every remote object when first
//!   seen and fails if an object ever changes: nothing is overwritten (I4, I5).

use anyhow::{Context, bail, ensure};
use index_part::names::{Generation, IndexObjectName, LocalFile, classify_local};
use index_part::{IndexPart, ParseMode, select_authoritative};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn walk(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push((rel.to_string_lossy().into_owned(), p));
            }
        }
    }
    out.sort();
    out
}

/// Every remote object's bytes as first seen.
#[derive(Debug, Default)]
pub struct History {
    seen: HashMap<String, (usize, u32)>,
}

impl History {
    /// Records every object under `remote_root`; fails if one differs from what was seen.
    pub fn observe(&mut self, remote_root: &Path) -> anyhow::Result<usize> {
        let mut n = 0;
        for (key, path) in walk(remote_root) {
            if key.ends_with(".___temp") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
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

/// Checks the invariants of the timeline `tenant/timeline` in a work directory whose remote
/// storage is `<workdir>/remote_storage`.
pub fn check(workdir: &Path, tenant: &str, timeline: &str) -> anyhow::Result<Integrity> {
    check_with_remote(&workdir.join("remote_storage"), workdir, tenant, timeline)
}

/// [`check`] with remote storage at `remote` (shared by several pageservers). The index
/// checked is the authoritative one for the highest generation claimed.
pub fn check_with_remote(
    remote: &Path,
    workdir: &Path,
    tenant: &str,
    timeline: &str,
) -> anyhow::Result<Integrity> {
    let remote = remote.to_path_buf();
    let prefix = format!("tenants/{tenant}/timelines/{timeline}/");
    let keys: Vec<String> = walk(&remote)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(&prefix))
        .collect();
    let generations = walk(&remote.join(format!("tenants/{tenant}/generations")));
    let mine = generations
        .iter()
        .filter_map(|(k, _)| k.parse::<Generation>().ok())
        .max()
        .context("no generation claimed")?;
    let sel = select_authoritative(keys.iter().map(String::as_str), mine)?;
    let object = sel.authoritative.context("no index uploaded")?;
    let bytes = std::fs::read(remote.join(&prefix).join(object.to_string()))?;
    let index = IndexPart::from_json_object(&bytes, object, ParseMode::Strict)?;
    for (name, meta) in &index.layers {
        let file = IndexPart::file_name(name, meta);
        let data = std::fs::read(remote.join(&prefix).join(file.to_string()))
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
