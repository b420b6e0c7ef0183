//! Graceful shutdown (brief section 6): on SIGTERM or SIGINT the server stops taking requests
//! that change state (503), waits for those in flight, freezes and flushes every timeline and
//! waits for the uploads of the indexes covering them, all within `shutdown_timeout`.
//!
//! Invariants:
//! * once [`Gate::close`] has begun, no request that changes state starts: a request enters
//!   by taking a read guard and then looking at the flag; `close` sets the flag and then takes
//!   the write guard, so a request either saw the flag or is waited for;
//! * a timeline reported flushed took no record after its last freeze
//!   ([`crate::timeline::Timeline::stop_ingest`] sets its flag under the ingest lock before
//!   the checkpoint), so its `remote_consistent_lsn` equals every LSN ever acknowledged and a
//!   restart finds both LSNs unchanged, even if a request outlived the wait for requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

/// Admission of requests that change state.
#[derive(Debug, Default)]
pub struct Gate {
    closing: AtomicBool,
    in_flight: Arc<RwLock<()>>,
}

/// Held by a request that changes state, for as long as it runs.
pub type Admitted = OwnedRwLockReadGuard<()>;

impl Gate {
    /// Admits a request, or `None` once the server is shutting down.
    pub fn enter(&self) -> Option<Admitted> {
        // A failed try_read means `close` holds or awaits the write guard.
        let guard = self.in_flight.clone().try_read_owned().ok()?;
        if self.closing.load(Ordering::SeqCst) {
            return None;
        }
        Some(guard)
    }

    /// Whether shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Refuses new requests from now on and waits for those admitted to end.
    pub async fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // Held until the process exits: nothing is admitted again.
        std::mem::forget(self.in_flight.clone().write_owned().await);
    }
}

/// What a graceful shutdown achieved.
#[derive(Debug, Default)]
pub struct DrainReport {
    /// Timelines flushed with their index uploaded.
    pub flushed: usize,
    /// Timelines skipped: broken, or stale (a newer attachment owns the tenant).
    pub skipped: usize,
    /// Timelines (`tenant/timeline: why`) whose flush or upload failed or missed the deadline.
    pub failed: Vec<String>,
    /// Whether requests admitted before the signal still ran when their wait ended (the
    /// timelines were flushed anyway; the requests' records were refused, not acknowledged).
    pub requests_cut: bool,
}

impl DrainReport {
    /// Everything acknowledged is in remote storage.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_admitted_requests_and_refuses_new_ones() {
        let gate = Arc::new(Gate::default());
        let admitted = gate.enter().expect("open");
        let closer = tokio::spawn({
            let gate = gate.clone();
            async move { gate.close().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(gate.is_closing());
        assert!(gate.enter().is_none(), "admitted during shutdown");
        assert!(
            !closer.is_finished(),
            "close did not wait for the request in flight"
        );
        drop(admitted);
        closer.await.unwrap();
        assert!(gate.enter().is_none());
    }
}
