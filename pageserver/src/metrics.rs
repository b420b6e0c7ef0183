//! Prometheus metrics, one per failure path and per moving part, served at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::LazyLock;

/// All metrics of the process.
pub struct Metrics {
    registry: Registry,
    /// Bytes of ingest request bodies accepted.
    pub ingest_bytes: IntCounter,
    /// Records accepted by ingest.
    pub ingest_records: IntCounter,
    /// Ingest requests rejected as malformed.
    pub ingest_rejected: IntCounter,
    /// Flushes of in-memory layers by outcome (`ok`, `error`).
    pub flushes: IntCounterVec,
    /// Layer file publishes by outcome (`ok`, `already_exists`, `error`).
    pub layer_publishes: IntCounterVec,
    /// Remote operations by kind (`upload_layer`, `upload_index`, `claim_generation`, `delete`,
    /// `download_layer`) and outcome (`created`, `identical`, `conflict`, `error`, `ok`,
    /// `orphan_replaced`, `refused_referenced`).
    pub remote_ops: IntCounterVec,
    /// Failed attempts of queued remote operations, retried (`upload_layer`, `upload_index`,
    /// `delete`).
    pub remote_retries: IntCounterVec,
    /// Compactions by outcome (`compacted`, `nothing_to_do`, `abandoned`, `error`).
    pub compactions: IntCounterVec,
    /// Leftovers of earlier compaction attempts moved to `lost+found/`.
    pub compaction_leftovers: IntCounter,
    /// Changes the layer map refused, by change (`load`, `flush`, `compaction`, `images`, `gc`,
    /// `remove`) and reason (`duplicate`, `input_gone`, `invariant`). A refused change changes
    /// nothing.
    pub layer_map_rejected: IntCounterVec,
    /// Failed unlinks or directory fsyncs while deleting local layer files (the file is then a
    /// leftover that reconciliation removes).
    pub local_delete_errors: IntCounter,
    /// Layers removed by GC.
    pub gc_removed_layers: IntCounter,
    /// Image layers created.
    pub image_layers_created: IntCounter,
    /// Start-up reconciliation actions by kind.
    pub reconcile_actions: IntCounterVec,
    /// Files moved to `lost+found/`.
    pub quarantined_files: IntCounter,
    /// Faults injected by `remote_storage_faults` (testing builds), by kind: `fail_before`,
    /// `fail_after`, `late`, `duplicate`, and where late writes landed (`late_put_first`,
    /// `late_put_after_retry`, `late_put_failed`, `late_delete_landed`).
    pub injected_faults: IntCounterVec,
    /// Timelines and tenants that became broken (`timeline`: a panic in a request or job;
    /// `tenant`: it failed to load at start-up or attach).
    pub broken: IntCounterVec,
    /// Timelines and tenants broken now, by kind (set when `/metrics` is scraped).
    pub broken_now: IntGaugeVec,
    /// Tenant directories found at start-up, by outcome: `attached`, `moved` (a higher
    /// generation was claimed since this node's: not re-attached), `never_claimed`, `broken`.
    pub startup_tenants: IntCounterVec,
    /// Index uploads replaced by a newer index before they were uploaded (the queue keeps
    /// one index, so its memory does not grow while remote storage is down).
    pub index_uploads_coalesced: IntCounter,
    /// Key ranges that got no image layer because a key's records cannot make a page (a
    /// delta chain with no base, as ingested).
    pub image_ranges_skipped: IntCounter,
    /// Requests whose handler panicked (answered 500; the node goes on serving).
    pub request_panics: IntCounter,
    /// Current LSNs per timeline (`last_record`, `disk_consistent`, `remote_consistent`),
    /// rebuilt from the live timelines at every scrape (a detached timeline has none).
    pub timeline_lsn: IntGaugeVec,
    /// Upload operations queued per timeline (rebuilt at every scrape).
    pub upload_queue_operations: IntGaugeVec,
    /// Bytes the upload queue of each timeline holds (rebuilt at every scrape).
    pub upload_queue_bytes: IntGaugeVec,
    /// Requests refused by authentication (401: `missing`, `malformed`, `signature`,
    /// `algorithm`, `expired`) or authorization (403: `scope`).
    pub auth_failures: IntCounterVec,
    /// Requests refused with 503 because the server is shutting down.
    pub shutdown_refused: IntCounter,
    /// Duration of the engine's operations: `ingest`, `get_page`, `flush`, `upload_layer`,
    /// `upload_index`, `compaction`.
    pub operation_seconds: HistogramVec,
    /// Duration of HTTP requests by method, route template and status.
    pub http_request_seconds: HistogramVec,
    /// Point reads of layer files answered from the page cache, and those that read the file.
    pub page_cache_lookups: IntCounterVec,
    /// Entries the page cache evicted to stay within `page_cache_size`.
    pub page_cache_evictions: IntCounter,
    /// Bytes the page cache holds.
    pub page_cache_bytes: prometheus::IntGauge,
    /// Entries (`files`) and bytes (`bytes`) in the `lost+found/` directories of the live
    /// timelines, read at every scrape.
    pub lost_found: IntGaugeVec,
    /// Serialises scrapes: the per-timeline gauges are rebuilt from scratch at each.
    pub scrape: std::sync::Mutex<()>,
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    // 100 µs to about 100 s: a cached page read to an upload on a slow store.
    let buckets = prometheus::exponential_buckets(0.0001, 4.0, 11).expect("valid buckets");
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let timeline_lsn = IntGaugeVec::new(
        Opts::new("pageserver_timeline_lsn", "Current LSNs of each timeline"),
        &["tenant_id", "timeline_id", "kind"],
    )
    .expect("valid metric");
    r.register(Box::new(timeline_lsn.clone()))
        .expect("registered once");
    let broken_now = IntGaugeVec::new(
        Opts::new(
            "pageserver_broken",
            "Timelines and tenants broken now, by kind",
        ),
        &["kind"],
    )
    .expect("valid metric");
    r.register(Box::new(broken_now.clone()))
        .expect("registered once");
    let build_info = gauge_vec(
        &r,
        "pageserver_build_info",
        "1, labelled with the version and the git revision of this binary",
        &["version", "revision"],
    );
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::BUILD_REVISION])
        .set(1);
    Metrics {
        upload_queue_operations: gauge_vec(
            &r,
            "pageserver_upload_queue_operations",
            "Upload operations queued per timeline",
            &["tenant_id", "timeline_id"],
        ),
        upload_queue_bytes: gauge_vec(
            &r,
            "pageserver_upload_queue_bytes",
            "Bytes the upload queue of each timeline holds",
            &["tenant_id", "timeline_id"],
        ),
        auth_failures: counter_vec(
            &r,
            "pageserver_http_auth_failures_total",
            "Requests refused by authentication (401) or authorization (403), by reason",
            &["reason"],
        ),
        shutdown_refused: counter(
            &r,
            "pageserver_shutdown_refused_requests_total",
            "Requests refused with 503 while the server shuts down",
        ),
        operation_seconds: histogram_vec(
            &r,
            "pageserver_operation_seconds",
            "Duration of ingest, get_page, flush, upload_layer, upload_index and compaction",
            &["operation"],
        ),
        http_request_seconds: histogram_vec(
            &r,
            "pageserver_http_request_seconds",
            "Duration of HTTP requests by method, route and status",
            &["method", "route", "status"],
        ),
        page_cache_lookups: counter_vec(
            &r,
            "pageserver_page_cache_lookups_total",
            "Page cache lookups of point reads, by outcome (hit, miss)",
            &["outcome"],
        ),
        page_cache_evictions: counter(
            &r,
            "pageserver_page_cache_evictions_total",
            "Entries the page cache evicted to stay within page_cache_size",
        ),
        page_cache_bytes: {
            let g = prometheus::IntGauge::new(
                "pageserver_page_cache_bytes",
                "Bytes the page cache holds",
            )
            .expect("valid metric");
            r.register(Box::new(g.clone())).expect("registered once");
            g
        },
        lost_found: gauge_vec(
            &r,
            "pageserver_lost_found",
            "Entries (unit=files) and bytes (unit=bytes) in the lost+found directories of the live timelines",
            &["unit"],
        ),
        scrape: std::sync::Mutex::new(()),
        broken: counter_vec(
            &r,
            "pageserver_broken_total",
            "Timelines and tenants that became broken, by kind",
            &["kind"],
        ),
        broken_now,
        startup_tenants: counter_vec(
            &r,
            "pageserver_startup_tenants_total",
            "Tenant directories found at start-up, by outcome",
            &["outcome"],
        ),
        index_uploads_coalesced: counter(
            &r,
            "pageserver_index_uploads_coalesced_total",
            "Index uploads replaced by a newer index before they were uploaded",
        ),
        image_ranges_skipped: counter(
            &r,
            "pageserver_image_ranges_skipped_total",
            "Key ranges without an image layer because a key's records cannot make a page",
        ),
        request_panics: counter(
            &r,
            "pageserver_request_panics_total",
            "Requests whose handler panicked (answered 500)",
        ),
        ingest_bytes: counter(
            &r,
            "pageserver_ingest_bytes_total",
            "Bytes of ingest bodies accepted",
        ),
        ingest_records: counter(
            &r,
            "pageserver_ingest_records_total",
            "Records accepted by ingest",
        ),
        ingest_rejected: counter(
            &r,
            "pageserver_ingest_rejected_total",
            "Ingest requests rejected as malformed",
        ),
        flushes: counter_vec(
            &r,
            "pageserver_flushes_total",
            "Flushes of in-memory layers",
            &["outcome"],
        ),
        layer_publishes: counter_vec(
            &r,
            "pageserver_layer_publishes_total",
            "Layer file publishes",
            &["outcome"],
        ),
        remote_ops: counter_vec(
            &r,
            "pageserver_remote_operations_total",
            "Remote storage operations",
            &["kind", "outcome"],
        ),
        remote_retries: counter_vec(
            &r,
            "pageserver_remote_retries_total",
            "Failed attempts of queued remote operations",
            &["kind"],
        ),
        compactions: counter_vec(
            &r,
            "pageserver_compactions_total",
            "Compactions by outcome",
            &["outcome"],
        ),
        compaction_leftovers: counter(
            &r,
            "pageserver_compaction_leftovers_quarantined_total",
            "Leftovers of earlier compaction attempts quarantined",
        ),
        layer_map_rejected: counter_vec(
            &r,
            "pageserver_layer_map_rejected_changes_total",
            "Changes the layer map refused (nothing changed), by change and reason",
            &["change", "reason"],
        ),
        local_delete_errors: counter(
            &r,
            "pageserver_local_delete_errors_total",
            "Failed unlinks or directory fsyncs while deleting local layer files",
        ),
        injected_faults: counter_vec(
            &r,
            "pageserver_injected_faults_total",
            "Faults injected into remote storage (testing builds only), by kind",
            &["kind"],
        ),
        gc_removed_layers: counter(
            &r,
            "pageserver_gc_removed_layers_total",
            "Layers removed by GC",
        ),
        image_layers_created: counter(
            &r,
            "pageserver_image_layers_created_total",
            "Image layers created",
        ),
        reconcile_actions: counter_vec(
            &r,
            "pageserver_reconcile_actions_total",
            "Start-up reconciliation actions",
            &["action"],
        ),
        quarantined_files: counter(
            &r,
            "pageserver_quarantined_files_total",
            "Files moved to lost+found",
        ),
        timeline_lsn,
        registry: r,
    }
});

/// Runs `f`, recording its duration in `pageserver_operation_seconds{operation}`.
pub async fn timed<T>(operation: &str, f: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = f.await;
    METRICS
        .operation_seconds
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
    out
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
