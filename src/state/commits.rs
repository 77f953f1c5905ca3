//! Commits in the state store: the one in force (the last good commit) and those refused
//! because they did not validate, with their diagnostics (design invariant 6: an invalid
//! commit is never applied; it is recorded and shown by `status`, and the last good one
//! stays in force).
//!
//! A commit is recorded as applied before it is adopted, and its adoption is complete once
//! a pass has planned from it (recorded before the plan is carried out). A restart that
//! finds the last commit adopted without such a pass rejects it
//! ([`StateStore::resume`]): whatever stopped quorate while it planned that commit
//! (running out of memory, a crash) must not stop it again at every restart (design
//! invariant 10). A stop while carrying a plan out is not held against the commit: the
//! next pass starts again from what it observes.
//!
//! Both are bounded, whatever the commits hold (issue 12): a refused commit keeps its
//! first [`KEEP_FINDINGS`] findings, each text cut at [`MAX_FINDING_TEXT`] bytes, and the
//! number of the others; only the last [`KEEP_REJECTED`] refused commits are kept.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{StateError, StateStore};
use crate::diag::Diagnostic;
use crate::diag::render::to_json;
use crate::source::Sources;
use crate::source::git::Commit;

/// Applied commits kept; older ones are dropped.
pub const KEEP_COMMITS: i64 = 1_000;
/// Refused commits kept; older ones are dropped.
pub const KEEP_REJECTED: i64 = 100;
/// Findings kept of one refused commit (the first ones); the others are only counted.
pub const KEEP_FINDINGS: usize = 25;
/// Longest text (message, help, file name) kept of one finding, in bytes.
pub const MAX_FINDING_TEXT: usize = 512;

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
    /// Its first findings (at most [`KEEP_FINDINGS`]), in the JSON form of
    /// `quorate validate --format json`.
    pub diagnostics: Vec<StoredDiagnostic>,
    /// How many more findings it had (not kept).
    pub omitted: u64,
}

/// The findings column: a plain list before findings were bounded, or the list kept
/// and the number of the others.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredFindings {
    Bounded {
        kept: Vec<StoredDiagnostic>,
        omitted: u64,
    },
    All(Vec<StoredDiagnostic>),
}

