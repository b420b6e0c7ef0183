//! `pagectl scrub` and `pagectl purge-garbage` (#16) on the real binaries, on the local backend
//! and on SeaweedFS.
//!
//! A tenant written by two attachments (generations 1 and 2) scrubs clean. Then a bucket with a
//! planted orphan (an older generation's copy of a layer), a missing referenced layer and a
//! corrupted one (same size, other bytes): scrub names each and exits 1. Purge in a dry run
//! changes nothing; the damaged objects are put back; `--delete`, run while the server ingests,
//! removes exactly the garbage scrub listed; the tenant then attaches again and reads back every
//! acknowledged page. Sizes, rounds and the kept index versions are drawn per seed
//! (`SCRUB_SEED` replays a run).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use bytes::Bytes;
use layer_format::Lsn;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;
use test_runner::remote::{Backend, Remote};
use test_runner::server::{Pageserver, TENANT, TIMELINE, lsn_of, pagectl_bin, run_pagectl};
use test_support::Model;
use test_support::workload::workload;
use test_support::{Rng, seed};

test_runner::test_on_each_backend!(scrub_and_purge => scrub_and_purge_local, scrub_and_purge_s3);

/// Runs pagectl with `args` against `remote`; returns exit code and standard output.
fn pagectl(remote: &Remote, workdir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let (common, env) = remote.pagectl_args(workdir);
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(common.iter().map(String::as_str))
        .collect();
    run_pagectl(&all, &env)
}

/// `(kind, object)` of every problem in a scrub's JSON report.
fn problems(report: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |list: &Json| {
        for p in list.as_array().unwrap() {
            out.push((
                p["kind"].as_str().unwrap().to_string(),
                p["object"].as_str().unwrap().to_string(),
            ));
        }
    };
    add(&report["problems"]);
    for t in report["tenants"].as_array().unwrap() {
        add(&t["problems"]);
        for tl in t["timelines"].as_array().unwrap() {
            add(&tl["problems"]);
        }
    }
    out
}

