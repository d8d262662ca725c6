//! The journal of the audit entries of reads, on SQLite.
//!
//! A read's audit entry must be durable before its answer leaves the server. Committing it into `audit_logs`
//! is a write transaction: the writer lock, the table and its seven indexes, the WAL frames, and an fsync,
//! while the read waits (about 1 ms a group on the benchmark's machine, docs/BENCHMARKS.md). On SQLite a
//! server instead appends each group of entries to a journal file and syncs it (one write, one
//! `fdatasync`), then releases the readers; a mover copies the entries into `audit_logs` in larger batches,
//! off the readers' path. Readers of the audit log settle the journal first ([`AuditJournal::settle`]:
//! `audit::list`, `audit::export`, the audit streams through `Store::audit_head`), so every entry of an
//! answered read is in `audit_logs` when they look. Entries a server left in its journal (it was stopped, or
//! killed) are moved when it starts again, and `hush backup` copies them into the backup. Moving is
//! insert-or-ignore by the entry's id: an entry moved twice is stored once.
//!
//! Two files alternate: entries are appended to one while the other's are moved; a file is emptied once its
//! entries are committed, and only then written again. So both files together hold every entry not yet in
//! `audit_logs`, and the journal on disk stays as small as what `MOVE_AFTER` lets accumulate.
//!
//! A moved entry's `seq` is drawn when it is moved, so it may follow the entries of writes committed after
//! its read: `seq` is the order entries reached `audit_logs`, `created_at` the time of the action.
//!
//! A record is the payload's length (u32, little-endian), its CRC-32 (u32, little-endian), and the payload
//! (the entry as JSON). A record that does not check is the write a crash cut short, never acknowledged: it
//! ends the file.

