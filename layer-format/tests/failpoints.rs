//! The failpoints of this crate (brief section 7), in `testing` builds. I2: after a failed
//! fsync the temp file is discarded and the final name never appears; every other injected
//! failure leaves no temp file and no final name behind.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use fail::FailScenario;
use layer_format::durable::publish_batch;
use layer_format::io::IoEngine;
use layer_format::{DeltaLayerWriter, FinishedLayer, LayerError, LayerReader, Lsn};
use std::path::Path;
use std::sync::Arc;
use test_support::layer::*;
use test_support::values::*;

/// Configures `name` in the `fail` crate's registry: `off`, `exit` (the process ends at once,
/// as in a crash), or one of the crate's actions. The server's control
/// (`pageserver::failpoints`) adds observable pauses; this crate cannot depend on it.
fn configure(name: &str, actions: &str) -> Result<(), String> {
    match actions {
        "off" => {
            fail::remove(name);
            Ok(())
        }
        "exit" => fail::cfg_callback(name, || std::process::exit(77)),
        actions => fail::cfg(name, actions),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn writer(engine: &Arc<dyn IoEngine>, dir: &Path, k0: u128) -> DeltaLayerWriter {
    let mut w = delta_writer(engine, dir, k0..k0 + 10, 1..9);
    for k in k0..k0 + 10 {
        w.put(key(k), Lsn(2), &delta(k, 2, true, 300)).unwrap();
    }
    w
}

#[test]
fn fsync_failure_discards_the_temp_file_and_never_publishes() {
    let scenario = FailScenario::setup();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        configure("layer-fsync", "return").unwrap();
        let err = writer(&engine, dir.path(), 0).finish().unwrap_err();
        assert!(matches!(&err, LayerError::Io { op: "fsync", .. }), "{err}");
        assert!(
            entries(dir.path()).is_empty(),
            "neither temp nor final name: {:?}",
            entries(dir.path())
        );

        // Same through the batch path: the layer never becomes a publishable file.
        let err = writer(&engine, dir.path(), 0)
            .finish_unpublished(None)
            .unwrap_err();
        assert!(matches!(&err, LayerError::Io { op: "fsync", .. }), "{err}");
        assert!(entries(dir.path()).is_empty());

        // Written again from its source once fsync works, it publishes normally.
        configure("layer-fsync", "off").unwrap();
        let info = writer(&engine, dir.path(), 0).finish().unwrap();
        LayerReader::open(&engine, &info.path)
            .unwrap()
            .verify_checksum(info.checksum)
            .unwrap();
        assert_eq!(entries(dir.path()), vec![info.file_name.to_string()]);
    }
    scenario.teardown();
}

#[test]
fn failure_before_finish_removes_the_temp_file() {
    let scenario = FailScenario::setup();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        configure("layer-writer-before-finish", "return").unwrap();
        let err = writer(&engine, dir.path(), 0).finish().unwrap_err();
        assert!(matches!(&err, LayerError::Io { op: "finish", .. }), "{err}");
        assert!(entries(dir.path()).is_empty());
        configure("layer-writer-before-finish", "off").unwrap();
    }
    scenario.teardown();
}

#[test]
fn failure_after_rename_unpublishes() {
    let scenario = FailScenario::setup();
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        configure("layer-publish-after-rename", "return").unwrap();
        let err = writer(&engine, dir.path(), 0).finish().unwrap_err();
        assert!(
            matches!(
                &err,
                LayerError::Io {
                    op: "fsync directory",
                    ..
                }
            ),
            "{err}"
        );
        assert!(entries(dir.path()).is_empty());

        let batch: Vec<FinishedLayer> = (0..3)
            .map(|i| {
                writer(&engine, dir.path(), i * 10)
                    .finish_unpublished(None)
                    .unwrap()
            })
            .collect();
        let err = publish_batch(batch.into_iter().map(|f| f.file).collect()).unwrap_err();
        assert!(
            matches!(
                &err.error,
                LayerError::Io {
                    op: "fsync directory",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.unpublished.is_empty());
        assert!(entries(dir.path()).is_empty());
        configure("layer-publish-after-rename", "off").unwrap();
    }
    scenario.teardown();
}

/// `exit` ends the process where it stands: the child dies between the rename and the
/// directory fsync, leaving the complete file under its final name (it was fsynced first).
#[test]
fn a_crash_after_the_rename_leaves_the_complete_file_under_its_final_name() {
    if let Ok(dir) = std::env::var("LAYER_FORMAT_EXIT_CHILD_DIR") {
        let _scenario = FailScenario::setup();
        configure("layer-publish-after-rename", "exit").unwrap();
        let engine = engines().remove(0);
        let _ = writer(&engine, Path::new(&dir), 0).finish();
        unreachable!("the failpoint exits the process");
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_crash_after_the_rename_leaves_the_complete_file_under_its_final_name",
            "--test-threads=1",
        ])
        .env("LAYER_FORMAT_EXIT_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(77), "the child exits at the failpoint");
    let names = entries(dir.path());
    assert_eq!(names.len(), 1, "{names:?}");
    let engine = engines().remove(0);
    let r = LayerReader::open(&engine, &dir.path().join(&names[0])).unwrap();
    assert_eq!(r.verify().unwrap().record_count, 10);
}
