//! Whether some folder imports from an environment (`environments.import_source`): set for every environment
//! an import already names, and from now on by the database itself whenever an import is inserted (a trigger
//! on `secret_imports`); written out explicitly: a later change is a new migration, never an edit of this one.
//!
//! Why: a write of secrets appends a `secret:import-mutation` event for each folder importing the changed
//! folder, and looked those folders up with a statement of its own on every write. The flag is read by the
//! statement that locks the environment anyway (see `scope::env_scope_for_secret_write`), so a write in an
//! environment nothing imports from, the common case, skips that lookup. Set by a trigger rather than by the
//! server, it holds for imports created by any instance, one still running an older build during an upgrade
//! included. A write waiting for the import's creation reads the flag it set: this build's creation holds the
//! source environment locked while it inserts, and with any build the trigger's own update of a flag not yet
//! set locks the row against the write's share lock.

use sea_orm_migration::prelude::*;

const POSTGRES: &str = r#"
ALTER TABLE "environments" ADD COLUMN "import_source" bool NOT NULL DEFAULT FALSE;
UPDATE "environments" SET "import_source" = TRUE
    WHERE "id" IN (SELECT "import_environment_id" FROM "secret_imports");
CREATE FUNCTION "hush_mark_import_source"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE "environments" SET "import_source" = TRUE WHERE "id" = NEW."import_environment_id" AND NOT "import_source";
    RETURN NULL;
END
$$;
CREATE TRIGGER "hush_import_source" AFTER INSERT ON "secret_imports"
    FOR EACH ROW EXECUTE FUNCTION "hush_mark_import_source"();
"#;

const SQLITE: &str = r#"
ALTER TABLE "environments" ADD COLUMN "import_source" boolean NOT NULL DEFAULT FALSE;
UPDATE "environments" SET "import_source" = TRUE
    WHERE "id" IN (SELECT "import_environment_id" FROM "secret_imports");
CREATE TRIGGER "hush_import_source" AFTER INSERT ON "secret_imports" FOR EACH ROW BEGIN
    UPDATE "environments" SET "import_source" = TRUE WHERE "id" = NEW."import_environment_id" AND NOT "import_source";
END;
"#;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_environment_import_sources"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        manager.get_connection().execute_unprepared(sql).await.map(drop)
    }
}
