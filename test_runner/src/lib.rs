//! End-to-end harness: runs the real `pageserver` binary (built with the `testing` feature)
//! the way an operator and a storage node would, and checks the brief's invariants from the
//! outside.
//!
//! * [`server`]: start, stop, `kill -9` and restart pageserver processes on free loopback
//!   ports, each with its own work directory; an HTTP client for the API; failpoints; log
//!   scanning (an `ERROR` or `WARN` line fails the test unless allowed by pattern).
//! * [`model`]: the reference model of every record ingested, and workloads.
//! * [`remote`]: the remote-storage fixture: the local-filesystem backend, or a bucket per test
//!   on a SeaweedFS server.
//! * [`integrity`]: the integrity checker and the history oracle of remote objects.

pub mod integrity;
pub mod model;
pub mod remote;
pub mod server;

pub use pageserver::testing::report;

/// A suite's seed: the environment variable `var` if set (to reproduce a run), else drawn from
/// the clock. The caller prints it with its settings.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}
