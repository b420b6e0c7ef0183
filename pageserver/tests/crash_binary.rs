//! The real `pageserver` binary killed at failpoints (`exit` action, set through the API or
//! through `FAILPOINTS` at start), then restarted on the same work directory:
//!
//! * a flush that published its layer but never installed it: on restart the stray layer is
//!   removed, the LSNs equal the last acknowledged `remote_consistent_lsn`, and the storage
//!   node re-ingests from there (I3, I9);
//! * a compaction that published its outputs but never installed them: on restart they are
//!   removed (not in the index), the next compaction succeeds, reads match (I7).
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use bytes::Bytes;
use common::{LARGE_DELTA_BYTES, Model, SMALL_DELTA_BYTES, TENANT, TIMELINE, records, with_bases};
use layer_format::Lsn;
use pageserver::timeline::Record;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use test_support::api::PageApi;
use test_support::model::ingest_body as encode_ingest;

/// A pageserver binary on a free loopback port, restartable on the same work directory.
struct Binary {
    workdir: PathBuf,
    port: u16,
    client: reqwest::Client,
    config: Vec<&'static str>,
}

impl Binary {
    fn new(workdir: &Path, config: &[&'static str]) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Binary {
            workdir: workdir.to_path_buf(),
            port,
            client: reqwest::Client::new(),
            config: config.to_vec(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn tl(&self, rest: &str) -> String {
        format!(
            "{}/v1/tenant/{TENANT}/timeline/{TIMELINE}{rest}",
            self.base()
        )
    }

    fn timeline_dir(&self) -> PathBuf {
        self.workdir
            .join("tenants")
            .join(TENANT)
            .join("timelines")
            .join(TIMELINE)
    }

    /// Starts the binary (with `FAILPOINTS` if given) and waits until it answers.
    async fn start(&self, failpoints: Option<&str>) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pageserver"));
        cmd.arg("--workdir")
            .arg(&self.workdir)
            .arg("--listen-http")
            .arg(format!("127.0.0.1:{}", self.port));
        cmd.args([
            "-c",
            "io_engine = \"std\"",
            "-c",
            "compaction_period = \"1h\"",
        ]);
        for c in &self.config {
            cmd.args(["-c", c]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        let mut child = cmd.spawn().unwrap();
        for _ in 0..200 {
            if self
                .client
                .get(format!("{}/v1/status", self.base()))
                .send()
                .await
                .is_ok()
            {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server did not start");
    }

    /// A request whose answer must be a JSON success.
    async fn json(
        &self,
        method: reqwest::Method,
        url: String,
        body: impl Into<reqwest::Body>,
    ) -> serde_json::Value {
        let r = self
            .client
            .request(method, url)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert!(status.is_success(), "{status}: {v}");
        v
    }

    async fn setup(&self) {
        test_support::api::setup(self)
            .await
            .expect("tenant and timeline created");
    }

    async fn ingest(&self, records: &[Record]) {
        self.json(
            reqwest::Method::POST,
            self.tl("/ingest"),
            encode_ingest(records),
        )
        .await;
    }

    async fn put(&self, rest: &str) -> serde_json::Value {
        self.json(reqwest::Method::PUT, self.tl(rest), "").await
    }

    async fn check(&self, model: &Model, keys: u128, lsns: &[u64]) {
        test_support::api::check_pages(self, model, keys, lsns).await;
    }
}

impl PageApi for Binary {
    async fn send(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, Bytes) {
        match self
            .client
            .request(method, format!("{}{path}", self.base()))
            .body(body)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.bytes().await.unwrap_or_default())
            }
            Err(e) => (0, Bytes::from(e.to_string())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_after_publish_then_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ps = Binary::new(dir.path(), &[]);

    // First run: one acknowledged checkpoint, then a crash in the second flush.
    let mut child = ps.start(None).await;
    ps.setup().await;
    let mut model = Model::default();
    let first = with_bases(records(1, 100, 8, SMALL_DELTA_BYTES, 0), &model);
    ps.ingest(&first).await;
    model.add(&first);
    assert_eq!(
        ps.put("/checkpoint").await["remote_consistent_lsn"],
        Lsn(100).to_string()
    );
    let second = with_bases(records(101, 50, 8, SMALL_DELTA_BYTES, 0), &model);
    ps.ingest(&second).await;
    let url = format!("{}/v1/failpoints", ps.base());
    ps.json(
        reqwest::Method::PUT,
        url,
        r#"[{"name":"flush-after-publish","actions":"exit"}]"#,
    )
    .await;
    assert!(
        ps.client.put(ps.tl("/checkpoint")).send().await.is_err(),
        "the process died mid-request"
    );
    assert_eq!(
        child.wait().unwrap().code(),
        Some(77),
        "exited at the failpoint"
    );
    assert_eq!(
        std::fs::read_dir(ps.timeline_dir()).unwrap().count(),
        2,
        "the published but uninstalled layer is on disk"
    );

    // Second run, with FAILPOINTS set at start to a harmless action: the stray layer is gone.
    let mut child = ps.start(Some("upload-layer-after=off")).await;
    let info = ps.json(reqwest::Method::GET, ps.tl(""), "").await;
    for f in [
        "last_record_lsn",
        "disk_consistent_lsn",
        "remote_consistent_lsn",
    ] {
        assert_eq!(info[f], Lsn(100).to_string(), "{f}: {info}");
    }
    assert_eq!(
        std::fs::read_dir(ps.timeline_dir()).unwrap().count(),
        1,
        "reconciliation removed the stray layer"
    );
    // The storage node re-ingests what was not acknowledged.
    ps.ingest(&second).await;
    model.add(&second);
    ps.check(&model, 8, &[100, 150]).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_between_compaction_publish_and_install() {
    let dir = tempfile::tempdir().unwrap();
    let ps = Binary::new(dir.path(), &["compaction_threshold = 3"]);
    let mut child = ps.start(Some("compaction-after-publish=exit")).await;
    ps.setup().await;
    let mut model = Model::default();
    let mut lsn = 1;
    for _ in 0..3 {
        let recs = with_bases(records(lsn, 40, 8, LARGE_DELTA_BYTES, 0), &model);
        ps.ingest(&recs).await;
        model.add(&recs);
        lsn += 40;
        ps.put("/checkpoint").await;
    }
    assert!(
        ps.client.put(ps.tl("/compact")).send().await.is_err(),
        "the process died mid-compaction"
    );
    assert_eq!(child.wait().unwrap().code(), Some(77));
    let before = std::fs::read_dir(ps.timeline_dir()).unwrap().count();
    assert!(
        before > 3,
        "outputs published next to the 3 inputs: {before}"
    );

    let mut child = ps.start(None).await;
    assert_eq!(
        std::fs::read_dir(ps.timeline_dir()).unwrap().count(),
        3,
        "reconciliation removed the unindexed outputs"
    );
    let v = ps.put("/compact").await;
    assert_eq!(v["outcome"], "compacted", "{v}");
    assert_eq!(v["leftovers_quarantined"], 0, "{v}");
    ps.check(&model, 8, &[40, lsn - 1]).await;
    child.kill().unwrap();
    child.wait().unwrap();
}
