//! The schema the migrations build equals the one the entities describe: tables, columns (type, nullability,
//! default), primary keys, indexes (and whether unique) and foreign keys, on SQLite and PostgreSQL. The expected
//! schema is made from the entities with sea-orm in a database of its own; both are read back from the
//! database's catalog and compared line by line.

mod common;

use std::collections::BTreeSet;

use common::{Backend, ScratchDatabase};
use hush::store::{Store, entities::*};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, Schema, Statement,
    TransactionTrait,
};

backend_tests!(migrated_schema_matches_the_entities, schema_comparison_catches_drift);

async fn migrated_schema_matches_the_entities(backend: Backend) {
    let (migrated, expected) = (ScratchDatabase::new(backend).await, ScratchDatabase::new(backend).await);
    let store = Store::connect(&migrated.url).await.expect("migrations apply");
    let entities = entity_schema(&expected.url).await;
    let migrated = describe(store.conn()).await;
    let read = |prefix: &str| migrated.iter().any(|line| line.starts_with(prefix));
    assert!(read("secrets.sealed_value: ") && read("secret_versions ") && read("audit_logs "), "{migrated:#?}");
    let diff = difference(&migrated, &describe(&entities).await);
    assert!(diff.is_empty(), "the migrated schema differs from the entities:\n{}", diff.join("\n"));
}

/// A changed column type and a missing index, as a migration that forgot them would leave the schema, are
/// both reported.
async fn schema_comparison_catches_drift(backend: Backend) {
    let (migrated, expected) = (ScratchDatabase::new(backend).await, ScratchDatabase::new(backend).await);
    let store = Store::connect(&migrated.url).await.expect("migrations apply");
    // One call, so one connection: another SQLite connection could still hold the old column list.
    let drift = r#"ALTER TABLE "secrets" DROP COLUMN "comment";
        ALTER TABLE "secrets" ADD COLUMN "comment" bigint NOT NULL DEFAULT 0;
        DROP INDEX "idx-identities-org_id-name";"#;
    store.conn().execute_unprepared(drift).await.expect("the schema drifts");
    let entities = entity_schema(&expected.url).await;
    let diff = difference(&describe(store.conn()).await, &describe(&entities).await);
    let reported = |prefix: &str, needle: &str| diff.iter().any(|l| l.starts_with(prefix) && l.contains(needle));
    assert!(reported("- ", "secrets.comment: bigint"), "the migrated type is reported: {diff:#?}");
    assert!(reported("+ ", "secrets.comment: "), "the expected type is reported: {diff:#?}");
    assert!(reported("+ ", "idx-identities-org_id-name"), "the missing index is reported: {diff:#?}");
    assert_eq!(diff.len(), 3, "nothing else differs: {diff:#?}");
}

/// Lines only in `migrated` (`- `) and only in `expected` (`+ `).
fn difference(migrated: &BTreeSet<String>, expected: &BTreeSet<String>) -> Vec<String> {
    let only_migrated = migrated.difference(expected).map(|l| format!("- {l}  (migrated only)"));
    let only_expected = expected.difference(migrated).map(|l| format!("+ {l}  (entities only)"));
    only_migrated.chain(only_expected).collect()
}

