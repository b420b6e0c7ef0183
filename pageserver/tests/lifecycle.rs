//! Lifecycle simulation (I6, I9, I10): the real timeline code (tenant manager, ingest, flush,
//! compaction, image creation, GC, reset, restart, the upload queue) driven by a seeded random
//! schedule on the simulated filesystem (`layer_format::io::sim`) and an in-memory object store
//! whose writes fail, land late (out of order) or wait until the schedule releases them
//! (`pageserver::testing::sim_storage`).
//!
//! Each seed draws its own configuration (compaction target size 16 KiB to 1 MiB, compaction
//! threshold 2-10, image threshold 1-5, GC horizon from 0 to large, checkpoint distance 4-128
//! KiB, key count, fault rates) and a schedule of ingest (images, deltas, `will_init`, hot and
//! cold keys, several records at one LSN), flush, checkpoint, compaction, GC, reset with and
//! without `drop_cache`, restart, releases of held and late writes (so compactions run while
//! uploads are pending), and forged duplicate installs. After every step:
//! * sampled reads at LSNs from the GC cutoff to `last_record_lsn` equal the page model of
//!   `pageserver::testing::page_model`, which shares no code with the server;
//! * the layer map obeys its structural invariant;
//! * the authoritative remote index references only objects that exist with its sizes and
//!   checksums, and equals the layer map's index whenever the upload queue is idle;
//! * `remote_consistent_lsn` never falls below what was acknowledged, across resets and
//!   restarts, and no remote object is ever created twice with different bytes;
//! * no task of the server panicked.
//!
//! At the end every write is released, a checkpoint succeeds, and every key is read at
//! several LSNs. Runs are deterministic: a current-thread runtime with paused time, and a step
//! is over only when every task is idle; a failing seed is printed with the command that
//! replays it. Deliberately broken variants of the layer-map logic must each be caught.
//!
//! `LIFECYCLE_SEEDS` (default 200), `LIFECYCLE_STEPS` (default 200) and `LIFECYCLE_SEED` (the
//! first seed, default 0) size the run; `LIFECYCLE_TRACE=1` prints every step
//! (`LIFECYCLE_TRACE=<seed>`: only that seed's), `LIFECYCLE_DIGESTS=1` each seed's digest.
#![cfg(feature = "testing")]
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use bytes::Bytes;
use index_part::names::{LayerName, TenantId, TimelineId, timeline_prefix};
use index_part::{IndexPart, ParseMode, select_authoritative};
use layer_format::io::sim::SimEngine;
use layer_format::{Key, Lsn};
use pageserver::config::{PageServerConf, RemoteStorageConfig};
use pageserver::server::PageServer;
use pageserver::testing::page_model::{ModelPage, ModelValue, PAGE, PageModel, encode_record};
use pageserver::testing::sim_storage::{SimFaults, SimStorage};
use pageserver::timeline::layer_map::{ApplyError, Change};
use pageserver::timeline::mutation::Mutation;
use pageserver::timeline::{LayerHandle, ReadError, Timeline};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const TENANT: &str = "0123456789abcdef0123456789abcdef";
const TIMELINE: &str = "fedcba9876543210fedcba9876543210";
const WORKDIR: &str = "/ps";

fn ids() -> (TenantId, TimelineId) {
    (TENANT.parse().unwrap(), TIMELINE.parse().unwrap())
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

/// splitmix64: the schedule, the configuration and the records follow from the seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    /// Log-uniform in `[lo, hi]`.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (a + (b - a) * x).exp() as u64
    }
}

/// What a seed draws.
#[derive(Debug, Clone)]
struct SimConfig {
    target_size: u64,
    compaction_threshold: usize,
    image_threshold: usize,
    gc_horizon: u64,
    checkpoint_distance: u64,
    keys: u128,
    hot_keys: u128,
    faults: SimFaults,
    /// Waiting writes released after each step, at most (the store's pace).
    background_releases: u64,
}

impl SimConfig {
    fn draw(rng: &mut Rng) -> SimConfig {
        let keys = u128::from(rng.range(4, 64));
        SimConfig {
            target_size: rng.log_range(16 << 10, 1 << 20),
            compaction_threshold: rng.range(2, 10) as usize,
            image_threshold: rng.range(1, 5) as usize,
            gc_horizon: match rng.range(0, 3) {
                0 => 0,
                1 => rng.range(1, 60),
                2 => rng.range(60, 600),
                _ => rng.range(600, 100_000),
            },
            checkpoint_distance: rng.log_range(4 << 10, 128 << 10),
            keys,
            hot_keys: (keys / 4).max(1),
            faults: SimFaults {
                fail_before: rng.range(0, 10) as f64 / 100.0,
                fail_after: rng.range(0, 10) as f64 / 100.0,
                late: rng.range(0, 10) as f64 / 100.0,
            },
            background_releases: rng.range(0, 3),
        }
    }

