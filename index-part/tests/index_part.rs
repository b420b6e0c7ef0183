//! The schema: committed fixtures of every version parse, what is written reads back, and
//! every rule violation is a typed error that says what and where.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use index_part::fuzzing::{parse_arbitrary, parse_arbitrary_names};
use index_part::names::{Generation, IndexObjectName, LayerName, TenantId, TimelineId};
use index_part::{
    IndexError, IndexPart, LATEST_VERSION, LayerMetadata, Level, ParseMode, TimelineMetadata,
};
use layer_format::{Key, Lsn};
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

mod common;
use common::{DELTA, edit, fixture, strict};

#[test]
fn every_version_fixture_parses() {
    // One fixture per version, and the newest is the one this build writes.
    for v in 1..=LATEST_VERSION {
        strict(&fixture(v)).unwrap_or_else(|e| panic!("v{v}: {e}"));
    }
    let v1 = strict(&fixture(1)).unwrap();
    assert_eq!(v1.generation, Generation(3));
    assert_eq!(v1.disk_consistent_lsn, Lsn(0x1a0));
    assert_eq!(v1.gc_cutoff_lsn, None, "a field added in v2 defaults in v1");
    assert_eq!(v1.layers.len(), 3);
    let delta: LayerName = DELTA.parse().unwrap();
    assert_eq!(
        v1.layers[&delta],
        LayerMetadata {
            file_size: 81920,
            generation: Generation(2),
            checksum: 305419896,
            level: Some(Level::L0),
        }
    );
    assert_eq!(
        v1.metadata.created_at,
        UNIX_EPOCH + Duration::from_secs(1_793_534_400)
    );
    assert_eq!(v1.deleted_at, None);

    let v2 = strict(&fixture(2)).unwrap();
    assert_eq!(v2.gc_cutoff_lsn, Some(Lsn(0x800)));
    assert_eq!(v2.disk_consistent_lsn, Lsn(0x1_0000_0020));
    assert!(v2.deleted_at.is_some());
}

#[test]
fn an_old_version_is_rewritten_as_the_latest() {
    let v1 = strict(&fixture(1)).unwrap();
    let json = v1.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["version"], LATEST_VERSION);
    assert_eq!(strict(&json).unwrap(), v1);
}

#[test]
fn a_newer_version_is_refused_not_misread() {
    let same_shape = edit(LATEST_VERSION, |v| {
        v["version"] = (LATEST_VERSION + 1).into()
    });
    assert_eq!(
        strict(&same_shape),
        Err(IndexError::UnsupportedVersion {
            found: LATEST_VERSION + 1,
            latest: LATEST_VERSION
        })
    );
    // Even when the newer version changed the shape so that this build cannot parse it.
    let new_shape = edit(2, |v| v["version"] = 9.into());
    let new_shape = String::from_utf8(new_shape)
        .unwrap()
        .replace("\"layers\":{", "\"layers\":[1],\"x\":{");
    assert_eq!(
        IndexPart::from_json(new_shape.as_bytes(), ParseMode::Lenient),
        Err(IndexError::UnsupportedVersion {
            found: 9,
            latest: LATEST_VERSION
        })
    );
}

#[test]
fn unknown_fields_fail_strict_mode_with_their_path() {
    let extra = edit(2, |v| v["metadata"]["pg_version"] = 16.into());
    match strict(&extra) {
        Err(IndexError::UnknownField { path, version: 2 }) => {
            assert_eq!(path, "metadata.pg_version")
        }
        other => panic!("{other:?}"),
    }
    assert!(IndexPart::from_json(&extra, ParseMode::Lenient).is_ok());
    // A v2 field in a v1 index is unknown to v1.
    let v1_with_v2_field = edit(1, |v| v["gc_cutoff_lsn"] = "0/10".into());
    assert!(
        matches!(strict(&v1_with_v2_field), Err(IndexError::UnknownField { path, version: 1 }) if path == "gc_cutoff_lsn")
    );
    // A v3 field in a v2 index is unknown to v2.
    let v2_with_level = edit(2, |v| {
        let layers = v["layers"].as_object_mut().unwrap();
        for (_, l) in layers.iter_mut() {
            l["level"] = 1.into();
        }
    });
    assert!(
        matches!(strict(&v2_with_level), Err(IndexError::UnknownField { path, version: 2 }) if path.ends_with(".level"))
    );
}