use std::{
    fs::File,
    io::Write,
    mem,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, InsertMany, IntoActiveModel, QueryTrait, TryIntoModel,
    sea_query::OnConflict,
};
use tokio::{
    sync::{Notify, mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

use super::{Store, audit_appender, entities::audit_log};

/// Appends (and syncs) at most this many entries together.
const MAX_GROUP: usize = 1_000;
/// Entries moved in one statement: 13 parameters each, under SQLite's 32 766.
const MOVE_CHUNK: usize = 1_000;
/// How long an entry may wait in the journal when no reader of the log asks for it: bounds each move's work
/// (the writer lock is held while it commits) and how far behind `audit_logs` is for someone reading the
/// database file itself. Moving every 10 ms took back the reads' gain (docs/BENCHMARKS.md): each move is a
/// database commit.
const MOVE_AFTER: Duration = Duration::from_millis(50);
/// Bytes of entries journaled and not yet moved beyond which reads fail instead of the journal (and the copies
/// of its entries kept in memory to move them) growing without end, should the database refuse the moves (a
/// full disk, a damaged file). About 60 000 entries of a typical size: seconds of reads at full speed, so a
/// database that is merely slow for a moment does not fail reads.
const MAX_JOURNAL_BYTES: u64 = 32 << 20;
/// How long a failed move waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Requests that may wait at once; callers beyond it wait for room.
const QUEUE: usize = 16_384;
/// The two files, beside the database file.
const FILES: [&str; 2] = ["-audit-journal-a", "-audit-journal-b"];
/// A record's head: the payload's length and CRC-32.
const HEAD: usize = 8;
/// A longer payload is damage: an entry's fields are capped far below it (`audit::caps`).
const MAX_PAYLOAD: usize = 1 << 20;

type Reply = oneshot::Sender<Result<(), String>>;

/// What the writer thread is asked.
enum Request {
    /// Append an entry; the reply comes once it is durable.
    Append(Box<audit_log::ActiveModel>, Reply),
    /// Go on in the other file and hand over the entries of this one (to be moved).
    Switch(oneshot::Sender<Switched>),
    /// Take no more entries: a moved file could not be emptied.
    Break(String),
}

/// The entries of a file the writer left, and the file (emptied once they are moved).
struct Switched {
    rows: Vec<audit_log::ActiveModel>,
    file: Arc<File>,
}

/// Counts shared by the writer thread and the mover task; moves take entries in the order they were appended.
#[derive(Default)]
struct Counts {
    appended: AtomicU64,
    moved: AtomicU64,
    /// Bytes in the two files.
    journaled_bytes: AtomicU64,
}

/// The sending sides, held by every clone of the serving [`Store`].
#[derive(Clone)]
pub(super) struct AuditJournal {
    appends: mpsc::Sender<Request>,
    settles: mpsc::Sender<Reply>,
}

impl AuditJournal {
    /// Moves what the journal of `database_file` holds into `audit_logs` (what an earlier server left), then
    /// starts journaling. `store` commits the moves: a clone without this journal, so that the mover ends when
    /// the last store holding the journal is dropped (and the writer thread with it).
    pub(super) async fn open(store: Store, database_file: &Path) -> Result<Self, String> {
        let paths = FILES.map(|suffix| beside(database_file, suffix));
        let left = read_files(&paths)?;
        if !left.is_empty() {
            tracing::info!(entries = left.len(), "moving the audit entries left in the journal into the audit log");
            move_entries(&store, left).await.map_err(|error| format!("moving journaled audit entries: {error}"))?;
        }
        let [active, other] = paths.map(|path| open_empty(&path));
        let (active, other) = (active?, other?);
        crate::fs_private::sync_parent(database_file)
            .map_err(|error| format!("{}: {error}", database_file.display()))?;
        let counts = Arc::new(Counts::default());
        let first_entry = Arc::new(Notify::new());
        let (appends, requests) = mpsc::channel(QUEUE);
        let writer = Writer {
            active: Arc::new(active),
            active_len: 0,
            other: Arc::new(other),
            unmoved: Vec::new(),
            broken: None,
            counts: counts.clone(),
            first_entry: first_entry.clone(),
            wake_readers: Box::new(store.audit_journaled()),
        };
        std::thread::Builder::new()
            .name("hush-audit-journal".into())
            .spawn(move || writer.run(requests))
            .map_err(|error| format!("starting the audit journal: {error}"))?;
        let (settles, settling) = mpsc::channel(QUEUE);
        let mover = Mover {
            store,
            writer: appends.clone(),
            counts,
            first_entry,
            since: None,
            taken: 0,
            waiting: Vec::new(),
            moving: None,
            failed: None,
        };
        tokio::spawn(mover.run(settling));
        Ok(Self { appends, settles })
    }

    /// Appends `row` and waits until it is durable.
    pub(super) async fn append(&self, row: audit_log::ActiveModel) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.appends.send(Request::Append(Box::new(row), reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Waits until every entry appended before this call is in `audit_logs`.
    pub(super) async fn settle(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.settles.send(reply).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> String {
    "the audit journal stopped".to_owned()
}

/// The thread that appends to the journal. A thread of its own, not a task: a read waits for its group's
/// `write` and `fdatasync` and nothing else, with no hand-off to a blocking pool and back in between (under
/// load those hand-offs took as long as the sync itself).
struct Writer {
    /// The file appended to, and its length.
    active: Arc<File>,
    active_len: u64,
    /// The other file: empty, or holding the entries the mover is moving.
    other: Arc<File>,
    /// The entries of the active file.
    unmoved: Vec<audit_log::ActiveModel>,
    /// Why appending is impossible from now on (a file could not be restored or emptied).
    broken: Option<String>,
    counts: Arc<Counts>,
    /// Told when an entry lands in an empty file: the mover moves it `MOVE_AFTER` later.
    first_entry: Arc<Notify>,
    /// Wakes the audit stream workers: they settle the journal (`Store::audit_head`) and deliver the entries.
    wake_readers: Box<dyn Fn() + Send>,
}

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_GROUP);
        // Ends once every sender is gone: what is left stays in the journal for the next start.
        while let Some(request) = requests.blocking_recv() {
            batch.push(request);
            while batch.len() < MAX_GROUP {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let (mut rows, mut replies, mut switches) = (Vec::new(), Vec::new(), Vec::new());
            for request in batch.drain(..) {
                match request {
                    Request::Append(row, reply) => {
                        rows.push(*row);
                        replies.push(reply);
                    }
                    Request::Switch(reply) => switches.push(reply),
                    Request::Break(why) => self.broken = Some(why),
                }
            }
            if !rows.is_empty() {
                let outcome = self.write(&rows);
                if outcome.is_ok() {
                    if self.unmoved.is_empty() {
                        self.first_entry.notify_one();
                    }
                    self.counts.appended.fetch_add(rows.len() as u64, Ordering::SeqCst);
                    self.unmoved.extend(rows);
                    (self.wake_readers)();
                }
                for reply in replies {
                    // A caller that stopped waiting still has its entry stored.
                    let _ = reply.send(outcome.clone());
                }
            }
            for reply in switches {
                mem::swap(&mut self.active, &mut self.other);
                self.active_len = 0;
                let _ = reply.send(Switched { rows: mem::take(&mut self.unmoved), file: self.other.clone() });
            }
        }
    }

    /// Appends `rows` to the active file and syncs it.
    fn write(&mut self, rows: &[audit_log::ActiveModel]) -> Result<(), String> {
        if let Some(broken) = &self.broken {
            return Err(broken.clone());
        }
        let mut records = Vec::new();
        for row in rows {
            encode(row, &mut records)?;
        }
        let journaled = self.counts.journaled_bytes.load(Ordering::SeqCst);
        if journaled + records.len() as u64 > MAX_JOURNAL_BYTES {
            return Err(format!("the audit log is not taking entries ({journaled} bytes wait in its journal)"));
        }
        let mut file: &File = &self.active;
        match file.write_all(&records).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.active_len += records.len() as u64;
                self.counts.journaled_bytes.fetch_add(records.len() as u64, Ordering::SeqCst);
                Ok(())
            }
            Err(error) => {
                let error = format!("writing the audit journal: {error}");
                // A group written in part would hide every later record from recovery: cut it off again.
                let restored = file.set_len(self.active_len).and_then(|()| file.sync_data()).is_ok();
                tracing::error!(%error, restored, "could not store audit entries; their reads fail");
                if !restored {
                    self.broken = Some(error.clone());
                }
                Err(error)
            }
        }
    }
}

/// A move in flight: its entries (kept to try again if it fails), their file, and its task.
struct Moving {
    rows: Vec<audit_log::ActiveModel>,
    file: Arc<File>,
    task: JoinHandle<Result<(), String>>,
}

/// The task that moves journaled entries into `audit_logs` and answers the callers settling the journal.
struct Mover {
    store: Store,
    writer: mpsc::Sender<Request>,
    counts: Arc<Counts>,
    first_entry: Arc<Notify>,
    /// When the oldest entry not yet handed over landed in the journal.
    since: Option<Instant>,
    /// Entries handed over by the writer so far.
    taken: u64,
    /// Settling callers and the count of appended entries they wait for.
    waiting: Vec<(u64, Reply)>,
    moving: Option<Moving>,
    /// A move that failed, and when to try it again.
    failed: Option<(Moving, Instant)>,
}

impl Mover {
    async fn run(mut self, mut settles: mpsc::Receiver<Reply>) {
        loop {
            let move_at = self.move_at();
            tokio::select! {
                settle = settles.recv() => {
                    // None: every store is gone.
                    let Some(reply) = settle else { return };
                    let through = self.counts.appended.load(Ordering::SeqCst);
                    match through == self.counts.moved.load(Ordering::SeqCst) {
                        true => drop(reply.send(Ok(()))),
                        false => self.waiting.push((through, reply)),
                    }
                }
                () = self.first_entry.notified() => {
                    self.since.get_or_insert_with(Instant::now);
                }
                moved = async { (&mut self.moving.as_mut().expect("polled only while moving").task).await },
                    if self.moving.is_some() =>
                {
                    self.finish_move(moved.unwrap_or_else(|error| Err(error.to_string()))).await;
                }
                () = tokio::time::sleep_until(move_at.unwrap_or_else(Instant::now)), if move_at.is_some() => {
                    if !self.start_move().await {
                        return;
                    }
                }
            }
        }
    }

    /// When the next move should start; `None` while one runs or nothing waits.
    fn move_at(&self) -> Option<Instant> {
        if self.moving.is_some() {
            return None;
        }
        if let Some((_, retry_at)) = &self.failed {
            return Some(*retry_at);
        }
        let asked = self.waiting.iter().any(|(through, _)| *through > self.taken);
        match asked {
            true => Some(Instant::now()),
            false => self.since.map(|since| since + MOVE_AFTER),
        }
    }

    /// Moves the failed entries again, or else has the writer switch files and moves the entries of the one it
    /// left. False once the writer is gone.
    async fn start_move(&mut self) -> bool {
        if let Some((failed, _)) = self.failed.take() {
            self.moving = Some(self.spawn(failed.rows, failed.file));
            return true;
        }
        let (reply, switched) = oneshot::channel();
        if self.writer.send(Request::Switch(reply)).await.is_err() {
            return false;
        }
        let Ok(Switched { rows, file }) = switched.await else { return false };
        self.since = None;
        self.taken += rows.len() as u64;
        if !rows.is_empty() {
            self.moving = Some(self.spawn(rows, file));
        }
        true
    }

    fn spawn(&self, rows: Vec<audit_log::ActiveModel>, file: Arc<File>) -> Moving {
        let (store, moved) = (self.store.clone(), rows.clone());
        let task = tokio::spawn(async move { move_entries(&store, moved).await.map_err(|error| error.to_string()) });
        Moving { rows, file, task }
    }

    async fn finish_move(&mut self, outcome: Result<(), String>) {
        let moving = self.moving.take().expect("a move was running");
        if let Err(error) = outcome {
            tracing::error!(%error, entries = moving.rows.len(), "could not move journaled audit entries; trying again");
            let error = format!("moving journaled audit entries: {error}");
            for (_, reply) in self.waiting.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            self.failed = Some((moving, Instant::now() + RETRY_AFTER));
            return;
        }
        let file = moving.file.clone();
        let emptied = tokio::task::spawn_blocking(move || {
            let len = file.metadata()?.len();
            file.set_len(0).map(|()| len)
        });
        match emptied.await.map_err(|error| error.to_string()).and_then(|done| done.map_err(|e| e.to_string())) {
            Ok(len) => drop(self.counts.journaled_bytes.fetch_sub(len, Ordering::SeqCst)),
            // Its entries are stored, but the file cannot take new ones after them.
            Err(error) => {
                let _ = self.writer.send(Request::Break(format!("emptying the audit journal: {error}"))).await;
            }
        }
        let moved = self.counts.moved.fetch_add(moving.rows.len() as u64, Ordering::SeqCst) + moving.rows.len() as u64;
        let (settled, waiting) = mem::take(&mut self.waiting).into_iter().partition(|(through, _)| *through <= moved);
        self.waiting = waiting;
        for (_, reply) in settled {
            let _ = reply.send(Ok(()));
        }
    }
}

/// Inserts `rows` into the store's `audit_logs`, each statement committed as the audit entries of reads are.
async fn move_entries(store: &Store, rows: Vec<audit_log::ActiveModel>) -> Result<(), DbErr> {
    for insert in inserts(rows) {
        audit_appender::commit_insert(store, insert).await?;
    }
    Ok(())
}

/// Inserts `rows` into the `audit_logs` of `db` (a backup being made).
pub(super) async fn copy_into(db: &DatabaseConnection, rows: Vec<audit_log::ActiveModel>) -> Result<(), DbErr> {
    for insert in inserts(rows) {
        db.execute_raw(db.get_database_backend().build(&insert.into_query())).await?;
    }
    Ok(())
}

/// `rows` as statements of [`MOVE_CHUNK`] entries that skip the entries stored already.
fn inserts(rows: Vec<audit_log::ActiveModel>) -> impl Iterator<Item = InsertMany<audit_log::ActiveModel>> {
    let mut rows = rows.into_iter().peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        let chunk: Vec<_> = rows.by_ref().take(MOVE_CHUNK).collect();
        let skip_stored = OnConflict::column(audit_log::Column::Id).do_nothing().to_owned();
        Some(audit_log::Entity::insert_many(chunk).on_conflict(skip_stored))
    })
}

