//! Login (client id + client secret → bearer token) and token resolution.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set};

use serde_json::json;

use super::{IdentityError, Principal, credentials, login_throttle::LoginThrottle};
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

/// Longest client secret accepted: generated ones are 51 bytes, so this leaves room for any future format
/// while keeping what is hashed per request small.
pub const MAX_CLIENT_SECRET_BYTES: usize = 256;

/// Refuses malformed credentials before anything is looked up, hashed or stored. The reasons never echo the
/// input (a caller may send megabytes).
fn validate(client_id: &str, client_secret: &str) -> Result<(), IdentityError> {
    // Client ids are issued as hyphenated UUIDs (36 bytes); the length check keeps huge inputs off the parser.
    if client_id.len() != 36 || uuid::Uuid::try_parse(client_id).is_err() {
        return Err(IdentityError::invalid("client_id", "must be a UUID like 0b5e8f3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"));
    }
    if client_secret.len() > MAX_CLIENT_SECRET_BYTES {
        return Err(IdentityError::invalid("client_secret", format!("longer than {MAX_CLIENT_SECRET_BYTES} bytes")));
    }
    Ok(())
}

/// Checks a client id and secret and issues a token valid for `ttl`.
///
/// - Malformed input is INVALID_ARGUMENT and leaves nothing behind.
/// - Callers past the failure limits of `throttle` are refused ([`IdentityError::Throttled`]) without a lookup.
/// - Successes and failures for existing client ids are audited (`login-identity`; a failure's actor is
///   `unknownUser` in the client id's org). Failures for client ids that do not exist are audited as one summary
///   entry per [`UNKNOWN_CLIENT_SUMMARY_INTERVAL`](super::login_throttle::UNKNOWN_CLIENT_SUMMARY_INTERVAL)
///   (`attempts` counts them), so guessing ids cannot fill the disk.
pub async fn login(
    store: &Store,
    throttle: &LoginThrottle,
    meta: &RequestMeta,
    client_id: &str,
    client_secret: &str,
    ttl: Duration,
) -> Result<LoginOutcome, IdentityError> {
    validate(client_id, client_secret)?;
    if let Some(retry_after) = throttle.wait(client_id, &meta.ip) {
        return Err(IdentityError::Throttled { retry_after });
    }
    let unknown = |org_id: String| AuditActor { kind: "unknownUser", id: String::new(), name: String::new(), org_id };
    // Looked up outside a write transaction: unknown client ids must not queue for the write lock.
    let identity = identity::Entity::find().filter(identity::Column::ClientId.eq(client_id)).one(store.conn()).await?;
    let Some(identity) = identity else {
        throttle.failed(client_id, &meta.ip);
        if let Some(attempts) = throttle.unknown_client_failed() {
            let txn = store.begin_write().await?;
            txn.leaves_secret_rows_alone();
            let metadata =
                json!({ "clientId": client_id, "success": false, "unknownClientId": true, "attempts": attempts });
            audit::record_as(&txn, &unknown(String::new()), meta, Entry::org("login-identity", metadata));
            txn.commit().await?;
        }
        return Err(IdentityError::Unauthenticated(BAD_CREDENTIALS));
    };
    let txn = store.begin_write().await?;
    txn.leaves_secret_rows_alone();
    let (actor, result) = match issue_token(&txn, &identity, client_secret, ttl).await? {
        Ok(outcome) => {
            throttle.succeeded(client_id, &meta.ip);
            let actor = AuditActor { kind: "identity", id: identity.id, name: identity.name, org_id: identity.org_id };
            (actor, Ok(outcome))
        }
        Err(reason) => {
            throttle.failed(client_id, &meta.ip);
            (unknown(identity.org_id), Err(IdentityError::Unauthenticated(reason)))
        }
    };
    let entry = Entry::org("login-identity", json!({ "clientId": client_id, "success": result.is_ok() }));
    audit::record_as(&txn, &actor, meta, entry);
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
    // Locked until commit: `uses` is read, checked against `max_uses` and written back, so two logins with a
    // single-use secret on two instances must not both read 0.
    let secret = client_secret::Entity::find()
        .filter(client_secret::Column::SecretHash.eq(credentials::hash(client_secret)))
        .filter(client_secret::Column::IdentityId.eq(&identity.id))
        .lock_exclusive()
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

/// A bearer token that did not authenticate.
#[derive(Debug)]
pub struct RejectedToken {
    /// The identity the token was issued to, when the token exists but was revoked or has expired: such a
    /// rejection is audited for that identity. `None` for tokens that never existed.
    pub owner: Option<AuditActor>,
}

impl From<RejectedToken> for IdentityError {
    fn from(_: RejectedToken) -> Self {
        IdentityError::Unauthenticated(BAD_TOKEN)
    }
}

/// Resolves a bearer token, by its stored hash, to the identity behind it (from the database; see
/// [`TokenCache`](super::TokenCache) for the cached way requests take).
pub(super) async fn authenticate_hash(
    store: &Store,
    token_hash: &str,
) -> Result<Result<Principal, RejectedToken>, IdentityError> {
    let found = access_token::Entity::find()
        .filter(access_token::Column::TokenHash.eq(token_hash))
        .find_also_related(identity::Entity)
        .one(store.conn())
        .await?;
    let Some((token_row, Some(identity))) = found else { return Ok(Err(RejectedToken { owner: None })) };
    if token_row.revoked_at.is_some() || token_row.expires_at <= Utc::now() {
        let owner = AuditActor { kind: "identity", id: identity.id, name: identity.name, org_id: identity.org_id };
        return Ok(Err(RejectedToken { owner: Some(owner) }));
    }
    Ok(Ok(Principal {
        identity_id: identity.id,
        org_id: identity.org_id,
        name: identity.name,
        token_id: token_row.id,
        token_expires_at: token_row.expires_at,
        meta: Default::default(),
        memo: None,
        unconfirmed: false,
    }))
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
