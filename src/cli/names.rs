//! Names where ids are expected: `--project`, `--identity` and `--role` take either. An id (a UUID, or a
//! built-in role's name) is used as it is, without a call; a name is looked up among what the caller may list.
//! A name that matches nothing is an error listing the near matches; one that matches several lists their ids.

use super::{
    client,
    commands::{Target, rpc},
};
use crate::pb::{self, identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient};

/// Built-in roles, whose ids are their names.
const BUILT_IN_ROLES: [&str; 3] = ["admin", "member", "viewer"];

fn is_id(given: &str) -> bool {
    uuid::Uuid::parse_str(given).is_ok()
}

/// One page of a list call: its (id, name) pairs and the next page's token (empty at the end).
type Page = Result<(Vec<(String, String)>, String), tonic::Status>;

/// Every (id, name) a paged list call returns: `page` asks `client` for the page at a token.
async fn every_page<C, F>(client: &mut C, mut page: F) -> anyhow::Result<Vec<(String, String)>>
where
    F: for<'a> FnMut(&'a mut C, String) -> futures_util::future::BoxFuture<'a, Page>,
{
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let (items, next) = page(client, token).await.map_err(rpc)?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

/// The id of the project `given` names (an id, or a project name).
pub async fn project_id(target: &Target, given: &str) -> anyhow::Result<String> {
    if is_id(given) {
        return Ok(given.to_owned());
    }
    let mut client = ProjectsServiceClient::new(client::authed(target).await?);
    let all = every_page(&mut client, |client, page_token| {
        Box::pin(async move {
            let page = client.list_projects(pb::ListProjectsRequest { page_size: 1000, page_token }).await?;
            let page = page.into_inner();
            Ok((page.projects.into_iter().map(|p| (p.id, p.name)).collect(), page.next_page_token))
        })
    })
    .await?;
    pick("project", given, all)
}

/// The id of the identity `given` names (an id, or an identity name).
pub async fn identity_id(target: &Target, given: &str) -> anyhow::Result<String> {
    if is_id(given) {
        return Ok(given.to_owned());
    }
    let mut client = IdentityServiceClient::new(client::authed(target).await?);
    let all = every_page(&mut client, |client, page_token| {
        Box::pin(async move {
            let page = client.list_identities(pb::ListIdentitiesRequest { page_size: 1000, page_token }).await?;
            let page = page.into_inner();
            Ok((page.identities.into_iter().map(|i| (i.id, i.name)).collect(), page.next_page_token))
        })
    })
    .await?;
    pick("identity", given, all)
}

/// The id of the role `given` names (a built-in role, a custom role's id, or its name; empty stays empty).
pub async fn role_id(target: &Target, given: &str) -> anyhow::Result<String> {
    if given.is_empty() || is_id(given) || BUILT_IN_ROLES.contains(&given) {
        return Ok(given.to_owned());
    }
    let mut client = IdentityServiceClient::new(client::authed(target).await?);
    let all = every_page(&mut client, |client, page_token| {
        Box::pin(async move {
            let page = client.list_roles(pb::ListRolesRequest { page_size: 1000, page_token }).await?;
            let page = page.into_inner();
            Ok((page.roles.into_iter().map(|r| (r.id, r.name)).collect(), page.next_page_token))
        })
    })
    .await?;
    pick("role", given, all)
}

/// The id of the one candidate named `given` (candidates are (id, name)).
fn pick(kind: &str, given: &str, candidates: Vec<(String, String)>) -> anyhow::Result<String> {
    let exact: Vec<&(String, String)> = candidates.iter().filter(|(_, name)| name == given).collect();
    match exact.as_slice() {
        [(id, _)] => Ok(id.clone()),
        [] => {
            let near = crate::near_names::near_matches(given, candidates.iter().map(|(_, name)| name.as_str()));
            if near.is_empty() {
                anyhow::bail!("no {kind} is named '{given}'");
            }
            anyhow::bail!("no {kind} is named '{given}'; did you mean {}?", near.join(", "))
        }
        several => {
            let ids: Vec<&str> = several.iter().map(|(id, _)| id.as_str()).collect();
            anyhow::bail!("{} {kind}s are named '{given}': give one of their ids ({})", several.len(), ids.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<(String, String)> {
        [("id-1", "payments"), ("id-2", "billing"), ("id-3", "dup"), ("id-4", "dup")]
            .into_iter()
            .map(|(id, name)| (id.to_owned(), name.to_owned()))
            .collect()
    }

    #[test]
    fn names_resolve_and_mistakes_say_what_is_near() {
        assert_eq!(pick("project", "billing", candidates()).unwrap(), "id-2");
        let near = pick("project", "paymnts", candidates()).unwrap_err().to_string();
        assert_eq!(near, "no project is named 'paymnts'; did you mean payments?");
        let none = pick("project", "zzzzzz", candidates()).unwrap_err().to_string();
        assert_eq!(none, "no project is named 'zzzzzz'");
        let several = pick("project", "dup", candidates()).unwrap_err().to_string();
        assert!(several.starts_with("2 projects are named 'dup'") && several.contains("id-3, id-4"), "{several}");
        assert!(is_id("0194f3c2-5b7e-7c3a-9f00-000000000001") && !is_id("demo"));
    }
}
