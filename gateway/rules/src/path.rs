//! The string a rule is matched against: `scheme://host[:port]/cleaned-path`.
//!
//! The path is percent-decoded and cleaned like Go's `path.Clean` (Oathkeeper matches the
//! cleaned path and forwards it upstream): `.` and `..` resolved, repeated slashes collapsed,
//! the trailing slash removed. The query string is never part of the match.

/// Percent-decodes a path (invalid escapes are kept verbatim, invalid UTF-8 replaced).
pub fn decode_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `path.Clean`; the empty string stays empty (Oathkeeper only cleans non-empty paths).
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let rooted = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.last().is_some_and(|s| *s != "..") {
                    segments.pop();
                } else if !rooted {
                    segments.push("..");
                }
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Builds the match string from its parts; `path` must already be cleaned.
pub fn match_url(scheme: &str, host: &str, path: &str) -> String {
    let mut url = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
    push_match_url(&mut url, scheme, host, path);
    url
}

/// [`match_url`] appended to `url` (a reused buffer).
pub fn push_match_url(url: &mut String, scheme: &str, host: &str, path: &str) {
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(host);
    url.push_str(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        let cases = [
            ("", ""),
            ("/", "/"),
            ("/a/b/", "/a/b"),
            ("//a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/../../..", "/"),
            ("a/../..", ".."),
            ("a/", "a"),
            (".", "."),
        ];
        for (input, expected) in cases {
            assert_eq!(clean_path(input), expected, "{input:?}");
        }
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode_path("/a%20b/%2e%2e/c"), "/a b/../c");
        assert_eq!(decode_path("/bad%zz%4"), "/bad%zz%4");
        assert_eq!(clean_path(&decode_path("/public/%2e%2e/admin")), "/admin");
    }
}
