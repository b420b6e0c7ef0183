//! End-to-end harness that runs the real `pageserver` binary (filled by the test_runner issue).
