//! `pagectl lost-found list|clean`: the quarantined files of a work directory's timelines.

use super::{Outcome, Status};
use crate::timeline::lost_found::{self, Quarantined};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn collect(workdir: &Path) -> Result<Vec<Quarantined>, Outcome> {
    let unreadable = |e: std::io::Error| Outcome {
        report: format!("error: read {}: {e}\n", workdir.display()),
        status: Status::Unreadable,
    };
    if !workdir.is_dir() {
        return Err(Outcome {
            report: format!(
                "error: --workdir {}: no such directory\n",
                workdir.display()
            ),
            status: Status::Unreadable,
        });
    }
    let mut all = Vec::new();
    for (_, _, dir) in lost_found::timeline_dirs(workdir).map_err(unreadable)? {
        all.extend(lost_found::list(&dir).map_err(unreadable)?);
    }
    Ok(all)
}

fn line(out: &mut String, verb: &str, q: &Quarantined, now: SystemTime) {
    let age = now.duration_since(q.moved_at).unwrap_or_default();
    let _ = writeln!(
        out,
        "{verb}{} {} bytes, moved {} ago{}",
        q.path.display(),
        q.size,
        humantime::format_duration(Duration::from_secs(age.as_secs())),
        if q.is_dir { " (directory)" } else { "" }
    );
}

/// `pagectl lost-found list`: every entry, oldest first, and the totals.
pub fn list_lost_found(workdir: &Path) -> Outcome {
    let all = match collect(workdir) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let now = SystemTime::now();
    let mut out = String::new();
    for q in &all {
        line(&mut out, "", q, now);
    }
    let bytes: u64 = all.iter().map(|q| q.size).sum();
    let _ = writeln!(out, "lost+found: {} entries, {bytes} bytes", all.len());
    Outcome::valid(out)
}

/// `pagectl lost-found clean --older-than D`: removes the entries moved in more than `age`
/// ago (durably), lists them and what is left.
pub fn clean_lost_found(workdir: &Path, age: Duration) -> Outcome {
    let all = match collect(workdir) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let now = SystemTime::now();
    let mut out = String::new();
    let (mut removed, mut bytes, mut kept) = (0usize, 0u64, 0usize);
    for q in &all {
        if now.duration_since(q.moved_at).unwrap_or_default() <= age {
            kept += 1;
            continue;
        }
        if let Err(e) = lost_found::remove(q) {
            let _ = writeln!(out, "error: remove {}: {e}", q.path.display());
            return Outcome {
                report: out,
                status: Status::Unreadable,
            };
        }
        line(&mut out, "removed ", q, now);
        removed += 1;
        bytes += q.size;
    }
    let _ = writeln!(
        out,
        "lost+found: removed {removed} entries ({bytes} bytes) moved more than {} ago; {kept} kept",
        humantime::format_duration(age)
    );
    Outcome::valid(out)
}
