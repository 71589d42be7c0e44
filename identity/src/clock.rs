//! Wall-clock time as unix milliseconds (how timestamps are stored) and Kratos' RFC 3339 output.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats unix milliseconds as RFC 3339 UTC (`2026-11-23T10:00:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
