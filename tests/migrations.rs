//! Databases made by hush 0.1.0's development migrations. One made before the last of them
//! (`m0006_identity_hygiene`) is upgraded: duplicate identity names are renamed (nothing is deleted), names
//! become unique, and tokens gain the column that ties them to their client secret. A mix of records no release
//! made is refused and left as it was. (`tests/upgrade_0_1_0.rs` upgrades a real 0.1.0 database.)

mod common;

use common::{Backend, ScratchDatabase, TestServer, members::new_member};
use hush::{pb, store::Store};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

backend_tests!(
    identity_hygiene_upgrades_an_older_database,
    an_unknown_mix_of_records_is_refused,
    duplicate_project_names_are_renamed_on_upgrade
);

/// 0.1.0's development migrations, as it recorded them in the SQLite fixture it made.
async fn development() -> Vec<String> {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v0_1_0/sqlite/hush.db");
    let db = Database::connect(format!("sqlite://{fixture}?mode=ro")).await.unwrap();
    let versions = recorded(&db).await;
    assert_eq!(versions.len(), 6, "{versions:?}");
    versions
}

/// Replaces the database's migration records by `versions`.
async fn record(db: &DatabaseConnection, versions: &[String]) {
    db.execute_unprepared("DELETE FROM seaql_migrations").await.unwrap();
    for version in versions {
        let sql = format!("INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', 1700000000)");
        db.execute_unprepared(&sql).await.unwrap();
    }
}

async fn recorded(db: &DatabaseConnection) -> Vec<String> {
    let sql = "SELECT version FROM seaql_migrations ORDER BY version".to_owned();
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get::<String>("", "version").unwrap()).collect()
}

