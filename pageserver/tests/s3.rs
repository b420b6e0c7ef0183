//! The S3 backend against a real S3-compatible server (SeaweedFS, started by
//! `scripts/seaweedfs`): create-only puts hold under races, conflicts are detected by
//! read-back, and a timeline survives a restart with its data only in the bucket.
//!
//! Uses the server named by `PAGESERVER_TEST_S3_ENDPOINT` (as `scripts/test` sets it), or
//! starts one for this test binary.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use bytes::Bytes;
use common::*;
use layer_format::Lsn;
use pageserver::config::RemoteStorageConfig;
use pageserver::remote::s3::S3;
use pageserver::remote::{Conflict, Created, PutOutcome, RemoteStorage, create_once};
use std::sync::Arc;

fn seaweed() -> &'static test_support::seaweedfs::SeaweedFs {
    test_support::seaweedfs::seaweedfs()
}

fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{nanos:x}")
}

fn store(prefix: &str) -> S3 {
    let s = seaweed();
    S3::new(
        &s.endpoint,
        &s.bucket,
        "us-east-1",
        prefix,
        Some(s.credentials.clone()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_holds_under_races_and_conflicts_are_read_back() {
    let s3 = Arc::new(store(&prefix()));
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s3 = s3.clone();
        tasks.push(tokio::spawn(async move {
            s3.put_if_absent("race/object", Bytes::from(vec![i; 100]))
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == PutOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one concurrent create wins");
    assert_eq!(
        create_once(&*s3, "test", "a/b", Bytes::from_static(b"one"))
            .await
            .unwrap(),
        Created::New
    );
    assert_eq!(
        create_once(&*s3, "test", "a/b", Bytes::from_static(b"one"))
            .await
            .unwrap(),
        Created::Identical
    );
    let err = create_once(&*s3, "test", "a/b", Bytes::from_static(b"two"))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Conflict>().is_some(), "{err:#}");
    assert_eq!(
        s3.get("a/b").await.unwrap().unwrap(),
        Bytes::from_static(b"one")
    );
    assert_eq!(s3.get("a/c").await.unwrap(), None);
    assert_eq!(s3.list("a/").await.unwrap(), vec!["a/b".to_string()]);
    s3.delete("a/b").await.unwrap();
    s3.delete("a/b").await.unwrap();
    assert!(s3.list("a/").await.unwrap().is_empty());
    pageserver::server::probe_create_only(&*s3).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_lives_in_the_bucket_across_restarts() {
    let s = seaweed();
    let dir = tempfile::tempdir().unwrap();
    let mut c = conf(dir.path());
    c.remote_storage = RemoteStorageConfig::S3 {
        endpoint: s.endpoint.clone(),
        bucket: s.bucket.clone(),
        region: "us-east-1".into(),
        prefix: prefix(),
        credentials: Some(s.credentials.clone()),
    };
    c.checkpoint_distance = 32 << 10;
    let ts = TestServer::start(c).await;
    ts.setup().await;
    let mut model = Model::default();
    ts.ingest_acked(&mut model, 1, 200, 12, LARGE_DELTA_BYTES)
        .await;
    let info = ts.checkpoint().await;
    assert_eq!(info["remote_consistent_lsn"], Lsn(200).to_string());
    // Lose every local layer: the restart fetches them from the bucket.
    for e in std::fs::read_dir(ts.timeline_dir()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let ts = ts.restart().await;
    assert_eq!(ts.info().await["disk_consistent_lsn"], Lsn(200).to_string());
    check_pages(&ts, &model, 12, &[50, 200]).await;
}
