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
//! * warm `get_page` latency, p50 and p99 over 5,000 sequential requests for random keys.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use axum::routing::post;
use bytes::Bytes;
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::config::PageServerConf;
use pageserver::server::PageServer;
use pageserver::timeline::{Record, encode_ingest};
use std::time::{Duration, Instant};

const TENANT: &str = "0123456789abcdef0123456789abcdef";
const TIMELINE: &str = "fedcba9876543210fedcba9876543210";
const MIB: usize = 1 << 20;

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// 1 MiB request bodies of records, `per_record` payload bytes each, LSNs from `lsn`.
fn bodies(total: usize, image: bool, keys: u128, lsn: &mut u64) -> Vec<Bytes> {
    let page = Bytes::from(noise(PAGE_SIZE, 1));
    let patch = noise(96, 2);
    let per = if image { 29 + PAGE_SIZE } else { 29 + 100 };
    let per_body = MIB / per;
    let mut out = Vec::new();
    let mut i = 0u128;
    for _ in 0..total / MIB {
        let recs: Vec<Record> = (0..per_body)
            .map(|_| {
                *lsn += 1;
                i += 1;
                let value = if image {
                    Value::Image(page.clone())
                } else {
                    Value::Delta {
                        will_init: true,
                        record: encode_patches(&[Patch {
                            offset: (i % 64) as u16 * 100,
                            bytes: &patch,
                        }]),
                    }
                };
                Record {
                    key: Key::from_u128(i % keys),
                    lsn: Lsn(*lsn),
                    value,
                }
            })
            .collect();
        out.push(Bytes::from(encode_ingest(&recs)));
    }
    out
}

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
    let base = std::env::var_os("PS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut conf = PageServerConf::defaults(dir.path());
    if let Ok(engine) = std::env::var("PS_BENCH_ENGINE") {
        conf.io_engine = engine.parse().unwrap();
    }
    let server = PageServer::start(conf).await.unwrap();
    let app = server.router().route(
        "/sink",
        post(|body: Bytes| async move { body.len().to_string() })
            .layer(axum::extract::DefaultBodyLimit::disable()),
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

    for (label, warmup) in [("get_page, layers on disk, warm", true)] {
        let mut x = 7u64;
        let mut lat = Vec::new();
        for round in 0..2 {
            lat.clear();
            for _ in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = Key::from_u128(u128::from(x) % keys);
                let t = Instant::now();
                let r = client
                    .get(format!("{tl}/page?key={key}&lsn={}", Lsn(lsn)))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                let body = r.bytes().await.unwrap();
                lat.push(t.elapsed());
                assert_eq!(body.len(), PAGE_SIZE);
            }
            let _ = (round, warmup);
        }
        lat.sort();
        println!(
            "  {:<40} p50 {:>6.0} us  p99 {:>6.0} us  ({} requests)",
            label,
            lat[lat.len() / 2].as_secs_f64() * 1e6,
            lat[lat.len() * 99 / 100].as_secs_f64() * 1e6,
            lat.len()
        );
    }
    server.shutdown();
}