    fn conf(&self, mutation: Option<Mutation>) -> PageServerConf {
        let mut c = PageServerConf::defaults(Path::new(WORKDIR));
        c.remote_storage = RemoteStorageConfig::Local {
            local_path: PathBuf::from("/unused"),
        };
        c.compaction_target_size = self.target_size;
        c.compaction_threshold = self.compaction_threshold;
        c.image_creation_threshold = self.image_threshold;
        c.gc_horizon = self.gc_horizon;
        c.checkpoint_distance = self.checkpoint_distance;
        // The schedule runs compaction and GC itself.
        c.compaction_period = Duration::from_secs(10 * 365 * 24 * 3600);
        c.layer_map_mutation = mutation;
        c
    }
}

/// Counts over a run.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    seeds: u64,
    steps: u64,
    reads: u64,
    straddled_reads: u64,
    multi_output_compactions: u64,
    single_output_compactions: u64,
    images: u64,
    gc_removed: u64,
    resets: u64,
    restarts: u64,
    duplicates_refused: u64,
    faults_fired: u64,
    late_landed: u64,
    late_after_retry: u64,
    compactions_with_uploads_pending: u64,
    checkpoints_timed_out: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.reads += o.reads;
        self.straddled_reads += o.straddled_reads;
        self.multi_output_compactions += o.multi_output_compactions;
        self.single_output_compactions += o.single_output_compactions;
        self.images += o.images;
        self.gc_removed += o.gc_removed;
        self.resets += o.resets;
        self.restarts += o.restarts;
        self.duplicates_refused += o.duplicates_refused;
        self.faults_fired += o.faults_fired;
        self.late_landed += o.late_landed;
        self.late_after_retry += o.late_after_retry;
        self.compactions_with_uploads_pending += o.compactions_with_uploads_pending;
        self.checkpoints_timed_out += o.checkpoints_timed_out;
    }
}

/// Panics of the simulation's threads, by thread name (a task of the server that panics is
/// a failure even when nobody awaits it).
fn panics() -> &'static Mutex<Vec<(String, String)>> {
    static P: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    P.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The seed's own thread runs its tasks: it names the run it is in.
            let name = RUN_NAME
                .with(|r| r.borrow().clone())
                .unwrap_or_else(|| std::thread::current().name().unwrap_or("").to_string());
            if name.starts_with("lifecycle-") {
                let msg = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                if let Ok(mut p) = panics().lock() {
                    p.push((name, format!("{msg} at {at}")));
                }
            } else {
                default(info);
            }
        }));
        Mutex::new(Vec::new())
    })
}

thread_local! {
    /// The run (seed) the current seed thread is in, for the panic hook.
    static RUN_NAME: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A failure: the seed, the step and what broke.
type Failure = String;

struct Sim {
    seed: u64,
    thread: String,
    rng: Rng,
    cfg: SimConfig,
    mutation: Option<Mutation>,
    engine: SimEngine,
    storage: Arc<SimStorage>,
    server: Arc<PageServer>,
    timeline: Arc<Timeline>,
    model: PageModel,
    acked: Lsn,
    next_lsn: u64,
    stats: Stats,
    trace: u64,
    step: u64,
    log: bool,
    started: tokio::time::Instant,
}

fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(17)
}

