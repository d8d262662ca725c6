//! Loading what a caller may do (its [`Grants`]) and enforcing it: the one place every RPC's permission check
//! goes through.
//!
//! - Org-level subjects (identities, roles, audit logs, audit streams) and creating projects are governed by
//!   the identity's org role.
//! - Project-level subjects (secrets, folders, imports, events, the project itself) are governed by the
//!   identity's role in that project. An org `admin` is admin in every project of its org.

use std::sync::Arc;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{
    Principal, escalation,
    policy::{self, Action, Policy, RawPolicy, Resource, Subject},
};
use crate::store::{
    WriteTxn,
    entities::{authz_version, identity, permission_change, project_membership, role},
};

/// The org role that is admin in every project.
pub(super) const ORG_ADMIN: &str = "admin";

/// A request the caller's policies do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: missing '{subject}:{action}'{location}")]
pub struct Denied {
    /// The subject that was missing.
    pub subject: Subject,
    /// The action that was missing.
    pub action: Action,
    /// Where, e.g. ` on prod:/api`.
    pub location: String,
}

/// The policies in force for one caller in one scope (its org, or one project). Clones share the policies:
/// every open stream of a token holds its grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    policies: Arc<[Policy]>,
}

impl Grants {
    /// Grants holding exactly `policies`.
    pub fn new(policies: Vec<Policy>) -> Self {
        Self { policies: policies.into() }
    }

    /// Whether `other` is a clone of these grants (and so allows exactly the same).
    pub fn same_as(&self, other: &Grants) -> bool {
        Arc::ptr_eq(&self.policies, &other.policies)
    }

    /// Whether the action is allowed at `resource`.
    pub fn can(&self, subject: Subject, action: Action, resource: Resource<'_>) -> bool {
        policy::allows(&self.policies, subject, action, &resource)
    }

    /// Fails with [`Denied`] naming what was missing unless the action is allowed.
    pub fn require(&self, subject: Subject, action: Action, resource: Resource<'_>) -> Result<(), Denied> {
        if self.can(subject, action, resource) {
            Ok(())
        } else {
            Err(Denied { subject, action, location: resource.to_string() })
        }
    }

    /// Fails unless some allowing policy names `subject` and `action`, whatever its conditions.
    pub fn require_anywhere(&self, subject: Subject, action: Action) -> Result<(), Denied> {
        let any = self.policies.iter().any(|p| !p.inverted && p.subject == subject && p.actions.contains(&action));
        if any { Ok(()) } else { Err(Denied { subject, action, location: String::new() }) }
    }

    /// Fails unless the action could be allowed for some folder inside `environment` (`None`: any) and `glob`
    /// (`None`: any path), for events of `event_type` (`None`: any type, or not about events).
    pub fn require_within(
        &self,
        subject: Subject,
        action: Action,
        environment: Option<&str>,
        glob: Option<&super::glob::PathGlob>,
        event_type: Option<&str>,
    ) -> Result<(), Denied> {
        if policy::could_allow_within(&self.policies, subject, action, environment, glob, event_type) {
            return Ok(());
        }
        let mut location = match (environment, glob) {
            (Some(env), Some(glob)) => format!(" in {env}:{}", glob.as_str()),
            (Some(env), None) => format!(" in {env}"),
            (None, Some(glob)) => format!(" in {}", glob.as_str()),
            (None, None) => String::new(),
        };
        if let Some(event_type) = event_type {
            location.push_str(&format!(" for {event_type}"));
        }
        Err(Denied { subject, action, location })
    }

    /// Whether these grants allow nothing at all (the caller is not a member of the project).
    pub fn is_empty(&self) -> bool {
        self.policies.iter().all(|p| p.inverted)
    }

    /// The no-escalation rule: fails naming the first permission of `target` these grants lack; `what` names
    /// what would hold it (e.g. `role 'admin'`).
    pub fn require_covers(&self, target: &[Policy], what: &str) -> Result<(), Denied> {
        escalation::covers(&self.policies, target).map_err(|missing| missing.denied(what))
    }

    /// Fails unless the action could be allowed for some folder of `environment`.
    pub fn require_somewhere_in(&self, subject: Subject, action: Action, environment: &str) -> Result<(), Denied> {
        if policy::allows_somewhere_in(&self.policies, subject, action, environment) {
            Ok(())
        } else {
            Err(Denied { subject, action, location: format!(" in {environment}") })
        }
    }
}

/// The policies of role `role_id` (a built-in name or a custom role id of `org_id`); empty when unknown.
pub async fn role_policies(
    db: &impl ConnectionTrait,
    org_id: &str,
    role_id: &str,
) -> Result<Vec<Policy>, sea_orm::DbErr> {
    if let Some(policies) = policy::built_in_role(role_id) {
        return Ok(policies);
    }
    let Some(row) = role::Entity::find_by_id(role_id).filter(role::Column::OrgId.eq(org_id)).one(db).await? else {
        return Ok(Vec::new());
    };
    Ok(stored_policies(&row))
}

/// Decodes a custom role's stored policies. They were validated before they were stored; if any no longer
/// validates (stored under older, looser rules, or edited by hand) the role grants nothing: skipping just the
/// bad one could drop a deny rule and widen access.
pub fn stored_policies(row: &role::Model) -> Vec<Policy> {
    let decoded =
        serde_json::from_value::<Vec<RawPolicy>>(row.policies.clone()).map_err(|e| e.to_string()).and_then(|raw| {
            raw.iter().enumerate().map(|(i, p)| p.validate(i)).collect::<Result<_, _>>().map_err(|e| e.to_string())
        });
    decoded.unwrap_or_else(|error| {
        tracing::warn!(role_id = %row.id, %error, "stored role no longer validates; it grants nothing until edited");
        Vec::new()
    })
}

