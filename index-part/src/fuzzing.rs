//! The body of the parser's fuzz target, shared with the tests that run it on random input.

#![allow(
    clippy::expect_used,
    reason = "a fuzz body's assertions: a panic is what the fuzzer reports"
)]

use crate::{IndexPart, ParseMode};

/// Parses arbitrary bytes in both modes. Must never panic; whatever parses must serialize and
/// parse back to the same index.
pub fn parse_arbitrary(bytes: &[u8]) {
    let _ = IndexPart::from_json(bytes, ParseMode::Strict);
    if let Ok(index) = IndexPart::from_json(bytes, ParseMode::Lenient) {
        let json = index.to_json().expect("a parsed index is valid");
        let back = IndexPart::from_json(&json, ParseMode::Strict).expect("what we write, we read");
        assert_eq!(back, index, "round trip");
    }
}

/// Parses arbitrary bytes (as text) with every name parser: tenant and timeline ids,
/// generations, layer names, layer file names, index object names, generation claim keys, and
/// the local-file classifier. Must never panic; whatever parses must print as the same text
/// and parse back to the same value (names are canonical: one value, one spelling).
pub fn parse_arbitrary_names(bytes: &[u8]) {
    use crate::names::{
        Generation, IndexObjectName, LayerFileName, LayerName, TenantId, TimelineId,
        classify_local, parse_generation_claim,
    };
    use std::str::FromStr;
    fn round_trip<T>(s: &str)
    where
        T: FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    {
        if let Ok(v) = s.parse::<T>() {
            let text = v.to_string();
            assert_eq!(text, s, "one spelling per name");
            let back = text.parse::<T>().ok().expect("what we print, we parse");
            assert_eq!(back, v, "round trip");
        }
    }
    let Ok(s) = std::str::from_utf8(bytes) else {
        return;
    };
    round_trip::<TenantId>(s);
    round_trip::<TimelineId>(s);
    round_trip::<Generation>(s);
    round_trip::<LayerName>(s);
    round_trip::<LayerFileName>(s);
    round_trip::<IndexObjectName>(s);
    let _ = parse_generation_claim(s);
    let _ = classify_local(s);
}
