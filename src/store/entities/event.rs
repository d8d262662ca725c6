//! The event outbox: one row per secret change visible to subscribers, written in the same transaction as the
//! change. `seq` is the cursor; rows become visible in `seq` order (see `events::outbox`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: String,
    #[sea_orm(indexed)]
    pub project_id: String,
    pub event_type: String,
    /// `events::Payload` as JSON: secret names and paths, never values.
    pub payload: Json,
    /// `events::Actor` as JSON.
    pub actor: Json,
    #[sea_orm(indexed)]
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
