//! Time flags shared by the CLI commands: `--since` and `--until` take an RFC 3339 time or a duration ago
//! (see [`crate::time_spec`]).

use chrono::{DateTime, Utc};

pub use crate::time_spec::parse as parse_time;

/// The protobuf form of a time.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}
