use super::*;
use index_part::names::TenantId;
use index_part::{LayerMetadata, LayerName, TimelineMetadata};
use layer_format::{Key, Lsn};
use proptest::prelude::*;

const PREFIX: &str = "tenants/t/timelines/l/";

fn layer(i: u128, generation: u32) -> LayerFileName {
    LayerFileName {
        layer: LayerName::Image {
            key_range: Key::from_u128(i)..Key::from_u128(i + 1),
            lsn: Lsn(16),
        },
        generation: Generation(generation),
    }
}

fn obj(name: &str, size: u64) -> ListedObject {
    ListedObject {
        key: format!("{PREFIX}{name}"),
        size,
    }
}

fn index_name(generation: u32, seq: u32) -> IndexObjectName {
    IndexObjectName {
        generation: Generation(generation),
        seq,
    }
}

/// An index of `generation` referencing `layers` (each of size 100 + its key).
fn index(generation: u32, layers: &[LayerFileName]) -> IndexPart {
    let id = "00000000000000000000000000000001";
    let mut index = IndexPart::new(
        Generation(generation),
        TimelineMetadata {
            tenant_id: id.parse::<TenantId>().unwrap(),
            timeline_id: id.parse().unwrap(),
            created_at: std::time::UNIX_EPOCH,
        },
    );
    for l in layers {
        index.layers.insert(
            l.layer.clone(),
            LayerMetadata {
                file_size: size_of(l),
                generation: l.generation,
                checksum: 7,
                level: None,
            },
        );
    }
    index
}

fn size_of(l: &LayerFileName) -> u64 {
    match &l.layer {
        LayerName::Image { key_range, .. } | LayerName::Delta { key_range, .. } => {
            100 + key_range.start.to_u128() as u64
        }
    }
}

/// A listing of `layers` and of index `versions` (each with the layers it references), judged
/// for an attachment of `current`, every version read.
fn judge_all(
    layers: &[LayerFileName],
    versions: &[(IndexObjectName, Vec<LayerFileName>)],
    extra: &[ListedObject],
    current: u32,
    keep: usize,
) -> Verdict {
    let mut objects: Vec<ListedObject> = layers
        .iter()
        .map(|l| obj(&l.to_string(), size_of(l)))
        .chain(versions.iter().map(|(n, _)| obj(&n.to_string(), 10)))
        .chain(extra.iter().cloned())
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let current = Some(Generation(current));
    let auth = authoritative(PREFIX, &objects, current).expect("an index");
    let refs = |n: IndexObjectName| &versions.iter().find(|(v, _)| *v == n).expect("listed").1;
    let others: BTreeMap<IndexObjectName, Refs> = versions
        .iter()
        .filter(|(n, _)| *n != auth)
        .map(|(n, l)| (*n, Ok(l.iter().map(|f| f.to_string()).collect())))
        .collect();
    let parsed = Ok(index(auth.generation.0, refs(auth)));
    judge(
        PREFIX,
        &objects,
        current,
        Some((auth, parsed)),
        &others,
        keep,
    )
}

fn kinds(v: &Verdict) -> Vec<(&'static str, String)> {
    v.problems
        .iter()
        .map(|p| (p.kind, p.object.trim_start_matches(PREFIX).to_string()))
        .collect()
}

fn names(list: impl Iterator<Item = String>) -> Vec<String> {
    list.map(|o| o.trim_start_matches(PREFIX).to_string())
        .collect()
}

#[test]
fn a_healthy_timeline_has_no_problem_and_no_garbage() {
    let (a, b) = (layer(1, 1), layer(2, 2));
    let v = judge_all(
        &[a.clone(), b.clone()],
        &[(index_name(2, 1), vec![a.clone(), b.clone()])],
        &[],
        2,
        5,
    );
    assert_eq!(v.problems, vec![]);
    assert_eq!(v.garbage, vec![]);
    assert_eq!(v.kept, vec![]);
    assert_eq!(v.layers_referenced, 2);
    assert_eq!(v.bytes_referenced, size_of(&a) + size_of(&b));
    assert_eq!(v.to_verify.len(), 2);
}

