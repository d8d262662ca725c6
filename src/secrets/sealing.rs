//! Sealing values to where they live: a value's seal binds it to its project, environment, path, key and
//! version, so a sealed value copied to another secret or version fails to open.

use zeroize::Zeroizing;

use super::{SecretsError, scope::EnvScope, values::SecretValue};
use crate::{
    crypto::{CryptoError, DataKey, ValueBinding},
    store::entities::secret,
};

/// What a sealed value belongs to: its seal is bound to exactly this.
pub(super) fn binding<'a>(scope: &'a EnvScope, row: &'a secret::Model, version: i32) -> ValueBinding<'a> {
    binding_at(scope, &row.path, &row.key, version)
}

/// The same, for a secret known by its path and key (before its row exists).
pub(super) fn binding_at<'a>(scope: &'a EnvScope, path: &'a str, key: &'a str, version: i32) -> ValueBinding<'a> {
    ValueBinding { project_id: &scope.project.id, environment_id: &scope.env.id, path, key, version }
}

fn integrity(scope: &EnvScope, path: &str, key: &str, source: CryptoError) -> SecretsError {
    SecretsError::Integrity { what: format!("secret '{key}' at {}:{path}", scope.env.slug), source }
}

/// Opens a sealed value of `row` stored under `version`.
pub(super) fn open(
    dk: &DataKey,
    scope: &EnvScope,
    row: &secret::Model,
    version: i32,
    sealed: &[u8],
) -> Result<SecretValue, SecretsError> {
    let plain =
        dk.open_value(binding(scope, row, version), sealed).map_err(|e| integrity(scope, &row.path, &row.key, e))?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| SecretsError::Integrity {
        what: format!("secret '{}' at {}:{}", row.key, scope.env.slug, row.path),
        source: CryptoError::Authentication,
    })?;
    Ok(SecretValue(Zeroizing::new(text)))
}
