//! A real SeaweedFS cluster under the page server (#13, brief section 8): one master with
//! replication 001, three volume servers, a filer with the S3 gateway, each its own process
//! (`scripts/seaweedfs cluster`). A soak of ingest, checkpoint, compaction and GC during which
//! one volume server is killed (SIGKILL) and later restarted, and the S3 gateway is killed,
//! kept down while the page server goes on ingesting and flushing, and restarted.
//!
//! Checked: nothing acknowledged is lost (every page version from the GC cutoff up to the last
//! acknowledged LSN reads back as the model says, before and after a `kill -9` and restart of
//! the page server); no object ever changes bytes (the history oracle, after every round the
//! gateway is up); uploads resume by themselves once the gateway is back (a checkpoint
//! acknowledges everything ingested, with no operator action); the integrity checker holds.
//!
//! Settings per seed (`CLUSTER_SOAK_SEED`): compaction threshold and output size, image
//! threshold, GC horizon, records per round, which volume server dies and when.
//! `CLUSTER_SOAK_ROUNDS` sets the rounds (default 16).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::Lsn;
use std::time::{Duration, Instant};
use test_runner::integrity::History;
use test_runner::remote::Remote;
use test_runner::server::{Pageserver, check_versions_between, lsn_of};
use test_support::Model;
use test_support::env_u64;
use test_support::workload::workload;

const KEYS: u128 = 24;

/// A checkpoint, retried until it acknowledges (the queue retries by itself; a checkpoint
/// gives up after 60 s of waiting). Fails after `limit`.
async fn checkpoint_until_acknowledged(ps: &Pageserver, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        match ps.checkpoint().await {
            Ok(info) => return info,
            Err(e) => {
                assert!(
                    started.elapsed() < limit,
                    "no checkpoint acknowledged within {limit:?}: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_a_volume_server_and_its_gateway_loses_nothing() {
    let seed = test_support::seed("CLUSTER_SOAK_SEED");
    let rounds = env_u64("CLUSTER_SOAK_ROUNDS").unwrap_or(16).max(8);
    let mut rng = test_support::Rng::new(seed);
    let threshold = 2 + rng.below(3);
    let target_kib = 16 + rng.below(48);
    let image_threshold = 1 + rng.below(3);
    let horizon = rng.below(300);
    let per_round = 20 + rng.below(40);
    let victim = format!("volume{}", 1 + rng.below(3));
    // The volume server is down for rounds [kill_at, revive_at); the gateway for
    // [gateway_down, gateway_up), after the volume server is back.
    let kill_at = 1 + rng.below(rounds / 4);
    let revive_at = kill_at + 2 + rng.below(2);
    let gateway_down = revive_at + 1 + rng.below(2);
    let gateway_up = gateway_down + 2;
    assert!(gateway_up < rounds);
    eprintln!(
        "cluster soak seed {seed} (reproduce with CLUSTER_SOAK_SEED={seed}): {rounds} rounds of {per_round} records; compaction_threshold {threshold}, compaction_target_size {target_kib} KiB, image_creation_threshold {image_threshold}, gc_horizon {horizon}; {victim} down in rounds {kill_at}..{revive_at}, the S3 gateway in {gateway_down}..{gateway_up}"
    );

    let cluster = test_support::seaweedfs::seaweedfs_cluster();
    let remote = Remote::s3_on(&cluster, "cluster-soak");
    let settings = [
        format!("compaction_threshold = {threshold}"),
        format!("compaction_target_size = {}", target_kib << 10),
        format!("image_creation_threshold = {image_threshold}"),
        format!("gc_horizon = {horizon}"),
        "compaction_period = \"1h\"".to_string(),
    ];
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::with_remote(dir.path(), &remote, &refs);
    ps.start(None).await;
    ps.setup().await.unwrap();

    let started = Instant::now();
    let mut model = Model::default();
    let mut history = History::default();
    let (mut lsn, mut acked) = (1u64, Lsn(0));
    let (mut compactions, mut removed, mut observed) = (0u64, 0u64, 0usize);
    let mut acked_while_volume_down = 0u64;
    let mut ingested_while_gateway_down = 0u64;
    for round in 0..rounds {
        if round == kill_at {
            cluster.kill(&victim).unwrap();
        }
        if round == revive_at {
            cluster.restart(&victim).unwrap();
        }
        if round == gateway_down {
            cluster.kill("filer").unwrap();
        }
        if round == gateway_up {
            cluster.restart("filer").unwrap();
        }
        let gateway = !(gateway_down..gateway_up).contains(&round);
        let recs = workload(&model, lsn, per_round, KEYS, round);
        ps.ingest(&recs).await.unwrap();
        model.add(&recs);
        lsn += per_round;
        if !gateway {
            // Flushes and compaction go on locally; uploads wait for the gateway.
            ingested_while_gateway_down += per_round;
            let _ = tokio::time::timeout(Duration::from_secs(5), ps.checkpoint()).await;
            ps.compact().await.unwrap();
            continue;
        }
        let info = checkpoint_until_acknowledged(&ps, Duration::from_secs(300)).await;
        let now = lsn_of(&info, "remote_consistent_lsn");
        assert_eq!(
            now,
            Lsn(lsn - 1),
            "everything ingested is acknowledged: {info}"
        );
        if (kill_at..revive_at).contains(&round) {
            acked_while_volume_down += 1;
        }
        acked = now;
        let r = ps.compact().await.unwrap();
        if r["outcome"] == "compacted" {
            compactions += 1;
        }
        let g = ps.gc().await.unwrap();
        removed += g["removed"].as_u64().unwrap();
        observed += history.observe(&remote).await.unwrap();
    }
    assert!(
        acked_while_volume_down > 0,
        "checkpoints were acknowledged while a volume server was down"
    );

    // Everything acknowledged reads back, the remote state is sound, and after a crash of the
    // page server too.
    assert!(ps.wait_uploads_idle(Duration::from_secs(120)).await);
    history.observe(&remote).await.unwrap();
    let integrity = ps.check_integrity(&remote).await.unwrap();
    let cutoff = lsn_of(&ps.info().await.unwrap(), "gc_cutoff_lsn");
    let reads = check_versions_between(&ps, &model, KEYS, cutoff, acked).await;
    ps.kill9();
    ps.start(None).await;
    let info = ps.info().await.unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), acked, "{info}");
    let reads_after = check_versions_between(&ps, &model, KEYS, cutoff, acked).await;
    history.observe(&remote).await.unwrap();
    ps.check_integrity(&remote).await.unwrap();
    test_support::report(&format!(
        "cluster soak: {rounds} rounds in {:.1} s on 5 SeaweedFS processes: {victim} killed and restarted, the S3 gateway killed and restarted ({ingested_while_gateway_down} records ingested while it was down, acknowledged after it came back); {acked_while_volume_down} checkpoints acknowledged with a volume server down; {compactions} compactions, {removed} layers removed by GC; {observed} object observations, none changed; {} layers in the final index; {reads} page versions read back before and {reads_after} after a kill -9 and restart",
        started.elapsed().as_secs_f64(),
        integrity.layers
    ));
    ps.check_log(&[
        "upload_layer failed",
        "upload_index failed",
        "delete failed",
        "retrying",
        "claim",
    ])
    .unwrap();
}
