//! Removals that survive a power cut: the names go, then each directory that held one is
//! fsynced (an unlink, like a create, is durable only once its directory is).

use crate::io::IoEngine;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// Removes every file of `paths` (one already gone counts as removed), then fsyncs each
/// directory that held one, once. Stops at the first error, naming the path it concerns.
pub fn remove_durable(
    engine: &dyn IoEngine,
    paths: &[PathBuf],
) -> Result<(), (PathBuf, io::Error)> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        match engine.unlink(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err((p.clone(), e)),
        }
        dirs.insert(p.parent().unwrap_or(Path::new("")).to_path_buf());
    }
    for d in dirs {
        engine.fsync_dir(&d).map_err(|e| (d.clone(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::{SimEngine, Variant};

    /// Once `remove_durable` returns, nothing is pending and neither name survives a power cut;
    /// a name already gone is no error.
    #[test]
    fn removals_are_durable_once_it_returns() {
        let e = SimEngine::new(Variant::Correct);
        let dir = Path::new("/d");
        crate::durable::create_dir_all_durable(&e, dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        for p in [&a, &b] {
            e.create_exclusive(p).unwrap().fsync().unwrap();
        }
        e.fsync_dir(dir).unwrap();
        remove_durable(&e, &[a.clone(), b.clone(), dir.join("gone")]).unwrap();
        e.end();
        let last = e.points().pop().unwrap();
        assert!(last.pending.is_empty(), "{:?}", last.pending);
        assert!(!last.durable.files.contains_key(&a) && !last.durable.files.contains_key(&b));
    }
}
