//! The reconciler's durable state: one SQLite database, `state.db`, in the state directory.
//!
//! It holds the fencing history (it implements [`FenceLog`](crate::fence::FenceLog)), the
//! reconciler's journal, and the commits: the one in force and those refused
//! ([`AppliedCommit`], [`RejectedCommit`]). Writes are durable when they return (WAL, `synchronous=FULL`),
//! so a recorded fence survives a crash of the reconciler or of its host. Nothing secret is
//! ever stored here (design invariant 7).

mod commits;
mod fence_log;
mod journal;
mod migrate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use commits::{
    AppliedCommit, KEEP_COMMITS, KEEP_FINDINGS, KEEP_REJECTED, MAX_FINDING_TEXT, RejectedCommit,
    StoredDiagnostic,
};

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
}

/// The durable state store. Cheap to clone; all clones share one connection.
#[derive(Debug, Clone)]
pub struct StateStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) `state.db` in `dir` and brings its schema up to date.
    /// Blocking: call it at startup or from `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Setup(format!(
                "journal_mode is {mode}, not wal"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate::migrate(&mut conn)?;
        Ok(StateStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
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
}
