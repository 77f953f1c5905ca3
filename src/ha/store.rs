//! The reconciler's durable state in etcd, under a cluster prefix (HA mode).
//!
//! Keys, below the prefix `P` (`--etcd-prefix`):
//!
//! | Key | Value |
//! |---|---|
//! | `P/leader` | the election key: the leader's name, attached to its lease |
//! | `P/replicas/<name>` | each replica's role, attached to its lease |
//! | `P/nodes/<node>/contents` | what may run on the node (invariant 1) |
//! | `P/nodes/<node>/seen` | when the node last answered (Unix ms) |
//! | `P/failures/<node>/<instance>` | fail counts |
//! | `P/suspended/cluster`, `P/suspended/bundles/<bundle>` | what `quorate suspend` suspended |
//! | `P/fence/<node>/<seq>` | fence attempts, outcomes and manual confirmations |
//! | `P/passes/<id>` | the journal, the last [`KEEP_PASSES`] passes |
//! | `P/commits/applied/<seq>`, `P/commits/rejected/<id>` | the commits |
//!
//! Every value is JSON and at most [`MAX_VALUE`] bytes (etcd refuses requests past 1.5 MiB
//! and its database has a quota). Every write of the reconciler is a transaction that
//! succeeds only while the election key's create revision is the leader's fencing token:
//! a deposed leader's late write fails, whatever its clock says. The operator's commands
//! (`quorate fence confirm`, `quorate state import`) write without the guard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, SortOrder, SortTarget, Txn,
    TxnOp,
};
use serde::{Deserialize, Serialize};

use super::lease::Lease;
use crate::fence::log::{
    AttemptFailure, FenceAttempt, FenceOutcome, HistoryEntry, ManualConfirmation,
};
use crate::fence::{FenceAction, FenceLog, FenceLogError, PowerState};
use crate::observed::{Failures, ObservedInstance, Suspended, Suspension};
use crate::reconcile::store::{PassRecord, Remembered, Store};
use crate::source::git::Commit;
use crate::state::{AppliedCommit, KEEP_REJECTED, RejectedCommit, Resume, STOPPED_WHILE_PLANNING};

/// The largest value written (bytes).
pub const MAX_VALUE: usize = 256 * 1024;
/// Passes kept in the journal.
pub const KEEP_PASSES: u64 = 500;
/// Fence history entries kept per node (the newest; evidence is always the newest).
pub const KEEP_FENCE: usize = 1_000;
/// Applied commits kept.
pub const KEEP_APPLIED: usize = 100;

/// A failure of the etcd store.
#[derive(Debug, thiserror::Error)]
pub enum EtcdStoreError {
    /// etcd did not answer or refused.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// This replica holds no election key: it may not write the shared state.
    #[error("not the leader: only the leader writes the shared state")]
    NotLeader,
    /// The election key is no longer the one this replica created.
    #[error("leadership lost: the election key is no longer ours (fencing token {0})")]
    Fenced(i64),
    /// A value could not be read back.
    #[error("etcd holds an unreadable value at {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value is larger than [`MAX_VALUE`].
    #[error("value for {key} is {size} bytes, more than the {MAX_VALUE} allowed")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size.
        size: usize,
    },
}

impl From<EtcdStoreError> for FenceLogError {
    fn from(e: EtcdStoreError) -> FenceLogError {
        FenceLogError(Box::new(e))
    }
}

type Result<T, E = EtcdStoreError> = std::result::Result<T, E>;

/// Who writes.
#[derive(Clone)]
enum Writer {
    /// The reconciler: guarded by the election key.
    Leader(Arc<Lease>),
    /// An operator's command: unguarded.
    Operator,
}

/// The shared state in etcd. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    writer: Writer,
    seq: Arc<AtomicU32>,
}

impl EtcdStore {
    /// The reconciler's store under `prefix`: its writes need `lease`'s fencing token.
    pub fn leader(client: Client, prefix: &str, lease: Arc<Lease>) -> EtcdStore {
        EtcdStore::with(client, prefix, Writer::Leader(lease))
    }

