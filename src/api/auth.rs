//! Authentication as a tower layer: resolves `authorization: Bearer <token>` once per request and puts the
//! [`Principal`] into the request extensions, where handlers take it. Only an explicit allowlist of paths
//! (Login, health, reflection) passes without a token.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use serde_json::json;
use tonic::{Status, body::Body, transport::server::TcpConnectInfo};
use tower::{Layer, Service};

use crate::{
    audit::{
        AuditActor, RequestMeta, TrustedProxies,
        denials::{self, DenialAudit},
    },
    identity::{self, Principal, TokenCache},
    store::Store,
};

/// Paths served without a token.
const PUBLIC_PATHS: &[&str] = &["/hush.v1.IdentityService/Login", "/", "/healthz", "/readyz", "/metrics", "/ui"];
/// Path prefixes served without a token.
const PUBLIC_PREFIXES: &[&str] = &[
    "/ui/",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS.contains(&path) || PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else { return websocket_bearer(headers) };
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The token a browser's WebSocket carries as the subprotocol `hush.bearer.<token>` (browsers cannot set
/// headers on a WebSocket); only on an upgrade request.
fn websocket_bearer(headers: &HeaderMap) -> Option<&str> {
    let upgrade = headers.get(http::header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    // `hush.bearer` itself (gateway::ws::BEARER_PROTOCOL) is what the server selects; the token rides beside it.
    let prefix = "hush.bearer.";
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(prefix))
        .filter(|token| !token.is_empty())
}

/// Where a request came from (set for every request, public ones too).
pub fn request_meta<T>(request: &tonic::Request<T>) -> RequestMeta {
    request.extensions().get::<RequestMeta>().cloned().unwrap_or_default()
}

/// The caller of an authenticated RPC. Fails only if the auth layer was bypassed, which is a wiring bug.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    request.extensions().get::<Principal>().cloned().ok_or_else(|| Status::unauthenticated("missing bearer token"))
}

/// Layer that authenticates every request outside [`PUBLIC_PATHS`], and audits the refusals of known
/// identities (`token-rejected`, `permission-denied`).
#[derive(Clone)]
pub struct AuthLayer {
    store: Store,
    trusted_proxies: Arc<TrustedProxies>,
    denials: Arc<DenialAudit>,
    tokens: Arc<TokenCache>,
}

