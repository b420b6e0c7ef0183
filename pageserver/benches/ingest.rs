//! End-to-end ingest and read benchmark over HTTP: `cargo bench -p pageserver`.
//!
//! Starts a page server (local remote storage, `io_engine = auto`, default settings; `PS_BENCH_ENGINE=uring` or `std` picks one) on a
//! loopback port in a temp directory under `PS_BENCH_DIR` (default: the system temp dir), and
//! drives it with an HTTP client over TCP:
//!
//! * the limit: the same client posting the same 1 MiB bodies to a route that only reads the
//!   body, on the same server (loopback HTTP ceiling);
//! * ingest of 8 KiB page images and of 100-byte delta records in 1 MiB requests (`PS_BENCH_MIB`
//!   MiB of each, default 512 and 128), flushes included, then a checkpoint;
//!
//! Reads are measured by `--bench get_page`.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

mod common;

use axum::routing::post;
use bytes::Bytes;
use common::{MIB, TENANT, TIMELINE, bench_conf, bodies};
use layer_format::value::PAGE_SIZE;
use pageserver::server::PageServer;
use std::time::{Duration, Instant};

async fn post_all(client: &reqwest::Client, url: &str, bodies: &[Bytes]) -> (Duration, usize) {
    let start = Instant::now();
    let mut bytes = 0;
    for b in bodies {
        bytes += b.len();
        let r = client.post(url).body(b.clone()).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    (start.elapsed(), bytes)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: Vec<usize> = std::env::var("PS_BENCH_MIB")
        .ok()
        .map(|v| v.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|| vec![512, 128]);
    let (_dir, conf) = bench_conf();
    let server = PageServer::start(conf).await.unwrap();
    let app = pageserver::http::router_with(
        server.clone(),
        axum::Router::new().route(
            "/sink",
            post(|body: Bytes| async move { body.len().to_string() })
                .layer(axum::extract::DefaultBodyLimit::disable()),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let api = format!("http://{addr}/v1/tenant");
    client
        .post(&api)
        .body(format!("{{\"tenant_id\":\"{TENANT}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    client
        .post(format!("{api}/{TENANT}/timeline"))
        .body(format!("{{\"timeline_id\":\"{TIMELINE}\"}}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let tl = format!("{api}/{TENANT}/timeline/{TIMELINE}");
    println!(
        "pageserver ingest benchmark ({:?} engine), over HTTP on {addr}",
        server.engine.kind()
    );

    let mut lsn = 0u64;
    let keys = 100_000u128;
    let images = bodies(mib[0] * MIB, true, keys, &mut lsn);
    let (d, b) = post_all(&client, &format!("http://{addr}/sink"), &images).await;
    let sink = mbps(b, d);
    println!(
        "  {:<40} {:>8.1} MB/s",
        "HTTP ceiling (1 MiB bodies to a sink)", sink
    );
    let (d, b) = post_all(&client, &format!("{tl}/ingest"), &images).await;
    let records = images.len() * (MIB / (29 + PAGE_SIZE));
    println!(
        "  {:<40} {:>8.1} MB/s  ratio {:.2}  {:>9.0} records/s",
        format!("ingest 8 KiB images ({} MiB)", mib[0]),
        mbps(b, d),
        mbps(b, d) / sink,
        records as f64 / d.as_secs_f64()
    );
    let deltas = bodies(mib[1] * MIB, false, keys, &mut lsn);
    let (d, b) = post_all(&client, &format!("{tl}/ingest"), &deltas).await;
    let records = deltas.len() * (MIB / 129);
    println!(
        "  {:<40} {:>8.1} MB/s  ratio {:.2}  {:>9.0} records/s",
        format!("ingest 100-byte deltas ({} MiB)", mib[1]),
        mbps(b, d),
        mbps(b, d) / sink,
        records as f64 / d.as_secs_f64()
    );
    let t = Instant::now();
    client
        .put(format!("{tl}/checkpoint"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    println!(
        "  {:<40} {:>8.1} s",
        "checkpoint (flush + upload)",
        t.elapsed().as_secs_f64()
    );

    server.shutdown();
}
