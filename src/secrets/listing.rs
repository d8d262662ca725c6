//! ListSecrets: one page of a folder's (or subtree's) secrets, read from the database by path and key order.
//!
//! Only the requested folder is read, and a page holds bounded work whatever the environment's size: the keys
//! are scanned in chunks without values, values are loaded in small batches for the rows the caller may read,
//! and a page ends at `page_size` rows, at [`MAX_PAGE_BYTES`] of values and names, or after
//! [`MAX_SCANNED_PER_PAGE`] rows examined. Imported secrets (with `include_imports`) follow the local ones.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};

use super::{
    SecretRecord, SecretsError, Vault, audit_entries::list_entry, folders, scope, scope::EnvScope, sealing, subtree,
    validate, values,
};
use crate::{
    audit,
    identity::{
        Principal,
        policy::{Action, Subject},
    },
    store::entities::secret,
};

/// A page ends before its secrets would pass this many bytes, under gRPC's default 4 MiB message limit.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024 + 768 * 1024;
/// A page ends after examining this many stored secrets, even if the caller could read none of them.
pub const MAX_SCANNED_PER_PAGE: u64 = 10_000;
/// Longest `page_token` accepted.
pub const MAX_PAGE_TOKEN_LEN: usize = 4096;
/// Keys examined per query (no values are read for these).
const KEY_CHUNK: u64 = 500;
/// Values loaded per query: at most 32 × 64 KiB in memory at once.
const VALUE_BATCH: usize = 32;
/// Bytes a secret adds to a response besides its value, key, path and comment (ids, times, framing).
const RECORD_OVERHEAD: usize = 160;

/// One page of secrets.
#[derive(Debug)]
pub struct SecretPage {
    pub secrets: Vec<SecretRecord>,
    /// Where the next page starts; None at the end.
    pub next_page_token: Option<String>,
}

/// Where a page resumes: after a local secret, or after an imported key once the local ones are done.
#[derive(Debug, Serialize, Deserialize)]
enum Resume {
    #[serde(rename = "l")]
    Local { path: String, key: String },
    /// `key: None` starts at the first imported secret.
    #[serde(rename = "i")]
    Imported { key: Option<String> },
}

impl Resume {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("plain strings serialise"))
    }

    fn decode(token: &str) -> Result<Option<Self>, SecretsError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || SecretsError::InvalidArgument {
            field: "page_token".into(),
            reason: "is not a token from a previous ListSecrets response".into(),
        };
        if token.len() > MAX_PAGE_TOKEN_LEN {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let resume: Resume = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        // The token only names a position, but it comes back from the caller: hold it to the same rules.
        let (path, key) = match &resume {
            Resume::Local { path, key } => (Some(path), Some(key)),
            Resume::Imported { key } => (None, key.as_ref()),
        };
        if path.is_some_and(|p| validate::folder_path("page_token", p).ok().as_ref() != Some(p))
            || key.is_some_and(|k| validate::secret_key("page_token", k).is_err())
        {
            return Err(invalid());
        }
        Ok(Some(resume))
    }
}

/// What ListSecrets asks for, as the caller wrote it.
#[derive(Debug, Clone, Default)]
pub struct SecretListing<'a> {
    pub project_id: &'a str,
    pub environment: &'a str,
    /// Folder path; empty means `/`.
    pub path: &'a str,
    pub include_imports: bool,
    pub recursive: bool,
    /// 0 means [`crate::paging::DEFAULT_PAGE_SIZE`].
    pub page_size: i32,
    /// Empty for the first page.
    pub page_token: &'a str,
}

/// A validated listing in a resolved scope.
struct Request<'a> {
    scope: &'a EnvScope,
    path: &'a str,
    recursive: bool,
    include_imports: bool,
    size: usize,
}

/// A page being filled.
#[derive(Default)]
struct Filling {
    secrets: Vec<SecretRecord>,
    bytes: usize,
}

impl Filling {
    /// Adds `secret` unless the page is full by count or size; returns whether it was added.
    fn push(&mut self, size: usize, secret: SecretRecord) -> bool {
        let bytes = RECORD_OVERHEAD
            + secret.key.len()
            + secret.path.len()
            + secret.comment.len()
            + secret.value.as_ref().map_or(0, |v| v.expose().len());
        // The first secret always fits: a single value is far below the cap.
        if self.secrets.len() >= size || (!self.secrets.is_empty() && self.bytes + bytes > MAX_PAGE_BYTES) {
            return false;
        }
        self.bytes += bytes;
        self.secrets.push(secret);
        true
    }
}