impl Sim {
    /// Lets every task run until each waits for a timer, a held write or nothing. Blocking
    /// work keeps paused time from advancing, so the sleep returns only once nothing runs;
    /// but a timer of the upload queue (a retry's backoff) can fall on the same tick as the
    /// sleep's, and then both wake together. So after the sleep a yield lets a woken upload
    /// queue start its attempt, and the loop goes on while an attempt runs that is not
    /// waiting for a held write: the step ends in the same state whatever the timing.
    async fn settle(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
            let executing = self.timeline.uploads_executing();
            if !executing || self.storage.pending().0 > 0 {
                return;
            }
        }
    }

    async fn new(seed: u64, thread: &str, mutation: Option<Mutation>) -> Result<Sim, Failure> {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
        let cfg = SimConfig::draw(&mut rng);
        let engine = SimEngine::unrecorded();
        let (t, tl) = ids();
        let storage = Arc::new(SimStorage::new(
            rng.next(),
            SimFaults::default(),
            &format!("{}/", timeline_prefix(t, tl)),
        ));
        let server = start(&cfg, mutation, &engine, &storage).await?;
        server
            .tenants
            .create_tenant(t)
            .await
            .map_err(|e| format!("create tenant: {e}"))?;
        let timeline = server
            .tenants
            .create_timeline(t, tl)
            .await
            .map_err(|e| format!("create timeline: {e}"))?;
        storage.set_faults(cfg.faults);
        storage.hold_writes();
        Ok(Sim {
            seed,
            thread: thread.to_string(),
            rng,
            cfg,
            mutation,
            engine,
            storage,
            server,
            timeline,
            model: PageModel::default(),
            acked: Lsn(0),
            next_lsn: 1,
            stats: Stats {
                seeds: 1,
                ..Stats::default()
            },
            trace: seed,
            step: 0,
            log: std::env::var("LIFECYCLE_TRACE").is_ok_and(|v| v == "1" || v == seed.to_string()),
            started: tokio::time::Instant::now(),
        })
    }

    fn fail(&self, what: impl std::fmt::Display) -> Failure {
        let info = self.timeline.info();
        format!(
            "seed {} step {} (replay: LIFECYCLE_SEED={} LIFECYCLE_SEEDS=1 LIFECYCLE_STEPS={} LIFECYCLE_TRACE=1), config {:?}: {what} (pending uploads {}, remote writes {:?}, writes held and late {:?})",
            self.seed,
            self.step,
            self.seed,
            self.step + 1,
            self.cfg,
            info.pending_uploads,
            self.storage.counts(),
            self.storage.pending(),
        )
    }

    fn note(&mut self, what: &str) {
        self.trace = what.bytes().fold(self.trace, |h, b| mix(h, u64::from(b)));
        if self.log {
            println!("seed {} step {}: {what}", self.seed, self.step);
        }
    }

    /// Runs `fut` as a task until it finishes, releasing held writes whenever the server is
    /// idle and the task still waits (it may wait for an upload), and letting virtual time
    /// pass when nothing is held (retries back off).
    async fn drive<T: Send + 'static>(
        &mut self,
        what: &str,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Failure> {
        let handle = tokio::spawn(fut);
        let mut waited = Duration::ZERO;
        loop {
            self.settle().await;
            if handle.is_finished() {
                return handle.await.map_err(|e| self.fail(format!("{what}: {e}")));
            }
            let (held, _) = self.storage.pending();
            if held > 0 {
                let i = self.rng.next() as usize;
                self.storage.release(i);
                continue;
            }
            if self.log {
                println!(
                    "seed {} step {}: {what} waits ({:?} of virtual time into the seed)",
                    self.seed,
                    self.step,
                    self.started.elapsed()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
            if waited > Duration::from_secs(600) {
                handle.abort();
                return Err(self.fail(format!("{what} did not finish in 600 s of virtual time")));
            }
        }
    }

    fn key(&mut self) -> Key {
        let k = if self.rng.chance(0.7) {
            u128::from(self.rng.next()) % self.cfg.hot_keys
        } else {
            u128::from(self.rng.next()) % self.cfg.keys
        };
        Key::from_u128(k)
    }

    fn value(&mut self, base: bool) -> ModelValue {
        let kind = self.rng.range(0, 99);
        if (base && kind < 30) || kind < 8 {
            let fill = self.rng.next() as u8;
            let mut page = vec![fill; PAGE];
            page[self.rng.range(0, PAGE as u64 - 1) as usize] = fill.wrapping_add(1);
            return ModelValue::Image(page);
        }
        let will_init = base || kind < 20;
        let patches = (0..self.rng.range(1, 3))
            .map(|_| {
                let len = self.rng.range(1, 200) as usize;
                let offset = self.rng.range(0, (PAGE - len) as u64) as u16;
                let byte = self.rng.next() as u8;
                (offset, vec![byte; len])
            })
            .collect();
        ModelValue::Delta { will_init, patches }
    }

    async fn ingest_records(
        &mut self,
        records: &[([u8; 16], u64, ModelValue)],
    ) -> Result<(), Failure> {
        let mut body = Vec::new();
        for (k, l, v) in records {
            encode_record(&mut body, *k, *l, v);
        }
        let tl = self.timeline.clone();
        let body = Bytes::from(body);
        let r = self
            .drive("ingest", async move {
                tl.ingest(&body, None).await.map_err(|e| e.to_string())
            })
            .await?;
        r.map_err(|e| self.fail(format!("ingest: {e}")))?;
        Ok(())
    }

    async fn ingest(&mut self) -> Result<(), Failure> {
        let count = self.rng.range(1, 40);
        let mut records: Vec<([u8; 16], u64, ModelValue)> = Vec::new();
        let mut lsn = self.next_lsn;
        for _ in 0..count {
            // Several records at one LSN now and then (different keys).
            if !self.rng.chance(0.2) || records.is_empty() {
                lsn += self.rng.range(0, 2);
            }
            let key = self.key();
            if records.iter().any(|(k, l, _)| *k == key.0 && *l == lsn) {
                continue;
            }
            let fresh =
                !self.model.has_record(key.0, lsn) && !records.iter().any(|(k, _, _)| *k == key.0);
            let value = self.value(fresh);
            records.push((key.0, lsn, value));
        }
        let last = records.last().expect("one record at least").1;
        self.ingest_records(&records).await?;
        for (k, l, v) in records {
            self.model.add(k, l, v);
        }
        self.next_lsn = last + 1;
        self.note(&format!("ingest {count} up to {last}"));
        Ok(())
    }

    async fn compact(&mut self) -> Result<(), Failure> {
        if self.timeline.info().pending_uploads > 0 {
            self.stats.compactions_with_uploads_pending += 1;
        }
        let tl = self.timeline.clone();
        let r = self
            .drive("compact", async move {
                tl.compact().await.map_err(|e| format!("{e:#}"))
            })
            .await?;
        let r = r.map_err(|e| self.fail(format!("compaction: {e}")))?;
        if r.outcome == "compacted" {
            match r.outputs {
                0 => {}
                1 => self.stats.single_output_compactions += 1,
                _ => self.stats.multi_output_compactions += 1,
            }
        }
        self.note(&format!("compact {} {} {}", r.outcome, r.inputs, r.outputs));
        Ok(())
    }

    async fn gc(&mut self) -> Result<(), Failure> {
        let tl = self.timeline.clone();
        let r = self
            .drive("gc", async move { tl.gc().map_err(|e| format!("{e:#}")) })
            .await?;
        let removed = r.map_err(|e| self.fail(format!("gc: {e}")))?;
        self.stats.gc_removed += removed as u64;
        self.note(&format!("gc {removed}"));
        Ok(())
    }

    async fn flush(&mut self, wait_upload: bool) -> Result<(), Failure> {
        let tl = self.timeline.clone();
        let r = if wait_upload {
            self.drive("checkpoint", async move {
                tl.checkpoint().await.map_err(|e| format!("{e:#}"))
            })
            .await?
        } else {
            self.drive("flush", async move {
                tl.flush().await.map_err(|e| format!("{e:#}"))
            })
            .await?
        };
        match r {
            Ok(()) => self.note(if wait_upload { "checkpoint" } else { "flush" }),
            // With every write failing up to 30 % of the time, a checkpoint may give up waiting
            // for its index (60 s): an answer the API allows. The flush itself succeeded, and
            // the end of the seed proves the queue drains.
            Err(e) if wait_upload && e.contains("is not uploaded after") => {
                self.stats.checkpoints_timed_out += 1;
                self.note("checkpoint timed out");
            }
            Err(e) => return Err(self.fail(format!("flush: {e}"))),
        }
        Ok(())
    }

    /// Releases some held and late writes, in random order.
    async fn release(&mut self) -> Result<(), Failure> {
        let n = self.rng.range(1, 6);
        for _ in 0..n {
            let i = self.rng.next() as usize;
            let (held, late) = self.storage.pending();
            let (what, done) = if self.rng.chance(0.5) {
                ("held", self.storage.release(i))
            } else {
                ("late", self.storage.release_late(i))
            };
            if self.log {
                println!(
                    "seed {} step {}: release {what}: {done} (held {held}, late {late}, {:?} in)",
                    self.seed,
                    self.step,
                    self.started.elapsed()
                );
            }
            self.settle().await;
        }
        self.note("release");
        Ok(())
    }

    /// Reset (same generation) or restart (a new generation): what was not uploaded is
    /// dropped, and the storage node resends it from the timeline's new `last_record_lsn`.
    async fn reload(&mut self, restart: bool, drop_cache: bool) -> Result<(), Failure> {
        let (t, tl) = ids();
        if restart {
            // The process dies: its writes in flight may still land.
            self.storage.crash_in_flight();
            let old = self.timeline.clone();
            self.drive("stop", async move { old.stop().await }).await?;
            self.server.shutdown();
            self.server = start(&self.cfg, self.mutation, &self.engine, &self.storage)
                .await
                .map_err(|e| self.fail(e))?;
            self.stats.restarts += 1;
        } else {
            let mgr = self.server.tenants.clone();
            let r = self
                .drive("reset", async move {
                    mgr.reset_tenant(t, drop_cache)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:#}"))
                })
                .await?;
            r.map_err(|e| self.fail(format!("reset: {e}")))?;
            self.stats.resets += 1;
        }
        self.timeline = self
            .server
            .tenants
            .get(t)
            .map_err(|e| self.fail(format!("tenant after reload: {e}")))?
            .timeline(tl)
            .ok_or_else(|| self.fail("timeline gone after reload"))?;
        let last = self.timeline.last_record_lsn();
        if last < self.acked {
            return Err(self.fail(format!(
                "after reload last_record_lsn {last} is below the acknowledged {}",
                self.acked
            )));
        }
        let lost = self.model.records_above(last.0);
        self.note(&format!(
            "{} drop_cache={drop_cache}: last {last}, resend {}",
            if restart { "restart" } else { "reset" },
            lost.len()
        ));
        // In requests of about 40 records, never splitting one LSN across two (each request
        // starts above the last LSN ingested).
        let mut start = 0;
        while start < lost.len() {
            let mut end = (start + 40).min(lost.len());
            while end < lost.len() && lost[end].1 == lost[end - 1].1 {
                end += 1;
            }
            self.ingest_records(&lost[start..end]).await?;
            start = end;
        }
        Ok(())
    }

    /// A compaction whose output is a layer already in the map (a replayed or confused job):
    /// refused whole, nothing changes, its inputs stay.
    async fn forge_duplicate(&mut self) -> Result<(), Failure> {
        let (run, l1, before) = self.timeline.with_layer_map(|m| {
            let l1 = m
                .layers()
                .find(|h| h.meta.level == Some(index_part::Level::L1))
                .cloned();
            (m.l0_run(|_| true), l1, m.index())
        });
        let Some(l1) = l1 else { return Ok(()) };
        if run.len() < 2 {
            return Ok(());
        }
        let copy = Arc::new(LayerHandle::new(
            l1.name.clone(),
            l1.meta,
            &self.timeline.dir,
        ));
        let pending = self.timeline.info().pending_uploads;
        let r = self.timeline.install_for_test(Change::Compaction {
            inputs: run,
            outputs: vec![copy],
        });
        match r {
            Err(e)
                if matches!(
                    e.downcast_ref::<ApplyError>(),
                    Some(ApplyError::Duplicate(_))
                ) => {}
            other => {
                return Err(self.fail(format!(
                    "a duplicate install was not refused as a duplicate: {:?}",
                    other.map(|a| a.map(|a| a.removed.len()))
                )));
            }
        }
        let after = self.timeline.with_layer_map(|m| m.index());
        if after != before || self.timeline.info().pending_uploads != pending {
            return Err(self.fail("a refused duplicate changed the layer map or queued uploads"));
        }
        self.stats.duplicates_refused += 1;
        self.note("duplicate refused");
        Ok(())
    }

    /// Compares one read with the model.
    async fn check_read(&mut self, key: Key, lsn: Lsn) -> Result<(), Failure> {
        let got = self.timeline.get_page(key, lsn).await;
        let want = self.model.page(key.0, lsn.0);
        let ok = match (&got, &want) {
            (Ok(p), ModelPage::Page(w)) => p.as_ref() == w.as_slice(),
            (Err(ReadError::NotFound { .. }), ModelPage::NotFound) => true,
            (Err(ReadError::Data { .. }), ModelPage::NoBase) => true,
            _ => false,
        };
        self.stats.reads += 1;
        let straddled = self.timeline.with_layer_map(|m| {
            m.visits(key, lsn).iter().any(|v| {
                v.layer.name.is_delta() && *v.lsns.start() > v.layer.name.lsn_range().start
            })
        });
        if straddled {
            self.stats.straddled_reads += 1;
        }
        let digest = match &got {
            Ok(p) => crc32c::crc32c(p) as u64,
            Err(_) => 1,
        };
        self.trace = mix(self.trace, digest);
        if !ok {
            let layers = self
                .timeline
                .with_layer_map(|m| m.visits(key, lsn))
                .iter()
                .map(|v| format!("{}[{}..={}]", v.layer.name, v.lsns.start(), v.lsns.end()))
                .collect::<Vec<_>>();
            return Err(self.fail(format!(
                "read of {key} at {lsn}: server {}, model {}; visits {layers:?}",
                match &got {
                    Ok(p) => format!("a page (crc32c {:08x})", crc32c::crc32c(p)),
                    Err(e) => format!("error: {e}"),
                },
                match &want {
                    ModelPage::Page(p) => format!("a page (crc32c {:08x})", crc32c::crc32c(p)),
                    other => format!("{other:?}"),
                }
            )));
        }
        Ok(())
    }

    fn read_bounds(&self) -> (u64, u64) {
        let info = self.timeline.info();
        let cutoff: Lsn = info.gc_cutoff_lsn.parse().unwrap();
        (cutoff.0.max(1), self.timeline.last_record_lsn().0)
    }

    /// The checks after every step.
    async fn check(&mut self, samples: usize) -> Result<(), Failure> {
        {
            let p = panics().lock().unwrap();
            let blocking = format!("{}-blocking", self.thread);
            if let Some((_, msg)) = p.iter().find(|(t, _)| *t == blocking || *t == self.thread) {
                return Err(self.fail(format!("a task panicked: {msg}")));
            }
        }
        self.timeline
            .with_layer_map(|m| m.check_invariant())
            .map_err(|e| self.fail(format!("structural invariant: {e}")))?;
        if let Some(v) = self.storage.violations().first() {
            return Err(self.fail(format!("remote object history: {v}")));
        }
        let info = self.timeline.info();
        let remote: Lsn = info.remote_consistent_lsn.parse().unwrap();
        if remote < self.acked {
            return Err(self.fail(format!(
                "remote_consistent_lsn {remote} fell below the acknowledged {}",
                self.acked
            )));
        }
        self.acked = remote;
        self.check_remote(info.pending_uploads == 0)?;
        let (low, high) = self.read_bounds();
        if high >= low {
            for _ in 0..samples {
                let key = self.key();
                let lsn = Lsn(self.rng.range(low, high));
                self.check_read(key, lsn).await?;
            }
        }
        Ok(())
    }

    /// The authoritative remote index references only objects that exist with its sizes and
    /// checksums; with an idle upload queue it is the layer map's index.
    fn check_remote(&self, idle: bool) -> Result<(), Failure> {
        let (t, tl) = ids();
        let objects = self.storage.objects();
        let prefix = format!("{}/", timeline_prefix(t, tl));
        let keys: Vec<&str> = objects
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .map(String::as_str)
            .collect();
        let sel = select_authoritative(keys.iter().copied(), self.timeline.generation)
            .map_err(|e| self.fail(e))?;
        let Some(object) = sel.authoritative else {
            return Err(self.fail("no authoritative index"));
        };
        let key = index_part::names::index_object_key(t, tl, object);
        let index = IndexPart::from_json_object(&objects[&key], object, ParseMode::Strict)
            .map_err(|e| self.fail(format!("{key}: {e}")))?;
        for (name, meta) in &index.layers {
            let file = IndexPart::file_name(name, meta);
            let k = index_part::names::layer_object_key(t, tl, &file);
            match objects.get(&k) {
                Some(d)
                    if d.len() as u64 == meta.file_size && crc32c::crc32c(d) == meta.checksum => {}
                Some(_) => return Err(self.fail(format!("{key}: {file} differs from the index"))),
                None => return Err(self.fail(format!("{key} references missing {file}"))),
            }
        }
        if idle && !self.timeline.info().stale {
            let mine = self.timeline.with_layer_map(|m| m.index());
            let names = |i: &IndexPart| -> Vec<LayerName> { i.layers.keys().cloned().collect() };
            if names(&index) != names(&mine)
                || index.layers != mine.layers
                || index.disk_consistent_lsn != mine.disk_consistent_lsn
                || index.gc_cutoff_lsn != mine.gc_cutoff_lsn
            {
                return Err(self.fail(format!(
                    "with an idle upload queue the authoritative index {object} differs from the layer map: remote {} layers at {}, map {} layers at {}",
                    index.layers.len(),
                    index.disk_consistent_lsn,
                    mine.layers.len(),
                    mine.disk_consistent_lsn
                )));
            }
        }
        Ok(())
    }

    async fn step(&mut self) -> Result<(), Failure> {
        let x = self.rng.range(0, 99);
        match x {
            0..=34 => self.ingest().await?,
            35..=41 => self.flush(false).await?,
            42..=48 => self.flush(true).await?,
            49..=61 => self.compact().await?,
            62..=69 => self.gc().await?,
            70..=84 => self.release().await?,
            85..=87 => {
                let drop_cache = self.rng.chance(0.5);
                self.reload(false, drop_cache).await?
            }
            88..=90 => self.reload(true, false).await?,
            91..=93 => self.forge_duplicate().await?,
            _ => {
                // Late writes land, some of them.
                let n = self.rng.range(1, 4);
                for _ in 0..n {
                    let i = self.rng.next() as usize;
                    self.storage.release_late(i);
                }
                self.note("late writes land");
            }
        }
        self.settle().await;
        // The store's own pace: some waiting writes go through after every step.
        for _ in 0..self.rng.range(0, self.cfg.background_releases) {
            let i = self.rng.next() as usize;
            if !self.storage.release(i) {
                break;
            }
            self.settle().await;
        }
        if self.log {
            let info = self.timeline.info();
            let (held, late) = self.storage.pending();
            println!(
                "seed {} step {}: state: layers {:?}, pending uploads {}, remote {}, held {held}, late {late}, faults {:?}",
                self.seed,
                self.step,
                info.layers,
                info.pending_uploads,
                info.remote_consistent_lsn,
                self.storage.counts()
            );
        }
        self.stats.steps += 1;
        self.check(4).await
    }

    /// Lands everything, checkpoints, reads every key at several LSNs.
    async fn finish(&mut self) -> Result<(), Failure> {
        self.step += 1;
        while self.storage.release_late(0) {}
        self.storage.set_faults(SimFaults::default());
        self.flush(true).await?;
        let tl = self.timeline.clone();
        let idle = self
            .drive("wait for uploads", async move {
                tl.wait_uploads(Duration::from_secs(600)).await
            })
            .await?;
        if !idle {
            return Err(self.fail("uploads did not finish"));
        }
        self.check(0).await?;
        let (low, high) = self.read_bounds();
        if high >= low {
            let mut lsns = vec![low, high, (low + high) / 2];
            for _ in 0..2 {
                lsns.push(self.rng.range(low, high));
            }
            for k in 0..self.cfg.keys {
                for &l in &lsns {
                    self.check_read(Key::from_u128(k), Lsn(l)).await?;
                }
            }
        }
        let c = self.storage.counts();
        self.stats.faults_fired = c.failed_before + c.failed_after + c.late;
        self.stats.late_landed = c.landed_late;
        self.stats.late_after_retry = c.late_no_effect;
        self.images_created();
        Ok(())
    }

    fn images_created(&mut self) {
        self.stats.images = self
            .timeline
            .with_layer_map(|m| m.layers().filter(|h| !h.name.is_delta()).count() as u64);
    }
}

async fn start(
    cfg: &SimConfig,
    mutation: Option<Mutation>,
    engine: &SimEngine,
    storage: &Arc<SimStorage>,
) -> Result<Arc<PageServer>, Failure> {
    let storage = storage.clone();
    PageServer::start_with(cfg.conf(mutation), Arc::new(engine.clone()), move |_| {
        storage
    })
    .await
    .map_err(|e| format!("start: {e:#}"))
}

/// One seed on its own runtime; `Err` names the first failure.
fn run_seed(
    seed: u64,
    steps: u64,
    thread: &str,
    mutation: Option<Mutation>,
) -> Result<(Stats, u64), Failure> {
    panics();
    // A name of its own for this seed's blocking threads: the panics recorded under it are
    // this seed's.
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let thread = format!(
        "{thread}-run{}",
        RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let run = thread.clone();
    // One blocking thread: blocking work then finishes in the order it was started, so the
    // tasks it wakes run in that order too (with two, two seeds at once on a loaded machine
    // took other paths now and then).
    RUN_NAME.with(|r| *r.borrow_mut() = Some(thread.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .max_blocking_threads(1)
        .thread_name(format!("{thread}-blocking"))
        .build()
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move {
            let mut sim = Sim::new(seed, &thread, mutation).await?;
            for i in 0..steps {
                sim.step = i;
                sim.step().await?;
            }
            sim.finish().await?;
            sim.server.shutdown();
            Ok((sim.stats, sim.trace))
        })
    }));
    let result = caught.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        // The first panic of the run says more than a poisoned lock after it.
        let first = panics()
            .lock()
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(t, _)| *t == run || *t == format!("{run}-blocking"))
                    .map(|(_, m)| m.clone())
            })
            .unwrap_or(msg);
        Err(format!("seed {seed}: panicked: {first}"))
    });
    // Background tasks left on the runtime end with it.
    drop(rt);
    result
}

