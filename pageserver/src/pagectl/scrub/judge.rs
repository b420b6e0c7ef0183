//! The rules of `scrub` and `purge-garbage` for one timeline, as pure functions of a listing,
//! the tenant's highest generation claim and the authoritative index: what is wrong, what is
//! provably garbage, and what must be kept although nothing references it.
//!
//! **Why deleting the garbage is safe** (no clock, no coordination with a live attachment).
//! Let G be the highest generation claimed when the scrub listed the claims, and `A` the
//! authoritative index found after that, the highest index version of generation at most G.
//! Nothing of a timeline is garbage unless `A` is of generation G itself (the current
//! attachment has uploaded an index) and no index of a higher generation was seen. Then:
//!
//! * A layer object of a generation below G that `A` does not reference is never referenced
//!   again. Every index that the attachment of G writes after `A` derives from its layer map,
//!   which only loses layers of older generations (new layers carry G). An attachment that
//!   claims later loads an index at least as new as `A` (it claims, then lists; `A` is never
//!   deleted), so it starts from a subset of `A`'s older layers. A fenced attachment of an
//!   older generation may still upload, but its indexes sort below `A` and are never chosen.
//! * A layer object of generation G (or above: claimed since the listing) that nothing
//!   references may be an upload in flight (the index naming it not uploaded yet): always
//!   kept, and one above G blocks every deletion in its timeline.
//! * An index version below `A` is never chosen again by anyone (selection takes the highest
//!   at or below the attachment's generation, and `A` stays); the newest `keep` of them are
//!   kept anyway, for operators.
//!
//! Objects whose names this build does not recognise are reported and never deleted; nor are
//! generation claims (I8).

use crate::remote::ListedObject;
use index_part::IndexPart;
use index_part::names::{Generation, IndexObjectName, LayerFileName};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// `unclaimed_generation`, `orphan` or `unknown_object`.
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

/// An object nothing references that is kept all the same, and why.
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
    /// Referenced layer objects present with the recorded size, with the CRC32C the index
    /// records: the ones `--verify-checksums` downloads.
    #[serde(skip)]
    pub to_verify: Vec<(String, u32)>,
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
    objects
        .iter()
        .filter_map(|o| match classify(prefix, &o.key) {
            Entry::Index(name) => Some(name),
            _ => None,
        })
        .filter(|name| current.is_none_or(|g| name.generation <= g))
        .max()
}

/// Judges one timeline. `index` is the authoritative index as read (or why it could not be
/// read), `None` if the listing has none; `keep` older index versions are kept.
pub fn judge(
    prefix: &str,
    objects: &[ListedObject],
    current: Option<Generation>,
    index: Option<(IndexObjectName, Result<IndexPart, String>)>,
    keep: usize,
) -> Verdict {
    let mut v = Verdict::default();
    let mut layers: BTreeMap<String, &ListedObject> = BTreeMap::new();
    let mut versions: Vec<(IndexObjectName, &ListedObject)> = Vec::new();
    let mut unclaimed = false;
    for o in objects {
        match classify(prefix, &o.key) {
            Entry::Index(name) => {
                if current.is_some_and(|g| name.generation > g) {
                    unclaimed = true;
                    v.problems.push(Problem {
                        kind: "unclaimed_generation",
                        object: o.key.clone(),
                        detail: format!(
                            "index of generation {} above the highest claim {}",
                            name.generation,
                            current.map(|g| g.to_string()).unwrap_or_default()
                        ),
                    });
                }
                versions.push((name, o));
            }
            Entry::Layer(file) => {
                if current.is_some_and(|g| file.generation > g) {
                    // Claimed after the claims were listed: a newer attachment is at work.
                    unclaimed = true;
                    v.problems.push(Problem {
                        kind: "unclaimed_generation",
                        object: o.key.clone(),
                        detail: format!(
                            "layer of generation {} above the highest claim listed; scrub again",
                            file.generation
                        ),
                    });
                }
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
    // Deleting anything needs the current attachment's own index and nothing above it.
    let provable = current == Some(auth_name.generation) && !unclaimed;
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
    for (name, o) in layers {
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
        v.problems.push(Problem {
            kind: "orphan",
            object: o.key.clone(),
            detail: format!("layer of generation {generation} that {auth_name} does not reference"),
        });
        if provable {
            v.garbage.push(Garbage {
                object: o.key.clone(),
                size: o.size,
                reason: format!(
                    "generation {generation} is older than the current attachment's index {auth_name}, which does not reference it"
                ),
            });
        } else {
            v.kept.push(Kept {
                object: o.key.clone(),
                reason: not_provable(current, auth_name, unclaimed),
            });
        }
    }
    versions.sort_by_key(|(name, _)| *name);
    let older: Vec<_> = versions.iter().filter(|(n, _)| *n < auth_name).collect();
    let stale = older.len().saturating_sub(keep);
    for (name, o) in &older[..stale] {
        if provable {
            v.garbage.push(Garbage {
                object: o.key.clone(),
                size: o.size,
                reason: format!(
                    "index version {name} is older than {auth_name} and the {keep} kept before it"
                ),
            });
        } else {
            v.kept.push(Kept {
                object: o.key.clone(),
                reason: not_provable(current, auth_name, unclaimed),
            });
        }
    }
    v
}

fn not_provable(current: Option<Generation>, auth: IndexObjectName, unclaimed: bool) -> String {
    match current {
        _ if unclaimed => "an index above the highest claim exists: nothing is deleted".into(),
        None => "the tenant has no generation claim: nothing is deleted".into(),
        Some(g) => format!(
            "the current generation {g} has not uploaded an index yet (authoritative is {auth}): nothing is deleted until it does"
        ),
    }
}

#[cfg(test)]
mod tests;
