//! The one-port server: gRPC, grpc-web, reflection and health behind one tower stack.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    api::{self, auth::AuthLayer},
    audit::{self, TrustedProxies},
    config::{AuditStorage, ServeConfig},
    events::{EventHub, HubSettings, StreamLimits},
    gateway::{
        self, GatewayState, access_log::AccessLogLayer, edges::HonestEdgesLayer, grpc_web::GrpcWebWhereItApplies,
        json::JsonTranscodeLayer, malformed::RefuseMalformedLayer,
    },
    identity, keys,
    limits::{self, MAX_MESSAGE_BYTES, shed::UnaryLimitsLayer},
    pb,
    pb::{
        audit_logs_service_server::AuditLogsServiceServer, audit_streams_service_server::AuditStreamsServiceServer,
        identity_service_server::IdentityServiceServer, projects_service_server::ProjectsServiceServer,
        secrets_service_server::SecretsServiceServer,
    },
    secrets::Vault,
    store::{DatabaseLock, Store},
    streams::{EngineSettings, Streams, SystemLookup, retry::RetryPolicy},
    tls,
};

/// The hush services reflection lists (health and reflection are added by their crates).
const SERVICE_NAMES: [&str; 6] = [
    "hush.v1.ProjectsService",
    "hush.v1.SecretsService",
    "hush.v1.IdentityService",
    "hush.v1.EventsService",
    "hush.v1.AuditLogsService",
    "hush.v1.AuditStreamsService",
];
/// Delivery attempts per audit stream batch, the first included.
const STREAM_ATTEMPTS: u32 = 5;
/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// A server whose storage is ready: migrations applied, root key loaded, first org bootstrapped.
pub struct Server {
    config: ServeConfig,
    store: Store,
    vault: Vault,
    events: EventHub,
    streams: Streams,
    /// Stops the background tasks (event tailer, watchers, pruners) and open streams.
    background: CancellationToken,
    /// Where the bootstrap credentials were written on this start, if this start created them.
    pub bootstrap_file: Option<PathBuf>,
    /// None: cleartext (loopback, or `--allow-plaintext`).
    tls: Option<tls::ReloadableConfig>,
    /// Held shared until the server stops (see `store::lock`).
    _database_lock: DatabaseLock,
}

