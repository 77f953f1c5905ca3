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
use crate::observed::{Failures, ObservedInstance};

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
    /// `converged`, `acted`, `aborted`, `waiting` (membership not settled) or `failed`.
    pub outcome: String,
    /// The observed state the pass planned from (JSON of [`crate::observed::Observed`]).
    pub observed: serde_json::Value,
    /// The plan (JSON of [`crate::plan::Plan`], without steps).
    pub plan: serde_json::Value,
    /// What each step did: `(step, action, result)`.
    pub results: Vec<StepResult>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// Step id (`s3`).
    pub step: String,
    /// What it was (`start db-0 on worker2`).
    pub what: String,
    /// `ok`, `failed: <why>` or `skipped: <why>`.
    pub result: String,
    /// How long it took (ms).
    pub millis: u64,
}

/// The reconciler's durable state.
#[async_trait]
pub trait Store: FenceLog {
    /// What may run on each node: its last listing plus every instance started there
    /// since (written before the start, so a crash never hides one). `None` for a node
    /// never listed.
    async fn contents(&self, node: &str) -> Result<Option<Vec<ObservedInstance>>, FenceLogError>;
    /// Replaces a node's contents with what a listing found.
    async fn set_contents(
        &self,
        node: &str,
        instances: &[ObservedInstance],
    ) -> Result<(), FenceLogError>;
    /// Adds an instance about to be started on `node` (write-ahead, invariant 1).
    async fn add_content(
        &self,
        node: &str,
        instance: &ObservedInstance,
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
}

/// An in-memory [`Store`] for simulations and tests.
#[derive(Default)]
pub struct MemoryStore {
    fence: MemoryFenceLog,
    contents: Mutex<BTreeMap<String, Vec<ObservedInstance>>>,
    failures: Mutex<BTreeMap<(String, String), Failures>>,
    passes: Mutex<Vec<PassRecord>>,
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
    async fn contents(&self, node: &str) -> Result<Option<Vec<ObservedInstance>>, FenceLogError> {
        Ok(self
            .contents
            .lock()
            .map_err(|_| poisoned())?
            .get(node)
            .cloned())
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

    async fn add_content(
        &self,
        node: &str,
        instance: &ObservedInstance,
    ) -> Result<(), FenceLogError> {
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
}
