//! The rules of `scrub` and `purge-garbage` for one timeline, as pure functions of a listing,
//! the tenant's highest generation claim and the index versions as read: what is wrong, what is
//! provably garbage, and what must be kept although the authoritative index does not
//! reference it.
//!
//! **Why deleting the garbage is safe** (no clock, no coordination with a live attachment).
//! Let G be the highest generation claimed, listed before the timelines and again after them
//! (and once more by purge just before it deletes: if it changed, nothing of the tenant is
//! deleted), and `A` the authoritative index, the highest index version of generation at most
//! G. Nothing of a timeline is garbage unless `A` is of generation G (the current attachment has
//! uploaded an index) and no object of a generation above G was listed in the tenant.
//!
//! The facts the argument rests on: the server never deletes an index version; every layer a
//! live attachment (or an incarnation of it after a reset) holds of a generation below its own
//! came from the index version it loaded, which existed when it listed; new layers carry the
//! writer's generation; an index version that lands late (an ambiguous put of a stopped
//! incarnation or of a fenced attachment) is derived from some loaded state in the same way.
//!
//! * A layer object of a generation below G is garbage only if **no listed index version**
//!   references it (not only `A`: after a reset, an incarnation may have loaded an older
//!   version than `A`, when `A` landed late). Such an object was never referenced by any index
//!   that existed when it was listed, so no live state holds it, and no later index can name it
//!   (later indexes of G derive from live state; a late index of an older generation sorts below
//!   `A` and is never chosen by G or anyone after).
//! * An index version below `A` is garbage, beyond the newest `keep`, only if every listed layer
//!   it references is referenced by `A` too. So purge never leaves a listed layer referenced by
//!   no index version: the invariant above survives every purge, and the first rule stays sound
//!   across runs.
//! * A layer object of generation G (or above: claimed since the listing) that nothing references
//!   may be an upload in flight (the index naming it not uploaded yet): always kept, and one
//!   above G blocks every deletion in its tenant.
//!
//! What purge therefore leaves in place: a stale attachment's layers named by its own late index
//! versions (scrub reports them), until a newer version that no longer lists them exists.
//! Objects whose names this build does not recognise are reported and never deleted; nor are
//! generation claims (I8).

use crate::remote::ListedObject;
use index_part::IndexPart;
use index_part::names::{Generation, IndexObjectName, LayerFileName};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What kind of object of a timeline a listing entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A version of the index.
    Index(IndexObjectName),
    /// A layer object.
    Layer(LayerFileName),
    /// A name this build does not recognise.
    Unknown,
}

/// Classifies the key of an object below a timeline's prefix (`prefix` ends in `/`).
pub fn classify(prefix: &str, key: &str) -> Entry {
    let Some(name) = key.strip_prefix(prefix).filter(|n| !n.contains('/')) else {
        return Entry::Unknown;
    };
    if let Ok(index) = name.parse::<IndexObjectName>() {
        return Entry::Index(index);
    }
    match name.parse::<LayerFileName>() {
        Ok(layer) => Entry::Layer(layer),
        Err(_) => Entry::Unknown,
    }
}

/// Something wrong in a timeline (scrub exits 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `missing`, `wrong_size`, `bad_checksum`, `unreadable_index`, `no_index`,
    /// `unclaimed_generation`, `claims_changed`, `orphan` or `unknown_object`.
    pub kind: &'static str,
    /// The object concerned.
    pub object: String,
    /// What was expected and found.
    pub detail: String,
}

/// An object that purge deletes, and why it is safe to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Garbage {
    /// The object.
    pub object: String,
    /// Its size in bytes.
    pub size: u64,
    /// Why nothing needs it.
    pub reason: String,
}

/// An object the authoritative index does not reference that is kept all the same, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The object.
    pub object: String,
    /// Why it is kept.
    pub reason: String,
}

/// The verdict on one timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The authoritative index, if there is one.
    pub authoritative_index: Option<String>,
    /// Layers the authoritative index references.
    pub layers_referenced: usize,
    /// Their total size as the index records it.
    pub bytes_referenced: u64,
    /// Index versions listed.
    pub index_versions: usize,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// What purge may delete.
    pub garbage: Vec<Garbage>,
    /// Unreferenced objects that are kept.
    pub kept: Vec<Kept>,
    /// An object of a generation above the highest claim was listed: a newer attachment is at
    /// work, and nothing of the tenant may be deleted.
    #[serde(skip)]
    pub newer_generation_seen: bool,
    /// Referenced layer objects present with the recorded size, with the CRC32C the index
    /// records: the ones `--verify-checksums` downloads.
    #[serde(skip)]
    pub to_verify: Vec<(String, u32)>,
}

