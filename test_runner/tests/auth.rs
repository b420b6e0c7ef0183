//! JWT auth on the real binary (brief section 6): every operation of the OpenAPI document,
//! swept with every kind of token, answers as the brief says: 401 for a missing, malformed,
//! unsigned, wrongly signed, wrongly typed or expired token; 403 for a valid token outside its
//! scope; never either for the open routes (`GET /v1/status`, `GET /metrics`). Refused requests
//! change nothing. Also: a tenant token works on its own timelines, `pagectl token` mints
//! tokens the server takes, and a public listen address needs auth or an explicit Trust.

use pageserver::http::auth::{Claims, sign};
use reqwest::Method;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use test_runner::server::{Pageserver, TENANT, TIMELINE, pagectl_bin, pageserver_bin};

#[path = "auth/support.rs"]
mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_token_as_the_brief_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = jwt_server(dir.path()).await;
    let admin = signed("key1", "pageserverapi", None, Some(now() + 3600));
    ps.set_token(Some(admin.clone()));
    ps.setup().await.expect("setup with an admin token");
    ps.ingest(&test_support::workload::byte_deltas(0x10, 5, 3, 1))
        .await
        .expect("ingest with an admin token");
    let before = snapshot(&ps).await;

    let ops = test_runner::openapi::operations(pageserver::http::OPENAPI_YAML).expect("document");
    assert!(ops.len() >= 17, "{ops:?}");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let fill = |template: &str, tenant: &str| {
        template
            .replace("{tenant_id}", tenant)
            .replace("{timeline_id}", TIMELINE)
    };

    // 1. Refused tokens: 401 everywhere but the open routes, with a JSON error and a challenge.
    for (label, auth) in refused_tokens() {
        for op in &ops {
            for tenant in [TENANT, OTHER] {
                let path = fill(&op.path, tenant);
                let (status, body, challenge) = send(&ps, &op.method, &path, auth.as_deref()).await;
                if op.open {
                    assert!(
                        status != 401 && status != 403,
                        "{label}: {} {path} is open but answered {status}",
                        op.method
                    );
                } else {
                    assert_eq!(status, 401, "{label}: {} {path}: {body}", op.method);
                    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
                    assert!(v["error"].is_string(), "{body}");
                    assert!(challenge, "{label}: 401 without WWW-Authenticate");
                }
                *counts.entry(format!("refused:{label}")).or_default() += 1;
            }
        }
        // An unknown route needs a token too.
        let (status, _, _) = send(&ps, "GET", "/v1/no-such-route", auth.as_deref()).await;
        assert_eq!(status, 401, "{label}: unknown route");
    }
    assert_eq!(
        snapshot(&ps).await,
        before,
        "a refused request changed state"
    );

    // 2. Valid tokens outside their scope: 403; inside it: neither 401 nor 403.
    let scoped = [
        ("tenant", signed("key1", "tenant", Some(TENANT), None)),
        ("other-tenant", signed("key1", "tenant", Some(OTHER), None)),
        (
            "unknown-scope",
            signed("key1", "safekeeperdata", None, None),
        ),
        ("tenant-without-id", signed("key1", "tenant", None, None)),
    ];
    for (label, token) in &scoped {
        let auth = format!("Bearer {token}");
        for op in &ops {
            // Destructive operations in scope run for real; they run last, below.
            let destructive = op.path.ends_with("/detach") || op.path.ends_with("/reset");
            for tenant in [TENANT, OTHER] {
                let path = fill(&op.path, tenant);
                let in_scope = match *label {
                    "tenant" => {
                        tenant == TENANT && op.path.starts_with("/v1/tenant/{tenant_id}/timeline")
                    }
                    "other-tenant" => {
                        tenant == OTHER && op.path.starts_with("/v1/tenant/{tenant_id}/timeline")
                    }
                    _ => false,
                };
                if destructive && in_scope {
                    continue;
                }
                let (status, body, _) = send(&ps, &op.method, &path, Some(&auth)).await;
                if op.open {
                    assert!(
                        status != 401 && status != 403,
                        "{label}: {} {path}: {status}",
                        op.method
                    );
                } else if in_scope {
                    assert!(
                        status != 401 && status != 403,
                        "{label}: {} {path} is in scope but answered {status}: {body}",
                        op.method
                    );
                } else {
                    assert_eq!(status, 403, "{label}: {} {path}: {body}", op.method);
                }
                *counts.entry(format!("scoped:{label}")).or_default() += 1;
            }
        }
    }
    let after_scoped = snapshot(&ps).await;
    assert_eq!(
        after_scoped["tenant"], before["tenant"],
        "a 403 changed the tenant"
    );

    // 3. The admin token: in scope everywhere (detach and reset too, last).
    let auth = format!("Bearer {admin}");
    for op in &ops {
        let path = fill(&op.path, TENANT);
        let (status, body, _) = send(&ps, &op.method, &path, Some(&auth)).await;
        assert!(
            status != 401 && status != 403,
            "admin: {} {path}: {status} {body}",
            op.method
        );
        *counts.entry("admin".into()).or_default() += 1;
    }
    for (reason, min) in [
        ("missing", 1.0),
        ("signature", 1.0),
        ("expired", 1.0),
        ("algorithm", 1.0),
        ("scope", 1.0),
    ] {
        let n = ps
            .metric(&format!(
                "pageserver_http_auth_failures_total{{reason=\"{reason}\"}}"
            ))
            .await;
        assert!(n >= min, "auth failures by {reason}: {n}");
    }
    let total: usize = counts.values().sum();
    test_support::report(&format!(
        "auth sweep: {} operations, {total} requests ({counts:?})",
        ops.len()
    ));
    ps.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_token_works_on_its_own_timelines_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = jwt_server(dir.path()).await;
    ps.set_token(Some(signed("key1", "pageserverapi", None, None)));
    ps.setup().await.expect("setup");
    ps.set_token(Some(signed(
        "key1",
        "tenant",
        Some(TENANT),
        Some(now() + 600),
    )));
    let records = test_support::workload::byte_deltas(0x10, 4, 2, 7);
    let acked = ps
        .ingest(&records)
        .await
        .expect("ingest with the tenant's token");
    let page = ps
        .page(records[0].key, records[0].lsn)
        .await
        .expect("read with the tenant's token");
    assert_eq!(page.len(), 8192);
    ps.checkpoint()
        .await
        .expect("checkpoint with the tenant's token");
    let denied = ps.tenant_action(TENANT, "reset").await.unwrap_err();
    assert_eq!(denied.status, 403, "{denied:?}");
    ps.set_token(Some(signed("key1", "tenant", Some(OTHER), None)));
    let more = test_support::workload::byte_deltas(0x100, 2, 2, 9);
    assert_eq!(ps.ingest(&more).await.unwrap_err().status, 403);
    ps.set_token(Some(signed("key1", "tenant", Some(TENANT), None)));
    assert_eq!(
        ps.info().await.unwrap()["last_record_lsn"],
        acked["last_record_lsn"]
    );
    ps.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagectl_token_mints_tokens_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = jwt_server(dir.path()).await;
    let key = fixture("key1-private.pem");
    let mint = |args: &[&str]| {
        let out = Command::new(pagectl_bin())
            .arg("token")
            .arg("--key")
            .arg(&key)
            .args(args)
            .output()
            .expect("run pagectl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, admin, err) = mint(&["--scope", "pageserverapi", "--ttl", "1h"]);
    assert_eq!(code, Some(0), "{err}");
    ps.set_token(Some(admin));
    ps.setup().await.expect("setup with pagectl's admin token");
    let (code, tenant, err) = mint(&["--scope", "tenant", "--tenant-id", TENANT]);
    assert_eq!(code, Some(0), "{err}");
    ps.set_token(Some(tenant));
    ps.ingest(&test_support::workload::byte_deltas(0x10, 2, 2, 3))
        .await
        .expect("ingest with pagectl's tenant token");
    assert_eq!(
        ps.tenant_action(TENANT, "detach").await.unwrap_err().status,
        403
    );
    // Usage errors exit 2 and print nothing on stdout.
    for bad in [
        &["--scope", "tenant"][..],
        &["--scope", "root"][..],
        &["--scope", "tenant", "--tenant-id", "nope"][..],
        &["--scope", "pageserverapi", "--ttl", "soon"][..],
    ] {
        let (code, out, _) = mint(bad);
        assert_eq!((code, out.as_str()), (Some(2), ""), "{bad:?}");
    }
    let out = Command::new(pagectl_bin())
        .args(["token", "--scope", "pageserverapi", "--key"])
        .arg(fixture("key1-public.pem"))
        .output()
        .expect("pagectl");
    assert_eq!(out.status.code(), Some(2), "a public key cannot sign");
    ps.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_address_needs_auth_or_an_explicit_trust() {
    let dir = tempfile::tempdir().unwrap();
    let run = |port: u16, extra: &[&str]| {
        Command::new(pageserver_bin())
            .arg("--workdir")
            .arg(dir.path())
            .arg("--listen-http")
            .arg(format!("0.0.0.0:{port}"))
            .args(["-c", "io_engine = \"std\""])
            .args(extra.iter().flat_map(|c| ["-c", c]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    // No auth configured: refused at start, with the way out in the message.
    let out = run(free_port(), &[]).wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("http_auth_type"), "{err}");

    // Trust said explicitly, and JWT: both serve.
    let key = format!(
        "auth_validation_public_key_path = {:?}",
        fixture("key1-public.pem").display().to_string()
    );
    for (extra, needs_token) in [
        (vec!["http_auth_type = \"Trust\""], false),
        (vec!["http_auth_type = \"JWT\"", key.as_str()], true),
    ] {
        let port = free_port();
        let mut child = run(port, &extra);
        let client = reqwest::Client::new();
        let mut answered = None;
        for _ in 0..2400 {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/v1/tenant"))
                .send()
                .await
            {
                answered = Some(r.status().as_u16());
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            answered,
            Some(if needs_token { 401 } else { 200 }),
            "{extra:?}"
        );
    }
}

/// The corners: paths a tenant token might slip through (dot segments, encoded dots, double and
/// trailing slashes, another spelling of the id), HEAD on the open routes, methods of no route,
/// `nbf` and `aud`, the scheme's case. A tenant token never reaches another route; refused
/// requests change nothing; a client's method never becomes a metric label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_methods_and_claims_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = jwt_server(dir.path()).await;
    let admin = signed("key1", "pageserverapi", None, None);
    ps.set_token(Some(admin.clone()));
    ps.setup().await.expect("setup");
    let before = snapshot(&ps).await;
    let tenant = format!("Bearer {}", signed("key1", "tenant", Some(TENANT), None));
    let tl = format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}");
    let upper = TENANT.to_uppercase();
    for (method, path) in [
        ("POST", format!("/v1/tenant/{TENANT}/timeline/../reset")),
        ("POST", format!("/v1/tenant/{TENANT}/timeline/%2e%2e/reset")),
        ("POST", format!("/v1/tenant/{TENANT}/timeline/..%2freset")),
        ("POST", format!("{tl}/../../detach")),
        ("POST", format!("/v1/tenant/{TENANT}//timeline/../detach")),
        ("POST", format!("/v1/tenant/{TENANT}/reset/")),
        ("POST", format!("/v1/tenant//{TENANT}/reset")),
        ("POST", format!("/v1/tenant/{upper}/timeline/../reset")),
        ("GET", format!("/v1/tenant/{TENANT}")),
        ("GET", "/v1/tenant".to_string()),
        (
            "PUT",
            format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}/../../../../failpoints"),
        ),
    ] {
        // 403 outside the scope; inside it (the timeline routes' shape, with a bad id) the
        // route's own 400, 404 or 405. Never a success.
        let status = raw(&ps, method, &path, Some(&tenant)).await;
        assert!(
            [400, 403, 404, 405].contains(&status),
            "{method} {path} with a tenant token: {status}"
        );
    }
    assert_eq!(snapshot(&ps).await, before, "a path trick changed state");
    // Inside its scope, with the scheme in lower case.
    let lower = format!("bearer {}", signed("key1", "tenant", Some(TENANT), None));
    assert_eq!(raw(&ps, "GET", &tl, Some(&lower)).await, 200);
    // Health checks with HEAD need no token; nothing else does.
    assert_eq!(raw(&ps, "HEAD", "/v1/status", None).await, 200);
    assert_eq!(raw(&ps, "HEAD", "/metrics", None).await, 200);
    assert_eq!(raw(&ps, "HEAD", "/v1/tenant", None).await, 401);
    // Methods of no route: 401 without a token, 405 with one, never a label.
    for m in ["FOO1", "FOO2", "BREW"] {
        assert_eq!(raw(&ps, m, "/v1/tenant", None).await, 401);
        assert_eq!(
            raw(&ps, m, "/v1/tenant", Some(&format!("Bearer {admin}"))).await,
            405
        );
    }
    let metrics = ps.metrics_text().await;
    for m in ["FOO1", "FOO2", "BREW"] {
        assert!(
            !metrics.contains(&format!("method=\"{m}\"")),
            "{m} became a label"
        );
    }
    // Not valid yet, for another audience, or without a scope: 401.
    let later = now() + 3600;
    for (label, claims) in [
        (
            "nbf",
            serde_json::json!({"scope": "pageserverapi", "nbf": later}),
        ),
        (
            "aud",
            serde_json::json!({"scope": "pageserverapi", "aud": "safekeeper"}),
        ),
        ("no scope", serde_json::json!({"tenant_id": TENANT})),
        (
            "exp as text",
            serde_json::json!({"scope": "pageserverapi", "exp": "never"}),
        ),
    ] {
        let token = format!("Bearer {}", signed_json("key1", claims));
        assert_eq!(
            raw(&ps, "GET", "/v1/tenant", Some(&token)).await,
            401,
            "{label}"
        );
    }
    ps.kill9();
}
