//! The reconciler's durable state: one SQLite database, `state.db`, in the state directory.
//!
//! It holds the fencing history (it implements [`FenceLog`](crate::fence::FenceLog)), the
//! reconciler's journal, and the commits: the one in force and those refused
//! ([`AppliedCommit`], [`RejectedCommit`]). Writes are durable when they return (WAL, `synchronous=FULL`),
//! so a recorded fence survives a crash of the reconciler or of its host. Nothing secret is
//! ever stored here (design invariant 7).

mod backup;
mod commits;
mod dir;
mod export;
mod fence_log;
mod journal;
mod migrate;
mod suspend;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub(crate) use commits::cut;
pub(crate) use commits::stopped_while_planning;
pub use commits::{
    AppliedCommit, KEEP_COMMITS, KEEP_FINDINGS, KEEP_REJECTED, MAX_FINDING_TEXT, RejectedCommit,
    Resume, STOPPED_WHILE_PLANNING, StoredDiagnostic,
};
pub use dir::{LOCK_FILE, Lost, MARKER_FILE, StateLock};

/// The state directory used when none is given (`--state-dir`): the one place that names it.
pub const DEFAULT_DIR: &str = "/var/lib/quorate";

/// The database file name inside the state directory.
pub const DB_FILE: &str = "state.db";

/// A failure of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory could not be prepared.
    #[error("state directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The io error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer quorate.
    #[error(
        "state database schema version {found} is newer than this quorate supports ({supported})"
    )]
    NewerSchema {
        /// The version found.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A row holds a value this build cannot read.
    #[error("state database holds an unreadable value: {0}")]
    Corrupt(String),
    /// The database could not be set up as required.
    #[error("state database setup: {0}")]
    Setup(String),
    /// A previous holder of the connection panicked, or the worker task failed.
    #[error("state database worker failed: {0}")]
    Worker(String),
    /// Another process holds the state directory's lock.
    #[error(
        "state directory {} is in use by another quorate ({}): two reconcilers must not \
         share one state database and clone; stop that one first, or give this one its own \
         --state-dir",
        dir.display(),
        holder.map_or_else(|| "PID unknown".to_string(), |p| format!("PID {p}"))
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The holder's PID, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// The directory had a database and now has none, an empty one or an unreadable one.
    #[error(
        "{}: {what}, but this state directory had a database: starting again with an \
         empty one would lose its fence history and manual confirmations. Restore a copy \
         (from `quorate state backup`) to {}, or start with an empty database with \
         --start-fresh (quorate run, quorate apply), which keeps the old file aside",
        path.display(),
        path.display()
    )]
    Lost {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        what: Lost,
    },
    /// A backup could not be written where asked.
    #[error("backup to {}: {reason}", path.display())]
    Backup {
        /// The file asked for.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
}

