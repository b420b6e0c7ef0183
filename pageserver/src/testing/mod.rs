//! Support for tests of this crate and of `test_runner` that needs the server's own types
//! (builds with the `testing` feature only): an in-memory object store whose writes a test
//! schedules ([`sim_storage`]). What needs only the formats (the page model, workloads, the
//! S3 test server, the API client's shared calls) is in the `test-support` crate.

pub mod sim_storage;
