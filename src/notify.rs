//! Notifications of `quorate run --notify URL`: what an operator must hear about (a node
//! lost, a fence started and how it ended, an instance blocked, a commit refused) POSTed as
//! JSON to a webhook, in the shape of Alertmanager's webhook payload (`version` "4",
//! `status`, `receiver`, `alerts` with `labels`, `annotations` and `startsAt`), so
//! receivers written for Alertmanager take them as they are.
//!
//! Events are found by comparing each pass with the one before ([`Detector`], pure), then
//! queued; one task sends them in order, retrying a failed POST with the project's backoff
//! ([`crate::backoff`]) a bounded number of times; a full queue drops the newest with a
//! warning rather than slowing the reconciler. No secret goes into an event: node,
//! instance and commit names, the plan's reasons and the step results only (invariant 7).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::observed::{NodeState, Observed};
use crate::reconcile::store::{PassRecord, StepKind, StepOutcome};

/// Events waiting to be sent, at most.
const QUEUE: usize = 256;
/// Tries of one POST.
const TRIES: u32 = 5;
/// First delay between two tries (then doubled, up to [`MAX_DELAY`]).
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A node stopped answering long enough to count as lost.
    NodeLost,
    /// A pass began fencing a node.
    FenceStarted,
    /// A fence confirmed the node off.
    FenceDone,
    /// A fence failed.
    FenceFailed,
    /// An instance waits (the plan says why).
    InstanceBlocked,
    /// A commit was refused: its specs do not validate.
    CommitRejected,
}

impl Kind {
    fn alertname(self) -> &'static str {
        match self {
            Kind::NodeLost => "QuorateNodeLost",
            Kind::FenceStarted => "QuorateFenceStarted",
            Kind::FenceDone => "QuorateFenceDone",
            Kind::FenceFailed => "QuorateFenceFailed",
            Kind::InstanceBlocked => "QuorateInstanceBlocked",
            Kind::CommitRejected => "QuorateCommitRejected",
        }
    }

    fn severity(self) -> &'static str {
        match self {
            Kind::FenceDone => "info",
            Kind::FenceStarted | Kind::InstanceBlocked | Kind::CommitRejected => "warning",
            Kind::NodeLost | Kind::FenceFailed => "critical",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// What it is about: `node`, `instance` or `commit`, with its name.
    pub subject: (&'static str, String),
    /// One line for people.
    pub summary: String,
    /// When (Unix ms).
    pub at_unix_ms: i64,
}

impl Event {
    /// The Alertmanager webhook payload of this one event.
    pub fn payload(&self) -> Value {
        let mut labels = serde_json::Map::new();
        labels.insert("alertname".into(), self.kind.alertname().into());
        labels.insert("severity".into(), self.kind.severity().into());
        labels.insert("event".into(), json!(self.kind));
        labels.insert(self.subject.0.into(), self.subject.1.clone().into());
        let starts = crate::fence::format_unix_ms(self.at_unix_ms);
        json!({
            "version": "4",
            "status": "firing",
            "receiver": "quorate",
            "groupLabels": {"alertname": self.kind.alertname()},
            "commonLabels": labels,
            "commonAnnotations": {"summary": self.summary},
            "externalURL": "",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": self.summary},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
            }],
        })
    }
}

/// Finds events by comparing each pass with the one before (pure).
#[derive(Debug, Clone, Default)]
pub struct Detector {
    nodes: BTreeMap<String, NodeState>,
    blocked: BTreeSet<String>,
}

impl Detector {
    /// The events of `record` (with what it observed), in a fixed order.
    pub fn pass(&mut self, record: &PassRecord, observed: Option<&Observed>) -> Vec<Event> {
        let at = record.finished_unix_ms;
        let mut out = Vec::new();
        if let Some(obs) = observed {
            for (name, node) in &obs.nodes {
                let before = self.nodes.insert(name.to_string(), node.state);
                if node.state == NodeState::Lost && before != Some(NodeState::Lost) {
                    out.push(event(
                        Kind::NodeLost,
                        "node",
                        name.as_str(),
                        "stopped answering and counts as lost".into(),
                        at,
                    ));
                }
            }
        }
        for step in record.results.iter().filter(|s| s.kind == StepKind::Fence) {
            let node = fenced_node(&step.what);
            out.push(event(
                Kind::FenceStarted,
                "node",
                node,
                format!("started: {}", step.what),
                record.started_unix_ms,
            ));
            match step.result {
                StepOutcome::Ok => out.push(event(
                    Kind::FenceDone,
                    "node",
                    node,
                    "fenced: confirmed off".into(),
                    at,
                )),
                StepOutcome::Failed => out.push(event(
                    Kind::FenceFailed,
                    "node",
                    node,
                    format!("fence failed: {}", step.detail),
                    at,
                )),
                StepOutcome::Skipped => {}
            }
        }
        let blocked = blocked(&record.plan);
        for (instance, reason) in &blocked {
            if !self.blocked.contains(instance) {
                out.push(event(
                    Kind::InstanceBlocked,
                    "instance",
                    instance,
                    reason.clone(),
                    at,
                ));
            }
        }
        self.blocked = blocked.into_keys().collect();
        out
    }
}

/// The event of a refused commit.
pub fn rejected(commit: &str, errors: usize, at_unix_ms: i64) -> Event {
    event(
        Kind::CommitRejected,
        "commit",
        commit,
        format!("refused: {errors} error(s); the last good commit stays in force"),
        at_unix_ms,
    )
}

