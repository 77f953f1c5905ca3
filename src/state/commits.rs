//! Commits in the state store: the one in force (the last good commit) and those refused
//! because they did not validate, with their diagnostics (design invariant 6: an invalid
//! commit is never applied; it is recorded and shown by `status`, and the last good one
//! stays in force).

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};
use crate::diag::Diagnostic;
use crate::diag::render::to_json;
use crate::source::Sources;
use crate::source::git::Commit;

/// Commits kept in each table; older ones are dropped.
pub const KEEP_COMMITS: i64 = 1_000;

/// A commit put in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedCommit {
    /// The commit.
    pub commit: Commit,
    /// When it was put in force (Unix ms).
    pub at_unix_ms: i64,
}

/// A commit refused because it did not validate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedCommit {
    /// The commit.
    pub commit: Commit,
    /// When it was last refused (Unix ms).
    pub at_unix_ms: i64,
    /// Its findings, in the JSON form of `quorate validate --format json`.
    pub diagnostics: Vec<StoredDiagnostic>,
}

/// A diagnostic as stored: the JSON form of [`crate::diag::render::to_json`], owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDiagnostic {
    /// `error` or `warning`.
    pub severity: String,
    /// Stable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// File (repository-relative path), if any.
    pub file: Option<String>,
    /// 1-based line, if any.
    pub line: Option<u32>,
    /// 1-based column, if any.
    pub column: Option<u32>,
    /// What to do.
    pub help: Option<String>,
}

