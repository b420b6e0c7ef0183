//! The real `pageserver` binary killed at a failpoint (`FAILPOINTS` at start, `exit` action):
//! a flush that published its layer but never installed it. On restart the stray layer is
//! removed, the LSNs equal the last acknowledged `remote_consistent_lsn`, and the storage node
//! re-ingests from there (I3, I9).
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{Model, TENANT, TIMELINE, with_bases, workload};
use layer_format::{Key, Lsn};
use pageserver::timeline::encode_ingest;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(workdir: &std::path::Path, port: u16, failpoints: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pageserver"));
    cmd.arg("--workdir")
        .arg(workdir)
        .arg("--listen-http")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-c")
        .arg("io_engine = \"std\"");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(f) = failpoints {
        cmd.env("FAILPOINTS", f);
    }
    cmd.spawn().unwrap()
}

async fn wait_up(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client.get(format!("{base}/v1/status")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_after_publish_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let tl = format!("{base}/v1/tenant/{TENANT}/timeline/{TIMELINE}");

    // First run: everything up to one acknowledged checkpoint, then a crash in the second flush.
    let mut child = spawn(dir.path(), port, None);
    wait_up(&client, &base).await;
    client
        .post(format!("{base}/v1/tenant"))
        .body(format!("{{\"tenant_id\":\"{TENANT}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client
        .post(format!("{base}/v1/tenant/{TENANT}/timeline"))
        .body(format!("{{\"timeline_id\":\"{TIMELINE}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut model = Model::default();
    let first = with_bases(workload(1, 100, 8, false), &model);
    client
        .post(format!("{tl}/ingest"))
        .body(encode_ingest(&first))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    model.add(&first);
    let info: serde_json::Value = client
        .put(format!("{tl}/checkpoint"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(info["remote_consistent_lsn"], Lsn(100).to_string());
    let second = with_bases(workload(101, 50, 8, false), &model);
    client
        .post(format!("{tl}/ingest"))
        .body(encode_ingest(&second))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client
        .put(format!("{base}/v1/failpoints"))
        .body(r#"[{"name":"flush-after-publish","actions":"exit"}]"#)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert!(
        client.put(format!("{tl}/checkpoint")).send().await.is_err(),
        "the process died mid-request"
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(77), "exited at the failpoint");
    let tl_dir = dir
        .path()
        .join("tenants")
        .join(TENANT)
        .join("timelines")
        .join(TIMELINE);
    assert_eq!(
        std::fs::read_dir(&tl_dir).unwrap().count(),
        2,
        "the published but uninstalled layer is on disk"
    );

    // Second run, with FAILPOINTS set at start to a harmless action: the stray layer is gone.
    let mut child = spawn(dir.path(), port, Some("upload-layer-after=off"));
    wait_up(&client, &base).await;
    let info: serde_json::Value = client
        .get(&tl)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    for f in [
        "last_record_lsn",
        "disk_consistent_lsn",
        "remote_consistent_lsn",
    ] {
        assert_eq!(info[f], Lsn(100).to_string(), "{f}: {info}");
    }
    assert_eq!(
        std::fs::read_dir(&tl_dir).unwrap().count(),
        1,
        "reconciliation removed the stray layer"
    );
    // The storage node re-ingests what was not acknowledged.
    client
        .post(format!("{tl}/ingest"))
        .body(encode_ingest(&second))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    model.add(&second);
    for k in 0..8u128 {
        for l in [100u64, 150] {
            let r = client
                .get(format!(
                    "{tl}/page?key={}&lsn={}",
                    Key::from_u128(k),
                    Lsn(l)
                ))
                .send()
                .await
                .unwrap();
            match model.page(Key::from_u128(k), Lsn(l)) {
                Some(p) => assert_eq!(r.bytes().await.unwrap(), p, "({k}, {l})"),
                None => assert_eq!(r.status(), 404),
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Crash between publish and install: the compaction's outputs are under their final names
/// but in no index. The restart removes them (not in the index), the next compaction succeeds,
/// and reads match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_between_compaction_publish_and_install() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let tl = format!("{base}/v1/tenant/{TENANT}/timeline/{TIMELINE}");
    let opts = "compaction_threshold = 3";
    let spawn_with = |f: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pageserver"));
        cmd.arg("--workdir")
            .arg(dir.path())
            .arg("--listen-http")
            .arg(format!("127.0.0.1:{port}"));
        cmd.args([
            "-c",
            "io_engine = \"std\"",
            "-c",
            opts,
            "-c",
            "compaction_period = \"1h\"",
        ]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(f) = f {
            cmd.env("FAILPOINTS", f);
        }
        cmd.spawn().unwrap()
    };
    let mut child = spawn_with(Some("compaction-after-publish=exit"));
    wait_up(&client, &base).await;
    client
        .post(format!("{base}/v1/tenant"))
        .body(format!("{{\"tenant_id\":\"{TENANT}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client
        .post(format!("{base}/v1/tenant/{TENANT}/timeline"))
        .body(format!("{{\"timeline_id\":\"{TIMELINE}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut model = Model::default();
    let mut lsn = 1;
    for _ in 0..3 {
        let recs = with_bases(workload(lsn, 40, 8, true), &model);
        client
            .post(format!("{tl}/ingest"))
            .body(encode_ingest(&recs))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        model.add(&recs);
        lsn += 40;
        client
            .put(format!("{tl}/checkpoint"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
    assert!(
        client.put(format!("{tl}/compact")).send().await.is_err(),
        "the process died mid-compaction"
    );
    assert_eq!(child.wait().unwrap().code(), Some(77));
    let tl_dir = dir
        .path()
        .join("tenants")
        .join(TENANT)
        .join("timelines")
        .join(TIMELINE);
    let before = std::fs::read_dir(&tl_dir).unwrap().count();
    assert!(
        before > 3,
        "outputs published next to the 3 inputs: {before}"
    );

    let mut child = spawn_with(None);
    wait_up(&client, &base).await;
    assert_eq!(
        std::fs::read_dir(&tl_dir).unwrap().count(),
        3,
        "reconciliation removed the unindexed outputs"
    );
    let v: serde_json::Value = client
        .put(format!("{tl}/compact"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(v["outcome"], "compacted", "{v}");
    assert_eq!(v["leftovers_quarantined"], 0, "{v}");
    for k in 0..8u128 {
        for l in [40u64, lsn - 1] {
            let r = client
                .get(format!(
                    "{tl}/page?key={}&lsn={}",
                    Key::from_u128(k),
                    Lsn(l)
                ))
                .send()
                .await
                .unwrap();
            match model.page(Key::from_u128(k), Lsn(l)) {
                Some(p) => assert_eq!(r.bytes().await.unwrap(), p, "({k}, {l})"),
                None => assert_eq!(r.status(), 404),
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
