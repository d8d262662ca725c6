//! A stream's delivery state as its worker reads and writes it: the lease (compare-and-set), the outcome of
//! each batch (position and counters in one write), failed attempts, and the paused flag. Every write is a
//! write transaction of its own (on SQLite that takes the single-writer lock, so it cannot invalidate another
//! writer's transaction).

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QuerySelect, UpdateMany,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};

use crate::store::{
    Store,
    entities::{audit_stream, audit_stream_state as state},
};

/// What became of a batch.
pub enum Outcome {
    Delivered,
    /// Given up on after the last retry, with the last error.
    Dropped(String),
}

/// Where a batch was read from: the backfill range or the stream's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Backfill,
    Cursor,
}

impl Position {
    fn column(self) -> state::Column {
        match self {
            Position::Backfill => state::Column::BackfillFrom,
            Position::Cursor => state::Column::Cursor,
        }
    }
}

/// One stream's state, written as `owner` (this instance).
pub struct StreamState<'a> {
    pub store: &'a Store,
    pub stream_id: &'a str,
    pub owner: &'a str,
    pub lease: Duration,
}

fn add(column: state::Column, n: i64) -> SimpleExpr {
    Expr::col(column).add(n)
}

impl StreamState<'_> {
    /// The stream and its state as stored now; None when the stream was deleted.
    pub async fn load(&self) -> Result<Option<(audit_stream::Model, state::Model)>, DbErr> {
        let found = audit_stream::Entity::find_by_id(self.stream_id)
            .find_also_related(state::Entity)
            .one(self.store.conn())
            .await?;
        Ok(found.and_then(|(stream, state)| Some((stream, state?))))
    }

    /// When the stream's name or configuration last changed; None when it was deleted.
    pub async fn version(&self) -> Result<Option<chrono::DateTime<Utc>>, DbErr> {
        audit_stream::Entity::find_by_id(self.stream_id)
            .select_only()
            .column(audit_stream::Column::UpdatedAt)
            .into_tuple()
            .one(self.store.conn())
            .await
    }

    fn update(&self) -> UpdateMany<state::Entity> {
        state::Entity::update_many().filter(state::Column::StreamId.eq(self.stream_id))
    }

    /// The new lease expiry, from now.
    fn lease_until(&self) -> Expr {
        let until = Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        Expr::value(until)
    }

    /// Takes or renews the lease (compare-and-set): true when this instance holds it now.
    pub async fn take_lease(&self) -> Result<bool, DbErr> {
        let free = Condition::any()
            .add(state::Column::LeaseOwner.is_null())
            .add(state::Column::LeaseOwner.eq(self.owner))
            .add(state::Column::LeaseExpiresAt.lt(Utc::now()));
        let take = self
            .update()
            .col_expr(state::Column::LeaseOwner, Expr::value(self.owner.to_owned()))
            .col_expr(state::Column::LeaseExpiresAt, self.lease_until())
            .filter(free);
        Ok(self.write(take).await? == 1)
    }

    /// Counts a failed attempt (and the retry that follows it, if one does) with its error.
    pub async fn failed(&self, error: &str, retrying: bool) -> Result<(), DbErr> {
        let update = self
            .update()
            .col_expr(state::Column::Attempts, add(state::Column::Attempts, 1))
            .col_expr(state::Column::Retries, add(state::Column::Retries, i64::from(retrying)))
            .col_expr(state::Column::LastError, Expr::value(error.to_owned()))
            .col_expr(state::Column::LastErrorAt, Expr::value(Utc::now()));
        self.write(update).await.map(drop)
    }

    /// Marks the stream paused (its batch refused through every retry), keeping the time it first paused.
    pub async fn pause(&self) -> Result<(), DbErr> {
        let update = self
            .update()
            .col_expr(state::Column::PausedAt, Expr::value(Utc::now()))
            .filter(state::Column::PausedAt.is_null());
        self.write(update).await.map(drop)
    }

    /// Moves `position` from `after` past the batch (to `last_seq`), counts the outcome and renews the lease,
    /// only while this instance holds the lease and the position is still `after`, where the batch started: a
    /// backfill requested meanwhile may have moved it back, and must not be overwritten (the batch is then
    /// sent again: delivery is at-least-once). Returns whether it was recorded.
    pub async fn record(
        &self,
        position: Position,
        after: i64,
        last_seq: i64,
        sent: usize,
        oversize: usize,
        outcome: &Outcome,
    ) -> Result<bool, DbErr> {
        let sent = sent as i64;
        let mut update = self
            .update()
            .col_expr(position.column(), Expr::value(last_seq))
            .col_expr(state::Column::LeaseExpiresAt, self.lease_until())
            .filter(state::Column::LeaseOwner.eq(self.owner))
            .filter(position.column().eq(after));
        let mut dropped = (0, 0);
        let mut error = None;
        match outcome {
            Outcome::Delivered => {
                update = update
                    .col_expr(state::Column::Attempts, add(state::Column::Attempts, i64::from(sent > 0)))
                    .col_expr(state::Column::DeliveredEvents, add(state::Column::DeliveredEvents, sent))
                    .col_expr(state::Column::PausedAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
                    .col_expr(state::Column::LastSuccessAt, Expr::value(Utc::now()));
            }
            Outcome::Dropped(reason) => {
                tracing::error!(stream = %self.stream_id, events = sent, %reason, "audit stream batch dropped");
                dropped = (1, sent);
                error = Some(reason.clone());
            }
        }
        if oversize > 0 {
            let limit = "larger than the provider's request limit";
            tracing::error!(stream = %self.stream_id, events = oversize, "audit entries {limit} dropped");
            dropped = (dropped.0 + 1, dropped.1 + oversize as i64);
            error.get_or_insert_with(|| format!("{oversize} entries {limit} dropped"));
        }
        if dropped.0 > 0 {
            update = update
                .col_expr(state::Column::DroppedBatches, add(state::Column::DroppedBatches, dropped.0))
                .col_expr(state::Column::DroppedEvents, add(state::Column::DroppedEvents, dropped.1));
        }
        if let Some(error) = error {
            update = update
                .col_expr(state::Column::LastError, Expr::value(error))
                .col_expr(state::Column::LastErrorAt, Expr::value(Utc::now()));
        }
        Ok(self.write(update).await? == 1)
    }

    async fn write(&self, update: UpdateMany<state::Entity>) -> Result<u64, DbErr> {
        let txn = self.store.begin_write().await?;
        txn.leaves_secret_rows_alone();
        let rows = update.exec(&*txn).await?.rows_affected;
        txn.commit().await?;
        Ok(rows)
    }
}
