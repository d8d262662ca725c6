//! Who holds which role in a project (ListProjectMembers), and who the caller is (WhoAmI).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use super::{
    Identities, IdentityError, IdentityRecord, Principal, access,
    policy::{self, Action, Resource, Subject},
};
use crate::{
    audit::{self, Entry},
    store::entities::{identity, project, project_membership, role},
};

/// An identity's role in a project.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub identity_id: String,
    pub identity_name: String,
    /// A built-in role name or a custom role id.
    pub role_id: String,
    pub role_name: String,
    pub created_at: DateTime<Utc>,
}

/// One page of members.
#[derive(Debug)]
pub struct MemberPage {
    pub members: Vec<MemberRecord>,
    /// Id of the last membership on the page when more may follow.
    pub next_page_token: Option<String>,
}

impl Identities {
    /// The memberships of a project, oldest first (membership ids are UUIDv7), keyset-paginated by their id.
    /// A project the caller has no role in looks the same as one that does not exist.
    pub async fn list_project_members(
        &self,
        caller: &Principal,
        project_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<MemberPage, IdentityError> {
        let size = crate::paging::page_size(page_size).map_err(|reason| IdentityError::invalid("page_size", reason))?;
        super::manage::check_id("project_id", project_id)?;
        let db = self.store.conn();
        let not_found = || IdentityError::NotFound(format!("project '{project_id}'"));
        let project = project::Entity::find_by_id(project_id)
            .filter(project::Column::OrgId.eq(&caller.org_id))
            .one(db)
            .await?
            .ok_or_else(not_found)?;
        let grants = access::project_grants(db, caller, &project.id).await?;
        if grants.is_empty() {
            return Err(not_found());
        }
        grants.require(Subject::Projects, Action::Read, Resource::default())?;
        let mut query =
            project_membership::Entity::find().filter(project_membership::Column::ProjectId.eq(&project.id));
        if let Some(after) = super::manage::id_after(page_token)? {
            query = query.filter(project_membership::Column::Id.gt(after));
        }
        let rows = query.order_by_asc(project_membership::Column::Id).limit(size + 1).all(db).await?;
        let (rows, next_page_token) = crate::paging::split_page(rows, size, |m| m.id.clone());
        // Names in two queries for the whole page, not two per member.
        let identity_ids: Vec<&str> = rows.iter().map(|m| m.identity_id.as_str()).collect();
        let identity_names: HashMap<String, String> = identity::Entity::find()
            .filter(identity::Column::Id.is_in(identity_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|i| (i.id, i.name))
            .collect();
        let custom: Vec<&str> = rows
            .iter()
            .map(|m| m.role_id.as_str())
            .filter(|role_id| !policy::BUILT_IN_ROLES.contains(role_id))
            .collect();
        let role_names: HashMap<String, String> = role::Entity::find()
            .filter(role::Column::Id.is_in(custom))
            .all(db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        let members: Vec<MemberRecord> = rows
            .into_iter()
            .map(|m| MemberRecord {
                identity_name: identity_names.get(&m.identity_id).cloned().unwrap_or_default(),
                role_name: role_names.get(&m.role_id).cloned().unwrap_or_else(|| m.role_id.clone()),
                identity_id: m.identity_id,
                role_id: m.role_id,
                created_at: m.created_at,
            })
            .collect();
        let entry = Entry::project("get-project-members", &project.id, json!({ "count": members.len() }));
        audit::record_read(&self.store, caller, entry).await?;
        Ok(MemberPage { members, next_page_token })
    }

    /// The caller's own identity, as stored now.
    pub async fn who_am_i(&self, caller: &Principal) -> Result<IdentityRecord, IdentityError> {
        let me = identity::Entity::find_by_id(&caller.identity_id)
            .filter(identity::Column::OrgId.eq(&caller.org_id))
            .one(self.store.conn())
            .await?
            .ok_or_else(|| IdentityError::NotFound("identity".into()))?;
        audit::record_read(&self.store, caller, Entry::org("get-current-identity", json!({}))).await?;
        Ok(me.into())
    }
}
