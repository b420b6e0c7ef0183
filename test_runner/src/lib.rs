//! End-to-end harness: runs the real `pageserver` binary (built with the `testing` feature)
//! the way an operator and a storage node would, and checks the brief's invariants from the
//! outside.
//!
//! * [`server`]: start, stop, `kill -9` and restart pageserver processes on free loopback
//!   ports, each with its own work directory; an HTTP client for the API; failpoints; log
//!   scanning (an `ERROR` or `WARN` line fails the test unless allowed by pattern).
//! * [`binaries`]: the `pageserver` and `pagectl` binaries under test, and running `pagectl`.
//! * [`remote`]: the remote-storage fixture: the local-filesystem backend, or a bucket per test
//!   on a SeaweedFS server.
//! * [`openapi`]: the operations of the API's OpenAPI document.
//! * [`integrity`]: the integrity checker and the history oracle of remote objects.
//!
//! The page model, workloads, seeds and the checks of reads against the model are the
//! `test-support` crate's, shared with the other crates' tests.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod integrity;
pub mod openapi;
pub mod remote;
pub mod server;

/// Declares one test per remote backend: `$local` on the local filesystem, `$s3` on the
/// SeaweedFS server, each running `$suite(backend).await` on a two-thread runtime.
#[macro_export]
macro_rules! test_on_each_backend {
    ($suite:ident => $local:ident, $s3:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $local() {
            $suite($crate::remote::Backend::Local).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $s3() {
            $suite($crate::remote::Backend::S3).await;
        }
    };
}
