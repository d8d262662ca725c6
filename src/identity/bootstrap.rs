//! First start: an empty database gets an org and an admin machine identity whose credentials are written
//! to `<data-dir>/bootstrap.json` (mode 0600) and never shown again.

use std::path::{Path, PathBuf};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, Set};
use serde::Serialize;

use super::{IdentityError, credentials};
use crate::store::{
    Store,
    entities::{client_secret, identity, org},
};

/// Name of the credentials file written on first start.
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";
/// Org role of the bootstrap identity.
const ADMIN_ROLE: &str = "admin";

/// The credentials of the bootstrap admin identity, as written to `bootstrap.json`.
#[derive(Debug, Serialize)]
pub struct BootstrapCredentials {
    /// Client id to log in with.
    pub client_id: String,
    /// Client secret to log in with.
    pub client_secret: String,
    /// The org created on first start.
    pub org_id: String,
    /// The admin identity's id.
    pub identity_id: String,
}

/// Creates the first org and admin identity when the database has no org yet, and writes their credentials
/// to `<data_dir>/bootstrap.json`. Returns the file's path when it was written.
pub async fn bootstrap(store: &Store, data_dir: &Path) -> Result<Option<PathBuf>, IdentityError> {
    let txn = store.begin_write().await?;
    if store.backend() == DbBackend::Postgres {
        // Two instances starting at once on an empty database: the second waits here and then finds the org,
        // instead of both finding none and making two. (The mode conflicts with itself, not with reads.)
        txn.execute_unprepared("LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE").await?;
    }
    if org::Entity::find().count(&*txn).await? > 0 {
        return Ok(None);
    }
    let now = Utc::now();
    let org_id = uuid::Uuid::now_v7().to_string();
    let identity_id = uuid::Uuid::now_v7().to_string();
    let client_id = uuid::Uuid::new_v4().to_string();
    let client_secret = credentials::generate(credentials::CLIENT_SECRET_PREFIX);

    org::ActiveModel { id: Set(org_id.clone()), name: Set("default".into()), created_at: Set(now) }
        .insert(&*txn)
        .await?;
    identity::ActiveModel {
        id: Set(identity_id.clone()),
        org_id: Set(org_id.clone()),
        name: Set("bootstrap-admin".into()),
        client_id: Set(client_id.clone()),
        org_role: Set(Some(ADMIN_ROLE.into())),
        created_at: Set(now),
    }
    .insert(&*txn)
    .await?;
    client_secret::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        identity_id: Set(identity_id.clone()),
        secret_hash: Set(credentials::hash(&client_secret)),
        prefix: Set(credentials::visible_prefix(&client_secret)),
        description: Set("bootstrap".into()),
        expires_at: Set(None),
        max_uses: Set(0),
        uses: Set(0),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(&*txn)
    .await?;

    let creds = BootstrapCredentials { client_id, client_secret, org_id, identity_id };
    let path = data_dir.join(BOOTSTRAP_FILE);
    let json = serde_json::to_vec_pretty(&creds).expect("plain strings serialize");
    // Write the file before committing: if it cannot be written, the org is not created and the next start
    // tries again, instead of leaving an admin nobody knows the secret of.
    crate::fs_private::write_private(&path, &json)
        .map_err(|source| IdentityError::Io { path: path.display().to_string(), source })?;
    txn.commit().await?;
    Ok(Some(path))
}
