//! What happened, newest first: the passes of the journal with their plans and step
//! results, the fence history, the commits put in force and those refused with their
//! findings. `quorate history` shows it from a state directory or from a server's
//! `GET /history`; the web page shows the same document. Nothing in it is a secret: the
//! journal, the fence log and the stored findings never hold one (design invariant 7).

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::fence::format_unix_ms;
use crate::ha::store::Commits;
use crate::reconcile::store::PassRecord;
use crate::state::AppliedCommit;
use crate::status::RejectedView;

/// The most entries of each kind one history shows.
pub const MAX_LIMIT: usize = 100;

/// What `quorate history` and `GET /history` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    /// The last passes, newest first: trigger, outcome, the plan (without the observed
    /// state) and each step's result.
    pub passes: Vec<PassEntry>,
    /// Fence attempts, outcomes and manual confirmations, newest first (as
    /// `quorate fence history --format json` writes each).
    pub fences: Vec<serde_json::Value>,
    /// Commits put in force, newest first.
    pub applied: Vec<AppliedCommit>,
    /// Commits refused, newest first, with their first findings.
    pub rejected: Vec<RejectedView>,
}

/// One pass of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassEntry {
    /// The pass as recorded, less what it observed.
    #[serde(flatten)]
    pub record: PassRecord,
}

impl HistoryView {
    /// The last `limit` (at most [`MAX_LIMIT`]) entries of each kind in `store` (the
    /// state directory's database, or etcd in HA mode).
    pub async fn from_store(store: &dyn Commits, limit: usize) -> Result<HistoryView, String> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let passes = store.passes(limit).await.map_err(|e| e.to_string())?;
        let mut fences = crate::fence::FenceLog::history(store, None)
            .await
            .map_err(|e| e.to_string())?;
        fences.reverse();
        fences.truncate(limit);
        Ok(HistoryView {
            passes: passes
                .into_iter()
                .map(|mut record| {
                    record.observed = serde_json::Value::Null;
                    PassEntry { record }
                })
                .collect(),
            fences: fences.iter().map(crate::cli::fence_entry_json).collect(),
            applied: store.applied_history(limit).await?,
            rejected: store
                .rejected(limit)
                .await?
                .iter()
                .map(RejectedView::from)
                .collect(),
        })
    }

    /// The history for people.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Passes (newest first):");
        if self.passes.is_empty() {
            let _ = writeln!(out, "  none recorded");
        }
        for p in &self.passes {
            let r = &p.record;
            let _ = write!(
                out,
                "  #{} {} {} ({}) commit {}",
                r.id,
                format_unix_ms(r.finished_unix_ms),
                r.outcome,
                clean(&r.trigger),
                clean(crate::reconcile::short(&r.commit))
            );
            if !r.detail.is_empty() {
                let _ = write!(out, ": {}", clean(&r.detail));
            }
            out.push('\n');
            for s in &r.results {
                let _ = writeln!(
                    out,
                    "      {} {:<40} {}",
                    s.step,
                    clean(&s.what),
                    clean(&s.to_string())
                );
            }
        }
        let _ = writeln!(out, "Fence events (newest first):");
        if self.fences.is_empty() {
            let _ = writeln!(out, "  none recorded");
        }
        for f in &self.fences {
            let _ = writeln!(out, "  {}", clean(&fence_line(f)));
        }
        let _ = writeln!(out, "Commits put in force (newest first):");
        for a in &self.applied {
            let _ = writeln!(
                out,
                "  {} {} {}",
                format_unix_ms(a.at_unix_ms),
                clean(crate::reconcile::short(&a.commit.id)),
                clean(&a.commit.summary)
            );
        }
        let _ = writeln!(out, "Commits refused (newest first):");
        for r in &self.rejected {
            let _ = writeln!(
                out,
                "  {} {}: {} problem(s)",
                format_unix_ms(r.at_unix_ms),
                clean(crate::reconcile::short(&r.commit)),
                r.problems.len() as u64 + r.omitted
            );
            for p in &r.problems {
                let _ = writeln!(out, "      {}", clean(p));
            }
        }
        out
    }
}

/// `s` with control characters and bidirectional overrides escaped: a commit's summary
/// or a finding comes from whoever pushed, and must not drive the operator's terminal.
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    crate::diag::render::printable(s)
}

/// One fence event of the JSON form as a line.
fn fence_line(f: &serde_json::Value) -> String {
    let s = |k: &str| f.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
    let what = match s("type") {
        "attempt" => format!(
            "attempt {} via {}: {}",
            s("action"),
            s("device"),
            if f.get("error").is_some_and(|e| !e.is_null()) {
                format!("failed: {}", s("error"))
            } else {
                format!("confirmed {}", s("powerState"))
            }
        ),
        "outcome" => match f.get("succeeded").and_then(serde_json::Value::as_bool) {
            Some(true) => format!("fence {} succeeded", s("action")),
            _ => format!("fence {} FAILED: {}", s("action"), s("error")),
        },
        "manual" => format!("confirmed off by hand by {}", s("by")),
        other => other.to_owned(),
    };
    format!("{} {} {what}", s("at"), s("node"))
}
