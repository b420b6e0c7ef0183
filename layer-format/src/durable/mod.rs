//! The durable-file primitive (invariants I1 and I2).
//!
//! A file is born as a temp file, created with `O_EXCL` next to its final name, and becomes
//! visible under its final name only through [`publish`] / [`publish_batch`]:
//!
//! 1. fsync the file ([`TempFile::sync`]); on error the temp file is removed and can never be
//!    published (Linux forgets failed pages after reporting the error once, so the bytes on
//!    disk are unknown);
//! 2. `renameat2(RENAME_NOREPLACE)` to the final name, or, where the filesystem answers
//!    `EINVAL`, `link` + `unlink`, which refuses to overwrite as well;
//! 3. fsync the directory (once for a whole batch).
//!
//! [`move_noreplace`] moves an existing file the same way (quarantine into `lost+found/`);
//! [`remove_durable`] removes files and fsyncs their directories.
//!
//! Guarantees: a file under a final name was complete and fsynced before it got that name; an
//! existing file under the final name is never touched (`AlreadyExists`); the temp file is
//! removed on every error path (by [`Drop`] if nothing else); if a step after the rename fails,
//! the names published by that call are removed again before the error returns.

mod dirs;
mod moves;
mod publish;
mod remove;
mod temp;

pub use dirs::create_dir_all_durable;
pub use moves::move_noreplace;
pub use publish::{BatchPublishError, publish, publish_batch};
pub use remove::remove_durable;
pub use temp::{SyncedFile, TempFile};
