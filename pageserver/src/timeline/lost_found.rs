//! What a timeline directory's `lost+found/` holds: the server's size metrics and `pagectl
//! lost-found list|clean` read it through here.
//!
//! [`reconcile::quarantine`](super::reconcile::quarantine) names each entry
//! `<name>.<unix nanoseconds of the move>` (and a file that stood where the directory belongs
//! `lost+found.<nanoseconds>.file`), so an entry's age is read from its name; an entry whose
//! name carries no stamp (put there by hand) is dated by its inode change time, which a rename
//! sets.

use index_part::names::{LOST_AND_FOUND, TenantId, TimelineId};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One entry of a `lost+found/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its path.
    pub path: PathBuf,
    /// Bytes of the file, or of every file below it for a directory.
    pub size: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// When it was moved in.
    pub moved_at: SystemTime,
}

/// The move time a quarantine name carries, if it carries one.
pub fn stamp_of(name: &str) -> Option<SystemTime> {
    let name = name.strip_suffix(".file").unwrap_or(name);
    let (_, digits) = name.rsplit_once('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u64 = digits.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

fn size_of(path: &Path, meta: &std::fs::Metadata) -> io::Result<u64> {
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        total += size_of(&entry.path(), &meta)?;
    }
    Ok(total)
}

/// The entries of `<timeline_dir>/lost+found/`, oldest first; empty if it does not exist.
pub fn list(timeline_dir: &Path) -> io::Result<Vec<Quarantined>> {
    let dir = timeline_dir.join(LOST_AND_FOUND);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Cleaned meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let moved_at = entry
            .file_name()
            .to_str()
            .and_then(stamp_of)
            .unwrap_or_else(|| {
                use std::os::unix::fs::MetadataExt;
                UNIX_EPOCH + Duration::from_secs(u64::try_from(meta.ctime()).unwrap_or(0))
            });
        out.push(Quarantined {
            size: size_of(&path, &meta)?,
            is_dir: meta.is_dir(),
            path,
            moved_at,
        });
    }
    out.sort_by(|a, b| a.moved_at.cmp(&b.moved_at).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// Every timeline directory under `<workdir>/tenants/`, in order; names that are not ids are
/// skipped.
pub fn timeline_dirs(workdir: &Path) -> io::Result<Vec<(TenantId, TimelineId, PathBuf)>> {
    let mut out = Vec::new();
    let read = |p: &Path| match std::fs::read_dir(p) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let Some(tenants) = read(&workdir.join("tenants"))? else {
        return Ok(out);
    };
    for t in tenants {
        let t = t?;
        let Some(tenant) = t.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some(timelines) = read(&t.path().join("timelines"))? else {
            continue;
        };
        for tl in timelines {
            let tl = tl?;
            if let Some(timeline) = tl.file_name().to_str().and_then(|s| s.parse().ok()) {
                out.push((tenant, timeline, tl.path()));
            }
        }
    }
    out.sort_by_key(|a| (a.0, a.1));
    Ok(out)
}

/// Removes an entry (recursively for a directory) and makes the removal durable.
pub fn remove(entry: &Quarantined) -> io::Result<()> {
    if entry.is_dir {
        std::fs::remove_dir_all(&entry.path)?;
    } else {
        std::fs::remove_file(&entry.path)?;
    }
    let parent = entry.path.parent().expect("inside lost+found");
    std::fs::File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_quarantine_names() {
        let at = |n: u64| Some(UNIX_EPOCH + Duration::from_nanos(n));
        assert_eq!(
            stamp_of("foo.layer.1700000000123456789"),
            at(1_700_000_000_123_456_789)
        );
        assert_eq!(stamp_of("lost+found.42.file"), at(42));
        assert_eq!(stamp_of("no-stamp"), None);
        assert_eq!(stamp_of("x.12a"), None);
        assert_eq!(stamp_of("x."), None);
    }

    #[test]
    fn list_sizes_dates_and_orders_entries() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![], "no lost+found/ yet");
        let lf = dir.path().join(LOST_AND_FOUND);
        std::fs::create_dir(&lf).unwrap();
        std::fs::write(lf.join("b.20"), b"12345").unwrap();
        std::fs::write(lf.join("a.10"), b"1").unwrap();
        std::fs::create_dir(lf.join("d.15")).unwrap();
        std::fs::write(lf.join("d.15").join("inner"), b"123").unwrap();
        std::fs::write(lf.join("by-hand"), b"").unwrap();
        let got = list(dir.path()).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|q| q.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.10", "d.15", "b.20", "by-hand"]);
        assert_eq!(got.iter().map(|q| q.size).collect::<Vec<_>>(), [1, 3, 5, 0]);
        assert!(got[1].is_dir && !got[0].is_dir);
        let recent = SystemTime::now() - Duration::from_secs(3600);
        assert!(got[3].moved_at > recent, "dated by its change time");
        remove(&got[1]).unwrap();
        remove(&got[0]).unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 2);
    }
}
