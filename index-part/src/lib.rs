//! `index_part.json`: the authoritative list of a timeline's layers.
//!
//! Filled by the index-part issue: schema and versions, validation, object names and the choice
//! of the authoritative index. Layer names and generations come from [`layer_format::name`].
//!
//! **Architecture invariant:** this crate knows nothing of tenants' runtime state, HTTP or
//! object storage, and does no network I/O.

pub use layer_format::name::{Generation, LayerFileName, LayerName};
