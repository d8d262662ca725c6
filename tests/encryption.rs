//! Encryption at rest: no plaintext in the stored data, and a damaged or moved ciphertext fails to decrypt
//! with a clear DATA_LOSS error instead of returning the wrong value.

mod common;

use common::{Backend, TestServer, create_secret, get_secret};
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;

backend_tests!(moved_or_tampered_ciphertext_fails_clearly);

/// A value that cannot occur in stored data by chance.
const MARKER: &str = "plaintext-marker-7f3a9c2e51";

#[tokio::test]
async fn sqlite_file_holds_no_plaintext_value() {
    let server = TestServer::start(Backend::Sqlite).await;
    let project = server.project("at-rest").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/", "DB_PASSWORD", MARKER).await;
    create_secret(&mut secrets, &project, "prod", "/deep/path", "OTHER", &format!("{MARKER}-2")).await;
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/", "DB_PASSWORD").await.unwrap().value, MARKER);
    // Every file of the data dir: the database, its write-ahead log (where fresh pages live) and the rest.
    let mut scanned = 0;
    for entry in std::fs::read_dir(server.data_dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "plaintext found in {}", path.display());
    }
    assert!(scanned > 4096, "the database was actually read");
}

async fn moved_or_tampered_ciphertext_fails_clearly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let project = server.project("tamper").await;
    let mut secrets = server.admin_secrets().await;
    create_secret(&mut secrets, &project, "dev", "/", "SOURCE", "source-value").await;
    create_secret(&mut secrets, &project, "dev", "/", "TARGET", "target-value").await;
    create_secret(&mut secrets, &project, "dev", "/", "FLIPPED", "flipped-value").await;
    let db = server.raw_db().await;
    let backend = db.get_database_backend();

    // Copy SOURCE's ciphertext onto TARGET: a valid ciphertext, but bound to another key.
    db.execute_unprepared(
        "UPDATE secrets SET sealed_value = (SELECT sealed_value FROM secrets WHERE key = 'SOURCE') WHERE key = 'TARGET'",
    )
    .await
    .unwrap();
    let status = get_secret(&mut secrets, &project, "dev", "/", "TARGET").await.unwrap_err();
    assert_eq!(status.code(), Code::DataLoss);
    assert!(status.message().contains("TARGET") && status.message().contains("failed"), "{}", status.message());
    assert!(!status.message().contains("source-value"));

    // Flip one byte of FLIPPED's ciphertext.
    let row = db
        .query_one_raw(Statement::from_string(backend, "SELECT sealed_value FROM secrets WHERE key = 'FLIPPED'"))
        .await
        .unwrap()
        .unwrap();
    let mut sealed: Vec<u8> = row.try_get("", "sealed_value").unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    let update = Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DbBackend::Postgres => "UPDATE secrets SET sealed_value = $1 WHERE key = 'FLIPPED'",
            _ => "UPDATE secrets SET sealed_value = ? WHERE key = 'FLIPPED'",
        },
        [sealed.into()],
    );
    db.execute_raw(update).await.unwrap();
    let status = get_secret(&mut secrets, &project, "dev", "/", "FLIPPED").await.unwrap_err();
    assert_eq!(status.code(), Code::DataLoss);
    assert!(status.message().contains("altered or belongs to another record"), "{}", status.message());

    // The untouched secret still reads.
    assert_eq!(get_secret(&mut secrets, &project, "dev", "/", "SOURCE").await.unwrap().value, "source-value");
}
