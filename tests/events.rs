//! Live events through gRPC Subscribe: types, filters, permissions, heartbeats, resume, ordering under
//! concurrent writers, several instances, revocation and slow consumers.

mod common;

use std::time::{Duration, Instant};

use common::{
    Authed, Backend, TestServer, create_secret,
    events::{WAIT, assert_no_event, keys, next_event, registration, subscribe, triple},
};
use hush::pb::{
    self, identity_service_client::IdentityServiceClient, secrets_service_client::SecretsServiceClient,
    subscribe_response::Message,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tonic::Code;

backend_tests!(
    event_types_batches_and_import_mutations,
    filters_by_type_environment_path_and_permission,
    resume_replays_exactly_what_was_missed,
    a_stream_starts_after_every_acknowledged_write,
    revoked_subscribers_are_cut_off,
    bad_subscriptions_fail_before_the_stream_opens,
    import_mutations_reach_importers_after_a_restart,
);

async fn event_types_batches_and_import_mutations(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("events").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "prod", "/shared", "SEED", "v").await;
    secrets
        .create_secret_import(pb::CreateSecretImportRequest {
            project_id: project.clone(),
            environment: "dev".into(),
            secret_path: "/".into(),
            import_environment: "prod".into(),
            import_path: "/shared".into(),
        })
        .await
        .unwrap();
    let mut stream = subscribe(&server, &token, &project, vec![registration("*", "", "")], None).await.unwrap();

    create_secret(&mut secrets, &project, "dev", "/api", "A", "never-in-an-event").await;
    let created = next_event(&mut stream).await;
    assert_eq!(created.r#type, "secret:create");
    assert_eq!(keys(&created), vec![triple("dev", "/api", "A")]);
    assert_eq!(created.project_id, project);
    let actor = created.actor.clone().unwrap();
    assert_eq!(
        (actor.identity_id.as_str(), actor.r#type),
        (server.bootstrap.identity_id.as_str(), pb::ActorType::Identity as i32)
    );
    assert!(!created.id.is_empty() && created.time.is_some());
    assert!(!format!("{created:?}").contains("never-in-an-event"), "events carry names, never values");

    let update = pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        key: "A".into(),
        value: "v2".into(),
        comment: None,
        expected_version: None,
    };
    secrets.update_secret(update).await.unwrap();
    let updated = next_event(&mut stream).await;
    assert_eq!(updated.r#type, "secret:update");
    assert!(updated.cursor.parse::<i64>().unwrap() > created.cursor.parse::<i64>().unwrap());

    let batch = pb::BatchCreateSecretsRequest {
        project_id: project.clone(),
        environment: "staging".into(),
        secret_path: "/b".into(),
        secrets: ["X", "Y", "Z"]
            .iter()
            .map(|k| pb::SecretInput { key: k.to_string(), value: "v".into(), comment: String::new() })
            .collect(),
    };
    secrets.batch_create_secrets(batch).await.unwrap();
    let batch_event = next_event(&mut stream).await;
    assert_eq!(batch_event.r#type, "secret:create");
    assert_eq!(
        keys(&batch_event),
        vec![triple("staging", "/b", "X"), triple("staging", "/b", "Y"), triple("staging", "/b", "Z")],
        "a batch write is one event listing every secret"
    );

    let delete = pb::DeleteSecretRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/api".into(),
        key: "A".into(),
        expected_version: None,
    };
    secrets.delete_secret(delete).await.unwrap();
    assert_eq!(next_event(&mut stream).await.r#type, "secret:delete");

    // A change in prod:/shared, which dev:/ imports: the change, then an import mutation for dev:/.
    create_secret(&mut secrets, &project, "prod", "/shared", "NEW", "v").await;
    assert_eq!(next_event(&mut stream).await.r#type, "secret:create");
    let mutation = next_event(&mut stream).await;
    assert_eq!(mutation.r#type, "secret:import-mutation");
    let folder = mutation.import_mutation.unwrap();
    assert_eq!((folder.environment.as_str(), folder.secret_path.as_str()), ("dev", "/"));
    assert!(mutation.secrets.is_empty());
}

async fn filters_by_type_environment_path_and_permission(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.heartbeat_interval = Duration::from_millis(200)).await;
    let project = server.project("filters").await;
    let admin_token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;

    // Updates only, dev only, under /api only.
    let mut narrow =
        subscribe(&server, &admin_token, &project, vec![registration("secret:update", "dev", "/api/**")], None)
            .await
            .unwrap();
    // Every secret event (wildcard), as a dev-only identity.
    let mut admin = IdentityServiceClient::new(server.authed(&admin_token).await);
    let role = admin
        .create_role(pb::CreateRoleRequest {
            name: "dev-events".into(),
            description: String::new(),
            policies: vec![pb::Policy {
                subject: "secret-events".into(),
                actions: vec!["subscribe".into()],
                conditions: Some(pb::PolicyConditions {
                    environments: vec!["dev".into()],
                    secret_path: String::new(),
                    event_types: Vec::new(),
                }),
                inverted: false,
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    let identity = admin
        .create_identity(pb::CreateIdentityRequest { name: "dev-listener".into(), org_role: String::new() })
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap();
    admin
        .set_project_role(pb::SetProjectRoleRequest {
            project_id: project.clone(),
            identity_id: identity.id.clone(),
            role_id: role.id,
        })
        .await
        .unwrap();
    let secret = admin
        .create_client_secret(pb::CreateClientSecretRequest { identity_id: identity.id, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let dev_token = server.login(&secret.client_id, &secret.client_secret).await.unwrap().access_token;
    let mut dev_only =
        subscribe(&server, &dev_token, &project, vec![registration("secret:*", "", "")], None).await.unwrap();

    // Heartbeats arrive on idle streams.
    let first = tokio::time::timeout(WAIT, dev_only.message()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first.message, Some(Message::Heartbeat(_))), "idle streams get heartbeats: {first:?}");

    for env in ["prod", "dev"] {
        create_secret(&mut secrets, &project, env, "/api", "K", "v").await;
        create_secret(&mut secrets, &project, env, "/web", "K", "v").await;
    }
    let update = |env: &str, path: &str| pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: env.into(),
        secret_path: path.into(),
        key: "K".into(),
        value: "v2".into(),
        comment: None,
        expected_version: None,
    };
    for (env, path) in [("prod", "/api"), ("dev", "/web"), ("dev", "/api")] {
        secrets.update_secret(update(env, path)).await.unwrap();
    }
    let only = next_event(&mut narrow).await;
    assert_eq!((only.r#type.as_str(), keys(&only)), ("secret:update", vec![triple("dev", "/api", "K")]));
    assert_no_event(&mut narrow, Duration::from_millis(300)).await;

    // The dev-only identity sees the dev events (2 creates, 2 updates) and never a prod one.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut dev_only).await;
        assert!(event.secrets.iter().all(|s| s.environment == "dev"), "{event:?}");
        seen.push((event.r#type.clone(), keys(&event)));
    }
    assert_eq!(
        seen,
        vec![
            ("secret:create".to_owned(), vec![triple("dev", "/api", "K")]),
            ("secret:create".to_owned(), vec![triple("dev", "/web", "K")]),
            ("secret:update".to_owned(), vec![triple("dev", "/web", "K")]),
            ("secret:update".to_owned(), vec![triple("dev", "/api", "K")]),
        ]
    );
    assert_no_event(&mut dev_only, Duration::from_millis(300)).await;
}

async fn resume_replays_exactly_what_was_missed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("resume").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    create_secret(&mut secrets, &project, "dev", "/", "BEFORE", "v").await;
    let last = next_event(&mut stream).await.cursor;
    drop(stream);

    // Events of another project interleave; they must not show up.
    let other = server.project("other").await;
    for i in 0..50 {
        create_secret(&mut secrets, &project, "dev", "/", &format!("MISSED_{i}"), "v").await;
        if i % 10 == 0 {
            create_secret(&mut secrets, &other, "dev", "/", &format!("OTHER_{i}"), "v").await;
        }
    }
    let mut resumed = subscribe(&server, &token, &project, vec![], Some(last)).await.unwrap();
    let mut cursors = Vec::new();
    for i in 0..50 {
        let event = next_event(&mut resumed).await;
        assert_eq!(keys(&event), vec![triple("dev", "/", &format!("MISSED_{i}"))], "in order, none skipped");
        cursors.push(event.cursor.parse::<i64>().unwrap());
    }
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    // Then live, without duplicates.
    create_secret(&mut secrets, &project, "dev", "/", "LIVE", "v").await;
    assert_eq!(keys(&next_event(&mut resumed).await), vec![triple("dev", "/", "LIVE")]);
    assert_no_event(&mut resumed, Duration::from_millis(300)).await;
}

/// A stream opened without a cursor starts after every write acknowledged before the Subscribe call: its first
/// event is the marker written after it opened, never a write that was already acknowledged, even while
/// another writer keeps the outbox moving.
async fn a_stream_starts_after_every_acknowledged_write(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("start").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    let mut background = server.admin_secrets().await;
    let busy = project.clone();
    let noise = tokio::spawn(async move {
        for i in 0.. {
            create_secret(&mut background, &busy, "dev", "/noise", &format!("N{i}"), "v").await;
        }
    });
    let root = || vec![registration("*", "dev", "/")];
    for round in 0..20 {
        create_secret(&mut secrets, &project, "dev", "/", &format!("BEFORE_{round}"), "v").await;
        let mut stream = subscribe(&server, &token, &project, root(), None).await.unwrap();
        create_secret(&mut secrets, &project, "dev", "/", &format!("MARK_{round}"), "v").await;
        let first = next_event(&mut stream).await;
        assert_eq!(keys(&first), vec![triple("dev", "/", &format!("MARK_{round}"))], "round {round}");
    }
    noise.abort();
}

async fn revoked_subscribers_are_cut_off(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("revoke").await;
    let admin_token = server.admin_token().await;
    let mut admin = IdentityServiceClient::new(server.authed(&admin_token).await);
    let identity = admin
        .create_identity(pb::CreateIdentityRequest { name: "listener".into(), org_role: String::new() })
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap();
    let assign = |role: &str| pb::SetProjectRoleRequest {
        project_id: project.clone(),
        identity_id: identity.id.clone(),
        role_id: role.into(),
    };
    admin.set_project_role(assign("viewer")).await.unwrap();
    let secret = admin
        .create_client_secret(pb::CreateClientSecretRequest { identity_id: identity.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let token = server.login(&secret.client_id, &secret.client_secret).await.unwrap().access_token;
    let mut secrets = server.admin_secrets().await;

    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    create_secret(&mut secrets, &project, "dev", "/", "SEEN", "v").await;
    next_event(&mut stream).await;

    admin.set_project_role(assign("")).await.unwrap();
    let revoked_at = Instant::now();
    let end = loop {
        let message = tokio::time::timeout(WAIT, stream.message()).await.expect("the stream ends");
        match message {
            Err(status) => break status,
            Ok(Some(pb::SubscribeResponse { message: Some(Message::Event(event)) })) => {
                assert!(revoked_at.elapsed() < Duration::from_secs(1), "event after revocation: {event:?}");
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream closed without a status"),
        }
    };
    assert_eq!(end.code(), Code::PermissionDenied);
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "cut off within a second: {:?}", revoked_at.elapsed());

    // A revoked token ends the stream with UNAUTHENTICATED.
    admin.set_project_role(assign("viewer")).await.unwrap();
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut own = IdentityServiceClient::new(server.authed(&token).await);
    own.revoke_token(pb::RevokeTokenRequest::default()).await.unwrap();
    let end = loop {
        match tokio::time::timeout(WAIT, stream.message()).await.expect("the stream ends") {
            Err(status) => break status,
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream closed without a status"),
        }
    };
    assert_eq!(end.code(), Code::Unauthenticated);
}

async fn bad_subscriptions_fail_before_the_stream_opens(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("bad").await;
    let token = server.admin_token().await;
    let cases = [
        (vec![registration("secret:created", "", "")], None, Code::InvalidArgument, "registrations[0].event_type"),
        (vec![registration("*", "", "api/**")], None, Code::InvalidArgument, "registrations[0].conditions.secret_path"),
        (vec![registration("*", "", "/a/../b")], None, Code::InvalidArgument, "secret_path"),
        (vec![], Some("not-a-cursor".to_owned()), Code::InvalidArgument, "resume_after"),
        (vec![], Some("999999999".to_owned()), Code::InvalidArgument, "beyond the newest event"),
    ];
    for (registrations, resume, code, needle) in cases {
        let status = subscribe(&server, &token, &project, registrations, resume).await.unwrap_err();
        assert_eq!(status.code(), code);
        assert!(status.message().contains(needle), "{}", status.message());
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(subscribe(&server, &token, &unknown, vec![], None).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_before_the_retention_is_refused() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.event_retention = Duration::from_millis(300)).await;
    let project = server.project("retention").await;
    let token = server.admin_token().await;
    let mut secrets = server.admin_secrets().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    create_secret(&mut secrets, &project, "dev", "/", "OLD", "v").await;
    create_secret(&mut secrets, &project, "dev", "/", "OLDER", "v").await;
    let first = next_event(&mut stream).await.cursor;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = subscribe(&server, &token, &project, vec![], Some(first)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("retention"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_two_instances_receive_writes_made_on_either() {
    if !common::postgres_configured("multi-instance test") {
        return;
    }
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.join(|_| {}).await;
    let project = a.project("two-instances").await;
    let token = b.admin_token().await;
    let mut streams = Vec::new();
    for server in [&a, &b, &a, &b] {
        streams.push(subscribe(server, &token, &project, vec![], None).await.unwrap());
    }
    let (mut on_a, mut on_b) = (a.admin_secrets().await, b.admin_secrets().await);
    for i in 0..10 {
        let writer = if i % 2 == 0 { &mut on_a } else { &mut on_b };
        create_secret(writer, &project, "dev", "/", &format!("K{i}"), "v").await;
        let written = Instant::now();
        for stream in &mut streams {
            assert_eq!(keys(&next_event(stream).await), vec![triple("dev", "/", &format!("K{i}"))]);
        }
        // Woken by the writer's notification, not by the once-a-second poll (which would pass one such check
        // in ten, not ten in a row).
        assert!(written.elapsed() < Duration::from_millis(400), "took {:?}", written.elapsed());
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_produce_a_gap_free_ordered_stream() {
    let backend = if std::env::var(common::PG_URL_VAR).is_ok() { Backend::Postgres } else { Backend::Sqlite };
    const WRITERS: usize = 8;
    const WRITES: usize = 200;
    let server = TestServer::start(backend).await;
    let project = server.project("ordering").await;
    let token = server.admin_token().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        // Each writer on its own connection, as separate clients would be.
        let mut client: SecretsServiceClient<Authed> = SecretsServiceClient::new(server.authed(&token).await);
        let project = project.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES {
                create_secret(&mut client, &project, "dev", &format!("/w{w}"), &format!("K{i}"), "v").await;
            }
        }));
    }
    let mut seen = std::collections::HashSet::new();
    let mut last = 0i64;
    for _ in 0..WRITERS * WRITES {
        let event = next_event(&mut stream).await;
        let cursor: i64 = event.cursor.parse().unwrap();
        assert!(cursor > last, "cursor order: {cursor} after {last}");
        last = cursor;
        assert!(seen.insert(keys(&event)), "duplicate {event:?}");
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen.len(), WRITERS * WRITES, "every write seen exactly once");
    assert_no_event(&mut stream, Duration::from_millis(300)).await;
}

/// PostgreSQL: an event committed late with an earlier cursor is still delivered, before the later ones.
/// Whatever inserts into the outbox (here a bare `INSERT` on a connection of its own, which knows nothing of
/// hush's locks) holds the append lock until it ends, so the stream waits for it instead of skipping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_delivered_in_cursor_order() {
    if !common::postgres_configured("PostgreSQL-only test") {
        return;
    }
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let server = TestServer::start(Backend::Postgres).await;
    let project = server.project("late").await;
    let token = server.admin_token().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/", "FIRST", "v").await;
    assert_eq!(keys(&next_event(&mut stream).await), vec![triple("dev", "/", "FIRST")]);

    // A copy of that event takes the next cursor and stays uncommitted while a later write commits.
    let raw = server.raw_db().await;
    let late = raw.begin().await.unwrap();
    let copy = "INSERT INTO events (id, project_id, event_type, payload, actor, created_at) \
                SELECT 'late-' || id, project_id, event_type, payload, actor, created_at FROM events \
                ORDER BY seq DESC LIMIT 1";
    late.execute_unprepared(copy).await.unwrap();
    let later = tokio::spawn(async move {
        create_secret(&mut secrets, &project, "dev", "/", "LATER", "v").await;
    });
    assert_no_event(&mut stream, Duration::from_millis(1500)).await;

    late.commit().await.unwrap();
    assert_eq!(keys(&next_event(&mut stream).await), vec![triple("dev", "/", "FIRST")], "the late copy first");
    later.await.unwrap();
    assert_eq!(keys(&next_event(&mut stream).await), vec![triple("dev", "/", "LATER")]);
}

/// The imports that exist when the server starts are known to its writes: a change in an imported folder
/// still tells the importing folder after a restart (SQLite keeps which environments are imported from in
/// memory, read at start).
async fn import_mutations_reach_importers_after_a_restart(backend: Backend) {
    let mut first = TestServer::start(backend).await;
    let project = first.project("restart").await;
    let mut secrets = first.admin_secrets().await;
    create_secret(&mut secrets, &project, "prod", "/shared", "OLD", "v").await;
    create_secret(&mut secrets, &project, "dev", "/app", "LOCAL", "v").await;
    let import = pb::CreateSecretImportRequest {
        project_id: project.clone(),
        environment: "dev".into(),
        secret_path: "/app".into(),
        import_environment: "prod".into(),
        import_path: "/shared".into(),
    };
    secrets.create_secret_import(import).await.unwrap();
    first.halt().await;

    let server = first.join(|_| {}).await;
    let token = server.admin_token().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "prod", "/shared", "NEW", "v").await;
    assert_eq!(next_event(&mut stream).await.r#type, "secret:create");
    let mutation = next_event(&mut stream).await;
    assert_eq!(mutation.r#type, "secret:import-mutation");
    let folder = mutation.import_mutation.unwrap();
    assert_eq!((folder.environment.as_str(), folder.secret_path.as_str()), ("dev", "/app"));
    // A folder nothing imports from tells nobody.
    create_secret(&mut secrets, &project, "dev", "/app", "OTHER", "v").await;
    assert_eq!(next_event(&mut stream).await.r#type, "secret:create");
    assert_no_event(&mut stream, Duration::from_millis(300)).await;
}

/// PostgreSQL: a write of secrets that waited for an import's creation (which holds the imported environment
/// locked while the database marks it imported from) tells the new importer: the flag a write reads with its
/// lock on the environment is the one that creation committed, not the one before the write began waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_behind_an_import_creation_tells_the_new_importer() {
    if !common::postgres_configured("import race test") {
        return;
    }
    let server = TestServer::start(Backend::Postgres).await;
    let project = server.project("import-race").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "prod", "/shared", "K", "v").await;
    create_secret(&mut secrets, &project, "dev", "/app", "LOCAL", "v").await;
    let token = server.admin_token().await;
    let mut stream = subscribe(&server, &token, &project, vec![], None).await.unwrap();

    // The import's creation, as any build makes it, held open: both environments locked, the import of
    // prod:/shared into dev:/app inserted (which flags prod, see migration m0009).
    let db = server.raw_db().await;
    let creation = db.begin().await.unwrap();
    let pid = "SELECT pg_backend_pid() AS pid";
    let row = creation.query_one_raw(Statement::from_string(DbBackend::Postgres, pid)).await.unwrap().unwrap();
    let creation_pid: i32 = row.try_get("", "pid").unwrap();
    let env = |slug: &str| format!("(SELECT id FROM environments WHERE project_id = '{project}' AND slug = '{slug}')");
    let (prod, dev) = (env("prod"), env("dev"));
    for sql in [
        format!("SELECT id FROM environments WHERE id IN ({prod}, {dev}) ORDER BY id FOR UPDATE"),
        format!(
            "INSERT INTO secret_imports (id, environment_id, path, import_environment_id, import_path, position, \
             created_at) VALUES ('{}', {dev}, '/app', {prod}, '/shared', 0, now())",
            uuid::Uuid::now_v7()
        ),
    ] {
        creation.execute_unprepared(&sql).await.unwrap();
    }
    let update = pb::UpdateSecretRequest {
        project_id: project.clone(),
        environment: "prod".into(),
        secret_path: "/shared".into(),
        key: "K".into(),
        value: "v2".into(),
        comment: None,
        expected_version: None,
    };
    let write = tokio::spawn(async move { secrets.update_secret(update).await });
    let waiting = format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE {creation_pid} = ANY(pg_blocking_pids(pid)) \
         AND query LIKE '%environments%'"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, &waiting)).await.unwrap().unwrap();
        if row.try_get::<i64>("", "n").unwrap() > 0 {
            break;
        }
        assert!(!write.is_finished() && Instant::now() < deadline, "the write never waited for prod's lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    creation.commit().await.unwrap();
    write.await.unwrap().expect("the write goes on once the import is created");

    assert_eq!(next_event(&mut stream).await.r#type, "secret:update");
    let mutation = next_event(&mut stream).await;
    assert_eq!(mutation.r#type, "secret:import-mutation", "the new importer is told: {mutation:?}");
    let folder = mutation.import_mutation.unwrap();
    assert_eq!((folder.environment.as_str(), folder.secret_path.as_str()), ("dev", "/app"));
}
