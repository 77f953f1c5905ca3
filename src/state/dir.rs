//! The state directory itself: who may use it (an exclusive lock held by the commands that
//! reconcile), and whether the database in it is still the one that was there before.
//!
//! A state directory that once held a database is recognised by a marker file written
//! when its database is first set up (or by quorate's clone of the repository in it). If
//! such a directory now has no database, an empty one, a database without quorate's
//! schema, or a file SQLite cannot read, the store refuses it ([`StateError::Lost`]):
//! starting again with an empty database would forget fence history and manual
//! confirmations. Starting fresh is an explicit choice ([`set_aside`], `--start-fresh`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{DB_FILE, StateError};

/// The lock file inside the state directory; it holds the PID of the process holding it.
pub const LOCK_FILE: &str = "lock";

/// The marker written once the directory's database is set up.
pub const MARKER_FILE: &str = "state.created";

/// What is wrong with the database of a directory that had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// `state.db` is gone.
    Missing,
    /// `state.db` has 0 bytes.
    Empty,
    /// `state.db` is an SQLite database without quorate's schema.
    NoSchema,
    /// SQLite cannot read `state.db` (not a database, or corrupt).
    Unreadable(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Missing => f.write_str("the database is missing"),
            Lost::Empty => f.write_str("the database is empty (0 bytes)"),
            Lost::NoSchema => f.write_str("the database holds no quorate schema"),
            Lost::Unreadable(why) => write!(f, "the database cannot be read ({why})"),
        }
    }
}

/// An exclusive hold on a state directory, released when dropped or when the process
/// ends (an `flock` on [`LOCK_FILE`]).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock of `dir` (creating the directory if needed), or says which process
    /// holds it ([`StateError::Locked`]). Never waits.
    pub fn acquire(dir: &Path) -> Result<StateLock, StateError> {
        let io = |source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        // SAFETY: flock on a file descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(err));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(StateError::Locked {
                dir: dir.to_path_buf(),
                holder: text.trim().parse().ok(),
            });
        }
        // Ours now: say who holds it, for the next one that tries.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

/// Whether `dir` is known to have held a database: its marker, or quorate's clone.
pub(super) fn had_database(dir: &Path) -> bool {
    dir.join(MARKER_FILE).exists() || dir.join(crate::source::git::CLONE_DIR).is_dir()
}

/// Refuses a missing or 0-byte database in a directory that had one.
pub(super) fn check_present(db: &Path, had: bool) -> Result<(), StateError> {
    let lost = |what| StateError::Lost {
        path: db.to_path_buf(),
        what,
    };
    match std::fs::metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && had => Err(lost(Lost::Missing)),
        Ok(m) if m.len() == 0 && had => Err(lost(Lost::Empty)),
        _ => Ok(()),
    }
}

/// A file SQLite says is not a database, or is corrupt, is lost; other errors stay what
/// they are (a busy or read-only database is not a reason to start again).
pub(super) fn unreadable(db: &Path, e: StateError) -> StateError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e {
        StateError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, NotADatabase | DatabaseCorrupt) =>
        {
            StateError::Lost {
                path: db.to_path_buf(),
                what: Lost::Unreadable(f.to_string()),
            }
        }
        other => other,
    }
}

/// Writes the marker if it is not there yet. A failure is logged: the store works
/// without it, only less protected.
pub(super) fn mark(dir: &Path) {
    let marker = dir.join(MARKER_FILE);
    if marker.exists() {
        return;
    }
    let text = format!(
        "This directory has held a quorate state database since unix time {}.\n\
         quorate refuses to start here again with a missing or empty state.db.\n",
        unix_ms() / 1000
    );
    if let Err(e) = std::fs::write(&marker, text) {
        tracing::warn!(path = %marker.display(), error = %e, "cannot write the state directory marker");
    }
}

/// Moves a lost database of `dir` (and its write-ahead log) aside as
/// `state.db.refused-<unix ms>` and forgets that the directory had one, so the next open
/// starts with an empty database. Returns where the old file went, if there was one.
pub fn set_aside(dir: &Path) -> Result<Option<PathBuf>, StateError> {
    let suffix = format!("refused-{}", unix_ms());
    let mut kept = None;
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
    ] {
        let from = dir.join(&name);
        if !from.exists() {
            continue;
        }
        let to = dir.join(format!("{name}.{suffix}"));
        std::fs::rename(&from, &to).map_err(|source| StateError::Io {
            path: from.clone(),
            source,
        })?;
        if name == DB_FILE {
            kept = Some(to);
        }
    }
    match std::fs::remove_file(dir.join(MARKER_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io {
            path: dir.join(MARKER_FILE),
            source: e,
        }),
        _ => Ok(kept),
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file: a second open in this process conflicts
        // just as another process would.
        match StateLock::acquire(dir.path()) {
            Err(StateError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(StateLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn missing_or_empty_counts_only_where_a_database_was() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(DB_FILE);
        assert!(check_present(&db, false).is_ok());
        assert!(matches!(
            check_present(&db, true),
            Err(StateError::Lost {
                what: Lost::Missing,
                ..
            })
        ));
        std::fs::write(&db, b"").unwrap();
        assert!(check_present(&db, false).is_ok());
        assert!(matches!(
            check_present(&db, true),
            Err(StateError::Lost {
                what: Lost::Empty,
                ..
            })
        ));
    }
}
