//! Suite 1: crash at every failpoint. For each failpoint of the brief (section 7), a workload
//! of ingest, checkpoint and compaction runs with that failpoint set to `exit`; the process
//! dies there; it restarts; the integrity checker and the history oracle hold; every page at or
//! below the last reported `remote_consistent_lsn` matches the model; the storage node
//! re-ingests from the restarted server's `remote_consistent_lsn`; compaction runs again; and
//! the final state matches the model.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::time::Duration;
use test_runner::integrity::{self, History};
use test_runner::model::{Model, workload};
use test_runner::server::{Pageserver, TENANT, TIMELINE, lsn_of};

const KEYS: u128 = 24;

const FAILPOINTS: &[&str] = &[
    "layer-writer-before-finish",
    "layer-fsync",
    "layer-publish-after-rename",
    "flush-after-publish",
    "compaction-after-output",
    "compaction-after-publish",
    "upload-layer-before",
    "upload-layer-after",
    "upload-index-before",
    "upload-index-after",
    "deletion-before-execute",
];

/// Log lines a crash-and-restart run may print.
const ALLOWED: &[&str] = &["moved an unrecognised file", "retrying", "request failed"];

async fn check_pages(ps: &Pageserver, model: &Model, upto: Lsn) {
    test_runner::server::check_pages(ps, model, KEYS, &[upto.0 / 2, upto.0]).await;
}

/// Runs the workload with `failpoint` set to `exit`; returns whether the process died there
/// and the last `remote_consistent_lsn` it reported.
async fn workload_until_exit(
    ps: &mut Pageserver,
    model: &mut Model,
    history: &mut History,
    failpoint: &str,
) -> (bool, Lsn) {
    let mut acked = Lsn(0);
    let mut lsn = 1u64;
    // A first layer, acknowledged, before the failpoint is armed.
    let recs = workload(model, lsn, 60, KEYS, 1);
    ps.ingest(&recs).await.unwrap();
    model.add(&recs);
    lsn += 60;
    acked = acked.max(lsn_of(
        &ps.checkpoint().await.unwrap(),
        "remote_consistent_lsn",
    ));
    history.observe(&ps.remote_root()).unwrap();
    ps.failpoint(failpoint, "exit").await.unwrap();
    for round in 0..3 {
        let recs = workload(model, lsn, 60, KEYS, 2 + round);
        if ps.ingest(&recs).await.is_err() {
            break;
        }
        model.add(&recs);
        lsn += 60;
        match ps.checkpoint().await {
            Ok(info) => acked = acked.max(lsn_of(&info, "remote_consistent_lsn")),
            Err(_) => break,
        }
        if ps.compact().await.is_err() {
            break;
        }
        // Let queued uploads and deletions run.
        for _ in 0..50 {
            match ps.info().await {
                Ok(info) if info["pending_uploads"] == 0 => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(_) => break,
            }
        }
        if !ps.is_running() {
            break;
        }
    }
    let died = ps.wait_exit(Duration::from_secs(10)).await == Some(77);
    (died, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_failpoint() {
    let mut report = Vec::new();
    for failpoint in FAILPOINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut ps = Pageserver::new(
            dir.path(),
            &[
                "compaction_threshold = 2",
                "image_creation_threshold = 1000",
                "compaction_period = \"1h\"",
            ],
        );
        ps.start(None).await;
        ps.setup().await.unwrap();
        let mut model = Model::default();
        let mut history = History::default();
        let (died, acked) = workload_until_exit(&mut ps, &mut model, &mut history, failpoint).await;
        assert!(
            died,
            "{failpoint}: the workload reached the failpoint and the process exited there"
        );
        history.observe(&ps.remote_root()).unwrap();

        ps.start(None).await;
        let info = ps.info().await.unwrap();
        let remote = lsn_of(&info, "remote_consistent_lsn");
        assert!(
            remote >= acked,
            "{failpoint}: acknowledged {acked}, after restart {remote}"
        );
        for f in ["last_record_lsn", "disk_consistent_lsn"] {
            assert_eq!(
                lsn_of(&info, f),
                remote,
                "{failpoint}: {f} after restart: {info}"
            );
        }
        let found = integrity::check(&ps.workdir, TENANT, TIMELINE)
            .unwrap_or_else(|e| panic!("{failpoint}: {e:#}"));
        history.observe(&ps.remote_root()).unwrap();
        check_pages(&ps, &model, acked).await;

        // The storage node resends what was not acknowledged; compaction runs again.
        let resend = model.records_above(remote);
        if !resend.is_empty() {
            ps.ingest(&resend).await.unwrap();
        }
        let last = lsn_of(&ps.info().await.unwrap(), "last_record_lsn");
        ps.checkpoint().await.unwrap();
        ps.compact().await.unwrap();
        ps.checkpoint().await.unwrap();
        check_pages(&ps, &model, last).await;
        integrity::check(&ps.workdir, TENANT, TIMELINE)
            .unwrap_or_else(|e| panic!("{failpoint} after recovery: {e:#}"));
        history.observe(&ps.remote_root()).unwrap();
        ps.check_log(ALLOWED)
            .unwrap_or_else(|e| panic!("{failpoint}: {e:#}"));
        report.push(format!(
            "{failpoint}: died, acked {acked}, restarted at {remote}, index {} with {} layers",
            found.index, found.layers
        ));
        ps.kill9();
    }
    println!(
        "crash at every failpoint: {} failpoints\n{}",
        report.len(),
        report.join("\n")
    );
    assert_eq!(report.len(), FAILPOINTS.len());
}
