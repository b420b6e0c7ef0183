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
use test_runner::server::{Pageserver, check_versions_between, lsn_of};
use test_support::Model;
use test_support::Rng;
use test_support::model::ingest_body as encode_ingest;
use test_support::workload::workload;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rng(test: &str) -> (u64, Rng) {
    let seed = test_support::seed("SHUTDOWN_SEED");
    eprintln!("{test}: SHUTDOWN_SEED={seed}");
    (seed, Rng::new(seed))
}

/// A started server with the suites' timeline, and the number of keys drawn for the test.
async fn started(dir: &std::path::Path, config: &[&str], r: &mut Rng) -> (Pageserver, u128) {
    let mut ps = Pageserver::new(dir, config);
    ps.start(None).await;
    ps.setup()
        .await
        .expect("create the suites' tenant and timeline");
    (ps, u128::from(r.range(2, 50)))
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

/// Starts `ps` again and checks what a restart after a shutdown must find: both LSNs at
/// `want` and every page version up to it as the model has it; the reads made.
async fn restart_at(ps: &mut Pageserver, model: &Model, keys: u128, want: Lsn) -> usize {
    ps.start(None).await;
    let after = ps.info().await.expect("timeline info after the restart");
    assert_eq!(lsn_of(&after, "last_record_lsn"), want, "{after}");
    assert_eq!(lsn_of(&after, "remote_consistent_lsn"), want, "{after}");
    check_versions_between(ps, model, keys, Lsn(0x10), want).await
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

    let reads = restart_at(&mut ps, &model, keys, last).await;
    test_support::report(&format!(
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
    let (mut ps, keys) = started(dir.path(), &[], &mut r).await;
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
    restart_at(&mut ps, &model, keys, Lsn(lsn - 1)).await;
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
    let (mut ps, keys) = started(dir.path(), &[], &mut r).await;
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
    // The deadline, the HTTP grace (at least 200 ms) and the process's exit, with room for a
    // loaded machine.
    assert!(
        took < Duration::from_millis(timeout + 200 + 3000),
        "exited after {took:?} with shutdown_timeout {timeout} ms"
    );
    let log = std::fs::read_to_string(slow.log_path()).unwrap();
    assert!(
        log.contains("shut down at the deadline"),
        "the log does not say so"
    );

    // Restarted on a healthy store: at what remote storage acknowledged, every page there.
    let mut ps = Pageserver::new(dir.path(), &[]);
    let reads = restart_at(&mut ps, &model, keys, acknowledged).await;
    test_support::report(&format!(
        "shutdown: seed {seed}: store delay {delay} ms, shutdown_timeout {timeout} ms: exit 1 after {} ms; restart at {acknowledged}, {reads} page versions read back",
        took.as_millis()
    ));
    ps.kill9();
}

/// An ingest request sent by hand: its head and the first `split` bytes of its body now, the
/// rest when the test says.
struct SlowIngest {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowIngest {
    async fn begin(ps: &Pageserver, body: Vec<u8>, split: usize) -> SlowIngest {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", ps.port))
            .await
            .expect("connect");
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            ps.tl("/ingest"),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body[..split]).await.expect("first part");
        stream.flush().await.expect("flush");
        SlowIngest {
            stream,
            rest: body[split..].to_vec(),
        }
    }

    /// Sends the rest; the answer's status, or `None` if the connection was closed first.
    async fn finish(mut self) -> Option<u16> {
        if self.stream.write_all(&self.rest).await.is_err() {
            return None;
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            self.stream.read_to_end(&mut answer),
        )
        .await;
        let text = String::from_utf8_lossy(&answer);
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|c| c.parse().ok())
    }
}

async fn wait_shutting_down(ps: &Pageserver) {
    for _ in 0..2000 {
        if let Ok(v) = ps.json(reqwest::Method::GET, "/v1/status", "").await
            && v["shutting_down"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the server never reported shutting_down");
}

/// An ingest admitted before the signal (its body still arriving) is waited for, acknowledged,
/// and in the shutdown's flush: after the restart the LSN is the one it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_admitted_before_the_signal_is_acknowledged_and_kept() {
    let (seed, mut r) = rng("admitted");
    let dir = tempfile::tempdir().unwrap();
    let (mut ps, keys) = started(dir.path(), &[], &mut r).await;
    let mut model = Model::default();
    let lsn = ingest(&ps, &mut model, &mut r, 0x10, (0, 3), keys).await;
    let n = r.range(1, 40);
    let records = workload(&model, lsn, n, keys, r.next());
    let body = encode_ingest(&records);
    let split = r.range(1, body.len() as u64 - 1) as usize;
    let slow = SlowIngest::begin(&ps, body, split).await;
    // The request is admitted once its head is read.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ps.signal("TERM");
    wait_shutting_down(&ps).await;
    assert_eq!(slow.finish().await, Some(200), "the admitted ingest");
    model.add(&records);
    let last = Lsn(lsn + n - 1);
    assert_eq!(ps.wait_exit(Duration::from_secs(60)).await, Some(0));
    let reads = restart_at(&mut ps, &model, keys, last).await;
    test_support::report(&format!(
        "shutdown: seed {seed}: an ingest of {n} records admitted before SIGTERM and finished after it: acknowledged, {last} after the restart, {reads} versions read back"
    ));
    ps.kill9();
}

/// A request that outlives the wait for requests does not hold the timelines' flush hostage,
/// and its records are never acknowledged after the flush: the exit is 0 and the restart is at
/// the LSN acknowledged before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_outlives_the_wait_is_not_acknowledged() {
    let (seed, mut r) = rng("outlived");
    let dir = tempfile::tempdir().unwrap();
    let timeout = r.range(1500, 4000);
    let deadline = format!("shutdown_timeout = \"{timeout}ms\"");
    let (mut ps, keys) = started(dir.path(), &[&deadline], &mut r).await;
    let mut model = Model::default();
    let lsn = ingest(&ps, &mut model, &mut r, 0x10, (1, 4), keys).await;
    let acked = Lsn(lsn - 1);
    let records = workload(&model, lsn, r.range(1, 40), keys, r.next());
    let body = encode_ingest(&records);
    let slow = SlowIngest::begin(&ps, body, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ps.signal("TERM");
    // Finish the body once the wait for requests gave up (or the process is gone).
    let log = ps.log_path();
    for _ in 0..2000 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("flushing anyway") || !ps.is_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = slow.finish().await;
    assert_ne!(answer, Some(200), "acknowledged after the shutdown's flush");
    assert_eq!(ps.wait_exit(Duration::from_secs(60)).await, Some(0));
    restart_at(&mut ps, &model, keys, acked).await;
    test_support::report(&format!(
        "shutdown: seed {seed}: shutdown_timeout {timeout} ms, a request still sending its body after the wait: answered {answer:?}, exit 0, restart at {acked}"
    ));
    ps.kill9();
}
