//! `hush.v1.SecretsService`: protobuf in, domain call, protobuf out.

use tonic::{Request, Response, Status};

use super::{
    auth::{principal, strictly},
    convert::AddressesSecret,
};
use crate::{
    identity::Principal,
    pb,
    pb::secrets_service_server::SecretsService,
    secrets::{FolderAddress, SecretInput, SecretListing, SecretsError, Vault},
};

/// The SecretsService handlers.
pub struct SecretsApi {
    vault: Vault,
}

impl SecretsApi {
    /// Handlers over `vault`.
    pub fn new(vault: Vault) -> Self {
        Self { vault }
    }
}

fn folder<'a>(project_id: &'a str, environment: &'a str, path: &'a str) -> FolderAddress<'a> {
    FolderAddress { project_id, environment, path }
}

fn inputs(secrets: Vec<pb::SecretInput>) -> Vec<SecretInput> {
    secrets.into_iter().map(Into::into).collect()
}

/// Runs `call` for the request's caller and, when it finds the permission version assumed for the caller moved
/// (a token resolved from memory, see `auth::DEFERRED_PATHS`), once more as if the request came now.
async fn confirmed<T, R, Answer>(request: &Request<T>, call: impl Fn(Principal) -> Answer) -> Result<R, Status>
where
    Answer: Future<Output = Result<R, SecretsError>>,
{
    match call(principal(request)?).await {
        Err(SecretsError::PermissionsChanged) => Ok(call(strictly(request).await?).await?),
        answer => Ok(answer?),
    }
}

#[tonic::async_trait]
impl SecretsService for SecretsApi {
    async fn create_secret(
        &self,
        request: Request<pb::CreateSecretRequest>,
    ) -> Result<Response<pb::CreateSecretResponse>, Status> {
        let req = request.get_ref();
        let create = |caller: Principal| async move {
            self.vault.create_secret(&caller, &req.address(), &req.value, &req.comment).await
        };
        let secret = confirmed(&request, create).await?;
        Ok(Response::new(pb::CreateSecretResponse { secret: Some(secret.into()) }))
    }

    async fn get_secret(
        &self,
        request: Request<pb::GetSecretRequest>,
    ) -> Result<Response<pb::GetSecretResponse>, Status> {
        let req = request.get_ref();
        let read = |caller: Principal| async move {
            self.vault.get_secret(&caller, &req.address(), req.include_imports, req.version).await
        };
        let secret = confirmed(&request, read).await?;
        Ok(Response::new(pb::GetSecretResponse { secret: Some(secret.into()) }))
    }

    async fn update_secret(
        &self,
        request: Request<pb::UpdateSecretRequest>,
    ) -> Result<Response<pb::UpdateSecretResponse>, Status> {
        let req = request.get_ref();
        let update = |caller: Principal| async move {
            let comment = req.comment.as_deref();
            self.vault.update_secret(&caller, &req.address(), &req.value, comment, req.expected_version).await
        };
        let secret = confirmed(&request, update).await?;
        Ok(Response::new(pb::UpdateSecretResponse { secret: Some(secret.into()) }))
    }

