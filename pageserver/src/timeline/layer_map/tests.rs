//! The layer map's query, GC rule, compaction choice and `apply` on hand-built maps. The
//! lifecycle simulation (`pageserver/tests/lifecycle/`) checks them against real data.

use super::*;
use index_part::LayerMetadata;
use index_part::names::TenantId;
use layer_format::Key;
use std::path::PathBuf;

fn key(v: u128) -> Key {
    Key::from_u128(v)
}

fn delta(
    keys: std::ops::Range<u128>,
    lsns: std::ops::Range<u64>,
    level: Level,
) -> Arc<LayerHandle> {
    let end = if keys.end == u128::MAX {
        Key::MAX
    } else {
        key(keys.end)
    };
    let name = LayerName::Delta {
        key_range: key(keys.start)..end,
        lsn_range: Lsn(lsns.start)..Lsn(lsns.end),
    };
    handle(name, Some(level))
}

fn l0(lsns: std::ops::Range<u64>) -> Arc<LayerHandle> {
    delta(0..u128::MAX, lsns, Level::L0)
}

fn l1(keys: std::ops::Range<u128>, lsns: std::ops::Range<u64>) -> Arc<LayerHandle> {
    delta(keys, lsns, Level::L1)
}

fn image(keys: std::ops::Range<u128>, lsn: u64) -> Arc<LayerHandle> {
    let end = if keys.end == u128::MAX {
        Key::MAX
    } else {
        key(keys.end)
    };
    handle(
        LayerName::Image {
            key_range: key(keys.start)..end,
            lsn: Lsn(lsn),
        },
        None,
    )
}

fn handle(name: LayerName, level: Option<Level>) -> Arc<LayerHandle> {
    let meta = LayerMetadata {
        file_size: 1,
        generation: Generation(1),
        checksum: 0,
        level,
    };
    Arc::new(LayerHandle::new(name, meta, &PathBuf::from("/nowhere")))
}

fn empty() -> LayerMap {
    let metadata = TimelineMetadata {
        tenant_id: TenantId([1; 16]),
        timeline_id: index_part::names::TimelineId([2; 16]),
        created_at: std::time::UNIX_EPOCH,
    };
    LayerMap::load(
        &IndexPart::new(Generation(1), metadata),
        Generation(1),
        Path::new("/nowhere"),
    )
    .unwrap()
    .0
}

fn flush(map: &mut LayerMap, lsns: std::ops::Range<u64>) -> Arc<LayerHandle> {
    let h = l0(lsns);
    map.apply(Change::Flush { layer: h.clone() }).unwrap();
    h
}

fn names(visits: &[Visit]) -> Vec<(String, u64, u64)> {
    visits
        .iter()
        .map(|v| (v.layer.name.to_string(), v.lsns.start().0, v.lsns.end().0))
        .collect()
}

/// The sequence of the issue that found the bug: several L1 outputs W, an image above them,
/// L0 layers below the image merged with newer ones into L1 layers Z that straddle it.
fn straddled() -> (LayerMap, [Arc<LayerHandle>; 5]) {
    let mut map = empty();
    let a = flush(&mut map, 1..11);
    let b = flush(&mut map, 11..21);
    let (w1, w2) = (l1(0..100, 1..21), l1(100..u128::MAX, 1..21));
    map.apply(Change::Compaction {
        inputs: vec![a, b],
        outputs: vec![w1.clone(), w2.clone()],
    })
    .unwrap();
    let c = flush(&mut map, 21..31);
    let d = flush(&mut map, 31..41);
    let img = image(0..u128::MAX, 40);
    map.apply(Change::Images {
        outputs: vec![img.clone()],
    })
    .unwrap();
    let e = flush(&mut map, 41..51);
    let f = flush(&mut map, 51..61);
    let z = l1(0..u128::MAX, 21..61);
    map.apply(Change::Compaction {
        inputs: vec![c, d, e, f],
        outputs: vec![z.clone()],
    })
    .unwrap();
    (map, [w1, w2, img, z.clone(), z])
}

#[test]
fn a_read_takes_a_straddling_delta_only_above_the_image() {
    let (map, [w1, _, img, z, _]) = straddled();
    let v = map.visits(key(7), Lsn(60));
    assert_eq!(
        names(&v),
        vec![(z.name.to_string(), 41, 60), (img.name.to_string(), 40, 40)]
    );
    // Just above the image, the delta's one record above it, then the image.
    assert_eq!(
        names(&map.visits(key(7), Lsn(41))),
        vec![(z.name.to_string(), 41, 41), (img.name.to_string(), 40, 40)]
    );
    // At the image's LSN the image alone; below it, the delta's lower part and then W.
    assert_eq!(
        names(&map.visits(key(7), Lsn(40))),
        vec![(img.name.to_string(), 40, 40)]
    );
    assert_eq!(
        names(&map.visits(key(7), Lsn(30))),
        vec![(z.name.to_string(), 21, 30), (w1.name.to_string(), 1, 20)]
    );
}

#[test]
fn gc_removes_exactly_what_no_read_at_or_above_the_cutoff_visits() {
    let (map, [w1, w2, img, z, _]) = straddled();
    let at = |cutoff: u64| -> Vec<String> {
        let mut v: Vec<String> = map
            .gc_plan(Lsn(cutoff), |_| true)
            .iter()
            .map(|h| h.name.to_string())
            .collect();
        v.sort();
        v
    };
    // A read at 39 still needs Z below the image, and W below Z.
    assert!(at(39).is_empty(), "{:?}", at(39));
    // From 40 up, every read stops at the image: W goes; Z stays (reads from 41 up take its
    // records above the image), and so does the image.
    let mut w = vec![w1.name.to_string(), w2.name.to_string()];
    w.sort();
    assert_eq!(at(40), w);
    assert_eq!(at(60), w);
    let visited = map.visited_at_or_above(Lsn(40));
    assert!(visited.contains(&img.name) && visited.contains(&z.name));
}

