//! The reconciler's state in SQLite: [`Store`] for [`StateStore`] (journal of passes,
//! what may run on each node, fail counts). Each write is its own transaction, durable
//! when it returns (WAL, synchronous FULL), so `kill -9` loses nothing written.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{StateError, StateStore};
use crate::fence::FenceLogError;
use crate::observed::{Failures, ObservedInstance, Suspended, Suspension};
use crate::reconcile::store::{PassRecord, Remembered, Store};

/// Passes kept in the journal; older ones are dropped.
pub const KEEP_PASSES: i64 = 10_000;

fn json<T: serde::Serialize>(v: &T) -> Result<String, StateError> {
    serde_json::to_string(v).map_err(|e| StateError::Corrupt(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StateError> {
    serde_json::from_str(s).map_err(|e| StateError::Corrupt(e.to_string()))
}

/// Keeps the later of the stored time and `at` as when `node` was last known up.
fn seen(c: &rusqlite::Connection, node: &str, at: i64) -> Result<(), rusqlite::Error> {
    c.execute(
        "INSERT INTO node_seen (node, at_unix_ms) VALUES (?1, ?2)
         ON CONFLICT (node) DO UPDATE SET at_unix_ms = max(at_unix_ms, excluded.at_unix_ms)",
        params![node, at],
    )?;
    Ok(())
}

#[async_trait]
impl Store for StateStore {
    async fn remembered(&self, node: &str) -> Result<Remembered, FenceLogError> {
        let node = node.to_owned();
        Ok(self
            .blocking(move |c| {
                let text: Option<String> = c
                    .query_row(
                        "SELECT instances FROM node_contents WHERE node = ?1",
                        [&node],
                        |r| r.get(0),
                    )
                    .optional()?;
                let last_seen_unix_ms = c
                    .query_row(
                        "SELECT at_unix_ms FROM node_seen WHERE node = ?1",
                        [&node],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(Remembered {
                    contents: text.map(|t| parse(&t)).transpose()?,
                    last_seen_unix_ms,
                })
            })
            .await?)
    }

    async fn mark_seen(&self, node: &str, at_unix_ms: i64) -> Result<(), FenceLogError> {
        let node = node.to_owned();
        Ok(self
            .blocking(move |c| Ok(seen(c, &node, at_unix_ms)?))
            .await?)
    }

    async fn set_contents(
        &self,
        node: &str,
        instances: &[ObservedInstance],
    ) -> Result<(), FenceLogError> {
        let (node, text) = (node.to_owned(), json(&instances)?);
        Ok(self
            .blocking(move |c| {
                c.execute(
                    "INSERT INTO node_contents (node, instances) VALUES (?1, ?2)
                     ON CONFLICT (node) DO UPDATE SET instances = excluded.instances",
                    params![node, text],
                )?;
                Ok(())
            })
            .await?)
    }

    async fn intend_start(
        &self,
        node: &str,
        instance: &ObservedInstance,
        at_unix_ms: i64,
    ) -> Result<(), FenceLogError> {
        let (node, instance) = (node.to_owned(), instance.clone());
        Ok(self
            .blocking(move |c| {
                let tx = c.transaction()?;
                seen(&tx, &node, at_unix_ms)?;
                let text: Option<String> = tx
                    .query_row(
                        "SELECT instances FROM node_contents WHERE node = ?1",
                        [&node],
                        |r| r.get(0),
                    )
                    .optional()?;
                let mut list: Vec<ObservedInstance> =
                    text.map(|t| parse(&t)).transpose()?.unwrap_or_default();
                list.retain(|i| !(i.bundle == instance.bundle && i.index == instance.index));
                list.push(instance);
                tx.execute(
                    "INSERT INTO node_contents (node, instances) VALUES (?1, ?2)
                     ON CONFLICT (node) DO UPDATE SET instances = excluded.instances",
                    params![node, json(&list)?],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn failures(&self) -> Result<BTreeMap<(String, String), Failures>, FenceLogError> {
        Ok(self
            .blocking(|c| {
                let mut stmt =
                    c.prepare("SELECT node, instance, count, last_unix FROM failures")?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                        Failures {
                            count: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                            last: r
                                .get::<_, Option<i64>>(3)?
                                .map(|v| u64::try_from(v).unwrap_or(0)),
                        },
                    ))
                })?;
                Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
            })
            .await?)
    }

    async fn record_failure(
        &self,
        node: &str,
        instance: &str,
        at: u64,
    ) -> Result<(), FenceLogError> {
        let (node, instance) = (node.to_owned(), instance.to_owned());
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        Ok(self
            .blocking(move |c| {
                c.execute(
                    "INSERT INTO failures (node, instance, count, last_unix) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (node, instance) DO UPDATE SET count = count + 1, last_unix = excluded.last_unix",
                    params![node, instance, at],
                )?;
                Ok(())
            })
            .await?)
    }

    async fn clear_failures(
        &self,
        instance: &str,
        node: Option<&str>,
    ) -> Result<u32, FenceLogError> {
        let (instance, node) = (instance.to_owned(), node.map(str::to_owned));
        Ok(self
            .blocking(move |c| {
                let n = c.execute(
                    "DELETE FROM failures WHERE instance = ?1 AND (?2 IS NULL OR node = ?2)",
                    params![instance, node],
                )?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            })
            .await?)
    }

    async fn record_pass(&self, pass: &PassRecord) -> Result<u64, FenceLogError> {
        let pass = pass.clone();
        Ok(self
            .blocking(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO passes (started_unix_ms, finished_unix_ms, commit_id, outcome, record)
                     VALUES (?1, ?2, ?3, ?4, '')",
                    params![pass.started_unix_ms, pass.finished_unix_ms, pass.commit, pass.outcome.as_str()],
                )?;
                let id = tx.last_insert_rowid();
                let mut stored = pass;
                stored.id = u64::try_from(id).unwrap_or(0);
                tx.execute("UPDATE passes SET record = ?1 WHERE id = ?2", params![json(&stored)?, id])?;
                tx.execute("DELETE FROM passes WHERE id <= ?1", [id - KEEP_PASSES])?;
                tx.commit()?;
                Ok(stored.id)
            })
            .await?)
    }

    async fn record_planned(&self, commit: &str, at_unix_ms: i64) -> Result<(), FenceLogError> {
        Ok(self.mark_planned(commit, at_unix_ms).await?)
    }

    async fn suspended(&self) -> Result<Suspended, FenceLogError> {
        Ok(self.blocking(super::suspend::read).await?)
    }

    async fn set_suspended(
        &self,
        bundle: Option<&str>,
        suspension: Option<&Suspension>,
    ) -> Result<Option<Suspension>, FenceLogError> {
        let (bundle, suspension) = (bundle.map(str::to_owned), suspension.cloned());
        self.blocking(move |c| super::suspend::write(c, bundle.as_deref(), suspension.as_ref()))
            .await?
    }

    async fn passes(&self, limit: usize) -> Result<Vec<PassRecord>, FenceLogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(self
            .blocking(move |c| {
                let mut stmt = c.prepare("SELECT record FROM passes ORDER BY id DESC LIMIT ?1")?;
                let rows = stmt.query_map([limit], |r| r.get::<_, String>(0))?;
                let mut out = Vec::new();
                for text in rows {
                    // A record in an older format is history, not state: it is left out.
                    if let Ok(pass) = serde_json::from_str::<PassRecord>(&text?) {
                        out.push(pass);
                    }
                }
                Ok(out)
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::InstanceState;

    fn instance(bundle: &str, index: u32) -> ObservedInstance {
        ObservedInstance {
            bundle: bundle.parse().unwrap(),
            index,
            spec_hash: "h".into(),
            state: InstanceState::Running,
            role: None,
        }
    }

    #[tokio::test]
    async fn cleanup_clears_the_fail_counts_of_one_instance_on_one_node_or_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        for (node, inst) in [
            ("n1", "db-0"),
            ("n2", "db-0"),
            ("n3", "db-0"),
            ("n1", "db-1"),
        ] {
            s.record_failure(node, inst, 100).await.unwrap();
        }
        assert_eq!(s.clear_failures("db-0", Some("n2")).await.unwrap(), 1);
        let left: Vec<(String, String)> = s.failures().await.unwrap().into_keys().collect();
        let pair = |n: &str, i: &str| (n.to_owned(), i.to_owned());
        assert_eq!(
            left,
            [pair("n1", "db-0"), pair("n1", "db-1"), pair("n3", "db-0")]
        );
        assert_eq!(s.clear_failures("db-0", None).await.unwrap(), 2);
        assert_eq!(s.clear_failures("db-0", None).await.unwrap(), 0);
        // The same in memory.
        let m = crate::reconcile::store::MemoryStore::default();
        m.record_failure("n1", "db-0", 1).await.unwrap();
        m.record_failure("n2", "db-0", 1).await.unwrap();
        assert_eq!(m.clear_failures("db-0", Some("n9")).await.unwrap(), 0);
        assert_eq!(m.clear_failures("db-0", None).await.unwrap(), 2);
        drop(s);
        // Cleared for good: a new store on the same directory has none either.
        let s = StateStore::open(dir.path()).unwrap();
        assert_eq!(s.failures().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn contents_failures_and_passes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateStore::open(dir.path()).unwrap();
            assert_eq!(s.remembered("n1").await.unwrap(), Remembered::default());
            s.set_contents("n1", &[instance("web", 0)]).await.unwrap();
            s.intend_start("n1", &instance("db", 0), 5_000)
                .await
                .unwrap();
            s.intend_start("n1", &instance("db", 0), 4_000)
                .await
                .unwrap();
            s.mark_seen("n2", 7_000).await.unwrap();
            s.mark_seen("n2", 6_000).await.unwrap();
            s.record_failure("n1", "db-0", 100).await.unwrap();
            s.record_failure("n1", "db-0", 200).await.unwrap();
            let rec = PassRecord {
                id: 0,
                started_unix_ms: 1,
                finished_unix_ms: 2,
                commit: "abc".into(),
                trigger: "test".into(),
                outcome: crate::reconcile::store::PassOutcome::Converged,
                detail: String::new(),
                observed: serde_json::json!({}),
                plan: serde_json::json!(null),
                results: vec![],
            };
            assert_eq!(s.record_pass(&rec).await.unwrap(), 1);
            assert_eq!(s.record_pass(&rec).await.unwrap(), 2);
        }
        let s = StateStore::open(dir.path()).unwrap();
        let n1 = s.remembered("n1").await.unwrap();
        assert_eq!(n1.contents.map(|c| c.len()), Some(2));
        // The later time is kept, whatever order the writes came in.
        assert_eq!(n1.last_seen_unix_ms, Some(5_000));
        assert_eq!(
            s.remembered("n2").await.unwrap().last_seen_unix_ms,
            Some(7_000)
        );
        assert_eq!(s.remembered("n2").await.unwrap().contents, None);
        let f = s.failures().await.unwrap();
        assert_eq!(
            f[&("n1".to_owned(), "db-0".to_owned())],
            Failures {
                count: 2,
                last: Some(200)
            }
        );
        let p = s.passes(10).await.unwrap();
        assert_eq!(p.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
    }
}
