//! The body of the parser's fuzz target, shared with the tests that run it on random input.

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
