//! The blob stream: the values of the records, in record order, starting at offset 0.
//!
//! ```text
//! blob     := len:u32 | crc32c:u32 | payload[len]      (no alignment; blobs cross blocks)
//! payload  := an encoded Value (value.rs)
//! ```
//!
//! `crc32c` covers the payload. A leaf entry of the index points at the first byte of a blob.
//! The stream ends at `blob_bytes` (summary); the rest of its last block is zero.

use super::{CRC_SIZE, be_u32};

/// Size of a blob header: length and checksum.
pub const BLOB_HEADER_SIZE: usize = 4 + CRC_SIZE;

/// The largest payload a blob may carry. Bounds what a reader allocates for a corrupt length.
pub const MAX_BLOB_PAYLOAD: usize = 16 << 20;

/// Appends a blob with `payload` to `out`.
pub fn encode_blob(out: &mut Vec<u8>, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_BLOB_PAYLOAD,
        "blob of {} bytes is too large",
        payload.len()
    );
    // At most MAX_BLOB_PAYLOAD (asserted above), which is below u32::MAX.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A decoded blob header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    /// Payload length.
    pub len: usize,
    /// CRC32C of the payload.
    pub crc: u32,
}

/// Decodes a blob header from its 8 bytes.
pub fn decode_header(b: &[u8; BLOB_HEADER_SIZE]) -> BlobHeader {
    BlobHeader {
        len: be_u32(b, 0) as usize,
        crc: be_u32(b, 4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksum_catches_a_flip() {
        let mut out = Vec::new();
        encode_blob(&mut out, b"payload");
        let h = decode_header(out[..BLOB_HEADER_SIZE].try_into().unwrap());
        assert_eq!(h.len, 7);
        assert_eq!(crc32c::crc32c(&out[BLOB_HEADER_SIZE..]), h.crc);
        out[BLOB_HEADER_SIZE + 2] ^= 1;
        assert_ne!(crc32c::crc32c(&out[BLOB_HEADER_SIZE..]), h.crc);
    }
}
