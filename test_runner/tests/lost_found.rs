//! `lost+found/` housekeeping (#16) on the real binaries: stray files quarantined at start-up
//! show in `pageserver_lost_found{unit="files"|"bytes"}` and in `pagectl lost-found list`;
//! `pagectl lost-found clean --older-than D` removes only the entries moved in more than D ago,
//! and the next scrape reports what is left. The stray files' count and sizes are drawn per
//! seed (`LOST_FOUND_SEED` replays).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use test_runner::server::{Pageserver, run_pagectl};
use test_support::{Rng, seed};

fn pagectl(args: &[&str]) -> (i32, String) {
    run_pagectl(args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_files_are_measured_listed_and_cleaned() {
    let seed = seed("LOST_FOUND_SEED");
    let mut rng = Rng::new(seed);
    let strays: Vec<(String, Vec<u8>)> = (0..rng.range(1, 6))
        .map(|i| (format!("stray-{i}"), rng.bytes(0, 5000)))
        .collect();
    eprintln!(
        "seed {seed}: stray sizes {:?}",
        strays.iter().map(|s| s.1.len()).collect::<Vec<_>>()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(&dir.path().join("ps"), &[]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    assert_eq!(
        ps.metric("pageserver_lost_found{unit=\"files\"}").await,
        0.0
    );
    ps.signal("TERM");
    assert_eq!(
        ps.wait_exit(std::time::Duration::from_secs(60)).await,
        Some(0)
    );
    for (name, bytes) in &strays {
        std::fs::write(ps.timeline_dir().join(name), bytes).unwrap();
    }
    ps.start(None).await;
    let total: usize = strays.iter().map(|s| s.1.len()).sum();
    let files = ps.metric("pageserver_lost_found{unit=\"files\"}").await;
    let bytes = ps.metric("pageserver_lost_found{unit=\"bytes\"}").await;
    assert_eq!((files, bytes), (strays.len() as f64, total as f64));

    let workdir = ps.workdir.to_str().unwrap().to_string();
    let (code, out) = pagectl(&["lost-found", "list", "--workdir", &workdir]);
    assert_eq!(code, 0);
    for (name, bytes) in &strays {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("/lost+found/{name}."))
                    && l.contains(&format!(" {} bytes", bytes.len()))),
            "{name} not listed"
        );
    }
    assert!(out.contains(&format!(
        "lost+found: {} entries, {total} bytes",
        strays.len()
    )));

    // An entry moved in long ago (its name carries the stamp of the move): only it goes.
    let old = ps
        .timeline_dir()
        .join("lost+found")
        .join("ancient.layer.1000000000");
    std::fs::write(&old, b"old").unwrap();
    let (code, out) = pagectl(&[
        "lost-found",
        "clean",
        "--workdir",
        &workdir,
        "--older-than",
        "1d",
    ]);
    assert_eq!(code, 0);
    assert!(!old.exists(), "the old entry is removed");
    assert!(
        out.contains(&format!(
            "removed 1 entries (3 bytes) moved more than 1day ago; {} kept",
            strays.len()
        )),
        "{out}"
    );
    assert_eq!(
        ps.metric("pageserver_lost_found{unit=\"files\"}").await,
        strays.len() as f64
    );

    let clean = |age: &str| {
        let args = [
            "lost-found",
            "clean",
            "--workdir",
            &workdir,
            "--older-than",
            age,
        ];
        pagectl(&args).0
    };
    // Bad input: exit 2, nothing removed.
    assert_eq!(clean("soon"), 2);
    let (code, _) = pagectl(&["lost-found", "list", "--workdir", "/nonexistent/workdir"]);
    assert_eq!(code, 2);
    assert_eq!(
        ps.metric("pageserver_lost_found{unit=\"files\"}").await,
        strays.len() as f64,
        "nothing removed by the refused commands"
    );

    assert_eq!(clean("0s"), 0);
    assert_eq!(
        ps.metric("pageserver_lost_found{unit=\"files\"}").await,
        0.0
    );
    assert_eq!(
        ps.metric("pageserver_lost_found{unit=\"bytes\"}").await,
        0.0
    );
    ps.check_log(&["moved an unrecognised file to lost+found"])
        .unwrap();
}
