//! The HTTP API end to end, in process: create, ingest, read back against a model at several
//! LSNs, checkpoint, restart, read back; bad input rejected with no change.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use layer_format::{Key, Lsn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_read_checkpoint_restart_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.checkpoint_distance = 64 << 10; // several flushes along the way
    let ts = TestServer::start(c).await;
    ts.setup().await;
    let keys = 40;
    let mut model = Model::default();
    let mut lsn = 1;
    for batch in 0..12 {
        let recs = with_bases(
            records(
                lsn,
                60,
                keys,
                if batch % 2 == 0 {
                    LARGE_DELTA_BYTES
                } else {
                    SMALL_DELTA_BYTES
                },
                0,
            ),
            &model,
        );
        let (s, v) = ts.ingest(&recs).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        model.add(&recs);
        lsn += 60;
        assert_eq!(v["last_record_lsn"], Lsn(lsn - 1).to_string());
    }
    let last = lsn - 1;
    check_pages(&ts, &model, keys, &[1, 100, 361, last]).await;

    let info = ts.checkpoint().await;
    assert_eq!(info["last_record_lsn"], Lsn(last).to_string());
    assert_eq!(info["disk_consistent_lsn"], Lsn(last).to_string());
    assert_eq!(info["remote_consistent_lsn"], Lsn(last).to_string());
    assert!(info["layers"]["delta"].as_u64().unwrap() >= 2, "{info}");
    check_pages(&ts, &model, keys, &[50, 400, last]).await;

    let (s, layers) = ts.json(Method::GET, &ts.tl("/layer"), "").await;
    assert_eq!(s, StatusCode::OK);
    let layers = layers["layers"].as_array().unwrap().clone();
    assert!(
        layers
            .iter()
            .all(|l| l["local"] == true && l["remote"] == true && l["kind"] == "delta"),
        "{layers:?}"
    );

    // Above last_record_lsn: 400.
    let (s, _) = ts.page(Key::from_u128(1), Lsn(last + 1)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let ts = ts.restart().await;
    let info = ts.info().await;
    for f in [
        "last_record_lsn",
        "disk_consistent_lsn",
        "remote_consistent_lsn",
    ] {
        assert_eq!(info[f], Lsn(last).to_string(), "{f} after restart: {info}");
    }
    assert_eq!(info["generation"], 2, "a restart claims a new generation");
    check_pages(&ts, &model, keys, &[1, 200, 500, last]).await;

    // Ingest continues after the restart, and layers of both generations serve reads.
    ts.ingest_acked(&mut model, last + 1, 50, keys, SMALL_DELTA_BYTES)
        .await;
    ts.checkpoint().await;
    check_pages(&ts, &model, keys, &[last, last + 50]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ingest_bodies_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    ts.setup().await;
    let mut model = Model::default();
    ts.ingest_acked(&mut model, 1, 20, 5, SMALL_DELTA_BYTES)
        .await;
    let before = ts.info().await;

    let good = with_bases(records(21, 10, 5, SMALL_DELTA_BYTES, 0), &model);
    let body = test_support::model::ingest_body(&good);
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "empty body"),
        (body[..body.len() - 1].to_vec(), "runs past the end"),
        (
            test_support::model::ingest_body(&records(5, 3, 5, SMALL_DELTA_BYTES, 0)),
            "not above the timeline's last_record_lsn",
        ),
    ];
    let mut bad_kind = body.clone();
    bad_kind[24] = 9;
    cases.push((bad_kind, "unknown record kind"));
    let mut reserved = body.clone();
    reserved[..16].copy_from_slice(&[0xff; 16]);
    cases.push((reserved, "reserved"));
    for (body, needle) in cases {
        let (s, b) = ts.call(Method::POST, &ts.tl("/ingest"), body).await;
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
        assert!(
            v["error"].as_str().unwrap().contains("at byte"),
            "says where: {v}"
        );
    }
    let over = vec![0u8; 64 * 1024 * 1024 + 1];
    let (s, b) = ts.call(Method::POST, &ts.tl("/ingest"), over).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("max_ingest_body"),
        "{v}"
    );
    assert_eq!(
        ts.info().await["last_record_lsn"],
        before["last_record_lsn"],
        "nothing changed"
    );
    check_pages(&ts, &model, 5, &[20]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_unknown_objects() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    let other = "00000000000000000000000000000001";
    let (s, v) = ts
        .json(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].is_string());
    ts.setup().await;
    assert_eq!(
        ts.json(
            Method::GET,
            &format!("/v1/tenant/{TENANT}/timeline/{other}"),
            ""
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ts.json(
            Method::GET,
            &format!("/v1/tenant/{other}/timeline/{TIMELINE}"),
            ""
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "..%2F..%2Fetc",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123",
        "%2E%2E",
    ] {
        let (s, v) = ts.json(Method::GET, &format!("/v1/tenant/{bad}"), "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        let (s, _) = ts
            .json(
                Method::POST,
                "/v1/tenant",
                &format!("{{\"tenant_id\":\"{bad}\"}}"),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, _) = ts
        .json(
            Method::POST,
            "/v1/tenant",
            &format!("{{\"tenant_id\":\"{TENANT}\"}}"),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = ts.json(Method::POST, "/v1/tenant", "not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = ts
        .call(Method::GET, &ts.tl("/page?key=zz&lsn=0/1"), Body::empty())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = ts
        .call(
            Method::GET,
            &ts.tl(&format!("/page?key={}&lsn=0/0", Key::from_u128(3))),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no record yet");
    let (s, v) = ts.json(Method::GET, "/v1/status", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["id"].is_number() && v["version"].is_string());
    let (s, m) = ts.call(Method::GET, "/metrics", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&m).contains("pageserver_timeline_lsn"));
}

/// A caller in process, without the wire decoder, is held to the timeline's own rules: records
/// out of LSN order, at or below `last_record_lsn`, or none at all are refused and change
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_ingested_in_process_obey_the_timelines_order() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestServer::start(conf(dir.path())).await;
    ts.setup().await;
    let (t, tl) = (TENANT.parse().unwrap(), TIMELINE.parse().unwrap());
    let timeline = ts.server.tenants.get(t).unwrap().timeline(tl).unwrap();
    let recs = records(10, 4, 4, SMALL_DELTA_BYTES, 0);
    let last = recs.last().unwrap().lsn;
    assert_eq!(timeline.ingest(recs.clone(), None).await.unwrap(), last);
    let mut backwards = records(last.0 + 10, 4, 4, SMALL_DELTA_BYTES, 0);
    backwards.reverse();
    let at_last = records(last.0, 2, 4, SMALL_DELTA_BYTES, 0);
    for (what, bad) in [
        ("none", Vec::new()),
        ("out of order", backwards),
        ("at last_record_lsn", at_last),
    ] {
        let e = timeline.ingest(bad, None).await.unwrap_err();
        assert!(
            matches!(e, pageserver::timeline::IngestFailure::Malformed(_)),
            "{what}: {e}"
        );
        assert_eq!(timeline.last_record_lsn(), last, "{what} changed nothing");
    }
}
