//! The cluster's status, like `crm_mon`: quorum, nodes and what runs on them, blocked
//! instances and why, the last pass, the commit in force. Built from the reconciler's
//! journal, so the same view comes from a running server or from a state directory.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::observed::{InstanceState, NodeState, Observed, Suspended};
use crate::reconcile::store::{PassOutcome, PassRecord, StepOutcome};

/// What `quorate status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The commit in force.
    pub commit: String,
    /// Quorum at the last pass (`present`, `expected`, `quorate`).
    pub quorum: Option<serde_json::Value>,
    /// Nodes and their instances.
    pub nodes: Vec<NodeView>,
    /// Instances left as they are, with the reason.
    pub blocked: Vec<BlockedView>,
    /// The last pass.
    pub last_pass: Option<PassView>,
    /// Commits that were refused, newest first: one page of at most [`REJECTED_PAGE`].
    pub rejected: Vec<RejectedView>,
    /// Refused commits kept in all (every page).
    #[serde(default)]
    pub rejected_total: u64,
    /// The page of refused commits shown (from 1).
    #[serde(default = "first_page")]
    pub rejected_page: u64,
    /// Why the followed branch cannot be read now (deleted, unreachable); the commit in
    /// force stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_problem: Option<String>,
    /// HA mode: the replica that answered, its role, the leader and every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::ha::HaView>,
    /// What is suspended (`quorate suspend`): the cluster and the bundles left alone.
    #[serde(default, skip_serializing_if = "Suspended::is_empty")]
    pub suspended: Suspended,
}

/// Findings shown for people under each refused commit.
const SHOWN_PROBLEMS: usize = 5;

/// Refused commits per page of the status (`/status?page=N`, `quorate status --page N`).
pub const REJECTED_PAGE: usize = 10;

fn first_page() -> u64 {
    1
}

/// A node in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Name.
    pub name: String,
    /// `online`, `lost` or `fenced`.
    pub state: String,
    /// Since when (Unix s).
    pub since: Option<u64>,
    /// `<bundle>-<i>` with its state (`running`, `failed`, `stopped`).
    pub instances: Vec<(String, String)>,
    /// The roles of instances of promotable bundles that reported one: `promoted` or
    /// `unpromoted`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
}

/// A blocked instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedView {
    /// `<bundle>-<i>`.
    pub instance: String,
    /// Why.
    pub reason: String,
}

/// The last pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassView {
    /// Journal id.
    pub id: u64,
    /// When it ended (Unix ms).
    pub finished_unix_ms: i64,
    /// What started it.
    pub trigger: String,
    /// What came of it.
    pub outcome: PassOutcome,
    /// Its particulars.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Changes it planned.
    pub changes: u64,
    /// Steps that failed, with why.
    pub failures: Vec<String>,
}

/// A refused commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedView {
    /// Commit id.
    pub commit: String,
    /// When it was seen (Unix ms).
    pub at_unix_ms: i64,
    /// Its first diagnostics (`file:line:col: code: message`).
    pub problems: Vec<String>,
    /// How many more diagnostics it had (not kept).
    #[serde(default)]
    pub omitted: u64,
}

impl From<&crate::state::RejectedCommit> for RejectedView {
    fn from(r: &crate::state::RejectedCommit) -> RejectedView {
        RejectedView {
            commit: r.commit.id.clone(),
            at_unix_ms: r.at_unix_ms,
            problems: r.problems(),
            omitted: r.omitted,
        }
    }
}

/// `Suspended: the cluster (why) since …` and each bundle suspended, for people.
fn human_suspended(s: &Suspended, out: &mut String) {
    let line = |what: String, x: &crate::observed::Suspension| {
        let why = x
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!(
            "{what}{why} since {}",
            crate::fence::format_unix_ms(x.at_unix_ms)
        )
    };
    if let Some(c) = &s.cluster {
        let what = "the whole cluster: nothing is started, stopped, moved or fenced".to_owned();
        let _ = writeln!(out, "Suspended: {}", line(what, c));
    }
    for (bundle, b) in &s.bundles {
        let _ = writeln!(out, "Suspended: bundle {}", line(bundle.clone(), b));
    }
}

