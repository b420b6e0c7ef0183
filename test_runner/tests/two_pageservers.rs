//! Suite 4: two pageservers, one bucket (I8). A tenant is attached on a second pageserver
//! (a new generation) while the first still runs, ingests and compacts. The second serves every
//! acknowledged page; the first, now stale, stops acknowledging and deletes nothing the second
//! references; none of the first's later uploads becomes authoritative.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::time::Duration;
use test_runner::integrity::History;
use test_runner::remote::{Backend, Remote};
use test_runner::server::{Pageserver, TENANT, lsn_of};
use test_support::Model;
use test_support::workload::workload;

const KEYS: u128 = 16;

async fn check_pages(ps: &Pageserver, model: &Model, lsns: &[u64]) {
    test_runner::server::check_pages(ps, model, KEYS, lsns).await;
}

test_runner::test_on_each_backend!(a_second_attachment_fences_the_first => a_second_attachment_fences_the_first_local, a_second_attachment_fences_the_first_s3);

async fn a_second_attachment_fences_the_first(backend: Backend) {
    let shared = tempfile::tempdir().unwrap();
    let remote = Remote::new(backend, shared.path(), "two-pageservers");
    let cfg: Vec<&str> = vec![
        "compaction_threshold = 2",
        "image_creation_threshold = 1000",
        "compaction_period = \"1h\"",
    ];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ps1 = Pageserver::with_remote(d1.path(), &remote, &cfg);
    let mut ps2 = Pageserver::with_remote(d2.path(), &remote, &cfg);
    let mut history = History::default();

    ps1.start(None).await;
    ps1.setup().await.unwrap();
    let mut model = Model::default();
    let mut lsn = 1u64;
    for round in 0..2 {
        let recs = workload(&model, lsn, 50, KEYS, round);
        ps1.ingest(&recs).await.unwrap();
        model.add(&recs);
        lsn += 50;
        ps1.checkpoint().await.unwrap();
    }
    let acked = Lsn(lsn - 1);
    history.observe(&remote).await.unwrap();

    // The second attachment claims generation 2 and loads the timeline.
    ps2.start(None).await;
    let t = ps2
        .json(
            reqwest::Method::POST,
            &format!("/v1/tenant/{TENANT}/attach"),
            "",
        )
        .await
        .unwrap();
    assert_eq!(t["generation"], 2, "{t}");
    let info2 = ps2.info().await.unwrap();
    assert_eq!(lsn_of(&info2, "remote_consistent_lsn"), acked);
    check_pages(&ps2, &model, &[acked.0 / 2, acked.0]).await;

    // The first keeps working: it ingests, flushes, compacts; it can no longer acknowledge.
    let stale_model = {
        let mut m = model.clone();
        let recs = workload(&m, lsn, 50, KEYS, 7);
        ps1.ingest(&recs).await.unwrap();
        m.add(&recs);
        m
    };
    let err = ps1.checkpoint().await.unwrap_err();
    assert!(err.body.contains("newer attachment"), "{err:?}");
    let info1 = ps1.info().await.unwrap();
    assert_eq!(info1["stale"], true, "{info1}");
    assert_eq!(
        lsn_of(&info1, "remote_consistent_lsn"),
        acked,
        "never acknowledged after the second attach"
    );
    let stale_compaction = ps1.compact().await.unwrap();
    // What the stale attachment serves after its compaction is still its own records.
    let stale_last = lsn_of(&ps1.info().await.unwrap(), "last_record_lsn");
    check_pages(&ps1, &stale_model, &[acked.0, stale_last.0]).await;
    for _ in 0..200 {
        if ps1.info().await.unwrap()["pending_uploads"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    history.observe(&remote).await.unwrap();

    // Every layer the authoritative index references is still there: the stale attachment
    // deleted nothing; and the authoritative index is the second's.
    let found = ps2.check_integrity(&remote).await.unwrap();
    assert_eq!(
        found.index.generation.0, 2,
        "the first's later uploads are not authoritative: {found:?}"
    );
    check_pages(&ps2, &model, &[acked.0 / 2, acked.0]).await;

    // The second goes on from the acknowledged LSN; a restart of it (generation 3) serves all.
    let recs = workload(&model, acked.0 + 1, 50, KEYS, 9);
    ps2.ingest(&recs).await.unwrap();
    model.add(&recs);
    let info2 = ps2.checkpoint().await.unwrap();
    assert_eq!(lsn_of(&info2, "remote_consistent_lsn"), Lsn(acked.0 + 50));
    ps2.compact().await.unwrap();
    check_pages(&ps2, &model, &[acked.0, acked.0 + 50]).await;
    ps2.kill9();
    ps2.start(None).await;
    check_pages(&ps2, &model, &[acked.0, acked.0 + 50]).await;
    ps2.check_integrity(&remote).await.unwrap();
    history.observe(&remote).await.unwrap();
    ps1.check_log(&["stale", "newer generation", "request failed", "retrying"])
        .unwrap();
    ps2.check_log(&[]).unwrap();
    test_support::report(&format!(
        "suite 4, two pageservers ({backend:?}): the stale attachment's checkpoint refused, its compaction {} and its pages read back; the authoritative index ({}) kept all {} layers; {} remote objects observed, none changed",
        stale_compaction["outcome"],
        found.index,
        found.layers,
        history.observe(&remote).await.unwrap()
    ));
}
