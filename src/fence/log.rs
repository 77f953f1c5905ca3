//! What fencing records: every attempt on a device, the outcome of each fence run, and
//! manual confirmations; and the [`FenceLog`] trait a durable store implements.
//!
//! The planner reads [`FenceLog::off_evidence`] to decide whether a silent node counts as
//! fenced (design invariant 3).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{FenceAction, PowerState};

/// Why an attempt failed: the [`FenceError`](super::FenceError) kind and message (which
/// never contain credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The error kind, e.g. `auth`, `timeout`, `not-confirmed`.
    pub kind: String,
    /// The error message.
    pub cause: String,
}

/// One try of one action on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceAttempt {
    /// The node being fenced.
    pub node: String,
    /// The fence device name.
    pub device: String,
    /// The topology level of the device.
    pub level: u32,
    /// What was asked.
    pub action: FenceAction,
    /// 1 for the first try, counting up through retries.
    pub try_number: u32,
    /// When the try started (Unix ms, from the injected clock).
    pub started_unix_ms: i64,
    /// How long it took.
    pub duration: Duration,
    /// The state the device confirmed, or why not.
    pub result: Result<PowerState, AttemptFailure>,
}

/// The outcome of one fence run over a node's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceOutcome {
    /// The node.
    pub node: String,
    /// What was asked.
    pub action: FenceAction,
    /// When the run started (Unix ms).
    pub started_unix_ms: i64,
    /// How long the whole run took.
    pub duration: Duration,
    /// The level whose devices all confirmed, or why no level did.
    pub result: Result<u32, String>,
}

impl std::fmt::Display for FenceAttempt {
    /// One line: `level 1 bmc-a try 2 (1.20s): off`, or the failure with its kind.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "level {} {} try {} ({:.2?}): ",
            self.level, self.device, self.try_number, self.duration
        )?;
        match &self.result {
            Ok(state) => write!(f, "{state}"),
            Err(e) => write!(f, "failed [{}] {}", e.kind, e.cause),
        }
    }
}

/// An operator's declaration that a node is off, made after checking it by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualConfirmation {
    /// The node declared off.
    pub node: String,
    /// Who declared it.
    pub by: String,
    /// When (Unix ms).
    pub at_unix_ms: i64,
    /// What the operator wrote.
    pub note: Option<String>,
}

/// One entry of the fencing history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryEntry {
    /// A device attempt.
    Attempt(FenceAttempt),
    /// A run's outcome.
    Outcome(FenceOutcome),
    /// A manual confirmation.
    Manual(ManualConfirmation),
}

impl HistoryEntry {
    /// The node the entry is about.
    pub fn node(&self) -> &str {
        match self {
            HistoryEntry::Attempt(a) => &a.node,
            HistoryEntry::Outcome(o) => &o.node,
            HistoryEntry::Manual(m) => &m.node,
        }
    }

    /// When the entry happened: an attempt when it started, an outcome when the run ended.
    pub fn at_unix_ms(&self) -> i64 {
        match self {
            HistoryEntry::Attempt(a) => a.started_unix_ms,
            HistoryEntry::Outcome(o) => o.started_unix_ms + millis(o.duration),
            HistoryEntry::Manual(m) => m.at_unix_ms,
        }
    }
}

/// Duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for HistoryEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = super::clock::format_unix_ms(self.at_unix_ms());
        match self {
            HistoryEntry::Attempt(a) => {
                write!(
                    f,
                    "{at} {} attempt {} level {} device {} try {} ({:.2?}): ",
                    a.node, a.action, a.level, a.device, a.try_number, a.duration
                )?;
                match &a.result {
                    Ok(state) => write!(f, "confirmed {state}"),
                    Err(e) => write!(f, "failed [{}] {}", e.kind, e.cause),
                }
            }
            HistoryEntry::Outcome(o) => {
                write!(
                    f,
                    "{at} {} fence {} ({:.2?}): ",
                    o.node, o.action, o.duration
                )?;
                match &o.result {
                    Ok(level) => write!(f, "succeeded at level {level}"),
                    Err(cause) => write!(f, "FAILED: {cause}"),
                }
            }
            HistoryEntry::Manual(m) => {
                write!(f, "{at} {} confirmed off by hand by {}", m.node, m.by)?;
                match &m.note {
                    Some(note) => write!(f, ": {note}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why a node counts as off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffEvidence {
    /// A fence run confirmed it off through every device of `level`.
    Fenced {
        /// The level that succeeded.
        level: u32,
        /// When the run ended (Unix ms).
        at_unix_ms: i64,
    },
    /// An operator declared it off.
    Manual {
        /// Who.
        by: String,
        /// When (Unix ms).
        at_unix_ms: i64,
    },
}

/// Reads a node's history (oldest first) for the latest evidence that it is off. Any later
/// `on` or `reboot`, even a failed one (it may have powered the node), voids the evidence:
/// the node may run again (design invariant 3).
pub fn off_evidence(history: &[HistoryEntry]) -> Option<OffEvidence> {
    let mut evidence = None;
    for entry in history {
        match entry {
            HistoryEntry::Outcome(o) if o.action == FenceAction::Off => {
                if let Ok(level) = o.result {
                    evidence = Some(OffEvidence::Fenced {
                        level,
                        at_unix_ms: entry.at_unix_ms(),
                    });
                }
            }
            HistoryEntry::Outcome(FenceOutcome { action, .. })
            | HistoryEntry::Attempt(FenceAttempt { action, .. })
                if matches!(action, FenceAction::On | FenceAction::Reboot) =>
            {
                evidence = None;
            }
            HistoryEntry::Manual(m) => {
                evidence = Some(OffEvidence::Manual {
                    by: m.by.clone(),
                    at_unix_ms: m.at_unix_ms,
                });
            }
            _ => {}
        }
    }
    evidence
}

/// A failure to record or read the fencing history.
#[derive(Debug, thiserror::Error)]
#[error("fence log: {0}")]
pub struct FenceLogError(#[from] pub Box<dyn std::error::Error + Send + Sync>);

/// Where fencing is recorded. The durable implementation is
/// [`StateStore`](crate::state::StateStore); [`MemoryFenceLog`] serves tests and simulation.
#[async_trait]
pub trait FenceLog: Send + Sync {
    /// Appends a device attempt.
    async fn record_attempt(&self, attempt: &FenceAttempt) -> Result<(), FenceLogError>;

    /// Appends the outcome of a fence run.
    async fn record_outcome(&self, outcome: &FenceOutcome) -> Result<(), FenceLogError>;

    /// Appends a manual confirmation.
    async fn record_manual(&self, confirmation: &ManualConfirmation) -> Result<(), FenceLogError>;

    /// The history, oldest first, of one node or of all nodes.
    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError>;

    /// The latest evidence that `node` is off, if it still holds (see [`off_evidence`]).
    async fn off_evidence(&self, node: &str) -> Result<Option<OffEvidence>, FenceLogError> {
        Ok(off_evidence(&self.history(Some(node)).await?))
    }
}

/// A fence log in memory, in insertion order.
#[derive(Debug, Default)]
pub struct MemoryFenceLog {
    entries: Mutex<Vec<HistoryEntry>>,
}

impl MemoryFenceLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, entry: HistoryEntry) -> Result<(), FenceLogError> {
        self.entries
            .lock()
            .map_err(|_| FenceLogError("memory log lock poisoned".into()))?
            .push(entry);
        Ok(())
    }
}

#[async_trait]
impl FenceLog for MemoryFenceLog {
    async fn record_attempt(&self, attempt: &FenceAttempt) -> Result<(), FenceLogError> {
        self.push(HistoryEntry::Attempt(attempt.clone()))
    }

    async fn record_outcome(&self, outcome: &FenceOutcome) -> Result<(), FenceLogError> {
        self.push(HistoryEntry::Outcome(outcome.clone()))
    }

    async fn record_manual(&self, confirmation: &ManualConfirmation) -> Result<(), FenceLogError> {
        self.push(HistoryEntry::Manual(confirmation.clone()))
    }

    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError> {
        let entries = self
            .entries
            .lock()
            .map_err(|_| FenceLogError("memory log lock poisoned".into()))?;
        Ok(entries
            .iter()
            .filter(|e| node.is_none_or(|n| e.node() == n))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(action: FenceAction, result: Result<u32, String>, at: i64) -> HistoryEntry {
        HistoryEntry::Outcome(FenceOutcome {
            node: "n1".into(),
            action,
            started_unix_ms: at,
            duration: Duration::from_millis(10),
            result,
        })
    }

    fn manual(at: i64) -> HistoryEntry {
        HistoryEntry::Manual(ManualConfirmation {
            node: "n1".into(),
            by: "alice".into(),
            at_unix_ms: at,
            note: None,
        })
    }

    #[test]
    fn successful_off_is_evidence() {
        let h = [outcome(FenceAction::Off, Ok(2), 100)];
        assert_eq!(
            off_evidence(&h),
            Some(OffEvidence::Fenced {
                level: 2,
                at_unix_ms: 110
            })
        );
    }

    #[test]
    fn failed_off_is_not_evidence() {
        let h = [outcome(FenceAction::Off, Err("x".into()), 100)];
        assert_eq!(off_evidence(&h), None);
    }

    #[test]
    fn later_on_voids_evidence_even_when_it_failed() {
        let h = [
            manual(50),
            outcome(FenceAction::Off, Ok(1), 100),
            outcome(FenceAction::On, Err("timeout".into()), 200),
        ];
        assert_eq!(off_evidence(&h), None);
    }

    #[test]
    fn manual_after_on_counts() {
        let h = [outcome(FenceAction::On, Ok(1), 100), manual(300)];
        assert!(matches!(
            off_evidence(&h),
            Some(OffEvidence::Manual {
                at_unix_ms: 300,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn memory_log_filters_by_node() {
        let log = MemoryFenceLog::new();
        log.record_manual(&ManualConfirmation {
            node: "a".into(),
            by: "bob".into(),
            at_unix_ms: 1,
            note: Some("pulled the plug".into()),
        })
        .await
        .unwrap();
        log.record_manual(&ManualConfirmation {
            node: "b".into(),
            by: "bob".into(),
            at_unix_ms: 2,
            note: None,
        })
        .await
        .unwrap();
        assert_eq!(log.history(Some("a")).await.unwrap().len(), 1);
        assert_eq!(log.history(None).await.unwrap().len(), 2);
        assert!(log.off_evidence("b").await.unwrap().is_some());
        assert!(log.off_evidence("c").await.unwrap().is_none());
    }
}
