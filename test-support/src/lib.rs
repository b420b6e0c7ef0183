//! What the tests of every crate share, so that each concept of a test has one definition:
//!
//! * [`model`]: the page model, written from the brief alone; every suite's expected pages.
//! * [`layer`]: the set-up of the layer-file tests (both I/O engines, a writer) and the model
//!   of what a layer read returns.
//! * [`values`]: values whose bytes identify their key and LSN.
//! * [`workload`]: the suites' record streams, each chain starting with a base.
//! * [`api`]: the suites' tenant and timeline, and the calls and checks every suite makes
//!   through the HTTP API, whether it drives the server in process or as the real binary.
//! * [`rng`]: seeds drawn per run (printed, and replayed from an environment variable) and
//!   the suites' random numbers.
//! * [`seaweedfs`]: the S3-compatible server of the S3 tests.
//! * [`report`](mod@report): the summary line each suite adds to the end of a test run.
//!
//! Invariant: this crate depends on the formats (`layer-format`) and never on `pageserver`,
//! so the model shares no code with the server it checks, and the server's own tests can use
//! it.
#![forbid(unsafe_code)]
#![expect(
    clippy::unwrap_used,
    reason = "test support: a failure is the test's failure"
)]

pub mod api;
pub mod layer;
pub mod model;
pub mod report;
pub mod rng;
pub mod seaweedfs;
pub mod values;
pub mod workload;

pub use model::Model;
pub use report::report;
pub use rng::{Rng, env_u64, seed};

#[cfg(test)]
mod tests {
    /// The oracle shares no code with the server: this crate depends on no server crate, and
    /// the page model takes only types from the format crate (no decoding, redo or encoding).
    #[test]
    fn the_model_depends_on_the_formats_types_only() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .and_then(|rest| rest.split("\n[").next())
            .unwrap();
        assert!(
            !deps.contains("pageserver"),
            "test-support depends on the server"
        );
        let model = include_str!("model.rs");
        let uses: Vec<&str> = model
            .match_indices("layer_format::")
            .map(|(at, _)| model[at..].split([';', '\n']).next().unwrap())
            .collect();
        assert_eq!(
            uses,
            ["layer_format::{Key, Lsn, Record, Value}"],
            "model.rs may use the format's types only"
        );
    }
}
