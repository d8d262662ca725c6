//! Projects and environments.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, ModelTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Query,
};

use super::{SecretsError, Vault, changes, scope, subtree, validate};
use serde_json::json;

use crate::{
    audit::{self, Entry},
    crypto::DataKey,
    events::EventType,
    identity::{
        self, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::entities::{environment, project, project_membership, secret},
};

/// Environments every new project starts with, in display order.
pub const DEFAULT_ENVIRONMENTS: [(&str, &str); 3] =
    [("dev", "Development"), ("staging", "Staging"), ("prod", "Production")];

/// A project as callers see it.
#[derive(Debug, Clone)]
pub struct ProjectRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An environment as callers see it.
#[derive(Debug, Clone)]
pub struct EnvironmentRecord {
    pub id: String,
    pub project_id: String,
    pub slug: String,
    pub name: String,
    pub position: i32,
    pub created_at: DateTime<Utc>,
}

/// One page of projects.
#[derive(Debug)]
pub struct ProjectPage {
    pub projects: Vec<ProjectRecord>,
    /// Id of the last project on the page when more may follow.
    pub next_page_token: Option<String>,
}

impl From<project::Model> for ProjectRecord {
    fn from(m: project::Model) -> Self {
        Self { id: m.id, org_id: m.org_id, name: m.name, created_at: m.created_at }
    }
}

impl From<environment::Model> for EnvironmentRecord {
    fn from(m: environment::Model) -> Self {
        Self {
            id: m.id,
            project_id: m.project_id,
            slug: m.slug,
            name: m.name,
            position: m.position,
            created_at: m.created_at,
        }
    }
}

fn new_environment(project_id: &str, slug: &str, name: &str, position: i32) -> environment::ActiveModel {
    environment::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        project_id: Set(project_id.to_owned()),
        slug: Set(slug.to_owned()),
        name: Set(name.to_owned()),
        position: Set(position),
        created_at: Set(Utc::now()),
        import_source: Set(false),
    }
}

impl Vault {
    /// Creates a project with a fresh data key and the default environments.
    pub async fn create_project(
        &self,
        caller: &Principal,
        name: &str,
    ) -> Result<(ProjectRecord, Vec<EnvironmentRecord>), SecretsError> {
        validate::display_name("name", name)?;
        if uuid::Uuid::parse_str(name.trim()).is_ok() {
            // `--project X` takes an id or a name: a name that is an id would address another project.
            return Err(SecretsError::InvalidArgument {
                field: "name".into(),
                reason: "must not be a UUID (project ids are UUIDs)".into(),
            });
        }
        let id = uuid::Uuid::now_v7().to_string();
        let sealed_data_key = self.root_key.seal_data_key(&id, &DataKey::generate());
        let txn = self.store.begin_write().await?;
        let org = access::org_grants(&*txn, caller).await?;
        org.require(Subject::Projects, Action::Create, Resource::default())?;
        // Names address projects (the CLI's --project): a second one of the same name would be ambiguous. The
        // unique index catches a concurrent creation; this check names the project for the caller who comes second.
        let taken = project::Entity::find()
            .filter(project::Column::OrgId.eq(&caller.org_id))
            .filter(project::Column::Name.eq(name.trim()))
            .one(&*txn)
            .await?;
        if taken.is_some() {
            return Err(SecretsError::AlreadyExists(format!("project '{}'", name.trim())));
        }
        let project = project::ActiveModel {
            id: Set(id.clone()),
            org_id: Set(caller.org_id.clone()),
            name: Set(name.trim().to_owned()),
            sealed_data_key: Set(sealed_data_key),
            created_at: Set(Utc::now()),
        }
        .insert(&*txn)
        .await?;
        let mut envs = Vec::with_capacity(DEFAULT_ENVIRONMENTS.len());
        for (position, (slug, env_name)) in DEFAULT_ENVIRONMENTS.iter().enumerate() {
            envs.push(new_environment(&id, slug, env_name, position as i32).insert(&*txn).await?.into());
        }
        // The creator administers what it created, unless it already does as org admin.
        if !access::project_grants(&*txn, caller, &id).await?.can(Subject::Projects, Action::Edit, Resource::default())
        {
            identity::add_membership(&*txn, &id, &caller.identity_id, "admin").await?;
        }
        audit::record(&txn, caller, Entry::project("create-project", &id, json!({ "name": project.name })));
        txn.commit().await?;
        Ok((project.into(), envs))
    }

    /// Reads one project of the org.
    pub async fn get_project(&self, caller: &Principal, project_id: &str) -> Result<ProjectRecord, SecretsError> {
        let scope = scope::project(self.store.conn(), caller, project_id).await?;
        scope.grants.require(Subject::Projects, Action::Read, Resource::default())?;
        audit::record_read(&self.store, caller, Entry::project("get-project", &scope.project.id, json!({}))).await?;
        Ok(scope.project.into())
    }

