//! The server's tokens: JWTs signed with EdDSA (Ed25519), Neon's conventions (brief section
//! 6). This module knows tokens and their claims; which routes a claim opens, and the answers
//! to a refused request, are the HTTP layer's (`http/auth.rs`).
//!
//! Claims: `{"scope": "pageserverapi"}` (every route) or `{"scope": "tenant", "tenant_id": T}`.
//! `exp` and `nbf`, when present, are enforced (with the library's leeway of 60 s); a token
//! with an `aud` claim is refused (no audience is configured). The scheme `Bearer` is matched
//! without regard to case. Only EdDSA is accepted: a token whose header names another
//! algorithm (`none`, or `HS256` keyed with the public key) is refused before any signature is
//! checked.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The metric's label: `missing`, `malformed`, `expired`, `signature` or `algorithm`.
    pub reason: &'static str,
    /// What to tell the client.
    pub message: String,
}

/// What a token allows (its claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `pageserverapi` or `tenant`.
    pub scope: String,
    /// The tenant of a `tenant` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// The verifier of the server's tokens.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtAuth(EdDSA)")
    }
}

fn install_crypto() {
    // Err means a provider is installed already (ours, by an earlier call).
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

impl JwtAuth {
    /// Reads the Ed25519 public key (PEM) at `path`.
    pub fn from_pem_file(path: &Path) -> anyhow::Result<JwtAuth> {
        use anyhow::Context;
        install_crypto();
        let pem = std::fs::read(path)
            .with_context(|| format!("read the auth public key {}", path.display()))?;
        let key = DecodingKey::from_ed_pem(&pem).with_context(|| {
            format!(
                "{}: not an Ed25519 public key in PEM (make one with `openssl pkey -in PRIVATE.pem -pubout`)",
                path.display()
            )
        })?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // `exp` is optional; when present it is checked.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(JwtAuth { key, validation })
    }

    /// The claims of the token in an `Authorization` header's value, or why it is refused.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Claims, Refusal> {
        let unauthorized = |reason: &'static str, message: String| Refusal { reason, message };
        let Some(value) = authorization else {
            return Err(unauthorized(
                "missing",
                "missing Authorization: Bearer <JWT>".into(),
            ));
        };
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                unauthorized("malformed", "Authorization is not \"Bearer <JWT>\"".into())
            })?;
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::InvalidSignature => "signature",
                    ErrorKind::InvalidAlgorithm => "algorithm",
                    _ => "malformed",
                };
                Err(unauthorized(reason, format!("invalid token: {e}")))
            }
        }
    }
}

/// Signs `claims` with the Ed25519 private key `pem` (PKCS#8 PEM): what `pagectl token` does.
pub fn sign(claims: &Claims, pem: &[u8]) -> anyhow::Result<String> {
    use anyhow::Context;
    install_crypto();
    let key = EncodingKey::from_ed_pem(pem).context(
        "not an Ed25519 private key in PEM (make one with `openssl genpkey -algorithm ed25519`)",
    )?;
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &key).context("sign the token")
}
