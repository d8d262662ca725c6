//! Delivery state of one audit stream: its cursor over the audit log, the lease that makes one instance its
//! only sender, a pending backfill range, and the counters its status and metrics report.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_stream_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream_id: String,
    /// Last audit log `seq` delivered (or dropped).
    pub cursor: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<ChronoDateTimeUtc>,
    /// Backfill: entries with `backfill_from < seq <= backfill_to` are re-delivered before new ones.
    pub backfill_from: i64,
    pub backfill_to: i64,
    pub delivered_events: i64,
    pub dropped_batches: i64,
    pub dropped_events: i64,
    /// Delivery attempts, first tries and retries.
    pub attempts: i64,
    pub retries: i64,
    pub last_success_at: Option<ChronoDateTimeUtc>,
    pub last_error: String,
    pub last_error_at: Option<ChronoDateTimeUtc>,
    /// Set while a stream in `pause` mode holds a batch its destination refused through every retry.
    pub paused_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::audit_stream::Entity",
        from = "Column::StreamId",
        to = "super::audit_stream::Column::Id",
        on_delete = "Cascade"
    )]
    Stream,
}

impl ActiveModelBehavior for ActiveModel {}

impl Related<super::audit_stream::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Stream.def()
    }
}
