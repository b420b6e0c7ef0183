//! Moving an existing file to a new name of the same filesystem without replacing anything:
//! `renameat2(RENAME_NOREPLACE)`, or where the filesystem answers `EINVAL`, `link` + `unlink`
//! (a hard link refuses to replace too). The caller fsyncs the directories involved.

use crate::io::IoEngine;
use std::io;
use std::path::Path;

/// Moves `from` to `to`; `AlreadyExists` if `to` exists, which is never touched. With the
/// fallback, a failed `unlink` after the `link` leaves the file under both names and returns
/// that error.
pub fn move_noreplace(engine: &dyn IoEngine, from: &Path, to: &Path) -> io::Result<()> {
    match engine.rename_noreplace(from, to) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            engine.link(from, to)?;
            engine.unlink(from)
        }
        other => other,
    }
}
