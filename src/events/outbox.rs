//! Writing and reading the event outbox.
//!
//! Readers read rows after the last `seq` they saw and up to the store's outbox head, below which no row can
//! still appear (see `Store::outbox_head`), so they never skip one.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{Actor, Event, EventType, Payload};
use crate::store::{
    WriteTxn,
    entities::{event, outbox_state},
};

pub use crate::store::NOTIFY_CHANNEL;

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub project_id: String,
    pub event_type: EventType,
    pub payload: Payload,
    pub actor: Actor,
}

/// Appends events in the caller's transaction; they become visible, in order, when it commits.
pub fn append(txn: &WriteTxn, events: Vec<NewEvent>) {
    let now = Utc::now();
    let rows = events.into_iter().map(|e| event::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        project_id: Set(e.project_id),
        event_type: Set(e.event_type.as_str().to_owned()),
        payload: Set(serde_json::to_value(&e.payload).expect("payload serializes")),
        actor: Set(serde_json::to_value(&e.actor).expect("actor serializes")),
        created_at: Set(now),
        ..Default::default()
    });
    txn.append_events(rows);
}

fn decode(row: event::Model) -> Option<Event> {
    Some(Event {
        seq: row.seq,
        event_type: EventType::parse(&row.event_type)?,
        payload: serde_json::from_value(row.payload).ok()?,
        actor: serde_json::from_value(row.actor).ok()?,
        id: row.id,
        project_id: row.project_id,
        time: row.created_at,
    })
}

/// Up to `limit` events after `after` and at or below `upto`, in cursor order, optionally of one project only.
pub async fn after(
    db: &impl ConnectionTrait,
    after: i64,
    upto: i64,
    project_id: Option<&str>,
    limit: u64,
) -> Result<Vec<Event>, DbErr> {
    let mut query = event::Entity::find().filter(event::Column::Seq.gt(after)).filter(event::Column::Seq.lte(upto));
    if let Some(project_id) = project_id {
        query = query.filter(event::Column::ProjectId.eq(project_id));
    }
    let rows = query.order_by_asc(event::Column::Seq).limit(limit).all(db).await?;
    Ok(rows.into_iter().filter_map(decode).collect())
}

/// Cursors at or below this were pruned; resuming from one of them would skip events.
pub async fn pruned_through(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    Ok(outbox_state::Entity::find_by_id(1).one(db).await?.map_or(0, |s| s.pruned_through))
}

/// Deletes events created before `cutoff`; returns how many were deleted.
pub async fn prune(txn: &WriteTxn, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let newest_expired: Option<Option<i64>> = event::Entity::find()
        .select_only()
        .column_as(event::Column::Seq.max(), "max")
        .filter(event::Column::CreatedAt.lt(cutoff))
        .into_tuple()
        .one(&**txn)
        .await?;
    let Some(through) = newest_expired.flatten() else { return Ok(0) };
    outbox_state::Entity::update_many()
        .col_expr(outbox_state::Column::PrunedThrough, sea_orm::sea_query::Expr::value(through))
        .filter(outbox_state::Column::Id.eq(1))
        .filter(outbox_state::Column::PrunedThrough.lt(through))
        .exec(&**txn)
        .await?;
    let deleted = event::Entity::delete_many().filter(event::Column::Seq.lte(through)).exec(&**txn).await?;
    Ok(deleted.rows_affected)
}
