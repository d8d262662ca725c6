//! The open-files limit: every connection is a file descriptor, and the usual soft limit (1 024) would cap a
//! node far below the streams it can hold. The soft limit is raised to the hard one at start.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit; returns the limit in force (`None`: unlimited).
pub fn raise_to_hard_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited"; an unlimited hard limit is left alone (the kernel refuses it for files anyway).
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else { return limit.current };
    if current >= maximum {
        return Some(current);
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
        Ok(()) => Some(maximum),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-files limit");
            Some(current)
        }
    }
}