impl NodeView {
    /// Every node of `observed`, in name order.
    pub fn all(observed: &Observed) -> Vec<NodeView> {
        observed
            .nodes
            .iter()
            .map(|(name, n)| NodeView {
                name: name.to_string(),
                state: match n.state {
                    NodeState::Online => "online",
                    NodeState::Lost => "lost",
                    NodeState::Fenced => "fenced",
                }
                .to_owned(),
                since: n.since,
                instances: n
                    .instances
                    .iter()
                    .map(|i| {
                        let s = match i.state {
                            InstanceState::Running => "running",
                            InstanceState::Failed => "failed",
                            InstanceState::Stopped => "stopped",
                        };
                        (i.name(), s.to_owned())
                    })
                    .collect(),
                roles: n
                    .instances
                    .iter()
                    .filter_map(|i| {
                        let r = i.role.as_ref()?;
                        let role = if r.promoted { "promoted" } else { "unpromoted" };
                        Some((i.name(), role.to_owned()))
                    })
                    .collect(),
            })
            .collect()
    }
}

impl StatusView {
    /// The view of the last pass in `record`.
    pub fn from_pass(commit: &str, record: Option<&PassRecord>) -> StatusView {
        let mut view = StatusView {
            commit: commit.to_owned(),
            rejected_page: 1,
            ..StatusView::default()
        };
        let Some(r) = record else { return view };
        if let Ok(observed) = serde_json::from_value::<Observed>(r.observed.clone()) {
            view.nodes = NodeView::all(&observed);
            view.suspended = observed.suspended;
        }
        view.quorum = r.plan.get("quorum").cloned();
        view.blocked = r
            .plan
            .get("blocked")
            .and_then(|b| serde_json::from_value::<Vec<BlockedView>>(b.clone()).ok())
            .unwrap_or_default();
        view.last_pass = Some(PassView {
            id: r.id,
            finished_unix_ms: r.finished_unix_ms,
            trigger: r.trigger.clone(),
            outcome: r.outcome,
            detail: r.detail.clone(),
            changes: r
                .plan
                .get("changes")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            failures: r
                .results
                .iter()
                .filter(|s| s.result == StepOutcome::Failed)
                .map(|s| format!("{}: {}", s.what, s.detail))
                .collect(),
        });
        view
    }

    /// Shows page `page` (from 1) of `all` refused commits (newest first).
    pub fn with_rejected_page(mut self, all: &[RejectedView], page: u64) -> StatusView {
        let start = usize::try_from(page.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .saturating_mul(REJECTED_PAGE);
        self.rejected = all
            .iter()
            .skip(start)
            .take(REJECTED_PAGE)
            .cloned()
            .collect();
        self.rejected_total = all.len() as u64;
        self.rejected_page = page;
        self
    }

    /// The number of pages of refused commits.
    pub fn rejected_pages(&self) -> u64 {
        self.rejected_total.div_ceil(REJECTED_PAGE as u64)
    }

    /// The view for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Commit in force: {}",
            if self.commit.is_empty() {
                "(none yet)"
            } else {
                &self.commit
            }
        );
        if let Some(problem) = &self.source_problem {
            let _ = writeln!(out, "Source: ERROR {problem} (the commit in force stays)");
        }
        if let Some(ha) = &self.ha {
            human_ha(ha, &mut out);
        }
        human_quorum(self.quorum.as_ref(), &mut out);
        human_suspended(&self.suspended, &mut out);
        human_nodes(&self.nodes, &mut out);
        if !self.blocked.is_empty() {
            let _ = writeln!(out, "\nBlocked ({}):", self.blocked.len());
            for b in &self.blocked {
                let _ = writeln!(out, "  {}: {}", b.instance, b.reason);
            }
        }
        if let Some(p) = &self.last_pass {
            human_pass(p, &mut out);
        }
        self.human_rejected(&mut out);
        out
    }

    /// The refused commits of this page, the first findings of each.
    fn human_rejected(&self, out: &mut String) {
        if self.rejected_total == 0 && self.rejected.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nRejected commits ({} kept, page {} of {}):",
            self.rejected_total,
            self.rejected_page,
            self.rejected_pages().max(1)
        );
        for r in &self.rejected {
            let _ = writeln!(
                out,
                "  {} at {}",
                crate::reconcile::short(&r.commit),
                crate::fence::format_unix_ms(r.at_unix_ms)
            );
            for p in r.problems.iter().take(SHOWN_PROBLEMS) {
                let _ = writeln!(out, "      {p}");
            }
            let more = (r.problems.len().saturating_sub(SHOWN_PROBLEMS) as u64) + r.omitted;
            if more > 0 {
                let _ = writeln!(
                    out,
                    "      ... and {more} more finding(s); `quorate validate` on the commit lists them all"
                );
            }
        }
    }
}

