//! Resolving `(org, project id, environment slug)` to stored rows, with NOT_FOUND for anything outside the
//! caller's org so that other orgs' ids are indistinguishable from unknown ones.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{SecretsError, Vault, validate};
use crate::{
    crypto::DataKey,
    store::entities::{environment, project},
};

/// A project and one of its environments.
pub struct EnvScope {
    pub project: project::Model,
    pub env: environment::Model,
}

pub async fn project(
    db: &impl ConnectionTrait,
    org_id: &str,
    project_id: &str,
) -> Result<project::Model, SecretsError> {
    validate::id("project_id", project_id)?;
    project::Entity::find_by_id(project_id)
        .filter(project::Column::OrgId.eq(org_id))
        .one(db)
        .await?
        .ok_or_else(|| SecretsError::NotFound(format!("project '{project_id}'")))
}

pub async fn environment_of(
    db: &impl ConnectionTrait,
    project: &project::Model,
    field: &str,
    slug: &str,
) -> Result<environment::Model, SecretsError> {
    validate::environment_slug(field, slug)?;
    environment::Entity::find()
        .filter(environment::Column::ProjectId.eq(&project.id))
        .filter(environment::Column::Slug.eq(slug))
        .one(db)
        .await?
        .ok_or_else(|| SecretsError::NotFound(format!("environment '{slug}' in project '{}'", project.id)))
}

pub async fn env_scope(
    db: &impl ConnectionTrait,
    org_id: &str,
    project_id: &str,
    env_slug: &str,
) -> Result<EnvScope, SecretsError> {
    let project = project(db, org_id, project_id).await?;
    let env = environment_of(db, &project, "environment", env_slug).await?;
    Ok(EnvScope { project, env })
}

impl Vault {
    /// Opens the project's data key with the root key.
    pub(super) fn data_key(&self, project: &project::Model) -> Result<DataKey, SecretsError> {
        self.root_key
            .open_data_key(&project.id, &project.sealed_data_key)
            .map_err(|source| SecretsError::Integrity { what: format!("project '{}' data key", project.id), source })
    }
}
