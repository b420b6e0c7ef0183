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

fn judge_listing(
    objects: &[ListedObject],
    current: u32,
    referenced: &[LayerFileName],
    keep: usize,
) -> Verdict {
    let current = Some(Generation(current));
    let auth = authoritative(PREFIX, objects, current).expect("an index");
    judge(
        PREFIX,
        objects,
        current,
        Some((auth, Ok(index(auth.generation.0, referenced)))),
        keep,
    )
}

fn kinds(v: &Verdict) -> Vec<(&'static str, String)> {
    v.problems
        .iter()
        .map(|p| (p.kind, p.object.trim_start_matches(PREFIX).to_string()))
        .collect()
}

#[test]
fn a_healthy_timeline_has_no_problem_and_no_garbage() {
    let (a, b) = (layer(1, 1), layer(2, 2));
    let objects = vec![
        obj(&a.to_string(), size_of(&a)),
        obj(&b.to_string(), size_of(&b)),
        obj(&index_name(2, 1).to_string(), 10),
    ];
    let v = judge_listing(&objects, 2, &[a.clone(), b.clone()], 5);
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
    let objects = vec![
        obj(&b.to_string(), size_of(&b) + 1),
        obj(&index_name(1, 3).to_string(), 10),
    ];
    let v = judge_listing(&objects, 1, &[a.clone(), b.clone()], 5);
    assert_eq!(
        kinds(&v),
        vec![("missing", a.to_string()), ("wrong_size", b.to_string())]
    );
    assert!(v.garbage.is_empty() && v.to_verify.is_empty());
}

#[test]
fn an_older_generation_orphan_is_garbage_once_the_current_generation_has_an_index() {
    let (kept, orphan) = (layer(1, 1), layer(2, 1));
    let objects = vec![
        obj(&kept.to_string(), size_of(&kept)),
        obj(&orphan.to_string(), 55),
        obj(&index_name(1, 1).to_string(), 10),
        obj(&index_name(2, 1).to_string(), 10),
    ];
    let v = judge_listing(&objects, 2, std::slice::from_ref(&kept), 5);
    assert_eq!(kinds(&v), vec![("orphan", orphan.to_string())]);
    let garbage: Vec<_> = v
        .garbage
        .iter()
        .map(|g| (g.object.clone(), g.size))
        .collect();
    assert_eq!(garbage, vec![(format!("{PREFIX}{orphan}"), 55)]);

    // The current generation 3 has not uploaded an index: the same orphan is kept.
    let v = judge_listing(&objects, 3, std::slice::from_ref(&kept), 5);
    assert_eq!(kinds(&v), vec![("orphan", orphan.to_string())]);
    assert!(v.garbage.is_empty());
    assert_eq!(v.kept.len(), 1);
    assert!(
        v.kept[0].reason.contains("has not uploaded an index"),
        "{:?}",
        v.kept
    );
}

#[test]
fn an_unreferenced_layer_of_the_current_generation_is_kept_as_in_flight() {
    let fresh = layer(9, 4);
    let objects = vec![
        obj(&fresh.to_string(), 9),
        obj(&index_name(4, 2).to_string(), 10),
    ];
    let v = judge_listing(&objects, 4, &[], 5);
    assert_eq!(v.problems, vec![]);
    assert!(v.garbage.is_empty());
    assert_eq!(v.kept[0].object, format!("{PREFIX}{fresh}"));
    assert!(v.kept[0].reason.contains("in flight"));
}

#[test]
fn old_index_versions_beyond_the_kept_count_are_garbage_and_the_authoritative_never() {
    let mut objects: Vec<ListedObject> = (1..=4)
        .map(|s| obj(&index_name(1, s).to_string(), 10))
        .chain((1..=4).map(|s| obj(&index_name(2, s).to_string(), 10)))
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let v = judge_listing(&objects, 2, &[], 3);
    assert_eq!(v.problems, vec![]);
    let garbage: Vec<String> = v
        .garbage
        .iter()
        .map(|g| g.object.trim_start_matches(PREFIX).to_string())
        .collect();
    // Seven versions are older than (2, 4); the newest three of them are kept.
    let expected: Vec<String> = [(1, 1), (1, 2), (1, 3), (1, 4)]
        .iter()
        .map(|&(g, s)| index_name(g, s).to_string())
        .collect();
    assert_eq!(garbage, expected);
    assert_eq!(v.index_versions, 8);
}

