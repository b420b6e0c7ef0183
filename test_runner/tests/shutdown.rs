//! Graceful shutdown on the real binary (brief section 6): SIGTERM or SIGINT after ingest that
//! was never checkpointed flushes and uploads it, refuses ingest meanwhile with 503, exits 0,
//! and the restarted node has the same `last_record_lsn` and `remote_consistent_lsn` and
//! every page. On a slow store the deadline (`shutdown_timeout`) holds: the process exits 1 in
//! time, and the restarted node is at the last LSN remote storage acknowledged.
//!
//! Settings (record counts, batch sizes, keys, `checkpoint_distance`, which signal, the
//! deadline and the store's delay) are drawn per seed: `SHUTDOWN_SEED=N` replays one.

use layer_format::Lsn;
use std::time::{Duration, Instant};
use test_runner::Rng;
use test_runner::model::{Model, workload};
use test_runner::server::{Pageserver, check_versions_between, lsn_of};

fn rng(test: &str) -> (u64, Rng) {
    let seed = test_runner::seed("SHUTDOWN_SEED");
    eprintln!("{test}: SHUTDOWN_SEED={seed}");
    (seed, Rng::new(seed))
}

/// Ingests a number of workload batches drawn from `batches` from `first`; the next free LSN.
async fn ingest(
    ps: &Pageserver,
    model: &mut Model,
    r: &mut Rng,
    first: u64,
    batches: (u64, u64),
    keys: u128,
) -> u64 {
    let mut lsn = first;
    for _ in 0..r.range(batches.0, batches.1) {
        let n = r.range(1, 60);
        let records = workload(model, lsn, n, keys, r.next());
        ps.ingest(&records).await.expect("ingest");
        model.add(&records);
        lsn += n;
    }
    lsn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_flushes_uploads_and_exits_0_with_both_lsns_kept() {
    let (seed, mut r) = rng("graceful");
    let dir = tempfile::tempdir().unwrap();
    let distance = format!("checkpoint_distance = {}", r.range(16 << 20, 256 << 20));
    let mut ps = Pageserver::new(dir.path(), &[&distance]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let keys = u128::from(r.range(2, 200));
    let mut model = Model::default();
    // Some of it checkpointed, the rest only acknowledged by ingest.
    let mut lsn = ingest(&ps, &mut model, &mut r, 0x10, (0, 5), keys).await;
    if lsn > 0x10 {
        ps.checkpoint().await.unwrap();
    }
    lsn = ingest(&ps, &mut model, &mut r, lsn, (1, 20), keys).await;
    let before = ps.info().await.unwrap();
    let last = lsn_of(&before, "last_record_lsn");
    assert_eq!(last, Lsn(lsn - 1));
    assert!(lsn_of(&before, "remote_consistent_lsn") < last, "{before}");

    let signal = if r.next() % 2 == 0 { "TERM" } else { "INT" };
    let sent = Instant::now();
    ps.signal(signal);
    let code = ps.wait_exit(Duration::from_secs(60)).await;
    let took = sent.elapsed();
    assert_eq!(code, Some(0), "SIG{signal}: exit code");
    ps.check_log(&[]).expect("no error or warning in the log");

    ps.start(None).await;
    let after = ps.info().await.unwrap();
    assert_eq!(lsn_of(&after, "last_record_lsn"), last, "{after}");
    assert_eq!(lsn_of(&after, "remote_consistent_lsn"), last, "{after}");
    let reads = check_versions_between(&ps, &model, keys, Lsn(0x10), last).await;
    test_runner::report(&format!(
        "shutdown: seed {seed}: SIG{signal} after {} records ({} not checkpointed), exit 0 in {} ms, both LSNs {last} after the restart, {reads} page versions read back",
        lsn - 0x10,
        last.0 - lsn_of(&before, "remote_consistent_lsn").0,
        took.as_millis()
    ));
    ps.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_during_shutdown_answers_503_and_reads_go_on() {
    let (_, mut r) = rng("refuses");
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &[]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let keys = u128::from(r.range(2, 50));
    let mut model = Model::default();
    let lsn = ingest(&ps, &mut model, &mut r, 0x10, (1, 5), keys).await;
    // The shutdown's upload of the layer waits here until released.
    ps.failpoint("upload-layer-before", "pause").await.unwrap();
    ps.signal("TERM");
    assert!(
        ps.wait_paused("upload-layer-before", Duration::from_secs(30))
            .await,
        "the shutdown did not reach the upload"
    );
    let more = workload(&model, lsn, 3, keys, r.next());
    let refused = ps.ingest(&more).await.unwrap_err();
    assert_eq!(refused.status, 503, "{refused:?}");
    let v: serde_json::Value = serde_json::from_str(&refused.body).expect("JSON error");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("shutting down")),
        "{v}"
    );
    for other in ["checkpoint", "compact", "gc"] {
        let e = ps
            .json(reqwest::Method::PUT, &ps.tl(&format!("/{other}")), "")
            .await
            .unwrap_err();
        assert_eq!(e.status, 503, "{other}: {e:?}");
    }
    let status = ps
        .json(reqwest::Method::GET, "/v1/status", "")
        .await
        .unwrap();
    assert_eq!(status["shutting_down"], true);
    let info = ps
        .info()
        .await
        .expect("reads are answered during the shutdown");
    assert_eq!(lsn_of(&info, "last_record_lsn"), Lsn(lsn - 1));
    assert!(
        ps.metric("pageserver_shutdown_refused_requests_total")
            .await
            >= 4.0
    );

    ps.failpoint("upload-layer-before", "off").await.unwrap();
    assert_eq!(ps.wait_exit(Duration::from_secs(60)).await, Some(0));
    ps.start(None).await;
    let after = ps.info().await.unwrap();
    assert_eq!(lsn_of(&after, "last_record_lsn"), Lsn(lsn - 1));
    assert_eq!(lsn_of(&after, "remote_consistent_lsn"), Lsn(lsn - 1));
    check_versions_between(&ps, &model, keys, Lsn(0x10), Lsn(lsn - 1)).await;
    ps.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_slow_store_the_deadline_holds() {
    let (seed, mut r) = rng("deadline");
    let dir = tempfile::tempdir().unwrap();
    // Every remote operation takes at least `delay`; the shutdown's uploads need at least two
    // in a row (the layers, then the index), more than the deadline and the HTTP grace.
    let delay = r.range(1200, 1600);
    let timeout = r.range(300, 900);
    let mut ps = Pageserver::new(dir.path(), &[]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let keys = u128::from(r.range(2, 50));
    let mut model = Model::default();
    let mut lsn = ingest(&ps, &mut model, &mut r, 0x10, (1, 5), keys).await;
    ps.checkpoint().await.unwrap();
    let acknowledged = Lsn(lsn - 1);
    // A clean shutdown first, then a restart on the slow store.
    ps.signal("TERM");
    assert_eq!(ps.wait_exit(Duration::from_secs(60)).await, Some(0));
    let faults = format!("remote_storage_faults = {{ seed = {seed}, min_delay_ms = {delay} }}");
    let deadline = format!("shutdown_timeout = \"{timeout}ms\"");
    let mut slow = Pageserver::new(dir.path(), &[&faults, &deadline]);
    slow.start(None).await;
    lsn = ingest(&slow, &mut model, &mut r, lsn, (1, 10), keys).await;
    let before = slow.info().await.unwrap();
    assert_eq!(lsn_of(&before, "last_record_lsn"), Lsn(lsn - 1));
    assert_eq!(lsn_of(&before, "remote_consistent_lsn"), acknowledged);

    let sent = Instant::now();
    slow.signal("TERM");
    let code = slow.wait_exit(Duration::from_secs(30)).await;
    let took = sent.elapsed();
    assert_eq!(code, Some(1), "a shutdown that missed its deadline exits 1");
    // The deadline, the HTTP grace (at least 200 ms) and the process's exit.
    assert!(
        took < Duration::from_millis(timeout + 200 + 1500),
        "exited after {took:?} with shutdown_timeout {timeout} ms"
    );
    let log = std::fs::read_to_string(slow.log_path()).unwrap();
    assert!(
        log.contains("shut down at the deadline"),
        "the log does not say so"
    );

    // Restarted on a healthy store: at what remote storage acknowledged, every page there.
    let mut ps = Pageserver::new(dir.path(), &[]);
    ps.start(None).await;
    let after = ps.info().await.unwrap();
    assert_eq!(
        lsn_of(&after, "remote_consistent_lsn"),
        acknowledged,
        "{after}"
    );
    assert_eq!(lsn_of(&after, "last_record_lsn"), acknowledged, "{after}");
    let reads = check_versions_between(&ps, &model, keys, Lsn(0x10), acknowledged).await;
    test_runner::report(&format!(
        "shutdown: seed {seed}: store delay {delay} ms, shutdown_timeout {timeout} ms: exit 1 after {} ms; restart at {acknowledged}, {reads} page versions read back",
        took.as_millis()
    ));
    ps.kill9();
}
