//! `hush.v1.IdentityService`: protobuf in, domain call, protobuf out.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{
    auth::{principal, request_meta},
    convert::timestamp,
};
use crate::{
    identity::{self, Identities, LoginThrottle, policy::RawPolicy},
    pb,
    pb::identity_service_server::IdentityService,
    store::Store,
};

/// The IdentityService handlers.
pub struct IdentityApi {
    store: Store,
    identities: Identities,
    token_ttl: Duration,
    /// Failed-login counters of this instance.
    throttle: LoginThrottle,
}

impl IdentityApi {
    /// Handlers issuing tokens that live for `token_ttl`.
    pub fn new(store: Store, token_ttl: Duration) -> Self {
        Self { identities: Identities::new(store.clone()), store, token_ttl, throttle: LoginThrottle::default() }
    }
}

fn raw_policies(policies: Vec<pb::Policy>) -> Vec<RawPolicy> {
    policies.into_iter().map(Into::into).collect()
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let meta = request_meta(&request);
        let req = request.get_ref();
        let outcome =
            identity::login(&self.store, &self.throttle, &meta, &req.client_id, &req.client_secret, self.token_ttl)
                .await?;
        Ok(Response::new(pb::LoginResponse {
            access_token: outcome.access_token,
            expires_at: timestamp(outcome.expires_at),
            identity_id: outcome.identity_id,
            org_id: outcome.org_id,
        }))
    }

    async fn create_identity(
        &self,
        request: Request<pb::CreateIdentityRequest>,
    ) -> Result<Response<pb::CreateIdentityResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let identity = self.identities.create_identity(&caller, &req.name, &req.org_role).await?;
        Ok(Response::new(pb::CreateIdentityResponse { identity: Some(identity.into()) }))
    }

    async fn list_identities(
        &self,
        request: Request<pb::ListIdentitiesRequest>,
    ) -> Result<Response<pb::ListIdentitiesResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let page = self.identities.list_identities(&caller, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListIdentitiesResponse {
            identities: page.identities.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_identity(
        &self,
        request: Request<pb::DeleteIdentityRequest>,
    ) -> Result<Response<pb::DeleteIdentityResponse>, Status> {
        let caller = principal(&request)?;
        self.identities.delete_identity(&caller, &request.get_ref().identity_id).await?;
        Ok(Response::new(pb::DeleteIdentityResponse {}))
    }

    async fn create_client_secret(
        &self,
        request: Request<pb::CreateClientSecretRequest>,
    ) -> Result<Response<pb::CreateClientSecretResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let ttl = match req.ttl {
            None => None,
            Some(ttl) if ttl.seconds == 0 && ttl.nanos == 0 => None,
            Some(ttl) => Some(
                Duration::try_from(ttl)
                    .map_err(|_| super::status::invalid_argument("ttl".into(), "must be a positive duration".into()))?,
            ),
        };
        let created = self
            .identities
            .create_client_secret(&caller, &req.identity_id, &req.description, ttl, req.max_uses)
            .await?;
        Ok(Response::new(pb::CreateClientSecretResponse {
            client_id: created.client_id,
            client_secret: created.client_secret,
            info: Some(created.info.into()),
        }))
    }

    async fn revoke_client_secret(
        &self,
        request: Request<pb::RevokeClientSecretRequest>,
    ) -> Result<Response<pb::RevokeClientSecretResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        self.identities.revoke_client_secret(&caller, &req.identity_id, &req.client_secret_id).await?;
        Ok(Response::new(pb::RevokeClientSecretResponse {}))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let caller = principal(&request)?;
        self.identities.revoke_token(&caller, &request.get_ref().access_token).await?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    async fn revoke_identity_tokens(
        &self,
        request: Request<pb::RevokeIdentityTokensRequest>,
    ) -> Result<Response<pb::RevokeIdentityTokensResponse>, Status> {
        let caller = principal(&request)?;
        let revoked_count = self.identities.revoke_identity_tokens(&caller, &request.get_ref().identity_id).await?;
        Ok(Response::new(pb::RevokeIdentityTokensResponse { revoked_count }))
    }

    async fn list_project_members(
        &self,
        request: Request<pb::ListProjectMembersRequest>,
    ) -> Result<Response<pb::ListProjectMembersResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let page =
            self.identities.list_project_members(&caller, &req.project_id, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListProjectMembersResponse {
            members: page.members.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = principal(&request)?;
        let identity = self.identities.who_am_i(&caller).await?;
        Ok(Response::new(pb::WhoAmIResponse {
            identity: Some(identity.into()),
            token_expire_time: super::convert::timestamp(caller.token_expires_at),
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let role =
            self.identities.create_role(&caller, &req.name, &req.description, &raw_policies(req.policies)).await?;
        Ok(Response::new(pb::CreateRoleResponse { role: Some(role.into()) }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.into_inner();
        let role = self
            .identities
            .update_role(&caller, &req.role_id, &req.name, &req.description, &raw_policies(req.policies))
            .await?;
        Ok(Response::new(pb::UpdateRoleResponse { role: Some(role.into()) }))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let page = self.identities.list_roles(&caller, req.page_size, &req.page_token).await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: page.roles.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = principal(&request)?;
        self.identities.delete_role(&caller, &request.get_ref().role_id).await?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn set_project_role(
        &self,
        request: Request<pb::SetProjectRoleRequest>,
    ) -> Result<Response<pb::SetProjectRoleResponse>, Status> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        self.identities.set_project_role(&caller, &req.project_id, &req.identity_id, &req.role_id).await?;
        Ok(Response::new(pb::SetProjectRoleResponse {}))
    }
}
