//! Identities, client secrets and token revocation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use super::{
    Identities, IdentityError, Principal,
    access::{self, Affected, bump_version},
    credentials, no_escalation,
    policy::{Action, Resource, Subject},
};
use crate::{
    audit::{self, Entry},
    store::entities::{access_token, client_secret, identity},
};

/// Longest identity name.
const MAX_NAME_LEN: usize = 64;
const SECONDS_PER_YEAR: u64 = 365 * 24 * 3600;
/// Longest life a client secret may be given; longer is refused, no ttl means no expiry.
const MAX_CLIENT_SECRET_TTL: Duration = Duration::from_secs(100 * SECONDS_PER_YEAR);

/// An identity as callers see it.
#[derive(Debug, Clone)]
pub struct IdentityRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub client_id: String,
    pub org_role: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<identity::Model> for IdentityRecord {
    fn from(m: identity::Model) -> Self {
        Self {
            id: m.id,
            org_id: m.org_id,
            name: m.name,
            client_id: m.client_id,
            org_role: m.org_role,
            created_at: m.created_at,
        }
    }
}

/// One page of identities.
#[derive(Debug)]
pub struct IdentityPage {
    pub identities: Vec<IdentityRecord>,
    pub next_page_token: Option<String>,
}

/// A client secret's metadata (never the secret).
#[derive(Debug, Clone)]
pub struct ClientSecretRecord {
    pub id: String,
    pub identity_id: String,
    pub description: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: u32,
    pub uses: u32,
}

impl From<client_secret::Model> for ClientSecretRecord {
    fn from(m: client_secret::Model) -> Self {
        Self {
            id: m.id,
            identity_id: m.identity_id,
            description: m.description,
            prefix: m.prefix,
            created_at: m.created_at,
            expires_at: m.expires_at,
            max_uses: m.max_uses as u32,
            uses: m.uses as u32,
        }
    }
}

/// A freshly created client secret: shown once.
#[derive(Debug)]
pub struct NewClientSecret {
    pub client_id: String,
    pub client_secret: String,
    pub info: ClientSecretRecord,
}

pub(super) fn page_size(size: i32) -> Result<u64, IdentityError> {
    crate::paging::page_size(size).map_err(|reason| IdentityError::invalid("page_size", reason))
}

pub(super) fn id_after(page_token: &str) -> Result<Option<&str>, IdentityError> {
    crate::paging::id_after(page_token).map_err(|reason| IdentityError::invalid("page_token", reason))
}

/// When a client secret created at `now` with `ttl` expires; INVALID_ARGUMENT past [`MAX_CLIENT_SECRET_TTL`].
fn expiry_after(now: chrono::DateTime<Utc>, ttl: Duration) -> Result<chrono::DateTime<Utc>, IdentityError> {
    let too_long = || {
        let years = MAX_CLIENT_SECRET_TTL.as_secs() / SECONDS_PER_YEAR;
        IdentityError::invalid("ttl", format!("is longer than {years} years (leave it unset for no expiry)"))
    };
    if ttl > MAX_CLIENT_SECRET_TTL {
        return Err(too_long());
    }
    chrono::Duration::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl)).ok_or_else(too_long)
}

pub(super) fn check_id(field: &str, id: &str) -> Result<(), IdentityError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| IdentityError::invalid(field, format!("'{id}' is not a UUID")))
}