impl Verdict {
    /// Turns every garbage entry into a kept one, for `reason` (a tenant-wide doubt).
    pub fn keep_all(&mut self, reason: &str) {
        for g in std::mem::take(&mut self.garbage) {
            self.kept.push(Kept {
                object: g.object,
                reason: reason.to_string(),
            });
        }
    }
}

/// The layer file names an index version references, or why it could not be read.
pub type Refs = Result<BTreeSet<String>, String>;

/// The layer file names `index` references.
pub fn refs_of(index: &IndexPart) -> BTreeSet<String> {
    index
        .layers
        .iter()
        .map(|(l, m)| IndexPart::file_name(l, m).to_string())
        .collect()
}

/// The authoritative index of a timeline's listing for an attachment of `current` (the
/// highest claim; `None` if the tenant has none, when every index is a candidate): the
/// server's rule (`index_part::select_authoritative`), the highest `(generation, seq)` at or
/// below the attachment's generation.
pub fn authoritative(
    prefix: &str,
    objects: &[ListedObject],
    current: Option<Generation>,
) -> Option<IndexObjectName> {
    index_versions(prefix, objects)
        .filter(|name| current.is_none_or(|g| name.generation <= g))
        .max()
}

/// Every index version in a listing.
pub fn index_versions<'a>(
    prefix: &'a str,
    objects: &'a [ListedObject],
) -> impl Iterator<Item = IndexObjectName> + 'a {
    objects
        .iter()
        .filter_map(move |o| match classify(prefix, &o.key) {
            Entry::Index(name) => Some(name),
            _ => None,
        })
}

/// Judges one timeline. `index` is the authoritative index as read (or why it could not be
/// read), `None` if the listing has none; `others` the layers each other listed index version
/// references (a version missing from it counts as unreadable); `keep` older index versions are
/// kept whatever they reference.
pub fn judge(
    prefix: &str,
    objects: &[ListedObject],
    current: Option<Generation>,
    index: Option<(IndexObjectName, Result<IndexPart, String>)>,
    others: &BTreeMap<IndexObjectName, Refs>,
    keep: usize,
) -> Verdict {
    let mut v = Verdict::default();
    let mut layers: BTreeMap<String, &ListedObject> = BTreeMap::new();
    let mut versions: Vec<(IndexObjectName, &ListedObject)> = Vec::new();
    for o in objects {
        match classify(prefix, &o.key) {
            Entry::Index(name) => {
                unclaimed(&mut v, current, name.generation, "index", &o.key);
                versions.push((name, o));
            }
            Entry::Layer(file) => {
                unclaimed(&mut v, current, file.generation, "layer", &o.key);
                layers.insert(file.to_string(), o);
            }
            Entry::Unknown => v.problems.push(Problem {
                kind: "unknown_object",
                object: o.key.clone(),
                detail: "not a layer or index name of this build; never deleted".into(),
            }),
        }
    }
    v.index_versions = versions.len();
    let Some((auth_name, parsed)) = index else {
        for (name, o) in &layers {
            v.problems.push(Problem {
                kind: "no_index",
                object: o.key.clone(),
                detail: format!("layer {name} in a timeline without any index version"),
            });
        }
        return v;
    };
    v.authoritative_index = Some(format!("{prefix}{auth_name}"));
    let index = match parsed {
        Ok(i) => i,
        Err(e) => {
            v.problems.push(Problem {
                kind: "unreadable_index",
                object: format!("{prefix}{auth_name}"),
                detail: e,
            });
            return v;
        }
    };
    let auth_refs = refs_of(&index);
    // Deleting anything needs the current attachment's own index and nothing above it.
    let provable = current == Some(auth_name.generation) && !v.newer_generation_seen;
    for (layer, meta) in &index.layers {
        let name = IndexPart::file_name(layer, meta).to_string();
        v.layers_referenced += 1;
        v.bytes_referenced += meta.file_size;
        match layers.remove(&name) {
            None => v.problems.push(Problem {
                kind: "missing",
                object: format!("{prefix}{name}"),
                detail: format!("referenced by {auth_name}, {} bytes", meta.file_size),
            }),
            Some(o) if o.size != meta.file_size => v.problems.push(Problem {
                kind: "wrong_size",
                object: o.key.clone(),
                detail: format!("{} bytes stored, {} in the index", o.size, meta.file_size),
            }),
            Some(o) => v.to_verify.push((o.key.clone(), meta.checksum)),
        }
    }
    // The other versions, as read; one not read counts as unreadable.
    let mut unreadable = Vec::new();
    let mut referenced_elsewhere: BTreeMap<&str, IndexObjectName> = BTreeMap::new();
    for (name, _) in versions.iter().filter(|(n, _)| *n != auth_name) {
        match others.get(name) {
            Some(Ok(refs)) => {
                for r in refs {
                    referenced_elsewhere.entry(r.as_str()).or_insert(*name);
                }
            }
            Some(Err(e)) => {
                unreadable.push(*name);
                v.problems.push(Problem {
                    kind: "unreadable_index",
                    object: format!("{prefix}{name}"),
                    detail: e.clone(),
                });
            }
            None => unreadable.push(*name),
        }
    }
    let blocked = |v: &Verdict| -> Option<String> {
        if !provable {
            return Some(not_provable(current, auth_name, v.newer_generation_seen));
        }
        unreadable.first().map(|u| {
            format!(
                "index version {u} was not read, so what it references is unknown: nothing is deleted"
            )
        })
    };
    for (name, o) in &layers {
        let generation = name
            .parse::<LayerFileName>()
            .expect("classified as a layer")
            .generation;
        if current.is_some_and(|g| generation >= g) {
            v.kept.push(Kept {
                object: o.key.clone(),
                reason: format!(
                    "generation {generation} is not older than the current one: may be an upload in flight"
                ),
            });
            continue;
        }
        if let Some(by) = referenced_elsewhere.get(name.as_str()) {
            v.kept.push(Kept {
                object: o.key.clone(),
                reason: format!(
                    "referenced by index version {by}, not by {auth_name}: superseded (the server deletes what it replaced), or a stale attachment's"
                ),
            });
            continue;
        }
        v.problems.push(Problem {
            kind: "orphan",
            object: o.key.clone(),
            detail: format!("layer of generation {generation} that no index version references"),
        });
        match blocked(&v) {
            None => v.garbage.push(Garbage {
                object: o.key.clone(),
                size: o.size,
                reason: format!(
                    "generation {generation} is older than the current attachment's index {auth_name}, and no index version references it"
                ),
            }),
            Some(reason) => v.kept.push(Kept {
                object: o.key.clone(),
                reason,
            }),
        }
    }
    versions.sort_by_key(|(name, _)| *name);
    let older: Vec<_> = versions.iter().filter(|(n, _)| *n < auth_name).collect();
    let stale = older.len().saturating_sub(keep);
    for (name, o) in &older[..stale] {
        let extra = match others.get(name) {
            Some(Ok(refs)) => refs
                .iter()
                .find(|r| layers.contains_key(r.as_str()) && !auth_refs.contains(*r)),
            _ => None,
        };
        let reason = match (blocked(&v), extra) {
            (Some(reason), _) => reason,
            (None, Some(layer)) => format!(
                "references {layer}, which is stored and which {auth_name} does not reference: kept so that it stays referenced"
            ),
            (None, None) => {
                v.garbage.push(Garbage {
                    object: o.key.clone(),
                    size: o.size,
                    reason: format!(
                        "index version {name} is older than {auth_name} and the {keep} kept before it, and every stored layer it references is in {auth_name}"
                    ),
                });
                continue;
            }
        };
        v.kept.push(Kept {
            object: o.key.clone(),
            reason,
        });
    }
    v
}

