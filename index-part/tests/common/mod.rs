//! What the index-part test files share: the committed fixtures, strict parsing, edits.
#![allow(dead_code, reason = "each test file uses what it needs")]

use index_part::{IndexError, IndexPart, ParseMode};
use std::path::Path;

pub fn fixture(version: u32) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}.json")),
    )
    .expect("test fixture")
}

pub fn strict(bytes: &[u8]) -> Result<IndexPart, IndexError> {
    IndexPart::from_json(bytes, ParseMode::Strict)
}

/// Edits a fixture as JSON and returns the bytes.
pub fn edit(version: u32, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(version)).expect("test fixture");
    f(&mut v);
    serde_json::to_vec(&v).expect("test fixture")
}

pub const DELTA: &str = "00000000000000000000000000000000-ffffffffffffffffffffffffffffffff__0000000000000001-0000000000000100";