    /// An operator's store under `prefix` (commands that write state by hand).
    pub fn operator(client: Client, prefix: &str) -> EtcdStore {
        EtcdStore::with(client, prefix, Writer::Operator)
    }

    fn with(client: Client, prefix: &str, writer: Writer) -> EtcdStore {
        EtcdStore {
            client,
            prefix: prefix.trim_end_matches('/').to_owned(),
            writer,
            seq: Arc::new(AtomicU32::new(0)),
        }
    }

    /// `P/<rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }

    /// The election key.
    pub fn leader_key(&self) -> String {
        self.key("leader")
    }

    /// The client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `ops` in one transaction, guarded by the fencing token for the reconciler.
    async fn write(&self, ops: Vec<TxnOp>) -> Result<()> {
        let txn = match &self.writer {
            Writer::Operator => Txn::new().and_then(ops),
            Writer::Leader(lease) => {
                let token = lease.token().ok_or(EtcdStoreError::NotLeader)?;
                let guard = Compare::create_revision(self.leader_key(), CompareOp::Equal, token);
                Txn::new().when([guard]).and_then(ops)
            }
        };
        let resp = self.client.kv_client().txn(txn).await?;
        match (&self.writer, resp.succeeded()) {
            (_, true) | (Writer::Operator, _) => Ok(()),
            (Writer::Leader(lease), false) => {
                let token = lease.token().unwrap_or(0);
                Err(EtcdStoreError::Fenced(token))
            }
        }
    }

    /// An operator's writes (`quorate state import`), in one transaction.
    pub(crate) async fn write_unguarded(&self, ops: Vec<TxnOp>) -> Result<(), String> {
        let txn = Txn::new().and_then(ops);
        self.client
            .kv_client()
            .txn(txn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Appends a fence history entry (as the fence log does).
    pub(crate) async fn append(&self, entry: &HistoryEntry) -> Result<(), String> {
        self.append_fence(entry).await.map_err(|e| e.to_string())
    }

    /// A put of `value` as JSON at `key`, refused past [`MAX_VALUE`].
    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<TxnOp> {
        let bytes = serde_json::to_vec(value).map_err(|e| EtcdStoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        if bytes.len() > MAX_VALUE {
            return Err(EtcdStoreError::TooLarge {
                key: key.to_owned(),
                size: bytes.len(),
            });
        }
        Ok(TxnOp::put(key, bytes, None))
    }

    /// The value at `key`.
    async fn get<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        let resp = self.client.kv_client().get(key, None).await?;
        resp.kvs().first().map(decode).transpose()
    }

    /// Every key-value under `P/<rest>`, in key order.
    async fn list(&self, rest: &str) -> Result<Vec<KeyValue>> {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let mut resp = self
            .client
            .kv_client()
            .get(self.key(rest), Some(opts))
            .await?;
        Ok(resp.take_kvs())
    }

    /// A key suffix that sorts in write order within this process and is unique across
    /// processes (time, then a counter).
    fn unique(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{nanos:024}-{n:08x}-{:08x}", std::process::id())
    }

    /// Appends a fence history entry, keeping the node's newest [`KEEP_FENCE`].
    async fn append_fence(&self, entry: &HistoryEntry) -> Result<()> {
        let node = entry.node();
        let key = self.key(&format!("fence/{node}/{}", self.unique()));
        self.write(vec![self.put(&key, &FenceRecord::from(entry))?])
            .await?;
        let kvs = self.list(&format!("fence/{node}/")).await?;
        if kvs.len() > KEEP_FENCE + KEEP_FENCE / 10 {
            let mut by_rev: Vec<&KeyValue> = kvs.iter().collect();
            by_rev.sort_by_key(|kv| kv.create_revision());
            let old = by_rev.len() - KEEP_FENCE;
            let ops = by_rev[..old]
                .iter()
                .map(|kv| TxnOp::delete(kv.key(), None))
                .collect();
            self.write(ops).await?;
        }
        Ok(())
    }

    /// The applied commits, oldest first, with their keys.
    async fn applied(&self) -> Result<Vec<(Vec<u8>, AppliedRecord)>> {
        let mut kvs = self.list("commits/applied/").await?;
        kvs.sort_by_key(KeyValue::create_revision);
        kvs.iter()
            .map(|kv| Ok((kv.key().to_vec(), decode(kv)?)))
            .collect()
    }

    /// The commit in force: the last one recorded as applied.
    pub async fn in_force(&self) -> Result<Option<AppliedCommit>> {
        Ok(self.applied().await?.last().map(|(_, r)| r.applied()))
    }

    /// Every refused commit, newest first.
    async fn all_rejected(&self) -> Result<Vec<RejectedCommit>> {
        let mut all: Vec<RejectedCommit> = self
            .list("commits/rejected/")
            .await?
            .iter()
            .map(decode)
            .collect::<Result<_>>()?;
        all.sort_by_key(|r| std::cmp::Reverse(r.at_unix_ms));
        Ok(all)
    }
}

/// The value of `kv` as JSON of `T`.
fn decode<T: for<'de> Deserialize<'de>>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(kv.value()).map_err(|e| EtcdStoreError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: e.to_string(),
    })
}

