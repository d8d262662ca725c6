//! Roles (built-in and custom) and project memberships.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{
    Identities, IdentityError, Principal,
    access::{self, Affected, bump_version},
    manage, no_escalation,
    policy::{self, Action, Policy, RawPolicy, Resource, Subject},
};
use serde_json::json;

use crate::{
    audit::{self, Entry},
    store::entities::{identity, project, project_membership, role},
};

/// Most policies one role may hold.
pub const MAX_POLICIES: usize = 100;
/// Longest role name.
const MAX_NAME_LEN: usize = 64;

/// A role as callers see it.
#[derive(Debug, Clone)]
pub struct RoleRecord {
    /// The role id: its name for built-in roles, a UUID for custom ones.
    pub id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<Policy>,
    pub built_in: bool,
    pub created_at: Option<DateTime<Utc>>,
}

/// One page of roles.
#[derive(Debug)]
pub struct RolePage {
    pub roles: Vec<RoleRecord>,
    pub next_page_token: Option<String>,
}

fn built_in_record(name: &str) -> RoleRecord {
    RoleRecord {
        id: name.to_owned(),
        name: name.to_owned(),
        description: format!("built-in {name} role"),
        policies: policy::built_in_role(name).unwrap_or_default(),
        built_in: true,
        created_at: None,
    }
}

fn custom_record(row: role::Model) -> RoleRecord {
    RoleRecord {
        policies: access::stored_policies(&row),
        id: row.id,
        name: row.name,
        description: row.description,
        built_in: false,
        created_at: Some(row.created_at),
    }
}

/// Validates a role's name and policies.
fn validate_role(name: &str, raw: &[RawPolicy]) -> Result<Vec<Policy>, IdentityError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(IdentityError::invalid("name", format!("must be 1 to {MAX_NAME_LEN} characters")));
    }
    if policy::BUILT_IN_ROLES.contains(&name) {
        return Err(IdentityError::invalid("name", format!("'{name}' is a built-in role")));
    }
    if raw.len() > MAX_POLICIES {
        return Err(IdentityError::invalid("policies", format!("at most {MAX_POLICIES} policies per role")));
    }
    // A condition naming something no environment can be called (`PROD`, `dev staging`) would never match:
    // refused when written. (Checked here, not when stored roles are read: a role saved before stays usable.)
    for (i, policy) in raw.iter().enumerate() {
        if let Some(bad) =
            policy.environments.iter().find(|env| crate::secrets::validate::environment_slug("", env).is_err())
        {
            let reason = format!("'{bad}' cannot be an environment slug (1 to 64 characters of [a-z0-9-])");
            return Err(IdentityError::invalid(&format!("policies[{i}].conditions.environments"), reason));
        }
    }
    raw.iter()
        .enumerate()
        .map(|(i, p)| p.validate(i).map_err(|e| IdentityError::invalid(&e.field(), e.reason())))
        .collect()
}

/// Fails with INVALID_ARGUMENT unless `role_id` (not a built-in role name) can be a custom role's id.
fn check_custom_role_id(field: &str, role_id: &str) -> Result<(), IdentityError> {
    if uuid::Uuid::parse_str(role_id).is_ok() {
        return Ok(());
    }
    let reason = format!("'{role_id}' is neither a built-in role (admin, member, viewer) nor a role id");
    Err(IdentityError::invalid(field, reason))
}

/// The form policies are stored in (JSON in the roles table).
fn stored_form(policies: &[Policy]) -> serde_json::Value {
    let raw: Vec<RawPolicy> = policies.iter().map(RawPolicy::from).collect();
    serde_json::to_value(raw).expect("policies serialize")
}

impl Identities {
    /// Resolves a role reference (built-in name or custom role id of the caller's org) to its id. A custom role
    /// stays share-locked until the transaction ends, so it is neither edited nor deleted while it is given
    /// (an edit or delete of it waits, or it is NOT_FOUND here).
    pub(super) async fn role_in_org(
        &self,
        db: &impl ConnectionTrait,
        caller: &Principal,
        field: &str,
        role_id: &str,
    ) -> Result<String, IdentityError> {
        if policy::built_in_role(role_id).is_some() {
            return Ok(role_id.to_owned());
        }
        check_custom_role_id(field, role_id)?;
        role::Entity::find_by_id(role_id)
            .filter(role::Column::OrgId.eq(&caller.org_id))
            .lock_shared()
            .one(db)
            .await?
            .map(|r| r.id)
            .ok_or_else(|| IdentityError::NotFound(format!("role '{role_id}'")))
    }

