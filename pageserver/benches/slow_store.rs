//! Acknowledgement on a slow object store (#13): how many flushes per second reach
//! `remote_consistent_lsn` when every remote operation takes 100 ms or 1 s.
//! `cargo bench -p pageserver --features testing --bench slow_store` (the store's delay is
//! injected with `remote_storage_faults.min_delay_ms`, a testing-build setting).
//!
//! For each delay and each `upload_concurrency` (1 and the default, 8): a burst of small
//! flushes (one ingest of a few records, then a flush; `SLOW_STORE_FLUSHES` sets how many,
//! default 200 at 100 ms and 64 at 1 s), then the time until the last is acknowledged. The
//! limit measured in the same run is the store's: `concurrency` puts per delay, so
//! `concurrency x 1000 / delay_ms` layer uploads per second; the ratio is flushes
//! acknowledged per second over that limit.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

use index_part::names::{TenantId, TimelineId};
use layer_format::value::{Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::config::PageServerConf;
use pageserver::remote::faults::FaultConfig;
use pageserver::server::PageServer;
use pageserver::timeline::Record;
use std::time::{Duration, Instant};

async fn run(delay_ms: u64, concurrency: usize, flushes: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = PageServerConf::defaults(dir.path());
    conf.io_engine = layer_format::io::EngineChoice::Std;
    conf.compaction_period = Duration::from_secs(3600);
    conf.upload_concurrency = concurrency;
    conf.remote_storage_faults = Some(FaultConfig {
        seed: 1,
        max_delay_ms: 0,
        min_delay_ms: delay_ms,
        fail_before: 0.0,
        fail_after: 0.0,
        late: 0.0,
        duplicate: 0.0,
    });
    let server = PageServer::start(conf).await.unwrap();
    let tenant: TenantId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let timeline: TimelineId = "fedcba9876543210fedcba9876543210".parse().unwrap();
    server.tenants.create_tenant(tenant).await.unwrap();
    let tl = server
        .tenants
        .create_timeline(tenant, timeline)
        .await
        .unwrap();
    let started = Instant::now();
    let mut lsn = 1u64;
    for _ in 0..flushes {
        let recs: Vec<Record> = (0..4u64)
            .map(|i| Record {
                key: Key::from_u128(u128::from(i)),
                lsn: Lsn(lsn + i),
                value: Value::Delta {
                    will_init: true,
                    record: encode_patches(&[Patch {
                        offset: 0,
                        bytes: &[lsn as u8; 100],
                    }]),
                },
            })
            .collect();
        lsn += 4;
        tl.ingest(recs, None).await.unwrap();
        tl.flush().await.unwrap();
    }
    let issued = started.elapsed();
    let last = Lsn(lsn - 1);
    let state = tl.upload_state().clone();
    tokio::time::timeout(Duration::from_secs(3600), state.wait_for(last))
        .await
        .unwrap();
    let took = started.elapsed();
    let rate = flushes as f64 / took.as_secs_f64();
    let limit = concurrency as f64 * 1000.0 / delay_ms as f64;
    println!(
        "{delay_ms:>5} ms per operation, upload_concurrency {concurrency:>2}: {flushes} flushes issued in {:.2} s, all acknowledged after {:.2} s: {rate:.1} flushes/s; limit {limit:.0} uploads/s; ratio {:.2}; indexes coalesced {}",
        issued.as_secs_f64(),
        took.as_secs_f64(),
        rate / limit,
        state.coalesced_indexes()
    );
    server.shutdown();
    rate
}

fn main() {
    if !pageserver::failpoints::enabled() {
        eprintln!(
            "slow_store needs the testing feature: cargo bench -p pageserver --features testing --bench slow_store"
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let override_flushes: Option<u64> = std::env::var("SLOW_STORE_FLUSHES")
        .ok()
        .and_then(|v| v.parse().ok());
    for (delay, flushes) in [(100, 200), (1000, 64)] {
        let flushes = override_flushes.unwrap_or(flushes);
        for concurrency in [1, 8] {
            rt.block_on(run(delay, concurrency, flushes));
        }
    }
}
