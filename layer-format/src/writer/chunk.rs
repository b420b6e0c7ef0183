//! The bytes of the next write, gathered without copying large values.
//!
//! A writer appends headers, small values and index blocks by copying them into a scratch
//! buffer, and large values (at least [`ZERO_COPY_MIN`] bytes) by reference to the caller's
//! `Bytes`, which the flusher hands to the kernel as one vectored write (and checksums, in
//! file order, on its own thread). The chunk keeps the length of everything appended.
//!
//! The scratch buffer is never grown: its capacity holds a whole chunk, and `take` swaps in a
//! spare one (a buffer the flusher has finished writing, when there is one) so that a small-
//! record writer neither reallocates nor faults in fresh pages for every chunk.

use bytes::{Bytes, BytesMut};

/// Values at least this long are written from the caller's buffer instead of being copied.
pub(super) const ZERO_COPY_MIN: usize = 1024;

pub(super) struct Chunk {
    segments: Vec<Bytes>,
    scratch: BytesMut,
    /// Bytes in `segments` plus `scratch`.
    len: usize,
    /// Bytes appended since the start of the file.
    position: u64,
}

impl Chunk {
    pub(super) fn new(scratch_capacity: usize) -> Chunk {
        Chunk {
            segments: Vec::new(),
            scratch: BytesMut::with_capacity(scratch_capacity),
            len: 0,
            position: 0,
        }
    }

    /// Appends a copy of `bytes`.
    pub(super) fn copy(&mut self, bytes: &[u8]) {
        self.scratch.extend_from_slice(bytes);
        self.len += bytes.len();
        self.position += bytes.len() as u64;
    }

    /// Appends `bytes`, by reference if it is large.
    pub(super) fn share(&mut self, bytes: &Bytes) {
        if bytes.len() < ZERO_COPY_MIN {
            return self.copy(bytes);
        }
        self.seal_scratch();
        self.segments.push(bytes.clone());
        self.len += bytes.len();
        self.position += bytes.len() as u64;
    }

    fn seal_scratch(&mut self) {
        if !self.scratch.is_empty() {
            self.segments.push(self.scratch.split().freeze());
        }
    }

    /// Bytes gathered for the next write.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Offset in the file of the next byte appended.
    pub(super) fn position(&self) -> u64 {
        self.position
    }

    /// Takes the gathered segments for writing; `spare`, empty, becomes the scratch buffer.
    pub(super) fn take(&mut self, spare: BytesMut) -> Vec<Bytes> {
        assert!(spare.is_empty(), "a spare scratch buffer is empty");
        let full = std::mem::replace(&mut self.scratch, spare);
        if !full.is_empty() {
            self.segments.push(full.freeze());
        }
        self.len = 0;
        std::mem::take(&mut self.segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_in_order() {
        let big = Bytes::from(vec![7u8; ZERO_COPY_MIN]);
        let mut c = Chunk::new(64);
        c.copy(b"head");
        c.share(&big);
        c.share(&Bytes::from_static(b"small"));
        assert_eq!(c.len(), 4 + ZERO_COPY_MIN + 5);
        let segs = c.take(BytesMut::new());
        assert_eq!(segs.len(), 3, "scratch, shared value, scratch");
        assert_eq!(
            segs[1].as_ptr(),
            big.as_ptr(),
            "the large value is not copied"
        );
        let all: Vec<u8> = segs.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(c.position(), all.len() as u64);
        assert_eq!(c.len(), 0);
        assert!(c.take(BytesMut::new()).is_empty());
    }
}
