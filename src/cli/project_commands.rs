//! `hush envs` (list, create, delete a project's environments) and `hush members list` (who holds which role
//! in a project).

use clap::{Args, Subcommand};

use super::{
    client,
    commands::{Target, rpc},
    output::Listing,
};
use crate::pb::{self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient};

/// The project a command works on.
#[derive(Debug, Args)]
pub struct ProjectArg {
    /// Project id or name [default: .hush.toml's].
    #[arg(long, env = "HUSH_PROJECT", default_value = "", hide_default_value = true)]
    project: String,
    #[command(flatten)]
    target: Target,
}

impl ProjectArg {
    /// The project's id, from the flag, `HUSH_PROJECT` or `.hush.toml`.
    async fn id(&self) -> anyhow::Result<String> {
        let given = super::local_defaults::project(self.project.clone())?;
        super::names::project_id(&self.target, &given).await
    }
}

#[derive(Debug, Subcommand)]
pub enum EnvsCommand {
    /// List the environments as `slug<TAB>name<TAB>id`, in display order.
    List {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Add an environment after the existing ones.
    Create {
        /// Slug: lowercase letters, digits and `-`.
        slug: String,
        /// Display name [default: the slug].
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete an environment with every folder, secret and import in it.
    Delete {
        /// Slug.
        slug: String,
        /// Confirm: nothing is deleted without it.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
}

pub async fn envs(command: EnvsCommand) -> anyhow::Result<()> {
    match command {
        EnvsCommand::List { project } => {
            let project_id = project.id().await?;
            let mut client = ProjectsServiceClient::new(client::authed(&project.target).await?);
            let request = pb::ListEnvironmentsRequest { project_id };
            let mut listing = Listing::new(&["SLUG", "NAME", "ID"]);
            for env in client.list_environments(request).await.map_err(rpc)?.into_inner().environments {
                listing.item(&env, vec![env.slug.clone(), env.name.clone(), env.id.clone()]);
            }
            listing.finish();
        }
        EnvsCommand::Create { slug, name, project } => {
            let project_id = project.id().await?;
            let mut client = ProjectsServiceClient::new(client::authed(&project.target).await?);
            let request = pb::CreateEnvironmentRequest { project_id, slug, name };
            let env = client.create_environment(request).await.map_err(rpc)?.into_inner().environment;
            let env = env.ok_or_else(|| anyhow::anyhow!("server sent no environment"))?;
            super::output::single(&env, || env.id.clone());
        }
        EnvsCommand::Delete { slug, yes, project } => {
            let project_id = project.id().await?;
            anyhow::ensure!(yes, "deleting environment {slug} removes every secret in it: add --yes to confirm");
            let mut client = ProjectsServiceClient::new(client::authed(&project.target).await?);
            let request = pb::DeleteEnvironmentRequest { project_id, environment: slug.clone() };
            let deleted = client.delete_environment(request).await.map_err(rpc)?.into_inner().deleted_secrets;
            eprintln!("deleted environment {slug}, with {}", super::output::count(deleted, "secret"));
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List who holds which role in the project as `identity<TAB>identity id<TAB>role`, oldest first. Org
    /// admins are admin in every project without being listed.
    List {
        #[command(flatten)]
        project: ProjectArg,
    },
}

pub async fn members(command: MembersCommand) -> anyhow::Result<()> {
    let MembersCommand::List { project } = command;
    let project_id = project.id().await?;
    let mut client = IdentityServiceClient::new(client::authed(&project.target).await?);
    let mut listing = Listing::new(&["IDENTITY", "IDENTITY ID", "ROLE"]);
    let mut page_token = String::new();
    loop {
        let request = pb::ListProjectMembersRequest { project_id: project_id.clone(), page_size: 0, page_token };
        let page = client.list_project_members(request).await.map_err(rpc)?.into_inner();
        for member in page.members {
            let columns = vec![member.identity_name.clone(), member.identity_id.clone(), member.role_name.clone()];
            listing.item(&member, columns);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    listing.finish();
    Ok(())
}
