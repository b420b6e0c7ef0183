//! Directories whose existence survives a power cut.
//!
//! A new directory's entry lives in its parent and is durable only once the parent is fsynced;
//! without that, every file later published inside it can vanish with it, however carefully
//! each was synced.

use crate::io::IoEngine;
use std::io;
use std::path::{Path, PathBuf};

/// Creates `dir` and its missing ancestors, then fsyncs, from the top down, the parent of each
/// directory it created and the parent of `dir` itself (which may have been created by an
/// earlier attempt that failed before its fsync).
pub fn create_dir_all_durable(engine: &dyn IoEngine, dir: &Path) -> io::Result<()> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && engine.stat(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    engine.create_dir_all(dir)?;
    let mut parents: Vec<&Path> = missing.iter().rev().filter_map(|d| d.parent()).collect();
    if let Some(p) = dir.parent()
        && parents.last() != Some(&p)
    {
        parents.push(p);
    }
    for p in parents {
        if !p.as_os_str().is_empty() {
            engine.fsync_dir(p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::{SimEngine, Variant};

    #[test]
    fn every_new_directory_is_durable_in_its_parent() {
        let e = SimEngine::new(Variant::Correct);
        create_dir_all_durable(&e, Path::new("/a/b/c")).unwrap();
        e.end();
        let last = e.points().pop().unwrap();
        assert!(last.pending.is_empty(), "{:?}", last.pending);
        assert!(last.durable.is_dir(Path::new("/a/b/c")));
    }
}
