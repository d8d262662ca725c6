//! Audit streams cannot be turned against the server's own network (issue 11, items 6, 7, 8, 15): every
//! destination address is vetted by the resolver the HTTP client connects through (a test resolver makes
//! names answer loopback, or change their answer), destination answers are never shown back, stored
//! credentials never follow a stream to a new destination, and URLs come back redacted.

mod common;

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Backend, TestServer,
    receiver::{Answer, Receiver, eventually},
};
use hush::{
    config::ServeConfig,
    pb::{
        self, audit_streams_service_client::AuditStreamsServiceClient, create_audit_stream_request::Provider as Create,
        identity_service_client::IdentityServiceClient, projects_service_client::ProjectsServiceClient,
        update_audit_stream_request::Provider as Update,
    },
    streams::{Lookup, LookupFuture},
};
use sea_orm::EntityTrait;
use tonic::Code;

backend_tests!(
    names_and_literals_outside_the_internet_are_refused,
    a_name_rebinding_to_loopback_is_never_connected_to,
    destination_answers_are_never_shown_back,
    moving_a_stream_drops_its_credentials,
    urls_are_redacted_and_round_trip,
);

/// A name the scripted resolver never answers.
const SILENT: &str = "silent.test";

/// A resolver whose answers a test scripts: each name answers its queue in turn, the last answer forever;
/// unknown names fail and [`SILENT`] never answers.
#[derive(Debug, Default)]
struct ScriptedDns(Mutex<HashMap<String, VecDeque<IpAddr>>>);

impl ScriptedDns {
    fn answer(&self, name: &str, answers: &[&str]) {
        let answers = answers.iter().map(|a| a.parse().unwrap()).collect();
        self.0.lock().unwrap().insert(name.to_owned(), answers);
    }
}

impl Lookup for ScriptedDns {
    fn lookup(&self, host: String) -> LookupFuture {
        let mut names = self.0.lock().unwrap();
        let answer = names
            .get_mut(&host)
            .and_then(|queue| if queue.len() > 1 { queue.pop_front() } else { queue.front().copied() });
        let silent = host == SILENT;
        Box::pin(async move {
            if silent {
                std::future::pending::<()>().await;
            }
            answer
                .map(|ip| vec![ip])
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown test name"))
        })
    }
}

/// Fast retries, the scripted resolver, and private destinations allowed or not.
fn settings(dns: &Arc<ScriptedDns>, allow_private: bool) -> impl FnOnce(&mut ServeConfig) {
    let dns: Arc<dyn Lookup> = dns.clone();
    move |config| {
        config.streams_lookup = Some(dns);
        config.streams_allow_private = allow_private;
        config.stream_retry_base = Duration::from_millis(20);
        config.stream_retry_cap = Duration::from_millis(50);
        config.stream_lease = Duration::from_secs(1);
    }
}

async fn client(server: &TestServer, token: &str) -> AuditStreamsServiceClient<common::Authed> {
    AuditStreamsServiceClient::new(server.authed(token).await)
}

fn custom(url: &str) -> Create {
    Create::Custom(pb::CustomProvider {
        url: url.into(),
        headers: Default::default(),
        batch: true,
        ..Default::default()
    })
}

async fn create(
    client: &mut AuditStreamsServiceClient<common::Authed>,
    provider: Create,
    skip_test: bool,
) -> Result<pb::AuditStream, tonic::Status> {
    let request =
        pb::CreateAuditStreamRequest { name: "s".into(), skip_test, provider: Some(provider), ..Default::default() };
    Ok(client.create_audit_stream(request).await?.into_inner().audit_stream.unwrap())
}

async fn status(client: &mut AuditStreamsServiceClient<common::Authed>, id: &str) -> pb::AuditStreamStatus {
    let request = pb::GetAuditStreamStatusRequest { audit_stream_id: id.into() };
    client.get_audit_stream_status(request).await.unwrap().into_inner().status.unwrap()
}

/// Writes one audit entry (a project read), which streams deliver.
async fn activity(server: &TestServer) {
    let project = server.project(&format!("p-{}", uuid::Uuid::new_v4().simple())).await;
    let mut projects = ProjectsServiceClient::new(server.authed(&server.admin_token().await).await);
    projects.get_project(pb::GetProjectRequest { project_id: project }).await.unwrap();
}

/// One address in each block of issue 11 item 7 and the usual internal ones, IPv4 and IPv6.
const INTERNAL: [&str; 27] = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.100.100.200",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.0.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fd00::1",
    "fe80::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:100.100.100.200",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::7f00:1",
];

fn literal_url(ip: &str) -> String {
    if ip.contains(':') { format!("http://[{ip}]:9/in") } else { format!("http://{ip}:9/in") }
}

