//! End-to-end harness: runs the real `pageserver` binary (built with the `testing` feature)
//! the way an operator and a storage node would, and checks the brief's invariants from the
//! outside.
//!
//! * [`server`]: start, stop, `kill -9` and restart pageserver processes on free loopback
//!   ports, each with its own work directory; an HTTP client for the API; failpoints; log
//!   scanning (an `ERROR` or `WARN` line fails the test unless allowed by pattern).
//! * [`binaries`]: the `pageserver` and `pagectl` binaries under test, and running `pagectl`.
//! * [`checks`]: reads through the API compared with the model.
//! * [`model`]: the reference model of every record ingested, and workloads.
//! * [`remote`]: the remote-storage fixture: the local-filesystem backend, or a bucket per test
//!   on a SeaweedFS server.
//! * [`openapi`]: the operations of the API's OpenAPI document.
//! * [`integrity`]: the integrity checker and the history oracle of remote objects.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod checks;
pub mod integrity;
pub mod model;
pub mod openapi;
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

/// The suites' random numbers: xorshift64, seeded per run (see [`seed`]) so that a printed
/// seed replays the run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.next() % (hi - lo + 1)
    }
    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// `lo..=hi` random bytes.
    pub fn bytes(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi);
        (0..n).map(|_| self.next() as u8).collect()
    }
}