/// Whether [`judge`] needs the other index versions read: only when something could be
/// garbage (a stored layer of an older generation that `A` does not reference, or more than
/// `keep` versions below `A`). Reading every version of a long-lived timeline costs one
/// download each.
pub fn needs_other_versions(
    prefix: &str,
    objects: &[ListedObject],
    current: Option<Generation>,
    auth: IndexObjectName,
    auth_refs: &BTreeSet<String>,
    keep: usize,
) -> bool {
    let below = index_versions(prefix, objects)
        .filter(|n| *n < auth)
        .count();
    below > keep
        || objects.iter().any(|o| match classify(prefix, &o.key) {
            Entry::Layer(f) => {
                current.is_some_and(|g| f.generation < g) && !auth_refs.contains(&f.to_string())
            }
            _ => false,
        })
}

/// Notes an object of a generation above the highest claim listed: a newer attachment is at
/// work, so nothing of the tenant may be deleted.
fn unclaimed(v: &mut Verdict, current: Option<Generation>, g: Generation, what: &str, key: &str) {
    if current.is_some_and(|c| g > c) {
        v.newer_generation_seen = true;
        v.problems.push(Problem {
            kind: "unclaimed_generation",
            object: key.to_string(),
            detail: format!("{what} of generation {g} above the highest claim listed; scrub again"),
        });
    }
}

fn not_provable(current: Option<Generation>, auth: IndexObjectName, newer: bool) -> String {
    match current {
        _ if newer => "an object above the highest claim exists: nothing is deleted".into(),
        None => "the tenant has no generation claim: nothing is deleted".into(),
        Some(g) => format!(
            "the current generation {g} has not uploaded an index yet (authoritative is {auth}): nothing is deleted until it does"
        ),
    }
}

#[cfg(test)]
mod tests;