impl RejectedCommit {
    /// The record of `commit`, refused at `at_unix_ms` with `diagnostics` (located in
    /// `sources`).
    pub fn new(
        commit: Commit,
        at_unix_ms: i64,
        diagnostics: &[Diagnostic],
        sources: &Sources,
    ) -> Result<RejectedCommit, StateError> {
        let diagnostics = diagnostics
            .iter()
            .map(|d| {
                serde_json::to_value(to_json(d, sources))
                    .and_then(serde_json::from_value)
                    .map_err(|e| StateError::Corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(RejectedCommit {
            commit,
            at_unix_ms,
            diagnostics,
        })
    }

    /// One line per finding: `file:line:column: code: message`.
    pub fn problems(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .map(|d| {
                let place = match (&d.file, d.line, d.column) {
                    (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: "),
                    (Some(f), _, _) => format!("{f}: "),
                    _ => String::new(),
                };
                format!("{place}{}: {}", d.code, d.message)
            })
            .collect()
    }
}

fn commit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Commit> {
    Ok(Commit {
        id: r.get(0)?,
        summary: r.get(1)?,
        author: r.get(2)?,
        time: r.get(3)?,
    })
}

impl StateStore {
    /// Records that `commit` was put in force at `at_unix_ms`; it stops counting as
    /// rejected if it was (a newer quorate may accept what an older one refused).
    pub async fn record_applied(&self, commit: &Commit, at_unix_ms: i64) -> Result<(), StateError> {
        let c = commit.clone();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO applied_commits (commit_id, summary, author, commit_time, at_unix_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.id, c.summary, c.author, c.time, at_unix_ms],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "DELETE FROM applied_commits WHERE id <= ?1",
                [id - KEEP_COMMITS],
            )?;
            tx.execute("DELETE FROM rejected_commits WHERE commit_id = ?1", [&c.id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Records that a commit was refused. Refusing the same commit again updates its
    /// time and findings.
    pub async fn record_rejected(&self, rejected: &RejectedCommit) -> Result<(), StateError> {
        let r = rejected.clone();
        let diagnostics = serde_json::to_string(&r.diagnostics)
            .map_err(|e| StateError::Corrupt(e.to_string()))?;
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO rejected_commits
                     (commit_id, summary, author, commit_time, at_unix_ms, diagnostics)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (commit_id) DO UPDATE SET
                     at_unix_ms = excluded.at_unix_ms, diagnostics = excluded.diagnostics",
                params![
                    r.commit.id,
                    r.commit.summary,
                    r.commit.author,
                    r.commit.time,
                    r.at_unix_ms,
                    diagnostics
                ],
            )?;
            tx.execute(
                "DELETE FROM rejected_commits WHERE commit_id NOT IN
                     (SELECT commit_id FROM rejected_commits
                      ORDER BY at_unix_ms DESC, rowid DESC LIMIT ?1)",
                [KEEP_COMMITS],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The commit in force: the last one recorded as applied.
    pub async fn last_applied(&self) -> Result<Option<AppliedCommit>, StateError> {
        self.blocking(|conn| {
            Ok(conn
                .query_row(
                    "SELECT commit_id, summary, author, commit_time, at_unix_ms
                     FROM applied_commits ORDER BY id DESC LIMIT 1",
                    [],
                    |r| {
                        Ok(AppliedCommit {
                            commit: commit_row(r)?,
                            at_unix_ms: r.get(4)?,
                        })
                    },
                )
                .optional()?)
        })
        .await
    }

    /// The last `limit` refused commits, newest first.
    pub async fn rejected(&self, limit: usize) -> Result<Vec<RejectedCommit>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT commit_id, summary, author, commit_time, at_unix_ms, diagnostics
                 FROM rejected_commits ORDER BY at_unix_ms DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok((commit_row(r)?, r.get::<_, i64>(4)?, r.get::<_, String>(5)?))
            })?;
            rows.map(|row| {
                let (commit, at_unix_ms, text) = row?;
                let diagnostics = serde_json::from_str(&text).map_err(|e| {
                    StateError::Corrupt(format!("rejected commit diagnostics: {e}"))
                })?;
                Ok(RejectedCommit {
                    commit,
                    at_unix_ms,
                    diagnostics,
                })
            })
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str) -> Commit {
        Commit {
            id: id.into(),
            summary: format!("change {id}"),
            author: "A <a@example>".into(),
            time: 1_700_000_000,
        }
    }

    fn rejected(id: &str, at: i64) -> RejectedCommit {
        let mut sources = Sources::new();
        let file = sources.add("specs/web.yaml", b"kind: Bundle\n".to_vec());
        let d = Diagnostic::error("quorate::ref::unknown-bundle", "no bundle x")
            .with_help("define it")
            .at(crate::diag::Location {
                file,
                span: Some(crate::diag::Span::at_offset(b"kind: Bundle\n", 6, 6)),
            });
        RejectedCommit::new(commit(id), at, &[d], &sources).unwrap()
    }

    #[tokio::test]
    async fn applied_and_rejected_commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateStore::open(dir.path()).unwrap();
            assert_eq!(s.last_applied().await.unwrap(), None);
            s.record_applied(&commit("a1"), 10).await.unwrap();
            s.record_rejected(&rejected("b2", 20)).await.unwrap();
            s.record_rejected(&rejected("c3", 30)).await.unwrap();
            s.record_rejected(&rejected("b2", 40)).await.unwrap();
            s.record_applied(&commit("d4"), 50).await.unwrap();
        }
        let s = StateStore::open(dir.path()).unwrap();
        let last = s.last_applied().await.unwrap().unwrap();
        assert_eq!((last.commit.id.as_str(), last.at_unix_ms), ("d4", 50));
        let r = s.rejected(10).await.unwrap();
        let ids: Vec<_> = r
            .iter()
            .map(|r| (r.commit.id.as_str(), r.at_unix_ms))
            .collect();
        assert_eq!(ids, [("b2", 40), ("c3", 30)]);
        assert_eq!(
            r[0].problems(),
            ["specs/web.yaml:1:7: quorate::ref::unknown-bundle: no bundle x"]
        );
        assert_eq!(r[0].diagnostics[0].help.as_deref(), Some("define it"));
        assert_eq!(s.rejected(1).await.unwrap().len(), 1);
        // A commit refused once and applied later is no longer listed as refused.
        s.record_applied(&commit("c3"), 60).await.unwrap();
        assert_eq!(s.rejected(10).await.unwrap().len(), 1);
    }
}
