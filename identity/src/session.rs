//! Sessions: random tokens (`ory_st_` + 32 alphanumerics, ≈190 bits) stored only as SHA-256,
//! issuing a session after a successful flow, reading the caller's session from the request
//! (`X-Session-Token`, the session cookie, `Authorization: Bearer`), and Kratos' session JSON.

use axum::http::HeaderMap;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::rfc3339;
use crate::identity::identity_json;
use crate::store::{IdentityRecord, SessionRecord};

/// A secret bearer token (session or logout). Its value is never printed.
pub struct Token(String);

impl Token {
    /// A fresh token with a Kratos prefix (`ory_st_`, `ory_lo_`).
    pub fn generate(prefix: &str) -> Self {
        let body: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        Self(format!("{prefix}{body}"))
    }

    pub fn from_presented(value: &str) -> Self {
        Self(value.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored: hex SHA-256 of the token.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A new AAL1 session authenticated by `method` now.
pub fn new_session(
    identity_id: Uuid,
    method: &str,
    now: i64,
    lifespan_ms: i64,
    headers: &HeaderMap,
) -> SessionRecord {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    SessionRecord {
        id: Uuid::new_v4(),
        identity_id,
        active: true,
        aal: "aal1".to_owned(),
        authentication_methods: json!([
            {"method": method, "aal": "aal1", "completed_at": rfc3339(now)}
        ]),
        devices: json!([{"id": Uuid::new_v4(), "user_agent": user_agent, "location": ""}]),
        issued_at: now,
        authenticated_at: now,
        expires_at: now.saturating_add(lifespan_ms),
        created_at: now,
        updated_at: now,
    }
}

/// Whether a stored session counts as active now.
pub fn is_active(session: &SessionRecord, identity: &IdentityRecord, now: i64) -> bool {
    session.active && session.expires_at > now && identity.state == "active"
}

/// Kratos' session JSON with the identity expanded.
pub fn session_json(
    session: &SessionRecord,
    identity: &IdentityRecord,
    public_base: &str,
    now: i64,
) -> Value {
    json!({
        "id": session.id,
        "active": is_active(session, identity, now),
        "expires_at": rfc3339(session.expires_at),
        "authenticated_at": rfc3339(session.authenticated_at),
        "issued_at": rfc3339(session.issued_at),
        "authenticator_assurance_level": session.aal,
        "authentication_methods": session.authentication_methods,
        "identity": identity_json(identity, public_base),
        "devices": session.devices,
    })
}

/// Where a request carries its session token, in Kratos' order: `X-Session-Token`, the
/// session cookie (only with a valid signature), then `Authorization: Bearer`.
pub fn presented_token(
    headers: &HeaderMap,
    cookie: &crate::cookie::CookieAttrs,
    cookie_name: &str,
) -> Option<Token> {
    if let Some(v) = headers.get("x-session-token").and_then(|v| v.to_str().ok())
        && !v.trim().is_empty()
    {
        return Some(Token::from_presented(v.trim()));
    }
    if let Some(v) = cookie.read(headers, cookie_name) {
        return Some(Token::from_presented(&v));
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, value) = auth.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !value.trim().is_empty())
        .then(|| Token::from_presented(value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_kratos_shape_and_are_hashed() {
        let t = Token::generate("ory_st_");
        assert_eq!(t.expose().len(), 39);
        assert!(t.expose().starts_with("ory_st_"));
        assert_eq!(t.hash().len(), 64);
        assert_ne!(t.hash(), Token::generate("ory_st_").hash());
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn header_order_is_kratos_order() {
        let attrs = crate::cookie::CookieAttrs {
            path: "/".into(),
            domain: None,
            same_site: "Lax".into(),
            secure: false,
            keys: std::sync::Arc::new(crate::cookie::CookieKeys::new(&["k"])),
        };
        let signed = attrs.keys.sign("s", "c");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer b".parse().unwrap());
        assert_eq!(presented_token(&h, &attrs, "s").unwrap().expose(), "b");
        // An unsigned cookie is no session: the next place (Bearer) is used.
        h.insert("cookie", "s=c; other=x".parse().unwrap());
        assert_eq!(presented_token(&h, &attrs, "s").unwrap().expose(), "b");
        h.insert("cookie", format!("s={signed}; other=x").parse().unwrap());
        assert_eq!(presented_token(&h, &attrs, "s").unwrap().expose(), "c");
        h.insert("x-session-token", "x".parse().unwrap());
        assert_eq!(presented_token(&h, &attrs, "s").unwrap().expose(), "x");
    }
}
