//! Databases made by hush 0.1.0 recorded the six development migrations that built its schema from the
//! entities of the day. Their schema is exactly migration 1's, so their records are replaced by migration 1's
//! and nothing is re-run. One made before the last of them (`m0006_identity_hygiene`) first gets that step's
//! changes, written out here. Any other mix of development records is refused: guessing would risk a
//! half-upgraded database.

use std::collections::BTreeSet;

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};
use sea_orm_migration::{MigrationName, SchemaManager, seaql_migrations};

/// What 0.1.0 recorded, in order.
pub(super) const DEVELOPMENT: [&str; 6] = [
    "m0001_foundation",
    "m0002_permissions",
    "m0003_events",
    "m0004_audit_logs",
    "m0005_audit_streams",
    "m0006_identity_hygiene",
];

/// `m0006_identity_hygiene` for a database that lacks it (same SQL on SQLite and PostgreSQL): tokens gain the
/// client secret that minted them; identity names become unique per org, duplicates but the oldest renamed
/// `<name, cut to 51 characters>-<last 12 characters of the id>` (nothing is deleted).
const IDENTITY_HYGIENE: &str = r#"
ALTER TABLE "access_tokens" ADD COLUMN "client_secret_id" varchar NULL;
CREATE INDEX "idx-access_tokens-client_secret_id" ON "access_tokens" ("client_secret_id");
UPDATE "identities" SET "name" = substr("name", 1, 51) || '-' || substr("id", length("id") - 11)
WHERE "id" IN (
    SELECT "id" FROM (
        SELECT "id", row_number() OVER (PARTITION BY "org_id", "name" ORDER BY "created_at", "id") AS "rank"
        FROM "identities"
    ) AS "ranked"
    WHERE "rank" > 1
);
CREATE UNIQUE INDEX "idx-identities-org_id-name" ON "identities" ("org_id", "name");
"#;

/// Replaces 0.1.0's development records by migration 1's (after the missing step, if any).
pub(super) async fn adopt(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    if !SchemaManager::new(txn).has_table("seaql_migrations").await? {
        return Ok(());
    }
    let records = seaql_migrations::Entity::find().all(txn).await?;
    let recorded: BTreeSet<&str> = records.iter().map(|r| r.version.as_str()).collect();
    if !DEVELOPMENT.iter().any(|name| recorded.contains(name)) {
        return Ok(());
    }
    let all: BTreeSet<&str> = DEVELOPMENT.into_iter().collect();
    let before_hygiene: BTreeSet<&str> = DEVELOPMENT[..5].iter().copied().collect();
    if recorded == before_hygiene {
        txn.execute_unprepared(IDENTITY_HYGIENE).await?;
    } else if recorded != all {
        return Err(DbErr::Migration(format!(
            "this database records the migrations {recorded:?}, a mix no hush release made (0.1.0 recorded \
             {DEVELOPMENT:?}); refusing to upgrade it"
        )));
    }
    let applied_at = records.iter().map(|r| r.applied_at).max().unwrap_or_default();
    seaql_migrations::Entity::delete_many()
        .filter(seaql_migrations::Column::Version.is_in(DEVELOPMENT))
        .exec(txn)
        .await?;
    let baseline = seaql_migrations::ActiveModel {
        version: Set(super::m0001_schema_0_1_0::Migration.name().to_owned()),
        applied_at: Set(applied_at),
    };
    seaql_migrations::Entity::insert(baseline).exec(txn).await?;
    tracing::info!("adopted a hush 0.1.0 database: its development migrations are recorded as migration 1");
    Ok(())
}
