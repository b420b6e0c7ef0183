//! A fault-injecting wrapper around remote storage, for tests of slow and adversarial object
//! stores (brief section 8). Enabled by the `remote_storage_faults` setting, accepted only in
//! builds with the `testing` feature. Seeded: the same seed gives the same sequence of
//! decisions (timing still varies).
//!
//! Each write (put or delete) is, at random: delayed; failed before it reaches the store;
//! reported as timed out while the request still lands later; failed after it persisted; or
//! sent twice concurrently (a hedged duplicate). Reads and listings are only delayed.
//!
//! A late write lands, at random, either soon (before the caller's first retry, 50 ms later,
//! can land: the benign order) or after 100 ms and more, once the retry has written the object
//! (sunlight's order: the late request finds the object there, and a create-only put must
//! refuse it). Every injected fault and where each late put landed are counted in
//! `pageserver_injected_faults_total{kind}`, so that a soak can prove what it exercised.

use super::{ListedObject, PutOutcome, RemoteStorage};
use crate::lock::MutexExt;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Probabilities (0 to 1) and bounds of the injected faults.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the decisions.
    pub seed: u64,
    /// Largest injected delay in milliseconds (added to `min_delay_ms`).
    #[serde(default)]
    pub max_delay_ms: u64,
    /// Delay of every operation, reads and listings included, in milliseconds: a slow store.
    #[serde(default)]
    pub min_delay_ms: u64,
    /// A write fails before reaching the store.
    #[serde(default)]
    pub fail_before: f64,
    /// A write fails after it persisted.
    #[serde(default)]
    pub fail_after: f64,
    /// A write times out for the caller but lands later.
    #[serde(default)]
    pub late: f64,
    /// A write is sent twice at once.
    #[serde(default)]
    pub duplicate: f64,
}

/// Remote storage with injected faults.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn RemoteStorage>,
    cfg: FaultConfig,
    rng: Mutex<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    FailBefore,
    FailAfter,
    Late,
    Duplicate,
}

impl FaultyStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn RemoteStorage>, cfg: FaultConfig) -> FaultyStorage {
        FaultyStorage {
            inner,
            cfg,
            rng: Mutex::new(cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        }
    }

    fn next(&self) -> u64 {
        let mut x = self.rng.lock_unpoisoned();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    fn chance(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn delay(&self) -> Duration {
        let min = Duration::from_millis(self.cfg.min_delay_ms);
        if self.cfg.max_delay_ms == 0 {
            return min;
        }
        min + Duration::from_millis(self.next() % (self.cfg.max_delay_ms + 1))
    }

    fn fault(&self) -> Fault {
        let r = self.chance();
        let c = &self.cfg;
        let mut acc = c.fail_before;
        if r < acc {
            return Fault::FailBefore;
        }
        acc += c.fail_after;
        if r < acc {
            return Fault::FailAfter;
        }
        acc += c.late;
        if r < acc {
            return Fault::Late;
        }
        acc += c.duplicate;
        if r < acc {
            return Fault::Duplicate;
        }
        Fault::None
    }
}

fn injected(what: &str, key: &str) -> anyhow::Error {
    anyhow::anyhow!("injected fault: {what} ({key})")
}

fn count(kind: &str) {
    crate::metrics::METRICS
        .injected_faults
        .with_label_values(&[kind])
        .inc();
}

impl FaultyStorage {
    /// When a late write lands: soon (before a retry could) or after the first retry has had
    /// time to land (sunlight's order), half of the time each.
    fn late_delay(&self) -> Duration {
        let jitter = Duration::from_millis(self.next() % (2 * self.cfg.max_delay_ms + 1));
        if self.next().is_multiple_of(2) {
            jitter.min(Duration::from_millis(30))
        } else {
            Duration::from_millis(100) + jitter
        }
    }

    fn counted(&self) -> Fault {
        let f = self.fault();
        match f {
            Fault::None => {}
            Fault::FailBefore => count("fail_before"),
            Fault::FailAfter => count("fail_after"),
            Fault::Late => count("late"),
            Fault::Duplicate => count("duplicate"),
        }
        f
    }
}

impl RemoteStorage for FaultyStorage {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        let (fault, delay) = (self.counted(), self.delay());
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            match fault {
                Fault::None => self.inner.put_if_absent(key, data).await,
                Fault::FailBefore => Err(injected("put failed before the write", key)),
                Fault::FailAfter => {
                    self.inner.put_if_absent(key, data).await?;
                    Err(injected("put failed after the write landed", key))
                }
                Fault::Late => {
                    let (inner, key2, later) =
                        (self.inner.clone(), key.to_string(), self.late_delay());
                    tokio::spawn(async move {
                        tokio::time::sleep(later).await;
                        match inner.put_if_absent(&key2, data).await {
                            // The retry wrote it first; create-only refused the late request.
                            Ok(PutOutcome::AlreadyExists) => count("late_put_after_retry"),
                            Ok(PutOutcome::Created) => count("late_put_first"),
                            Err(_) => count("late_put_failed"),
                        }
                    });
                    Err(injected("put timed out (it lands later)", key))
                }
                Fault::Duplicate => {
                    let (a, b) = futures::join!(
                        self.inner.put_if_absent(key, data.clone()),
                        self.inner.put_if_absent(key, data)
                    );
                    let (a, b) = (a?, b?);
                    Ok(if a == PutOutcome::Created || b == PutOutcome::Created {
                        PutOutcome::Created
                    } else {
                        a
                    })
                }
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        let delay = self.delay();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.inner.get(key).await
        })
    }

    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>> {
        let delay = self.delay();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.inner.list_sized(prefix).await
        })
    }

    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.remove_leftovers(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        let (fault, delay) = (self.counted(), self.delay());
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            match fault {
                Fault::None | Fault::Duplicate => self.inner.delete(key).await,
                Fault::FailBefore => Err(injected("delete failed before reaching the store", key)),
                Fault::FailAfter => {
                    self.inner.delete(key).await?;
                    Err(injected("delete failed after it landed", key))
                }
                Fault::Late => {
                    let (inner, key2, later) =
                        (self.inner.clone(), key.to_string(), self.late_delay());
                    tokio::spawn(async move {
                        tokio::time::sleep(later).await;
                        if inner.delete(&key2).await.is_ok() {
                            count("late_delete_landed");
                        }
                    });
                    Err(injected("delete timed out (it lands later)", key))
                }
            }
        })
    }
}