impl AuthLayer {
    /// Authenticates against the tokens in `store`; client IPs from `X-Forwarded-For` only via `trusted_proxies`.
    pub fn new(store: Store, trusted_proxies: TrustedProxies) -> Self {
        Self {
            denials: Arc::new(DenialAudit::new(store.clone())),
            store,
            trusted_proxies: Arc::new(trusted_proxies),
            tokens: Arc::default(),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            store: self.store.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            denials: self.denials.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    store: Store,
    trusted_proxies: Arc<TrustedProxies>,
    denials: Arc<DenialAudit>,
    tokens: Arc<TokenCache>,
}

/// RPCs whose handler confirms the permission version itself, with a statement it makes anyway (see
/// `Vault::get_secret`, `Vault::begin_secret_write`): their token may be resolved from memory without reading
/// the version, saving a statement per call on PostgreSQL. When the version moved, the handler authenticates
/// strictly ([`strictly`]) and runs again.
const DEFERRED_PATHS: &[&str] = &[
    "/hush.v1.SecretsService/GetSecret",
    "/hush.v1.SecretsService/CreateSecret",
    "/hush.v1.SecretsService/UpdateSecret",
    "/hush.v1.SecretsService/DeleteSecret",
];

/// What authenticates one request's token: kept in the extensions of a [`DEFERRED_PATHS`] request, for
/// [`strictly`].
struct Authenticator {
    store: Store,
    denials: Arc<DenialAudit>,
    tokens: Arc<TokenCache>,
    token: String,
    path: String,
}

impl Authenticator {
    /// The principal of the token; a rejection of a known identity's token is audited.
    async fn principal(&self, meta: &RequestMeta, deferred: bool) -> Result<Principal, Status> {
        match self.tokens.authenticate(&self.store, &self.token, deferred).await {
            Ok(Ok(principal)) => Ok(Principal { meta: meta.clone(), ..principal }),
            Ok(Err(rejected)) => {
                if let Some(owner) = &rejected.owner {
                    self.denials.record(owner, meta, "token-rejected", json!({ "method": self.path })).await;
                }
                Err(Status::from(identity::IdentityError::from(rejected)))
            }
            Err(error) => Err(Status::from(error)),
        }
    }
}

/// The caller of a request authenticated again, reading the permission version: for a handler that found
/// the version assumed for its [`unconfirmed`](Principal::unconfirmed) caller out of date.
pub async fn strictly<T>(request: &tonic::Request<T>) -> Result<Principal, Status> {
    let auth = request
        .extensions()
        .get::<Arc<Authenticator>>()
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    auth.principal(&request_meta(request), false).await
}

/// Prefix of the HTTP gateway's routes, which answer errors as JSON rather than gRPC status.
const HTTP_PREFIX: &str = "/api/";

/// The rejection in the caller's protocol: JSON for HTTP routes, a gRPC status otherwise.
fn reject(path: &str, status: Status) -> Response<Body> {
    if path.starts_with(HTTP_PREFIX) {
        crate::gateway::errors::response(&status).map(Body::new)
    } else {
        status.into_http()
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for Authenticate<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    // Held while a denial is audited.
    S::Error: Send,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (store, denials, tokens) = (self.store.clone(), self.denials.clone(), self.tokens.clone());
        let peer = request.extensions().get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr);
        let meta = RequestMeta::from_request(request.headers(), peer, &self.trusted_proxies);
        request.extensions_mut().insert(meta.clone());
        Box::pin(async move {
            if is_public(request.uri().path()) {
                return inner.call(request).await;
            }
            let path = request.uri().path().to_owned();
            let Some(token) = bearer(request.headers()) else {
                let status = Status::unauthenticated("missing bearer token: send 'authorization: Bearer <token>'");
                return Ok(reject(&path, status));
            };
            let deferred = DEFERRED_PATHS.contains(&path.as_str());
            let auth = Authenticator { store, denials: denials.clone(), tokens, token: token.to_owned(), path };
            let principal = match auth.principal(&meta, deferred).await {
                Ok(principal) => principal,
                Err(status) => return Ok(reject(&auth.path, status)),
            };
            if let Some(caller) = request.extensions().get::<crate::gateway::access_log::Caller>() {
                caller.set(&principal.identity_id);
            }
            let actor = AuditActor::from(&principal);
            let path = auth.path.clone();
            request.extensions_mut().insert(principal);
            if deferred {
                request.extensions_mut().insert(Arc::new(auth));
            }
            let (response, denied) = denials::collect(&path, inner.call(request)).await;
            if let Some(metadata) = denied {
                denials.record(&actor, &meta, "permission-denied", metadata).await;
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_exact_for_rpcs_and_prefix_for_services() {
        assert!(is_public("/hush.v1.IdentityService/Login"));
        assert!(!is_public("/hush.v1.IdentityService/LoginX"));
        assert!(!is_public("/hush.v1.IdentityService/CreateIdentity"));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(!is_public("/hush.v1.SecretsService/GetSecret"));
        assert!(is_public("/") && !is_public("/hush.v1.SecretsService/"), "the index is exact, not a prefix");
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        // A browser's WebSocket carries it as a subprotocol, read only on an upgrade without the header.
        let mut browser = HeaderMap::new();
        browser.insert("sec-websocket-protocol", "hush.bearer, hush.bearer.tok".parse().unwrap());
        assert_eq!(bearer(&browser), None, "not an upgrade");
        browser.insert("upgrade", "websocket".parse().unwrap());
        assert_eq!(bearer(&browser), Some("tok"));
        browser.insert("authorization", "Bearer header-wins".parse().unwrap());
        assert_eq!(bearer(&browser), Some("header-wins"));
    }
}
