//! The next batch of a stream: audit entries after its position, in `seq` order, within its provider's request
//! limits, each entry serialized once.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::provider::{Entry, Limits};
use crate::{audit::AuditRecord, store::entities::audit_log};

/// A batch ready to send.
pub struct Batch {
    pub entries: Vec<Entry>,
    /// Entries too large for one request on their own: dropped with a reason.
    pub oversize: usize,
    /// The position after this batch.
    pub last_seq: i64,
}

/// The next batch of `org_id`'s entries after `after` and at or below `upto`; None when there is nothing to send.
pub async fn next(
    db: &impl ConnectionTrait,
    org_id: &str,
    after: i64,
    upto: i64,
    limits: Limits,
) -> Result<Option<Batch>, DbErr> {
    let rows = audit_log::Entity::find()
        .filter(audit_log::Column::OrgId.eq(org_id))
        .filter(audit_log::Column::Seq.gt(after))
        .filter(audit_log::Column::Seq.lte(upto))
        .order_by_asc(audit_log::Column::Seq)
        .limit(limits.max_events as u64)
        .all(db)
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut batch = Batch { entries: Vec::with_capacity(rows.len()), oversize: 0, last_seq: first.seq };
    let mut bytes = 2; // the array brackets
    for row in rows {
        let seq = row.seq;
        let entry = Entry::from(&AuditRecord::from(row));
        let size = entry.json.len() + limits.wrapping + 1;
        if entry.json.len() > limits.max_entry_bytes {
            batch.oversize += 1;
        } else if bytes + size > limits.max_bytes {
            // The rest goes in the next batch.
            break;
        } else {
            bytes += size;
            batch.entries.push(entry);
        }
        batch.last_seq = seq;
    }
    Ok(Some(batch))
}
