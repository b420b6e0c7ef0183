//! `pagectl scrub` and `pagectl purge-garbage`: remote storage checked against the indexes.

pub mod judge;