#[test]
fn rule_violations_are_typed_errors() {
    let with_layer = |name: &str, size: i64, generation: u32| {
        edit(1, |v| {
            v["layers"][name] =
                serde_json::json!({ "file_size": size, "generation": generation, "checksum": 7 });
        })
    };
    let k0 = Key::MIN.to_string();
    let k1 = Key::from_u128(5).to_string();
    assert!(matches!(
        strict(&with_layer(&format!("{k0}-{k1}__000000000000000x"), 1, 1)),
        Err(IndexError::MalformedLayerName { .. })
    ));
    assert!(matches!(
        strict(&with_layer(&format!("{k1}-{k0}__0000000000000001"), 1, 1)),
        Err(IndexError::MalformedLayerName {
            reason: "empty key range",
            ..
        })
    ));
    // disk_consistent_lsn is 0/1A0: a delta ending at 1A1 (exclusive) is fine, 1A2 is not.
    assert!(
        strict(&with_layer(
            &format!("{k0}-{k1}__0000000000000001-00000000000001A1"),
            1,
            1
        ))
        .is_ok()
    );
    assert_eq!(
        strict(&with_layer(
            &format!("{k0}-{k1}__0000000000000001-00000000000001A2"),
            1,
            1
        )),
        Err(IndexError::LayerAboveDiskConsistentLsn {
            name: format!("{k0}-{k1}__0000000000000001-00000000000001A2"),
            lsn_end: Lsn(0x1a2),
            disk_consistent_lsn: Lsn(0x1a0),
        })
    );
    assert!(matches!(
        strict(&with_layer(&format!("{k0}-{k1}__00000000000001A1"), 1, 1)),
        Err(IndexError::LayerAboveDiskConsistentLsn { .. })
    ));
    assert!(matches!(
        strict(&with_layer(&format!("{k0}-{k1}__0000000000000005"), 1, 4)),
        Err(IndexError::GenerationAboveIndex {
            layer: Generation(4),
            index: Generation(3),
            ..
        })
    ));
    for size in [0, -5] {
        assert!(matches!(
            strict(&with_layer(&format!("{k0}-{k1}__0000000000000005"), size, 1)),
            Err(IndexError::BadFileSize { size: s, .. }) if s == size
        ));
    }
    // The same layer twice: with another generation, or the same.
    let twice = String::from_utf8(fixture(1)).unwrap().replacen(
        "\"layers\": {",
        &format!("\"layers\": {{\n    \"{DELTA}\": {{ \"file_size\": 9, \"generation\": 3, \"checksum\": 1 }},"),
        1,
    );
    assert_eq!(
        strict(twice.as_bytes()),
        Err(IndexError::DuplicateLayer { name: DELTA.into() })
    );

    let bad_lsn = edit(1, |v| v["disk_consistent_lsn"] = "0/1a0".into());
    assert!(
        matches!(strict(&bad_lsn), Err(IndexError::BadField { field, .. }) if field == "disk_consistent_lsn")
    );
    let bad_id = edit(1, |v| v["metadata"]["tenant_id"] = "../../etc".into());
    assert!(
        matches!(strict(&bad_id), Err(IndexError::BadField { field, .. }) if field == "metadata.tenant_id")
    );
    let bad_time = edit(1, |v| v["metadata"]["created_at"] = "yesterday".into());
    assert!(
        matches!(strict(&bad_time), Err(IndexError::BadField { field, .. }) if field == "metadata.created_at")
    );
    let cutoff = edit(2, |v| v["gc_cutoff_lsn"] = "2/0".into());
    assert!(matches!(strict(&cutoff), Err(IndexError::Inconsistent(_))));
    let gen0 = edit(2, |v| v["generation"] = 0.into());
    assert!(matches!(
        strict(&gen0),
        Err(IndexError::Inconsistent(_)) | Err(IndexError::GenerationAboveIndex { .. })
    ));
}

