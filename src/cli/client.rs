//! gRPC channel for CLI commands, authenticated with the saved session's token.

use anyhow::Context;
use tonic::{
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

use super::Session;

/// User agent the CLI sends, so audit logs can tell CLI calls apart.
pub const USER_AGENT: &str = concat!("hush-cli/", env!("CARGO_PKG_VERSION"));

/// Default server address for client commands.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// A channel with the bearer token attached to every call.
pub type AuthedChannel = InterceptedService<
    Channel,
    Box<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync>,
>;

/// Connects to `server`.
pub async fn connect(server: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address '{server}'"))?
        .user_agent(USER_AGENT)?
        .connect()
        .await
        .with_context(|| format!("cannot reach hush at {server}"))
}

/// Connects with the saved session (or `HUSH_TOKEN`), to `server` when given, else the session's server.
pub async fn authed(server: Option<&str>) -> anyhow::Result<AuthedChannel> {
    let (server, token) = match (std::env::var("HUSH_TOKEN").ok(), server) {
        (Some(token), server) => (server.unwrap_or(DEFAULT_SERVER).to_owned(), token),
        (None, server) => {
            let session = Session::load()?;
            (server.map_or(session.server, str::to_owned), session.access_token)
        }
    };
    let header: MetadataValue<_> = format!("Bearer {token}").parse().context("token is not a valid header value")?;
    let channel = connect(&server).await?;
    let interceptor: Box<dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync> =
        Box::new(move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", header.clone());
            Ok(request)
        });
    Ok(InterceptedService::new(channel, interceptor))
}
