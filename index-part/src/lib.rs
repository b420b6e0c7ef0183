//! `index_part.json`: the authoritative list of a timeline's layers (invariants I3, I5, I8).
//!
//! * [`IndexPart`]: the schema, its versions ([`LATEST_VERSION`]), parsing
//!   ([`IndexPart::from_json`]) and serialization; every read validates.
//! * [`names`]: every name on disk and in object storage.
//! * [`select_authoritative`]: which index version is the truth for an attachment, and the next
//!   sequence number to upload under.
//!
//! **Architecture invariant:** this crate knows nothing of tenants' runtime state, HTTP or
//! object storage, and does no I/O: it parses and checks what it is given.
#![forbid(unsafe_code)]
// The style, as lints: no `expect` (an invariant is an `assert!` or `unreachable!` with its
// argument, or a typed error), no lossy `as` casts (`try_from`), in
// library code; tests are exempt (clippy.toml, and the `cfg_attr` below).
#![deny(clippy::expect_used)]
#![cfg_attr(
    not(test),
    deny(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap
    )
)]

mod error;
/// Fuzz bodies (`testing` builds only).
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod names;
mod parse;
mod schema;
mod select;
mod validate;

pub use error::{IndexError, SelectError};
pub use names::{Generation, IndexObjectName, LayerFileName, LayerName, TenantId, TimelineId};
pub use parse::{LevelInference, ParseMode};
pub use schema::{
    IndexPart, LATEST_VERSION, LayerMetadata, Level, TimelineMetadata, whole_seconds,
};
pub use select::{Selection, select_authoritative};
