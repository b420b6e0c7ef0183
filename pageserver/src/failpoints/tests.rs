//! The table checked against the sources and the documentation.

use super::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(file, name)` of every failpoint call site in the product's sources.
fn call_sites() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    for dir in ["layer-format/src", "pageserver/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for marker in ["fail_point!(\"", "io_failpoint!(\""] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let name = &rest[..rest.find('"').unwrap()];
                out.insert((rel.clone(), name.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_table_names_exactly_the_failpoints_that_exist_each_where_it_fires() {
    let names: BTreeSet<&str> = FAILPOINTS.iter().map(|f| f.name).collect();
    assert_eq!(names.len(), FAILPOINTS.len(), "a name twice");
    let table: BTreeSet<(String, String)> = FAILPOINTS
        .iter()
        .map(|f| (f.file.to_string(), f.name.to_string()))
        .collect();
    assert_eq!(call_sites(), table);
    assert_eq!(
        find("layer-fsync").map(|f| f.file),
        Some("layer-format/src/durable/temp.rs")
    );
    assert_eq!(find("no-such-failpoint"), None);
}

#[test]
fn the_documentation_names_every_failpoint() {
    let doc = std::fs::read_to_string(root().join("docs/crash-consistency.md")).unwrap();
    for f in FAILPOINTS {
        assert!(
            doc.contains(&format!("`{}`", f.name)),
            "{} not in crash-consistency.md",
            f.name
        );
    }
}
