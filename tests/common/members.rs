//! Identities and roles made by the admin for permission tests: a policy builder, a logged-in member, a custom
//! role and a project membership.

use hush::pb::{self, identity_service_client::IdentityServiceClient};

use super::{Authed, TestServer};

pub fn policy(subject: &str, actions: &[&str], envs: &[&str], path: &str, inverted: bool) -> pb::Policy {
    pb::Policy {
        subject: subject.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        conditions: Some(pb::PolicyConditions {
            environments: envs.iter().map(|e| e.to_string()).collect(),
            secret_path: path.into(),
        }),
        inverted,
    }
}

/// An identity created by the admin, with a client secret, logged in.
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub client_secret: String,
    pub token: String,
}

pub async fn identity_admin(server: &TestServer) -> IdentityServiceClient<Authed> {
    IdentityServiceClient::new(server.authed(&server.admin_token().await).await)
}

pub async fn new_member(server: &TestServer, name: &str, org_role: &str) -> Member {
    let mut admin = identity_admin(server).await;
    let identity = admin
        .create_identity(pb::CreateIdentityRequest { name: name.into(), org_role: org_role.into() })
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap();
    let secret = admin
        .create_client_secret(pb::CreateClientSecretRequest {
            identity_id: identity.id.clone(),
            description: "test".into(),
            ttl: None,
            max_uses: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secret.client_id, identity.client_id);
    let token = server.login(&secret.client_id, &secret.client_secret).await.unwrap().access_token;
    Member { id: identity.id, client_id: secret.client_id, client_secret: secret.client_secret, token }
}

pub async fn create_role(server: &TestServer, name: &str, policies: Vec<pb::Policy>) -> String {
    let mut admin = identity_admin(server).await;
    let request = pb::CreateRoleRequest { name: name.into(), description: String::new(), policies };
    admin.create_role(request).await.unwrap().into_inner().role.unwrap().id
}

pub async fn assign(server: &TestServer, project: &str, identity: &str, role: &str) {
    let mut admin = identity_admin(server).await;
    let request =
        pb::SetProjectRoleRequest { project_id: project.into(), identity_id: identity.into(), role_id: role.into() };
    admin.set_project_role(request).await.unwrap();
}
