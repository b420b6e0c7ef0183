//! Delta levels (index version 3): recorded where the version has them, inferred for older
//! versions, and every rule about them a typed error.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;
use common::{edit, fixture, strict};
use index_part::names::LayerName;
use index_part::{IndexError, Level};
use layer_format::{Key, Lsn};

#[test]
fn version_3_records_levels_and_older_versions_get_them_inferred() {
    let v3 = strict(&fixture(3)).unwrap();
    let levels: Vec<(bool, Option<Level>)> = v3
        .layers
        .iter()
        .map(|(n, m)| (n.is_delta(), m.level))
        .collect();
    // An L1 layer that covers the whole key space (a compaction with one output) is L1.
    let whole_l1 = v3
        .layers
        .iter()
        .find(|(n, _)| {
            n.is_delta() && *n.key_range() == (Key::MIN..Key::MAX) && n.lsn_range().start == Lsn(1)
        })
        .unwrap();
    assert_eq!(whole_l1.1.level, Some(Level::L1));
    assert!(
        levels
            .iter()
            .all(|(delta, level)| *delta == level.is_some())
    );
    assert_eq!(strict(&v3.to_json().unwrap()).unwrap(), v3);

    // Older versions: a partial-key delta is L1; a whole-key-space delta is L0 unless a
    // partial-key delta lies at or above its end.
    let k = |v: u128| Key::from_u128(v).to_string();
    let (full, part) = (
        format!("{}-{}", Key::MIN, Key::MAX),
        format!("{}-{}", k(0), k(9)),
    );
    let old = edit(2, |v| {
        v["layers"] = serde_json::json!({
            format!("{full}__0000000000000001-0000000000000010"): { "file_size": 1, "generation": 1, "checksum": 0 },
            format!("{part}__0000000000000010-0000000000000020"): { "file_size": 1, "generation": 1, "checksum": 0 },
            format!("{full}__0000000000000020-0000000000000030"): { "file_size": 1, "generation": 1, "checksum": 0 },
        });
        v["disk_consistent_lsn"] = "0/40".into();
        v["gc_cutoff_lsn"] = "0/1".into();
    });
    let old = strict(&old).unwrap();
    let mut by_start: Vec<(u64, Option<Level>)> = old
        .layers
        .iter()
        .map(|(n, m)| (n.lsn_range().start.0, m.level))
        .collect();
    by_start.sort();
    assert_eq!(
        by_start,
        vec![
            (0x1, Some(Level::L1)),
            (0x10, Some(Level::L1)),
            (0x20, Some(Level::L0))
        ]
    );
}

#[test]
fn levels_break_their_rules_as_typed_errors() {
    let first_delta = |v: &mut serde_json::Value| -> String {
        v["layers"]
            .as_object()
            .unwrap()
            .keys()
            .find(|n| n.parse::<LayerName>().unwrap().is_delta())
            .unwrap()
            .clone()
    };
    let first_image = |v: &mut serde_json::Value| -> String {
        v["layers"]
            .as_object()
            .unwrap()
            .keys()
            .find(|n| !n.parse::<LayerName>().unwrap().is_delta())
            .unwrap()
            .clone()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            edit(3, |v| {
                let n = first_delta(v);
                v["layers"][&n].as_object_mut().unwrap().remove("level");
            }),
            "needs a level",
        ),
        (
            edit(3, |v| {
                let n = first_delta(v);
                v["layers"][&n]["level"] = 2.into();
            }),
            "level 2",
        ),
        (
            edit(3, |v| {
                let n = first_image(v);
                v["layers"][&n]["level"] = 0.into();
            }),
            "image layer",
        ),
        (
            edit(3, |v| {
                let partial = v["layers"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .find(|n| {
                        let n = n.parse::<LayerName>().unwrap();
                        n.is_delta() && *n.key_range() != (Key::MIN..Key::MAX)
                    })
                    .unwrap()
                    .clone();
                v["layers"][&partial]["level"] = 0.into();
            }),
            "whole key space",
        ),
    ];
    for (bytes, what) in cases {
        match strict(&bytes) {
            Err(e @ IndexError::BadLevel { .. }) => {
                assert!(e.to_string().contains(what), "{e} lacks {what:?}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
