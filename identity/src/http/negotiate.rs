//! Content negotiation exactly as Kratos does it: "browser wants HTML" (Accept negotiated over
//! text/html vs application/json, no Accept = HTML, exact beats wildcard at equal q) and
//! "JSON request" (negotiates to JSON, or `Content-Type: application/json`).

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};

/// (q, specificity) of the best Accept clause matching `offer`.
fn score(accept: &str, offer: &str) -> Option<(f32, u8)> {
    let (offer_type, _) = offer.split_once('/')?;
    let mut best: Option<(f32, u8)> = None;
    for clause in accept.split(',') {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let specificity = if media == offer {
            2
        } else if media == format!("{offer_type}/*") {
            1
        } else if media == "*/*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(_, s)| specificity > s) {
            best = Some((q, specificity));
        }
    }
    best.filter(|(q, _)| *q > 0.0)
}

/// True when Accept negotiates to HTML (the default without Accept).
pub fn wants_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    let html = score(accept, "text/html");
    let json = score(accept, "application/json");
    match (html, json) {
        (Some(h), Some(j)) => h.0 > j.0 || (h.0 == j.0 && h.1 >= j.1),
        (Some(_), None) => true,
        (None, Some(_)) => false,
        (None, None) => true,
    }
}

/// Kratos' `IsJSONRequest`.
pub fn is_json_request(headers: &HeaderMap) -> bool {
    let content_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    content_json || !wants_html(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn negotiation_matches_kratos() {
        assert!(wants_html(&HeaderMap::new()));
        assert!(wants_html(&with_accept("*/*")));
        assert!(!wants_html(&with_accept(
            "application/json, text/plain, */*"
        )));
        assert!(!wants_html(&with_accept("application/json")));
        assert!(wants_html(&with_accept("text/html,application/json")));
        assert!(wants_html(&with_accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(is_json_request(&h));
    }
}