/// The entries journaled beside `database_file`, in the order they were appended (for `hush backup`).
pub(super) fn read_beside(database_file: &Path) -> Result<Vec<audit_log::ActiveModel>, String> {
    read_files(&FILES.map(|suffix| beside(database_file, suffix)))
}

/// `database_file` with `suffix` appended to its name.
fn beside(database_file: &Path, suffix: &str) -> PathBuf {
    let mut name = database_file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_files(paths: &[PathBuf]) -> Result<Vec<audit_log::ActiveModel>, String> {
    let mut rows = Vec::new();
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => rows.extend(decode(&bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("{}: {error}", path.display())),
        }
    }
    Ok(rows)
}

/// Opens `path` for appending, 0600, and empties it (its entries were moved).
fn open_empty(path: &Path) -> Result<File, String> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = options.open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    file.set_len(0).and_then(|()| file.sync_all()).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(file)
}

/// Appends `row` to `records` as one record.
fn encode(row: &audit_log::ActiveModel, records: &mut Vec<u8>) -> Result<(), String> {
    let mut row = row.clone();
    // The journal does not know the cursor; the model needs one.
    row.seq = Set(0);
    let model = row.try_into_model().map_err(|error| format!("an audit entry without {error}"))?;
    let payload = serde_json::to_vec(&model).map_err(|error| error.to_string())?;
    let len = u32::try_from(payload.len()).ok().filter(|len| (*len as usize) <= MAX_PAYLOAD);
    let len = len.ok_or_else(|| format!("an audit entry of {} bytes", payload.len()))?;
    records.extend_from_slice(&len.to_le_bytes());
    records.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    records.extend_from_slice(&payload);
    Ok(())
}

