//! Observing a node: which of quorate's containers exist and in what state.
//!
//! The list call is the ground truth of every pass (level-triggered). Inspect adds what
//! the list lacks (restart policy, addresses, and for Docker the exit code and times).
//! [`observe`] inspects every container; an [`Observer`] keeps inspect results between
//! passes and inspects again only containers that are new or whose listed state changed,
//! which keeps a steady-state pass close to the cost of one list call.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt};

use super::{ContainerState, Runtime, RuntimeError};

/// How many inspect calls run at once.
const CONCURRENT_INSPECTS: usize = 16;

/// Lists quorate's containers, then inspects each (a few at a time). Containers that
/// vanish between the two calls are left out. Sorted by name.
pub async fn observe(rt: &dyn Runtime) -> Result<Vec<ContainerState>, RuntimeError> {
    let listed = rt.list().await?;
    let ids: Vec<String> = listed.into_iter().map(|c| c.id).collect();
    let mut out: Vec<ContainerState> = inspect_all(rt, ids).await?.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn inspect_all(
    rt: &dyn Runtime,
    ids: Vec<String>,
) -> Result<HashMap<String, ContainerState>, RuntimeError> {
    let results: Vec<Result<Option<ContainerState>, RuntimeError>> = stream::iter(ids)
        .map(|id| async move { rt.inspect(&id).await })
        .buffer_unordered(CONCURRENT_INSPECTS)
        .collect()
        .await;
    let mut out = HashMap::with_capacity(results.len());
    for r in results {
        if let Some(c) = r? {
            out.insert(c.id.clone(), c);
        }
    }
    Ok(out)
}

/// The fields of a listed container whose change calls for a fresh inspect.
fn summary(c: &ContainerState) -> impl PartialEq + '_ {
    (
        &c.name,
        &c.labels,
        &c.status,
        c.exit_code,
        c.started_at,
        c.finished_at,
        &c.image,
    )
}

/// Observes one node pass after pass, re-inspecting only what changed.
#[derive(Debug, Default)]
pub struct Observer {
    /// By container ID: what the list said, and the inspect result that goes with it.
    known: HashMap<String, (ContainerState, ContainerState)>,
}

impl Observer {
    /// An observer with nothing cached.
    pub fn new() -> Observer {
        Observer::default()
    }

    /// One pass: list, inspect new or changed containers, forget vanished ones.
    /// On error the cache is kept as it was. Sorted by name.
    pub async fn observe(&mut self, rt: &dyn Runtime) -> Result<Vec<ContainerState>, RuntimeError> {
        let listed = rt.list().await?;
        let stale: Vec<String> = listed
            .iter()
            .filter(|c| match self.known.get(&c.id) {
                Some((was, _)) => summary(was) != summary(c),
                None => true,
            })
            .map(|c| c.id.clone())
            .collect();
        let mut fresh = inspect_all(rt, stale).await?;
        let mut known = HashMap::with_capacity(listed.len());
        for c in listed {
            let inspected = match fresh.remove(&c.id) {
                Some(i) => i,
                None => match self.known.remove(&c.id) {
                    Some((_, i)) => i,
                    None => continue, // vanished between list and inspect
                },
            };
            known.insert(c.id.clone(), (c, inspected));
        }
        self.known = known;
        let mut out: Vec<ContainerState> = self.known.values().map(|(_, i)| i.clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Drops the cache: the next pass inspects everything.
    pub fn forget(&mut self) {
        self.known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{
        ContainerStatus, Endpoint, ExecOutcome, InstanceSpec, NetworkSpec, RuntimeInfo,
    };
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A node held in memory: `list` gives summaries, `inspect` adds a restart policy.
    struct Fake {
        endpoint: Endpoint,
        containers: Mutex<Vec<ContainerState>>,
        inspects: AtomicUsize,
    }

    fn container(id: &str, status: ContainerStatus) -> ContainerState {
        ContainerState {
            id: id.into(),
            name: format!("b-{id}"),
            labels: None,
            status,
            exit_code: None,
            started_at: Some(1),
            finished_at: None,
            image: "img".into(),
            restart_policy: None,
            addresses: Default::default(),
        }
    }

    impl Fake {
        /// The Observer only lists and inspects; any other call is refused, so a test
        /// that made one would fail on the error.
        fn refuse(&self, op: &str) -> RuntimeError {
            RuntimeError::Unreachable {
                endpoint: self.endpoint.to_string(),
                reason: format!("{op} is not part of observing"),
            }
        }
    }

    #[async_trait]
    impl Runtime for Fake {
        fn endpoint(&self) -> &Endpoint {
            &self.endpoint
        }
        async fn ping(&self) -> Result<RuntimeInfo, RuntimeError> {
            Err(self.refuse("ping"))
        }
        async fn list(&self) -> Result<Vec<ContainerState>, RuntimeError> {
            Ok(self.containers.lock().unwrap().clone())
        }
        async fn inspect(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
            self.inspects.fetch_add(1, Ordering::SeqCst);
            let found = self
                .containers
                .lock()
                .unwrap()
                .iter()
                .find(|c| c.id == name)
                .cloned();
            Ok(found.map(|mut c| {
                c.restart_policy = Some("no".into());
                c
            }))
        }
        async fn ensure_network(&self, _: &NetworkSpec) -> Result<(), RuntimeError> {
            Err(self.refuse("ensure_network"))
        }
        async fn create(&self, _: &InstanceSpec) -> Result<String, RuntimeError> {
            Err(self.refuse("create"))
        }
        async fn start(&self, _: &str) -> Result<(), RuntimeError> {
            Err(self.refuse("start"))
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<(), RuntimeError> {
            Err(self.refuse("stop"))
        }
        async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
            Err(self.refuse("remove"))
        }
        async fn exec(&self, _: &str, _: &[String]) -> Result<ExecOutcome, RuntimeError> {
            Err(self.refuse("exec"))
        }
    }

    #[tokio::test]
    async fn observer_inspects_only_new_or_changed() {
        let fake = Fake {
            endpoint: "podman+unix:///x.sock".parse().unwrap(),
            containers: Mutex::new(vec![
                container("1", ContainerStatus::Running),
                container("2", ContainerStatus::Running),
            ]),
            inspects: AtomicUsize::new(0),
        };
        let mut obs = Observer::new();
        let first = obs.observe(&fake).await.unwrap();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|c| c.restart_policy.is_some()));
        assert_eq!(fake.inspects.load(Ordering::SeqCst), 2);

        assert_eq!(obs.observe(&fake).await.unwrap(), first);
        assert_eq!(fake.inspects.load(Ordering::SeqCst), 2, "nothing changed");

        {
            let mut cs = fake.containers.lock().unwrap();
            cs[0].status = ContainerStatus::Exited;
            cs[0].exit_code = Some(1);
            cs.remove(1);
            cs.push(container("3", ContainerStatus::Created));
        }
        let third = obs.observe(&fake).await.unwrap();
        assert_eq!(
            fake.inspects.load(Ordering::SeqCst),
            4,
            "changed 1 and new 3"
        );
        let ids: Vec<_> = third
            .iter()
            .map(|c| (c.id.as_str(), c.status.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("1", ContainerStatus::Exited),
                ("3", ContainerStatus::Created)
            ]
        );
        assert_eq!(observe(&fake).await.unwrap(), third);

        obs.forget();
        obs.observe(&fake).await.unwrap();
        assert_eq!(fake.inspects.load(Ordering::SeqCst), 8);
    }
}
