//! A point in time as people write it on command lines and in query strings: RFC 3339
//! (`2025-01-31T12:00:00Z`) or a duration before now (`30m`, `1h`, `7d`). The CLI's `--since` and `--until`
//! and the HTTP audit export's `since` and `until` take the same forms.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// An RFC 3339 time, or a duration meaning that long before now.
pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
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

/// Serde's reading of an optional time in either form (for query strings).
pub fn deserialize_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|text| parse(&text)).transpose().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_rfc3339_or_a_duration_ago() {
        assert_eq!(parse("2025-01-31T12:00:00Z").unwrap().to_rfc3339(), "2025-01-31T12:00:00+00:00");
        let hour_ago = parse("1h").unwrap();
        assert!((hour_ago - (Utc::now() - chrono::Duration::hours(1))).num_seconds().abs() < 5);
        let error = parse("soon").unwrap_err();
        assert!(error.contains("'soon'") && error.contains("RFC 3339"), "{error}");
        assert!(parse("99999999999999d").is_err(), "too far back is an error, not a panic");
    }
}