/// The entries of a journal file, up to its first record that does not check.
fn decode(mut bytes: &[u8]) -> Vec<audit_log::ActiveModel> {
    let mut rows = Vec::new();
    while bytes.len() >= HEAD {
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("four bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[4..HEAD].try_into().expect("four bytes"));
        let Some(payload) = bytes.get(HEAD..HEAD + len).filter(|_| len <= MAX_PAYLOAD) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(model) = serde_json::from_slice::<audit_log::Model>(payload) else { break };
        // Every field set, so that inserts write them; the cursor is drawn by the insert.
        let mut row = model.into_active_model().reset_all();
        row.seq = NotSet;
        rows.push(row);
        bytes = &bytes[HEAD + len..];
    }
    rows
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn entry(n: usize) -> audit_log::ActiveModel {
        audit_log::ActiveModel {
            id: Set(format!("id-{n}")),
            actor_type: Set("identity".into()),
            actor_id: Set("actor".into()),
            actor_name: Set("name \"quoted\"\n".into()),
            ip_address: Set("127.0.0.1".into()),
            user_agent: Set("ua".into()),
            user_agent_type: Set("other".into()),
            event_type: Set("get-secret".into()),
            event_metadata: Set(serde_json::json!({ "n": n, "key": "K" })),
            org_id: Set("org".into()),
            project_id: Set(n.is_multiple_of(2).then(|| "project".into())),
            created_at: Set(DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap()),
            expires_at: Set(DateTime::<Utc>::MAX_UTC),
            ..Default::default()
        }
    }

    fn records(count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for n in 0..count {
            encode(&entry(n), &mut bytes).unwrap();
        }
        bytes
    }

    #[test]
    fn records_read_back_as_written() {
        let rows = decode(&records(3));
        assert_eq!(rows.len(), 3);
        for (n, row) in rows.into_iter().enumerate() {
            assert_eq!(row, entry(n), "every field is set, the cursor is not: it is drawn when the entry is moved");
        }
    }

    /// A crash can cut the last write anywhere: what was written whole before it is read, nothing after.
    #[test]
    fn a_record_cut_short_or_damaged_ends_the_file() {
        let whole = records(3);
        let two = records(2).len();
        for cut in two..whole.len() {
            assert_eq!(decode(&whole[..cut]).len(), 2, "cut at {cut}");
        }
        let mut damaged = whole.clone();
        damaged[two + HEAD + 3] ^= 0x20;
        assert_eq!(decode(&damaged).len(), 2);
        let mut huge = whole;
        huge[two..two + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge).len(), 2, "a length past the file is not read");
    }

    async fn stored_ids(db: &DatabaseConnection) -> Vec<String> {
        let rows = audit_log::Entity::find().all(db).await.unwrap();
        rows.into_iter().map(|row| row.id).filter(|id| id.starts_with("id-")).collect()
    }

    /// What a killed server leaves: whole records in both files and a record cut short at the end of one. A
    /// backup holds them, the next server moves them in before it serves, and a server that was killed after
    /// moving them but before emptying its journal does not store them twice.
    #[tokio::test]
    async fn entries_left_in_the_journal_reach_backups_and_the_log_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hush.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        drop(Store::connect(&url).await.unwrap());
        let mut left = (records(3), records(5)[records(3).len()..].to_vec());
        let cut = left.1.len() - 7;
        left.1.truncate(cut);
        std::fs::write(beside(&file, FILES[0]), &left.0).unwrap();
        std::fs::write(beside(&file, FILES[1]), &left.1).unwrap();
        let whole = ["id-0", "id-1", "id-2", "id-3"];

        let backup = dir.path().join("backup.db");
        super::super::backup::backup(&file, &backup).await.unwrap();
        let copy = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", backup.display())).await.unwrap();
        assert_eq!(stored_ids(&copy).await, whole, "the backup holds the journaled entries");

        for start in 0..2 {
            let mut store = Store::connect(&url).await.unwrap();
            store.journal_read_audit().await.unwrap();
            assert_eq!(stored_ids(store.conn()).await, whole, "start {start}");
            assert_eq!(read_beside(&file).unwrap().len(), 0, "start {start}: the journal is empty once moved");
            // As if killed before the files were emptied.
            std::fs::write(beside(&file, FILES[0]), &left.0).unwrap();
        }
    }

    /// Appended entries are durable in the journal at once and in the audit log once settled; with nobody
    /// settling they are moved within `MOVE_AFTER`.
    #[tokio::test]
    async fn appended_entries_reach_the_log_when_settled_or_soon_after() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hush.db");
        let mut store = Store::connect(&format!("sqlite://{}?mode=rwc", file.display())).await.unwrap();
        store.journal_read_audit().await.unwrap();
        for suffix in FILES {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(beside(&file, suffix)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{suffix}: the journal is the owner's alone");
        }
        let appends = (0..20).map(|n| store.append_audit(entry(n)));
        futures_util::future::try_join_all(appends).await.unwrap();
        // Each entry is in the journal or, moved already, in the log (read in that order: a move stores before
        // it empties the file).
        assert!(read_beside(&file).unwrap().len() + stored_ids(store.conn()).await.len() >= 20);
        store.settle_audit().await.unwrap();
        assert_eq!(stored_ids(store.conn()).await.len(), 20, "settled");

        store.append_audit(entry(20)).await.unwrap();
        assert!(read_beside(&file).unwrap().len() + stored_ids(store.conn()).await.len() >= 21);
        let started = Instant::now();
        while !read_beside(&file).unwrap().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "moved without a reader asking");
            tokio::time::sleep(MOVE_AFTER).await;
        }
        assert_eq!(stored_ids(store.conn()).await.len(), 21, "moved without a reader asking");
    }

    /// A database that refuses the moves: entries are still durable in the journal and reads answered, settling
    /// says why, the journal stops taking entries at its bound (reads fail rather than memory growing), and once
    /// the database takes them again every entry it took reaches the log.
    #[tokio::test]
    async fn a_database_refusing_moves_bounds_the_journal_and_loses_nothing() {
        use sea_orm::ConnectionTrait;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hush.db");
        let mut store = Store::connect(&format!("sqlite://{}?mode=rwc", file.display())).await.unwrap();
        store.journal_read_audit().await.unwrap();
        let refuse = "CREATE TRIGGER refuse BEFORE INSERT ON audit_logs BEGIN SELECT RAISE(ABORT, 'refused here'); END";
        store.conn().execute_unprepared(refuse).await.unwrap();
        store.append_audit(entry(0)).await.unwrap();
        let refused = store.settle_audit().await.unwrap_err().to_string();
        assert!(refused.contains("refused here"), "{refused}");

        // Entries of about 8 KiB: the 32 MiB bound is reached after about 4 000.
        let big = |n: usize| {
            let mut row = entry(n);
            row.event_metadata = Set(serde_json::json!({ "pad": "x".repeat(8_000) }));
            row
        };
        let (mut accepted, mut refused, mut n) = (1, Vec::new(), 1);
        while refused.is_empty() {
            assert!(n < 10_000, "the journal took {accepted} entries of 8 KiB without a bound");
            let appends = (n..n + 256).map(|n| store.append_audit(big(n)));
            for outcome in futures_util::future::join_all(appends).await {
                match outcome {
                    Ok(()) => accepted += 1,
                    Err(error) => refused.push(error.to_string()),
                }
            }
            n += 256;
        }
        assert!((3_500..4_300).contains(&accepted), "{accepted} entries taken before the bound");
        assert!(refused[0].contains("not taking entries"), "{}", refused[0]);
        let journaled = read_beside(&file).unwrap().len();
        assert_eq!(journaled, accepted, "every entry taken is durable in the journal");

        store.conn().execute_unprepared("DROP TRIGGER refuse").await.unwrap();
        let started = Instant::now();
        while store.settle_audit().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "moves are tried again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(stored_ids(store.conn()).await.len(), accepted);
        store.append_audit(entry(n)).await.expect("the journal takes entries again once they are moved");
    }
}