#[test]
fn compaction_takes_l0_layers_by_level_oldest_first_and_only_a_usable_prefix() {
    let mut map = empty();
    let a = flush(&mut map, 1..11);
    let b = flush(&mut map, 11..21);
    // One output over the whole key space: L1, never taken for an L0.
    let whole = l1(0..u128::MAX, 1..21);
    map.apply(Change::Compaction {
        inputs: vec![a, b],
        outputs: vec![whole.clone()],
    })
    .unwrap();
    let c = flush(&mut map, 21..31);
    let d = flush(&mut map, 31..41);
    let e = flush(&mut map, 41..51);
    let run: Vec<LayerName> = map
        .l0_run(|_| true)
        .iter()
        .map(|h| h.name.clone())
        .collect();
    assert_eq!(run, vec![c.name.clone(), d.name.clone(), e.name.clone()]);
    // A layer that is not usable (its upload is pending) ends the run.
    let run = map.l0_run(|h| h.name != d.name);
    assert_eq!(run.len(), 1);
    assert!(Arc::ptr_eq(&run[0], &c));
}

#[test]
fn a_duplicate_output_changes_nothing_and_its_inputs_stay() {
    let mut map = empty();
    let a = flush(&mut map, 1..11);
    let b = flush(&mut map, 11..21);
    let img = image(0..50, 20);
    map.apply(Change::Images {
        outputs: vec![img.clone()],
    })
    .unwrap();
    let before = map.index();
    let again = image(0..50, 20);
    assert!(matches!(
        map.apply(Change::Images { outputs: vec![again] }),
        Err(ApplyError::Duplicate(n)) if n == img.name
    ));
    // A flush installed twice.
    assert!(matches!(
        map.apply(Change::Flush { layer: l0(11..21) }),
        Err(ApplyError::Duplicate(n)) if n == b.name
    ));
    // A compaction that names one output twice: refused whole, its inputs stay.
    let err = map
        .apply(Change::Compaction {
            inputs: vec![a.clone(), b.clone()],
            outputs: vec![l1(0..10, 1..21), l1(0..10, 1..21)],
        })
        .unwrap_err();
    assert!(matches!(err, ApplyError::Duplicate(_)), "{err}");
    assert_eq!(map.index(), before);
    assert!(map.get(&a.name).is_some() && map.get(&b.name).is_some());
}

#[test]
fn a_change_whose_input_left_the_map_is_refused() {
    let mut map = empty();
    let a = flush(&mut map, 1..11);
    let b = flush(&mut map, 11..21);
    map.apply(Change::Remove {
        names: vec![b.name.clone()],
    })
    .unwrap();
    let before = map.index();
    let err = map
        .apply(Change::Compaction {
            inputs: vec![a, b.clone()],
            outputs: vec![l1(0..u128::MAX, 1..21)],
        })
        .unwrap_err();
    assert!(matches!(err, ApplyError::InputGone(n) if n == b.name));
    assert_eq!(map.index(), before);
}

#[test]
fn the_invariant_names_what_breaks_it() {
    let dcl = Lsn(100);
    let check = |layers: Vec<Arc<LayerHandle>>| -> Result<(), String> {
        let map: BTreeMap<LayerName, Arc<LayerHandle>> =
            layers.into_iter().map(|h| (h.name.clone(), h)).collect();
        invariant::check(&map, dcl, None)
    };
    let cases: Vec<(Vec<Arc<LayerHandle>>, &str)> = vec![
        (
            vec![l1(0..10, 1..21), l1(5..20, 11..31)],
            "overlap in keys and LSNs",
        ),
        (
            vec![l0(1..21), l1(0..10, 11..31)],
            "overlap in keys and LSNs",
        ),
        (vec![l0(1..11), l1(0..10, 11..21)], "is not below L0"),
        (
            vec![image(0..10, 5), image(5..20, 5)],
            "overlap in keys at one LSN",
        ),
        (vec![delta(0..10, 1..11, Level::L0)], "whole key space"),
        (vec![l0(90..102)], "above disk_consistent_lsn"),
    ];
    for (layers, what) in cases {
        match check(layers) {
            Err(e) => assert!(e.contains(what), "{e} lacks {what:?}"),
            Ok(()) => panic!("{what}: accepted"),
        }
    }
    // What the system builds: L1 groups tiling keys, L0 above, images anywhere.
    check(vec![
        l1(0..10, 1..21),
        l1(10..u128::MAX, 1..21),
        l1(0..u128::MAX, 21..41),
        image(0..u128::MAX, 30),
        image(0..10, 35),
        l0(41..61),
        l0(61..71),
    ])
    .unwrap();
}

#[test]
fn an_index_that_breaks_the_invariant_is_refused_at_load() {
    let mut index = empty().index();
    index.disk_consistent_lsn = Lsn(100);
    for h in [l1(0..10, 1..21), l1(5..20, 11..31)] {
        index.layers.insert(h.name.clone(), h.meta);
    }
    let err = LayerMap::load(&index, Generation(1), Path::new("/nowhere")).unwrap_err();
    assert!(
        matches!(err, ApplyError::Invariant { change: "load", .. }),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "layer map invariant")]
fn a_change_that_breaks_the_invariant_panics_in_test_builds() {
    let mut map = empty();
    flush(&mut map, 1..11);
    // An L0 layer that overlaps the one already there.
    let _ = map.apply(Change::Flush { layer: l0(5..15) });
}
