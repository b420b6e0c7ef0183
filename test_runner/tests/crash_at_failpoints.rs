//! Suite 1: crash at every failpoint. For each failpoint of the brief (section 7) and each of
//! its first evaluations ([`phases`]) (a failpoint passed by a flush, then by a compaction, then by
//! the next flush...), a workload of ingest, checkpoint and compaction runs with the failpoint
//! set to `exit` at that evaluation; the process dies there; it restarts; the integrity checker and the history oracle hold; every page at or
//! below the last reported `remote_consistent_lsn` matches the model; the storage node
//! re-ingests from the restarted server's `remote_consistent_lsn`; compaction runs again; and
//! the final state matches the model. Both remote backends run it (local filesystem, and a
//! SeaweedFS bucket per failpoint and phase).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::time::Duration;
use test_runner::integrity::History;
use test_runner::remote::{Backend, Remote};
use test_runner::server::{Pageserver, lsn_of};
use test_support::Model;
use test_support::workload::workload;

const KEYS: u128 = 24;

/// The evaluations of each failpoint crashed at: the first, the second, ... (`CRASH_PHASES`,
/// default 3).
fn phases() -> u64 {
    std::env::var("CRASH_PHASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

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

/// Every page version at or below `upto`: each key at the LSN of each of its records, and at
/// `upto`. Returns the reads made.
async fn check_pages(ps: &Pageserver, model: &Model, upto: Lsn) -> usize {
    test_runner::server::check_every_version(ps, model, KEYS, upto).await
}

/// Runs the workload with `failpoint` set to `actions` (an `exit`); returns whether the process
/// died there and the last `remote_consistent_lsn` it reported.
async fn workload_until_exit(
    ps: &mut Pageserver,
    remote: &Remote,
    model: &mut Model,
    history: &mut History,
    failpoint: &str,
    actions: &str,
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
    history.observe(remote).await.unwrap();
    ps.failpoint(failpoint, actions).await.unwrap();
    // Six rounds: compactions (two L0 layers each) in three of them, so that every
    // compaction failpoint is passed at least three times.
    for round in 0..6 {
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
    // Every request has answered and the queue is idle (or the process is gone): if it still
    // runs now, this phase of the failpoint was not reached.
    let died = ps.wait_exit(Duration::from_secs(2)).await == Some(77);
    (died, acked)
}

test_runner::test_on_each_backend!(crash_at_every_failpoint => crash_at_every_failpoint_local, crash_at_every_failpoint_s3);

async fn crash_at_every_failpoint(backend: Backend) {
    let mut report = Vec::new();
    let mut unreached = Vec::new();
    let mut reads = 0;
    for failpoint in FAILPOINTS {
        for phase in 0..phases() {
            match crash_once(backend, failpoint, phase).await {
                Some((line, n)) => {
                    report.push(line);
                    reads += n;
                }
                None => {
                    assert!(phase > 0, "{failpoint}: the workload reached the failpoint");
                    unreached.push(format!("{failpoint}#{}", phase + 1));
                    break;
                }
            }
        }
    }
    // The workload passes every failpoint at least three times: at the default, every phase
    // must really crash (an `N*off->exit` that never exits would otherwise pass unseen).
    assert!(
        phases() > 3 || unreached.is_empty(),
        "phases not reached: {unreached:?}"
    );
    test_support::report(&format!(
        "suite 1, crash at every failpoint ({backend:?}): {} crashes over {} failpoints x up to {} phases, {reads} pages read back (every page version at or below the acknowledged LSN after each restart, and after each step of the recovery); phases the workload does not reach: {}",
        report.len(),
        FAILPOINTS.len(),
        phases(),
        if unreached.is_empty() {
            "none".to_string()
        } else {
            unreached.join(", ")
        }
    ));
    println!("{}", report.join("\n"));
}

/// Crashes at evaluation `phase` (0 = the first) of `failpoint`, restarts and checks; the
/// report line, or `None` if the workload never evaluates the failpoint that often.
async fn crash_once(backend: Backend, failpoint: &str, phase: u64) -> Option<(String, usize)> {
    {
        let dir = tempfile::tempdir().unwrap();
        let remote = Remote::new(backend, dir.path(), &format!("crash-{failpoint}-{phase}"));
        let mut ps = Pageserver::with_remote(
            dir.path(),
            &remote,
            &[
                "compaction_threshold = 2",
                // Several L1 outputs per compaction: a crash can land between two of them.
                "compaction_target_size = 65536",
                "image_creation_threshold = 1000",
                "compaction_period = \"1h\"",
            ],
        );
        ps.start(None).await;
        ps.setup().await.unwrap();
        let mut model = Model::default();
        let mut history = History::default();
        let actions = match phase {
            0 => "exit".to_string(),
            n => format!("{n}*off->exit"),
        };
        let (died, acked) = workload_until_exit(
            &mut ps,
            &remote,
            &mut model,
            &mut history,
            failpoint,
            &actions,
        )
        .await;
        if !died {
            ps.kill9();
            return None;
        }
        let failpoint = format!("{failpoint}#{}", phase + 1);
        history.observe(&remote).await.unwrap();

        ps.start(None).await;
        let info = ps.info().await.unwrap();
        let restarted = lsn_of(&info, "remote_consistent_lsn");
        assert!(
            restarted >= acked,
            "{failpoint}: acknowledged {acked}, after restart {restarted}"
        );
        for f in ["last_record_lsn", "disk_consistent_lsn"] {
            assert_eq!(
                lsn_of(&info, f),
                restarted,
                "{failpoint}: {f} after restart: {info}"
            );
        }
        let found = ps
            .check_integrity(&remote)
            .await
            .unwrap_or_else(|e| panic!("{failpoint}: {e:#}"));
        history.observe(&remote).await.unwrap();
        let mut reads = check_pages(&ps, &model, acked).await;

        // The storage node resends what was not acknowledged; compaction runs again. Each step
        // is read back.
        let resend = model.records_above(restarted);
        if !resend.is_empty() {
            ps.ingest(&resend).await.unwrap();
        }
        let last = lsn_of(&ps.info().await.unwrap(), "last_record_lsn");
        reads += check_pages(&ps, &model, last).await;
        let info = ps.checkpoint().await.unwrap();
        assert_eq!(
            lsn_of(&info, "remote_consistent_lsn"),
            last,
            "{failpoint}: {info}"
        );
        reads += check_pages(&ps, &model, last).await;
        let compacted = ps.compact().await.unwrap();
        reads += check_pages(&ps, &model, last).await;
        ps.checkpoint().await.unwrap();
        ps.check_integrity(&remote)
            .await
            .unwrap_or_else(|e| panic!("{failpoint} after recovery: {e:#}"));
        history.observe(&remote).await.unwrap();
        ps.check_log(ALLOWED)
            .unwrap_or_else(|e| panic!("{failpoint}: {e:#}"));
        ps.kill9();
        Some((
            format!(
                "{failpoint}: died, acked {acked}, restarted at {restarted}, index {} with {} layers; compaction after recovery: {}; {reads} pages read back",
                found.index, found.layers, compacted["outcome"]
            ),
            reads,
        ))
    }
}
