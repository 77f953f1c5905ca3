//! What an operator suspended (`quorate suspend`, `quorate resume`) in SQLite: one row per
//! bundle, the cluster's row under the empty name (no bundle has it).

use rusqlite::{Connection, OptionalExtension, params};

use super::StateError;
use crate::fence::FenceLogError;
use crate::observed::{Suspended, Suspension};

/// The row of the whole cluster.
const CLUSTER: &str = "";

/// Every suspension.
pub(super) fn read(c: &mut Connection) -> Result<Suspended, StateError> {
    let mut stmt = c.prepare("SELECT bundle, at_unix_ms, reason FROM suspensions")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Suspension {
                at_unix_ms: r.get(1)?,
                reason: r.get(2)?,
            },
        ))
    })?;
    let mut out = Suspended::default();
    for row in rows {
        let (bundle, s) = row?;
        if bundle == CLUSTER {
            out.cluster = Some(s);
        } else {
            out.bundles.insert(bundle, s);
        }
    }
    Ok(out)
}

/// Suspends (`Some`) or resumes (`None`) `bundle` or the cluster, in one transaction;
/// the suspension it replaces or ends. The outer `Result` is the database's, the inner
/// one a refusal (too many bundles).
pub(super) fn write(
    c: &mut Connection,
    bundle: Option<&str>,
    suspension: Option<&Suspension>,
) -> Result<Result<Option<Suspension>, FenceLogError>, StateError> {
    let tx = c.transaction()?;
    let key = bundle.unwrap_or(CLUSTER);
    let before = tx
        .query_row(
            "SELECT at_unix_ms, reason FROM suspensions WHERE bundle = ?1",
            [key],
            |r| {
                Ok(Suspension {
                    at_unix_ms: r.get(0)?,
                    reason: r.get(1)?,
                })
            },
        )
        .optional()?;
    if bundle.is_some() && suspension.is_some() && before.is_none() {
        let count: i64 = tx.query_row(
            "SELECT count(*) FROM suspensions WHERE bundle <> ''",
            [],
            |r| r.get(0),
        )?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if let Err(e) = crate::reconcile::store::room_for(count, true) {
            return Ok(Err(e));
        }
    }
    match suspension.map(Suspension::bounded) {
        Some(s) => tx.execute(
            "INSERT INTO suspensions (bundle, at_unix_ms, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (bundle) DO UPDATE SET at_unix_ms = excluded.at_unix_ms,
                 reason = excluded.reason",
            params![key, s.at_unix_ms, s.reason],
        )?,
        None => tx.execute("DELETE FROM suspensions WHERE bundle = ?1", [key])?,
    };
    tx.commit()?;
    Ok(Ok(before))
}

#[cfg(test)]
mod tests {
    use crate::observed::{MAX_SUSPEND_REASON, MAX_SUSPENDED_BUNDLES, Suspension};
    use crate::reconcile::store::{MemoryStore, Store};
    use crate::state::StateStore;

    /// The same behaviour from every store: suspend, replace, resume, bounds.
    async fn suspends_and_resumes(s: &dyn Store) {
        assert!(s.suspended().await.unwrap().is_empty());
        let long = "é".repeat(MAX_SUSPEND_REASON);
        let db = Suspension::new(10, Some("upgrade"));
        assert_eq!(s.set_suspended(Some("db"), Some(&db)).await.unwrap(), None);
        let unbounded = Suspension {
            at_unix_ms: 20,
            reason: Some(long),
        };
        assert_eq!(s.set_suspended(None, Some(&unbounded)).await.unwrap(), None);
        let now = s.suspended().await.unwrap();
        assert_eq!(now.bundles["db"], db);
        let kept = now.cluster.unwrap().reason.unwrap();
        assert!(
            kept.len() <= MAX_SUSPEND_REASON && kept.ends_with('…'),
            "{kept}"
        );
        // Suspending again replaces, and says what it replaced.
        let again = Suspension::new(30, None);
        let before = s.set_suspended(Some("db"), Some(&again)).await.unwrap();
        assert_eq!(before, Some(db));
        // Resuming the cluster leaves the bundle suspended.
        assert!(s.set_suspended(None, None).await.unwrap().is_some());
        assert_eq!(s.set_suspended(None, None).await.unwrap(), None);
        let now = s.suspended().await.unwrap();
        assert_eq!(now.cluster, None);
        assert_eq!(now.bundles["db"], again);
        assert_eq!(
            s.set_suspended(Some("db"), None).await.unwrap(),
            Some(again)
        );
        assert!(s.suspended().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sqlite_and_memory_stores_suspend_and_resume_alike() {
        let dir = tempfile::tempdir().unwrap();
        suspends_and_resumes(&StateStore::open(dir.path()).unwrap()).await;
        suspends_and_resumes(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn a_suspension_survives_reopening_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let web = Suspension::new(5, Some("by hand"));
        s.set_suspended(Some("web"), Some(&web)).await.unwrap();
        s.set_suspended(None, Some(&web)).await.unwrap();
        drop(s);
        let s = StateStore::open(dir.path()).unwrap();
        let now = s.suspended().await.unwrap();
        assert_eq!(now.cluster.as_ref(), Some(&web));
        assert_eq!(now.bundles.len(), 1);
        assert_eq!(now.bundles["web"], web);
    }

    #[tokio::test]
    async fn no_store_suspends_more_bundles_than_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = StateStore::open(dir.path()).unwrap();
        sqlite
            .with_conn(|c| {
                let tx = c.transaction()?;
                for i in 0..MAX_SUSPENDED_BUNDLES {
                    tx.execute(
                        "INSERT INTO suspensions (bundle, at_unix_ms) VALUES (?1, 1)",
                        [format!("b{i}")],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        let memory = MemoryStore::new();
        for i in 0..MAX_SUSPENDED_BUNDLES {
            let s = Suspension::new(1, None);
            memory
                .set_suspended(Some(&format!("b{i}")), Some(&s))
                .await
                .unwrap();
        }
        let s = Suspension::new(2, None);
        for store in [&sqlite as &dyn Store, &memory] {
            let e = store
                .set_suspended(Some("one-more"), Some(&s))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("suspended already"), "{e}");
            // A bundle already suspended, the cluster, and a resume still go through.
            store.set_suspended(Some("b0"), Some(&s)).await.unwrap();
            store.set_suspended(None, Some(&s)).await.unwrap();
            store.set_suspended(Some("b1"), None).await.unwrap();
            let now = store.suspended().await.unwrap();
            assert_eq!(now.bundles.len(), MAX_SUSPENDED_BUNDLES - 1);
            assert!(!now.bundles.contains_key("one-more"));
        }
    }
}
