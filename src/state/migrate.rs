//! Schema migrations, keyed by SQLite's `user_version`: migration `i` takes the schema from
//! version `i` to `i + 1`, in one transaction. Append new migrations; never edit old ones.

use rusqlite::Connection;

use super::StateError;

/// The migrations, in order.
const MIGRATIONS: &[&str] = &[
    // 1: fencing history.
    "CREATE TABLE fence_attempts (
        id              INTEGER PRIMARY KEY,
        node            TEXT    NOT NULL,
        device          TEXT    NOT NULL,
        level           INTEGER NOT NULL,
        action          TEXT    NOT NULL,
        try_number      INTEGER NOT NULL,
        started_unix_ms INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        power_state     TEXT,
        error_kind      TEXT,
        cause           TEXT,
        CHECK ((power_state IS NULL) <> (error_kind IS NULL))
    );
    CREATE INDEX fence_attempts_by_node ON fence_attempts (node, started_unix_ms);
    CREATE TABLE fence_outcomes (
        id              INTEGER PRIMARY KEY,
        node            TEXT    NOT NULL,
        action          TEXT    NOT NULL,
        started_unix_ms INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        level           INTEGER,
        cause           TEXT,
        CHECK ((level IS NULL) <> (cause IS NULL))
    );
    CREATE INDEX fence_outcomes_by_node ON fence_outcomes (node, started_unix_ms);
    CREATE TABLE manual_confirmations (
        id         INTEGER PRIMARY KEY,
        node       TEXT    NOT NULL,
        by_whom    TEXT    NOT NULL,
        at_unix_ms INTEGER NOT NULL,
        note       TEXT
    );
    CREATE INDEX manual_confirmations_by_node ON manual_confirmations (node, at_unix_ms);",
    // 2: the reconciler's journal, what may run on each node, fail counts.
    "CREATE TABLE passes (
        id               INTEGER PRIMARY KEY,
        started_unix_ms  INTEGER NOT NULL,
        finished_unix_ms INTEGER NOT NULL,
        commit_id        TEXT    NOT NULL,
        outcome          TEXT    NOT NULL,
        record           TEXT    NOT NULL
    );
    CREATE TABLE node_contents (
        node      TEXT PRIMARY KEY,
        instances TEXT NOT NULL
    );
    CREATE TABLE failures (
        node           TEXT    NOT NULL,
        instance       TEXT    NOT NULL,
        count          INTEGER NOT NULL,
        last_unix      INTEGER,
        PRIMARY KEY (node, instance)
    );",
    // 3: the commit in force and the commits refused.
    "CREATE TABLE applied_commits (
        id          INTEGER PRIMARY KEY,
        commit_id   TEXT    NOT NULL,
        summary     TEXT    NOT NULL,
        author      TEXT    NOT NULL,
        commit_time INTEGER NOT NULL,
        at_unix_ms  INTEGER NOT NULL
    );
    CREATE TABLE rejected_commits (
        commit_id   TEXT    PRIMARY KEY,
        summary     TEXT    NOT NULL,
        author      TEXT    NOT NULL,
        commit_time INTEGER NOT NULL,
        at_unix_ms  INTEGER NOT NULL,
        diagnostics TEXT    NOT NULL
    );
    CREATE INDEX rejected_commits_by_time ON rejected_commits (at_unix_ms);",
    // 4: when each node was last known to be up (fence evidence older than this is void).
    // A database from before it knows no such time: every node it has a record of counts
    // as up at the upgrade, so a fence recorded before it proves nothing (when in doubt,
    // fence again).
    "CREATE TABLE node_seen (
        node       TEXT    PRIMARY KEY,
        at_unix_ms INTEGER NOT NULL
    );
    INSERT INTO node_seen (node, at_unix_ms)
        SELECT node, CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM (
            SELECT node FROM node_contents
            UNION SELECT node FROM fence_outcomes
            UNION SELECT node FROM manual_confirmations
        );",
    // 5: when a pass first planned from each applied commit, which completes its adoption
    // (a restart rejects the last commit adopted if none did). A commit applied before
    // this counts as planned if a pass of it is in the journal: so a commit that stopped
    // an older quorate before its first pass is rejected by the first start of this one.
    "ALTER TABLE applied_commits ADD COLUMN planned_unix_ms INTEGER;
    UPDATE applied_commits SET planned_unix_ms = at_unix_ms
        WHERE commit_id IN (SELECT commit_id FROM passes);",
    // 6: what an operator suspended (`quorate suspend`): the cluster (bundle '') or a
    // bundle, since when and why.
    "CREATE TABLE suspensions (
        bundle     TEXT    PRIMARY KEY,
        at_unix_ms INTEGER NOT NULL,
        reason     TEXT
    );",
];

/// The schema version this build writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the schema to [`LATEST`]; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StateError> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > LATEST {
        return Err(StateError::NewerSchema {
            found,
            supported: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "state schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::FenceLog;
    use crate::observed::assemble::proves_off;
    use crate::reconcile::store::Store;

    #[tokio::test]
    async fn an_old_fence_record_proves_nothing_after_the_upgrade_that_adds_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as version 3 left it: node n1 was fenced long ago.
            let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute(
                "INSERT INTO fence_outcomes (node, action, started_unix_ms, duration_us, level)
                 VALUES ('n1', 'off', 1000, 5000, 1)",
                [],
            )
            .unwrap();
        }
        let store = crate::state::StateStore::open(dir.path()).unwrap();
        let evidence = store.off_evidence("n1").await.unwrap().unwrap();
        let seen = store.remembered("n1").await.unwrap().last_seen_unix_ms;
        assert!(seen.is_some_and(|s| s > 1_000_000_000_000), "{seen:?}");
        assert!(!proves_off(&evidence, seen));
        // A node without any record gets no time.
        assert_eq!(
            store.remembered("n2").await.unwrap().last_seen_unix_ms,
            None
        );
    }

    #[tokio::test]
    async fn after_the_upgrade_that_records_plans_the_last_commit_with_no_pass_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database as version 4 left it: g1 in force with a pass, then l2 adopted,
            // and quorate stopped before any pass of it (the crash loop of issue 12).
            let conn = Connection::open(dir.path().join(super::super::DB_FILE)).unwrap();
            for sql in &MIGRATIONS[..4] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute_batch(
                "INSERT INTO applied_commits (commit_id, summary, author, commit_time, at_unix_ms)
                     VALUES ('g1', 's', 'a', 1, 10), ('l2', 's', 'a', 2, 20);
                 INSERT INTO passes (started_unix_ms, finished_unix_ms, commit_id, outcome, record)
                     VALUES (11, 12, 'g1', 'converged', '{}');",
            )
            .unwrap();
        }
        let store = crate::state::StateStore::open(dir.path()).unwrap();
        match store.resume(30).await.unwrap() {
            crate::state::Resume::Refused { refused, good } => {
                assert_eq!(refused.commit.id, "l2");
                assert_eq!(good.unwrap().commit.id, "g1");
            }
            other => panic!("{other:?}"),
        }
    }
}
