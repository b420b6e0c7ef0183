//! Property-based API testing with schemathesis (issue 14) against the real binary with JWT
//! auth: every operation of the OpenAPI document but the failpoints', all of schemathesis's
//! phases (examples, coverage, fuzzing, stateful) and checks, with a bounded number of
//! examples per operation. Passing means zero server errors and zero answers that violate the
//! document (status, content type, headers, body schema), that auth is not ignored, and that
//! malformed input is rejected.
//!
//! One check is left out, `positive_data_acceptance`: it expects every request the schema
//! allows to be accepted, but a schema cannot say that an ingest body must be well-formed
//! records nor that a read's LSN must be at most `last_record_lsn`; those answer 400, as the
//! brief requires.
//!
//! Examples per operation and schemathesis's seed are drawn per seed: `SCHEMATHESIS_SEED=N`
//! replays one; `SCHEMATHESIS_EXAMPLES=N` sets the examples (default: 10 to 30).

use std::path::Path;
use std::process::Command;
use test_runner::server::Pageserver;
use test_support::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_violation_of_the_document() {
    let seed = test_support::seed("SCHEMATHESIS_SEED");
    let mut r = Rng::new(seed);
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| r.range(10, 30));
    let st_seed = r.next() % (1 << 31);
    eprintln!("SCHEMATHESIS_SEED={seed}: {examples} examples per operation, st --seed {st_seed}");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/auth");
    let dir = tempfile::tempdir().unwrap();
    let key = format!(
        "auth_validation_public_key_path = {:?}",
        fixtures.join("key1-public.pem").display().to_string()
    );
    let mut ps = Pageserver::new(&dir.path().join("ps"), &["http_auth_type = \"JWT\"", &key]);
    ps.start(None).await;
    let token = pageserver::http::auth::sign(
        &pageserver::http::auth::Claims {
            scope: "pageserverapi".into(),
            tenant_id: None,
            exp: None,
        },
        &std::fs::read(fixtures.join("key1-private.pem")).unwrap(),
    )
    .unwrap();
    ps.set_token(Some(token.clone()));
    // The tenant and timeline of the document's examples exist, so that the operations on a
    // timeline reach its logic and not only the 404 of an unknown one.
    ps.setup().await.unwrap();
    ps.ingest(&test_support::workload::byte_deltas(0x10, 8, 4, 1))
        .await
        .unwrap();

    let report = dir.path().join("schemathesis.json");
    let url = format!("http://127.0.0.1:{}", ps.port);
    // Bounded: a hung request must fail the test, not the CI run's clock.
    let out = Command::new("timeout")
        .arg("900")
        .arg(root.join("scripts/schemathesis"))
        .current_dir(dir.path())
        .arg("run")
        .arg(root.join("pageserver/src/http/openapi.yaml"))
        .args(["--url", &url])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--exclude-tag", "failpoints"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--seed", &st_seed.to_string()])
        .args(["--workers", "1"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--request-timeout", "60"])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--report", "json", "--report-json-path"])
        .arg(&report)
        .output()
        .expect("run scripts/schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems (SCHEMATHESIS_SEED={seed}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the JSON report")).unwrap();
    assert_eq!(v["complete"], true, "{v}");
    assert!(v["failures"].as_array().is_some_and(Vec::is_empty), "{v}");
    assert!(v["errors"].as_array().is_some_and(Vec::is_empty), "{v}");
    let tested = v["operations"]["tested"].as_u64().unwrap_or(0);
    let selected = v["operations"]["selected"].as_u64().unwrap_or(0);
    assert_eq!(tested, selected, "operations skipped: {}", v["operations"]);
    let documented = test_runner::openapi::operations(pageserver::http::OPENAPI_YAML)
        .unwrap()
        .iter()
        .filter(|o| !o.testing_only)
        .count() as u64;
    assert_eq!(tested, documented, "every operation but the failpoints'");
    for phase in ["examples", "coverage", "fuzzing", "stateful"] {
        assert_eq!(
            v["phases"][phase]["status"], "success",
            "{phase}: {}",
            v["phases"]
        );
    }
    let generated = v["test_cases"]["generated"].as_u64().unwrap_or(0);
    assert!(generated >= tested, "{}", v["test_cases"]);

    // The node is alive and no handler panicked.
    assert!(ps.is_running(), "the server died");
    assert_eq!(ps.metric("pageserver_request_panics_total").await, 0.0);
    // (Schemathesis may have detached the suites' tenant: detach is one of the operations.)
    ps.json(reqwest::Method::GET, "/v1/tenant", "")
        .await
        .expect("the tenant list still answers");
    test_support::report(&format!(
        "schemathesis {}: seed {seed}: {tested} operations, {examples} examples each, {generated} test cases in {:.1} s, phases examples/coverage/fuzzing/stateful, 0 failures, 0 server errors",
        v["schemathesis_version"].as_str().unwrap_or("?"),
        v["running_time"].as_f64().unwrap_or(0.0)
    ));
    ps.kill9();
}
