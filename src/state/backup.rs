//! A consistent copy of the state database while quorate runs (`quorate state backup`):
//! SQLite's online backup, all pages in one step under one read transaction, written to a
//! temporary file beside the target and renamed into place once complete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::{StateError, StateStore};

impl StateStore {
    /// Writes a consistent copy of the database to `file`, which must not exist yet.
    /// Returns the size of the copy in bytes. Blocking.
    pub fn backup_to(&self, file: &Path) -> Result<u64, StateError> {
        let fail = |reason: String| StateError::Backup {
            path: file.to_path_buf(),
            reason,
        };
        if file.exists() {
            return Err(fail("the file exists; choose a new name".into()));
        }
        let tmp = partial_path(file).ok_or_else(|| fail("not a file name".into()))?;
        let result = self.with_conn(|src| copy(src, &tmp));
        let size = match result.and_then(|()| finish(&tmp, file)) {
            Ok(size) => size,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail(e.to_string()));
            }
        };
        tracing::info!(to = %file.display(), bytes = size, "state database backed up");
        Ok(size)
    }
}

/// `DIR/.NAME.partial-PID` beside `file`.
fn partial_path(file: &Path) -> Option<PathBuf> {
    let name = file.file_name()?.to_string_lossy();
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = format!(".{name}.partial-{}", std::process::id());
    Some(dir.map_or_else(|| PathBuf::from(&tmp), |d| d.join(&tmp)))
}

/// Copies every page of `src` into a new database at `tmp`, in one step.
fn copy(src: &Connection, tmp: &Path) -> Result<(), StateError> {
    let mut dst = Connection::open(tmp)?;
    {
        let backup = Backup::new(src, &mut dst)?;
        // -1: every page in one step, so the copy is one consistent snapshot. Busy or
        // locked is retried for a while (the store's own writer holds the connection
        // lock meanwhile, so that is another process writing).
        let mut tries = 0;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked if tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(StateError::Setup(
                        "the database stayed busy for 5 s; try again".into(),
                    ));
                }
            }
        }
    }
    // A copy made of a write-ahead-log database is one too; fold its log into the file
    // so the copy is a single file.
    dst.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    dst.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Flushes the copy to disk and renames it into place.
fn finish(tmp: &Path, file: &Path) -> Result<u64, StateError> {
    let io = |source| StateError::Io {
        path: file.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(tmp).map_err(io)?;
    f.sync_all().map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if file.exists() {
        return Err(StateError::Setup("the file appeared meanwhile".into()));
    }
    std::fs::rename(tmp, file).map_err(io)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::FenceLog;
    use crate::fence::log::{ManualConfirmation, OffEvidence};

    #[tokio::test]
    async fn the_copy_opens_and_holds_the_fence_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("live")).unwrap();
        store
            .record_manual(&ManualConfirmation {
                node: "n1".into(),
                by: "ada".into(),
                at_unix_ms: 1_700_000_000_000,
                note: Some("cords pulled".into()),
            })
            .await
            .unwrap();
        let copy = dir.path().join("copy.db");
        let size = store.backup_to(&copy).unwrap();
        assert!(size > 0);
        assert!(!dir.path().join("copy.db-wal").exists());
        // A second backup to the same name is refused, the first copy untouched.
        assert!(matches!(
            store.backup_to(&copy),
            Err(StateError::Backup { .. })
        ));
        // Restored as the database of another directory, it is the same record.
        let restored = dir.path().join("restored");
        std::fs::create_dir_all(&restored).unwrap();
        std::fs::copy(&copy, restored.join(super::super::DB_FILE)).unwrap();
        let back = StateStore::open(&restored).unwrap();
        assert_eq!(
            back.off_evidence("n1").await.unwrap(),
            Some(OffEvidence::Manual {
                by: "ada".into(),
                at_unix_ms: 1_700_000_000_000
            })
        );
        assert!(back.off_evidence("n2").await.unwrap().is_none());
    }
}