/// Local secrets of the request after `after`, in `(path, key)` order, as `(id, path, key)` without values.
async fn keys_after(
    db: &impl ConnectionTrait,
    req: &Request<'_>,
    after: Option<&(String, String)>,
    limit: u64,
) -> Result<Vec<(String, String, String)>, SecretsError> {
    let mut query = secret::Entity::find()
        .select_only()
        .columns([secret::Column::Id, secret::Column::Path, secret::Column::Key])
        .filter(secret::Column::EnvironmentId.eq(&req.scope.env.id));
    query = if req.recursive {
        query.filter(subtree::within(secret::Column::Path, req.path))
    } else {
        query.filter(secret::Column::Path.eq(req.path))
    };
    if let Some((path, key)) = after {
        query = query.filter(Condition::any().add(secret::Column::Path.gt(path.as_str())).add(
            Condition::all().add(secret::Column::Path.eq(path.as_str())).add(secret::Column::Key.gt(key.as_str())),
        ));
    }
    Ok(query
        .order_by_asc(secret::Column::Path)
        .order_by_asc(secret::Column::Key)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

impl Vault {
    /// Fills `page` with the local secrets after `after`. Returns where the next page resumes, or None when
    /// the local secrets are exhausted.
    async fn local_page(
        &self,
        req: &Request<'_>,
        page: &mut Filling,
        mut after: Option<(String, String)>,
    ) -> Result<Option<Resume>, SecretsError> {
        let db = self.store.conn();
        let dk = self.data_key(&req.scope.project)?;
        let mut scanned = 0;
        // Rows arrive sorted by path: remember the last path's answer instead of matching each row again.
        let mut readable: Option<(String, bool)> = None;
        loop {
            let limit = KEY_CHUNK.min(MAX_SCANNED_PER_PAGE - scanned);
            let keys = keys_after(db, req, after.as_ref(), limit).await?;
            // The last chunk is short; a chunk left early (the page is full) is not the last.
            let mut exhausted = (keys.len() as u64) < limit;
            let mut wanted = Vec::new();
            for (id, path, key) in keys {
                scanned += 1;
                let allowed = match &readable {
                    Some((last, allowed)) if *last == path => *allowed,
                    _ => {
                        let allowed = req.scope.can(Subject::Secrets, Action::Read, &path);
                        readable = Some((path.clone(), allowed));
                        allowed
                    }
                };
                if allowed {
                    wanted.push(id);
                }
                after = Some((path, key));
                if page.secrets.len() + wanted.len() == req.size {
                    exhausted = false;
                    break;
                }
            }
            for batch in wanted.chunks(VALUE_BATCH) {
                let rows = secret::Entity::find()
                    .filter(secret::Column::Id.is_in(batch.iter().cloned()))
                    .order_by_asc(secret::Column::Path)
                    .order_by_asc(secret::Column::Key)
                    .all(db)
                    .await?;
                for row in rows {
                    let value = sealing::open(&dk, req.scope, &row, row.version, &row.sealed_value)?;
                    if !page.push(req.size, values::record(req.scope, row, Some(value))) {
                        // Refused only when the page holds secrets already: resume after the last of them.
                        let last = page.secrets.last().expect("a refused secret follows others");
                        return Ok(Some(Resume::Local { path: last.path.clone(), key: last.key.clone() }));
                    }
                }
            }
            if exhausted {
                return Ok(None);
            }
            if page.secrets.len() == req.size || scanned >= MAX_SCANNED_PER_PAGE {
                return Ok(after.map(|(path, key)| Resume::Local { path, key }));
            }
        }
    }

    /// Fills `page` with the folder's imported secrets after key `after` (local keys shadow imported ones).
    async fn imported_page(
        &self,
        req: &Request<'_>,
        page: &mut Filling,
        after: Option<&str>,
    ) -> Result<Option<Resume>, SecretsError> {
        let local: HashSet<String> = secret::Entity::find()
            .select_only()
            .column(secret::Column::Key)
            .filter(secret::Column::EnvironmentId.eq(&req.scope.env.id))
            .filter(secret::Column::Path.eq(req.path))
            .into_tuple()
            .all(self.store.conn())
            .await?
            .into_iter()
            .collect();
        let imported = self.imported_secrets(req.scope, req.path).await?;
        let mut last: Option<String> = None;
        for secret in imported {
            if local.contains(&secret.key) || after.is_some_and(|a| secret.key.as_str() <= a) {
                continue;
            }
            let key = secret.key.clone();
            if !page.push(req.size, secret) {
                return Ok(Some(Resume::Imported { key: last }));
            }
            last = Some(key);
        }
        Ok(None)
    }

    /// Local secrets after `after`, then (with `include_imports`) imported ones once the local are done.
    async fn local_then_imported(
        &self,
        req: &Request<'_>,
        page: &mut Filling,
        after: Option<(String, String)>,
    ) -> Result<Option<Resume>, SecretsError> {
        match self.local_page(req, page, after).await? {
            None if req.include_imports => self.imported_page(req, page, None).await,
            next => Ok(next),
        }
    }

    /// Lists one page of the secrets of a folder (and its subfolders with `recursive`) with values, ordered by
    /// path and key, then (with `include_imports`) the folder's imported secrets where no local key has the
    /// same name. Only what the caller may read is listed; a folder it may not read is NOT_FOUND.
    pub async fn list_secrets(
        &self,
        caller: &Principal,
        query: &SecretListing<'_>,
    ) -> Result<SecretPage, SecretsError> {
        let path = validate::folder_path("secret_path", query.path)?;
        let size = crate::paging::page_size(query.page_size)
            .map_err(|reason| SecretsError::InvalidArgument { field: "page_size".into(), reason: reason.into() })?;
        let resume = Resume::decode(query.page_token)?;
        let db = self.store.conn();
        let scope = scope::env_scope(db, caller, query.project_id, query.environment).await?;
        scope.grants.require_somewhere_in(Subject::Secrets, Action::Read, &scope.env.slug)?;
        folders::require_readable(db, &scope, Subject::Secrets, &path).await?;
        let req = Request {
            scope: &scope,
            path: &path,
            recursive: query.recursive,
            include_imports: query.include_imports,
            size: size as usize,
        };
        let mut page = Filling::default();
        let next = match resume {
            None => self.local_then_imported(&req, &mut page, None).await?,
            Some(Resume::Local { path, key }) => self.local_then_imported(&req, &mut page, Some((path, key))).await?,
            Some(Resume::Imported { key }) if req.include_imports => {
                self.imported_page(&req, &mut page, key.as_deref()).await?
            }
            Some(Resume::Imported { .. }) => None,
        };
        let entry = list_entry("get-secrets", &scope, &path, page.secrets.len());
        audit::record_read(&self.store, caller, entry).await?;
        Ok(SecretPage { secrets: page.secrets, next_page_token: next.map(|r| r.encode()) })
    }
}
