//! Reading request cookies and writing `Set-Cookie` headers with the configured attributes.
//!
//! The session and CSRF cookies are signed: the value is `<payload>.<mac>`, where the MAC is
//! HMAC-SHA256 over the cookie's name and payload with the first of `secrets.cookie` (or, when
//! that list is empty, `secrets.default`, as Kratos). Every key of the list verifies, so keys
//! rotate by prepending a new one and dropping the old one once no cookie signed with it can
//! still be alive. A cookie whose MAC does not verify is treated as absent.

use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The value of a cookie in the request's `Cookie` headers.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the request carries any cookie other than Cloudflare's (`__cf*`, `_cf*`, `cf_*`).
pub fn has_non_cloudflare_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('=').map(|(k, _)| k.to_owned()))
        .any(|k| !(k.starts_with("__cf") || k.starts_with("_cf") || k.starts_with("cf_")))
}

/// The cookie signing keys: the first signs, all verify.
#[derive(Clone)]
pub struct CookieKeys {
    keys: Vec<ring::hmac::Key>,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieKeys({} keys)", self.keys.len())
    }
}

impl CookieKeys {
    /// Keys from the secrets, in order (the first signs).
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Self {
        Self {
            keys: secrets
                .iter()
                .map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_ref()))
                .collect(),
        }
    }

    fn message(name: &str, payload: &str) -> Vec<u8> {
        let mut message = Vec::with_capacity(name.len() + 1 + payload.len());
        message.extend_from_slice(name.as_bytes());
        message.push(0);
        message.extend_from_slice(payload.as_bytes());
        message
    }

    /// `payload.mac` for cookie `name`. Without keys (never in a served configuration: start-up
    /// refuses to run without secrets) the payload would be unverifiable, so nothing is signed
    /// and [`CookieKeys::open`] accepts nothing.
    pub fn sign(&self, name: &str, payload: &str) -> String {
        match self.keys.first() {
            Some(key) => {
                let tag = ring::hmac::sign(key, &Self::message(name, payload));
                format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
            }
            None => String::new(),
        }
    }

    /// The payload of a signed value of cookie `name`, if any key verifies it (constant time).
    pub fn open(&self, name: &str, value: &str) -> Option<String> {
        let (payload, mac) = value.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let message = Self::message(name, payload);
        self.keys
            .iter()
            .any(|key| ring::hmac::verify(key, &message, &mac).is_ok())
            .then(|| payload.to_owned())
    }
}

/// Cookie attributes shared by the session and CSRF cookies, and the keys that sign them.
#[derive(Debug, Clone)]
pub struct CookieAttrs {
    pub path: String,
    pub domain: Option<String>,
    pub same_site: String,
    pub secure: bool,
    pub keys: Arc<CookieKeys>,
}

impl CookieAttrs {
    /// The verified payload of cookie `name` in the request; a missing, unsigned or tampered
    /// cookie is `None`.
    pub fn read(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        read(headers, name).and_then(|value| self.keys.open(name, &value))
    }

    /// `Set-Cookie` value carrying `payload` signed; `max_age` None makes a browser-session
    /// cookie.
    pub fn header(&self, name: &str, payload: &str, max_age: Option<i64>) -> String {
        let value = self.keys.sign(name, payload);
        self.raw_header(name, &value, max_age)
    }

    fn raw_header(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut out = format!(
            "{name}={value}; Path={}; HttpOnly; SameSite={}",
            self.path, self.same_site
        );
        if let Some(domain) = &self.domain {
            out.push_str(&format!("; Domain={domain}"));
        }
        if let Some(age) = max_age {
            out.push_str(&format!("; Max-Age={}", age.max(0)));
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub fn expire(&self, name: &str) -> String {
        let mut out = self.raw_header(name, "", Some(0));
        out.push_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; ory_kratos_session=tok".parse().unwrap());
        assert_eq!(read(&h, "ory_kratos_session").as_deref(), Some("tok"));
        assert_eq!(read(&h, "missing"), None);
        assert!(has_non_cloudflare_cookie(&h));
        let mut cf = HeaderMap::new();
        cf.append("cookie", "__cf_bm=1; cf_clearance=2".parse().unwrap());
        assert!(!has_non_cloudflare_cookie(&cf));
    }

    fn attrs(secrets: &[&str]) -> CookieAttrs {
        CookieAttrs {
            path: "/".into(),
            domain: None,
            same_site: "Lax".into(),
            secure: false,
            keys: Arc::new(CookieKeys::new(secrets)),
        }
    }

    #[test]
    fn secure_only_when_asked() {
        let h = attrs(&["k"]).header("s", "v", Some(10));
        assert!(h.starts_with("s=v."), "{h}");
        assert!(
            h.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=10"),
            "{h}"
        );
    }

    fn request_with(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append("cookie", cookie.parse().unwrap());
        h
    }

    fn value_of(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .and_then(|p| p.split_once('='))
            .map(|(_, v)| v)
            .unwrap()
    }

    #[test]
    fn signed_cookies_round_trip_and_reject_tampering() {
        let a = attrs(&["first-secret-0123456789abcdef"]);
        let set = a.header("ory_kratos_session", "ory_st_abc", None);
        let value = value_of(&set);
        let read = |v: &str| {
            a.read(
                &request_with(&format!("ory_kratos_session={v}")),
                "ory_kratos_session",
            )
        };
        assert_eq!(read(value).as_deref(), Some("ory_st_abc"));
        // The raw token, a changed payload, a cut MAC, or the MAC of another cookie: refused.
        assert_eq!(read("ory_st_abc"), None);
        assert_eq!(read(&value.replace("abc", "abd")), None);
        assert_eq!(read(&value[..value.len() - 2]), None);
        let other = a.header("csrf_token_x", "ory_st_abc", None);
        assert_eq!(read(value_of(&other)), None);
    }

    #[test]
    fn rotation_first_key_signs_every_key_verifies() {
        let old = attrs(&["old-secret-0123456789abcdef0123"]);
        let rotated = attrs(&[
            "new-secret-0123456789abcdef0123",
            "old-secret-0123456789abcdef0123",
        ]);
        let dropped = attrs(&["new-secret-0123456789abcdef0123"]);
        let signed_by_old = old.header("s", "payload", None);
        let req = request_with(&format!("s={}", value_of(&signed_by_old)));
        assert_eq!(rotated.read(&req, "s").as_deref(), Some("payload"));
        assert_eq!(
            dropped.read(&req, "s"),
            None,
            "a removed key verifies nothing"
        );
        let signed_by_new = rotated.header("s", "payload", None);
        let req = request_with(&format!("s={}", value_of(&signed_by_new)));
        assert_eq!(dropped.read(&req, "s").as_deref(), Some("payload"));
        assert_eq!(old.read(&req, "s"), None);
    }
}
