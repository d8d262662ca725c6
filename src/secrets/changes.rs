//! The events a secret change appends to the outbox, in the change's own transaction: the change itself, and
//! a `secret:import-mutation` for every folder that imports a changed folder.

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{SecretsError, scope::EnvScope};
use crate::{
    events::{EventType, ImportMutation, Payload, SecretRef, outbox},
    identity::Principal,
    store::{
        WriteTxn,
        entities::{environment, secret, secret_import},
    },
};

/// One secret a change touched, with its versions.
pub(super) struct Changed {
    path: String,
    key: String,
    version: Option<u32>,
    previous: Option<u32>,
}

impl Changed {
    /// A secret written (created, updated, rolled back) to `row`'s version.
    pub(super) fn written(path: &str, row: &secret::Model) -> Self {
        let version = u32::try_from(row.version).unwrap_or(0);
        Self {
            path: path.to_owned(),
            key: row.key.clone(),
            version: Some(version),
            previous: version.checked_sub(1).filter(|v| *v > 0),
        }
    }

    /// A secret deleted while at `version`.
    pub(super) fn deleted(path: &str, key: &str, version: i32) -> Self {
        Self { path: path.to_owned(), key: key.to_owned(), version: None, previous: u32::try_from(version).ok() }
    }
}

/// Appends `event_type` for the `changed` secrets of one environment, plus the import mutations; `operation`
/// says what was done (the audit log's name for it).
pub(super) async fn secrets_changed(
    txn: &WriteTxn,
    scope: &EnvScope,
    caller: &Principal,
    event_type: EventType,
    operation: &str,
    changed: &[Changed],
) -> Result<(), SecretsError> {
    if changed.is_empty() {
        return Ok(());
    }
    let secrets = changed
        .iter()
        .map(|c| SecretRef {
            environment: scope.env.slug.clone(),
            secret_path: c.path.clone(),
            secret_key: c.key.clone(),
            version: c.version,
            previous_version: c.previous,
        })
        .collect();
    let payload = Payload { operation: operation.to_owned(), secrets, import_mutation: None };
    let mut events = vec![new_event(scope, caller, event_type, payload)];
    let paths: BTreeSet<&str> = changed.iter().map(|c| c.path.as_str()).collect();
    for importer in importers(txn, scope, &paths).await? {
        events.push(new_event(scope, caller, EventType::ImportMutation, import_payload(operation, importer)));
    }
    outbox::append(txn, events);
    Ok(())
}

/// Appends a `secret:import-mutation` for one folder whose imports changed.
pub(super) fn imports_changed(txn: &WriteTxn, scope: &EnvScope, caller: &Principal, operation: &str, path: &str) {
    let folder = ImportMutation { environment: scope.env.slug.clone(), secret_path: path.to_owned() };
    let event = new_event(scope, caller, EventType::ImportMutation, import_payload(operation, folder));
    outbox::append(txn, vec![event]);
}

fn import_payload(operation: &str, folder: ImportMutation) -> Payload {
    Payload { operation: operation.to_owned(), secrets: Vec::new(), import_mutation: Some(folder) }
}

fn new_event(scope: &EnvScope, caller: &Principal, event_type: EventType, payload: Payload) -> outbox::NewEvent {
    outbox::NewEvent { project_id: scope.project.id.clone(), event_type, payload, actor: caller.into() }
}

/// The folders (of any environment of the project) that import one of `paths` of `scope`'s environment.
async fn importers(
    txn: &WriteTxn,
    scope: &EnvScope,
    paths: &BTreeSet<&str>,
) -> Result<Vec<ImportMutation>, SecretsError> {
    if !txn.may_be_imported_from(&scope.env) {
        return Ok(Vec::new());
    }
    let imports = secret_import::Entity::find()
        .filter(secret_import::Column::ImportEnvironmentId.eq(&scope.env.id))
        .filter(secret_import::Column::ImportPath.is_in(paths.iter().copied()))
        .all(&**txn)
        .await?;
    if imports.is_empty() {
        return Ok(Vec::new());
    }
    let slugs: HashMap<String, String> = environment::Entity::find()
        .filter(environment::Column::ProjectId.eq(&scope.project.id))
        .all(&**txn)
        .await?
        .into_iter()
        .map(|e| (e.id, e.slug))
        .collect();
    let unique: BTreeSet<(String, String)> =
        imports.into_iter().filter_map(|i| slugs.get(&i.environment_id).map(|slug| (slug.clone(), i.path))).collect();
    Ok(unique.into_iter().map(|(environment, secret_path)| ImportMutation { environment, secret_path }).collect())
}