/// The durable state store. Cheap to clone; all clones share one connection.
#[derive(Debug, Clone)]
pub struct StateStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) `state.db` in `dir` and brings its schema up to date.
    /// A directory that had a database and now has a missing, empty or unreadable one is
    /// refused ([`StateError::Lost`]). Blocking: call it at startup or from
    /// `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_checked(dir, dir::had_database(dir))
    }

    /// [`StateStore::open`], told whether the directory had a database.
    fn open_checked(dir: &Path, had: bool) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        dir::check_present(&path, had)?;
        let mut conn = connect(&path).map_err(|e| dir::unreadable(&path, e))?;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| dir::unreadable(&path, e.into()))?;
        if had && version == 0 {
            return Err(StateError::Lost {
                path,
                what: Lost::NoSchema,
            });
        }
        migrate::migrate(&mut conn).map_err(|e| dir::unreadable(&path, e))?;
        dir::mark(dir);
        Ok(StateStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Like [`StateStore::open`], but a lost database ([`StateError::Lost`]) is moved
    /// aside and an empty one started: what `--start-fresh` asks for. Returns the store
    /// and where the old file went (`None` when the database was fine and is kept).
    pub fn open_or_start_fresh(dir: &Path) -> Result<(Self, Option<PathBuf>), StateError> {
        match Self::open(dir) {
            Err(StateError::Lost { path, what }) => {
                let kept = dir::set_aside(dir)?;
                tracing::warn!(path = %path.display(), problem = %what, kept = ?kept,
                    "starting with an empty state database (--start-fresh)");
                // Whatever else the directory holds (quorate's clone), this is asked for.
                Ok((Self::open_checked(dir, false)?, kept))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (SQLite `user_version`).
    pub fn schema_version(&self) -> Result<u32, StateError> {
        self.with_conn(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }

    /// Runs `f` on the connection on this thread (blocking).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StateError::Worker("connection lock poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs `f` on the connection off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StateError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.with_conn(f))
            .await
            .map_err(|e| StateError::Worker(e.to_string()))?
    }
}

/// Opens the database file in WAL mode with full fsync and foreign keys.
fn connect(path: &Path) -> Result<Connection, StateError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StateError::Setup(format!(
            "journal_mode is {mode}, not wal"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_wal_database_at_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        assert!(store.path().exists());
        assert_eq!(store.schema_version().unwrap(), migrate::LATEST);
        let (mode, sync): (String, i64) = store
            .with_conn(|c| {
                let m = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let s = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok((m, s))
            })
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous FULL");
    }

    #[test]
    fn reopening_keeps_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrate::LATEST);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
            c.pragma_update(None, "user_version", migrate::LATEST + 1)
                .unwrap();
        }
        let e = StateStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::NewerSchema { .. }), "{e}");
    }

    fn lost(dir: &Path) -> Lost {
        match StateStore::open(dir) {
            Err(StateError::Lost { what, .. }) => what,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_database_that_was_there_and_is_not_any_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        assert!(dir.path().join(MARKER_FILE).exists());
        let db = dir.path().join(DB_FILE);
        let wal = dir.path().join(format!("{DB_FILE}-wal"));
        std::fs::File::create(&db).unwrap(); // truncated to 0 bytes
        let _ = std::fs::remove_file(&wal);
        assert_eq!(lost(dir.path()), Lost::Empty);
        // Refused again: nothing was created meanwhile.
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
        assert_eq!(lost(dir.path()), Lost::Empty);
        std::fs::remove_file(&db).unwrap();
        assert_eq!(lost(dir.path()), Lost::Missing);
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        assert!(matches!(lost(dir.path()), Lost::Unreadable(_)));
        std::fs::remove_file(&db).unwrap();
        drop(
            Connection::open(&db)
                .unwrap()
                .execute_batch("CREATE TABLE t (x)"),
        );
        assert_eq!(lost(dir.path()), Lost::NoSchema);
        let e = StateStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("--start-fresh") && e.contains("state backup"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_file_is_refused_even_in_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
        assert!(matches!(lost(dir.path()), Lost::Unreadable(_)));
        assert!(!dir.path().join(MARKER_FILE).exists());
    }

    #[test]
    fn a_clone_counts_as_a_database_having_been_there() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(crate::source::git::CLONE_DIR)).unwrap();
        assert_eq!(lost(dir.path()), Lost::Missing);
    }

    #[test]
    fn starting_fresh_works_beside_a_clone_too() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        std::fs::create_dir(dir.path().join(crate::source::git::CLONE_DIR)).unwrap();
        std::fs::File::create(dir.path().join(DB_FILE)).unwrap();
        assert_eq!(lost(dir.path()), Lost::Empty);
        let (store, kept) = StateStore::open_or_start_fresh(dir.path()).unwrap();
        assert!(kept.is_some());
        assert_eq!(store.schema_version().unwrap(), migrate::LATEST);
        drop(store);
        assert!(
            StateStore::open(dir.path()).is_ok(),
            "the next open needs no flag"
        );
    }

    #[test]
    fn starting_fresh_keeps_the_old_file_aside_and_only_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let (store, kept) = StateStore::open_or_start_fresh(dir.path()).unwrap();
        assert_eq!(kept, None, "a new directory has nothing to set aside");
        drop(store);
        // A good database is kept as it is.
        let (store, kept) = StateStore::open_or_start_fresh(dir.path()).unwrap();
        assert_eq!(kept, None);
        drop(store);
        let db = dir.path().join(DB_FILE);
        std::fs::write(
            &db,
            b"not sqlite at all, but long enough to be read as a header....",
        )
        .unwrap();
        let (store, kept) = StateStore::open_or_start_fresh(dir.path()).unwrap();
        let kept = kept.expect("the unreadable file is kept");
        assert!(
            kept.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.db.refused-")
        );
        assert!(std::fs::read(&kept).unwrap().starts_with(b"not sqlite"));
        assert_eq!(store.schema_version().unwrap(), migrate::LATEST);
        assert!(dir.path().join(MARKER_FILE).exists());
    }
}