/// A database with the tables and indexes sea-orm derives from the entities (parents first, for the foreign
/// keys; one transaction, which PostgreSQL commits faster than sixty).
async fn entity_schema(url: &str) -> DatabaseConnection {
    let db = Database::connect(url).await.expect("connect");
    let txn = db.begin().await.expect("begin");
    create(&txn, org::Entity).await;
    create(&txn, identity::Entity).await;
    create(&txn, client_secret::Entity).await;
    create(&txn, access_token::Entity).await;
    create(&txn, project::Entity).await;
    create(&txn, environment::Entity).await;
    create(&txn, folder::Entity).await;
    create(&txn, secret::Entity).await;
    create(&txn, secret_version::Entity).await;
    create(&txn, secret_import::Entity).await;
    create(&txn, role::Entity).await;
    create(&txn, project_membership::Entity).await;
    create(&txn, authz_version::Entity).await;
    create(&txn, permission_change::Entity).await;
    create(&txn, event::Entity).await;
    create(&txn, outbox_state::Entity).await;
    create(&txn, audit_log::Entity).await;
    if txn.get_database_backend() == DbBackend::Sqlite {
        // The entities describe PostgreSQL's indexes; SQLite's schema leaves out those its planner never reads.
        for index in hush::store::SQLITE_UNREAD_AUDIT_INDEXES {
            txn.execute_unprepared(&format!(r#"DROP INDEX "{index}""#)).await.expect("drop index");
        }
    }
    create(&txn, audit_stream::Entity).await;
    create(&txn, audit_stream_state::Entity).await;
    create(&txn, root_key_check::Entity).await;
    txn.commit().await.expect("commit");
    db
}

async fn create<E: EntityTrait>(db: &DatabaseTransaction, entity: E) {
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(entity)).await.expect("create table");
    for index in schema.create_index_from_entity(entity) {
        db.execute(&index).await.expect("create index");
    }
}

/// The schema as sorted lines, one per column, key, index and foreign key (the migrations' own table left out).
async fn describe(db: &DatabaseConnection) -> BTreeSet<String> {
    let queries = match db.get_database_backend() {
        DbBackend::Sqlite => &SQLITE_CATALOG[..],
        _ => &POSTGRES_CATALOG[..],
    };
    let mut lines = BTreeSet::new();
    for &sql in queries {
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect(sql);
        lines.extend(rows.iter().map(|row| row.try_get::<String>("", "line").expect("a line")));
    }
    lines
}

/// SQLite: `pragma_*` table functions. Indexes backing UNIQUE constraints get generated names that depend on
/// constraint order, so they are named by their columns only.
const SQLITE_CATALOG: [&str; 5] = [
    r#"SELECT t.name || '.' || c.name || ': ' || c.type || CASE WHEN c."notnull" THEN ' not null' ELSE ' null' END
              || coalesce(' default ' || c.dflt_value, '') AS line
       FROM sqlite_master t, pragma_table_info(t.name) c
       WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'seaql_migrations'"#,
    r#"SELECT t.name || ' primary key (' || group_concat(c.name, ', ' ORDER BY c.pk) || ')' AS line
       FROM sqlite_master t, pragma_table_info(t.name) c
       WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'seaql_migrations' AND c.pk > 0
       GROUP BY t.name"#,
    r#"SELECT t.name || ' autoincrement' AS line FROM sqlite_master t
       WHERE t.type = 'table' AND t.name <> 'seaql_migrations' AND t.sql LIKE '%AUTOINCREMENT%'"#,
    r#"SELECT t.name || CASE WHEN i."unique" THEN ' unique index ' ELSE ' index ' END
              || CASE WHEN i.origin = 'c' THEN i.name ELSE '(constraint)' END
              || ' (' || (SELECT group_concat(name, ', ' ORDER BY seqno) FROM pragma_index_info(i.name))
              || ')' AS line
       FROM sqlite_master t, pragma_index_list(t.name) i
       WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'seaql_migrations' AND i.origin <> 'pk'"#,
    r#"SELECT t.name || ' foreign key (' || f."from" || ') references ' || f."table" || ' (' || f."to" || ') on delete '
              || f.on_delete || ' on update ' || f.on_update AS line
       FROM sqlite_master t, pragma_foreign_key_list(t.name) f
       WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' AND t.name <> 'seaql_migrations'"#,
];

/// PostgreSQL: the catalog's own renderings of types, defaults, indexes and constraints.
const POSTGRES_CATALOG: [&str; 3] = [
    r#"SELECT c.relname || '.' || a.attname || ': ' || format_type(a.atttypid, a.atttypmod)
              || CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END
              || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS line
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
       JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relname <> 'seaql_migrations'"#,
    r#"SELECT tablename || ' ' || indexdef AS line FROM pg_indexes
       WHERE schemaname = current_schema() AND tablename <> 'seaql_migrations'"#,
    r#"SELECT c.conrelid::regclass::text || ' constraint ' || c.conname || ' ' || pg_get_constraintdef(c.oid) AS line
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace AND n.nspname = current_schema()
       WHERE c.conrelid <> 0 AND c.conrelid::regclass::text <> 'seaql_migrations'"#,
];
