//! Broken timelines and tenants, and the start-up rules (#13; brief section 6), on the real
//! binary.
//!
//! * A panic in one timeline's work (here: failpoint `layer-map-install=1*panic`, a panic
//!   while the layer map is being changed, as the checkpoint after an ingest at the top LSN
//!   did) poisoned the layer lock: every later request that touched that timeline, and every
//!   `GET /v1/tenant`, dropped its connection. Now that timeline is broken (409 with its reason,
//!   `state: "Broken"` in its info, a metric) and everything else serves; a reset repairs it.
//! * One tenant whose index cannot be read aborted the whole start-up. Now it is broken and the
//!   others serve.
//! * A restart claimed a new generation for every local tenant, taking a tenant back from the
//!   node it had moved to. Now a node re-attaches only if its own claim is still the highest.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use layer_format::{Key, Lsn};
use pageserver::timeline::Record;
use reqwest::Method;
use test_runner::remote::{Backend, Remote};
use test_runner::server::{Pageserver, TENANT, TIMELINE, lsn_of};
use test_support::model::ingest_body as encode_ingest;

const OTHER_TIMELINE: &str = "11111111111111111111111111111111";
const OTHER_TENANT: &str = "22222222222222222222222222222222";

fn records(first_lsn: u64, n: u64, byte: u8) -> Vec<Record> {
    test_support::workload::byte_deltas(first_lsn, n, 7, byte)
}

async fn create(ps: &Pageserver, tenant: &str, timeline: &str) {
    let _ = ps
        .json(
            Method::POST,
            "/v1/tenant",
            format!("{{\"tenant_id\":\"{tenant}\"}}"),
        )
        .await;
    ps.json(
        Method::POST,
        &format!("/v1/tenant/{tenant}/timeline"),
        format!("{{\"timeline_id\":\"{timeline}\"}}"),
    )
    .await
    .unwrap();
}

fn tl(tenant: &str, timeline: &str, rest: &str) -> String {
    format!("/v1/tenant/{tenant}/timeline/{timeline}{rest}")
}

