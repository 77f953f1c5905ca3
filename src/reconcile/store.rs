//! What the reconciler keeps across restarts: fencing history (through [`FenceLog`]),
//! fail counts, clashing containers, and a journal of every pass.
//!
//! [`crate::state::StateStore`] keeps it in SQLite; [`MemoryStore`] keeps it in memory for
//! simulations, where "durable" means "survives a simulated crash of the reconciler".

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::fence::{FenceLog, FenceLogError, MemoryFenceLog};
pub use crate::observed::assemble::Remembered;
use crate::observed::{Failures, MAX_SUSPENDED_BUNDLES, ObservedInstance, Suspended, Suspension};

/// One reconcile pass, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassRecord {
    /// Sequence number (1, 2, ...), unique per store.
    pub id: u64,
    /// When it started (Unix ms).
    pub started_unix_ms: i64,
    /// When it ended (Unix ms).
    pub finished_unix_ms: i64,
    /// The commit in force.
    pub commit: String,
    /// What started it.
    pub trigger: String,
    /// What came of it.
    pub outcome: PassOutcome,
    /// The outcome's particulars (`2 blocked`, `worker1 not answering`, a store error).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The observed state the pass planned from (JSON of [`crate::observed::Observed`]).
    pub observed: serde_json::Value,
    /// The plan (JSON of [`crate::plan::Plan`], without steps).
    pub plan: serde_json::Value,
    /// What each step did: `(step, action, result)`.
    pub results: Vec<StepResult>,
}

/// What came of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PassOutcome {
    /// Nothing to do: the cluster is as the spec says.
    Converged,
    /// Nothing to do now, but some instances wait (the plan says why).
    Blocked,
    /// Steps were carried out; another pass follows.
    Acted,
    /// A step failed: the transition was cut short; the next pass starts afresh.
    Aborted,
    /// A node is suspect (silent, not yet lost): nothing was decided.
    Waiting,
    /// The store could not be read or written: nothing was done (invariant 1 depends
    /// on those records).
    StoreFailed,
}

impl PassOutcome {
    /// The word for it (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            PassOutcome::Converged => "converged",
            PassOutcome::Blocked => "blocked",
            PassOutcome::Acted => "acted",
            PassOutcome::Aborted => "aborted",
            PassOutcome::Waiting => "waiting",
            PassOutcome::StoreFailed => "storeFailed",
        }
    }
}

impl std::fmt::Display for PassOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// Power a node off.
    Fence,
    /// Stop and remove a container.
    Stop,
    /// Create and start a container.
    Start,
    /// Promote an instance of a promotable bundle.
    Promote,
    /// Demote an instance of a promotable bundle (or tell it whom to follow).
    Demote,
}

/// What came of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepOutcome {
    /// It did what it was asked.
    Ok,
    /// It failed: the transition was aborted.
    Failed,
    /// It never ran: an earlier step of the transition failed.
    Skipped,
}

impl StepKind {
    /// The word for it (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Fence => "fence",
            StepKind::Stop => "stop",
            StepKind::Start => "start",
            StepKind::Promote => "promote",
            StepKind::Demote => "demote",
        }
    }
}

impl StepOutcome {
    /// The word for it (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Step id (`s3`).
    pub step: String,
    /// Its kind.
    pub kind: StepKind,
    /// What it was (`start db-0 on worker2`).
    pub what: String,
    /// What came of it.
    pub result: StepOutcome,
    /// The particulars: what a step reported, why it failed or was skipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// How long it took (ms).
    pub millis: u64,
}

impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.result.as_str())?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The reconciler's durable state.
#[async_trait]
pub trait Store: FenceLog {
    /// What the store remembers of `node`.
    async fn remembered(&self, node: &str) -> Result<Remembered, FenceLogError>;
    /// Replaces a node's contents with what a listing found.
    async fn set_contents(
        &self,
        node: &str,
        instances: &[ObservedInstance],
    ) -> Result<(), FenceLogError>;
    /// Records that `node` answered at `at_unix_ms` (a later time is kept, an earlier one
    /// ignored): fence evidence older than this no longer proves the node off.
    async fn mark_seen(&self, node: &str, at_unix_ms: i64) -> Result<(), FenceLogError>;
    /// Write-ahead of a start (invariant 1), in one durable write: `instance` may run on
    /// `node` from now on, and the node is up at `at_unix_ms` (so no fence record from
    /// before the start can later pass for proof that the instance is gone).
    async fn intend_start(
        &self,
        node: &str,
        instance: &ObservedInstance,
        at_unix_ms: i64,
    ) -> Result<(), FenceLogError>;
    /// Fail counts per node and instance name.
    async fn failures(&self) -> Result<BTreeMap<(String, String), Failures>, FenceLogError>;
    /// Counts one failure of `instance` on `node` at `at` (Unix seconds).
    async fn record_failure(
        &self,
        node: &str,
        instance: &str,
        at: u64,
    ) -> Result<(), FenceLogError>;
    /// Appends a pass to the journal, giving it the next id; returns the id.
    async fn record_pass(&self, pass: &PassRecord) -> Result<u64, FenceLogError>;
    /// The last `limit` passes, newest first.
    async fn passes(&self, limit: usize) -> Result<Vec<PassRecord>, FenceLogError>;
    /// Records that a pass planned from `commit` at `at_unix_ms`, which completes its
    /// adoption (invariant 10: a restart rejects the last commit adopted if no pass
    /// planned from it). Written before the plan is carried out.
    async fn record_planned(&self, commit: &str, at_unix_ms: i64) -> Result<(), FenceLogError>;
    /// Forgets the fail counts of `instance` on `node`, or on every node (`quorate
    /// cleanup`, Pacemaker's `pcs resource cleanup`); returns how many nodes had some.
    async fn clear_failures(
        &self,
        instance: &str,
        node: Option<&str>,
    ) -> Result<u32, FenceLogError>;
    /// What is suspended (`quorate suspend`): the cluster and the bundles, with when and
    /// why.
    async fn suspended(&self) -> Result<Suspended, FenceLogError>;
    /// Suspends (`Some`) or resumes (`None`) `bundle`, or the whole cluster when `bundle`
    /// is `None`; returns the suspension it replaces or ends. Every store keeps the reason
    /// within [`MAX_SUSPEND_REASON`](crate::observed::MAX_SUSPEND_REASON) bytes and refuses
    /// a bundle past [`MAX_SUSPENDED_BUNDLES`](crate::observed::MAX_SUSPENDED_BUNDLES).
    async fn set_suspended(
        &self,
        bundle: Option<&str>,
        suspension: Option<&Suspension>,
    ) -> Result<Option<Suspension>, FenceLogError>;
}

/// Refuses a new suspended bundle when [`MAX_SUSPENDED_BUNDLES`] are already (the rule
/// every store applies before it adds one): `adds` says whether the write adds one.
pub(crate) fn room_for(suspended_bundles: usize, adds: bool) -> Result<(), FenceLogError> {
    if adds && suspended_bundles >= MAX_SUSPENDED_BUNDLES {
        return Err(FenceLogError(Box::from(format!(
            "{MAX_SUSPENDED_BUNDLES} bundles are suspended already: resume some, or suspend \
             the whole cluster"
        ))));
    }
    Ok(())
}

/// Whether suspending `bundle` with `suspension` adds a bundle to those suspended.
pub(crate) fn adds_bundle(
    now: &Suspended,
    bundle: Option<&str>,
    suspension: Option<&Suspension>,
) -> bool {
    matches!((bundle, suspension), (Some(b), Some(_)) if !now.bundles.contains_key(b))
}

