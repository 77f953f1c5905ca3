//! Asking the instances of promotable bundles their role: each running instance on a
//! node that answers runs its bundle's `role` command, and a replica its `preference`
//! command, each within the bundle's `timeout`. What they print is read within
//! [`super::EXEC_STDOUT_MAX`] bytes; anything unexpected leaves the role unknown, which
//! the planner counts as possibly promoted (invariant 8).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;

use super::Runtime;
use crate::observed::{InstanceState, NodeState, Observed, Role};
use crate::spec::bundle::Promotable;
use crate::spec::{Name, SpecSet};

/// Most roles asked at once.
const AT_ONCE: usize = 64;

/// Fills in the role of every running instance of a promotable bundle on the online
/// nodes of `observed`, asking through `runtimes` ([`AT_ONCE`] at a time); a role that
/// cannot be asked stays unknown.
pub async fn ask(
    spec: &SpecSet,
    observed: &mut Observed,
    runtimes: &BTreeMap<Name, Arc<dyn Runtime>>,
) {
    let mut asks = Vec::new();
    for (node, n) in observed
        .nodes
        .iter()
        .filter(|(_, n)| n.state == NodeState::Online)
    {
        let Some(rt) = runtimes.get(node) else {
            continue;
        };
        for (at, i) in n.instances.iter().enumerate() {
            let Some(p) = spec
                .bundles
                .get(&i.bundle)
                .and_then(|b| b.promotable.as_ref())
            else {
                continue;
            };
            if i.state != InstanceState::Stopped {
                let rt = rt.clone();
                asks.push(async move { (node.clone(), at, role(rt.as_ref(), &i.name(), p).await) });
            }
        }
    }
    let answers: Vec<_> = futures_util::stream::iter(asks)
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    for (node, at, role) in answers {
        if let Some(i) = observed
            .nodes
            .get_mut(&node)
            .and_then(|n| n.instances.get_mut(at))
        {
            i.role = role;
        }
    }
}

/// The role of one instance, with its preference when it is a replica and the bundle
/// asks for one.
async fn role(rt: &dyn Runtime, name: &str, p: &Promotable) -> Option<Role> {
    let said = run(rt, name, &p.role, p).await?;
    let mut role = parse_role(&said)?;
    if !role.promoted
        && let Some(command) = &p.preference
    {
        role.preference = run(rt, name, command, p)
            .await
            .and_then(|s| s.trim().parse().ok());
    }
    Some(role)
}

/// What `command` printed, when it exited 0 within the timeout.
async fn run(rt: &dyn Runtime, name: &str, command: &[String], p: &Promotable) -> Option<String> {
    let limit = p.timeout.get();
    match tokio::time::timeout(limit, rt.exec(name, command, &[])).await {
        Ok(Ok(o)) if o.exit_code == Some(0) => Some(o.stdout),
        Ok(Ok(o)) => {
            tracing::debug!(instance = name, code = ?o.exit_code, "role command failed");
            None
        }
        Ok(Err(e)) => {
            tracing::debug!(instance = name, error = %e, "role command failed");
            None
        }
        Err(_) => {
            tracing::debug!(instance = name, "role command timed out");
            None
        }
    }
}

/// `promoted`, or `unpromoted` and the host it follows, on the first line.
pub(crate) fn parse_role(said: &str) -> Option<Role> {
    let mut words = said.lines().next()?.split_whitespace();
    let promoted = match words.next()? {
        "promoted" => true,
        "unpromoted" => false,
        _ => return None,
    };
    let follows = words.next().filter(|_| !promoted).map(|h| {
        let mut h = h.to_owned();
        crate::state::cut(&mut h, 255);
        h
    });
    Some(Role {
        promoted,
        follows,
        preference: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_the_first_line_and_anything_else_is_unknown() {
        let r = parse_role("promoted\nmore").unwrap();
        assert!(r.promoted && r.follows.is_none());
        let r = parse_role("unpromoted 10.0.0.5\n").unwrap();
        assert_eq!(
            (r.promoted, r.follows.as_deref()),
            (false, Some("10.0.0.5"))
        );
        let r = parse_role("  unpromoted  ").unwrap();
        assert_eq!((r.promoted, r.follows), (false, None));
        assert_eq!(parse_role("master"), None);
        assert_eq!(parse_role(""), None);
        let long = format!("unpromoted {}", "h".repeat(1000));
        assert_eq!(parse_role(&long).unwrap().follows.unwrap().len(), 255);
    }
}
