//! One audit log entry. `seq` orders entries in commit order (see `audit::record`) for pagination and for
//! the audit streams' delivery cursors.

use sea_orm::entity::prelude::*;

/// The indexes are PostgreSQL's; SQLite databases do without the actor, event type and creation time ones, which
/// its planner never reads for hush's queries (`store::SQLITE_UNREAD_AUDIT_INDEXES`, migration m0008).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: String,
    /// `identity`, `platform` or `unknownUser`.
    pub actor_type: String,
    #[sea_orm(indexed)]
    pub actor_id: String,
    pub actor_name: String,
    pub ip_address: String,
    pub user_agent: String,
    pub user_agent_type: String,
    #[sea_orm(indexed)]
    pub event_type: String,
    /// Names, ids, paths and versions; never a secret value.
    pub event_metadata: Json,
    #[sea_orm(indexed)]
    pub org_id: String,
    #[sea_orm(indexed)]
    pub project_id: Option<String>,
    #[sea_orm(indexed)]
    pub created_at: ChronoDateTimeUtc,
    #[sea_orm(indexed)]
    pub expires_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