/// An in-memory [`Store`] for simulations and tests.
#[derive(Default)]
pub struct MemoryStore {
    fence: MemoryFenceLog,
    contents: Mutex<BTreeMap<String, Vec<ObservedInstance>>>,
    seen: Mutex<BTreeMap<String, i64>>,
    failures: Mutex<BTreeMap<(String, String), Failures>>,
    passes: Mutex<Vec<PassRecord>>,
    suspended: Mutex<Suspended>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned() -> FenceLogError {
    FenceLogError(Box::from("memory store lock poisoned"))
}

#[async_trait]
impl FenceLog for MemoryStore {
    async fn record_attempt(
        &self,
        a: &crate::fence::log::FenceAttempt,
    ) -> Result<(), FenceLogError> {
        self.fence.record_attempt(a).await
    }
    async fn record_outcome(
        &self,
        o: &crate::fence::log::FenceOutcome,
    ) -> Result<(), FenceLogError> {
        self.fence.record_outcome(o).await
    }
    async fn record_manual(
        &self,
        m: &crate::fence::log::ManualConfirmation,
    ) -> Result<(), FenceLogError> {
        self.fence.record_manual(m).await
    }
    async fn history(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<crate::fence::log::HistoryEntry>, FenceLogError> {
        self.fence.history(node).await
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn remembered(&self, node: &str) -> Result<Remembered, FenceLogError> {
        Ok(Remembered {
            contents: self
                .contents
                .lock()
                .map_err(|_| poisoned())?
                .get(node)
                .cloned(),
            last_seen_unix_ms: self.seen.lock().map_err(|_| poisoned())?.get(node).copied(),
        })
    }

    async fn mark_seen(&self, node: &str, at_unix_ms: i64) -> Result<(), FenceLogError> {
        let mut seen = self.seen.lock().map_err(|_| poisoned())?;
        let at = seen.entry(node.to_owned()).or_insert(at_unix_ms);
        *at = (*at).max(at_unix_ms);
        Ok(())
    }

    async fn set_contents(
        &self,
        node: &str,
        instances: &[ObservedInstance],
    ) -> Result<(), FenceLogError> {
        self.contents
            .lock()
            .map_err(|_| poisoned())?
            .insert(node.to_owned(), instances.to_vec());
        Ok(())
    }

    async fn intend_start(
        &self,
        node: &str,
        instance: &ObservedInstance,
        at_unix_ms: i64,
    ) -> Result<(), FenceLogError> {
        self.mark_seen(node, at_unix_ms).await?;
        let mut c = self.contents.lock().map_err(|_| poisoned())?;
        let list = c.entry(node.to_owned()).or_default();
        list.retain(|i| !(i.bundle == instance.bundle && i.index == instance.index));
        list.push(instance.clone());
        Ok(())
    }

    async fn failures(&self) -> Result<BTreeMap<(String, String), Failures>, FenceLogError> {
        Ok(self.failures.lock().map_err(|_| poisoned())?.clone())
    }

    async fn record_failure(
        &self,
        node: &str,
        instance: &str,
        at: u64,
    ) -> Result<(), FenceLogError> {
        let mut f = self.failures.lock().map_err(|_| poisoned())?;
        let e = f.entry((node.to_owned(), instance.to_owned())).or_default();
        e.count = e.count.saturating_add(1);
        e.last = Some(at);
        Ok(())
    }

    async fn clear_failures(
        &self,
        instance: &str,
        node: Option<&str>,
    ) -> Result<u32, FenceLogError> {
        let mut f = self.failures.lock().map_err(|_| poisoned())?;
        let before = f.len();
        f.retain(|(n, i), _| !(i == instance && node.is_none_or(|want| want == n)));
        Ok(u32::try_from(before - f.len()).unwrap_or(u32::MAX))
    }

    async fn record_pass(&self, pass: &PassRecord) -> Result<u64, FenceLogError> {
        let mut p = self.passes.lock().map_err(|_| poisoned())?;
        let id = p.len() as u64 + 1;
        let mut pass = pass.clone();
        pass.id = id;
        p.push(pass);
        Ok(id)
    }

    async fn passes(&self, limit: usize) -> Result<Vec<PassRecord>, FenceLogError> {
        let p = self.passes.lock().map_err(|_| poisoned())?;
        Ok(p.iter().rev().take(limit).cloned().collect())
    }

    async fn suspended(&self) -> Result<Suspended, FenceLogError> {
        Ok(self.suspended.lock().map_err(|_| poisoned())?.clone())
    }

    async fn set_suspended(
        &self,
        bundle: Option<&str>,
        suspension: Option<&Suspension>,
    ) -> Result<Option<Suspension>, FenceLogError> {
        let mut s = self.suspended.lock().map_err(|_| poisoned())?;
        room_for(s.bundles.len(), adds_bundle(&s, bundle, suspension))?;
        let new = suspension.map(Suspension::bounded);
        Ok(match (bundle, new) {
            (None, new) => std::mem::replace(&mut s.cluster, new),
            (Some(b), Some(new)) => s.bundles.insert(b.to_owned(), new),
            (Some(b), None) => s.bundles.remove(b),
        })
    }

    /// The simulation and the tests keep no commits.
    async fn record_planned(&self, _commit: &str, _at_unix_ms: i64) -> Result<(), FenceLogError> {
        Ok(())
    }
}
