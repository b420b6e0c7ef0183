//! The suite summary: the counts a suite covered, printed at the end of `scripts/test`.

/// Prints a suite's summary line and, when `PAGESERVER_TEST_REPORT` names a file (as
/// `scripts/test` does), appends it there, so that the counts of every suite appear at the end
/// of a run even though `cargo test` hides the output of passing tests.
pub fn report(line: &str) {
    println!("{line}");
    if let Ok(path) = std::env::var("PAGESERVER_TEST_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
