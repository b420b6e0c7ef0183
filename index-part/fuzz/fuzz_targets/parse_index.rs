//! Fuzz target: arbitrary bytes parsed as `index_part.json` in both modes; whatever parses
//! must serialize and parse back unchanged. Run with `cargo fuzz run parse_index` from
//! `index-part/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    index_part::fuzzing::parse_arbitrary(data);
});