fn garbage(report: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for t in report["tenants"].as_array().unwrap() {
        for tl in t["timelines"].as_array().unwrap() {
            for g in tl["garbage"].as_array().unwrap() {
                out.push(g["object"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

async fn snapshot(remote: &Remote) -> BTreeMap<String, u64> {
    remote.list_sized("").await.unwrap().into_iter().collect()
}

async fn scrub_and_purge(backend: Backend) {
    let seed = seed("SCRUB_SEED");
    let mut rng = Rng::new(seed);
    let keys = u128::from(rng.range(4, 40));
    let per_round = rng.range(20, 120);
    let rounds = rng.range(2, 5);
    let keep = rng.range(0, 4) as usize;
    eprintln!(
        "seed {seed} ({backend:?}): {keys} keys, {rounds} rounds of {per_round} records, keep {keep} index versions"
    );
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::new(backend, dir.path(), "scrub");
    let cfg = [
        "compaction_period = \"1h\"",
        "image_creation_threshold = 1000",
    ];
    let mut ps = Pageserver::with_remote(&dir.path().join("ps"), &remote, &cfg);
    let wd = ps.workdir.clone();
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut model = Model::default();
    let mut lsn = 1u64;
    let ingest_round = async |ps: &Pageserver, model: &mut Model, lsn: &mut u64| {
        let recs = workload(model, *lsn, per_round, keys, *lsn);
        ps.ingest(&recs).await.unwrap();
        model.add(&recs);
        *lsn += per_round;
        ps.checkpoint().await.unwrap();
    };
    for _ in 0..rounds {
        ingest_round(&ps, &mut model, &mut lsn).await;
    }
    // A second attachment: generation 2, whose index references generation 1's layers.
    ps.tenant_action(TENANT, "detach").await.unwrap();
    ps.tenant_action(TENANT, "attach").await.unwrap();
    for _ in 0..rounds {
        ingest_round(&ps, &mut model, &mut lsn).await;
    }
    assert!(ps.wait_uploads_idle(Duration::from_secs(60)).await);

    // Clean: nothing wrong (old index versions are garbage, not problems).
    let keep_arg = keep.to_string();
    let scrub_args = [
        "scrub",
        "--json",
        "--verify-checksums",
        "--keep-index-versions",
        &keep_arg,
    ];
    let (code, out) = pagectl(&remote, &wd, &scrub_args);
    let report: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(problems(&report), vec![], "a healthy bucket");
    assert_eq!(code, 0);
    assert!(report["summary"]["checksums_verified"].as_u64().unwrap() > 0);

    // The same settings from a named file (--config) instead of -c: the same verdict. And a
    // missing file or work directory: exit 2.
    let conf = dir.path().join("elsewhere.toml");
    std::fs::write(&conf, &remote.config).unwrap();
    let from_file = std::process::Command::new(pagectl_bin())
        .args([
            "scrub",
            "--json",
            "--workdir",
            wd.to_str().unwrap(),
            "--config",
        ])
        .arg(&conf)
        .envs(remote.env.clone())
        .output()
        .unwrap();
    assert_eq!(from_file.status.code(), Some(0));
    let again: Json = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(
        again["summary"]["layers_referenced"],
        report["summary"]["layers_referenced"]
    );
    for bad in [
        vec!["scrub", "--config", "/nonexistent/pageserver.toml"],
        vec!["scrub", "--workdir", "/nonexistent/workdir"],
    ] {
        let out = std::process::Command::new(pagectl_bin())
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }

    // Plant: an orphan (a generation-2 layer copied under generation 1), a missing layer and a
    // corrupted one (same size, one byte flipped).
    let prefix = format!("tenants/{TENANT}/timelines/{TIMELINE}/");
    let layers: Vec<(String, u64)> = remote
        .list_sized(&prefix)
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.contains("index_part.json"))
        .collect();
    let gen2: Vec<&(String, u64)> = layers
        .iter()
        .filter(|(k, _)| k.ends_with("-00000002"))
        .collect();
    assert!(gen2.len() >= 2 && layers.len() >= 3, "{layers:?}");
    let source = &rng.pick(&gen2).0;
    let orphan = format!("{}-00000001", source.strip_suffix("-00000002").unwrap());
    remote
        .put(&orphan, remote.get(source).await.unwrap().unwrap())
        .await
        .unwrap();
    let others: Vec<&String> = layers
        .iter()
        .map(|(k, _)| k)
        .filter(|k| *k != source)
        .collect();
    let missing = others[rng.below(others.len() as u64) as usize].clone();
    let corrupt = others
        .iter()
        .find(|k| ***k != missing)
        .map(|k| (*k).clone())
        .unwrap();
    let missing_bytes = remote.get(&missing).await.unwrap().unwrap();
    remote.delete(&missing).await.unwrap();
    let corrupt_bytes = remote.get(&corrupt).await.unwrap().unwrap();
    let mut damaged = corrupt_bytes.to_vec();
    let at = rng.below(damaged.len() as u64) as usize;
    damaged[at] ^= 0x40;
    remote.delete(&corrupt).await.unwrap();
    remote.put(&corrupt, Bytes::from(damaged)).await.unwrap();

    let (code, out) = pagectl(&remote, &wd, &scrub_args);
    assert_eq!(code, 1, "problems found");
    let report: Json = serde_json::from_str(&out).unwrap();
    let found = problems(&report);
    for expected in [
        ("orphan", &orphan),
        ("missing", &missing),
        ("bad_checksum", &corrupt),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1.clone())),
            "{expected:?} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 3, "{found:?}");
    let to_purge = garbage(&report);
    assert!(to_purge.contains(&orphan), "{to_purge:?}");
    // The human form names them too.
    let (code, text) = pagectl(&remote, &wd, &["scrub", "--verify-checksums"]);
    assert_eq!(code, 1);
    for o in [&orphan, &missing, &corrupt] {
        assert!(text.contains(o.as_str()), "{o} not in the text report");
    }

    // A dry run changes nothing.
    let before = snapshot(&remote).await;
    let (code, _) = pagectl(
        &remote,
        &wd,
        &["purge-garbage", "--keep-index-versions", &keep_arg],
    );
    assert_eq!(code, 0);
    assert_eq!(snapshot(&remote).await, before, "a dry run deletes nothing");

    // Put the damaged objects back, then purge for real while the server ingests.
    remote.put(&missing, missing_bytes).await.unwrap();
    remote.delete(&corrupt).await.unwrap();
    remote.put(&corrupt, corrupt_bytes).await.unwrap();
    let before = snapshot(&remote).await;
    let writer = async {
        for _ in 0..2 {
            ingest_round(&ps, &mut model, &mut lsn).await;
        }
    };
    let purge_args = [
        "purge-garbage",
        "--delete",
        "--json",
        "--keep-index-versions",
        &keep_arg,
    ];
    let purge = tokio::task::spawn_blocking({
        let (remote, wd) = (remote.clone(), wd.clone());
        let args: Vec<String> = purge_args.iter().map(|s| s.to_string()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            pagectl(&remote, &wd, &args)
        }
    });
    writer.await;
    let (code, out) = purge.await.unwrap();
    assert_eq!(code, 0);
    let outcome: Json = serde_json::from_str(&out).unwrap();
    let deleted: Vec<String> = outcome["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    assert!(deleted.contains(&orphan), "{deleted:?}");
    // Layers: exactly what scrub listed. Index versions: at least those (the server uploads
    // more while purge runs, which pushes more old versions past the kept count).
    let (deleted_idx, deleted_layers): (Vec<&String>, Vec<&String>) =
        deleted.iter().partition(|k| k.contains("index_part.json"));
    let (listed_idx, listed_layers): (Vec<&String>, Vec<&String>) =
        to_purge.iter().partition(|k| k.contains("index_part.json"));
    assert_eq!(
        deleted_layers, listed_layers,
        "purge deletes the layers scrub listed, no more"
    );
    assert!(
        listed_idx.iter().all(|k| deleted_idx.contains(k)),
        "{deleted_idx:?}"
    );
    // Versions uploaded while purge ran may already be old enough to go; every one deleted is
    // below the newest (names sort as their generation and sequence do).
    let left = remote
        .list(&format!("{prefix}index_part.json"))
        .await
        .unwrap();
    let newest = left.iter().max().unwrap();
    assert!(
        deleted_idx.iter().all(|k| k.as_str() < newest.as_str()),
        "{deleted_idx:?} vs newest {newest}"
    );
    assert!(
        left.len() > keep,
        "{} index versions left, keep {keep}",
        left.len()
    );
    let after = snapshot(&remote).await;
    for (key, size) in &before {
        if deleted.contains(key) {
            assert!(!after.contains_key(key), "{key} still there");
        } else {
            // Compaction and GC do not run here: nothing else may go or change.
            assert_eq!(after.get(key), Some(size), "{key} changed or vanished");
        }
    }
    assert!(ps.wait_uploads_idle(Duration::from_secs(60)).await);
    let acked = lsn_of(&ps.info().await.unwrap(), "remote_consistent_lsn");

    // The tenant attaches again (generation 3) and reads back every acknowledged page.
    ps.tenant_action(TENANT, "detach").await.unwrap();
    ps.tenant_action(TENANT, "attach").await.unwrap();
    let lsns: Vec<u64> = (1..lsn)
        .step_by(rng.range(1, 9) as usize)
        .chain([acked.0])
        .collect();
    test_runner::server::check_pages(&ps, &model, keys, &lsns).await;
    assert_eq!(acked, Lsn(lsn - 1), "every ingested record acknowledged");
    let (code, out) = pagectl(&remote, &wd, &scrub_args);
    let report: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(problems(&report), vec![], "clean after the purge");
    assert_eq!(code, 0);
    ps.check_log(&[]).unwrap();
}
