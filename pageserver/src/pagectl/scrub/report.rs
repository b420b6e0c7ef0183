//! The human form of a scrub report (the JSON form is the report serialized).

use super::judge::Problem;
use super::{PurgeOutcome, ScrubReport};
use std::fmt::Write as _;

fn problem_line(out: &mut String, indent: &str, p: &Problem) {
    let _ = writeln!(
        out,
        "{indent}PROBLEM {}: {} ({})",
        p.kind, p.object, p.detail
    );
}

/// The report as text: one block per tenant and timeline, problems first, then a summary.
pub fn render_text(report: &ScrubReport) -> String {
    let mut out = String::new();
    for p in &report.problems {
        problem_line(&mut out, "", p);
    }
    for t in &report.tenants {
        let unused = if t.generations_without_objects.is_empty() {
            String::new()
        } else {
            format!(
                " ({} with no object stored: {})",
                t.generations_without_objects.len(),
                t.generations_without_objects.join(", ")
            )
        };
        let _ = writeln!(
            out,
            "tenant {}: current generation {}, {} claims{unused}",
            t.tenant_id,
            t.current_generation.as_deref().unwrap_or("none"),
            t.generations_claimed
        );
        for p in &t.problems {
            problem_line(&mut out, "  ", p);
        }
        for tl in &t.timelines {
            let v = &tl.verdict;
            let _ = writeln!(
                out,
                "  timeline {}: index {}, {} layers ({} bytes), {} index versions",
                tl.timeline_id,
                v.authoritative_index
                    .as_deref()
                    .and_then(|i| i.rsplit('/').next())
                    .unwrap_or("none"),
                v.layers_referenced,
                v.bytes_referenced,
                v.index_versions
            );
            for p in &v.problems {
                problem_line(&mut out, "    ", p);
            }
            for g in &v.garbage {
                let _ = writeln!(
                    out,
                    "    garbage: {} ({} bytes): {}",
                    g.object, g.size, g.reason
                );
            }
            for k in &v.kept {
                let _ = writeln!(out, "    kept: {}: {}", k.object, k.reason);
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "summary: {} tenants, {} timelines, {} objects, {} layers referenced ({} bytes), {} checksums verified; {} problems; {} garbage objects ({} bytes); {} unreferenced kept",
        s.tenants,
        s.timelines,
        s.objects,
        s.layers_referenced,
        s.bytes_referenced,
        s.checksums_verified,
        s.problems,
        s.garbage_objects,
        s.garbage_bytes,
        s.kept_objects
    );
    out
}

/// What purge did, as text.
pub fn render_purge(outcome: &PurgeOutcome) -> String {
    let mut out = String::new();
    let verb = if outcome.deleted {
        "deleted"
    } else {
        "would delete"
    };
    for o in &outcome.objects {
        let _ = writeln!(out, "{verb} {o}");
    }
    for t in &outcome.skipped_tenants {
        let _ = writeln!(
            out,
            "skipped tenant {t}: its claims changed since the scrub; run purge again"
        );
    }
    let _ = writeln!(
        out,
        "purge: {verb} {} objects ({} bytes){}",
        outcome.objects.len(),
        outcome.bytes,
        if outcome.deleted {
            ""
        } else {
            "; dry run, pass --delete to delete"
        }
    );
    out
}
