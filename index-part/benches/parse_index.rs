//! Placeholder until the benchmark below is written.
fn main() {}
