//! Hostile input on the real binary (#13): one request must never take the node down.
//!
//! * A record at LSN `FFFFFFFF/FFFFFFFF` was accepted; the next checkpoint panicked while
//!   holding the layer lock, and from then on every tenant request failed. It is refused with
//!   400 now, and the node serves on.
//! * Many records at one LSN: the duplicate check was quadratic under the ingest lock (200,000
//!   records took about 26 s). It keeps a set of the LSN's keys now; the test sends 200,000 and
//!   prints how long the request took (a figure, not an assertion).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::value::{Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::timeline::Record;
use test_runner::server::{Pageserver, TENANT, lsn_of};

fn delta(key: u128, lsn: Lsn) -> Record {
    Record {
        key: Key::from_u128(key),
        lsn,
        value: Value::Delta {
            will_init: true,
            record: encode_patches(&[Patch {
                offset: 0,
                bytes: b"x",
            }]),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_at_the_top_lsn_is_refused_and_the_node_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    ps.ingest(&[delta(1, Lsn(5))]).await.unwrap();

    let err = ps.ingest(&[delta(2, Lsn::MAX)]).await.unwrap_err();
    assert_eq!(err.status, 400, "{err:?}");
    assert!(err.body.contains("reserved"), "{err:?}");
    let body: serde_json::Value = serde_json::from_str(&err.body).unwrap();
    assert!(body["error"].is_string(), "{body}");

    // Nothing changed, and everything still answers.
    let info = ps.checkpoint().await.unwrap();
    assert_eq!(lsn_of(&info, "last_record_lsn"), Lsn(5));
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(5));
    ps.request(reqwest::Method::GET, "/v1/tenant", "")
        .await
        .unwrap();
    ps.tenant_action(TENANT, "reset").await.unwrap();
    let page = ps.page(Key::from_u128(1), Lsn(5)).await.unwrap();
    assert_eq!(page[0], b'x');
    ps.check_log(&[]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_records_at_one_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let n = 200_000u128;
    let recs: Vec<Record> = (0..n).map(|k| delta(k, Lsn(7))).collect();
    let started = std::time::Instant::now();
    let answer = ps.ingest(&recs).await.unwrap();
    let took = started.elapsed();
    assert_eq!(lsn_of(&answer, "last_record_lsn"), Lsn(7));
    // A repeat among them is refused whole.
    let mut again: Vec<Record> = (0..1000u128).map(|k| delta(k, Lsn(8))).collect();
    again.push(delta(500, Lsn(8)));
    let err = ps.ingest(&again).await.unwrap_err();
    assert_eq!(err.status, 400, "{err:?}");
    assert!(err.body.contains("appears twice"), "{err:?}");
    let page = ps.page(Key::from_u128(199_999), Lsn(7)).await.unwrap();
    assert_eq!(page[0], b'x');
    test_support::report(&format!(
        "hostile input: {n} records at one LSN ingested in {:.2} s (one request, debug build)",
        took.as_secs_f64()
    ));
}

/// A regular file named `lost+found` in a timeline directory stopped start-up (the quarantine
/// could not create the directory). Now it is quarantined like any stray file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_named_lost_and_found_does_not_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    ps.ingest(&[delta(1, Lsn(5))]).await.unwrap();
    ps.checkpoint().await.unwrap();
    ps.kill9();
    let tl = ps.timeline_dir();
    std::fs::write(tl.join("lost+found"), b"not a directory").unwrap();
    std::fs::write(tl.join("stray"), b"junk").unwrap();
    ps.start(None).await;
    let page = ps.page(Key::from_u128(1), Lsn(5)).await.unwrap();
    assert_eq!(page[0], b'x');
    let lf = tl.join("lost+found");
    assert!(lf.is_dir(), "lost+found is a directory again");
    let mut inside: Vec<String> = std::fs::read_dir(&lf)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    inside.sort();
    assert_eq!(inside.len(), 2, "{inside:?}");
    assert!(
        inside[0].starts_with("lost+found.") && inside[1].starts_with("stray."),
        "{inside:?}"
    );
    let moved: Vec<Vec<u8>> = inside
        .iter()
        .map(|n| std::fs::read(lf.join(n)).unwrap())
        .collect();
    assert_eq!(moved, vec![b"not a directory".to_vec(), b"junk".to_vec()]);
    ps.check_log(&["moved an unrecognised file"]).unwrap();
}

/// Attaching a tenant that never existed answered 200 and claimed generation 1 for it. Now it
/// is a 404 and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_a_tenant_that_never_existed_is_a_404_and_claims_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    let ghost = "00000000000000000000000000000abc";
    let err = ps.tenant_action(ghost, "attach").await.unwrap_err();
    assert_eq!(err.status, 404, "{err:?}");
    let body: serde_json::Value = serde_json::from_str(&err.body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    let claims = ps.remote_root().join(format!("tenants/{ghost}"));
    assert!(
        !claims.exists(),
        "nothing written under {}",
        claims.display()
    );
    // A tenant that does exist attaches (here: created, detached, attached again).
    ps.setup().await.unwrap();
    ps.tenant_action(TENANT, "detach").await.unwrap();
    ps.tenant_action(TENANT, "attach").await.unwrap();
    ps.check_log(&[]).unwrap();
}

/// The ingest limits are settings (`max_ingest_body`, `max_ingest_records`), drawn per seed
/// (`INGEST_LIMITS_SEED`): a body over the limit answers 413 JSON, one record too many 400
/// naming the setting; nothing is applied, and what is within the limits is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_limits_are_settings() {
    let seed = test_support::seed("INGEST_LIMITS_SEED");
    let mut rng = test_support::Rng::new(seed);
    // A delta record with a one-byte patch is 34 bytes.
    let max_records = rng.range(2, 400);
    let max_body = rng.range(34 * (max_records + 1), 34 * (max_records + 1) + 5000);
    eprintln!(
        "ingest limits seed {seed}: max_ingest_records {max_records}, max_ingest_body {max_body}"
    );
    let dir = tempfile::tempdir().unwrap();
    let body_setting = format!("max_ingest_body = {max_body}");
    let records_setting = format!("max_ingest_records = {max_records}");
    let mut ps = Pageserver::new(
        dir.path(),
        &[
            "compaction_period = \"1h\"",
            &body_setting,
            &records_setting,
        ],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();

    let recs = |first: u64, n: u64| -> Vec<Record> {
        (0..n)
            .map(|i| delta(u128::from(i), Lsn(first + i)))
            .collect()
    };
    // One record too many: 400 naming the setting, at the offset of the first one over.
    let err = ps.ingest(&recs(1, max_records + 1)).await.unwrap_err();
    assert_eq!(err.status, 400, "{err:?}");
    assert!(err.body.contains("max_ingest_records"), "{err:?}");
    assert!(
        err.body.contains(&format!("at byte {}", 34 * max_records)),
        "{err:?}"
    );
    // A body one byte over: 413 JSON.
    let over = vec![0u8; usize::try_from(max_body).unwrap() + 1];
    let err = ps
        .request(reqwest::Method::POST, &ps.tl("/ingest"), over)
        .await
        .unwrap_err();
    assert_eq!(err.status, 413, "{err:?}");
    let body: serde_json::Value = serde_json::from_str(&err.body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("max_ingest_body"),
        "{body}"
    );
    // Nothing was applied; exactly the limits pass.
    let info = ps.info().await.unwrap();
    assert_eq!(lsn_of(&info, "last_record_lsn"), Lsn(0), "{info}");
    let answer = ps.ingest(&recs(1, max_records)).await.unwrap();
    assert_eq!(
        lsn_of(&answer, "last_record_lsn"),
        Lsn(max_records),
        "{answer}"
    );
    ps.check_log(&[]).unwrap();
}

/// Reset and detach did not wait for a running compaction: the reset's successor loaded (and
/// reconciled) the directory while the old compaction still wrote into it, and a detach could
/// fail with ENOTEMPTY after the tenant had left the map. Now both wait for it (a compaction
/// looks at the stop flag and ends early); here it is held at `compaction-after-output`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_detach_wait_for_a_running_compaction() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(
        dir.path(),
        &[
            "compaction_period = \"1h\"",
            "compaction_threshold = 2",
            "image_creation_threshold = 1000",
        ],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut lsn = 1;
    for op in ["reset", "detach"] {
        for _ in 0..3 {
            let recs: Vec<Record> = (0..20).map(|k| delta(k, Lsn(lsn + k as u64))).collect();
            lsn += 20;
            ps.ingest(&recs).await.unwrap();
            ps.checkpoint().await.unwrap();
        }
        ps.failpoint("compaction-after-output", "pause")
            .await
            .unwrap();
        let compact_path = ps.tl("/compact");
        let compact = ps.request(reqwest::Method::PUT, &compact_path, "");
        let stop = async {
            assert!(
                ps.wait_paused("compaction-after-output", Duration::from_secs(30))
                    .await
            );
            let stop = ps.tenant_action(TENANT, op);
            tokio::pin!(stop);
            let early = tokio::time::timeout(Duration::from_millis(1500), &mut stop).await;
            assert!(
                early.is_err(),
                "{op} answered while a compaction was still running: {early:?}"
            );
            ps.failpoint("compaction-after-output", "off")
                .await
                .unwrap();
            stop.await
        };
        let (compacted, stopped) = tokio::join!(compact, stop);
        stopped.unwrap();
        let compacted: serde_json::Value = serde_json::from_slice(&compacted.unwrap()).unwrap();
        assert_eq!(compacted["outcome"], "abandoned", "{compacted}");
        if op == "reset" {
            // The successor's directory holds exactly its layers: nothing quarantined,
            // no temp file of the old compaction.
            let names: Vec<String> = std::fs::read_dir(ps.timeline_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let mut on_disk: Vec<String> = names
                .iter()
                .filter(|n| !n.ends_with(".___temp") && *n != "lost+found")
                // `<layer name>-<generation>`
                .map(|n| n.rsplit_once('-').unwrap().0.to_string())
                .collect();
            on_disk.sort();
            let mut listed = ps.layer_names().await.unwrap();
            listed.sort();
            assert_eq!(on_disk, listed, "{names:?}");
            let lf = ps.timeline_dir().join("lost+found");
            assert!(
                !lf.exists() || std::fs::read_dir(&lf).unwrap().next().is_none(),
                "nothing quarantined"
            );
            assert!(!names.iter().any(|n| n.ends_with(".___temp")), "{names:?}");
            let page = ps.page(Key::from_u128(3), Lsn(lsn - 1)).await.unwrap();
            assert_eq!(page[0], b'x');
        } else {
            assert!(
                !dir.path().join("tenants").join(TENANT).exists(),
                "the detached tenant's directory is gone"
            );
        }
    }
    ps.check_log(&[]).unwrap();
}

/// I11 on the remote side: a layer object lands, its index upload fails, the tenant is reset
/// (same generation), and the storage node resends the unacknowledged LSNs with other bytes.
/// The new layer has the orphan's object name; the create-only put found different bytes and
/// the queue retried forever (`checkpoint` never finished). Now the orphan of the earlier
/// incarnation is deleted and the put made again, after this incarnation's first index landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_reset_replaces_the_orphan_of_the_failed_index_upload() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let remote = test_runner::remote::Remote::local(&dir.path().join("remote_storage"));
    // Every ingest request freezes and flushes (the in-memory layer is over 1 byte).
    let mut ps = Pageserver::new(
        dir.path(),
        &["compaction_period = \"1h\"", "checkpoint_distance = 1"],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let batch = |first: u64, byte: u8| test_support::workload::byte_deltas(first, 20, 5, byte);
    ps.ingest(&batch(1, b'a')).await.unwrap();
    let info = ps.checkpoint().await.unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(20));

    // The next layer lands; its index does not.
    ps.failpoint("upload-index-before", "return").await.unwrap();
    ps.ingest(&batch(21, b'b')).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let orphan = loop {
        let v = ps
            .json(reqwest::Method::GET, &ps.tl("/layer"), "")
            .await
            .unwrap();
        let landed = v["layers"].as_array().unwrap().iter().find(|l| {
            l["lsn_start"] == Lsn(21).to_string() && l["remote"] == serde_json::json!(true)
        });
        if let Some(l) = landed {
            break l["name"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the layer upload did not land: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let objects = remote.list("tenants/").await.unwrap();
    assert!(objects.iter().any(|k| k.contains(&orphan)), "{objects:?}");

    // Reset: the index without it is authoritative; the storage node resends other bytes.
    ps.tenant_action(TENANT, "reset").await.unwrap();
    ps.failpoint("upload-index-before", "off").await.unwrap();
    let info = ps.info().await.unwrap();
    assert_eq!(lsn_of(&info, "last_record_lsn"), Lsn(20), "{info}");
    ps.ingest(&batch(21, b'c')).await.unwrap();
    let info = ps.checkpoint().await.unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(40), "{info}");
    assert!(
        ps.layer_names().await.unwrap().contains(&orphan),
        "same name"
    );
    let page = ps.page(Key::from_u128(1), Lsn(40)).await.unwrap();
    assert_eq!(page[0], b'c');

    // The object under the name is ours now, and every index's layers match it.
    let integrity = ps.check_integrity(&remote).await.unwrap();
    eprintln!("integrity after the orphan was replaced: {integrity:?}");
    let replaced =
        "pageserver_remote_operations_total{kind=\"upload_layer\",outcome=\"orphan_replaced\"}";
    assert_eq!(ps.metric(replaced).await, 1.0);
    ps.check_log(&[
        "upload_index failed",
        "an orphan of an earlier incarnation",
        "create-only put found different bytes",
    ])
    .unwrap();
}