async fn identity_hygiene_upgrades_an_older_database(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let worker = new_member(&server, "worker", "").await;
    server.project("with-environments").await;
    server.halt().await;
    // Undo m0006 as an older database would look: no unique index, no column, and a duplicate name; and
    // nothing newer than 0.1.0 (the root key check, the permission change log, streams' failure mode, the index
    // of imports by source, the append lock, SQLite's audit indexes, environments' import flag and its trigger).
    let db = server.raw_db().await;
    let import_flag = match backend {
        Backend::Postgres => {
            r#"DROP TRIGGER hush_import_source ON secret_imports; DROP FUNCTION hush_mark_import_source()"#
        }
        Backend::Sqlite => r#"DROP TRIGGER hush_import_source"#,
    };
    db.execute_unprepared(import_flag).await.unwrap();
    for sql in [
        r#"DROP TABLE root_key_check"#,
        r#"DROP TABLE permission_changes"#,
        r#"ALTER TABLE audit_streams DROP COLUMN on_failure"#,
        r#"ALTER TABLE audit_stream_states DROP COLUMN paused_at"#,
        r#"DROP INDEX "idx-projects-projects_org_name""#,
        r#"DROP INDEX "idx-identities-org_id-name""#,
        r#"DROP INDEX "idx-access_tokens-client_secret_id""#,
        r#"ALTER TABLE access_tokens DROP COLUMN client_secret_id"#,
        r#"DROP INDEX "idx-secret_imports-import_environment_id""#,
        r#"ALTER TABLE environments DROP COLUMN import_source"#,
    ] {
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // SQLite only: the audit indexes its planner never reads (m0008), each named after its column.
    if backend == Backend::Sqlite {
        for index in hush::store::SQLITE_UNREAD_AUDIT_INDEXES {
            let column = index.strip_prefix("idx-audit_logs-").expect("named after its column");
            let sql = format!(r#"CREATE INDEX "{index}" ON "audit_logs" ("{column}")"#);
            db.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    // PostgreSQL only: the append lock taken by inserts into the logs (m0007).
    let append_lock = r#"DROP TRIGGER hush_append_lock ON events; DROP TRIGGER hush_append_lock ON audit_logs;
        DROP FUNCTION hush_hold_append_lock()"#;
    if backend == Backend::Postgres {
        db.execute_unprepared(append_lock).await.unwrap();
    }
    let development = development().await;
    record(&db, &development[..5]).await;
    let duplicate = "INSERT INTO identities (id, org_id, name, client_id, org_role, created_at) \
         SELECT 'ffffffff-ffff-7fff-bfff-ffffffffbeef', org_id, name, 'dup-client', NULL, created_at \
         FROM identities WHERE id = $1";
    let backend_kind = db.get_database_backend();
    let sql = if backend == Backend::Sqlite { duplicate.replace("$1", "?") } else { duplicate.to_owned() };
    db.execute_raw(Statement::from_sql_and_values(backend_kind, sql, [worker.id.clone().into()])).await.unwrap();

    let upgraded = server.join(|_| {}).await;
    let records = recorded(&db).await;
    assert_eq!(records.first().map(String::as_str), Some("m0001_schema_0_1_0"), "recorded as migration 1: {records:?}");
    assert!(!records.iter().any(|r| development.contains(r)), "no development record is left: {records:?}");
    let names = db
        .query_all_raw(Statement::from_string(backend_kind, "SELECT name FROM identities ORDER BY name".to_owned()))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .filter(|name| name.starts_with("worker"))
        .collect::<Vec<_>>();
    assert_eq!(names, ["worker", "worker-ffffffffbeef"], "the duplicate is renamed, not dropped");
    // Names are unique from now on, and logins record their client secret again.
    upgraded.login(&worker.client_id, &worker.client_secret).await.expect("the original identity still logs in");
    let tied = db
        .query_one_raw(Statement::from_string(
            backend_kind,
            "SELECT COUNT(*) AS n FROM access_tokens WHERE client_secret_id IS NOT NULL".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(tied, 1, "the new token names its client secret");
    let again = db
        .execute_unprepared(
            "INSERT INTO identities (id, org_id, name, client_id, org_role, created_at) \
             SELECT '00000000-0000-7000-8000-00000000cafe', org_id, name, 'dup-2', NULL, created_at FROM identities \
             WHERE name = 'worker'",
        )
        .await;
    assert!(again.is_err(), "a second 'worker' is refused by the unique index");
    if backend == Backend::Postgres {
        let triggers = "SELECT COUNT(*) AS n FROM pg_trigger WHERE tgname = 'hush_append_lock'";
        let row = db.query_one_raw(Statement::from_string(backend_kind, triggers.to_owned())).await.unwrap().unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 2, "both logs take the append lock again");
    }
    // Imports mark their source environment again, whichever instance inserts them: the source, not the importer.
    let marked = "SELECT COUNT(*) AS n FROM environments WHERE import_source";
    let count = async || {
        let row = db.query_one_raw(Statement::from_string(backend_kind, marked.to_owned())).await.unwrap().unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    let before = count().await;
    let source_marked = "SELECT COUNT(*) AS n FROM environments e JOIN secret_imports i \
         ON i.import_environment_id = e.id WHERE e.import_source AND i.id = '00000000-0000-7000-8000-0000000000aa'";
    let import = "INSERT INTO secret_imports (id, environment_id, path, import_environment_id, import_path, position, \
         created_at) SELECT '00000000-0000-7000-8000-0000000000aa', e.id, '/', s.id, '/', 0, e.created_at \
         FROM environments e JOIN environments s ON s.project_id = e.project_id AND s.id <> e.id LIMIT 1";
    db.execute_unprepared(import).await.unwrap();
    assert_eq!(count().await, before + 1, "the import's source is marked by the database");
    let row = db.query_one_raw(Statement::from_string(backend_kind, source_marked.to_owned())).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1, "the marked environment is the import's source");
}

/// A database from before migration 5 may hold projects of one name; the upgrade keeps the name on the oldest,
/// renames the others to the first free `name (n)` (skipping a name a project already has), loses no project,
/// and from then on the unique index refuses a duplicate.
async fn duplicate_project_names_are_renamed_on_upgrade(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let original = server.project("payments").await;
    server.project("payments (2)").await;
    server.halt().await;
    let db = server.raw_db().await;
    db.execute_unprepared(r#"DROP INDEX "idx-projects-projects_org_name""#).await.unwrap();
    db.execute_unprepared("DELETE FROM seaql_migrations WHERE version = 'm0005_unique_project_names'").await.unwrap();
    for id in ["ffffffff-ffff-7fff-bfff-000000000001", "ffffffff-ffff-7fff-bfff-000000000002"] {
        let copy = format!(
            "INSERT INTO projects (id, org_id, name, sealed_data_key, created_at) \
             SELECT '{id}', org_id, name, sealed_data_key, created_at FROM projects WHERE id = '{original}'"
        );
        db.execute_unprepared(&copy).await.unwrap();
    }

    let upgraded = server.join(|_| {}).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, name FROM projects ORDER BY id".to_owned(),
        ))
        .await
        .unwrap();
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.try_get::<String>("", "id").unwrap(), row.try_get::<String>("", "name").unwrap()))
        .collect();
    let name_of = |id: &str| names.iter().find(|(i, _)| i == id).map(|(_, n)| n.as_str()).unwrap();
    assert_eq!(names.len(), 4, "no project is lost: {names:?}");
    assert_eq!(name_of(&original), "payments", "the oldest keeps its name");
    assert_eq!(name_of("ffffffff-ffff-7fff-bfff-000000000001"), "payments (3)", "'payments (2)' is taken");
    assert_eq!(name_of("ffffffff-ffff-7fff-bfff-000000000002"), "payments (4)");
    let mut projects = upgraded.admin_projects().await;
    let again = projects.create_project(pb::CreateProjectRequest { name: "payments".into() }).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
}

/// Records no release made (part of 0.1.0's, 0.1.0's with a later one, or one from a newer hush, as after a
/// downgrade) stop the start with an error naming them, and the database is left as it was.
async fn an_unknown_mix_of_records_is_refused(backend: Backend) {
    let scratch = ScratchDatabase::new(backend).await;
    drop(Store::connect(&scratch.url).await.expect("a fresh database migrates"));
    let db = Database::connect(&scratch.url).await.unwrap();
    let development = development().await;
    let baseline = "m0001_schema_0_1_0".to_owned();
    let newer = "m9999_from_a_newer_hush".to_owned();
    let mixes = [
        (development[..3].to_vec(), "a mix no hush release made"),
        ([&development[..4], &development[5..]].concat(), "a mix no hush release made"),
        ([&development[..], std::slice::from_ref(&baseline)].concat(), "a mix no hush release made"),
        (vec![baseline, newer], "has been applied but its file is missing"),
    ];
    for (mut mix, says) in mixes {
        record(&db, &mix).await;
        let error = Store::connect(&scratch.url).await.err().unwrap_or_else(|| panic!("{mix:?} is refused"));
        let message = error.to_string();
        let named = mix.iter().any(|v| v != "m0001_schema_0_1_0" && message.contains(v.as_str()));
        assert!(message.contains(says) && named, "{mix:?}: {message}");
        mix.sort();
        assert_eq!(recorded(&db).await, mix, "the refused database is left as it was");
    }
}
