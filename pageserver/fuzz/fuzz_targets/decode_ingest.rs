//! Fuzz target: arbitrary bytes decoded as an ingest body (`decode_arbitrary`: the decoder
//! never panics; what it accepts keeps every rule and encodes back to the same bytes). Run
//! with `cargo fuzz run decode_ingest` from `pageserver/`.
//!
//! The decoder's module is compiled in by path: it depends only on `layer-format`, `bytes`
//! and `thiserror`, so the target does not build the whole server (tokio, axum, the S3
//! client) under the fuzzer's instrumentation.
#![no_main]

#[path = "../../src/http/wire.rs"]
#[allow(dead_code, reason = "only the decoder's fuzz body is used")]
mod ingest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ingest::decode_arbitrary(data);
});