impl Server {
    /// Prepares storage and keys for `config`.
    pub async fn prepare(config: ServeConfig) -> anyhow::Result<Self> {
        crate::fs_private::private_umask();
        let data_dir = &config.storage.data_dir;
        crate::fs_private::create_private_dir(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        if let Some(mode) = crate::fs_private::shared_mode(data_dir)
            .with_context(|| format!("reading the mode of data dir {}", data_dir.display()))?
        {
            tracing::warn!(
                data_dir = %data_dir.display(),
                mode = format!("{mode:o}"),
                "the data dir is readable by other users; hush keeps its files 0600, but `chmod 700` the folder"
            );
        }
        let tls = tls::prepare(&config.tls, config.listen, data_dir)?;
        let store = Store::connect(&config.storage.database_url())
            .await
            .context("opening the database")?
            .with_audit_settings(config.audit_retention, config.audit_storage == AuditStorage::Off);
        // Held while this server runs, so `hush keys rotate` cannot re-seal the data under it; taken before the
        // key check, so no rotation slips in between.
        let database_lock = store.lock_for_serving().await?;
        let root_key = Arc::new(keys::for_serving(&store, &config.key, &config.storage.data_dir).await?);
        let bootstrap_file = identity::bootstrap(&store, &config.storage.data_dir).await?;
        let vault = Vault::new(store.clone(), root_key.clone());
        let background = CancellationToken::new();
        let settings = HubSettings {
            heartbeat: config.heartbeat_interval,
            retention: config.event_retention,
            limits: StreamLimits {
                per_identity: config.max_streams_per_identity,
                per_connection: config.max_streams_per_connection,
            },
        };
        let streams = crate::limits::fairness::streams_runtime();
        let events = EventHub::start(store.clone(), settings, streams, background.clone()).await?;
        audit::pruner::spawn(store.clone(), config.audit_retention, background.clone());
        if store.audit_stream_only() {
            audit::pruner::spawn_delivered(store.clone(), background.clone());
        }
        let streams = Streams::new(
            store.clone(),
            root_key,
            EngineSettings {
                retry: RetryPolicy {
                    attempts: STREAM_ATTEMPTS,
                    base: config.stream_retry_base,
                    cap: config.stream_retry_cap,
                },
                lease: config.stream_lease,
                allow_private: config.streams_allow_private,
                lookup: config.streams_lookup.clone().unwrap_or_else(|| Arc::new(SystemLookup)),
            },
        );
        streams.start_engine(uuid::Uuid::new_v4().to_string(), background.clone());
        Ok(Self {
            config,
            store,
            vault,
            events,
            streams,
            background,
            bootstrap_file,
            tls,
            _database_lock: database_lock,
        })
    }

    /// This instance's event machinery.
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// Serves on `listener` until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
        let open_files = crate::limits::open_files::raise_to_hard_limit();
        tracing::info!(?open_files, "open-files limit");
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in SERVICE_NAMES {
            health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
        }
        let mut reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in SERVICE_NAMES {
            reflection = reflection.with_service_name(name);
        }
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let reflection_v1 = reflection.build_v1()?;

        // Outermost first: log every request (with its request id) and count it; answer CORS preflights before
        // anything else; answer requests that are not gRPC and that nothing serves (404/405/415) before they reach
        // tonic; shed unary calls beyond the in-flight limit before their bodies are read; translate JSON and
        // grpc-web calls to gRPC so that everything inside sees one protocol; bound the size of every gRPC error
        // and refuse malformed gRPC bodies (both see all three protocols here); authenticate last, next to the
        // services and the HTTP routes.
        let metrics = gateway::metrics::Metrics::default();
        let limits = &self.config.limits;
        let stack = ServiceBuilder::new()
            .layer(AccessLogLayer { metrics: metrics.clone() })
            .layer(cors(&self.config.cors_origins))
            .layer(HonestEdgesLayer { ui: self.config.ui_dir.is_some() })
            .layer(UnaryLimitsLayer::new(limits.max_in_flight, limits.unary_deadline))
            .layer(JsonTranscodeLayer)
            .layer(GrpcWebWhereItApplies)
            .map_response(gateway::bounded_errors::bound)
            .layer(RefuseMalformedLayer)
            .layer(AuthLayer::new(self.store.clone(), TrustedProxies(self.config.trusted_proxies.clone())));

        // Open streams end when shutdown starts, so the graceful drain below does not wait for them.
        let background = self.background.clone();
        let stop_background = shutdown.clone();
        tokio::spawn(async move {
            stop_background.cancelled().await;
            background.cancel();
        });

        let gateway_state = GatewayState {
            events: self.events.clone(),
            store: self.store.clone(),
            streams: self.streams.clone(),
            vault: self.vault.clone(),
            metrics,
        };
        if let Some(address) = self.config.metrics_listen {
            gateway::serve_metrics(address, gateway_state.clone(), shutdown.clone()).await?;
        }
        // Every hush service sends and accepts messages up to the same explicit size.
        macro_rules! sized {
            ($server:expr) => {
                $server.max_decoding_message_size(MAX_MESSAGE_BYTES).max_encoding_message_size(MAX_MESSAGE_BYTES)
            };
        }
        let local = listener.local_addr()?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %local, scheme, "hush is listening (gRPC, grpc-web, reflection, health)");
        if let Some(tls) = &self.tls {
            tls.clone().spawn_watcher(self.background.clone());
        }
        let grpc = tonic::service::Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(sized!(ProjectsServiceServer::new(api::ProjectsApi::new(self.vault.clone()))))
            .add_service(sized!(SecretsServiceServer::new(api::SecretsApi::new(self.vault.clone()))))
            .add_service(sized!(IdentityServiceServer::new(api::IdentityApi::new(
                self.store.clone(),
                self.config.token_ttl
            ))))
            .add_service(api::EventsApi::new(self.events.clone()))
            .add_service(sized!(AuditLogsServiceServer::new(api::AuditLogsApi::new(self.store.clone()))))
            .add_service(sized!(AuditStreamsServiceServer::new(api::AuditStreamsApi::new(self.streams.clone()))));
        let http = gateway::router(gateway_state, self.config.ui_dir.as_deref());
        let routes = tonic::service::Routes::from(grpc.into_axum_router().merge(http)).prepare();
        limits::connections::serve(listener, stack.service(routes), limits, self.tls, shutdown).await?;
        tracing::info!("hush stopped");
        Ok(())
    }
}

/// CORS for grpc-web from browsers on the configured origins.
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("last-event-id"),
        ])
        .expose_headers([header("grpc-status"), header("grpc-message"), header("grpc-status-details-bin")])
        .max_age(CORS_MAX_AGE)
}
