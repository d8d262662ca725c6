//! gRPC channel for CLI commands, authenticated with the saved session's token.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::{
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use super::{Session, commands::Target};

/// User agent the CLI sends, so audit logs can tell CLI calls apart.
pub const USER_AGENT: &str = concat!("hush-cli/", env!("CARGO_PKG_VERSION"));

/// Default server address for client commands.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Attaches the bearer token to a call.
pub type Authorize = Box<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>;

/// A channel with the bearer token attached to every call.
pub type AuthedChannel = InterceptedService<Channel, Authorize>;

/// Connects to `server`; `https://` servers are verified against the public web PKI roots and `ca_cert` (a PEM
/// bundle, for private CAs and self-signed certificates).
pub async fn connect(server: &str, ca_cert: Option<&Path>) -> anyhow::Result<Channel> {
    // `127.0.0.1:8080` means plain HTTP/2 there, as `hush serve --listen` would print it.
    let server = &with_scheme(server);
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address '{server}'"))?
        .user_agent(USER_AGENT)?;
    match (endpoint.uri().scheme_str(), ca_cert) {
        (Some("https"), ca_cert) => endpoint = endpoint.tls_config(tls_config(ca_cert)?)?,
        (_, Some(_)) => anyhow::bail!("--ca-cert is for https:// servers; '{server}' is not one"),
        (_, None) => {}
    }
    let hint = match (endpoint.uri().scheme_str(), ca_cert) {
        (Some("https"), None) => " (for a private CA or a self-signed certificate, pass --ca-cert)",
        _ => "",
    };
    endpoint.connect().await.map_err(|error| {
        // `openssl req -x509` makes CA certificates by default, which TLS libraries refuse as server certificates.
        let ca_as_leaf = format!("{error:?}").contains("CaUsedAsEndEntity");
        let hint = if ca_as_leaf {
            " (the server's certificate is a CA certificate: make it with \
             `-addext basicConstraints=critical,CA:FALSE`, or sign it with a CA)"
        } else {
            hint
        };
        anyhow::anyhow!("cannot reach hush at {server}: {}{hint}", causes(&error))
    })
}

/// `server` with `http://` in front when it has no scheme.
fn with_scheme(server: &str) -> String {
    if server.contains("://") { server.to_owned() } else { format!("http://{server}") }
}

/// An error's causes on one line, each said once (tonic and hyper repeat "tcp connect error").
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !said.contains(&text) && text != "transport error" {
            said.push(text);
        }
        next = cause.source();
    }
    let refused = said.iter().any(|s| s.contains("Connection refused"));
    let mut line = said.join(": ");
    if refused {
        line.push_str(" (is `hush serve` running there? check the address, or pass --server)");
    }
    line
}

fn tls_config(ca_cert: Option<&Path>) -> anyhow::Result<ClientTlsConfig> {
    let config = ClientTlsConfig::new().with_webpki_roots();
    let Some(path) = ca_cert else { return Ok(config) };
    let pem = std::fs::read(path).with_context(|| format!("reading --ca-cert {}", path.display()))?;
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}

/// The saved session, while its token is valid. An expired one is renewed from `HUSH_CLIENT_ID` and
/// `HUSH_CLIENT_SECRET` when they are set (and saved); otherwise the error says to log in again.
async fn current_session() -> anyhow::Result<Session> {
    let session = Session::load()?;
    let expired = chrono::DateTime::parse_from_rfc3339(&session.expires_at)
        .is_ok_and(|at| at.with_timezone(&chrono::Utc) <= chrono::Utc::now());
    if !expired {
        return Ok(session);
    }
    match (std::env::var("HUSH_CLIENT_ID"), std::env::var("HUSH_CLIENT_SECRET")) {
        (Ok(client_id), Ok(client_secret)) => {
            let renewed = login(session.server, session.ca_cert, client_id, client_secret).await?;
            renewed.save()?;
            eprintln!("hush: the session had expired; logged in again with HUSH_CLIENT_ID");
            Ok(renewed)
        }
        _ => anyhow::bail!(
            "session expired at {}: run `{}` again (or set HUSH_CLIENT_ID and HUSH_CLIENT_SECRET to log in \
             automatically)",
            session.expires_at,
            super::session::login_command(),
        ),
    }
}

/// Logs in to `server` with a machine identity's credentials: the session to save.
pub async fn login(
    server: String,
    ca_cert: Option<PathBuf>,
    client_id: String,
    client_secret: String,
) -> anyhow::Result<Session> {
    let mut client =
        crate::pb::identity_service_client::IdentityServiceClient::new(connect(&server, ca_cert.as_deref()).await?);
    let request = crate::pb::LoginRequest { client_id, client_secret };
    let response = client.login(request).await.map_err(super::commands::rpc)?.into_inner();
    let expires_at = super::output::time(response.expires_at, chrono::SecondsFormat::Secs);
    Ok(Session { server, ca_cert, access_token: response.access_token, expires_at })
}

/// Connects with the saved session (or `HUSH_TOKEN`), to the target's server when given, else the session's
/// server; the CA file likewise.
pub async fn authed(target: &Target) -> anyhow::Result<AuthedChannel> {
    let (server, saved_ca_cert, token) = match (std::env::var("HUSH_TOKEN").ok(), &target.server) {
        (Some(token), server) => (server.clone().unwrap_or_else(|| DEFAULT_SERVER.to_owned()), None, token),
        // The saved CA belongs to the saved server only.
        (None, Some(server)) => (server.clone(), None, current_session().await?.access_token),
        (None, None) => {
            let session = current_session().await?;
            (session.server, session.ca_cert, session.access_token)
        }
    };
    let ca_cert: Option<PathBuf> = target.ca_cert.clone().or(saved_ca_cert);
    let header: MetadataValue<_> = format!("Bearer {token}").parse().context("token is not a valid header value")?;
    let channel = connect(&server, ca_cert.as_deref()).await?;
    let interceptor: Authorize = Box::new(move |mut request: tonic::Request<()>| {
        request.metadata_mut().insert("authorization", header.clone());
        Ok(request)
    });
    Ok(InterceptedService::new(channel, interceptor))
}