async fn names_and_literals_outside_the_internet_are_refused(backend: Backend) {
    let dns = Arc::new(ScriptedDns::default());
    let server = TestServer::start_with(backend, settings(&dns, false)).await;
    let mut streams = client(&server, &server.admin_token().await).await;
    for (i, ip) in INTERNAL.iter().enumerate() {
        let name = format!("internal-{i}.test");
        dns.answer(&name, &[ip]);
        for url in [format!("http://{name}:9/in"), literal_url(ip)] {
            let refused = create(&mut streams, custom(&url), true).await.unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument, "{url}: {refused:?}");
            assert!(refused.message().starts_with("custom.url: "), "{url}: {}", refused.message());
            assert!(refused.message().contains("HUSH_STREAMS_ALLOW_PRIVATE"), "{}", refused.message());
        }
    }
    // Other spellings of loopback are the same address.
    for url in ["http://2130706433/in", "http://0x7f.1/in", "http://[::ffff:7f00:1]/in", "http://localhost.test/in"] {
        dns.answer("localhost.test", &["127.0.0.1"]);
        let refused = create(&mut streams, custom(url), true).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{url}");
    }
    // A name that does not resolve, or whose resolver hangs, is refused too, within the lookup time limit.
    for name in ["unknown.test", SILENT] {
        let started = std::time::Instant::now();
        let refused = create(&mut streams, custom(&format!("http://{name}/in")), true).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("cannot resolve"), "{}", refused.message());
        assert!(started.elapsed() < Duration::from_secs(8), "{name}: {:?}", started.elapsed());
    }
    // Public addresses pass the check, IPv6 literals in brackets included (skip_test: nothing is sent now).
    dns.answer("public.test", &["1.1.1.1"]);
    for url in ["http://public.test/in", "http://[2606:4700:4700::1111]/in", "https://1.1.1.1/in"] {
        let stream = create(&mut streams, custom(url), true).await.unwrap_or_else(|e| panic!("{url}: {e:?}"));
        let request = pb::DeleteAuditStreamRequest { audit_stream_id: stream.id };
        streams.delete_audit_stream(request).await.unwrap();
    }
    server.stop().await;

    // HUSH_STREAMS_ALLOW_PRIVATE lets the same name through, and the connection uses the test resolver.
    let server = TestServer::start_with(backend, settings(&dns, true)).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let port = url.rsplit(':').next().unwrap();
    dns.answer("inside.test", &["127.0.0.1"]);
    let mut streams = client(&server, &server.admin_token().await).await;
    create(&mut streams, custom(&format!("http://inside.test:{port}/in")), false).await.unwrap();
    assert_eq!(receiver.received().len(), 1, "the test event reached the receiver through the test resolver");
}

