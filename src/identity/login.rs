//! Login (client id + client secret → bearer token) and token resolution.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use serde_json::json;

use super::{IdentityError, Principal, credentials};
use crate::audit::{self, AuditActor, Entry, RequestMeta};
use crate::store::{
    Store, WriteTxn,
    entities::{access_token, client_secret, identity},
};

/// The one message for every login failure, so a caller cannot probe which client ids exist.
const BAD_CREDENTIALS: &str = "invalid client id or client secret";
/// The one message for every unusable token.
const BAD_TOKEN: &str = "access token is invalid, expired or revoked";

/// A successful login.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The bearer token; shown once, stored only as a hash.
    pub access_token: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
    /// The identity that logged in.
    pub identity_id: String,
    /// Its org.
    pub org_id: String,
}

/// Checks a client id and secret and issues a token valid for `ttl`. Successes and failures are audited
/// (`login-identity`; a failure's actor is `unknownUser`, in the org of the client id when it exists).
pub async fn login(
    store: &Store,
    meta: &RequestMeta,
    client_id: &str,
    client_secret: &str,
    ttl: Duration,
) -> Result<LoginOutcome, IdentityError> {
    let txn = store.begin_write().await?;
    let identity = identity::Entity::find().filter(identity::Column::ClientId.eq(client_id)).one(&*txn).await?;
    let unknown = |org_id: String| AuditActor { kind: "unknownUser", id: String::new(), name: String::new(), org_id };
    let (actor, result) = match identity {
        Some(identity) => match issue_token(&txn, &identity, client_secret, ttl).await? {
            Ok(outcome) => {
                let actor =
                    AuditActor { kind: "identity", id: identity.id, name: identity.name, org_id: identity.org_id };
                (actor, Ok(outcome))
            }
            Err(reason) => (unknown(identity.org_id), Err(IdentityError::Unauthenticated(reason))),
        },
        None => (unknown(String::new()), Err(IdentityError::Unauthenticated(BAD_CREDENTIALS))),
    };
    let entry = Entry::org("login-identity", json!({ "clientId": client_id, "success": result.is_ok() }));
    audit::record_as(&txn, &actor, meta, entry).await?;
    // A failed login commits too: its audit entry (and nothing else) is what it leaves behind.
    txn.commit().await?;
    result
}

/// Checks the secret against `identity` and, when it is usable, counts the use and issues a token.
async fn issue_token(
    txn: &WriteTxn,
    identity: &identity::Model,
    client_secret: &str,
    ttl: Duration,
) -> Result<Result<LoginOutcome, &'static str>, IdentityError> {
    let now = Utc::now();
    let secret = client_secret::Entity::find()
        .filter(client_secret::Column::SecretHash.eq(credentials::hash(client_secret)))
        .filter(client_secret::Column::IdentityId.eq(&identity.id))
        .one(&**txn)
        .await?;
    let Some(secret) = secret else { return Ok(Err(BAD_CREDENTIALS)) };
    let expired = secret.expires_at.is_some_and(|at| at <= now);
    let used_up = secret.max_uses > 0 && secret.uses >= secret.max_uses;
    if secret.revoked_at.is_some() || expired || used_up {
        return Ok(Err(BAD_CREDENTIALS));
    }
    let uses = secret.uses + 1;
    let secret_id = secret.id.clone();
    let mut secret = secret.into_active_model();
    secret.uses = Set(uses);
    secret.update(&**txn).await?;

    let access_token = credentials::generate(credentials::ACCESS_TOKEN_PREFIX);
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    access_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        identity_id: Set(identity.id.clone()),
        token_hash: Set(credentials::hash(&access_token)),
        client_secret_id: Set(Some(secret_id)),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(&**txn)
    .await?;
    Ok(Ok(LoginOutcome { access_token, expires_at, identity_id: identity.id.clone(), org_id: identity.org_id.clone() }))
}

/// Resolves a bearer token to the identity behind it. Revocation and identity deletion apply to the next call
/// because nothing is cached.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal, IdentityError> {
    let unauthenticated = || IdentityError::Unauthenticated(BAD_TOKEN);
    let (token_row, identity) = access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(credentials::hash(token)))
        .find_also_related(identity::Entity)
        .one(store.conn())
        .await?
        .ok_or_else(unauthenticated)?;
    let identity = identity.ok_or_else(unauthenticated)?;
    if token_row.revoked_at.is_some() || token_row.expires_at <= Utc::now() {
        return Err(unauthenticated());
    }
    Ok(Principal {
        identity_id: identity.id,
        org_id: identity.org_id,
        name: identity.name,
        token_id: token_row.id,
        token_expires_at: token_row.expires_at,
        meta: Default::default(),
    })
}

/// Checks that the token a principal was resolved from still works (not revoked or expired, identity not
/// deleted). Long-lived streams call it when permissions may have changed.
pub async fn revalidate(store: &Store, principal: &Principal) -> Result<(), IdentityError> {
    let token = access_token::Entity::find_by_id(&principal.token_id).one(store.conn()).await?;
    match token {
        Some(token) if token.revoked_at.is_none() && token.expires_at > Utc::now() => Ok(()),
        _ => Err(IdentityError::Unauthenticated(BAD_TOKEN)),
    }
}