/// A fence history entry as stored (and exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum FenceRecord {
    #[serde(rename_all = "camelCase")]
    Attempt {
        node: String,
        device: String,
        level: u32,
        action: String,
        try_number: u32,
        started_unix_ms: i64,
        duration_ms: u64,
        /// `on` or `off` when the device confirmed a state.
        state: Option<String>,
        error_kind: Option<String>,
        error_cause: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Outcome {
        node: String,
        action: String,
        started_unix_ms: i64,
        duration_ms: u64,
        level: Option<u32>,
        error: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Manual {
        node: String,
        by: String,
        at_unix_ms: i64,
        note: Option<String>,
    },
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&HistoryEntry> for FenceRecord {
    fn from(e: &HistoryEntry) -> FenceRecord {
        match e {
            HistoryEntry::Attempt(a) => {
                let (state, kind, cause) = match &a.result {
                    Ok(s) => (Some(s.to_string()), None, None),
                    Err(f) => (None, Some(f.kind.clone()), Some(f.cause.clone())),
                };
                FenceRecord::Attempt {
                    node: a.node.clone(),
                    device: a.device.clone(),
                    level: a.level,
                    action: a.action.as_str().to_owned(),
                    try_number: a.try_number,
                    started_unix_ms: a.started_unix_ms,
                    duration_ms: ms(a.duration),
                    state,
                    error_kind: kind,
                    error_cause: cause,
                }
            }
            HistoryEntry::Outcome(o) => FenceRecord::Outcome {
                node: o.node.clone(),
                action: o.action.as_str().to_owned(),
                started_unix_ms: o.started_unix_ms,
                duration_ms: ms(o.duration),
                level: o.result.as_ref().ok().copied(),
                error: o.result.as_ref().err().cloned(),
            },
            HistoryEntry::Manual(m) => FenceRecord::Manual {
                node: m.node.clone(),
                by: m.by.clone(),
                at_unix_ms: m.at_unix_ms,
                note: m.note.clone(),
            },
        }
    }
}

impl FenceRecord {
    /// Back to an entry; `None` for an action or state this build does not know.
    pub(crate) fn entry(self) -> Option<HistoryEntry> {
        Some(match self {
            FenceRecord::Attempt {
                node,
                device,
                level,
                action,
                try_number,
                started_unix_ms,
                duration_ms,
                state,
                error_kind,
                error_cause,
            } => {
                let result = match state.as_deref() {
                    Some("on") => Ok(PowerState::On),
                    Some("off") => Ok(PowerState::Off),
                    Some(_) => return None,
                    None => Err(AttemptFailure {
                        kind: error_kind.unwrap_or_default(),
                        cause: error_cause.unwrap_or_default(),
                    }),
                };
                HistoryEntry::Attempt(FenceAttempt {
                    node,
                    device,
                    level,
                    action: FenceAction::parse(&action)?,
                    try_number,
                    started_unix_ms,
                    duration: Duration::from_millis(duration_ms),
                    result,
                })
            }
            FenceRecord::Outcome {
                node,
                action,
                started_unix_ms,
                duration_ms,
                level,
                error,
            } => HistoryEntry::Outcome(FenceOutcome {
                node,
                action: FenceAction::parse(&action)?,
                started_unix_ms,
                duration: Duration::from_millis(duration_ms),
                result: level.ok_or_else(|| error.unwrap_or_default()),
            }),
            FenceRecord::Manual {
                node,
                by,
                at_unix_ms,
                note,
            } => HistoryEntry::Manual(ManualConfirmation {
                node,
                by,
                at_unix_ms,
                note,
            }),
        })
    }
}

/// An applied commit as stored (and exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppliedRecord {
    pub(crate) commit: Commit,
    pub(crate) at_unix_ms: i64,
    pub(crate) planned_unix_ms: Option<i64>,
}

impl AppliedRecord {
    fn applied(&self) -> AppliedCommit {
        AppliedCommit {
            commit: self.commit.clone(),
            at_unix_ms: self.at_unix_ms,
        }
    }
}

#[async_trait]
impl FenceLog for EtcdStore {
    async fn record_attempt(&self, a: &FenceAttempt) -> Result<(), FenceLogError> {
        Ok(self.append_fence(&HistoryEntry::Attempt(a.clone())).await?)
    }
    async fn record_outcome(&self, o: &FenceOutcome) -> Result<(), FenceLogError> {
        Ok(self.append_fence(&HistoryEntry::Outcome(o.clone())).await?)
    }
    async fn record_manual(&self, m: &ManualConfirmation) -> Result<(), FenceLogError> {
        Ok(self.append_fence(&HistoryEntry::Manual(m.clone())).await?)
    }
    async fn history(&self, node: Option<&str>) -> Result<Vec<HistoryEntry>, FenceLogError> {
        let rest = node.map_or_else(|| "fence/".to_owned(), |n| format!("fence/{n}/"));
        let mut kvs = self.list(&rest).await?;
        kvs.sort_by_key(KeyValue::create_revision);
        let mut out = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let rec: FenceRecord = decode(kv)?;
            if let Some(e) = rec.entry() {
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn remembered(&self, node: &str) -> Result<Remembered, FenceLogError> {
        Ok(Remembered {
            contents: self
                .get(&self.key(&format!("nodes/{node}/contents")))
                .await?,
            last_seen_unix_ms: self.get(&self.key(&format!("nodes/{node}/seen"))).await?,
        })
    }

    async fn set_contents(
        &self,
        node: &str,
        instances: &[ObservedInstance],
    ) -> Result<(), FenceLogError> {
        let key = self.key(&format!("nodes/{node}/contents"));
        Ok(self.write(vec![self.put(&key, &instances)?]).await?)
    }

    async fn mark_seen(&self, node: &str, at_unix_ms: i64) -> Result<(), FenceLogError> {
        let key = self.key(&format!("nodes/{node}/seen"));
        let old: Option<i64> = self.get(&key).await?;
        if old.is_some_and(|o| o >= at_unix_ms) {
            return Ok(());
        }
        Ok(self.write(vec![self.put(&key, &at_unix_ms)?]).await?)
    }

    async fn intend_start(
        &self,
        node: &str,
        instance: &ObservedInstance,
        at_unix_ms: i64,
    ) -> Result<(), FenceLogError> {
        let remembered = self.remembered(node).await?;
        let mut list = remembered.contents.unwrap_or_default();
        list.retain(|i| !(i.bundle == instance.bundle && i.index == instance.index));
        list.push(instance.clone());
        let seen = remembered
            .last_seen_unix_ms
            .map_or(at_unix_ms, |s| s.max(at_unix_ms));
        // One transaction: the contents and the time the node was up, together.
        let ops = vec![
            self.put(&self.key(&format!("nodes/{node}/contents")), &list)?,
            self.put(&self.key(&format!("nodes/{node}/seen")), &seen)?,
        ];
        Ok(self.write(ops).await?)
    }

    async fn failures(&self) -> Result<BTreeMap<(String, String), Failures>, FenceLogError> {
        let mut out = BTreeMap::new();
        let base = self.key("failures/");
        for kv in self.list("failures/").await? {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some((node, instance)) = key
                .strip_prefix(&base)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            out.insert((node.to_owned(), instance.to_owned()), decode(&kv)?);
        }
        Ok(out)
    }

    async fn record_failure(
        &self,
        node: &str,
        instance: &str,
        at: u64,
    ) -> Result<(), FenceLogError> {
        let key = self.key(&format!("failures/{node}/{instance}"));
        let mut f: Failures = self.get(&key).await?.unwrap_or_default();
        f.count = f.count.saturating_add(1);
        f.last = Some(at);
        Ok(self.write(vec![self.put(&key, &f)?]).await?)
    }

    async fn clear_failures(
        &self,
        instance: &str,
        node: Option<&str>,
    ) -> Result<u32, FenceLogError> {
        let ops: Vec<TxnOp> = self
            .failures()
            .await?
            .into_keys()
            .filter(|(n, i)| i == instance && node.is_none_or(|want| want == n))
            .map(|(n, i)| TxnOp::delete(self.key(&format!("failures/{n}/{i}")), None))
            .collect();
        let cleared = u32::try_from(ops.len()).unwrap_or(u32::MAX);
        if !ops.is_empty() {
            self.write(ops).await?;
        }
        Ok(cleared)
    }

    async fn record_pass(&self, pass: &PassRecord) -> Result<u64, FenceLogError> {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(1);
        let resp = self
            .client
            .kv_client()
            .get(self.key("passes/"), Some(opts))
            .await
            .map_err(EtcdStoreError::from)?;
        let last = match resp.kvs().first() {
            Some(kv) => decode::<PassRecord>(kv)?.id,
            None => 0,
        };
        let id = last + 1;
        let mut rec = bounded(pass.clone());
        rec.id = id;
        let mut ops = vec![self.put(&self.key(&format!("passes/{id:020}")), &rec)?];
        if id > KEEP_PASSES {
            let end = self.key(&format!("passes/{:020}", id - KEEP_PASSES));
            let range = DeleteOptions::new().with_range(end);
            ops.push(TxnOp::delete(self.key("passes/"), Some(range)));
        }
        self.write(ops).await?;
        Ok(id)
    }

    async fn passes(&self, limit: usize) -> Result<Vec<PassRecord>, FenceLogError> {
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let resp = self
            .client
            .kv_client()
            .get(self.key("passes/"), Some(opts))
            .await
            .map_err(EtcdStoreError::from)?;
        Ok(resp.kvs().iter().map(decode).collect::<Result<_>>()?)
    }

    async fn suspended(&self) -> Result<Suspended, FenceLogError> {
        let mut out = Suspended {
            cluster: self.get(&self.key("suspended/cluster")).await?,
            ..Suspended::default()
        };
        let base = self.key("suspended/bundles/");
        for kv in self.list("suspended/bundles/").await? {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if let Some(bundle) = key.strip_prefix(&base) {
                out.bundles.insert(bundle.to_owned(), decode(&kv)?);
            }
        }
        Ok(out)
    }

    async fn set_suspended(
        &self,
        bundle: Option<&str>,
        suspension: Option<&Suspension>,
    ) -> Result<Option<Suspension>, FenceLogError> {
        let now = self.suspended().await?;
        crate::reconcile::store::room_for(
            now.bundles.len(),
            crate::reconcile::store::adds_bundle(&now, bundle, suspension),
        )?;
        let (key, before) = match bundle {
            None => (self.key("suspended/cluster"), now.cluster),
            Some(b) => (
                self.key(&format!("suspended/bundles/{b}")),
                now.bundles.get(b).cloned(),
            ),
        };
        let op = match suspension {
            Some(s) => self.put(&key, &s.bounded())?,
            None => TxnOp::delete(key, None),
        };
        self.write(vec![op]).await?;
        Ok(before)
    }

    async fn record_planned(&self, commit: &str, at_unix_ms: i64) -> Result<(), FenceLogError> {
        let applied = self.applied().await?;
        let Some((key, rec)) = applied.iter().rev().find(|(_, r)| r.commit.id == commit) else {
            return Ok(());
        };
        if rec.planned_unix_ms.is_some() {
            return Ok(());
        }
        let mut rec = rec.clone();
        rec.planned_unix_ms = Some(at_unix_ms);
        let key = String::from_utf8_lossy(key).into_owned();
        Ok(self.write(vec![self.put(&key, &rec)?]).await?)
    }
}

/// A pass record within [`MAX_VALUE`]: past it, the observed state and the plan are
/// replaced by a note (the status of a cluster that large is read from the leader).
fn bounded(mut rec: PassRecord) -> PassRecord {
    let size = serde_json::to_vec(&rec).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUE {
        rec.observed = serde_json::json!({ "omitted": format!("{size} bytes") });
        rec.plan = serde_json::json!({ "omitted": format!("{size} bytes") });
        rec.results.truncate(100);
    }
    rec
}

/// The commits, as `quorate run` keeps them (SQLite or etcd).
#[async_trait]
pub trait Commits: Store {
    /// Records that `commit` was put in force.
    async fn record_applied(&self, commit: &Commit, at_unix_ms: i64) -> Result<(), String>;
    /// Records that a commit was refused.
    async fn record_rejected(&self, rejected: &RejectedCommit) -> Result<(), String>;
    /// The last `limit` refused commits, newest first.
    async fn rejected(&self, limit: usize) -> Result<Vec<RejectedCommit>, String>;
    /// Whether `commit_id` was refused because quorate stopped while planning it.
    async fn refused_adoption(&self, commit_id: &str) -> Result<bool, String>;
    /// What stays in force after a restart (or a takeover).
    async fn resume(&self, now_unix_ms: i64) -> Result<Resume, String>;
    /// Forgets the commits adopted after the last one a pass planned from.
    async fn withdraw_unfinished(&self) -> Result<usize, String>;
    /// The last `limit` commits put in force, newest first (`quorate history`).
    async fn applied_history(&self, limit: usize) -> Result<Vec<AppliedCommit>, String>;
}

#[async_trait]
impl Commits for crate::state::StateStore {
    async fn record_applied(&self, commit: &Commit, at_unix_ms: i64) -> Result<(), String> {
        Self::record_applied(self, commit, at_unix_ms)
            .await
            .map_err(|e| e.to_string())
    }
    async fn record_rejected(&self, rejected: &RejectedCommit) -> Result<(), String> {
        Self::record_rejected(self, rejected)
            .await
            .map_err(|e| e.to_string())
    }
    async fn rejected(&self, limit: usize) -> Result<Vec<RejectedCommit>, String> {
        Self::rejected(self, limit).await.map_err(|e| e.to_string())
    }
    async fn refused_adoption(&self, commit_id: &str) -> Result<bool, String> {
        Self::refused_adoption(self, commit_id)
            .await
            .map_err(|e| e.to_string())
    }
    async fn resume(&self, now_unix_ms: i64) -> Result<Resume, String> {
        Self::resume(self, now_unix_ms)
            .await
            .map_err(|e| e.to_string())
    }
    async fn withdraw_unfinished(&self) -> Result<usize, String> {
        Self::withdraw_unfinished(self)
            .await
            .map_err(|e| e.to_string())
    }
    async fn applied_history(&self, limit: usize) -> Result<Vec<AppliedCommit>, String> {
        Self::applied(self, limit).await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Commits for EtcdStore {
    async fn record_applied(&self, commit: &Commit, at_unix_ms: i64) -> Result<(), String> {
        let applied = self.applied().await.map_err(|e| e.to_string())?;
        let rec = AppliedRecord {
            commit: commit.clone(),
            at_unix_ms,
            planned_unix_ms: None,
        };
        let key = self.key(&format!("commits/applied/{}", self.unique()));
        let mut ops = vec![self.put(&key, &rec).map_err(|e| e.to_string())?];
        ops.push(TxnOp::delete(
            self.key(&format!("commits/rejected/{}", commit.id)),
            None,
        ));
        let old = (applied.len() + 1).saturating_sub(KEEP_APPLIED);
        ops.extend(
            applied[..old]
                .iter()
                .map(|(k, _)| TxnOp::delete(k.clone(), None)),
        );
        self.write(ops).await.map_err(|e| e.to_string())
    }

    async fn record_rejected(&self, rejected: &RejectedCommit) -> Result<(), String> {
        let all = self.all_rejected().await.map_err(|e| e.to_string())?;
        let key = self.key(&format!("commits/rejected/{}", rejected.commit.id));
        let mut ops = vec![self.put(&key, rejected).map_err(|e| e.to_string())?];
        let keep = usize::try_from(KEEP_REJECTED).unwrap_or(usize::MAX);
        let others = all.iter().filter(|r| r.commit.id != rejected.commit.id);
        ops.extend(
            others.skip(keep.saturating_sub(1)).map(|r| {
                TxnOp::delete(self.key(&format!("commits/rejected/{}", r.commit.id)), None)
            }),
        );
        self.write(ops).await.map_err(|e| e.to_string())
    }

    async fn rejected(&self, limit: usize) -> Result<Vec<RejectedCommit>, String> {
        let mut all = self.all_rejected().await.map_err(|e| e.to_string())?;
        all.truncate(limit);
        Ok(all)
    }

    async fn refused_adoption(&self, commit_id: &str) -> Result<bool, String> {
        let key = self.key(&format!("commits/rejected/{commit_id}"));
        let r: Option<RejectedCommit> = self.get(&key).await.map_err(|e| e.to_string())?;
        Ok(r.is_some_and(|r| {
            r.diagnostics
                .iter()
                .any(|d| d.code == STOPPED_WHILE_PLANNING)
        }))
    }

    async fn resume(&self, now_unix_ms: i64) -> Result<Resume, String> {
        let applied = self.applied().await.map_err(|e| e.to_string())?;
        let Some((_, last)) = applied.last() else {
            return Ok(Resume::Nothing);
        };
        if last.planned_unix_ms.is_some() {
            return Ok(Resume::InForce(last.applied()));
        }
        let refused = RejectedCommit {
            diagnostics: vec![crate::state::stopped_while_planning(&last.applied())],
            omitted: 0,
            commit: last.commit.clone(),
            at_unix_ms: now_unix_ms,
        };
        Commits::record_rejected(self, &refused).await?;
        Commits::withdraw_unfinished(self).await?;
        let good = self
            .applied()
            .await
            .map_err(|e| e.to_string())?
            .last()
            .map(|(_, r)| r.applied());
        Ok(Resume::Refused { refused, good })
    }

    async fn withdraw_unfinished(&self) -> Result<usize, String> {
        let applied = self.applied().await.map_err(|e| e.to_string())?;
        let keep = applied
            .iter()
            .rposition(|(_, r)| r.planned_unix_ms.is_some())
            .map_or(0, |i| i + 1);
        let ops: Vec<TxnOp> = applied[keep..]
            .iter()
            .map(|(k, _)| TxnOp::delete(k.clone(), None))
            .collect();
        let n = ops.len();
        if n > 0 {
            self.write(ops).await.map_err(|e| e.to_string())?;
        }
        Ok(n)
    }

    async fn applied_history(&self, limit: usize) -> Result<Vec<AppliedCommit>, String> {
        let applied = self.applied().await.map_err(|e| e.to_string())?;
        Ok(applied
            .iter()
            .rev()
            .take(limit)
            .map(|(_, r)| r.applied())
            .collect())
    }
}