    /// A custom role of the caller's org, locked (`FOR UPDATE`) until the transaction ends: edits and deletes of
    /// one role happen one after the other, each checking the role as the previous one left it.
    async fn custom_role(
        &self,
        db: &impl ConnectionTrait,
        caller: &Principal,
        role_id: &str,
    ) -> Result<role::Model, IdentityError> {
        if policy::built_in_role(role_id).is_some() {
            return Err(IdentityError::FailedPrecondition(format!("built-in role '{role_id}' cannot be changed")));
        }
        check_custom_role_id("role_id", role_id)?;
        role::Entity::find_by_id(role_id)
            .filter(role::Column::OrgId.eq(&caller.org_id))
            .lock_exclusive()
            .one(db)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("role '{role_id}'")))
    }

    /// Creates a custom role.
    pub async fn create_role(
        &self,
        caller: &Principal,
        name: &str,
        description: &str,
        policies: &[RawPolicy],
    ) -> Result<RoleRecord, IdentityError> {
        let validated = validate_role(name, policies)?;
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Roles, Action::Create, Resource::default())?;
        let what = format!("role '{}'", name.trim());
        no_escalation::require_may_define_role(&*txn, caller, None, &validated, &what).await?;
        name_is_free(&*txn, caller, name, None).await?;
        let row = role::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            org_id: Set(caller.org_id.clone()),
            name: Set(name.trim().to_owned()),
            description: Set(description.to_owned()),
            policies: Set(stored_form(&validated)),
            created_at: Set(Utc::now()),
        }
        .insert(&*txn)
        .await?;
        audit::record(
            &txn,
            caller,
            Entry::org("create-role", json!({ "roleId": row.id, "name": row.name, "policies": row.policies })),
        );
        txn.commit().await?;
        Ok(custom_record(row))
    }

    /// Replaces a custom role's name, description and policies; holders' permissions change on their next call.
    pub async fn update_role(
        &self,
        caller: &Principal,
        role_id: &str,
        name: &str,
        description: &str,
        policies: &[RawPolicy],
    ) -> Result<RoleRecord, IdentityError> {
        let validated = validate_role(name, policies)?;
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Roles, Action::Edit, Resource::default())?;
        let row = self.custom_role(&*txn, caller, role_id).await?;
        // Both what the role holds now and what it would hold: editing a role is handing out its permissions.
        let what = format!("role '{}'", row.name);
        let current = access::stored_policies(&row);
        no_escalation::require_may_define_role(&*txn, caller, Some(&row.id), &current, &what).await?;
        no_escalation::require_may_define_role(&*txn, caller, Some(&row.id), &validated, &what).await?;
        name_is_free(&*txn, caller, name, Some(&row.id)).await?;
        let holders = access::role_holders(&*txn, &row.id).await?;
        let mut active = row.into_active_model();
        active.name = Set(name.trim().to_owned());
        active.description = Set(description.to_owned());
        active.policies = Set(stored_form(&validated));
        let row = active.update(&*txn).await?;
        bump_version(&txn, Affected::Identities(&holders)).await?;
        audit::record(
            &txn,
            caller,
            Entry::org("update-role", json!({ "roleId": row.id, "name": row.name, "policies": row.policies })),
        );
        txn.commit().await?;
        Ok(custom_record(row))
    }

    /// Lists the built-in roles, then the org's custom roles oldest first.
    pub async fn list_roles(&self, caller: &Principal, size: i32, page_token: &str) -> Result<RolePage, IdentityError> {
        let size = manage::page_size(size)?;
        let db = self.store.conn();
        access::org_grants(db, caller).await?.require(Subject::Roles, Action::Read, Resource::default())?;
        // The built-in roles come first (their ids are their names), then custom roles by id (oldest first).
        let (built_in, after): (&[&str], Option<&str>) = match page_token {
            "" => (&policy::BUILT_IN_ROLES, None),
            token => match policy::BUILT_IN_ROLES.iter().position(|name| *name == token) {
                Some(at) => (&policy::BUILT_IN_ROLES[at + 1..], None),
                None => (&[], manage::id_after(token)?),
            },
        };
        let mut query = role::Entity::find().filter(role::Column::OrgId.eq(&caller.org_id));
        if let Some(after) = after {
            query = query.filter(role::Column::Id.gt(after));
        }
        let custom = query.order_by_asc(role::Column::Id).limit(size + 1).all(db).await?;
        let roles: Vec<RoleRecord> =
            built_in.iter().map(|n| built_in_record(n)).chain(custom.into_iter().map(custom_record)).collect();
        let (roles, next_page_token) = crate::paging::split_page(roles, size, |r| r.id.clone());
        audit::record_read(&self.store, caller, Entry::org("get-roles", json!({ "count": roles.len() }))).await?;
        Ok(RolePage { roles, next_page_token })
    }

    /// Deletes a custom role; the memberships and org roles that used it are removed with it.
    pub async fn delete_role(&self, caller: &Principal, role_id: &str) -> Result<(), IdentityError> {
        let txn = self.store.begin_write().await?;
        access::org_grants(&*txn, caller).await?.require(Subject::Roles, Action::Delete, Resource::default())?;
        let row = self.custom_role(&*txn, caller, role_id).await?;
        let holders = access::role_holders(&*txn, &row.id).await?;
        project_membership::Entity::delete_many()
            .filter(project_membership::Column::RoleId.eq(&row.id))
            .exec(&*txn)
            .await?;
        for holder in identity::Entity::find().filter(identity::Column::OrgRole.eq(&row.id)).all(&*txn).await? {
            let mut active = holder.into_active_model();
            active.org_role = Set(None);
            active.update(&*txn).await?;
        }
        let entry = Entry::org("delete-role", json!({ "roleId": row.id, "name": row.name }));
        row.delete(&*txn).await?;
        bump_version(&txn, Affected::Identities(&holders)).await?;
        audit::record(&txn, caller, entry);
        txn.commit().await?;
        Ok(())
    }

    /// Gives an identity a role in a project (replacing any it had), or removes its membership when `role_id`
    /// is empty. Needs `projects:edit` in that project.
    pub async fn set_project_role(
        &self,
        caller: &Principal,
        project_id: &str,
        identity_id: &str,
        role_id: &str,
    ) -> Result<(), IdentityError> {
        let txn = self.store.begin_write().await?;
        if uuid::Uuid::parse_str(project_id).is_err() {
            return Err(IdentityError::invalid("project_id", format!("'{project_id}' is not a UUID")));
        }
        // The project row orders membership changes: two calls for one identity run one after the other, each
        // replacing what the previous one left (and a deletion of the project waits for them).
        let project = project::Entity::find_by_id(project_id)
            .filter(project::Column::OrgId.eq(&caller.org_id))
            .lock_exclusive()
            .one(&*txn)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("project '{project_id}'")))?;
        let mine = access::project_grants(&*txn, caller, &project.id).await?;
        if mine.is_empty() {
            // Not a member: the project looks the same as one that does not exist.
            return Err(IdentityError::NotFound(format!("project '{project_id}'")));
        }
        mine.require(Subject::Projects, Action::Edit, Resource::default())?;
        let member = self.identity_in_org(&*txn, caller, identity_id).await?;
        // Before the current membership is touched: a deletion of the role locks it, then its memberships.
        let role_id = match role_id {
            "" => None,
            role_id => Some(self.role_in_org(&*txn, caller, "role_id", role_id).await?),
        };
        let existing = project_membership::Entity::find()
            .filter(project_membership::Column::ProjectId.eq(&project.id))
            .filter(project_membership::Column::IdentityId.eq(&member.id))
            .one(&*txn)
            .await?;
        if let Some(existing) = existing {
            // Changing or removing a membership the caller could not have given is refused too.
            let held = access::project_role_policies(&*txn, &caller.org_id, &existing.role_id).await?;
            mine.require_covers(&held, &format!("identity '{}' (its current role)", member.name))?;
            existing.delete(&*txn).await?;
        }
        if let Some(role_id) = &role_id {
            let given = access::project_role_policies(&*txn, &caller.org_id, role_id).await?;
            mine.require_covers(&given, &format!("role '{role_id}'"))?;
            add_membership(&*txn, &project.id, &member.id, role_id).await?;
        }
        bump_version(&txn, Affected::Identities(std::slice::from_ref(&member.id))).await?;
        let entry = json!({ "identityId": member.id, "roleId": role_id.unwrap_or_default() });
        audit::record(&txn, caller, Entry::project("set-project-role", &project.id, entry));
        txn.commit().await?;
        Ok(())
    }
}

/// Fails with ALREADY_EXISTS when another role of the caller's org (not `except`) has `name`, rather than
/// leaving it to the unique index, whose violation would surface as an internal error.
async fn name_is_free(
    db: &impl ConnectionTrait,
    caller: &Principal,
    name: &str,
    except: Option<&str>,
) -> Result<(), IdentityError> {
    let taken = role::Entity::find()
        .filter(role::Column::OrgId.eq(&caller.org_id))
        .filter(role::Column::Name.eq(name.trim()))
        .one(db)
        .await?;
    match taken {
        Some(other) if Some(other.id.as_str()) != except => {
            Err(IdentityError::AlreadyExists(format!("role '{}'", name.trim())))
        }
        _ => Ok(()),
    }
}

/// Adds a membership row (used by SetProjectRole and when a non-admin creates a project).
pub async fn add_membership(
    db: &impl ConnectionTrait,
    project_id: &str,
    identity_id: &str,
    role_id: &str,
) -> Result<(), sea_orm::DbErr> {
    project_membership::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        project_id: Set(project_id.to_owned()),
        identity_id: Set(identity_id.to_owned()),
        role_id: Set(role_id.to_owned()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