async fn a_name_rebinding_to_loopback_is_never_connected_to(backend: Backend) {
    let dns = Arc::new(ScriptedDns::default());
    let server = TestServer::start_with(backend, settings(&dns, false)).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let port = url.rsplit(':').next().unwrap();
    let target = format!("http://rebind.test:{port}/in");
    let mut streams = client(&server, &server.admin_token().await).await;

    // The check sees a public address, the connection would get loopback: the test event is never sent.
    dns.answer("rebind.test", &["1.1.1.1", "127.0.0.1"]);
    let refused = create(&mut streams, custom(&target), false).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("127.0.0.1") && refused.message().contains("not a globally routable"));

    // Stored while the name looked public, the stream's deliveries and tests still never reach loopback.
    dns.answer("rebind.test", &["1.1.1.1", "127.0.0.1"]);
    let stream = create(&mut streams, custom(&target), true).await.unwrap();
    activity(&server).await;
    let mut last_error = String::new();
    for _ in 0..200 {
        last_error = status(&mut streams, &stream.id).await.last_error;
        if !last_error.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_error.contains("127.0.0.1") && last_error.contains("not a globally routable"), "{last_error}");
    let test = streams
        .test_audit_stream(pb::TestAuditStreamRequest { audit_stream_id: stream.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(!test.success && test.message.contains("not a globally routable"), "{test:?}");
    assert!(receiver.received().is_empty(), "nothing ever connected to the loopback receiver");
}

/// A body a misused destination (an internal service) could answer; it must never come back.
const INTERNAL_BODY: &str = "internal-service-body-4b1e9c";

async fn destination_answers_are_never_shown_back(backend: Backend) {
    let dns = Arc::new(ScriptedDns::default());
    let server = TestServer::start_with(backend, settings(&dns, true)).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let mut streams = client(&server, &server.admin_token().await).await;

    receiver.fail_next(&[Answer::Body(500, INTERNAL_BODY)]);
    let refused = create(&mut streams, custom(&format!("{url}/in")), false).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("500") && !refused.message().contains(INTERNAL_BODY), "{}", refused.message());

    let stream = create(&mut streams, custom(&format!("{url}/in")), true).await.unwrap();
    // The stream at once delivers the entry of its own creation; the failures below are planned after it.
    eventually(Duration::from_secs(10), "the creation entry", || !receiver.received().is_empty()).await;
    receiver.fail_next(&[Answer::Body(500, INTERNAL_BODY)]);
    let test = streams
        .test_audit_stream(pb::TestAuditStreamRequest { audit_stream_id: stream.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(!test.success && test.status_code == 500, "{test:?}");
    assert!(!test.message.contains(INTERNAL_BODY), "{}", test.message);

    // Every attempt of a delivery fails with the body: the batch is dropped, and the body is nowhere.
    receiver.fail_next(&[Answer::Body(500, INTERNAL_BODY); 5]);
    activity(&server).await;
    let mut shown = status(&mut streams, &stream.id).await;
    for _ in 0..200 {
        if shown.dropped_batches > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        shown = status(&mut streams, &stream.id).await;
    }
    assert_eq!(shown.dropped_batches, 1, "{shown:?}");
    assert!(shown.last_error.contains("500") && !shown.last_error.contains(INTERNAL_BODY), "{}", shown.last_error);
    let db = server.raw_db().await;
    let audit = hush::store::entities::audit_log::Entity::find().all(&db).await.unwrap();
    assert!(!audit.is_empty());
    assert!(audit.iter().all(|entry| !format!("{entry:?}").contains(INTERNAL_BODY)));
    let states = hush::store::entities::audit_stream_state::Entity::find().all(&db).await.unwrap();
    assert!(states.iter().all(|state| !format!("{state:?}").contains(INTERNAL_BODY)));
}

/// An identity whose only org rights are `audit-streams: read, edit`; returns its token.
async fn stream_editor(server: &TestServer) -> String {
    let mut admin = IdentityServiceClient::new(server.authed(&server.admin_token().await).await);
    let policy = pb::Policy {
        subject: "audit-streams".into(),
        actions: vec!["read".into(), "edit".into()],
        conditions: None,
        inverted: false,
    };
    let request =
        pb::CreateRoleRequest { name: "stream-editor".into(), description: String::new(), policies: vec![policy] };
    let role = admin.create_role(request).await.unwrap().into_inner().role.unwrap().id;
    let request = pb::CreateIdentityRequest { name: "editor".into(), org_role: role };
    let identity = admin.create_identity(request).await.unwrap().into_inner().identity.unwrap();
    let request = pb::CreateClientSecretRequest { identity_id: identity.id, ..Default::default() };
    let secret = admin.create_client_secret(request).await.unwrap().into_inner();
    server.login(&secret.client_id, &secret.client_secret).await.unwrap().access_token
}

fn update(id: &str, provider: Update) -> pb::UpdateAuditStreamRequest {
    pb::UpdateAuditStreamRequest {
        audit_stream_id: id.into(),
        name: String::new(),
        update_mask: None,
        provider: Some(provider),
        ..Default::default()
    }
}

async fn moving_a_stream_drops_its_credentials(backend: Backend) {
    const ADMIN_TOKEN: &str = "admins-splunk-hec-token";
    let dns = Arc::new(ScriptedDns::default());
    let server = TestServer::start_with(backend, settings(&dns, true)).await;
    let (home, attacker) = (Receiver::default(), Receiver::default());
    let (home_url, _home) = home.start().await;
    let (attacker_url, _attacker) = attacker.start().await;
    let mut admin = client(&server, &server.admin_token().await).await;
    let splunk = Create::Splunk(pb::SplunkProvider { host: home_url.clone(), token: ADMIN_TOKEN.into() });
    let stream = create(&mut admin, splunk, true).await.unwrap();

    let mut editor = client(&server, &stream_editor(&server).await).await;
    let moved = Update::Splunk(pb::SplunkProvider { host: attacker_url.clone(), token: "[REDACTED]".into() });
    let refused = editor.update_audit_stream(update(&stream.id, moved)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("splunk.token: ") && refused.message().contains("splunk.host changed"),
        "{}",
        refused.message()
    );

    // The same destination keeps the token; a new one needs a new token in full.
    let same = Update::Splunk(pb::SplunkProvider { host: home_url.clone(), token: "[REDACTED]".into() });
    editor.update_audit_stream(update(&stream.id, same)).await.unwrap();
    activity(&server).await;
    eventually(Duration::from_secs(10), "a delivery home", || !home.received().is_empty()).await;
    assert_eq!(home.received()[0].headers["authorization"], format!("Splunk {ADMIN_TOKEN}"));
    let fresh = Update::Splunk(pb::SplunkProvider { host: attacker_url, token: "editors-own-token".into() });
    editor.update_audit_stream(update(&stream.id, fresh)).await.unwrap();
    activity(&server).await;
    eventually(Duration::from_secs(10), "a delivery to the new host", || !attacker.received().is_empty()).await;
    for request in attacker.received() {
        assert_eq!(request.headers["authorization"], "Splunk editors-own-token");
        assert!(!format!("{request:?}").contains(ADMIN_TOKEN));
    }

    // The same rule for every provider's destination fields (Datadog site, Azure tenant and login URL).
    let azure = |tenant: &str, login: &str, secret: &str| pb::AzureProvider {
        tenant_id: tenant.into(),
        client_id: "client".into(),
        client_secret: secret.into(),
        dce_url: format!("{home_url}/dce"),
        dcr_immutable_id: "dcr-1".into(),
        table: "Hush_CL".into(),
        login_url: login.into(),
    };
    let stream = create(&mut admin, Create::Azure(azure("t1", &home_url, "azure-secret")), true).await.unwrap();
    let elsewhere = format!("{home_url}/elsewhere");
    for (tenant, login) in [("t2", home_url.as_str()), ("t1", elsewhere.as_str())] {
        let moved = Update::Azure(azure(tenant, login, "[REDACTED]"));
        let refused = editor.update_audit_stream(update(&stream.id, moved)).await.unwrap_err();
        assert!(refused.message().starts_with("azure.client_secret: "), "{}", refused.message());
    }
    let datadog =
        |site: &str, key: &str| pb::DatadogProvider { site: site.into(), api_key: key.into(), url: String::new() };
    dns.answer("http-intake.logs.one.test", &["127.0.0.1"]);
    let stream = create(&mut admin, Create::Datadog(datadog("one.test", "dd-key")), true).await.unwrap();
    let refused = editor
        .update_audit_stream(update(&stream.id, Update::Datadog(datadog("two.test", "[REDACTED]"))))
        .await
        .unwrap_err();
    assert!(refused.message().starts_with("datadog.api_key: "), "{}", refused.message());
}

async fn urls_are_redacted_and_round_trip(backend: Backend) {
    let dns = Arc::new(ScriptedDns::default());
    let server = TestServer::start_with(backend, settings(&dns, true)).await;
    let receiver = Receiver::default();
    let (url, _serving) = receiver.start().await;
    let stored =
        url.replace("http://", "http://robot:url-password-31@") + "/in?api_key=query-secret-59&team=team-ops-77";
    let mut streams = client(&server, &server.admin_token().await).await;
    let stream = create(&mut streams, custom(&stored), true).await.unwrap();

    let shown = streams
        .get_audit_stream(pb::GetAuditStreamRequest { audit_stream_id: stream.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .audit_stream
        .unwrap();
    let listed =
        streams.list_audit_streams(pb::ListAuditStreamsRequest::default()).await.unwrap().into_inner().audit_streams;
    for text in [format!("{stream:?}"), format!("{shown:?}"), format!("{listed:?}")] {
        for secret in ["robot", "url-password-31", "query-secret-59", "team-ops-77"] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
        assert!(text.contains("api_key=[REDACTED]&team=[REDACTED]"), "{text}");
    }

    // The redacted URL sent back keeps the stored userinfo and query values.
    let Some(pb::audit_stream::Provider::Custom(shown_custom)) = shown.provider else { panic!("custom") };
    let back = Update::Custom(pb::CustomProvider {
        url: shown_custom.url.clone(),
        headers: Default::default(),
        batch: true,
        ..Default::default()
    });
    streams.update_audit_stream(update(&stream.id, back)).await.unwrap();
    activity(&server).await;
    eventually(Duration::from_secs(10), "a delivery", || !receiver.received().is_empty()).await;
    let delivered = &receiver.received()[0];
    assert_eq!(delivered.query, "api_key=query-secret-59&team=team-ops-77");
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "robot:url-password-31")
    );
    assert_eq!(delivered.headers["authorization"], basic);

    // Redacted parts never move to another host.
    let elsewhere = shown_custom.url.replace("127.0.0.1", "localhost");
    let moved = Update::Custom(pb::CustomProvider {
        url: elsewhere,
        headers: Default::default(),
        batch: true,
        ..Default::default()
    });
    let refused = streams.update_audit_stream(update(&stream.id, moved)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("custom.url: "), "{}", refused.message());
}
