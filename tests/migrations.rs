//! Upgrading a database made before m0006: duplicate identity names are renamed (nothing is deleted), names
//! become unique, and tokens gain the column that ties them to their client secret.

mod common;

use common::{Backend, TestServer, members::new_member};
use sea_orm::{ConnectionTrait, Statement};

backend_tests!(identity_hygiene_upgrades_an_older_database);

async fn identity_hygiene_upgrades_an_older_database(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let worker = new_member(&server, "worker", "").await;
    server.halt().await;
    // Undo m0006 as an older database would look: no unique index, no column, and a duplicate name.
    let db = server.raw_db().await;
    for sql in [
        r#"DROP INDEX "idx-identities-org_id-name""#,
        r#"DROP INDEX "idx-access_tokens-client_secret_id""#,
        r#"ALTER TABLE access_tokens DROP COLUMN client_secret_id"#,
        r#"DELETE FROM seaql_migrations WHERE version = 'm0006_identity_hygiene'"#,
    ] {
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let duplicate = "INSERT INTO identities (id, org_id, name, client_id, org_role, created_at) \
         SELECT 'ffffffff-ffff-7fff-bfff-ffffffffbeef', org_id, name, 'dup-client', NULL, created_at \
         FROM identities WHERE id = $1";
    let backend_kind = db.get_database_backend();
    let sql = if backend == Backend::Sqlite { duplicate.replace("$1", "?") } else { duplicate.to_owned() };
    db.execute_raw(Statement::from_sql_and_values(backend_kind, sql, [worker.id.clone().into()])).await.unwrap();

    let upgraded = server.join(|_| {}).await;
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
}
