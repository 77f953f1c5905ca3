//! The fencing operations the CLI exposes: run an action over a node's topology, confirm a
//! node off by hand, list the history. Each returns something printable.

use std::fmt;

use super::log::{HistoryEntry, ManualConfirmation};
use super::topology::{FenceReport, run_fence};
use super::{Clock, FenceAction, FenceLog, FenceLogError, FencePolicy, NodeTopology};

/// Runs `action` (`off` is the fence proper) over the node's topology, recording every
/// attempt and the outcome in `log`. See [`run_fence`].
pub async fn fence_node(
    topology: &NodeTopology,
    action: FenceAction,
    policy: &FencePolicy,
    clock: &dyn Clock,
    log: &dyn FenceLog,
) -> FenceReport {
    run_fence(topology, action, policy, clock, log).await
}

/// Who is acting: the `--by` value if given, else `$SUDO_USER` (the person behind sudo),
/// else `$USER`, else `unknown`.
pub fn operator_name(by: Option<&str>) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    by.map(str::to_string)
        .filter(|v| !v.trim().is_empty())
        .or_else(|| env("SUDO_USER"))
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "unknown".into())
}

/// Records that an operator checked `node` by hand and declares it off. From then on the
/// planner treats the node as fenced, until an `on` or `reboot` is recorded for it.
///
/// Safety (invariant 3): this is the manual path the invariant allows; it is recorded with
/// who and when, like a fence.
pub async fn confirm_off(
    log: &dyn FenceLog,
    clock: &dyn Clock,
    node: &str,
    by: Option<&str>,
    note: Option<&str>,
) -> Result<ManualConfirmation, FenceLogError> {
    let confirmation = ManualConfirmation {
        node: node.to_string(),
        by: operator_name(by),
        at_unix_ms: clock.now_unix_ms(),
        note: note.map(str::to_string),
    };
    tracing::warn!(node, by = %confirmation.by, "node confirmed off by hand");
    log.record_manual(&confirmation).await?;
    Ok(confirmation)
}

/// The fencing history, printable one entry per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History(pub Vec<HistoryEntry>);

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no fencing recorded");
        }
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The history of one node, or of all nodes, oldest first.
pub async fn history(log: &dyn FenceLog, node: Option<&str>) -> Result<History, FenceLogError> {
    Ok(History(log.history(node).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::MemoryFenceLog;
    use crate::fence::log::OffEvidence;

    struct FixedClock(i64);
    impl Clock for FixedClock {
        fn now_unix_ms(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn by_flag_wins() {
        assert_eq!(operator_name(Some("carol")), "carol");
        assert!(!operator_name(None).is_empty());
    }

    #[tokio::test]
    async fn manual_confirmation_is_recorded_and_counts() {
        let log = MemoryFenceLog::new();
        let c = confirm_off(&log, &FixedClock(42), "n2", Some("dave"), Some("unplugged"))
            .await
            .unwrap();
        assert_eq!(c.by, "dave");
        assert_eq!(
            log.off_evidence("n2").await.unwrap(),
            Some(OffEvidence::Manual {
                by: "dave".into(),
                at_unix_ms: 42
            })
        );
        let h = history(&log, Some("n2")).await.unwrap().to_string();
        assert!(
            h.contains("confirmed off by hand by dave: unplugged"),
            "{h}"
        );
    }
}
