//! An in-memory object store whose writes a test schedules, for deterministic simulations of a
//! slow and faulty object store (brief section 8).
//!
//! Every write (create-only put or delete) under the faulty prefix draws its fate from the
//! store's own seeded generator, in the order writes arrive, and then waits until the test
//! releases it (a slow store: the writer is idle until the schedule says otherwise). On
//! release it meets its fate:
//! * done;
//! * failed before it reached the store (nothing written);
//! * failed after it persisted (the caller sees an error, the write is there);
//! * *late*: the caller sees a timeout, and the write lands only when the test releases it a
//!   second time, possibly after later writes (out of order).
//!
//! Reads and listings answer at once from what has landed. Nothing depends on wall-clock
//! time, and a writer only runs when the test releases it, so a simulation on a
//! current-thread runtime with paused time replays exactly from its seed. Writes outside the
//! faulty prefix (generation claims, probes) land at once; until [`SimStorage::hold_writes`]
//! is called, the others meet their fate at once.
//! The store also keeps, for every key, the checksum of the first bytes ever stored under it:
//! a later create with other bytes (after a delete) is recorded as a violation, since a reader
//! of an older index could then fetch bytes it never promised.

use crate::remote::{ListedObject, PutOutcome, RemoteStorage};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// Probabilities (0 to 1) of each fate of a write under the faulty prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimFaults {
    /// Fails before reaching the store.
    pub fail_before: f64,
    /// Fails after it persisted.
    pub fail_after: f64,
    /// Times out for the caller; lands when released again.
    pub late: f64,
}

/// How many writes met each fate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounts {
    /// Writes under the faulty prefix.
    pub writes: u64,
    /// Failed before reaching the store.
    pub failed_before: u64,
    /// Failed after persisting.
    pub failed_after: u64,
    /// Reported as timed out, landing later.
    pub late: u64,
    /// Writes released to meet their fate.
    pub released: u64,
    /// Late writes that landed.
    pub landed_late: u64,
    /// Late writes that found their work done: a put whose key had been created meanwhile, a
    /// delete whose key was gone.
    pub late_no_effect: u64,
}

#[derive(Debug, Clone)]
enum Write {
    Put { key: String, data: Bytes },
    Delete { key: String },
}

#[derive(Debug)]
struct Held {
    write: Write,
    fate: Fate,
    done: oneshot::Sender<anyhow::Result<PutOutcome>>,
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<String, Bytes>,
    faults: SimFaults,
    faulty_prefix: String,
    rng: u64,
    holding: bool,
    held: Vec<Held>,
    late: Vec<Write>,
    first_crc: HashMap<String, u32>,
    violations: Vec<String>,
    counts: SimCounts,
}

