//! `hush.v1.ProjectsService`: protobuf in, domain call, protobuf out.

use tonic::{Request, Response, Status};

use super::auth::principal;
use crate::{pb, pb::projects_service_server::ProjectsService, secrets::Vault};

/// The ProjectsService handlers.
pub struct ProjectsApi {
    vault: Vault,
}

impl ProjectsApi {
    /// Handlers over `vault`.
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }
}

#[tonic::async_trait]
impl ProjectsService for ProjectsApi {
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::CreateProjectResponse>, Status> {
        let caller = principal(&request)?;
        let (project, envs) = self.vault.create_project(&caller, &request.get_ref().name).await?;
        Ok(Response::new(pb::CreateProjectResponse {
            project: Some(project.into()),
            environments: envs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::GetProjectResponse>, Status> {
        let caller = principal(&request)?;
        let project = self.vault.get_project(&caller, &request.get_ref().project_id).await?;
        Ok(Response::new(pb::GetProjectResponse { project: Some(project.into()) }))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let page = self.vault.list_projects(&caller, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: page.projects.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<pb::DeleteProjectResponse>, Status> {
        let caller = principal(&request)?;
        self.vault.delete_project(&caller, &request.get_ref().project_id).await?;
        Ok(Response::new(pb::DeleteProjectResponse {}))
    }

    async fn create_environment(
        &self,
        request: Request<pb::CreateEnvironmentRequest>,
    ) -> Result<Response<pb::CreateEnvironmentResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let env = self.vault.create_environment(&caller, &req.project_id, &req.slug, &req.name).await?;
        Ok(Response::new(pb::CreateEnvironmentResponse { environment: Some(env.into()) }))
    }

    async fn list_environments(
        &self,
        request: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        let caller = principal(&request)?;
        let envs = self.vault.list_environments(&caller, &request.get_ref().project_id).await?;
        Ok(Response::new(pb::ListEnvironmentsResponse { environments: envs.into_iter().map(Into::into).collect() }))
    }

    async fn delete_environment(
        &self,
        request: Request<pb::DeleteEnvironmentRequest>,
    ) -> Result<Response<pb::DeleteEnvironmentResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let deleted = self.vault.delete_environment(&caller, &req.project_id, &req.environment).await?;
        Ok(Response::new(pb::DeleteEnvironmentResponse { deleted_secrets: deleted as i64 }))
    }
}
