//! Parsing of the Go-style durations (`1h`, `500ms`) and byte sizes (`128MB`) that kratos.yml uses.

use std::time::Duration;

/// Parses a Go duration string such as `1h`, `24h`, `10m30s`, `500ms`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ns" => number / 1e9,
            "us" | "µs" => number / 1e6,
            "ms" => number / 1e3,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        total += Duration::from_secs_f64(seconds);
    }
    Some(total)
}

/// Parses a byte size such as `128MB`, `1GB`, `65536KB` or a bare number of bytes, returning KiB.
/// Units are binary (1 MB = 1024 KiB), as Ory's `bytesize` reads them.
pub fn parse_kib(text: &str) -> Option<u32> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..split].parse().ok()?;
    let unit = text[split..].trim().to_ascii_uppercase();
    let bytes = match unit.as_str() {
        "" | "B" => number,
        "K" | "KB" | "KIB" => number * 1024.0,
        "M" | "MB" | "MIB" => number * 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => number * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let kib = bytes / 1024.0;
    if !kib.is_finite() || kib < 1.0 || kib > f64::from(u32::MAX) {
        return None;
    }
    Some(kib as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10m30s"), Some(Duration::from_secs(630)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn byte_sizes_in_kib() {
        assert_eq!(parse_kib("128MB"), Some(131072));
        assert_eq!(parse_kib("1GB"), Some(1048576));
        assert_eq!(parse_kib("64KB"), Some(64));
        assert_eq!(parse_kib("lots"), None);
    }
}
