//! Optimistic concurrency for callers, like Vault kv-v2's check-and-set: a write may name the version it
//! expects a secret to be at, and is refused with ABORTED naming the current version when another write came
//! first. The check runs on the secret's row locked for the write (`rows::find_for_write`), so no write can
//! come between the check and the change.

use std::collections::HashMap;

use super::{SecretsError, scope::EnvScope};
use crate::store::entities::secret;

fn invalid(field: String) -> SecretsError {
    SecretsError::InvalidArgument { field, reason: "must be 1 or more (leave it unset to skip the check)".into() }
}

/// Checks a single write's `expected_version` (versions start at 1).
pub(super) fn validate_one(expected: Option<u32>) -> Result<(), SecretsError> {
    match expected {
        Some(0) => Err(invalid("expected_version".into())),
        _ => Ok(()),
    }
}

/// Checks a batch's `expected_versions`: each names a key of the batch and a version of at least 1.
pub(super) fn validate_batch<'a>(
    expected: &HashMap<String, u32>,
    keys: impl Iterator<Item = &'a str> + Clone,
) -> Result<(), SecretsError> {
    let mut named: Vec<(&String, &u32)> = expected.iter().collect();
    // Map order is arbitrary: report the same entry on every call.
    named.sort();
    for (key, version) in named {
        let field = format!("expected_versions[\"{key}\"]");
        if !keys.clone().any(|k| k == key) {
            return Err(SecretsError::InvalidArgument { field, reason: "names no secret of this batch".into() });
        }
        if *version == 0 {
            return Err(invalid(field));
        }
    }
    Ok(())
}

/// Fails with ABORTED unless `row` is at `expected` (when given). `item` prefixes the message in batches
/// (`secrets[3]: `).
pub(super) fn require(
    scope: &EnvScope,
    row: &secret::Model,
    expected: Option<u32>,
    item: &str,
) -> Result<(), SecretsError> {
    match expected {
        Some(expected) if i64::from(row.version) != i64::from(expected) => Err(SecretsError::Aborted(format!(
            "{item}secret '{}' at {}:{} is at version {}, not the expected version {expected}; nothing was written",
            row.key, scope.env.slug, row.path, row.version
        ))),
        _ => Ok(()),
    }
}
