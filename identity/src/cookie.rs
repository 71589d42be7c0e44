//! Reading request cookies and writing `Set-Cookie` headers with the configured attributes.

use axum::http::HeaderMap;

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

/// Cookie attributes shared by the session and CSRF cookies.
#[derive(Debug, Clone)]
pub struct CookieAttrs {
    pub path: String,
    pub domain: Option<String>,
    pub same_site: String,
    pub secure: bool,
}

impl CookieAttrs {
    /// `Set-Cookie` value; `max_age` None makes a browser-session cookie.
    pub fn header(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
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
        let mut out = self.header(name, "", Some(0));
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

    #[test]
    fn secure_only_when_asked() {
        let attrs = CookieAttrs {
            path: "/".into(),
            domain: None,
            same_site: "Lax".into(),
            secure: false,
        };
        let h = attrs.header("s", "v", Some(10));
        assert_eq!(h, "s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=10");
    }
}