fn event(kind: Kind, what: &'static str, name: &str, summary: String, at_unix_ms: i64) -> Event {
    Event {
        kind,
        subject: (what, name.to_owned()),
        summary: format!("{name}: {summary}"),
        at_unix_ms,
    }
}

/// The node of a fence step's description (`fence worker1`).
fn fenced_node(what: &str) -> &str {
    what.split_whitespace().last().unwrap_or(what)
}

/// The blocked instances of a plan (JSON) with their reasons.
fn blocked(plan: &Value) -> BTreeMap<String, String> {
    plan.get("blocked")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|b| {
                    let instance = b.get("instance")?.as_str()?.to_owned();
                    let reason = b.get("reason").and_then(Value::as_str).unwrap_or("");
                    Some((instance, reason.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where events are queued; cloning shares the queue. The default sends nowhere.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Event>>,
}

impl Notifier {
    /// A notifier posting to `url`, and the task that sends (spawn it).
    pub fn to(url: reqwest::Url) -> Result<(Notifier, impl Future<Output = ()>), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("--notify: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok((Notifier { queue: Some(tx) }, send_all(client, url, rx)))
    }

    /// Queues `events` (dropped, with a warning, when the queue is full).
    pub fn send(&self, events: Vec<Event>) {
        let Some(queue) = &self.queue else { return };
        for e in events {
            if queue.try_send(e).is_err() {
                tracing::warn!("notification queue full: an event was dropped");
            }
        }
    }
}

async fn send_all(client: reqwest::Client, url: reqwest::Url, mut rx: mpsc::Receiver<Event>) {
    while let Some(event) = rx.recv().await {
        let body = event.payload();
        let mut delays = crate::backoff::delays(FIRST_DELAY, MAX_DELAY);
        for try_number in 1..=TRIES {
            let sent = client.post(url.clone()).json(&body).send().await;
            let why = match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => r.status().to_string(),
                Err(e) => crate::diag::error_chain(&e),
            };
            if try_number == TRIES {
                tracing::warn!(event = ?event.kind, error = %why, "notification not delivered after {TRIES} tries");
                break;
            }
            tracing::debug!(event = ?event.kind, error = %why, try_number, "notification not delivered; trying again");
            tokio::time::sleep(delays.next().unwrap_or(MAX_DELAY)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::store::{PassOutcome, StepResult};
    use std::sync::{Arc, Mutex};

    fn record(plan: Value, results: Vec<StepResult>) -> PassRecord {
        PassRecord {
            id: 1,
            started_unix_ms: 1_000,
            finished_unix_ms: 2_000,
            commit: "c".into(),
            trigger: "t".into(),
            outcome: PassOutcome::Acted,
            detail: String::new(),
            observed: Value::Null,
            plan,
            results,
        }
    }

    fn observed(state: &str) -> Observed {
        serde_json::from_value(json!({"nodes": {"w1": {"state": state}, "w2": {}}})).unwrap()
    }

    #[test]
    fn events_come_once_per_change() {
        let mut d = Detector::default();
        let plan =
            json!({"blocked": [{"instance": "db-0", "reason": "waits for the fence of w1"}]});
        let fence = StepResult {
            step: "s1".into(),
            kind: StepKind::Fence,
            what: "fence w1".into(),
            result: StepOutcome::Ok,
            detail: String::new(),
            millis: 5,
        };
        let first = d.pass(&record(json!({}), vec![]), Some(&observed("online")));
        assert!(first.is_empty(), "{first:?}");
        let lost = d.pass(&record(plan.clone(), vec![]), Some(&observed("lost")));
        let kinds: Vec<Kind> = lost.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::NodeLost, Kind::InstanceBlocked]);
        assert_eq!(lost[1].subject, ("instance", "db-0".to_owned()));
        // The same state again: nothing new.
        assert!(
            d.pass(&record(plan, vec![]), Some(&observed("lost")))
                .is_empty()
        );
        let fenced = d.pass(&record(json!({}), vec![fence]), Some(&observed("fenced")));
        let kinds: Vec<Kind> = fenced.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::FenceStarted, Kind::FenceDone]);
        assert_eq!(fenced[1].subject, ("node", "w1".to_owned()));
    }

    #[test]
    fn the_payload_has_alertmanagers_shape() {
        let p = rejected("abc123", 2, 1_715_000_000_123).payload();
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        let alert = &p["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "QuorateCommitRejected");
        assert_eq!(alert["labels"]["commit"], "abc123");
        assert_eq!(alert["labels"]["event"], "commitRejected");
        assert_eq!(alert["startsAt"], "2024-05-06T12:53:20.123Z");
        assert!(
            alert["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("2 error(s)")
        );
    }

    /// A real HTTP receiver that answers 503 to the first POST and 200 after: the event
    /// arrives, once, after a retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_post_is_retried_until_the_receiver_takes_it() {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let mut all = seen.lock().unwrap();
                    all.push(body);
                    if all.len() == 1 {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = reqwest::Url::parse(&format!("http://{addr}/hook")).unwrap();
        let (notifier, task) = Notifier::to(url).unwrap();
        let sender = tokio::spawn(task);
        notifier.send(vec![rejected("abc", 1, 0)]);
        drop(notifier);
        tokio::time::timeout(Duration::from_secs(20), sender)
            .await
            .unwrap()
            .unwrap();
        let all = got.lock().unwrap();
        assert_eq!(all.len(), 2, "one refused, one taken: {all:?}");
        assert_eq!(all[0], all[1]);
        assert_eq!(
            all[1]["alerts"][0]["labels"]["alertname"],
            "QuorateCommitRejected"
        );
    }
}
