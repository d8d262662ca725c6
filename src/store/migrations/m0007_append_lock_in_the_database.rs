//! PostgreSQL: every insert into the sequence-ordered logs (`events`, `audit_logs`) takes the append lock
//! itself, in a statement-level `BEFORE INSERT` trigger, written out explicitly: a later change is a new
//! migration, never an edit of this one. SQLite has no such lock (one writer) and gets nothing.
//!
//! Why: the settled head (`store::settled`) needs every appender to hold the lock shared from before it draws
//! its first cursor until it ends. Taken by the client, that was a statement of its own before the inserts: a
//! round trip per write, and three per group of read audit entries (`BEGIN`, the lock, `COMMIT` around the
//! insert). Taken by the insert, an audit group is one statement, and no appender can forget it. A `BEFORE
//! STATEMENT` trigger fires before the statement computes its first row, so before any `nextval`.

use sea_orm_migration::prelude::*;

/// `store::settled::APPEND_LOCK` ("hush" + 1), as the trigger holds it; a test compares the two.
const POSTGRES: &str = r#"
CREATE FUNCTION "hush_hold_append_lock"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(114853656657921);
    RETURN NULL;
END
$$;
CREATE TRIGGER "hush_append_lock" BEFORE INSERT ON "events"
    FOR EACH STATEMENT EXECUTE FUNCTION "hush_hold_append_lock"();
CREATE TRIGGER "hush_append_lock" BEFORE INSERT ON "audit_logs"
    FOR EACH STATEMENT EXECUTE FUNCTION "hush_hold_append_lock"();
"#;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_append_lock_in_the_database"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            sea_orm::DbBackend::Postgres => manager.get_connection().execute_unprepared(POSTGRES).await.map(drop),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trigger_holds_the_lock_the_readers_take() {
        let held = format!("pg_advisory_xact_lock_shared({});", crate::store::settled::APPEND_LOCK);
        assert!(super::POSTGRES.contains(&held), "{held}");
    }
}
