//! Time flags shared by the CLI commands: RFC 3339 times, and `--since` given as a duration ago.

use chrono::{DateTime, Utc};

/// An RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{text}' is not an RFC 3339 time like 2025-01-31T12:00:00Z ({e})"))
}

/// An RFC 3339 time, or a duration meaning that long before now.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = crate::config::parse_duration(text).map_err(|_| {
        format!("'{text}' is neither an RFC 3339 time (2025-01-31T12:00:00Z) nor a duration ago (30m, 1h, 7d)")
    })?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("'{text}' reaches too far back"))
}

/// The protobuf form of a time.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}