impl StoredFindings {
    /// The findings kept and the count of the others, from the column's text; a list
    /// stored before findings were bounded is bounded as it is read.
    fn decode(text: &str) -> Result<(Vec<StoredDiagnostic>, u64), StateError> {
        let stored = serde_json::from_str(text)
            .map_err(|e| StateError::Corrupt(format!("rejected commit diagnostics: {e}")))?;
        Ok(match stored {
            StoredFindings::Bounded { kept, omitted } => (kept, omitted),
            StoredFindings::All(mut all) => {
                let omitted = all.len().saturating_sub(KEEP_FINDINGS) as u64;
                all.truncate(KEEP_FINDINGS);
                let kept = all.into_iter().map(StoredDiagnostic::bounded).collect();
                (kept, omitted)
            }
        })
    }
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
    /// `sources`): the first [`KEEP_FINDINGS`] of them, cut to size, and the count of the
    /// others.
    pub fn new(
        commit: Commit,
        at_unix_ms: i64,
        diagnostics: &[Diagnostic],
        sources: &Sources,
    ) -> Result<RejectedCommit, StateError> {
        let kept = diagnostics
            .iter()
            .take(KEEP_FINDINGS)
            .map(|d| {
                serde_json::to_value(to_json(d, sources))
                    .and_then(serde_json::from_value)
                    .map(StoredDiagnostic::bounded)
                    .map_err(|e| StateError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let omitted = (diagnostics.len() - kept.len()) as u64;
        Ok(RejectedCommit {
            commit,
            at_unix_ms,
            diagnostics: kept,
            omitted,
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

/// The code of the finding recorded for a commit no pass planned from before a restart.
pub const STOPPED_WHILE_PLANNING: &str = "quorate::run::stopped-while-planning";

/// What a restart keeps in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No commit was ever put in force.
    Nothing,
    /// A pass planned from the last commit adopted: it stays in force.
    InForce(AppliedCommit),
    /// No pass planned from the last commit adopted: it is now recorded as rejected
    /// (`refused`), and `good`, the last commit a pass planned from, is in force again.
    Refused {
        /// The record of the refused commit.
        refused: RejectedCommit,
        /// The last good commit, if any.
        good: Option<AppliedCommit>,
    },
}

/// Whether a pass planned from the applied commit `a`.
const PASSED: &str = "a.planned_unix_ms IS NOT NULL";

impl StoredDiagnostic {
    /// Its texts cut at [`MAX_FINDING_TEXT`] bytes.
    fn bounded(mut self) -> StoredDiagnostic {
        for text in [&mut self.code, &mut self.message]
            .into_iter()
            .chain(self.file.as_mut())
            .chain(self.help.as_mut())
        {
            cut(text, MAX_FINDING_TEXT);
        }
        self
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, ending in `…` when cut.
pub(crate) fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
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
        let diagnostics = serde_json::to_string(&StoredFindings::Bounded {
            kept: r.diagnostics.clone(),
            omitted: r.omitted,
        })
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
                [KEEP_REJECTED],
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

    /// The last `limit` commits put in force, newest first (`quorate history`).
    pub async fn applied(&self, limit: usize) -> Result<Vec<AppliedCommit>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT commit_id, summary, author, commit_time, at_unix_ms
                 FROM applied_commits ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(AppliedCommit {
                    commit: commit_row(r)?,
                    at_unix_ms: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// What stays in force after a restart. When no pass planned from the last commit
    /// adopted, quorate stopped while planning it: it is recorded as rejected
    /// with a [`STOPPED_WHILE_PLANNING`] finding, and the commits adopted after the last
    /// good one are withdrawn, so that one is in force again. Each step can be repeated:
    /// a stop between them leads to the same outcome at the next restart.
    pub async fn resume(&self, now_unix_ms: i64) -> Result<Resume, StateError> {
        let Some((last, passed)) = self.last_adoption().await? else {
            return Ok(Resume::Nothing);
        };
        if passed {
            return Ok(Resume::InForce(last));
        }
        let refused = RejectedCommit {
            diagnostics: vec![stopped_while_planning(&last)],
            omitted: 0,
            commit: last.commit,
            at_unix_ms: now_unix_ms,
        };
        self.record_rejected(&refused).await?;
        self.withdraw_unfinished().await?;
        let good = self.last_applied().await?;
        Ok(Resume::Refused { refused, good })
    }

    /// The last commit adopted, and whether a pass planned from it.
    pub(crate) async fn last_adoption(&self) -> Result<Option<(AppliedCommit, bool)>, StateError> {
        self.blocking(|conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT commit_id, summary, author, commit_time, at_unix_ms, {PASSED}
                         FROM applied_commits a ORDER BY id DESC LIMIT 1"
                    ),
                    [],
                    |r| {
                        let applied = AppliedCommit {
                            commit: commit_row(r)?,
                            at_unix_ms: r.get(4)?,
                        };
                        Ok((applied, r.get(5)?))
                    },
                )
                .optional()?)
        })
        .await
    }

    /// Forgets the commits adopted after the last one a pass planned from (all of them
    /// when there is none), so that one is in force again; returns how many were withdrawn.
    /// For a clean stop before a pass planned: at the next start the head of the branch
    /// is adopted afresh.
    pub async fn withdraw_unfinished(&self) -> Result<usize, StateError> {
        self.blocking(|conn| {
            Ok(conn.execute(
                &format!(
                    "DELETE FROM applied_commits WHERE id >
                         (SELECT COALESCE(MAX(a.id), 0) FROM applied_commits a WHERE {PASSED})"
                ),
                [],
            )?)
        })
        .await
    }

    /// Records that a pass planned from `commit_id` (its latest adoption), at `at_unix_ms`.
    pub async fn mark_planned(&self, commit_id: &str, at_unix_ms: i64) -> Result<(), StateError> {
        let id = commit_id.to_owned();
        self.blocking(move |conn| {
            conn.execute(
                "UPDATE applied_commits SET planned_unix_ms = ?2
                 WHERE id = (SELECT MAX(id) FROM applied_commits WHERE commit_id = ?1)
                   AND planned_unix_ms IS NULL",
                params![id, at_unix_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether `commit_id` was rejected because quorate stopped while planning it: such a
    /// commit is not adopted again, whatever it holds.
    pub async fn refused_adoption(&self, commit_id: &str) -> Result<bool, StateError> {
        let id = commit_id.to_owned();
        let text: Option<String> = self
            .blocking(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT diagnostics FROM rejected_commits WHERE commit_id = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await?;
        let Some(text) = text else { return Ok(false) };
        let (diagnostics, _) = StoredFindings::decode(&text)?;
        Ok(diagnostics.iter().any(|d| d.code == STOPPED_WHILE_PLANNING))
    }

    /// The last `limit` refused commits, newest first.
    pub async fn rejected(&self, limit: usize) -> Result<Vec<RejectedCommit>, StateError> {
        self.rejected_page(0, limit).await
    }

    /// How many refused commits are kept.
    pub async fn rejected_count(&self) -> Result<u64, StateError> {
        self.blocking(|conn| {
            let n: i64 =
                conn.query_row("SELECT COUNT(*) FROM rejected_commits", [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// `limit` refused commits, newest first, after skipping the `offset` newest.
    pub async fn rejected_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RejectedCommit>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.blocking(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT commit_id, summary, author, commit_time, at_unix_ms, diagnostics
                 FROM rejected_commits ORDER BY at_unix_ms DESC, rowid DESC LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map([limit, offset], |r| {
                Ok((commit_row(r)?, r.get::<_, i64>(4)?, r.get::<_, String>(5)?))
            })?;
            rows.map(|row| {
                let (commit, at_unix_ms, text) = row?;
                let (diagnostics, omitted) = StoredFindings::decode(&text)?;
                Ok(RejectedCommit {
                    commit,
                    at_unix_ms,
                    diagnostics,
                    omitted,
                })
            })
            .collect()
        })
        .await
    }
}

/// The finding of a commit no pass planned from before a restart.
pub(crate) fn stopped_while_planning(last: &AppliedCommit) -> StoredDiagnostic {
    StoredDiagnostic {
        severity: "error".to_owned(),
        code: STOPPED_WHILE_PLANNING.to_owned(),
        message: format!(
            "quorate stopped while planning it: adopted at {}, no pass planned from it; the last good commit stays in force",
            crate::fence::format_unix_ms(last.at_unix_ms)
        ),
        file: None,
        line: None,
        column: None,
        help: Some(
            "look in the log for what stopped quorate (out of memory, a crash); this commit is not adopted again: push a fixed commit, or the same change as a new commit"
                .to_owned(),
        ),
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

    async fn planned(s: &StateStore, id: &str) {
        use crate::reconcile::store::Store;
        s.record_planned(id, 12).await.unwrap();
    }

    fn in_force(r: &Resume) -> Option<&str> {
        match r {
            Resume::Nothing => None,
            Resume::InForce(a) => Some(a.commit.id.as_str()),
            Resume::Refused { good, .. } => good.as_ref().map(|g| g.commit.id.as_str()),
        }
    }

    #[tokio::test]
    async fn a_restart_rejects_an_adoption_no_pass_planned_from_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.resume(1).await.unwrap(), Resume::Nothing);
        s.record_applied(&commit("g1"), 10).await.unwrap();
        planned(&s, "g1").await;
        assert_eq!(in_force(&s.resume(15).await.unwrap()), Some("g1"));
        // Adopted, then superseded before its first pass, then the next one was being
        // planned when the process died.
        s.record_applied(&commit("a2"), 20).await.unwrap();
        s.record_applied(&commit("l3"), 30).await.unwrap();
        drop(s);
        let s = StateStore::open(dir.path()).unwrap();
        let r = s.resume(40).await.unwrap();
        let Resume::Refused { refused, .. } = &r else {
            panic!("{r:?}")
        };
        assert_eq!((refused.commit.id.as_str(), refused.at_unix_ms), ("l3", 40));
        assert_eq!(in_force(&r), Some("g1"));
        let problems = refused.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with(
                "quorate::run::stopped-while-planning: quorate stopped while planning it"
            ),
            "{problems:?}"
        );
        assert_eq!(s.rejected(10).await.unwrap(), std::slice::from_ref(refused));
        assert!(s.refused_adoption("l3").await.unwrap());
        assert!(!s.refused_adoption("a2").await.unwrap());
        // The last good commit is in force again, for `status` and the next restart.
        assert_eq!(s.last_applied().await.unwrap().unwrap().commit.id, "g1");
        assert_eq!(
            s.resume(50).await.unwrap(),
            Resume::InForce(s.last_applied().await.unwrap().unwrap())
        );
        // A commit refused by validation is not an adoption refused.
        s.record_rejected(&rejected("b4", 60)).await.unwrap();
        assert!(!s.refused_adoption("b4").await.unwrap());
    }

    #[tokio::test]
    async fn a_first_commit_no_pass_planned_from_leaves_nothing_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.record_applied(&commit("l1"), 10).await.unwrap();
        let r = s.resume(20).await.unwrap();
        assert!(matches!(&r, Resume::Refused { good: None, .. }), "{r:?}");
        assert_eq!(s.last_applied().await.unwrap(), None);
        assert_eq!(s.resume(30).await.unwrap(), Resume::Nothing);
    }

    #[tokio::test]
    async fn a_stop_before_the_first_pass_withdraws_the_adoption_without_refusing_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.record_applied(&commit("g1"), 10).await.unwrap();
        planned(&s, "g1").await;
        s.record_applied(&commit("l2"), 20).await.unwrap();
        assert_eq!(s.withdraw_unfinished().await.unwrap(), 1);
        assert_eq!(in_force(&s.resume(30).await.unwrap()), Some("g1"));
        assert!(s.rejected(10).await.unwrap().is_empty());
        assert!(!s.refused_adoption("l2").await.unwrap());
        // Nothing to withdraw once the commit in force has passed.
        assert_eq!(s.withdraw_unfinished().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_commit_keeps_its_first_findings_and_the_count_of_the_others() {
        let mut sources = Sources::new();
        let file = sources.add("specs/many.yaml", Vec::new());
        let long = "x".repeat(10 * MAX_FINDING_TEXT);
        let all: Vec<Diagnostic> = (0..1_000)
            .map(|i| {
                Diagnostic::error(
                    "quorate::shape::missing-field",
                    format!("finding {i} {long}"),
                )
                .with_help(long.clone())
                .in_file(file)
            })
            .collect();
        let r = RejectedCommit::new(commit("e5"), 10, &all, &sources).unwrap();
        assert_eq!(r.diagnostics.len(), KEEP_FINDINGS);
        assert_eq!(r.omitted, (1_000 - KEEP_FINDINGS) as u64);
        assert!(r.diagnostics[0].message.starts_with("finding 0 x"));
        assert!(
            r.diagnostics[KEEP_FINDINGS - 1]
                .message
                .starts_with(&format!("finding {} ", KEEP_FINDINGS - 1))
        );
        for d in &r.diagnostics {
            assert!(d.message.len() <= MAX_FINDING_TEXT && d.message.ends_with('…'));
            assert!(d.help.as_ref().unwrap().len() <= MAX_FINDING_TEXT);
        }
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.record_rejected(&r).await.unwrap();
        assert_eq!(s.rejected(1).await.unwrap(), [r]);
    }

    #[tokio::test]
    async fn only_the_last_refused_commits_are_kept_and_read_by_pages() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let n = KEEP_REJECTED + 5;
        for i in 0..n {
            s.record_rejected(&rejected(&format!("r{i}"), i))
                .await
                .unwrap();
        }
        assert_eq!(s.rejected_count().await.unwrap(), KEEP_REJECTED as u64);
        let newest: Vec<_> = s.rejected_page(0, 3).await.unwrap();
        let ids: Vec<_> = newest.iter().map(|r| r.commit.id.clone()).collect();
        assert_eq!(
            ids,
            [
                format!("r{}", n - 1),
                format!("r{}", n - 2),
                format!("r{}", n - 3)
            ]
        );
        let next = s.rejected_page(3, 2).await.unwrap();
        assert_eq!(next[0].commit.id, format!("r{}", n - 4));
        let last = s
            .rejected_page(KEEP_REJECTED as usize - 1, 10)
            .await
            .unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].commit.id, "r5", "the five oldest were dropped");
    }

    #[tokio::test]
    async fn findings_stored_before_they_were_bounded_are_bounded_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let one = rejected("old", 1).diagnostics[0].clone();
        let all = vec![one; KEEP_FINDINGS + 7];
        let text = serde_json::to_string(&all).unwrap();
        s.blocking(move |conn| {
            conn.execute(
                "INSERT INTO rejected_commits
                     (commit_id, summary, author, commit_time, at_unix_ms, diagnostics)
                 VALUES ('old', 's', 'a', 0, 1, ?1)",
                [text],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let r = s.rejected(1).await.unwrap();
        assert_eq!(r[0].diagnostics.len(), KEEP_FINDINGS);
        assert_eq!(r[0].omitted, 7);
    }

    #[test]
    fn cut_keeps_whole_characters() {
        let mut t = "é".repeat(10);
        cut(&mut t, 8);
        assert_eq!(t, "éé…");
        let mut short = "abc".to_owned();
        cut(&mut short, 3);
        assert_eq!(short, "abc");
    }
}
