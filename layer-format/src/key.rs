//! `Key` and `Lsn`: the two coordinates of every record.
//!
//! A [`Key`] is 16 bytes compared bytewise and written as 32 lowercase hex digits. The all-`ff`
//! key ([`Key::MAX`]) is reserved as the exclusive end of the key space: it can bound a range but
//! never names a page. An [`Lsn`] is a `u64` log sequence number, written `X/Y` (upper and lower
//! 32 bits in upper-case hex) as PostgreSQL does.
//!
//! Parsing is strict so that formatting and parsing round-trip: a key must be exactly 32
//! lowercase hex digits; each half of an LSN is 1 to 8 upper-case hex digits.

use std::fmt;
use std::str::FromStr;

/// A page key: 16 bytes, ordered bytewise.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Key(pub [u8; 16]);

/// Bytewise order is the order of the big-endian `u128`, which compares in two machine words
/// instead of a `memcmp` call: the writer and every index search compare keys per record.
impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.to_u128().cmp(&other.to_u128())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    /// Size of a key in bytes, on disk and on the wire.
    pub const SIZE: usize = 16;
    /// The smallest key.
    pub const MIN: Key = Key([0; 16]);
    /// The reserved all-`ff` key: the exclusive end of the key space, never a page.
    pub const MAX: Key = Key([0xff; 16]);

    /// Builds a key from a big-endian `u128` (convenient in tests and tools).
    pub const fn from_u128(v: u128) -> Key {
        Key(v.to_be_bytes())
    }

    /// The key as a big-endian `u128`.
    pub const fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The next key, or `None` for [`Key::MAX`].
    pub fn next(self) -> Option<Key> {
        self.to_u128().checked_add(1).map(Key::from_u128)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        // Hex digits are ASCII: each byte is its char.
        out.iter()
            .try_for_each(|&c| fmt::Write::write_char(f, char::from(c)))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a key or LSN string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeyError {
    /// Not exactly 32 lowercase hex digits.
    #[error("key {0:?} is not 32 lowercase hex digits")]
    BadKey(String),
    /// Not of the form `X/Y` with 1-8 upper-case hex digits on each side.
    #[error("LSN {0:?} is not of the form X/Y (upper-case hex, at most 8 digits each)")]
    BadLsn(String),
}

impl FromStr for Key {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Key, ParseKeyError> {
        let bad = || ParseKeyError::BadKey(s.to_string());
        if s.len() != 32 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let v = u128::from_str_radix(s, 16).map_err(|_| bad())?;
        Ok(Key::from_u128(v))
    }
}

/// A log sequence number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The smallest LSN.
    pub const ZERO: Lsn = Lsn(0);
    /// The largest LSN.
    pub const MAX: Lsn = Lsn(u64::MAX);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Lsn {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Lsn, ParseKeyError> {
        let bad = || ParseKeyError::BadLsn(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |p: &str| -> Result<u64, ParseKeyError> {
            if p.is_empty()
                || p.len() > 8
                || !p.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
            {
                return Err(bad());
            }
            u64::from_str_radix(p, 16).map_err(|_| bad())
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lsn_is_written_like_postgres() {
        assert_eq!(Lsn(0x1_0000_00AB).to_string(), "1/AB");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!("16/B374D848".parse::<Lsn>(), Ok(Lsn(0x16_B374_D848)));
    }

    #[test]
    fn malformed_names_are_refused() {
        for s in [
            "",
            "0",
            "0/",
            "/0",
            "1/ab",
            "123456789/0",
            "0/0/0",
            "g/0",
            " 1/0",
        ] {
            assert!(s.parse::<Lsn>().is_err(), "{s:?}");
        }
        let k = "00112233445566778899aabbccddeeff";
        assert!(k.parse::<Key>().is_ok());
        for s in [
            "",
            &k[1..],
            &k.to_uppercase(),
            &format!("{k}0"),
            "+0112233445566778899aabbccddeeff",
        ] {
            assert!(s.parse::<Key>().is_err(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn key_round_trips(v: u128) {
            let k = Key::from_u128(v);
            prop_assert_eq!(k.to_string().parse::<Key>(), Ok(k));
            prop_assert_eq!(k.to_u128(), v);
        }

        #[test]
        fn lsn_round_trips(v: u64) {
            prop_assert_eq!(Lsn(v).to_string().parse::<Lsn>(), Ok(Lsn(v)));
        }

        #[test]
        fn key_order_is_bytewise(a: [u8; 16], b: [u8; 16], shared: usize) {
            // Keys that share a prefix, so that every byte position decides some cases.
            let mut b = b;
            let shared = shared % 17;
            b[..shared].copy_from_slice(&a[..shared]);
            prop_assert_eq!(Key(a).cmp(&Key(b)), a.as_slice().cmp(b.as_slice()));
            prop_assert_eq!(Key(a).partial_cmp(&Key(b)), Some(a.as_slice().cmp(b.as_slice())));
        }
    }
}