async fn ingest(ps: &Pageserver, tenant: &str, timeline: &str, recs: &[Record]) {
    ps.json(
        Method::POST,
        &tl(tenant, timeline, "/ingest"),
        encode_ingest(recs),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_timeline_breaks_only_that_timeline() {
    // Batch sizes per seed; `checkpoint_distance` stays at its default so that no background
    // flush (of another timeline) meets the one-shot failpoint.
    let seed = test_support::seed("BROKEN_SEED");
    let first = 1 + seed % 40;
    let second = 7 + (seed / 40) % 24;
    let total = first + second;
    eprintln!("broken seed {seed} (BROKEN_SEED): {first} then {second} records per timeline");
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    create(&ps, TENANT, TIMELINE).await;
    create(&ps, TENANT, OTHER_TIMELINE).await;
    create(&ps, OTHER_TENANT, TIMELINE).await;
    for (t, l) in [
        (TENANT, TIMELINE),
        (TENANT, OTHER_TIMELINE),
        (OTHER_TENANT, TIMELINE),
    ] {
        ingest(&ps, t, l, &records(1, first, b'a')).await;
    }

    // The next change of a layer map panics while the map's lock is held.
    ps.failpoint("layer-map-install", "1*panic").await.unwrap();
    let err = ps
        .request(Method::PUT, &tl(TENANT, TIMELINE, "/checkpoint"), "")
        .await
        .unwrap_err();
    assert_eq!(err.status, 500, "{err:?}");
    assert!(err.body.contains("panicked"), "{err:?}");

    // The node serves: the tenant list, the broken timeline's info with its reason.
    let list = ps.json(Method::GET, "/v1/tenant", "").await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let t = ps
        .json(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await
        .unwrap();
    assert_eq!(t["broken_timelines"], serde_json::json!([TIMELINE]), "{t}");
    let info = ps
        .json(Method::GET, &tl(TENANT, TIMELINE, ""), "")
        .await
        .unwrap();
    assert_eq!(info["state"], "Broken", "{info}");
    assert!(
        info["broken_reason"].as_str().unwrap().contains("panicked"),
        "{info}"
    );
    assert_eq!(ps.metric("pageserver_broken{kind=\"timeline\"}").await, 1.0);
    assert_eq!(
        ps.metric("pageserver_broken_total{kind=\"timeline\"}")
            .await,
        1.0
    );

    // The broken timeline refuses data requests with 409 and its reason.
    for (method, path, body) in [
        (
            Method::POST,
            tl(TENANT, TIMELINE, "/ingest"),
            encode_ingest(&records(21, 1, b'b')),
        ),
        (
            Method::GET,
            tl(
                TENANT,
                TIMELINE,
                &format!("/page?key={}&lsn=0/5", Key::from_u128(1)),
            ),
            Default::default(),
        ),
        (
            Method::PUT,
            tl(TENANT, TIMELINE, "/checkpoint"),
            Default::default(),
        ),
        (
            Method::PUT,
            tl(TENANT, TIMELINE, "/compact"),
            Default::default(),
        ),
        (Method::PUT, tl(TENANT, TIMELINE, "/gc"), Default::default()),
    ] {
        let err = ps.request(method, &path, body).await.unwrap_err();
        assert_eq!(err.status, 409, "{path}: {err:?}");
        assert!(err.body.contains("broken"), "{path}: {err:?}");
    }

    // Its sibling and the other tenant ingest, checkpoint and read.
    for (t, l) in [(TENANT, OTHER_TIMELINE), (OTHER_TENANT, TIMELINE)] {
        ingest(&ps, t, l, &records(first + 1, second, b'c')).await;
        let info = ps
            .json(Method::PUT, &tl(t, l, "/checkpoint"), "")
            .await
            .unwrap();
        assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(total), "{info}");
        let page = ps
            .request(
                Method::GET,
                &tl(
                    t,
                    l,
                    &format!("/page?key={}&lsn={}", Key::from_u128(2), Lsn(total)),
                ),
                "",
            )
            .await
            .unwrap();
        assert_eq!(page[0], b'c');
    }

    // A reset loads the broken timeline again from its index; the storage node resends.
    let t = ps.tenant_action(TENANT, "reset").await.unwrap();
    assert_eq!(t["broken_timelines"], serde_json::json!([]), "{t}");
    let info = ps
        .json(Method::GET, &tl(TENANT, TIMELINE, ""), "")
        .await
        .unwrap();
    assert_eq!(info["state"], "Active", "{info}");
    let resend_from = lsn_of(&info, "last_record_lsn").0 + 1;
    ingest(
        &ps,
        TENANT,
        TIMELINE,
        &records(resend_from, total - resend_from + 1, b'd'),
    )
    .await;
    let info = ps
        .json(Method::PUT, &tl(TENANT, TIMELINE, "/checkpoint"), "")
        .await
        .unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(total), "{info}");
    assert_eq!(ps.metric("pageserver_broken{kind=\"timeline\"}").await, 0.0);
    ps.check_log(&["panicked", "broken", "request failed"])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_fails_to_load_is_broken_and_the_others_serve() {
    let seed = test_support::seed("BROKEN_SEED");
    let n = 4 + seed % 60;
    eprintln!("broken seed {seed} (BROKEN_SEED): {n} records per tenant");
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &["compaction_period = \"1h\""]);
    ps.start(None).await;
    create(&ps, TENANT, TIMELINE).await;
    create(&ps, OTHER_TENANT, TIMELINE).await;
    for t in [TENANT, OTHER_TENANT] {
        ingest(&ps, t, TIMELINE, &records(1, n, b'a')).await;
        ps.json(Method::PUT, &tl(t, TIMELINE, "/checkpoint"), "")
            .await
            .unwrap();
    }
    ps.kill9();

    // Every index version of the first tenant's timeline is damaged in remote storage.
    let tl_dir = ps
        .remote_root()
        .join("tenants")
        .join(TENANT)
        .join("timelines")
        .join(TIMELINE);
    let mut damaged = 0;
    for e in std::fs::read_dir(&tl_dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("index_part.json")
        {
            std::fs::write(&p, b"{ not json").unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);

    ps.start(None).await;
    let t = ps
        .json(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await
        .unwrap();
    assert_eq!(t["state"], "Broken", "{t}");
    assert!(
        t["broken_reason"].as_str().unwrap().contains("index"),
        "{t}"
    );
    let err = ps
        .request(Method::GET, &tl(TENANT, TIMELINE, ""), "")
        .await
        .unwrap_err();
    assert_eq!(err.status, 409, "{err:?}");
    assert_eq!(ps.metric("pageserver_broken{kind=\"tenant\"}").await, 1.0);
    assert_eq!(
        ps.metric("pageserver_startup_tenants_total{outcome=\"broken\"}")
            .await,
        1.0
    );

    // The other tenant serves every acknowledged page.
    let page = ps
        .request(
            Method::GET,
            &tl(
                OTHER_TENANT,
                TIMELINE,
                &format!("/page?key={}&lsn={}", Key::from_u128(3), Lsn(n)),
            ),
            "",
        )
        .await
        .unwrap();
    assert_eq!(page[0], b'a');
    let list = ps.json(Method::GET, "/v1/tenant", "").await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // The operator's remedy: detach the broken tenant; the node goes on.
    ps.tenant_action(TENANT, "detach").await.unwrap();
    assert_eq!(ps.metric("pageserver_broken{kind=\"tenant\"}").await, 0.0);
    ps.check_log(&["broken", "request failed"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_take_back_a_tenant_that_moved() {
    let shared = tempfile::tempdir().unwrap();
    let remote = Remote::new(Backend::Local, shared.path(), "moved");
    let cfg = ["compaction_period = \"1h\""];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ps1 = Pageserver::with_remote(d1.path(), &remote, &cfg);
    let mut ps2 = Pageserver::with_remote(d2.path(), &remote, &cfg);

    ps1.start(None).await;
    create(&ps1, TENANT, TIMELINE).await;
    create(&ps1, OTHER_TENANT, TIMELINE).await;
    ingest(&ps1, TENANT, TIMELINE, &records(1, 20, b'a')).await;
    ps1.json(Method::PUT, &tl(TENANT, TIMELINE, "/checkpoint"), "")
        .await
        .unwrap();
    // A restart of the same node re-attaches both (its own claims are the highest).
    ps1.kill9();
    ps1.start(None).await;
    let t = ps1
        .json(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await
        .unwrap();
    assert_eq!(t["generation"], 2, "{t}");
    ps1.kill9();

    // The tenant moves to the second node (generation 3), which acknowledges more.
    ps2.start(None).await;
    let t = ps2.tenant_action(TENANT, "attach").await.unwrap();
    assert_eq!(t["generation"], 3, "{t}");
    ingest(&ps2, TENANT, TIMELINE, &records(21, 10, b'b')).await;
    ps2.json(Method::PUT, &tl(TENANT, TIMELINE, "/checkpoint"), "")
        .await
        .unwrap();

    // The first node restarts: it keeps its other tenant and leaves the moved one alone.
    ps1.start(None).await;
    let err = ps1
        .request(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await
        .unwrap_err();
    assert_eq!(err.status, 404, "{err:?}");
    assert!(!d1.path().join("tenants").join(TENANT).exists());
    let other = ps1
        .json(Method::GET, &format!("/v1/tenant/{OTHER_TENANT}"), "")
        .await
        .unwrap();
    assert_eq!(other["state"], "Active", "{other}");
    assert_eq!(
        ps1.metric("pageserver_startup_tenants_total{outcome=\"moved\"}")
            .await,
        1.0
    );
    let claims = remote
        .list(&format!("tenants/{TENANT}/generations/"))
        .await
        .unwrap();
    assert_eq!(claims.len(), 3, "no claim after the move: {claims:?}");

    // The second node still acknowledges: its generation is the highest.
    ingest(&ps2, TENANT, TIMELINE, &records(31, 5, b'c')).await;
    let info = ps2
        .json(Method::PUT, &tl(TENANT, TIMELINE, "/checkpoint"), "")
        .await
        .unwrap();
    assert_eq!(lsn_of(&info, "remote_consistent_lsn"), Lsn(35), "{info}");
    assert_eq!(info["stale"], false, "{info}");
    ps1.check_log(&["not re-attaching"]).unwrap();
}