    async fn delete_secret(
        &self,
        request: Request<pb::DeleteSecretRequest>,
    ) -> Result<Response<pb::DeleteSecretResponse>, Status> {
        let req = request.get_ref();
        let delete = |caller: Principal| async move {
            self.vault.delete_secret(&caller, &req.address(), req.expected_version).await
        };
        confirmed(&request, delete).await?;
        Ok(Response::new(pb::DeleteSecretResponse {}))
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let query = SecretListing {
            project_id: &req.project_id,
            environment: &req.environment,
            path: &req.secret_path,
            include_imports: req.include_imports,
            recursive: req.recursive,
            page_size: req.page_size,
            page_token: &req.page_token,
        };
        let page = self.vault.list_secrets(&caller, &query).await?;
        Ok(Response::new(pb::ListSecretsResponse {
            secrets: page.secrets.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn batch_create_secrets(
        &self,
        request: Request<pb::BatchCreateSecretsRequest>,
    ) -> Result<Response<pb::BatchCreateSecretsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let secrets = self
            .vault
            .batch_create_secrets(
                &caller,
                folder(&req.project_id, &req.environment, &req.secret_path),
                &inputs(req.secrets),
            )
            .await?;
        Ok(Response::new(pb::BatchCreateSecretsResponse { secrets: secrets.into_iter().map(Into::into).collect() }))
    }

    async fn batch_update_secrets(
        &self,
        request: Request<pb::BatchUpdateSecretsRequest>,
    ) -> Result<Response<pb::BatchUpdateSecretsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let secrets = self
            .vault
            .batch_update_secrets(
                &caller,
                folder(&req.project_id, &req.environment, &req.secret_path),
                &inputs(req.secrets),
                &req.expected_versions,
                req.allow_missing,
            )
            .await?;
        Ok(Response::new(pb::BatchUpdateSecretsResponse { secrets: secrets.into_iter().map(Into::into).collect() }))
    }

    async fn batch_delete_secrets(
        &self,
        request: Request<pb::BatchDeleteSecretsRequest>,
    ) -> Result<Response<pb::BatchDeleteSecretsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        self.vault
            .batch_delete_secrets(
                &caller,
                folder(&req.project_id, &req.environment, &req.secret_path),
                &req.keys,
                &req.expected_versions,
            )
            .await?;
        Ok(Response::new(pb::BatchDeleteSecretsResponse {}))
    }

    async fn list_secret_versions(
        &self,
        request: Request<pb::ListSecretVersionsRequest>,
    ) -> Result<Response<pb::ListSecretVersionsResponse>, Status> {
        let caller = principal(&request)?;
        let versions = self.vault.list_secret_versions(&caller, &request.get_ref().address()).await?;
        Ok(Response::new(pb::ListSecretVersionsResponse { versions: versions.into_iter().map(Into::into).collect() }))
    }

    async fn rollback_secret(
        &self,
        request: Request<pb::RollbackSecretRequest>,
    ) -> Result<Response<pb::RollbackSecretResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let secret = self.vault.rollback_secret(&caller, &req.address(), req.version, req.expected_version).await?;
        Ok(Response::new(pb::RollbackSecretResponse { secret: Some(secret.into()) }))
    }

    async fn create_folder(
        &self,
        request: Request<pb::CreateFolderRequest>,
    ) -> Result<Response<pb::CreateFolderResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let folder = self.vault.create_folder(&caller, &req.project_id, &req.environment, &req.path).await?;
        Ok(Response::new(pb::CreateFolderResponse { folder: Some(folder.into()) }))
    }

    async fn list_folders(
        &self,
        request: Request<pb::ListFoldersRequest>,
    ) -> Result<Response<pb::ListFoldersResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let folders = self
            .vault
            .list_folders(&caller, &req.project_id, &req.environment, &req.secret_path, req.recursive)
            .await?;
        Ok(Response::new(pb::ListFoldersResponse { folders: folders.into_iter().map(Into::into).collect() }))
    }

    async fn delete_folder(
        &self,
        request: Request<pb::DeleteFolderRequest>,
    ) -> Result<Response<pb::DeleteFolderResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let deleted = self.vault.delete_folder(&caller, &req.project_id, &req.environment, &req.path).await?;
        Ok(Response::new(pb::DeleteFolderResponse { deleted_secrets: deleted as i64 }))
    }

    async fn create_secret_import(
        &self,
        request: Request<pb::CreateSecretImportRequest>,
    ) -> Result<Response<pb::CreateSecretImportResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let import = self
            .vault
            .create_secret_import(
                &caller,
                &req.project_id,
                &req.environment,
                &req.secret_path,
                &req.import_environment,
                &req.import_path,
            )
            .await?;
        Ok(Response::new(pb::CreateSecretImportResponse { secret_import: Some(import.into()) }))
    }

    async fn list_secret_imports(
        &self,
        request: Request<pb::ListSecretImportsRequest>,
    ) -> Result<Response<pb::ListSecretImportsResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let imports =
            self.vault.list_secret_imports(&caller, &req.project_id, &req.environment, &req.secret_path).await?;
        Ok(Response::new(pb::ListSecretImportsResponse {
            secret_imports: imports.into_iter().map(Into::into).collect(),
        }))
    }

    async fn delete_secret_import(
        &self,
        request: Request<pb::DeleteSecretImportRequest>,
    ) -> Result<Response<pb::DeleteSecretImportResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        self.vault.delete_secret_import(&caller, &req.project_id, &req.secret_import_id).await?;
        Ok(Response::new(pb::DeleteSecretImportResponse {}))
    }
}
