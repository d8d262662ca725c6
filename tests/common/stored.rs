//! What a server stored, read straight from its database: audit entries and outbox events by secret key, for
//! tests that check a change and its records are all there or all absent.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// The one text column of every row `sql` selects.
pub async fn texts(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("query");
    rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a text column")).collect()
}

/// `(secretKey, secretVersion)` of every audit entry of `event_type` (e.g. `update-secret`).
pub async fn audited(db: &DatabaseConnection, event_type: &str) -> Vec<(String, u32)> {
    let sql = format!("SELECT CAST(event_metadata AS TEXT) FROM audit_logs WHERE event_type = '{event_type}'");
    texts(db, &sql)
        .await
        .into_iter()
        .map(|text| {
            let meta: serde_json::Value = serde_json::from_str(&text).expect("metadata JSON");
            let key = meta["secretKey"].as_str().unwrap_or_default().to_owned();
            (key, meta["secretVersion"].as_u64().unwrap_or(0) as u32)
        })
        .collect()
}

/// The key of every secret named by an outbox event of `event_type` (e.g. `secret:update`), once per event.
pub async fn evented(db: &DatabaseConnection, event_type: &str) -> Vec<String> {
    let sql = format!("SELECT CAST(payload AS TEXT) FROM events WHERE event_type = '{event_type}'");
    let mut keys = Vec::new();
    for text in texts(db, &sql).await {
        let payload: serde_json::Value = serde_json::from_str(&text).expect("payload JSON");
        for secret in payload["secrets"].as_array().into_iter().flatten() {
            keys.push(secret["secretKey"].as_str().unwrap_or_default().to_owned());
        }
    }
    keys
}
