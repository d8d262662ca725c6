//! The audit entries of secret operations: names, ids, paths and versions, never values.

use serde_json::json;

use super::{SecretRecord, scope::EnvScope};
use crate::{audit::Entry, store::entities::secret};

/// An entry about one stored secret row.
pub(super) fn secret_entry<'a>(event_type: &'static str, scope: &'a EnvScope, row: &secret::Model) -> Entry<'a> {
    Entry::project(
        event_type,
        &scope.project.id,
        json!({
            "environment": scope.env.slug,
            "secretPath": row.path,
            "secretKey": row.key,
            "secretId": row.id,
            "secretVersion": row.version,
        }),
    )
}

/// An entry about a batch of secrets in one folder.
pub(super) fn batch_entry<'a, 'k>(
    event_type: &'static str,
    scope: &'a EnvScope,
    path: &str,
    keys: impl Iterator<Item = &'k str>,
) -> Entry<'a> {
    let keys: Vec<&str> = keys.collect();
    Entry::project(
        event_type,
        &scope.project.id,
        json!({ "environment": scope.env.slug, "secretPath": path, "secretKeys": keys, "count": keys.len() }),
    )
}

/// An entry about reading one secret (what was read, at which version; never the value).
pub(super) fn read_entry<'a>(
    event_type: &'static str,
    scope: &'a EnvScope,
    path: &str,
    secret: Option<&SecretRecord>,
) -> Entry<'a> {
    let mut metadata = json!({ "environment": scope.env.slug, "secretPath": path });
    if let Some(secret) = secret {
        metadata["secretKey"] = json!(secret.key);
        metadata["secretId"] = json!(secret.id);
        metadata["secretVersion"] = json!(secret.version);
        if let Some((env, path)) = &secret.imported_from {
            metadata["importedFrom"] = json!({ "environment": env, "secretPath": path });
        }
    }
    Entry::project(event_type, &scope.project.id, metadata)
}

/// An entry about listing a folder.
pub(super) fn list_entry<'a>(event_type: &'static str, scope: &'a EnvScope, path: &str, count: usize) -> Entry<'a> {
    Entry::project(
        event_type,
        &scope.project.id,
        json!({ "environment": scope.env.slug, "secretPath": path, "count": count }),
    )
}

/// An entry about a folder or import change at `path`.
pub(super) fn folder_entry<'a>(
    event_type: &'static str,
    scope: &'a EnvScope,
    path: &str,
    extra: serde_json::Value,
) -> Entry<'a> {
    let mut metadata = json!({ "environment": scope.env.slug, "secretPath": path });
    if let (Some(target), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    Entry::project(event_type, &scope.project.id, metadata)
}