/// Runs `seeds` seeds on two threads; stops at the first failure when `stop_early`.
fn run_many(
    first: u64,
    seeds: u64,
    steps: u64,
    mutation: Option<Mutation>,
    stop_early: bool,
) -> (Stats, Vec<Failure>) {
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads = env_u64("LIFECYCLE_THREADS").unwrap_or(2).max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let failed = failed.clone();
            std::thread::Builder::new()
                .name(format!("lifecycle-{t}"))
                .spawn(move || {
                    let mut stats = Stats::default();
                    let mut failures = Vec::new();
                    let mut seed = first + t;
                    while seed < first + seeds {
                        if stop_early && failed.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        match run_seed(seed, steps, &format!("lifecycle-{t}"), mutation) {
                            Ok((s, digest)) => {
                                if std::env::var("LIFECYCLE_DIGESTS").is_ok() {
                                    println!(
                                        "seed {seed} digest {digest:016x} images {}",
                                        s.images
                                    );
                                }
                                stats.add(&s)
                            }
                            Err(f) => {
                                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                                failures.push(f);
                                if stop_early {
                                    break;
                                }
                            }
                        }
                        seed += threads;
                    }
                    (stats, failures)
                })
                .unwrap()
        })
        .collect();
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for h in handles {
        let (s, f) = h.join().unwrap();
        stats.add(&s);
        failures.extend(f);
    }
    (stats, failures)
}

