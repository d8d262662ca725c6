//! Where the no-escalation rule (see `escalation.rs`) is applied: nobody hands out an org role, a project role,
//! a role definition or a credential carrying permissions it does not hold itself. An org admin holds
//! everything, so it passes every check.

use std::collections::BTreeSet;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{
    IdentityError, Principal,
    access::{self, ORG_ADMIN},
    policy::{self, Policy},
};
use crate::store::entities::{identity, project_membership};

/// Fails unless the caller holds everything `target` holds, its org role and its role in every project, so
/// that minting a credential for it, or removing it, is not a way to act beyond one's own permissions.
pub(super) async fn require_holds_all_of(
    db: &impl ConnectionTrait,
    caller: &Principal,
    target: &identity::Model,
) -> Result<(), IdentityError> {
    if target.id == caller.identity_id || access::is_org_admin(db, caller).await? {
        return Ok(());
    }
    let what = format!("identity '{}'", target.name);
    if let Some(role_id) = &target.org_role {
        require_may_give_org_role(db, caller, role_id, &what).await?;
    }
    let memberships = project_membership::Entity::find()
        .filter(project_membership::Column::IdentityId.eq(&target.id))
        .all(db)
        .await?;
    for membership in memberships {
        let held = access::project_role_policies(db, &caller.org_id, &membership.role_id).await?;
        let mine = access::project_grants(db, caller, &membership.project_id).await?;
        mine.require_covers(&held, &format!("{what} in project {}", membership.project_id))?;
    }
    Ok(())
}

/// Fails unless the caller may make `role_id` an org role: `admin` is admin in every project, so only an org
/// admin gives it; any other role's org-level policies must be inside the caller's own org grants.
pub(super) async fn require_may_give_org_role(
    db: &impl ConnectionTrait,
    caller: &Principal,
    role_id: &str,
    what: &str,
) -> Result<(), IdentityError> {
    if access::is_org_admin(db, caller).await? {
        return Ok(());
    }
    let given = if role_id == ORG_ADMIN {
        policy::built_in_role(ORG_ADMIN).unwrap_or_default()
    } else {
        access::org_role_policies(db, &caller.org_id, role_id).await?
    };
    access::org_grants(db, caller).await?.require_covers(&given, what)?;
    Ok(())
}

/// Fails unless the caller may define a role with `policies`: their org-level part must be inside the
/// caller's org grants (the role may become an org role), and when the role exists (`role_id`), its
/// project-level part inside the caller's grants in every project where it is assigned. A role that is not
/// assigned anywhere grants nothing in projects; assigning it is checked then.
pub(super) async fn require_may_define_role(
    db: &impl ConnectionTrait,
    caller: &Principal,
    role_id: Option<&str>,
    policies: &[Policy],
    what: &str,
) -> Result<(), IdentityError> {
    if access::is_org_admin(db, caller).await? {
        return Ok(());
    }
    let (org_level, project_level): (Vec<Policy>, Vec<Policy>) =
        policies.iter().cloned().partition(access::is_org_level);
    access::org_grants(db, caller).await?.require_covers(&org_level, what)?;
    let Some(role_id) = role_id else { return Ok(()) };
    let projects: BTreeSet<String> = project_membership::Entity::find()
        .filter(project_membership::Column::RoleId.eq(role_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.project_id)
        .collect();
    for project_id in projects {
        let mine = access::project_grants(db, caller, &project_id).await?;
        mine.require_covers(&project_level, &format!("{what} in project {project_id}"))?;
    }
    Ok(())
}
