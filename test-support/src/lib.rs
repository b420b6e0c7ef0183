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
#![allow(
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
