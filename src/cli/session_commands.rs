//! Sessions: `hush login`, `hush logout` and `hush whoami`, each for this run's profile (`--profile`).

use anyhow::Context;
use clap::Args;

use super::{
    Session, client,
    commands::{Target, rpc},
    output,
};
use crate::pb::{self, identity_service_client::IdentityServiceClient};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Server URL.
    #[arg(long, env = "HUSH_SERVER", default_value = client::DEFAULT_SERVER)]
    server: String,
    /// PEM CA bundle that signed an https server's certificate (private CA or `--tls-self-signed`); saved with
    /// the session.
    #[arg(long, env = "HUSH_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Client id of the machine identity.
    #[arg(long, env = "HUSH_CLIENT_ID", required_unless_present = "from_file")]
    client_id: Option<String>,
    /// Client secret of the machine identity.
    #[arg(long, env = "HUSH_CLIENT_SECRET", hide_env_values = true, required_unless_present = "from_file")]
    client_secret: Option<String>,
    /// Read `client_id` and `client_secret` from a JSON file such as `<data-dir>/bootstrap.json`.
    #[arg(long, conflicts_with_all = ["client_id", "client_secret"])]
    from_file: Option<std::path::PathBuf>,
}

/// Client credentials as stored in a JSON file: `bootstrap.json`, or what `identities secret create` prints
/// (either output style).
#[derive(serde::Deserialize)]
struct CredentialsFile {
    #[serde(alias = "clientId")]
    client_id: String,
    #[serde(alias = "clientSecret")]
    client_secret: String,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let (client_id, client_secret) = match (&args.from_file, args.client_id, args.client_secret) {
        (Some(path), _, _) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let file: CredentialsFile = serde_json::from_str(&text)
                .with_context(|| format!("{} has no client_id/client_secret", path.display()))?;
            (file.client_id, file.client_secret)
        }
        (None, Some(id), Some(secret)) => (id, secret),
        _ => anyhow::bail!("give --client-id and --client-secret, or --from-file"),
    };
    let ca_cert = args.ca_cert.as_deref().map(std::path::absolute).transpose().context("--ca-cert path")?;
    let session = client::login(args.server, ca_cert, client_id, client_secret).await?;
    let path = session.save()?;
    let profile = match super::session::profile_name() {
        "default" => String::new(),
        name => format!(" for profile {name}"),
    };
    eprintln!("logged in{profile}; token saved to {} (expires {})", path.display(), session.expires_at);
    Ok(())
}

/// `hush logout`: revokes the saved session's token on the server, then deletes the session file. A token the
/// server no longer accepts (expired, revoked) has nothing left to revoke.
pub async fn logout(target: Target) -> anyhow::Result<()> {
    let path = Session::path()?;
    if !path.exists() {
        eprintln!("not logged in");
        return Ok(());
    }
    let session = Session::load()?;
    let server = target.server.unwrap_or(session.server);
    let ca_cert = target.ca_cert.or(session.ca_cert);
    let mut client = IdentityServiceClient::new(client::connect(&server, ca_cert.as_deref()).await?);
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", session.access_token).parse().context("the saved token is not a header value")?;
    let mut request = tonic::Request::new(pb::RevokeTokenRequest { access_token: String::new() });
    request.metadata_mut().insert("authorization", token);
    match client.revoke_token(request).await {
        Ok(_) => {}
        Err(status) if status.code() == tonic::Code::Unauthenticated => {}
        Err(status) => return Err(rpc(status)),
    }
    std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
    eprintln!("logged out: the token is revoked and {} deleted", path.display());
    Ok(())
}

/// `hush whoami`: the identity of this profile's token (asked of the server, so a revoked or expired token
/// says so), its org role, the server and when the token expires.
pub async fn whoami(target: Target) -> anyhow::Result<()> {
    let mut client = IdentityServiceClient::new(client::authed(&target).await?);
    let response = client.who_am_i(pb::WhoAmIRequest {}).await.map_err(rpc)?.into_inner();
    output::single(&response, || {
        let identity = response.identity.clone().unwrap_or_default();
        let expires = output::time(response.token_expire_time, chrono::SecondsFormat::Secs);
        let org_role = if identity.org_role.is_empty() { "none" } else { identity.org_role.as_str() };
        format!(
            "identity\t{}\nid\t{}\nclient id\t{}\norg role\t{org_role}\nprofile\t{}\ntoken expires\t{expires}",
            identity.name,
            identity.id,
            identity.client_id,
            if std::env::var_os("HUSH_TOKEN").is_some() { "(HUSH_TOKEN)" } else { super::session::profile_name() },
        )
    });
    Ok(())
}
