//! The fencing history in SQLite: [`FenceLog`] for [`StateStore`].

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{StateError, StateStore};
use crate::fence::log::{
    AttemptFailure, FenceAttempt, FenceOutcome, HistoryEntry, ManualConfirmation,
};
use crate::fence::{FenceAction, FenceLog, FenceLogError, PowerState};

impl From<StateError> for FenceLogError {
    fn from(e: StateError) -> Self {
        FenceLogError(Box::new(e))
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn action(s: &str) -> Result<FenceAction, StateError> {
    FenceAction::parse(s).ok_or_else(|| StateError::Corrupt(format!("fence action {s:?}")))
}

fn power(s: &str) -> Result<PowerState, StateError> {
    match s {
        "on" => Ok(PowerState::On),
        "off" => Ok(PowerState::Off),
        _ => Err(StateError::Corrupt(format!("power state {s:?}"))),
    }
}

fn level(v: i64) -> Result<u32, StateError> {
    u32::try_from(v).map_err(|_| StateError::Corrupt(format!("fence level {v}")))
}

#[async_trait]
impl FenceLog for StateStore {
    async fn record_attempt(&self, a: &FenceAttempt) -> Result<(), FenceLogError> {
        let a = a.clone();
        self.blocking(move |c| {
            let (state, kind, cause) = match &a.result {
                Ok(s) => (Some(s.to_string()), None, None),
                Err(e) => (None, Some(e.kind.clone()), Some(e.cause.clone())),
            };
            c.execute(
                "INSERT INTO fence_attempts (node, device, level, action, try_number,
                     started_unix_ms, duration_us, power_state, error_kind, cause)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    a.node,
                    a.device,
                    a.level,
                    a.action.as_str(),
                    a.try_number,
                    a.started_unix_ms,
                    micros(a.duration),
                    state,
                    kind,
                    cause
                ],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn record_outcome(&self, o: &FenceOutcome) -> Result<(), FenceLogError> {
        let o = o.clone();
        self.blocking(move |c| {
            let (level, cause) = match &o.result {
                Ok(l) => (Some(*l), None),
                Err(cause) => (None, Some(cause.clone())),
            };
            c.execute(
                "INSERT INTO fence_outcomes (node, action, started_unix_ms, duration_us, level, cause)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    o.node,
                    o.action.as_str(),
                    o.started_unix_ms,
                    micros(o.duration),
                    level,
                    cause
                ],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn record_manual(&self, m: &ManualConfirmation) -> Result<(), FenceLogError> {
        let m = m.clone();
        self.blocking(move |c| {
            c.execute(
                "INSERT INTO manual_confirmations (node, by_whom, at_unix_ms, note)
                 VALUES (?1, ?2, ?3, ?4)",
                params![m.node, m.by, m.at_unix_ms, m.note],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError> {
        let node = node.map(str::to_string);
        Ok(self
            .blocking(move |c| read_history(c, node.as_deref()))
            .await?)
    }
}

/// All three tables, merged by time; ties keep attempts before outcomes before manual
/// confirmations, and insertion order within a table.
fn read_history(c: &Connection, node: Option<&str>) -> Result<Vec<HistoryEntry>, StateError> {
    let mut keyed: Vec<(i64, u8, i64, HistoryEntry)> = Vec::new();

    let mut st = c.prepare(
        "SELECT id, node, device, level, action, try_number, started_unix_ms, duration_us,
                power_state, error_kind, cause
         FROM fence_attempts WHERE ?1 IS NULL OR node = ?1 ORDER BY id",
    )?;
    let mut rows = st.query(params![node])?;
    while let Some(r) = rows.next()? {
        let state: Option<String> = r.get(8)?;
        let result = match state {
            Some(s) => Ok(power(&s)?),
            None => Err(AttemptFailure {
                kind: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                cause: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
            }),
        };
        let a = FenceAttempt {
            node: r.get(1)?,
            device: r.get(2)?,
            level: level(r.get(3)?)?,
            action: action(&r.get::<_, String>(4)?)?,
            try_number: r.get(5)?,
            started_unix_ms: r.get(6)?,
            duration: duration(r.get(7)?),
            result,
        };
        let e = HistoryEntry::Attempt(a);
        keyed.push((e.at_unix_ms(), 0, r.get(0)?, e));
    }

    let mut st = c.prepare(
        "SELECT id, node, action, started_unix_ms, duration_us, level, cause
         FROM fence_outcomes WHERE ?1 IS NULL OR node = ?1 ORDER BY id",
    )?;
    let mut rows = st.query(params![node])?;
    while let Some(r) = rows.next()? {
        let result = match r.get::<_, Option<i64>>(5)? {
            Some(l) => Ok(level(l)?),
            None => Err(r.get::<_, Option<String>>(6)?.unwrap_or_default()),
        };
        let o = FenceOutcome {
            node: r.get(1)?,
            action: action(&r.get::<_, String>(2)?)?,
            started_unix_ms: r.get(3)?,
            duration: duration(r.get(4)?),
            result,
        };
        let e = HistoryEntry::Outcome(o);
        keyed.push((e.at_unix_ms(), 1, r.get(0)?, e));
    }

    let mut st = c.prepare(
        "SELECT id, node, by_whom, at_unix_ms, note
         FROM manual_confirmations WHERE ?1 IS NULL OR node = ?1 ORDER BY id",
    )?;
    let mut rows = st.query(params![node])?;
    while let Some(r) = rows.next()? {
        let m = ManualConfirmation {
            node: r.get(1)?,
            by: r.get(2)?,
            at_unix_ms: r.get(3)?,
            note: r.get(4)?,
        };
        let e = HistoryEntry::Manual(m);
        keyed.push((e.at_unix_ms(), 2, r.get(0)?, e));
    }

    keyed.sort_by_key(|(at, rank, id, _)| (*at, *rank, *id));
    Ok(keyed.into_iter().map(|(_, _, _, e)| e).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::log::OffEvidence;

    fn attempt(node: &str, at: i64, result: Result<PowerState, AttemptFailure>) -> FenceAttempt {
        FenceAttempt {
            node: node.into(),
            device: "ipmi-1".into(),
            level: 1,
            action: FenceAction::Off,
            try_number: 1,
            started_unix_ms: at,
            duration: Duration::from_micros(1234),
            result,
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let failed = attempt(
            "n1",
            100,
            Err(AttemptFailure {
                kind: "timeout".into(),
                cause: "no answer".into(),
            }),
        );
        let ok = attempt("n1", 200, Ok(PowerState::Off));
        let outcome = FenceOutcome {
            node: "n1".into(),
            action: FenceAction::Off,
            started_unix_ms: 100,
            duration: Duration::from_millis(150),
            result: Ok(1),
        };
        let manual = ManualConfirmation {
            node: "n2".into(),
            by: "erin".into(),
            at_unix_ms: 300,
            note: None,
        };
        {
            let store = StateStore::open(dir.path()).unwrap();
            store.record_attempt(&failed).await.unwrap();
            store.record_outcome(&outcome).await.unwrap();
            store.record_attempt(&ok).await.unwrap();
            store.record_manual(&manual).await.unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let h = store.history(Some("n1")).await.unwrap();
        assert_eq!(
            h,
            vec![
                HistoryEntry::Attempt(failed),
                HistoryEntry::Attempt(ok),
                HistoryEntry::Outcome(outcome),
            ]
        );
        assert_eq!(store.history(None).await.unwrap().len(), 4);
        assert_eq!(
            store.off_evidence("n1").await.unwrap(),
            Some(OffEvidence::Fenced {
                level: 1,
                at_unix_ms: 250
            })
        );
        assert!(matches!(
            store.off_evidence("n2").await.unwrap(),
            Some(OffEvidence::Manual { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_action_in_a_row_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .with_conn(|c| {
                c.execute(
                    "INSERT INTO fence_outcomes (node, action, started_unix_ms, duration_us, level)
                     VALUES ('n', 'explode', 0, 0, 1)",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        let e = store.history(None).await.unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
    }
}
