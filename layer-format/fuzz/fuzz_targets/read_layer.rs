//! Fuzz target: arbitrary bytes opened as a layer file and read every way the reader can.
//! The reader must never panic. Run with `cargo fuzz run read_layer` from `layer-format/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    layer_format::fuzzing::read_arbitrary_layer(data);
});
