//! The suite's tokens (signed, forged and refused kinds), its server and its raw requests.

use super::*;

/// A tenant the tokens of the sweep name besides the suites' one.
pub(super) const OTHER: &str = "00000000000000000000000000000007";

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/auth")
        .join(name)
}

pub(super) fn signed(key: &str, scope: &str, tenant: Option<&str>, exp: Option<u64>) -> String {
    let pem = std::fs::read(fixture(&format!("{key}-private.pem"))).expect("fixture key");
    sign(
        &Claims {
            scope: scope.into(),
            tenant_id: tenant.map(str::to_string),
            exp,
        },
        &pem,
    )
    .expect("sign")
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

pub(super) fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `Authorization` values that must all be refused with 401.
pub(super) fn refused_tokens() -> Vec<(&'static str, Option<String>)> {
    let claims = format!("{{\"scope\":\"pageserverapi\",\"exp\":{}}}", now() + 3600);
    let unsigned = format!(
        "Bearer {}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.as_bytes())
    );
    // The public key used as an HMAC secret: the classic algorithm confusion.
    let public = std::fs::read(fixture("key1-public.pem")).expect("fixture");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"scope": "pageserverapi"}),
        &jsonwebtoken::EncodingKey::from_secret(&public).expect("hmac key"),
    )
    .expect("hs256");
    let valid = signed("key1", "pageserverapi", None, None);
    let (head, rest) = valid.split_once('.').expect("jwt");
    let (_, sig) = rest.split_once('.').expect("jwt");
    let forged_claims = format!(
        "Bearer {head}.{}.{sig}",
        b64url(br#"{"scope":"pageserverapi","tenant_id":"x"}"#)
    );
    vec![
        ("none", None),
        ("empty", Some("Bearer ".into())),
        ("garbage", Some("Bearer not-a-token".into())),
        ("basic", Some("Basic cGFnZXNlcnZlcjpwYXNz".into())),
        ("unsigned", Some(unsigned)),
        ("hs256-with-public-key", Some(format!("Bearer {hs256}"))),
        (
            "wrong-key",
            Some(format!(
                "Bearer {}",
                signed("key2", "pageserverapi", None, None)
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                signed("key1", "pageserverapi", None, Some(now() - 3600))
            )),
        ),
        ("claims-swapped-under-a-signature", Some(forged_claims)),
    ]
}

pub(super) async fn send(
    ps: &Pageserver,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, String, bool) {
    let client = reqwest::Client::new();
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(method, ps.url(path))
        .timeout(Duration::from_secs(60));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let challenge = r.headers().contains_key("www-authenticate");
    (status, r.text().await.unwrap_or_default(), challenge)
}

pub(super) async fn jwt_server(dir: &Path) -> Pageserver {
    let key = fixture("key1-public.pem");
    let auth_type = "http_auth_type = \"JWT\"".to_string();
    let key_path = format!(
        "auth_validation_public_key_path = {:?}",
        key.display().to_string()
    );
    let mut ps = Pageserver::new(&dir.join("ps"), &[&auth_type, &key_path]);
    ps.start(None).await;
    ps
}

/// The state a refused request must not change.
pub(super) async fn snapshot(ps: &Pageserver) -> serde_json::Value {
    let t = ps
        .json(Method::GET, &format!("/v1/tenant/{TENANT}"), "")
        .await
        .expect("tenant");
    let tl = ps.info().await.expect("timeline");
    serde_json::json!({
        "tenant": t,
        "lsn": tl["last_record_lsn"],
        "layers": tl["layers"],
        "incarnation": tl["incarnation"],
    })
}

/// A free port on all interfaces.
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Any claims, signed with `key`'s private half.
pub(super) fn signed_json(key: &str, claims: serde_json::Value) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let pem = std::fs::read(fixture(&format!("{key}-private.pem"))).expect("fixture key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(&pem).expect("key"),
    )
    .expect("sign")
}

/// A request written byte for byte (no client normalises its path); the answer's status.
pub(super) async fn raw(ps: &Pageserver, method: &str, path: &str, auth: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", ps.port))
        .await
        .expect("connect");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {text:?}"))
}