#[test]
fn missing_and_wrongly_sized_objects_are_problems() {
    let (a, b) = (layer(1, 1), layer(2, 1));
    let mut objects = vec![
        obj(&b.to_string(), size_of(&b) + 1),
        obj(&index_name(1, 3).to_string(), 10),
    ];
    objects.sort_by(|x, y| x.key.cmp(&y.key));
    let v = judge(
        PREFIX,
        &objects,
        Some(Generation(1)),
        Some((index_name(1, 3), Ok(index(1, &[a.clone(), b.clone()])))),
        &BTreeMap::new(),
        5,
    );
    assert_eq!(
        kinds(&v),
        vec![("missing", a.to_string()), ("wrong_size", b.to_string())]
    );
    assert!(v.garbage.is_empty() && v.to_verify.is_empty());
}

#[test]
fn an_older_generation_orphan_is_garbage_once_the_current_generation_has_an_index() {
    let (kept, orphan) = (layer(1, 1), layer(2, 1));
    let versions = [
        (index_name(1, 1), vec![kept.clone()]),
        (index_name(2, 1), vec![kept.clone()]),
    ];
    let v = judge_all(&[kept.clone(), orphan.clone()], &versions, &[], 2, 5);
    assert_eq!(kinds(&v), vec![("orphan", orphan.to_string())]);
    let garbage: Vec<_> = v
        .garbage
        .iter()
        .map(|g| (g.object.clone(), g.size))
        .collect();
    assert_eq!(
        garbage,
        vec![(format!("{PREFIX}{orphan}"), size_of(&orphan))]
    );

    // The current generation 3 has not uploaded an index: the same orphan is kept.
    let v = judge_all(&[kept.clone(), orphan.clone()], &versions, &[], 3, 5);
    assert_eq!(kinds(&v), vec![("orphan", orphan.to_string())]);
    assert!(v.garbage.is_empty());
    assert_eq!(v.kept.len(), 1);
    assert!(
        v.kept[0].reason.contains("has not uploaded an index"),
        "{:?}",
        v.kept
    );
}

/// The reset race the first rule missed (found in review): incarnation O of generation 2 had
/// (2, 4) confirmed, naming X; its put of (2, 5) without X was in flight when a reset started
/// incarnation N, which loaded (2, 4) and holds X; then (2, 5) landed. Before N's first index
/// lands, (2, 5) is authoritative and does not name X. X must stay, and so must (2, 4), the
/// only version that names it.
#[test]
fn a_layer_an_older_version_references_is_kept_and_so_is_that_version() {
    let x = layer(1, 1);
    let versions = [
        (index_name(2, 4), vec![x.clone()]),
        (index_name(2, 5), vec![]),
    ];
    let v = judge_all(std::slice::from_ref(&x), &versions, &[], 2, 0);
    assert_eq!(v.problems, vec![], "superseded, not an orphan");
    assert_eq!(v.garbage, vec![]);
    let kept = names(v.kept.iter().map(|k| k.object.clone()));
    assert_eq!(kept, vec![x.to_string(), index_name(2, 4).to_string()]);
}

#[test]
fn an_unread_older_version_blocks_every_deletion_of_the_timeline() {
    let orphan = layer(3, 1);
    let mut objects = vec![
        obj(&orphan.to_string(), 5),
        obj(&index_name(2, 1).to_string(), 10),
        obj(&index_name(2, 2).to_string(), 10),
    ];
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let others = BTreeMap::from([(index_name(2, 1), Err("bad json".to_string()))]);
    let current = Some(Generation(2));
    let auth = Some((index_name(2, 2), Ok(index(2, &[]))));
    let v = judge(PREFIX, &objects, current, auth.clone(), &others, 0);
    assert!(v.garbage.is_empty(), "{:?}", v.garbage);
    assert!(kinds(&v).contains(&("unreadable_index", index_name(2, 1).to_string())));
    // Not read at all counts the same.
    let v = judge(PREFIX, &objects, current, auth, &BTreeMap::new(), 0);
    assert!(v.garbage.is_empty(), "{:?}", v.garbage);
}

#[test]
fn an_unreferenced_layer_of_the_current_generation_is_kept_as_in_flight() {
    let fresh = layer(9, 4);
    let v = judge_all(
        std::slice::from_ref(&fresh),
        &[(index_name(4, 2), vec![])],
        &[],
        4,
        5,
    );
    assert_eq!(v.problems, vec![]);
    assert!(v.garbage.is_empty());
    assert_eq!(v.kept[0].object, format!("{PREFIX}{fresh}"));
    assert!(v.kept[0].reason.contains("in flight"));
}

