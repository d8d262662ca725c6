//! Resolving `(caller, project id, environment slug)` to stored rows and the caller's grants there. Anything
//! outside the caller's org, and anything the caller may not see (see [`super::visibility`]), is NOT_FOUND, so
//! ids and slugs it has no business with are indistinguishable from unknown ones.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{SecretsError, Vault, validate, visibility};
use crate::{
    crypto::DataKey,
    identity::{
        Grants, Principal, access,
        policy::{Action, Resource, Subject},
    },
    store::entities::{environment, project},
};

/// A project of the caller's org with the caller's grants in it.
pub struct ProjectScope {
    pub project: project::Model,
    pub grants: Grants,
}

/// A project, one of its environments, and the caller's grants in the project.
pub struct EnvScope {
    pub project: project::Model,
    pub env: environment::Model,
    pub grants: Grants,
}

pub async fn project(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
) -> Result<ProjectScope, SecretsError> {
    validate::id("project_id", project_id)?;
    let not_found = || SecretsError::NotFound(format!("project '{project_id}'"));
    let project = project::Entity::find_by_id(project_id)
        .filter(project::Column::OrgId.eq(&caller.org_id))
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    let grants = access::project_grants(db, caller, &project.id).await?;
    if !visibility::sees_project(&grants) {
        return Err(not_found());
    }
    Ok(ProjectScope { project, grants })
}

/// Environment `slug` of the scope's project; one the caller may not see is missing to it.
pub async fn environment_of(
    db: &impl ConnectionTrait,
    scope: &ProjectScope,
    field: &str,
    slug: &str,
) -> Result<environment::Model, SecretsError> {
    validate::environment_slug(field, slug)?;
    let not_found = || SecretsError::NotFound(format!("environment '{slug}' in project '{}'", scope.project.id));
    if !visibility::sees_environment(&scope.grants, slug) {
        return Err(not_found());
    }
    environment::Entity::find()
        .filter(environment::Column::ProjectId.eq(&scope.project.id))
        .filter(environment::Column::Slug.eq(slug))
        .one(db)
        .await?
        .ok_or_else(not_found)
}

pub async fn env_scope(
    db: &impl ConnectionTrait,
    caller: &Principal,
    project_id: &str,
    env_slug: &str,
) -> Result<EnvScope, SecretsError> {
    let scope = project(db, caller, project_id).await?;
    let env = environment_of(db, &scope, "environment", env_slug).await?;
    Ok(EnvScope { project: scope.project, env, grants: scope.grants })
}

impl ProjectScope {
    /// The same project and grants, in environment `env`.
    pub fn with_env(&self, env: environment::Model) -> EnvScope {
        EnvScope { project: self.project.clone(), env, grants: self.grants.clone() }
    }
}

impl EnvScope {
    /// Fails with PERMISSION_DENIED unless the caller may do `action` on `subject` at `path` of this environment.
    pub fn require(&self, subject: Subject, action: Action, path: &str) -> Result<(), SecretsError> {
        Ok(self.grants.require(subject, action, Resource::at(&self.env.slug, path))?)
    }

    /// Whether the caller may do `action` on `subject` at `path` of this environment.
    pub fn can(&self, subject: Subject, action: Action, path: &str) -> bool {
        self.grants.can(subject, action, Resource::at(&self.env.slug, path))
    }

    /// The same project and grants, another environment of it.
    pub fn with_env(&self, env: environment::Model) -> EnvScope {
        self.project_scope().with_env(env)
    }

    /// The same project and grants, without the environment.
    pub fn project_scope(&self) -> ProjectScope {
        ProjectScope { project: self.project.clone(), grants: self.grants.clone() }
    }
}

impl Vault {
    /// Whether the root key opens the stored key check, i.e. still matches the data (readiness).
    pub async fn root_key_matches_data(&self) -> Result<bool, sea_orm::DbErr> {
        crate::keys::check::matches(self.store.conn(), &self.root_key).await
    }

    /// Opens the project's data key with the root key.
    pub(super) fn data_key(&self, project: &project::Model) -> Result<DataKey, SecretsError> {
        self.root_key
            .open_data_key(&project.id, &project.sealed_data_key)
            .map_err(|source| SecretsError::Integrity { what: format!("project '{}' data key", project.id), source })
    }
}
