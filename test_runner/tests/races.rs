//! Suite 3: races (reftable's bug). A job computed the new layer list from a snapshot taken
//! before its work, and installed it over changes made meanwhile: a layer was lost, or a
//! removed one came back. Here every change applies its delta to the current map (I6).
//!
//! The driver runs each interleaving of flush, compaction and GC with their index uploads and
//! deletions at the pause points of brief section 7: operation A is paused at one of the points
//! it passes (an observable `1*pause`: the test waits until the server reports a thread
//! waiting there, it never guesses with a sleep), operation B runs meanwhile (to its end, or
//! until it waits for A), then A is released and both finish. After every interleaving:
//!
//! * no layer is lost: every page at every checked LSN at or above the GC cutoff matches the
//!   model, and the integrity checker holds (every indexed layer is in remote storage with its
//!   size and checksum, no temp file, no local layer outside the index);
//! * no layer is resurrected: a layer that left the layer map never comes back, neither in the
//!   map nor after a `kill -9` and restart from the uploaded index;
//! * the restarted server has exactly the layer map it had before the kill, and nothing remote
//!   ever changed (history oracle).
//!
//! `RACES_PAIRS=1` also pauses B at each of its own points and releases the two in both orders
//! (several hundred interleavings, a few minutes).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use test_runner::integrity::History;
use test_runner::model::{Model, workload};
use test_runner::remote::{Backend, Remote};
use test_runner::server::{HttpError, Pageserver, lsn_of};
use tokio::task::JoinHandle;

const KEYS: u128 = 16;
const BATCH: u64 = 40;
/// How long B may run while A is paused before it counts as waiting for A. Only the report's
/// classification depends on it, never a check.
const SETTLE: Duration = Duration::from_millis(1500);
const PAUSE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Freeze, flush an L0 layer, upload it and the index (`checkpoint`).
    Flush,
    /// Merge the uploaded L0 layers into L1 layers, then image layers; upload; delete inputs.
    Compact,
    /// Remove the layers no read at or above the cutoff needs; upload the index; delete.
    Gc,
}

const OPS: [Op; 3] = [Op::Flush, Op::Compact, Op::Gc];

impl Op {
    /// The pause points of brief section 7 that the operation passes.
    fn pause_points(self) -> &'static [&'static str] {
        match self {
            Op::Flush => &[
                "layer-writer-before-finish",
                "layer-publish-after-rename",
                "flush-after-publish",
                "upload-layer-before",
                "upload-layer-after",
                "upload-index-before",
                "upload-index-after",
            ],
            Op::Compact => &[
                "layer-writer-before-finish",
                "compaction-after-output",
                "layer-publish-after-rename",
                "compaction-after-publish",
                "upload-layer-before",
                "upload-layer-after",
                "upload-index-before",
                "upload-index-after",
                "deletion-before-execute",
            ],
            Op::Gc => &[
                "upload-index-before",
                "upload-index-after",
                "deletion-before-execute",
            ],
        }
    }
}

/// One interleaving: A paused at `a_point`; B runs, paused at `b_point` if given; the two are
/// released in the order given.
#[derive(Debug, Clone, Copy)]
struct Interleaving {
    a: Op,
    a_point: &'static str,
    b: Op,
    b_point: Option<&'static str>,
    release_b_first: bool,
}

struct Driver {
    ps: Arc<Pageserver>,
    remote: Remote,
    model: Model,
    lsn: u64,
    history: History,
    /// Every layer that ever left the layer map.
    gone: BTreeSet<String>,
    last_names: BTreeSet<String>,
    seed: u64,
}

/// Starts `op` as a task; a flush ingests a batch of its own first.
fn start(d: &mut Driver, op: Op) -> JoinHandle<Result<serde_json::Value, HttpError>> {
    let ps = d.ps.clone();
    match op {
        Op::Flush => {
            let recs = workload(&d.model, d.lsn, BATCH, KEYS, d.seed);
            d.seed += 1;
            d.model.add(&recs);
            d.lsn += BATCH;
            tokio::spawn(async move {
                ps.ingest(&recs).await?;
                ps.checkpoint().await
            })
        }
        Op::Compact => tokio::spawn(async move { ps.compact().await }),
        Op::Gc => tokio::spawn(async move { ps.gc().await }),
    }
}

async fn finish(
    what: &str,
    task: JoinHandle<Result<serde_json::Value, HttpError>>,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(90), task)
        .await
        .unwrap_or_else(|_| panic!("{what} is stuck"))
        .unwrap()
        .unwrap_or_else(|e| panic!("{what} failed: {e:?}"))
}

