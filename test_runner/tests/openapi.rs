//! The OpenAPI document (`pageserver/src/http/openapi.yaml`) and the server agree: the routes
//! the router serves are exactly the operations of the document; the real binary serves the
//! document and answers every operation (no "no such endpoint", no 405); every operation
//! documents 400-500 as the brief says (401/403 unless open, 500 everywhere).

use std::collections::BTreeSet;
use test_runner::openapi::operations;
use test_runner::server::{Pageserver, TENANT, TIMELINE};

#[test]
fn the_router_serves_exactly_the_documented_operations() {
    let doc: BTreeSet<(String, String)> = operations(pageserver::http::OPENAPI_YAML)
        .unwrap()
        .into_iter()
        // This harness links pageserver with the testing feature: the test-only routes too.
        .map(|o| (o.method, o.path))
        .collect();
    let served: BTreeSet<(String, String)> = pageserver::http::route_table()
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let undocumented: Vec<_> = served.difference(&doc).collect();
    let unserved: Vec<_> = doc.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[test]
fn every_operation_documents_its_rejections() {
    for op in operations(pageserver::http::OPENAPI_YAML).unwrap() {
        let has = |s: &str| op.statuses.iter().any(|x| x == s);
        assert!(has("500"), "{} {}: no 500", op.method, op.path);
        if !op.open {
            assert!(
                has("401") && has("403"),
                "{} {}: no 401/403",
                op.method,
                op.path
            );
        }
        if op.method != "GET" && !op.testing_only {
            assert!(has("503"), "{} {}: no 503 (shutdown)", op.method, op.path);
        }
        if op.path.contains('{') {
            assert!(
                has("400"),
                "{} {}: no 400 for a malformed id",
                op.method,
                op.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_document_and_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &[]);
    ps.start(None).await;
    ps.setup().await.unwrap();
    let served = ps
        .request(reqwest::Method::GET, "/v1/openapi.yaml", "")
        .await
        .unwrap();
    assert_eq!(&served[..], pageserver::http::OPENAPI_YAML.as_bytes());
    for op in operations(pageserver::http::OPENAPI_YAML).unwrap() {
        // Harmless operations only: the rest are answered for another tenant.
        let destructive = ["/detach", "/reset", "/attach"]
            .iter()
            .any(|s| op.path.ends_with(s));
        let tenant = if destructive {
            "00000000000000000000000000000009"
        } else {
            TENANT
        };
        let path = op
            .path
            .replace("{tenant_id}", tenant)
            .replace("{timeline_id}", TIMELINE);
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let body = if op.path == "/v1/failpoints" {
            "[]"
        } else {
            ""
        };
        let answer = ps.request(method, &path, body).await;
        if let Err(e) = &answer {
            assert!(
                e.status != 405 && !e.body.contains("no such endpoint"),
                "{} {path}: {e:?}",
                op.method
            );
            assert!(
                e.status != 0 && e.status < 500,
                "{} {path}: {e:?}",
                op.method
            );
        }
    }
    ps.kill9();
}

/// One error shape for every rejection, the framework's own included (brief section 6): an
/// unknown route, a wrong method (with `Allow`), a JSON body over the framework's limit (it
/// answered plain text "Failed to buffer the request body"), a body that is not JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framework_rejection_has_the_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut ps = Pageserver::new(dir.path(), &[]);
    ps.start(None).await;
    let client = reqwest::Client::new();
    let big = vec![b' '; 3 << 20];
    let cases: Vec<(reqwest::Method, &str, Vec<u8>, u16)> = vec![
        (reqwest::Method::GET, "/v1/no-such-route", vec![], 404),
        (reqwest::Method::DELETE, "/v1/tenant", vec![], 405),
        (reqwest::Method::PATCH, "/metrics", vec![], 405),
        (reqwest::Method::POST, "/v1/tenant", big, 413),
        (
            reqwest::Method::POST,
            "/v1/tenant",
            b"{\"tenant_id\":".to_vec(),
            400,
        ),
        (reqwest::Method::POST, "/v1/tenant", vec![0xff, 0xfe], 400),
    ];
    for (method, path, body, want) in cases {
        let had_body = !body.is_empty();
        let r = client
            .request(method.clone(), ps.url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        assert_eq!(status, want, "{method} {path}: {text}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{text}");
        if want == 405 {
            assert!(headers.contains_key("allow"), "405 without Allow");
        }
        if had_body {
            assert_eq!(
                headers.get("connection").and_then(|v| v.to_str().ok()),
                Some("close"),
                "{method} {path}: a rejected body"
            );
        }
    }
    ps.kill9();
}