#[test]
fn malformed_json_says_where() {
    let mut bytes = fixture(1);
    let at = bytes.iter().position(|&b| b == b':').unwrap();
    bytes[at] = b'=';
    match strict(&bytes) {
        Err(IndexError::Json {
            line: 2, column, ..
        }) => assert!(column > 0),
        other => panic!("{other:?}"),
    }
    assert!(matches!(strict(b""), Err(IndexError::Json { .. })));
    assert!(matches!(
        strict(b"{} trailing"),
        Err(IndexError::Json { .. })
    ));
    let negative_generation = edit(1, |v| v["generation"] = (-1).into());
    assert!(matches!(
        strict(&negative_generation),
        Err(IndexError::Json { .. })
    ));
}

#[test]
fn the_generation_must_match_the_object_name() {
    let object = IndexObjectName {
        generation: Generation(3),
        seq: 1,
    };
    assert!(IndexPart::from_json_object(&fixture(1), object, ParseMode::Strict).is_ok());
    let other = IndexObjectName {
        generation: Generation(4),
        seq: 1,
    };
    assert_eq!(
        IndexPart::from_json_object(&fixture(1), other, ParseMode::Strict),
        Err(IndexError::GenerationMismatch {
            object: other,
            found: Generation(3)
        })
    );
}

fn arbitrary_index() -> impl Strategy<Value = IndexPart> {
    let layer = (
        any::<u64>(),
        1u64..1000,
        0u64..5000,
        1u64..300,
        any::<bool>(),
        1u64..1 << 40,
        1u32..=9,
        any::<u32>(),
    );
    (
        proptest::collection::vec(layer, 0..40),
        9u32..12,
        any::<u32>(),
        proptest::option::of(0u64..100),
        any::<bool>(),
    )
        .prop_map(|(layers, generation, secs, cutoff, deleted)| {
            let created_at = UNIX_EPOCH + Duration::from_secs(u64::from(secs));
            let mut index = IndexPart::new(
                Generation(generation),
                TimelineMetadata {
                    tenant_id: TenantId([1; 16]),
                    timeline_id: TimelineId([2; 16]),
                    created_at,
                },
            );
            index.disk_consistent_lsn = Lsn(10_000);
            index.gc_cutoff_lsn = cutoff.map(Lsn);
            index.deleted_at = deleted.then_some(created_at + Duration::from_secs(60));
            for (k, klen, l, llen, delta, size, g, checksum) in layers {
                let key_range =
                    Key::from_u128(u128::from(k))..Key::from_u128(u128::from(k) + u128::from(klen));
                let name = if delta {
                    LayerName::Delta {
                        key_range,
                        lsn_range: Lsn(l)..Lsn(l + llen),
                    }
                } else {
                    LayerName::Image {
                        key_range,
                        lsn: Lsn(l),
                    }
                };
                index.layers.insert(
                    name,
                    LayerMetadata {
                        file_size: size,
                        generation: Generation(g),
                        checksum,
                        level: delta.then_some(Level::L1),
                    },
                );
            }
            index
        })
}

proptest! {
    #[test]
    fn what_is_written_reads_back(index in arbitrary_index()) {
        let json = index.to_json().unwrap();
        prop_assert_eq!(strict(&json).unwrap(), index);
    }

    /// The fuzz target's body never panics on mutated fixtures.
    #[test]
    fn parser_never_panics_on_mutations(v in 1u32..=LATEST_VERSION, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = fixture(v);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] = x;
        }
        parse_arbitrary(&bytes);
    }

    #[test]
    fn parser_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_arbitrary(&bytes);
    }

    #[test]
    fn name_parsers_never_panic_and_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), 0..120)
    ) {
        parse_arbitrary_names(&bytes);
    }

    #[test]
    fn name_parsers_round_trip_near_valid_names(
        layer in 0u8..4,
        at in any::<prop::sample::Index>(),
        x in any::<u8>(),
    ) {
        let names = [
            "000000000000000000000000000000aa-000000000000000000000000000000ff__0000000000000001-0000000000000010-00000002",
            "000000000000000000000000000000aa-000000000000000000000000000000ff__0000000000000010",
            "index_part.json-00000002-0000000a",
            "0123456789abcdef0123456789abcdef",
        ];
        let mut bytes = names[usize::from(layer)].as_bytes().to_vec();
        parse_arbitrary_names(&bytes);
        let i = at.index(bytes.len());
        bytes[i] = x;
        parse_arbitrary_names(&bytes);
    }
}