impl Identities {
    /// Loads an identity of the caller's org.
    pub(super) async fn identity_in_org(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        caller: &Principal,
        identity_id: &str,
    ) -> Result<identity::Model, IdentityError> {
        check_id("identity_id", identity_id)?;
        identity::Entity::find_by_id(identity_id)
            .filter(identity::Column::OrgId.eq(&caller.org_id))
            .one(db)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("identity '{identity_id}'")))
    }

    /// Creates a machine identity, optionally with an org role. It has no client secret yet.
    pub async fn create_identity(
        &self,
        caller: &Principal,
        name: &str,
        org_role: &str,
    ) -> Result<IdentityRecord, IdentityError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(IdentityError::invalid("name", format!("must be 1 to {MAX_NAME_LEN} printable characters")));
        }
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Identities, Action::Create, Resource::default())?;
        let org_role = match org_role {
            "" => None,
            role => {
                let role = self.role_in_org(&*txn, caller, "org_role", role).await?;
                no_escalation::require_may_give_org_role(&*txn, caller, &role, &format!("org role '{role}'")).await?;
                Some(role)
            }
        };
        let taken = identity::Entity::find()
            .filter(identity::Column::OrgId.eq(&caller.org_id))
            .filter(identity::Column::Name.eq(name));
        if taken.one(&*txn).await?.is_some() {
            return Err(IdentityError::AlreadyExists(format!("identity '{name}'")));
        }
        let row = identity::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            org_id: Set(caller.org_id.clone()),
            name: Set(name.to_owned()),
            client_id: Set(uuid::Uuid::new_v4().to_string()),
            org_role: Set(org_role),
            created_at: Set(Utc::now()),
        }
        .insert(&*txn)
        .await?;
        audit::record(
            &txn,
            caller,
            Entry::org("create-identity", json!({ "identityId": row.id, "name": row.name, "orgRole": row.org_role })),
        );
        txn.commit().await?;
        Ok(row.into())
    }

    /// Lists the org's identities, oldest first.
    pub async fn list_identities(
        &self,
        caller: &Principal,
        size: i32,
        page_token: &str,
    ) -> Result<IdentityPage, IdentityError> {
        let size = page_size(size)?;
        let db = self.store.conn();
        access::org_grants(db, caller).await?.require(Subject::Identities, Action::Read, Resource::default())?;
        let mut query = identity::Entity::find().filter(identity::Column::OrgId.eq(&caller.org_id));
        if let Some(after) = id_after(page_token)? {
            query = query.filter(identity::Column::Id.gt(after));
        }
        let rows = query.order_by_asc(identity::Column::Id).limit(size + 1).all(db).await?;
        let (rows, next_page_token) = crate::paging::split_page(rows, size, |row| row.id.clone());
        let identities: Vec<IdentityRecord> = rows.into_iter().map(Into::into).collect();
        audit::record_read(&self.store, caller, Entry::org("get-identities", json!({ "count": identities.len() })))
            .await?;
        Ok(IdentityPage { identities, next_page_token })
    }

    /// Deletes an identity with its secrets, tokens and memberships; its tokens stop working at once.
    pub async fn delete_identity(&self, caller: &Principal, identity_id: &str) -> Result<(), IdentityError> {
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Identities, Action::Delete, Resource::default())?;
        let row = self.identity_in_org(&*txn, caller, identity_id).await?;
        no_escalation::require_holds_all_of(&*txn, caller, &row).await?;
        let entry = Entry::org("delete-identity", json!({ "identityId": row.id, "name": row.name }));
        let deleted = [row.id.clone()];
        row.delete(&*txn).await?;
        bump_version(&txn, Affected::Identities(&deleted)).await?;
        audit::record(&txn, caller, entry);
        txn.commit().await?;
        Ok(())
    }

    /// Creates a client secret for an identity. `ttl` None = never expires; `max_uses` 0 = unlimited.
    pub async fn create_client_secret(
        &self,
        caller: &Principal,
        identity_id: &str,
        description: &str,
        ttl: Option<Duration>,
        max_uses: u32,
    ) -> Result<NewClientSecret, IdentityError> {
        if description.chars().count() > 256 {
            return Err(IdentityError::invalid("description", "is longer than 256 characters"));
        }
        // Checked before anything is written: an expiry past year 9999 cannot even be answered (a protobuf
        // timestamp ends there), so the secret would be stored and never returned.
        let now = Utc::now();
        let expires_at = ttl.map(|ttl| expiry_after(now, ttl)).transpose()?;
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Identities, Action::Edit, Resource::default())?;
        let identity = self.identity_in_org(&*txn, caller, identity_id).await?;
        no_escalation::require_holds_all_of(&*txn, caller, &identity).await?;
        let secret = credentials::generate(credentials::CLIENT_SECRET_PREFIX);
        let row = client_secret::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            identity_id: Set(identity.id.clone()),
            secret_hash: Set(credentials::hash(&secret)),
            prefix: Set(credentials::visible_prefix(&secret)),
            description: Set(description.to_owned()),
            expires_at: Set(expires_at),
            max_uses: Set(i64::from(max_uses)),
            uses: Set(0),
            revoked_at: Set(None),
            created_at: Set(now),
        }
        .insert(&*txn)
        .await?;
        let entry = json!({ "identityId": identity.id, "clientSecretId": row.id, "prefix": row.prefix });
        audit::record(&txn, caller, Entry::org("create-client-secret", entry));
        txn.commit().await?;
        Ok(NewClientSecret { client_id: identity.client_id, client_secret: secret, info: row.into() })
    }

    /// Revokes a client secret: it can no longer log in, and the tokens it issued stop working.
    pub async fn revoke_client_secret(
        &self,
        caller: &Principal,
        identity_id: &str,
        secret_id: &str,
    ) -> Result<(), IdentityError> {
        check_id("client_secret_id", secret_id)?;
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Identities, Action::Edit, Resource::default())?;
        let identity = self.identity_in_org(&*txn, caller, identity_id).await?;
        no_escalation::require_holds_all_of(&*txn, caller, &identity).await?;
        let secret = client_secret::Entity::find_by_id(secret_id)
            .filter(client_secret::Column::IdentityId.eq(&identity.id))
            .one(&*txn)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("client secret '{secret_id}'")))?;
        let now = Utc::now();
        if secret.revoked_at.is_none() {
            let mut active = secret.into_active_model();
            active.revoked_at = Set(Some(now));
            active.update(&*txn).await?;
        }
        let tokens = revoke_tokens(&*txn, access_token::Column::ClientSecretId.eq(secret_id), now).await?;
        bump_version(&txn, Affected::Identities(std::slice::from_ref(&identity.id))).await?;
        audit::record(
            &txn,
            caller,
            Entry::org(
                "revoke-client-secret",
                json!({ "identityId": identity.id, "clientSecretId": secret_id, "tokensRevoked": tokens }),
            ),
        );
        txn.commit().await?;
        Ok(())
    }

    /// Revokes every live access token of an identity (its client secrets stay valid); returns how many.
    /// Needs `identities:edit` and everything the identity holds, or is the caller's own identity.
    pub async fn revoke_identity_tokens(&self, caller: &Principal, identity_id: &str) -> Result<u64, IdentityError> {
        let txn = self.store.begin_write().await?;
        let identity = self.identity_in_org(&*txn, caller, identity_id).await?;
        if identity.id != caller.identity_id {
            access::org_grants(&*txn, caller).await?.require(Subject::Identities, Action::Edit, Resource::default())?;
            no_escalation::require_holds_all_of(&*txn, caller, &identity).await?;
        }
        let tokens = revoke_tokens(&*txn, access_token::Column::IdentityId.eq(&identity.id), Utc::now()).await?;
        bump_version(&txn, Affected::Identities(std::slice::from_ref(&identity.id))).await?;
        let entry = json!({ "identityId": identity.id, "tokensRevoked": tokens });
        audit::record(&txn, caller, Entry::org("revoke-identity-tokens", entry));
        txn.commit().await?;
        Ok(tokens)
    }

    /// Revokes an access token: the caller's own when `token` is empty, else the given one (holding a token is
    /// the authority to revoke it). The next call with it is UNAUTHENTICATED.
    pub async fn revoke_token(&self, caller: &Principal, token: &str) -> Result<(), IdentityError> {
        let txn = self.store.begin_write().await?;
        let row = if token.is_empty() {
            access_token::Entity::find_by_id(&caller.token_id).one(&*txn).await?
        } else {
            access_token::Entity::find()
                .filter(access_token::Column::TokenHash.eq(credentials::hash(token)))
                .one(&*txn)
                .await?
        };
        let row = row.ok_or_else(|| IdentityError::NotFound("access token".into()))?;
        if row.revoked_at.is_none() {
            let identity_id = row.identity_id.clone();
            let mut active = row.into_active_model();
            active.revoked_at = Set(Some(Utc::now()));
            active.update(&*txn).await?;
            bump_version(&txn, Affected::Identities(&[identity_id])).await?;
        }
        audit::record(&txn, caller, Entry::org("revoke-token", json!({ "ownToken": token.is_empty() })));
        txn.commit().await?;
        Ok(())
    }
}

/// Marks the live tokens selected by `filter` revoked; returns how many.
async fn revoke_tokens(
    db: &impl sea_orm::ConnectionTrait,
    filter: sea_orm::sea_query::SimpleExpr,
    now: DateTime<Utc>,
) -> Result<u64, IdentityError> {
    let result = access_token::Entity::update_many()
        .col_expr(access_token::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(now)))
        .filter(filter)
        .filter(access_token::Column::RevokedAt.is_null())
        .filter(access_token::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