#[test]
fn unknown_objects_and_unclaimed_generations_are_problems_and_block_deletion() {
    let orphan = layer(3, 1);
    let objects = vec![
        obj("notes.txt", 3),
        obj("nested/thing", 3),
        obj(&orphan.to_string(), 5),
        obj(&index_name(2, 1).to_string(), 10),
        obj(&index_name(5, 1).to_string(), 10),
    ];
    let v = judge_listing(&objects, 2, &[], 0);
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

    // A layer of a generation claimed after the claims were listed: a newer attachment's
    // upload in flight, never garbage, and nothing else is deleted either (found by
    // `garbage_is_never_needed`, which deleted it before the rule existed).
    let newer = layer(4, 3);
    let objects = vec![
        obj(&orphan.to_string(), 5),
        obj(&newer.to_string(), 5),
        obj(&index_name(2, 1).to_string(), 10),
    ];
    let v = judge_listing(&objects, 2, &[], 0);
    assert!(kinds(&v).contains(&("unclaimed_generation", newer.to_string())));
    assert!(v.garbage.is_empty(), "{:?}", v.garbage);
    assert!(
        v.kept
            .iter()
            .any(|k| k.object.ends_with(&newer.to_string()))
    );
}

#[test]
fn an_unreadable_index_or_no_index_is_a_problem_and_deletes_nothing() {
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
        0,
    );
    assert_eq!(
        kinds(&v),
        vec![("unreadable_index", index_name(1, 2).to_string())]
    );
    assert!(v.garbage.is_empty());
    let v = judge(PREFIX, &objects[..1], current, None, 0);
    assert_eq!(kinds(&v), vec![("no_index", a.to_string())]);
    assert!(v.garbage.is_empty());
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

    /// Whatever the listing: garbage never holds a referenced layer, the authoritative index,
    /// an object of the current generation or an unknown one, and exists only when the
    /// current generation wrote the authoritative index.
    #[test]
    fn garbage_is_never_needed(
        layers in proptest::collection::vec((0u128..20, 1u32..5, any::<bool>()), 0..16),
        indexes in proptest::collection::vec((1u32..5, 1u32..4), 1..8),
        current in 1u32..5,
        keep in 0usize..4,
    ) {
        let mut objects = Vec::new();
        let mut referenced = Vec::new();
        for &(k, g, is_ref) in &layers {
            let l = layer(k, g);
            if is_ref && !referenced.iter().any(|r: &LayerFileName| r.layer == l.layer) {
                referenced.push(l.clone());
            }
            objects.push(obj(&l.to_string(), size_of(&l)));
        }
        for &(g, s) in &indexes {
            objects.push(obj(&index_name(g, s).to_string(), 1));
        }
        objects.push(obj("stray", 1));
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects.dedup();
        let cur = Some(Generation(current));
        let Some(auth) = authoritative(PREFIX, &objects, cur) else {
            return Ok(());
        };
        let v = judge(PREFIX, &objects, cur, Some((auth, Ok(index(auth.generation.0, &referenced)))), keep);
        let unclaimed = indexes.iter().any(|&(g, _)| g > current)
            || layers.iter().any(|&(_, g, _)| g > current);
        if auth.generation.0 != current || unclaimed {
            prop_assert!(v.garbage.is_empty());
        }
        for g in &v.garbage {
            let name = g.object.trim_start_matches(PREFIX);
            prop_assert_ne!(name, auth.to_string());
            prop_assert!(!referenced.iter().any(|r| r.to_string() == name));
            match classify(PREFIX, &g.object) {
                Entry::Layer(l) => prop_assert!(l.generation.0 < current),
                Entry::Index(i) => prop_assert!(i < auth),
                Entry::Unknown => prop_assert!(false, "unknown object {name} in garbage"),
            }
        }
        let stale = indexes.iter().filter(|&&(g, s)| index_name(g, s) < auth).collect::<std::collections::BTreeSet<_>>().len();
        let index_garbage = v.garbage.iter().filter(|g| matches!(classify(PREFIX, &g.object), Entry::Index(_))).count();
        if !v.garbage.is_empty() || (auth.generation.0 == current && !unclaimed) {
            prop_assert_eq!(index_garbage, stale.saturating_sub(keep));
        }
    }
}
