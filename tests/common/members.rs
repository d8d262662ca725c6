//! Identities with roles in projects: the admin creates an identity, gives it a client secret, logs it in, and
//! assigns it a role, so tests can act as a scoped caller.

use hush::pb::{
    self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
    secrets_service_client::SecretsServiceClient,
};

use super::{Authed, TestServer};

/// A policy on `subject` with `actions`, limited to `envs` (empty: any) and `path` (empty: any).
pub fn policy(subject: &str, actions: &[&str], envs: &[&str], path: &str, inverted: bool) -> pb::Policy {
    pb::Policy {
        subject: subject.into(),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        conditions: Some(pb::PolicyConditions {
            environments: envs.iter().map(|e| e.to_string()).collect(),
            secret_path: path.into(),
            event_types: Vec::new(),
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

impl Member {
    /// SecretsService client acting as this identity.
    pub async fn secrets(&self, server: &TestServer) -> SecretsServiceClient<Authed> {
        SecretsServiceClient::new(server.authed(&self.token).await)
    }

    /// ProjectsService client acting as this identity.
    pub async fn projects(&self, server: &TestServer) -> ProjectsServiceClient<Authed> {
        ProjectsServiceClient::new(server.authed(&self.token).await)
    }
}

/// IdentityService client as the bootstrap admin.
pub async fn identity_admin(server: &TestServer) -> IdentityServiceClient<Authed> {
    IdentityServiceClient::new(server.authed(&server.admin_token().await).await)
}

/// Creates an identity with `org_role` (empty: none), a client secret, and logs it in.
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

/// Creates a custom role as the admin and returns its id.
pub async fn create_role(server: &TestServer, name: &str, policies: Vec<pb::Policy>) -> String {
    let mut admin = identity_admin(server).await;
    let request = pb::CreateRoleRequest { name: name.into(), description: String::new(), policies };
    admin.create_role(request).await.unwrap().into_inner().role.unwrap().id
}

/// Gives `identity` role `role` in `project`, as the admin.
pub async fn assign(server: &TestServer, project: &str, identity: &str, role: &str) {
    let mut admin = identity_admin(server).await;
    let request =
        pb::SetProjectRoleRequest { project_id: project.into(), identity_id: identity.into(), role_id: role.into() };
    admin.set_project_role(request).await.unwrap();
}

/// An identity holding a new role made of `policies` in `project`: the usual scoped caller of a test.
pub async fn member_with(server: &TestServer, project: &str, name: &str, policies: Vec<pb::Policy>) -> Member {
    let role = create_role(server, &format!("{name}-role"), policies).await;
    let member = new_member(server, name, "").await;
    assign(server, project, &member.id, &role).await;
    member
}
