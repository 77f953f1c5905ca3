//! Moving a cluster to HA without losing its history: `quorate state export` reads a
//! SQLite state directory into one JSON document ([`Export`]), `quorate state import`
//! writes it into etcd under a cluster prefix that must still be empty.
//!
//! Everything invariant 1 and 3 depend on carries over: what may run on each node and
//! when it was last up, fence history and manual confirmations, fail counts; and the
//! commit in force, the refused commits and the newest passes of the journal.

use std::collections::BTreeMap;

use etcd_client::{GetOptions, TxnOp};
use serde::{Deserialize, Serialize};

use super::store::{AppliedRecord, EtcdStore, FenceRecord, KEEP_PASSES};
use crate::fence::FenceLog;
use crate::observed::{Failures, ObservedInstance};
use crate::reconcile::store::{PassRecord, Store};
use crate::state::{KEEP_REJECTED, RejectedCommit, StateStore};

/// The format's version.
pub const EXPORT_VERSION: u32 = 1;

/// One node's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExport {
    /// What may run there.
    pub contents: Option<Vec<ObservedInstance>>,
    /// When it last answered (Unix ms).
    pub last_seen_unix_ms: Option<i64>,
}

/// Everything a store keeps, as one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// Per node.
    pub nodes: BTreeMap<String, NodeExport>,
    /// Fail counts: `(node, instance, counts)`.
    pub failures: Vec<(String, String, Failures)>,
    /// The fence history, oldest first.
    pub(crate) fence: Vec<FenceRecord>,
    /// The newest passes, oldest first.
    pub passes: Vec<PassRecord>,
    /// The commit in force.
    pub(crate) applied: Option<AppliedRecord>,
    /// The refused commits, newest first.
    pub rejected: Vec<RejectedCommit>,
}

/// Reads everything `store` keeps.
pub async fn export(store: &StateStore) -> Result<Export, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut nodes = BTreeMap::new();
    for node in store.node_names().await.map_err(|x| e(&x))? {
        let r = store.remembered(&node).await.map_err(|x| e(&x))?;
        nodes.insert(
            node,
            NodeExport {
                contents: r.contents,
                last_seen_unix_ms: r.last_seen_unix_ms,
            },
        );
    }
    let failures = store
        .failures()
        .await
        .map_err(|x| e(&x))?
        .into_iter()
        .map(|((n, i), f)| (n, i, f))
        .collect();
    let fence = store
        .history(None)
        .await
        .map_err(|x| e(&x))?
        .iter()
        .map(FenceRecord::from)
        .collect();
    let keep = usize::try_from(KEEP_PASSES).unwrap_or(usize::MAX);
    let mut passes = Store::passes(store, keep).await.map_err(|x| e(&x))?;
    passes.reverse();
    let applied = store
        .last_adoption()
        .await
        .map_err(|x| e(&x))?
        .map(|(a, planned)| AppliedRecord {
            planned_unix_ms: planned.then_some(a.at_unix_ms),
            commit: a.commit,
            at_unix_ms: a.at_unix_ms,
        });
    let kept = usize::try_from(KEEP_REJECTED).unwrap_or(usize::MAX);
    let rejected = store.rejected(kept).await.map_err(|x| e(&x))?;
    Ok(Export {
        version: EXPORT_VERSION,
        nodes,
        failures,
        fence,
        passes,
        applied,
        rejected,
    })
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    /// Keys written.
    pub keys: usize,
    /// Fence history entries among them.
    pub fence: usize,
}

/// Writes `export` into etcd under `store`'s prefix, which must hold no state yet (no
/// merging into a cluster that already runs in HA mode).
pub async fn import(store: &EtcdStore, export: &Export) -> Result<Imported, String> {
    if export.version != EXPORT_VERSION {
        return Err(format!(
            "export version {} is not the one this quorate reads ({EXPORT_VERSION})",
            export.version
        ));
    }
    let opts = GetOptions::new().with_prefix().with_count_only();
    let mut client = store.client();
    for part in ["nodes/", "fence/", "passes/", "commits/", "failures/"] {
        let n = client
            .get(store.key(part), Some(opts.clone()))
            .await
            .map_err(|e| e.to_string())?
            .count();
        if n > 0 {
            return Err(format!(
                "{} already holds state ({n} keys under {part}): import only into an empty prefix",
                store.key("")
            ));
        }
    }
    let mut ops: Vec<TxnOp> = Vec::new();
    for (node, n) in &export.nodes {
        if let Some(c) = &n.contents {
            ops.push(put(&store.key(&format!("nodes/{node}/contents")), c)?);
        }
        if let Some(t) = n.last_seen_unix_ms {
            ops.push(put(&store.key(&format!("nodes/{node}/seen")), &t)?);
        }
    }
    for (node, instance, f) in &export.failures {
        ops.push(put(&store.key(&format!("failures/{node}/{instance}")), f)?);
    }
    for p in &export.passes {
        ops.push(put(&store.key(&format!("passes/{:020}", p.id)), p)?);
    }
    if let Some(a) = &export.applied {
        ops.push(put(
            &store.key("commits/applied/00000000000000000000-imported"),
            a,
        )?);
    }
    for r in &export.rejected {
        ops.push(put(
            &store.key(&format!("commits/rejected/{}", r.commit.id)),
            r,
        )?);
    }
    let mut done = Imported::default();
    for chunk in ops.chunks(64) {
        store.write_unguarded(chunk.to_vec()).await?;
        done.keys += chunk.len();
    }
    // In order, each its own key: the history keeps its order by create revision.
    for rec in &export.fence {
        if let Some(entry) = rec.clone().entry() {
            store.append(&entry).await?;
            done.fence += 1;
            done.keys += 1;
        }
    }
    Ok(done)
}

fn put<T: Serialize>(key: &str, value: &T) -> Result<TxnOp, String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    if bytes.len() > super::store::MAX_VALUE {
        return Err(format!(
            "{key}: {} bytes, more than etcd values may hold here",
            bytes.len()
        ));
    }
    Ok(TxnOp::put(key, bytes, None))
}
