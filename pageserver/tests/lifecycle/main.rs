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
//!   `test_support::model`, which shares no code with the server;
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
use pageserver::testing::sim_storage::{SimFaults, SimStorage};
use pageserver::timeline::layer_map::{ApplyError, Change};
use pageserver::timeline::mutation::Mutation;
use pageserver::timeline::{LayerHandle, ReadError, Timeline};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use test_support::model::{ModelPage, ModelValue, PAGE, PageModel, encode_record};

const TENANT: &str = "0123456789abcdef0123456789abcdef";
const TIMELINE: &str = "fedcba9876543210fedcba9876543210";
const WORKDIR: &str = "/ps";

fn ids() -> (TenantId, TimelineId) {
    (TENANT.parse().unwrap(), TIMELINE.parse().unwrap())
}

mod actions;
mod checks;
mod config;

use config::{Rng, SimConfig, Stats};
use test_support::env_u64;

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
        let info = self.timeline.status();
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
    test_support::report(&line);
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
    test_support::report(&format!(
        "lifecycle simulation: every broken variant caught ({})",
        lines.join(", ")
    ));
}
