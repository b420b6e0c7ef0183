//! Choosing the authoritative index (I5, I8).
//!
//! Index versions are immutable objects `index_part.json-<generation>-<seq>`. An attachment of
//! generation G trusts the highest `(generation, seq)` with generation at or below G: indexes of
//! higher generations belong to newer attachments and make this one stale. It uploads its next
//! index under `(G, s)` with `s` above every sequence number of G in the listing. The caller
//! also keeps the sequence numbers it attempted itself (an upload whose outcome is unknown may
//! land after the listing) and never reuses one.

use crate::error::SelectError;
use crate::names::{Generation, IndexObjectName};

/// The outcome of [`select_authoritative`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The index to load, if any exists at or below the attachment's generation.
    pub authoritative: Option<IndexObjectName>,
    /// The first sequence number of the attachment's generation not present in the listing.
    pub next_seq: u32,
    /// The highest generation above the attachment's seen in the listing: if set, a newer
    /// attachment exists and this one is stale.
    pub newer_generation: Option<Generation>,
}

/// Chooses from `listing` (object keys or names; those that are not index objects are
/// ignored) the authoritative index for an attachment of `my_generation`.
pub fn select_authoritative<'a>(
    listing: impl IntoIterator<Item = &'a str>,
    my_generation: Generation,
) -> Result<Selection, SelectError> {
    let mut authoritative: Option<IndexObjectName> = None;
    let mut my_max_seq: Option<u32> = None;
    let mut newer_generation: Option<Generation> = None;
    for key in listing {
        let Ok(name) = key
            .rsplit('/')
            .next()
            .unwrap_or(key)
            .parse::<IndexObjectName>()
        else {
            continue;
        };
        if name.generation > my_generation {
            newer_generation = newer_generation.max(Some(name.generation));
            continue;
        }
        authoritative = authoritative.max(Some(name));
        if name.generation == my_generation {
            my_max_seq = my_max_seq.max(Some(name.seq));
        }
    }
    let next_seq = match my_max_seq {
        None => 1,
        Some(s) => s
            .checked_add(1)
            .ok_or(SelectError::SequenceExhausted(my_generation))?,
    };
    Ok(Selection {
        authoritative,
        next_seq,
        newer_generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(g: u32, s: u32) -> String {
        format!(
            "tenants/x/timelines/y/{}",
            IndexObjectName {
                generation: Generation(g),
                seq: s
            }
        )
    }

    #[test]
    fn picks_highest_not_above_mine() {
        let listing = [
            name(1, 5),
            name(2, 1),
            name(2, 3),
            name(4, 1),
            "tenants/x/timelines/y/some-layer".into(),
        ];
        let sel = select_authoritative(listing.iter().map(String::as_str), Generation(3)).unwrap();
        assert_eq!(
            sel.authoritative,
            Some(IndexObjectName {
                generation: Generation(2),
                seq: 3
            })
        );
        assert_eq!(sel.next_seq, 1, "generation 3 has uploaded nothing yet");
        assert_eq!(sel.newer_generation, Some(Generation(4)));

        let sel = select_authoritative(listing.iter().map(String::as_str), Generation(2)).unwrap();
        assert_eq!(
            sel.authoritative,
            Some(IndexObjectName {
                generation: Generation(2),
                seq: 3
            })
        );
        assert_eq!(sel.next_seq, 4);
    }

    #[test]
    fn empty_listing_and_exhaustion() {
        let sel = select_authoritative([], Generation(1)).unwrap();
        assert_eq!(
            sel,
            Selection {
                authoritative: None,
                next_seq: 1,
                newer_generation: None
            }
        );
        let full = name(1, u32::MAX);
        assert_eq!(
            select_authoritative([full.as_str()], Generation(1)),
            Err(SelectError::SequenceExhausted(Generation(1)))
        );
    }

    proptest! {
        #[test]
        fn matches_a_brute_force_choice(objs in proptest::collection::vec((1u32..6, 0u32..20), 0..30), mine in 1u32..6) {
            let keys: Vec<String> = objs.iter().map(|(g, s)| name(*g, *s)).collect();
            let sel = select_authoritative(keys.iter().map(String::as_str), Generation(mine)).unwrap();
            let want = objs.iter().filter(|(g, _)| *g <= mine).max().map(|(g, s)| IndexObjectName { generation: Generation(*g), seq: *s });
            prop_assert_eq!(sel.authoritative, want);
            prop_assert!(!objs.contains(&(mine, sel.next_seq)), "next seq is never one already present");
            prop_assert!(objs.iter().filter(|(g, _)| *g == mine).all(|(_, s)| *s < sel.next_seq));
            prop_assert_eq!(sel.newer_generation, objs.iter().map(|(g, _)| *g).filter(|g| *g > mine).max().map(Generation));
        }
    }
}
