//! Fuzz target: arbitrary text through every name parser; whatever parses must print as the
//! same text and parse back. Run with `cargo fuzz run parse_names` from `index-part/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    index_part::fuzzing::parse_arbitrary_names(data);
});
