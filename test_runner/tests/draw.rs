//! The layer map drawn as SVG (#16), on the real binaries: `GET .../layer_map.svg`,
//! `pagectl timeline draw` from the local directory and with `--remote` from the authoritative
//! index. Each drawing parses as XML and holds exactly one shape per layer of its source, an
//! image as a line and a delta as a rectangle, L0 and L1 told apart, the marks present. The
//! workload and thresholds are drawn per seed (`DRAW_SEED` replays).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::time::Duration;
use test_runner::server::{Pageserver, TENANT, TIMELINE, run_pagectl};
use test_support::Model;
use test_support::workload::workload;
use test_support::{Rng, seed};

/// Class of the shape drawing each layer, by layer name (as the SVG writes it).
fn shapes(svg: &str) -> BTreeMap<String, String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG parses");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut out = BTreeMap::new();
    for n in doc.descendants().filter(|n| n.has_attribute("data-layer")) {
        let class = format!(
            "{} {}",
            n.tag_name().name(),
            n.attribute("class").unwrap_or("")
        );
        let name = n.attribute("data-layer").unwrap().to_string();
        assert!(
            out.insert(name.clone(), class).is_none(),
            "{name} drawn twice"
        );
    }
    out
}

fn marks(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter_map(|n| n.attribute("class"))
        .filter(|c| c.starts_with("mark "))
        .map(str::to_string)
        .collect()
}

/// Strips the generation suffix of a layer file name: the SVG names layers.
fn layer_of(file: &str) -> String {
    file.rsplit_once('-').unwrap().0.to_string()
}

async fn server_svg(ps: &Pageserver) -> String {
    let body = ps
        .request(reqwest::Method::GET, &ps.tl("/layer_map.svg"), "")
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn pagectl(args: &[&str]) -> String {
    let (code, out) = run_pagectl(args, &[]);
    assert_eq!(code, 0, "pagectl {args:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_map_is_drawn_one_shape_per_layer() {
    let seed = seed("DRAW_SEED");
    let mut rng = Rng::new(seed);
    let keys = u128::from(rng.range(4, 40));
    let per_round = rng.range(20, 100);
    let rounds = rng.range(3, 7);
    let threshold = rng.range(2, 4);
    let rounds = rounds.max(threshold);
    eprintln!(
        "seed {seed}: {keys} keys, {rounds} rounds of {per_round}, compaction_threshold {threshold}"
    );
    let dir = tempfile::tempdir().unwrap();
    let threshold_cfg = format!("compaction_threshold = {threshold}");
    let cfg = [
        threshold_cfg.as_str(),
        "image_creation_threshold = 2",
        "compaction_period = \"1h\"",
        "gc_horizon = 10",
    ];
    let mut ps = Pageserver::new(&dir.path().join("ps"), &cfg);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let mut model = Model::default();
    let mut lsn = 1u64;
    for _ in 0..rounds {
        let recs = workload(&model, lsn, per_round, keys, lsn);
        ps.ingest(&recs).await.unwrap();
        model.add(&recs);
        lsn += per_round;
        ps.checkpoint().await.unwrap();
    }
    ps.compact().await.unwrap();
    // New L0s above the compacted ones, so that both levels are in the map.
    let recs = workload(&model, lsn, per_round, keys, lsn);
    ps.ingest(&recs).await.unwrap();
    ps.checkpoint().await.unwrap();
    // Both levels, before GC may remove the L1 layers that newer images cover.
    let before_gc = server_svg(&ps).await;
    let classes: Vec<String> = shapes(&before_gc).into_values().collect();
    assert!(classes.iter().any(|c| c.ends_with(" l0")), "{classes:?}");
    assert!(classes.iter().any(|c| c.ends_with(" l1")), "{classes:?}");
    ps.gc().await.unwrap();
    assert!(ps.wait_uploads_idle(Duration::from_secs(60)).await);

    // The server's drawing: one shape per layer of its map (names, sorted).
    let names: Vec<String> = ps.layer_names().await.unwrap();
    let svg = server_svg(&ps).await;
    let drawn = shapes(&svg);
    assert_eq!(
        drawn.keys().cloned().collect::<Vec<_>>(),
        names,
        "one shape per layer"
    );
    for (name, class) in &drawn {
        // An image's name ends in one LSN (16 digits), a delta's in a range.
        let is_image = name.split("__").nth(1).unwrap().len() == 16;
        let expected = if is_image {
            "line layer image"
        } else {
            "rect layer delta"
        };
        assert!(class.starts_with(expected), "{name}: {class}");
    }
    assert!(marks(&svg).contains(&"mark remote".to_string()));

    // From the authoritative index: the same layers and levels, both marks.
    let workdir = ps.workdir.to_str().unwrap().to_string();
    let remote_svg = pagectl(&[
        "timeline",
        "draw",
        TENANT,
        TIMELINE,
        "--remote",
        "--workdir",
        &workdir,
    ]);
    assert_eq!(
        shapes(&remote_svg),
        drawn,
        "the index holds the server's layer map"
    );
    let m = marks(&remote_svg);
    assert!(m.contains(&"mark remote".to_string()), "{m:?}");
    let gc_cutoff = ps.info().await.unwrap()["gc_cutoff_lsn"].clone();
    if gc_cutoff.as_str().is_some_and(|s| s != "0/0") {
        assert!(
            m.contains(&"mark gc".to_string()),
            "{m:?} with cutoff {gc_cutoff}"
        );
    }

    // From the local files: one shape per layer file in the directory.
    let local: Vec<String> = std::fs::read_dir(ps.timeline_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .filter(|n| n.contains("__") && !n.ends_with(".___temp"))
        .map(|n| layer_of(&n))
        .collect();
    let local_svg = pagectl(&["timeline", "draw", TENANT, TIMELINE, "--workdir", &workdir]);
    let local_drawn = shapes(&local_svg);
    let mut local_sorted = local.clone();
    local_sorted.sort();
    assert_eq!(
        local_drawn.keys().cloned().collect::<Vec<_>>(),
        local_sorted
    );
    ps.check_log(&[]).unwrap();
}