/// The HA lines of the status: who answered, the leader, every replica.
/// The votes present and expected, and whether they are a quorum.
fn human_quorum(quorum: Option<&serde_json::Value>, out: &mut String) {
    let Some(q) = quorum else {
        out.push_str("Quorum: unknown (no pass has planned yet)\n");
        return;
    };
    let quorate = q
        .get("quorate")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let _ = writeln!(
        out,
        "Quorum: {} of {} votes, {}",
        q.get("present").unwrap_or(&serde_json::Value::Null),
        q.get("expected").unwrap_or(&serde_json::Value::Null),
        if quorate { "quorate" } else { "NOT quorate" }
    );
}

/// Every node's state, since when, and its instances with their roles.
fn human_nodes(nodes: &[NodeView], out: &mut String) {
    out.push_str("\nNodes:\n");
    for n in nodes {
        let since = n
            .since
            .map(|s| {
                format!(
                    " since {}",
                    crate::fence::format_unix_ms(i64::try_from(s).unwrap_or(0) * 1000)
                )
            })
            .unwrap_or_default();
        let _ = writeln!(out, "  {} {}{since}", n.name, n.state);
        for (i, s) in &n.instances {
            let role = n
                .roles
                .get(i)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let _ = writeln!(out, "      {i} {s}{role}");
        }
    }
}

/// The last pass: when, why, its outcome and its failures.
fn human_pass(p: &PassView, out: &mut String) {
    let detail = if p.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", p.detail)
    };
    let _ = writeln!(
        out,
        "\nLast pass #{} at {} ({}): {}{detail}, {} change(s)",
        p.id,
        crate::fence::format_unix_ms(p.finished_unix_ms),
        p.trigger,
        p.outcome,
        p.changes
    );
    for f in &p.failures {
        let _ = writeln!(out, "  ! {f}");
    }
}

fn human_ha(ha: &crate::ha::HaView, out: &mut String) {
    let leader = ha.leader.as_deref().unwrap_or("(none)");
    let _ = writeln!(
        out,
        "Replica: {} ({}), leader: {leader}",
        ha.name,
        ha.role.as_str()
    );
    if let Some(p) = &ha.problem {
        let _ = writeln!(out, "  nothing is done from this replica: {p}");
    }
    for r in &ha.replicas {
        let _ = writeln!(out, "  replica {} {}", r.name, r.role.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_for_people_says_quorum_nodes_roles_blocked_and_the_last_pass() {
        let view = StatusView {
            commit: "abc123".into(),
            quorum: Some(serde_json::json!({"present": 2, "expected": 3, "quorate": true})),
            nodes: vec![NodeView {
                name: "n1".into(),
                state: "online".into(),
                since: Some(60),
                instances: vec![("kv-0".into(), "running".into())],
                roles: [("kv-0".to_owned(), "promoted".to_owned())].into(),
            }],
            blocked: vec![BlockedView {
                instance: "db-0".into(),
                reason: "n2 is lost and cannot be fenced".into(),
            }],
            last_pass: Some(PassView {
                id: 7,
                finished_unix_ms: 120_000,
                trigger: "timer".into(),
                outcome: PassOutcome::Aborted,
                detail: "a step failed".into(),
                changes: 2,
                failures: vec!["start web-1 on n1: image not found".into()],
            }),
            ..StatusView::default()
        };
        let text = view.human();
        for line in [
            "Commit in force: abc123",
            "Quorum: 2 of 3 votes, quorate",
            "  n1 online since 1970-01-01T00:01:00.000Z",
            "      kv-0 running (promoted)",
            "Blocked (1):",
            "  db-0: n2 is lost and cannot be fenced",
            "Last pass #7 at 1970-01-01T00:02:00.000Z (timer): aborted (a step failed), 2 change(s)",
            "  ! start web-1 on n1: image not found",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        let unknown = StatusView::default().human();
        assert!(
            unknown.contains("Quorum: unknown (no pass has planned yet)"),
            "{unknown}"
        );
    }
}
