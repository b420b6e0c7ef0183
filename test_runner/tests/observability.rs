//! Observability on the real binary (issue 14): JSON logs whose request and job lines carry
//! the tenant and timeline, latency histograms of the engine's operations and of every route,
//! upload-queue gauges, `build_info`, LSN gauges that follow every change and disappear with a
//! detach, and `--version`.
//!
//! Batch counts and sizes are drawn per seed: `OBSERVABILITY_SEED=N` replays one.

use std::process::Command;
use test_runner::server::{Pageserver, TENANT, TIMELINE, lsn_of, pageserver_bin};
use test_support::Rng;
use test_support::workload::byte_deltas;

/// The value of the metric line that starts with `name{` and has every label of `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The log lines of the server itself, outside any request or job.
const SERVER_LINES: &[&str] = &[
    "starting",
    "listening",
    "injecting remote storage faults",
    "shutting down",
    "shut down",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_histograms_and_gauges_that_never_go_stale() {
    let seed = test_support::seed("OBSERVABILITY_SEED");
    let mut r = Rng::new(seed);
    eprintln!("OBSERVABILITY_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(
        dir.path(),
        &["log_format = \"json\"", "compaction_threshold = 2"],
    );
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut lsn = 0x10;
    let flushes = r.range(2, 4);
    let mut ingests = 0;
    for _ in 0..flushes {
        for _ in 0..r.range(1, 3) {
            let n = r.range(1, 40);
            let acked = ps
                .ingest(&byte_deltas(lsn, n, r.range(1, 20), 1))
                .await
                .unwrap();
            lsn += n;
            ingests += 1;
            // Scraped before anything else reads the timeline: the gauge follows the ingest.
            let text = ps.metrics_text().await;
            let gauge = metric(
                &text,
                "pageserver_timeline_lsn",
                &[
                    ("tenant_id", TENANT),
                    ("timeline_id", TIMELINE),
                    ("kind", "last_record"),
                ],
            );
            assert_eq!(
                gauge,
                Some(lsn_of(&acked, "last_record_lsn").0 as f64),
                "last_record gauge after an ingest"
            );
        }
        ps.checkpoint().await.unwrap();
    }
    // The same page twice: the second read's index nodes and values come from the page cache.
    for _ in 0..2 {
        ps.page(layer_format::Key::from_u128(0), layer_format::Lsn(lsn - 1))
            .await
            .unwrap();
    }
    let compacted = ps.compact().await.unwrap();
    let text = ps.metrics_text().await;
    let info = ps.info().await.unwrap();
    for kind in ["last_record", "disk_consistent", "remote_consistent"] {
        let want = lsn_of(&info, &format!("{kind}_lsn")).0 as f64;
        let got = metric(
            &text,
            "pageserver_timeline_lsn",
            &[("tenant_id", TENANT), ("kind", kind)],
        );
        assert_eq!(got, Some(want), "{kind}");
    }
    for op in [
        "ingest",
        "get_page",
        "flush",
        "upload_layer",
        "upload_index",
        "compaction",
    ] {
        let n = metric(
            &text,
            "pageserver_operation_seconds_count",
            &[("operation", op)],
        )
        .unwrap_or(0.0);
        assert!(n >= 1.0, "no {op} in pageserver_operation_seconds: {n}");
    }
    let ingest_route = "/v1/tenant/{tenant_id}/timeline/{timeline_id}/ingest";
    let n = metric(
        &text,
        "pageserver_http_request_seconds_count",
        &[
            ("method", "POST"),
            ("route", ingest_route),
            ("status", "200"),
        ],
    );
    assert_eq!(n, Some(ingests as f64), "ingest requests by route");
    assert!(
        metric(
            &text,
            "pageserver_upload_queue_operations",
            &[("tenant_id", TENANT)]
        )
        .is_some()
    );
    assert!(
        metric(
            &text,
            "pageserver_upload_queue_bytes",
            &[("timeline_id", TIMELINE)]
        )
        .is_some()
    );
    let hits = metric(
        &text,
        "pageserver_page_cache_lookups_total",
        &[("outcome", "hit")],
    );
    let misses = metric(
        &text,
        "pageserver_page_cache_lookups_total",
        &[("outcome", "miss")],
    );
    assert!(
        hits >= Some(1.0) && misses >= Some(1.0),
        "page cache: {hits:?} hits, {misses:?} misses"
    );
    assert!(metric(&text, "pageserver_page_cache_bytes", &[]).is_some_and(|b| b > 0.0));
    assert_eq!(
        metric(
            &text,
            "pageserver_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // A path of no route counts as `other`: no series per client-chosen path.
    let _ = ps.request(reqwest::Method::GET, "/v1/zzz/0123", "").await;
    let text = ps.metrics_text().await;
    assert!(!text.contains("/v1/zzz"), "a client's path became a label");
    assert!(
        metric(
            &text,
            "pageserver_http_request_seconds_count",
            &[("route", "other"), ("status", "404")]
        )
        .is_some()
    );

    // A restart: the start-up's lines name the tenant, the loading of a timeline both ids.
    ps.kill9();
    ps.start(None).await;
    let restarted = ps.info().await.unwrap();
    assert_eq!(
        lsn_of(&restarted, "remote_consistent_lsn"),
        lsn_of(&info, "remote_consistent_lsn")
    );
    // Detached: no series of the timeline is left.
    ps.tenant_action(TENANT, "detach").await.unwrap();
    let text = ps.metrics_text().await;
    for gauge in [
        "pageserver_timeline_lsn",
        "pageserver_upload_queue_operations",
        "pageserver_upload_queue_bytes",
    ] {
        assert!(
            metric(&text, gauge, &[("tenant_id", TENANT)]).is_none(),
            "{gauge} outlived the detach"
        );
    }
    ps.kill9();

    // Every line is one JSON object; every line of a job or a timeline request names both ids.
    let log = std::fs::read_to_string(ps.log_path()).unwrap();
    let mut with_ids = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
        let job = names.iter().any(|n| {
            [
                "flush",
                "compaction",
                "upload_queue",
                "checkpoint",
                "compact",
                "load_timeline",
            ]
            .contains(n)
        });
        let route = |part: &str| {
            spans
                .iter()
                .any(|s| s["route"].as_str().is_some_and(|r| r.contains(part)))
        };
        let has = |k: &str, want: &str| spans.iter().any(|s| s[k] == want);
        if spans.is_empty() {
            // Only the server's own lifecycle logs outside a span: a line of a request or a
            // job without one lost its span (a task spawned without it).
            let message = v["fields"]["message"].as_str().unwrap_or_default();
            assert!(
                SERVER_LINES.iter().any(|m| message.starts_with(m)),
                "a line outside any span: {line}"
            );
            continue;
        }
        if job || route("{timeline_id}") {
            assert!(
                has("tenant_id", TENANT) && has("timeline_id", TIMELINE),
                "a line without the ids: {line}"
            );
            with_ids += 1;
        } else if names.contains(&"startup") || route("{tenant_id}") {
            assert!(
                has("tenant_id", TENANT),
                "a line without the tenant: {line}"
            );
            with_ids += 1;
        }
    }
    assert!(with_ids >= 1, "no job or request line in the log");
    test_support::report(&format!(
        "observability: seed {seed}: {ingests} ingests, {flushes} checkpoints, compaction {}: {with_ids} log lines of jobs and requests, each with its ids",
        compacted["outcome"]
    ));
}

#[test]
fn version_names_the_version_and_the_revision() {
    let out = Command::new(pageserver_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("pageserver {} (", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert_eq!(text.trim().chars().last(), Some(')'), "{text}");
}