    /// Lists the org's projects in creation order (ids are time-ordered UUIDv7), keyset-paginated by id.
    pub async fn list_projects(
        &self,
        caller: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<ProjectPage, SecretsError> {
        let size = crate::paging::page_size(page_size)
            .map_err(|reason| SecretsError::InvalidArgument { field: "page_size".into(), reason: reason.into() })?;
        let db = self.store.conn();
        let mut query = project::Entity::find().filter(project::Column::OrgId.eq(&caller.org_id));
        if !page_token.is_empty() {
            validate::id("page_token", page_token)?;
            query = query.filter(project::Column::Id.gt(page_token));
        }
        // Only projects the caller can read; membership is checked in SQL so pages stay full.
        if !access::is_org_admin(db, caller).await? {
            let memberships = Query::select()
                .column(project_membership::Column::ProjectId)
                .from(project_membership::Entity)
                .and_where(project_membership::Column::IdentityId.eq(&caller.identity_id))
                .to_owned();
            query = query.filter(project::Column::Id.in_subquery(memberships));
        }
        let rows = query.order_by_asc(project::Column::Id).limit(size + 1).all(db).await?;
        let (rows, next_page_token) = crate::paging::split_page(rows, size, |row| row.id.clone());
        let projects: Vec<ProjectRecord> = rows.into_iter().map(Into::into).collect();
        audit::record_read(&self.store, caller, Entry::org("get-projects", json!({ "count": projects.len() }))).await?;
        Ok(ProjectPage { projects, next_page_token })
    }

    /// Deletes a project and everything in it.
    pub async fn delete_project(&self, caller: &Principal, project_id: &str) -> Result<(), SecretsError> {
        let txn = self.store.begin_write().await?;
        let scope = scope::project(&*txn, caller, project_id).await?;
        scope.grants.require(Subject::Projects, Action::Delete, Resource::default())?;
        scope::lock_project(&txn, &scope.project).await?;
        // Everything in it goes: the caller must be able to delete every member of every environment, and
        // no write may be half-way inside one of them.
        let envs =
            environment::Entity::find().filter(environment::Column::ProjectId.eq(&scope.project.id)).all(&*txn).await?;
        scope::lock_environments(&txn, &envs.iter().collect::<Vec<_>>()).await?;
        for env in envs {
            subtree::require_delete(&*txn, &scope.with_env(env), "/").await?;
        }
        let entry = Entry::project("delete-project", &scope.project.id, json!({ "name": scope.project.name }));
        audit::record(&txn, caller, entry);
        scope.project.clone().delete(&*txn).await?;
        // Memberships went with it, and cached scopes must not outlive it.
        access::bump_version(&txn, access::Affected::Everyone).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Adds an environment after the existing ones.
    pub async fn create_environment(
        &self,
        caller: &Principal,
        project_id: &str,
        slug: &str,
        name: &str,
    ) -> Result<EnvironmentRecord, SecretsError> {
        validate::environment_slug("slug", slug)?;
        let name = if name.is_empty() { slug } else { name };
        validate::display_name("name", name)?;
        let txn = self.store.begin_write().await?;
        let scope::ProjectScope { project, grants } = scope::project(&*txn, caller, project_id).await?;
        grants.require(Subject::Projects, Action::Edit, Resource::default())?;
        // Orders concurrent creations: the slug check and the next position see each other's rows.
        scope::lock_project(&txn, &project).await?;
        let existing =
            environment::Entity::find().filter(environment::Column::ProjectId.eq(&project.id)).all(&*txn).await?;
        if existing.iter().any(|e| e.slug == slug) {
            return Err(SecretsError::AlreadyExists(format!("environment '{slug}'")));
        }
        let position = existing.iter().map(|e| e.position + 1).max().unwrap_or(0);
        let env = new_environment(&project.id, slug, name, position).insert(&*txn).await?;
        let entry = Entry::project("create-environment", &project.id, json!({ "environment": slug, "name": name }));
        audit::record(&txn, caller, entry);
        txn.commit().await?;
        Ok(env.into())
    }

    /// Lists a project's environments in display order.
    pub async fn list_environments(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Vec<EnvironmentRecord>, SecretsError> {
        let scope::ProjectScope { project, grants } = scope::project(self.store.conn(), caller, project_id).await?;
        grants.require(Subject::Projects, Action::Read, Resource::default())?;
        let envs = environment::Entity::find()
            .filter(environment::Column::ProjectId.eq(&project.id))
            .order_by_asc(environment::Column::Position)
            .all(self.store.conn())
            .await?;
        let entry = Entry::project("get-environments", &project.id, json!({ "count": envs.len() }));
        audit::record_read(&self.store, caller, entry).await?;
        Ok(envs.into_iter().map(Into::into).collect())
    }

    /// Deletes an environment with its folders, secrets, versions and imports (foreign keys cascade).
    /// Returns how many secrets went with it.
    pub async fn delete_environment(
        &self,
        caller: &Principal,
        project_id: &str,
        slug: &str,
    ) -> Result<u64, SecretsError> {
        let txn = self.store.begin_write().await?;
        let scope = scope::env_scope_for_write(&txn, caller, project_id, slug).await?;
        scope.grants.require(Subject::Projects, Action::Edit, Resource::default())?;
        subtree::require_delete(&*txn, &scope, "/").await?;
        let rows: Vec<(String, String, i32)> = secret::Entity::find()
            .select_only()
            .columns([secret::Column::Path, secret::Column::Key, secret::Column::Version])
            .filter(secret::Column::EnvironmentId.eq(&scope.env.id))
            .into_tuple()
            .all(&*txn)
            .await?;
        let changed: Vec<_> =
            rows.iter().map(|(path, key, version)| changes::Changed::deleted(path, key, *version)).collect();
        changes::secrets_changed(&txn, &scope, caller, EventType::Delete, "delete-environment", &changed).await?;
        let entry = Entry::project(
            "delete-environment",
            &scope.project.id,
            json!({ "environment": scope.env.slug, "deletedSecrets": changed.len() }),
        );
        audit::record(&txn, caller, entry);
        scope.env.clone().delete(&*txn).await?;
        // Cached scopes must not outlive it.
        access::bump_version(&txn, access::Affected::Everyone).await?;
        txn.commit().await?;
        Ok(changed.len() as u64)
    }
}
