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
use test_runner::remote::{Backend, Remote};
use test_runner::server::{HttpError, Pageserver, lsn_of};
use test_support::Model;
use test_support::workload::workload;
use tokio::task::JoinHandle;

const KEYS: u128 = 16;
const BATCH: u64 = 40;
/// How long B may run while A is paused before it counts as waiting for A. Only the report's
/// classification depends on it, never a check.
const SETTLE: Duration = Duration::from_millis(1500);
const PAUSE_TIMEOUT: Duration = Duration::from_secs(20);
/// A planned pair where B never reached its own pause point: not counted as an interleaving.
const NOT_BOTH: &str = "B waited for A before its pause point (not counted)";

/// What A and B did, from their own answers, must be what the layer list shows: each flush
/// adds one layer, a compaction adds its outputs and removes its inputs, GC removes what it
/// says. A layer both added and removed within the interleaving (a new L0 compacted at once)
/// shows in neither list, so the two differences must fall short of the answers by the same
/// number.
fn check_achieved(
    what: &str,
    ops: [(Op, &serde_json::Value); 2],
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) {
    let (mut added, mut removed) = (0u64, 0u64);
    for (op, r) in ops {
        let n = |f: &str| {
            r[f].as_u64()
                .unwrap_or_else(|| panic!("{what}: {f} in {r}"))
        };
        match op {
            Op::Flush => added += 1,
            Op::Compact => {
                if r["outcome"] == "compacted" {
                    added += n("outputs");
                    removed += n("inputs");
                }
            }
            Op::Gc => removed += n("removed"),
        }
    }
    let shown_in = after.difference(before).count() as u64;
    let shown_out = before.difference(after).count() as u64;
    assert!(
        added >= shown_in && removed >= shown_out && added - shown_in == removed - shown_out,
        "{what}: the answers add {added} and remove {removed} layers; the list shows {shown_in} in and {shown_out} out"
    );
}

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
    _dir: tempfile::TempDir,
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
        let what = format!("{il:?}");
        let before = self.observe(&what).await;
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
                how = NOT_BOTH;
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
            self.observe(&what).await;
            ps.failpoint(il.a_point, "off").await.unwrap();
            ps.failpoint(q, "off").await.unwrap();
        } else {
            if !is_done(&mut b).await {
                how = "B waited for A";
            }
            self.observe(&what).await;
            ps.failpoint(il.a_point, "off").await.unwrap();
        }
        let ra = finish(&format!("{il:?}: A"), a).await;
        let rb = finish(&format!("{il:?}: B"), b).await;
        drop(ps);
        let after = self.observe(&what).await;
        check_achieved(&what, [(il.a, &ra), (il.b, &rb)], &before, &after);
        self.check(&what).await;
        how
    }

    /// The layer list now; every layer that left it since the last look is remembered, and
    /// none of those may be back (a layer removed and installed again within an interleaving
    /// is caught too).
    async fn observe(&mut self, what: &str) -> BTreeSet<String> {
        let names: BTreeSet<String> = self.ps.layer_names().await.unwrap().into_iter().collect();
        self.gone
            .extend(self.last_names.difference(&names).cloned());
        let back: Vec<&String> = names.intersection(&self.gone).collect();
        assert!(
            back.is_empty(),
            "{what}: removed layers came back: {back:?}"
        );
        self.last_names = names.clone();
        names
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
        let names = self.observe(what).await;
        let info = self.ps.info().await.unwrap();
        let (cutoff, last) = (
            lsn_of(&info, "gc_cutoff_lsn").0.max(1),
            lsn_of(&info, "last_record_lsn").0,
        );
        assert_eq!(last, self.lsn - 1, "{what}: {info}");
        test_runner::server::check_pages(
            &*self.ps,
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

/// A server with the suite's settings (and `extra`), its tenant and timeline, and a driver.
async fn driver(backend: Backend, name: &str, extra: &[&str]) -> Driver {
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::new(backend, dir.path(), name);
    let mut settings = vec![
        "compaction_threshold = 2",
        "image_creation_threshold = 1",
        "gc_horizon = 0",
        "compaction_period = \"1h\"",
    ];
    settings.extend_from_slice(extra);
    let mut ps = Pageserver::with_remote(dir.path(), &remote, &settings);
    ps.start(None).await;
    ps.setup().await.unwrap();
    Driver {
        ps: Arc::new(ps),
        remote,
        model: Model::default(),
        lsn: 1,
        history: History::default(),
        gone: BTreeSet::new(),
        last_names: BTreeSet::new(),
        seed: 1,
        _dir: dir,
    }
}

async fn races(backend: Backend) {
    let pairs = std::env::var("RACES_PAIRS").is_ok_and(|v| v == "1");
    let mut d = driver(backend, "races", &[]).await;
    let list = interleavings(pairs);
    let mut report: std::collections::BTreeMap<&str, usize> = Default::default();
    for (i, il) in list.iter().enumerate() {
        println!("interleaving {i}: {il:?}");
        let how = d.run(*il).await;
        *report.entry(how).or_default() += 1;
    }
    let counted = list.len() - report.get(NOT_BOTH).copied().unwrap_or(0);
    d.ps.check_log(&["abandoned"]).unwrap();
    let how: Vec<String> = report.iter().map(|(h, n)| format!("{h}: {n}")).collect();
    test_support::report(&format!(
        "suite 3, races ({backend:?}): {counted} interleavings of flush, compaction and GC at {} pause points ({}), each with what both did checked against the layer list and followed by kill -9 and restart; {} layers removed, none lost or resurrected; final LSN {}",
        OPS.iter().map(|o| o.pause_points().len()).sum::<usize>(),
        how.join("; "),
        d.gone.len(),
        d.lsn - 1
    ));
}

test_runner::test_on_each_backend!(races => every_interleaving_at_the_pause_points_local, every_interleaving_at_the_pause_points_s3);

/// Reftable's bug put back (`layer_map_mutation = "InstallOverSnapshot"`, testing builds
/// only): a compaction paused after choosing its inputs while a flush or GC changes the map,
/// then installing the list of its snapshot, must fail the suite's checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_that_installs_over_its_snapshot_is_caught() {
    let list: Vec<Interleaving> = interleavings(false)
        .into_iter()
        .filter(|il| {
            il.a == Op::Compact && il.a_point == "compaction-after-output" && il.b != Op::Compact
        })
        .collect();
    assert_eq!(list.len(), 2);
    let mut d = driver(
        Backend::Local,
        "races-broken",
        &["layer_map_mutation = \"InstallOverSnapshot\""],
    )
    .await;
    let run = tokio::spawn(async move {
        for il in list {
            d.run(il).await;
        }
    });
    let err = run.await.expect_err("the suite passed with reftable's bug");
    let msg = err
        .into_panic()
        .downcast::<String>()
        .map(|m| *m)
        .unwrap_or_default();
    println!("caught: {msg}");
    assert!(
        [
            "came back",
            "differs from the model",
            "the answers add",
            "server"
        ]
        .iter()
        .any(|k| msg.contains(k)),
        "caught, but not by a check of the suite: {msg}"
    );
}