/// Whether a policy is in force when its role is an org role: org-level subjects, and `projects` (creating them).
pub(super) fn is_org_level(p: &Policy) -> bool {
    !p.subject.is_project_level() || p.subject == Subject::Projects
}

/// What role `role_id` grants as an org role.
pub async fn org_role_policies(
    db: &impl ConnectionTrait,
    org_id: &str,
    role_id: &str,
) -> Result<Vec<Policy>, sea_orm::DbErr> {
    Ok(role_policies(db, org_id, role_id).await?.into_iter().filter(is_org_level).collect())
}

/// What role `role_id` grants as a project role.
pub async fn project_role_policies(
    db: &impl ConnectionTrait,
    org_id: &str,
    role_id: &str,
) -> Result<Vec<Policy>, sea_orm::DbErr> {
    Ok(role_policies(db, org_id, role_id).await?.into_iter().filter(|p| p.subject.is_project_level()).collect())
}

async fn org_role(db: &impl ConnectionTrait, caller: &Principal) -> Result<Option<String>, sea_orm::DbErr> {
    Ok(identity::Entity::find_by_id(&caller.identity_id).one(db).await?.and_then(|i| i.org_role))
}

/// The caller's org-level grants: its org role's policies for org-level subjects and project creation.
pub async fn org_grants(db: &impl ConnectionTrait, caller: &Principal) -> Result<Grants, sea_orm::DbErr> {
    let Some(role_id) = org_role(db, caller).await? else { return Ok(Grants::default()) };
    Ok(Grants::new(org_role_policies(db, &caller.org_id, &role_id).await?))
}

/// Whether the caller is an org admin, and so admin in every project of its org.
pub async fn is_org_admin(db: &impl ConnectionTrait, caller: &Principal) -> Result<bool, sea_orm::DbErr> {
    Ok(org_role(db, caller).await?.as_deref() == Some(ORG_ADMIN))
}

/// The caller's grants in one project of its org.
pub async fn project_grants(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
) -> Result<Grants, sea_orm::DbErr> {
    if is_org_admin(db, caller).await? {
        return Ok(Grants::new(policy::built_in_role(ORG_ADMIN).unwrap_or_default()));
    }
    let membership = project_membership::Entity::find()
        .filter(project_membership::Column::ProjectId.eq(project_id))
        .filter(project_membership::Column::IdentityId.eq(&caller.identity_id))
        .one(db)
        .await?;
    let Some(membership) = membership else { return Ok(Grants::default()) };
    Ok(Grants::new(project_role_policies(db, &caller.org_id, &membership.role_id).await?))
}

/// Like [`project_grants`], remembered in the caller's [`AccessMemo`](super::AccessMemo) for the rest of its
/// token's life at the current permission version. Only for checks against the state at the start of a
/// request; the no-escalation checks of identity management read the database.
pub async fn cached_project_grants(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
) -> Result<Grants, sea_orm::DbErr> {
    let Some(memo) = &caller.memo else { return project_grants(db, caller, project_id).await };
    if let Some(grants) = memo.project(project_id) {
        return Ok(grants);
    }
    let grants = project_grants(db, caller, project_id).await?;
    memo.remember(project_id, &grants);
    Ok(grants)
}

/// Whose permissions a change affects.
#[derive(Debug, Clone, Copy)]
pub enum Affected<'a> {
    /// Possibly anyone's (a project or environment went away).
    Everyone,
    /// Only these identities'.
    Identities(&'a [String]),
}

/// Increments the permission version in the caller's transaction and records whom the change affects (see
/// `authz_version`, `permission_change` and [`Store::permission_version`](crate::store::Store::permission_version)):
/// cached tokens and live streams of other identities stay valid.
pub async fn bump_version(txn: &WriteTxn, affected: Affected<'_>) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    authz_version::Entity::update_many()
        .col_expr(authz_version::Column::Version, Expr::col(authz_version::Column::Version).add(1))
        .filter(authz_version::Column::Id.eq(1))
        .exec(&**txn)
        .await?;
    let version = authz_version::Entity::find_by_id(1).one(&**txn).await?.map_or(0, |row| row.version);
    let identities: Vec<&str> = match affected {
        Affected::Everyone => vec![permission_change::EVERYONE],
        Affected::Identities(ids) => ids.iter().map(String::as_str).collect(),
    };
    if !identities.is_empty() {
        let rows = identities.into_iter().map(|id| permission_change::ActiveModel {
            version: sea_orm::Set(version),
            identity_id: sea_orm::Set(id.to_owned()),
        });
        permission_change::Entity::insert_many(rows).on_conflict_do_nothing().exec(&**txn).await?;
    }
    txn.permissions_changed();
    Ok(())
}

/// The identities holding role `role_id`, as org role or in some project.
pub async fn role_holders(db: &impl ConnectionTrait, role_id: &str) -> Result<Vec<String>, sea_orm::DbErr> {
    use sea_orm::QuerySelect;
    let mut holders: Vec<String> = project_membership::Entity::find()
        .select_only()
        .column(project_membership::Column::IdentityId)
        .filter(project_membership::Column::RoleId.eq(role_id))
        .into_tuple()
        .all(db)
        .await?;
    let org: Vec<String> = identity::Entity::find()
        .select_only()
        .column(identity::Column::Id)
        .filter(identity::Column::OrgRole.eq(role_id))
        .into_tuple()
        .all(db)
        .await?;
    holders.extend(org);
    holders.sort();
    holders.dedup();
    Ok(holders)
}