#[test]
fn the_lifecycle_simulation_finds_no_violation() {
    let first = env_u64("LIFECYCLE_SEED").unwrap_or(0);
    let seeds = env_u64("LIFECYCLE_SEEDS").unwrap_or(200);
    let steps = env_u64("LIFECYCLE_STEPS").unwrap_or(200);
    let started = std::time::Instant::now();
    let (s, failures) = run_many(first, seeds, steps, None, false);
    let line = format!(
        "lifecycle simulation: {} seeds x {steps} steps ({} steps), {} reads compared with the model ({} through a delta cut by an image), {} compactions with several outputs and {} with one, {} image layers left, {} layers removed by GC, {} resets, {} restarts, {} duplicates refused, {} compactions while uploads were pending, {} remote faults ({} late writes landed, {} of them after their retry had done the work), {} checkpoints that gave up waiting for uploads, {} failures, {:.0} s",
        s.seeds,
        s.steps,
        s.reads,
        s.straddled_reads,
        s.multi_output_compactions,
        s.single_output_compactions,
        s.images,
        s.gc_removed,
        s.resets,
        s.restarts,
        s.duplicates_refused,
        s.compactions_with_uploads_pending,
        s.faults_fired,
        s.late_landed,
        s.late_after_retry,
        s.checkpoints_timed_out,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    pageserver::testing::report(&line);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The run reached the states it exists for.
    if seeds >= 50 && steps >= 100 {
        assert!(s.multi_output_compactions > 0 && s.single_output_compactions > 0);
        assert!(
            s.straddled_reads > 0,
            "no read went through a delta cut by an image"
        );
        assert!(s.gc_removed > 0 && s.resets > 0 && s.restarts > 0);
        assert!(s.duplicates_refused > 0 && s.compactions_with_uploads_pending > 0);
        assert!(s.late_landed > 0 && s.late_after_retry > 0);
    }
}

#[test]
fn a_seed_replays_exactly() {
    let first = env_u64("LIFECYCLE_SEED").unwrap_or(0);
    for seed in first..first + 6 {
        let a = run_seed(seed, 200, "lifecycle-replay-a", None).unwrap();
        let b = run_seed(seed, 200, "lifecycle-replay-b", None).unwrap();
        assert_eq!(a.1, b.1, "two runs of seed {seed} took different paths");
        assert!(a.0.reads > 0);
    }
}

/// A checker that cannot fail is worthless: each broken variant of the layer-map logic is
/// caught within the default run.
#[test]
fn each_broken_variant_is_caught() {
    let seeds = env_u64("LIFECYCLE_SEEDS").unwrap_or(200);
    let steps = env_u64("LIFECYCLE_STEPS").unwrap_or(200);
    let mut lines = Vec::new();
    for m in [
        Mutation::GcCoverageRule,
        Mutation::ReadsIgnoreImagesInsideDeltas,
        Mutation::L0ByKeyRange,
        Mutation::DuplicateDropsInputs,
    ] {
        let (s, failures) = run_many(0, seeds, steps, Some(m), true);
        assert!(
            !failures.is_empty(),
            "{m:?}: {} seeds x {steps} steps found no violation",
            s.seeds
        );
        let first = failures
            .iter()
            .min_by_key(|f| {
                f.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(u64::MAX)
            })
            .unwrap();
        println!("{m:?} caught: {first}");
        lines.push(format!("{m:?} after {} clean seeds", s.seeds));
    }
    pageserver::testing::report(&format!(
        "lifecycle simulation: every broken variant caught ({})",
        lines.join(", ")
    ));
}