impl State {
    /// A write meets its fate: lands, fails before or after landing, or is left to land late.
    fn meet(&mut self, fate: Fate, w: Write) -> anyhow::Result<PutOutcome> {
        let key = match &w {
            Write::Put { key, .. } | Write::Delete { key } => key.clone(),
        };
        match fate {
            Fate::Done => Ok(self.land(&w)),
            Fate::FailBefore => Err(anyhow::anyhow!(
                "simulated: {key}: failed before reaching the store"
            )),
            Fate::FailAfter => {
                self.land(&w);
                Err(anyhow::anyhow!(
                    "simulated: {key}: timed out after the write persisted"
                ))
            }
            Fate::Late => {
                self.late.push(w);
                Err(anyhow::anyhow!(
                    "simulated: {key}: timed out; the request is still in flight"
                ))
            }
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn land(&mut self, w: &Write) -> PutOutcome {
        match w {
            Write::Put { key, data } => {
                if self.objects.contains_key(key) {
                    return PutOutcome::AlreadyExists;
                }
                let crc = crc32c::crc32c(data);
                let first = *self.first_crc.entry(key.clone()).or_insert(crc);
                if first != crc {
                    self.violations.push(format!(
                        "{key} created again with other bytes (crc32c {crc:08x}, first {first:08x})"
                    ));
                }
                self.objects.insert(key.clone(), data.clone());
                PutOutcome::Created
            }
            Write::Delete { key } => {
                self.objects.remove(key);
                PutOutcome::Created
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Done,
    FailBefore,
    FailAfter,
    Late,
}

/// The store. Share it as `Arc<SimStorage>`; the server sees it as its remote storage.
#[derive(Debug)]
pub struct SimStorage {
    state: Mutex<State>,
}

impl SimStorage {
    /// An empty store; writes under `faulty_prefix` draw their fate from `faults` with `seed`.
    pub fn new(seed: u64, faults: SimFaults, faulty_prefix: &str) -> SimStorage {
        SimStorage {
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                faults,
                faulty_prefix: faulty_prefix.to_string(),
                rng: seed,
                holding: false,
                held: Vec::new(),
                late: Vec::new(),
                first_crc: HashMap::new(),
                violations: Vec::new(),
                counts: SimCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the fault probabilities from now on.
    pub fn set_faults(&self, faults: SimFaults) {
        self.lock().faults = faults;
    }

    /// From now on every write under the faulty prefix waits until released.
    pub fn hold_writes(&self) {
        self.lock().holding = true;
    }

    /// Writes waiting for their release, and late writes still to land.
    pub fn pending(&self) -> (usize, usize) {
        let s = self.lock();
        (s.held.len(), s.late.len())
    }

    /// Releases the `i`th waiting write (modulo their number) to meet its fate, and lets its
    /// caller go on; `false` if none waits.
    pub fn release(&self, i: usize) -> bool {
        let mut s = self.lock();
        if s.held.is_empty() {
            return false;
        }
        let n = s.held.len();
        let held = s.held.remove(i % n);
        s.counts.released += 1;
        let result = s.meet(held.fate, held.write);
        // The caller may have given up (a cancelled task): the fate stands all the same.
        let _ = held.done.send(result);
        true
    }

    /// Lands the `i`th late write (modulo their number); `false` if none is waiting.
    pub fn release_late(&self, i: usize) -> bool {
        let mut s = self.lock();
        if s.late.is_empty() {
            return false;
        }
        let n = s.late.len();
        let w = s.late.remove(i % n);
        let effect = match &w {
            Write::Put { key, .. } => !s.objects.contains_key(key),
            Write::Delete { key } => s.objects.contains_key(key),
        };
        s.land(&w);
        s.counts.landed_late += 1;
        if !effect {
            s.counts.late_no_effect += 1;
        }
        true
    }

    /// The process that sent the waiting writes died: each that would have reached the store
    /// becomes a late write (it may still land when released) and its caller sees an error.
    pub fn crash_in_flight(&self) {
        let mut s = self.lock();
        let held = std::mem::take(&mut s.held);
        for h in held {
            if h.fate != Fate::FailBefore {
                s.late.push(h.write);
                s.counts.late += 1;
            }
        }
    }

    /// Every object that has landed.
    pub fn objects(&self) -> BTreeMap<String, Bytes> {
        self.lock().objects.clone()
    }

    /// Objects created again with other bytes than the first time.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// How many writes met each fate.
    pub fn counts(&self) -> SimCounts {
        self.lock().counts
    }

    /// The fate of a write under the faulty prefix, drawn as it arrives.
    fn fate(s: &mut State) -> Fate {
        s.counts.writes += 1;
        let f = s.faults;
        let x = s.chance();
        if x < f.fail_before {
            s.counts.failed_before += 1;
            Fate::FailBefore
        } else if x < f.fail_before + f.fail_after {
            s.counts.failed_after += 1;
            Fate::FailAfter
        } else if x < f.fail_before + f.fail_after + f.late {
            s.counts.late += 1;
            Fate::Late
        } else {
            Fate::Done
        }
    }

    async fn write(&self, w: Write) -> anyhow::Result<PutOutcome> {
        let rx = {
            let mut s = self.lock();
            let key = match &w {
                Write::Put { key, .. } | Write::Delete { key } => key,
            };
            if !key.starts_with(&s.faulty_prefix) {
                return Ok(s.land(&w));
            }
            let fate = SimStorage::fate(&mut s);
            if !s.holding {
                return s.meet(fate, w);
            }
            let (done, rx) = oneshot::channel();
            s.held.push(Held {
                write: w,
                fate,
                done,
            });
            rx
        };
        rx.await
            .map_err(|_| anyhow::anyhow!("simulated: the store went away"))?
    }
}

impl RemoteStorage for SimStorage {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        Box::pin(self.write(Write::Put {
            key: key.to_string(),
            data,
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        Box::pin(async move { Ok(self.lock().objects.get(key).cloned()) })
    }

    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| ListedObject {
                    key: k.clone(),
                    size: v.len() as u64,
                })
                .collect())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.write(Write::Delete {
                key: key.to_string(),
            })
            .await
            .map(|_| ())
        })
    }

    fn remove_leftovers<'a>(&'a self, _prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        // A put is all or nothing here, as on S3.
        Box::pin(async { Ok(0) })
    }
}