async fn is_done(task: &mut JoinHandle<Result<serde_json::Value, HttpError>>) -> bool {
    tokio::time::timeout(SETTLE, async {
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}

impl Driver {
    async fn ingest_and_checkpoint(&mut self) {
        let recs = workload(&self.model, self.lsn, BATCH, KEYS, self.seed);
        self.seed += 1;
        self.ps.ingest(&recs).await.unwrap();
        self.model.add(&recs);
        self.lsn += BATCH;
        self.ps.checkpoint().await.unwrap();
    }

    /// Gives every operation work: two uploaded L0 layers for compaction, L1 layers under a
    /// newer image for GC, and records in memory for a flush.
    async fn prepare(&mut self) {
        self.ingest_and_checkpoint().await;
        self.ingest_and_checkpoint().await;
        self.ps.compact().await.unwrap();
        self.ingest_and_checkpoint().await;
        self.ingest_and_checkpoint().await;
        assert!(self.ps.wait_uploads_idle(PAUSE_TIMEOUT).await);
    }

    /// Runs one interleaving; returns how it went, for the report.
    async fn run(&mut self, il: Interleaving) -> &'static str {
        self.prepare().await;
        let ps = self.ps.clone();
        ps.failpoint(il.a_point, "1*pause").await.unwrap();
        let a = start(self, il.a);
        assert!(
            ps.wait_paused(il.a_point, PAUSE_TIMEOUT).await,
            "{il:?}: A never reached {}",
            il.a_point
        );
        if let Some(q) = il.b_point {
            ps.failpoint(q, "1*pause").await.unwrap();
        }
        let mut b = start(self, il.b);
        let mut how = "B ran while A was paused";
        if let Some(q) = il.b_point {
            let reached = tokio::time::timeout(SETTLE, ps.wait_paused(q, PAUSE_TIMEOUT))
                .await
                .unwrap_or(false);
            if !reached {
                how = "B waited for A before its pause point";
            } else if il.release_b_first {
                ps.failpoint(q, "off").await.unwrap();
                if !is_done(&mut b).await {
                    how = "both paused; B released first, then waited for A";
                } else {
                    how = "both paused; B released and finished first";
                }
            } else {
                how = "both paused; A released first";
            }
            ps.failpoint(il.a_point, "off").await.unwrap();
            ps.failpoint(q, "off").await.unwrap();
        } else {
            if !is_done(&mut b).await {
                how = "B waited for A";
            }
            ps.failpoint(il.a_point, "off").await.unwrap();
        }
        finish(&format!("{il:?}: A"), a).await;
        finish(&format!("{il:?}: B"), b).await;
        drop(ps);
        self.check(&format!("{il:?}")).await;
        how
    }

    /// The checks of the module doc, then `kill -9`, restart, and the same checks again.
    async fn check(&mut self, what: &str) {
        let info = self.ps.checkpoint().await.unwrap();
        assert_eq!(
            lsn_of(&info, "remote_consistent_lsn").0,
            self.lsn - 1,
            "{what}"
        );
        assert!(self.ps.wait_uploads_idle(PAUSE_TIMEOUT).await, "{what}");
        let before = self.check_now(what).await;
        let ps = Arc::get_mut(&mut self.ps).expect("no task holds the server");
        ps.kill9();
        ps.start(None).await;
        let after = self.check_now(&format!("{what}, after restart")).await;
        assert_eq!(
            before, after,
            "{what}: the restarted layer map is the one before the kill"
        );
    }

    async fn check_now(&mut self, what: &str) -> BTreeSet<String> {
        let names: BTreeSet<String> = self.ps.layer_names().await.unwrap().into_iter().collect();
        self.gone
            .extend(self.last_names.difference(&names).cloned());
        let back: Vec<&String> = names.intersection(&self.gone).collect();
        assert!(
            back.is_empty(),
            "{what}: removed layers came back: {back:?}"
        );
        self.last_names = names.clone();
        let info = self.ps.info().await.unwrap();
        let (cutoff, last) = (
            lsn_of(&info, "gc_cutoff_lsn").0.max(1),
            lsn_of(&info, "last_record_lsn").0,
        );
        assert_eq!(last, self.lsn - 1, "{what}: {info}");
        test_runner::server::check_pages(
            &self.ps,
            &self.model,
            KEYS,
            &[cutoff, (cutoff + last) / 2, last],
        )
        .await;
        self.ps
            .check_integrity(&self.remote)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        self.history.observe(&self.remote).await.unwrap();
        names
    }
}

fn interleavings(pairs: bool) -> Vec<Interleaving> {
    let mut out = Vec::new();
    for a in OPS {
        for &a_point in a.pause_points() {
            for b in OPS {
                out.push(Interleaving {
                    a,
                    a_point,
                    b,
                    b_point: None,
                    release_b_first: false,
                });
                if !pairs {
                    continue;
                }
                for &b_point in b.pause_points() {
                    if b_point == a_point {
                        continue;
                    }
                    for release_b_first in [false, true] {
                        out.push(Interleaving {
                            a,
                            a_point,
                            b,
                            b_point: Some(b_point),
                            release_b_first,
                        });
                    }
                }
            }
        }
    }
    out
}

async fn races(backend: Backend) {
    let pairs = std::env::var("RACES_PAIRS").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::new(backend, dir.path(), "races");
    let mut ps = Pageserver::with_remote(
        dir.path(),
        &remote,
        &[
            "compaction_threshold = 2",
            "image_creation_threshold = 1",
            "gc_horizon = 0",
            "compaction_period = \"1h\"",
        ],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut d = Driver {
        ps: Arc::new(ps),
        remote,
        model: Model::default(),
        lsn: 1,
        history: History::default(),
        gone: BTreeSet::new(),
        last_names: BTreeSet::new(),
        seed: 1,
    };
    let list = interleavings(pairs);
    let mut report: std::collections::BTreeMap<&str, usize> = Default::default();
    for (i, il) in list.iter().enumerate() {
        println!("interleaving {i}: {il:?}");
        let how = d.run(*il).await;
        *report.entry(how).or_default() += 1;
    }
    d.ps.check_log(&["abandoned"]).unwrap();
    let how: Vec<String> = report.iter().map(|(h, n)| format!("{h}: {n}")).collect();
    test_runner::report(&format!(
        "suite 3, races ({backend:?}): {} interleavings of flush, compaction and GC at {} pause points ({}), each followed by kill -9 and restart; {} layers removed, none lost or resurrected; final LSN {}",
        list.len(),
        OPS.iter().map(|o| o.pause_points().len()).sum::<usize>(),
        how.join("; "),
        d.gone.len(),
        d.lsn - 1
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interleaving_at_the_pause_points_local() {
    races(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interleaving_at_the_pause_points_s3() {
    races(Backend::S3).await;
}
