//! `hush.v1.IdentityService`: Login now; identities, secrets and roles answer UNIMPLEMENTED until the
//! permissions work lands.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use crate::{identity, pb, pb::identity_service_server::IdentityService, store::Store};

/// The IdentityService handlers.
pub struct IdentityApi {
    store: Store,
    token_ttl: Duration,
}

impl IdentityApi {
    /// Handlers issuing tokens that live for `token_ttl`.
    pub fn new(store: Store, token_ttl: Duration) -> Self {
        Self { store, token_ttl }
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let req = request.get_ref();
        let outcome = identity::login(&self.store, &req.client_id, &req.client_secret, self.token_ttl).await?;
        Ok(Response::new(pb::LoginResponse {
            access_token: outcome.access_token,
            expires_at: timestamp(outcome.expires_at),
            identity_id: outcome.identity_id,
            org_id: outcome.org_id,
        }))
    }
}