#[test]
fn old_index_versions_beyond_the_kept_count_are_garbage_and_the_authoritative_never() {
    let versions: Vec<(IndexObjectName, Vec<LayerFileName>)> = (1..=4)
        .map(|s| (index_name(1, s), vec![]))
        .chain((1..=4).map(|s| (index_name(2, s), vec![])))
        .collect();
    let v = judge_all(&[], &versions, &[], 2, 3);
    assert_eq!(v.problems, vec![]);
    // Seven versions are older than (2, 4); the newest three of them are kept.
    let expected: Vec<String> = [(1, 1), (1, 2), (1, 3), (1, 4)]
        .iter()
        .map(|&(g, s)| index_name(g, s).to_string())
        .collect();
    assert_eq!(names(v.garbage.iter().map(|g| g.object.clone())), expected);
    assert_eq!(v.index_versions, 8);
}

#[test]
fn unknown_objects_and_unclaimed_generations_are_problems_and_block_deletion() {
    let orphan = layer(3, 1);
    let extra = [obj("notes.txt", 3), obj("nested/thing", 3)];
    let versions = [(index_name(2, 1), vec![]), (index_name(5, 1), vec![])];
    let v = judge_all(std::slice::from_ref(&orphan), &versions, &extra, 2, 0);
    let got = kinds(&v);
    assert!(
        got.contains(&("unknown_object", "notes.txt".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("unknown_object", "nested/thing".into())),
        "{got:?}"
    );
    assert!(got.contains(&("unclaimed_generation", index_name(5, 1).to_string())));
    assert!(got.contains(&("orphan", orphan.to_string())));
    assert!(v.garbage.is_empty(), "{:?}", v.garbage);
    assert!(v.newer_generation_seen);

    // A layer of a generation claimed after the claims were listed: a newer attachment's
    // upload in flight, never garbage, and nothing else is deleted either (found by
    // `garbage_is_never_needed`, which deleted it before the rule existed).
    let newer = layer(4, 3);
    let v = judge_all(
        &[orphan.clone(), newer.clone()],
        &[(index_name(2, 1), vec![])],
        &[],
        2,
        0,
    );
    assert!(kinds(&v).contains(&("unclaimed_generation", newer.to_string())));
    assert!(v.garbage.is_empty(), "{:?}", v.garbage);
    assert!(
        v.kept
            .iter()
            .any(|k| k.object.ends_with(&newer.to_string()))
    );
}

#[test]
fn an_unreadable_or_absent_authoritative_index_is_a_problem_and_deletes_nothing() {
    let a = layer(1, 1);
    let objects = vec![
        obj(&a.to_string(), 5),
        obj(&index_name(1, 1).to_string(), 10),
        obj(&index_name(1, 2).to_string(), 10),
    ];
    let current = Some(Generation(1));
    let v = judge(
        PREFIX,
        &objects,
        current,
        Some((index_name(1, 2), Err("bad json".into()))),
        &BTreeMap::new(),
        0,
    );
    assert_eq!(
        kinds(&v),
        vec![("unreadable_index", index_name(1, 2).to_string())]
    );
    assert!(v.garbage.is_empty());
    let v = judge(PREFIX, &objects[..1], current, None, &BTreeMap::new(), 0);
    assert_eq!(kinds(&v), vec![("no_index", a.to_string())]);
    assert!(v.garbage.is_empty());
}

/// A drawn listing: layers `(key, generation)`, index versions `(generation, seq, which layers
/// each references)`, the current generation, the kept count.
type Drawn = (Vec<(u128, u32)>, Vec<(u32, u32, Vec<bool>)>, u32, usize);

fn listing() -> impl Strategy<Value = Drawn> {
    (
        proptest::collection::vec((0u128..12, 1u32..5), 0..14),
        proptest::collection::vec(
            (
                1u32..5,
                1u32..4,
                proptest::collection::vec(any::<bool>(), 14),
            ),
            1..8,
        ),
        1u32..5,
        0usize..4,
    )
}

fn build(
    layers: &[(u128, u32)],
    versions: &[(u32, u32, Vec<bool>)],
) -> (
    Vec<LayerFileName>,
    Vec<(IndexObjectName, Vec<LayerFileName>)>,
) {
    let mut files: Vec<LayerFileName> = layers.iter().map(|&(k, g)| layer(k, g)).collect();
    files.sort_by_key(|f| f.to_string());
    files.dedup_by_key(|f| f.to_string());
    let mut out: Vec<(IndexObjectName, Vec<LayerFileName>)> = Vec::new();
    for (g, s, pick) in versions {
        let name = index_name(*g, *s);
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        // An index names at most one layer per layer name; any generation up to its own.
        let mut refs: Vec<LayerFileName> = Vec::new();
        for (f, _) in files
            .iter()
            .zip(pick)
            .filter(|(f, p)| **p && f.generation.0 <= *g)
        {
            if !refs.iter().any(|r| r.layer == f.layer) {
                refs.push(f.clone());
            }
        }
        out.push((name, refs));
    }
    (files, out)
}

proptest! {
    /// The authoritative index is the server's own choice.
    #[test]
    fn authoritative_is_the_servers_choice(
        names in proptest::collection::vec((1u32..6, 1u32..6), 0..12),
        current in 1u32..7,
    ) {
        let objects: Vec<ListedObject> =
            names.iter().map(|&(g, s)| obj(&index_name(g, s).to_string(), 1)).collect();
        let server = index_part::select_authoritative(
            objects.iter().map(|o| o.key.as_str()),
            Generation(current),
        )
        .unwrap()
        .authoritative;
        prop_assert_eq!(authoritative(PREFIX, &objects, Some(Generation(current))), server);
    }

    /// Whatever the listing: garbage never holds a layer any listed index version references,
    /// the authoritative index, an object of the current or a newer generation or an unknown
    /// one, and exists only when the current generation wrote the authoritative index and
    /// nothing above it was listed. And the invariant the argument rests on survives: after the
    /// garbage is deleted, every stored layer that some index version referenced is still
    /// referenced by one.
    #[test]
    fn garbage_is_never_needed((layers, versions, current, keep) in listing()) {
        let (files, versions) = build(&layers, &versions);
        let objects: Vec<ListedObject> = files
            .iter()
            .map(|f| obj(&f.to_string(), size_of(f)))
            .chain(versions.iter().map(|(n, _)| obj(&n.to_string(), 1)))
            .collect();
        let cur = Some(Generation(current));
        let Some(auth) = authoritative(PREFIX, &objects, cur) else {
            return Ok(());
        };
        let v = judge_all(&files, &versions, &[], current, keep);
        let newer = files.iter().any(|f| f.generation.0 > current)
            || versions.iter().any(|(n, _)| n.generation.0 > current);
        if auth.generation.0 != current || newer {
            prop_assert!(v.garbage.is_empty());
        }
        let gone: BTreeSet<String> = v.garbage.iter().map(|g| g.object.clone()).collect();
        let referenced_by = |set: &[(IndexObjectName, Vec<LayerFileName>)]| -> BTreeSet<String> {
            set.iter().flat_map(|(_, l)| l.iter().map(|f| f.to_string())).collect()
        };
        let before = referenced_by(&versions);
        for g in &v.garbage {
            let name = g.object.trim_start_matches(PREFIX);
            prop_assert_ne!(name, auth.to_string());
            match classify(PREFIX, &g.object) {
                Entry::Layer(l) => {
                    prop_assert!(l.generation.0 < current);
                    prop_assert!(!before.contains(name), "{name} is referenced");
                }
                Entry::Index(i) => prop_assert!(i < auth),
                Entry::Unknown => prop_assert!(false, "unknown object {name} in garbage"),
            }
        }
        let left: Vec<(IndexObjectName, Vec<LayerFileName>)> = versions
            .iter()
            .filter(|(n, _)| !gone.contains(&format!("{PREFIX}{n}")))
            .cloned()
            .collect();
        let after = referenced_by(&left);
        for f in &files {
            let name = f.to_string();
            if before.contains(&name) && !gone.contains(&format!("{PREFIX}{name}")) {
                prop_assert!(after.contains(&name), "{name} lost its last reference");
            }
        }
    }
}
