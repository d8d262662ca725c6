//! The `identities` and `roles` commands: machine identities, their client secrets and tokens, custom roles
//! and project memberships. Ids and values go to stdout, one item per line; notes go to stderr.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use super::{
    client::{self, AuthedChannel},
    commands::{Target, rpc},
    output::Listing,
};
use crate::{
    identity::policy::RawPolicy,
    pb::{self, identity_service_client::IdentityServiceClient},
};

/// An IdentityService client for `target`, with the saved session's token.
async fn identity_client(target: &Target) -> anyhow::Result<IdentityServiceClient<AuthedChannel>> {
    Ok(IdentityServiceClient::new(client::authed(target).await?))
}

#[derive(Debug, Subcommand)]
pub enum IdentitiesCommand {
    /// Create a machine identity and print `id<TAB>client_id`; give it a client secret with `secret create`.
    Create {
        /// Identity name, unique in the org.
        name: String,
        /// Org-wide role: admin, member, viewer or a custom role id; none by default.
        #[arg(long, default_value = "", hide_default_value = true)]
        org_role: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the org's identities as `id<TAB>name<TAB>client_id<TAB>org_role` (org role empty when none).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete an identity with its client secrets, tokens and memberships.
    Delete {
        /// Identity id or name.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Create and revoke an identity's client secrets.
    #[command(subcommand)]
    Secret(ClientSecretCommand),
    /// Revoke access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientSecretCommand {
    /// Issue a client secret and print `{"client_id", "client_secret", "client_secret_id"}` as JSON, ready for
    /// `hush login --from-file`. The secret is shown only this once.
    Create {
        /// Identity id or name.
        identity_id: String,
        /// Note about where the secret is used.
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
        /// How long the secret stays valid (`30m`, `1h`, `90d`); never expires by default.
        #[arg(long, value_parser = crate::config::parse_duration)]
        ttl: Option<Duration>,
        /// Number of logins the secret allows; 0 means unlimited.
        #[arg(long, default_value_t = 0)]
        max_uses: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a client secret and the access tokens it issued.
    Revoke {
        /// Identity id or name.
        identity_id: String,
        /// Client secret id, as printed by `secret create`.
        secret_id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke an access token; without TOKEN, the current session's own token (a logout).
    Revoke {
        /// The access token to revoke; default: the one this call is made with.
        token: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Revoke every live access token of an identity (its client secrets stay valid); prints how many.
    RevokeAll {
        /// Identity id or name.
        identity_id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// What `identities secret create` prints: the fields `hush login --from-file` reads, plus the secret's id.
#[derive(Serialize)]
struct ClientSecretJson {
    client_id: String,
    client_secret: String,
    client_secret_id: String,
}

pub async fn identities(command: IdentitiesCommand) -> anyhow::Result<()> {
    match command {
        IdentitiesCommand::Create { name, org_role, target } => {
            let request = pb::CreateIdentityRequest { name, org_role };
            let response = identity_client(&target).await?.create_identity(request).await.map_err(rpc)?;
            let identity = response.into_inner().identity.context("server sent no identity")?;
            super::output::single(&identity, || format!("{}\t{}", identity.id, identity.client_id));
        }
        IdentitiesCommand::List { target } => {
            let mut client = identity_client(&target).await?;
            let mut listing = Listing::new(&["ID", "NAME", "CLIENT ID", "ORG ROLE"]);
            let mut page_token = String::new();
            loop {
                let request = pb::ListIdentitiesRequest { page_size: 0, page_token };
                let page = client.list_identities(request).await.map_err(rpc)?.into_inner();
                for i in page.identities {
                    listing.item(&i, vec![i.id.clone(), i.name.clone(), i.client_id.clone(), i.org_role.clone()]);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            listing.finish();
        }
        IdentitiesCommand::Delete { id, target } => {
            let request = pb::DeleteIdentityRequest { identity_id: super::names::identity_id(&target, &id).await? };
            identity_client(&target).await?.delete_identity(request).await.map_err(rpc)?;
            eprintln!("deleted");
        }
        IdentitiesCommand::Secret(command) => client_secrets(command).await?,
        IdentitiesCommand::Token(TokenCommand::Revoke { token, target }) => {
            let request = pb::RevokeTokenRequest { access_token: token.unwrap_or_default() };
            identity_client(&target).await?.revoke_token(request).await.map_err(rpc)?;
            eprintln!("revoked");
        }
        IdentitiesCommand::Token(TokenCommand::RevokeAll { identity_id, target }) => {
            let identity_id = super::names::identity_id(&target, &identity_id).await?;
            let request = pb::RevokeIdentityTokensRequest { identity_id };
            let response =
                identity_client(&target).await?.revoke_identity_tokens(request).await.map_err(rpc)?.into_inner();
            outln!("{}", response.revoked_count);
        }
    }
    Ok(())
}

async fn client_secrets(command: ClientSecretCommand) -> anyhow::Result<()> {
    match command {
        ClientSecretCommand::Create { identity_id, description, ttl, max_uses, target } => {
            let identity_id = super::names::identity_id(&target, &identity_id).await?;
            let ttl = ttl.map(prost_types::Duration::try_from).transpose().context("--ttl is too long")?;
            let request = pb::CreateClientSecretRequest { identity_id, description, ttl, max_uses };
            let response =
                identity_client(&target).await?.create_client_secret(request).await.map_err(rpc)?.into_inner();
            // The text form is the credentials file `hush login --from-file` reads; so is the JSON one.
            super::output::single(&response, || {
                let file = ClientSecretJson {
                    client_id: response.client_id.clone(),
                    client_secret: response.client_secret.clone(),
                    client_secret_id: response.info.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
                };
                serde_json::to_string_pretty(&file).expect("strings serialize")
            });
            eprintln!("the client secret is shown only this once: keep it safe");
        }
        ClientSecretCommand::Revoke { identity_id, secret_id, target } => {
            let identity_id = super::names::identity_id(&target, &identity_id).await?;
            let request = pb::RevokeClientSecretRequest { identity_id, client_secret_id: secret_id };
            identity_client(&target).await?.revoke_client_secret(request).await.map_err(rpc)?;
            eprintln!("revoked");
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Create a custom role and print its id.
    Create {
        /// Role name, unique in the org.
        name: String,
        /// Policies as a JSON array, inline or `@file.json`: `[{"subject": "secrets", "actions": ["read"],
        /// "environments": ["dev"], "secret_path": "/api/**", "inverted": false}]`; all but subject and actions are
        /// optional; `secret-events` policies may add `"event_types": ["secret:delete"]`.
        #[arg(long, value_name = "JSON")]
        policies: String,
        /// Free-form description.
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// Replace a custom role's name, description and policies (fields not given are cleared).
    Update {
        /// Role id.
        role_id: String,
        /// New name.
        #[arg(long)]
        name: String,
        /// New policies, replacing all current ones; same JSON as for `create`.
        #[arg(long, value_name = "JSON")]
        policies: String,
        /// New description; empty by default.
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the built-in and custom roles as `id<TAB>name<TAB>built-in|custom<TAB>description`; `--output json`
    /// shows their policies (in a shape `--policies` takes back).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete a custom role and the memberships that use it.
    Delete {
        /// Role id.
        role_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Give an identity a role in a project, replacing its current one; `--role ''` removes it from the project.
    Assign {
        /// Project id or name [default: .hush.toml's].
        #[arg(long, env = "HUSH_PROJECT", default_value = "", hide_default_value = true)]
        project: String,
        /// Identity id or name.
        #[arg(long)]
        identity: String,
        /// admin, member, viewer, or a custom role's id or name; empty removes the membership.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Reads the `--policies` value: inline JSON, or `@path` to read it from a file. Each policy is either flat
/// (`{"subject", "actions", "environments", "secret_path", "inverted"}`) or a Policy in protobuf's JSON
/// mapping, as `roles list --output json` prints it (conditions nested), so a listed role's policies can be
/// given back as they are.
fn parse_policies(value: &str) -> anyhow::Result<Vec<pb::Policy>> {
    const SHAPE: &str = "--policies: expected a JSON array of {\"subject\", \"actions\", \"environments\", \"secret_path\", \"event_types\", \"inverted\"}";
    let text = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("--policies: reading {path}"))?,
        None => value.to_owned(),
    };
    let items: Vec<serde_json::Value> = serde_json::from_str(&text).context(SHAPE)?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            if item.get("conditions").is_some() {
                super::output::from_proto_json::<pb::Policy>(item)
                    .with_context(|| format!("--policies: policy {index}"))
            } else {
                let raw: RawPolicy = serde_json::from_value(item).context(SHAPE)?;
                Ok(raw.into())
            }
        })
        .collect()
}

pub async fn roles(command: RolesCommand) -> anyhow::Result<()> {
    match command {
        RolesCommand::Create { name, policies, description, target } => {
            let request = pb::CreateRoleRequest { name, description, policies: parse_policies(&policies)? };
            let response = identity_client(&target).await?.create_role(request).await.map_err(rpc)?;
            let role = response.into_inner().role.context("server sent no role")?;
            super::output::single(&role, || role.id.clone());
        }
        RolesCommand::Update { role_id, name, policies, description, target } => {
            let request = pb::UpdateRoleRequest { role_id, name, description, policies: parse_policies(&policies)? };
            identity_client(&target).await?.update_role(request).await.map_err(rpc)?;
            eprintln!("updated");
        }
        RolesCommand::List { target } => {
            let mut client = identity_client(&target).await?;
            let mut listing = Listing::new(&["ID", "NAME", "KIND", "DESCRIPTION"]);
            let mut page_token = String::new();
            loop {
                let request = pb::ListRolesRequest { page_size: 0, page_token };
                let page = client.list_roles(request).await.map_err(rpc)?.into_inner();
                for role in page.roles {
                    let kind = if role.built_in { "built-in" } else { "custom" };
                    let columns = vec![role.id.clone(), role.name.clone(), kind.to_owned(), role.description.clone()];
                    listing.item(&role, columns);
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            listing.finish();
        }
        RolesCommand::Delete { role_id, target } => {
            let request = pb::DeleteRoleRequest { role_id };
            identity_client(&target).await?.delete_role(request).await.map_err(rpc)?;
            eprintln!("deleted");
        }
        RolesCommand::Assign { project, identity, role, target } => {
            let project = super::local_defaults::project(project)?;
            let project = super::names::project_id(&target, &project).await?;
            let identity = super::names::identity_id(&target, &identity).await?;
            let role = super::names::role_id(&target, &role).await?;
            let removing = role.is_empty();
            let request = pb::SetProjectRoleRequest { project_id: project, identity_id: identity, role_id: role };
            identity_client(&target).await?.set_project_role(request).await.map_err(rpc)?;
            eprintln!("{}", if removing { "removed from the project" } else { "assigned" });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_with_optional_fields_and_reject_unknown_ones() {
        let policies = parse_policies(r#"[{"subject": "secrets", "actions": ["read"]}]"#).unwrap();
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0].conditions, Some(pb::PolicyConditions::default()));
        assert!(!policies[0].inverted);
        let typo = parse_policies(r#"[{"subject": "secrets", "actions": ["read"], "enviroments": ["dev"]}]"#);
        assert!(format!("{:#}", typo.unwrap_err()).contains("unknown field `enviroments`"));
        let not_json = parse_policies("{nope").unwrap_err();
        assert!(format!("{not_json:#}").starts_with("--policies:"), "{not_json:#}");
        let missing = parse_policies("@/nonexistent/policies.json").unwrap_err();
        assert!(format!("{missing:#}").contains("--policies: reading /nonexistent/policies.json"), "{missing:#}");
    }
}
