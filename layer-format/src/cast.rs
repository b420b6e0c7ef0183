//! The crate's two conversions that the type system cannot prove lossless, each argued once.
//!
//! The crate denies `clippy::expect_used` and lossy `as` casts (`lib.rs`); offsets and sizes
//! read from files are `u64`, buffers are indexed by `usize`, and fixed-size fields are sliced
//! out of blocks. These helpers are where those meet.

/// `x` as a `usize`. Lossless: the crate builds only for 64-bit targets (`lib.rs`).
#[expect(
    clippy::cast_possible_truncation,
    reason = "64-bit targets only, enforced by a compile_error! in lib.rs"
)]
pub(crate) const fn usize_of(x: u64) -> usize {
    x as usize
}

/// The first `N` bytes of `b` as an array. Callers slice fixed-size fields out of buffers
/// whose size they checked; a shorter `b` is a programmer error and panics.
pub(crate) fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}
