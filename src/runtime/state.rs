//! A container as observed on a node (runtime-neutral).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::InstanceLabels;

/// Lifecycle state of a container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Created (or podman "configured"/"initialized"), never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting (quorate never sets a restart policy, so this is someone else's doing).
    Restarting,
    /// Being stopped.
    Stopping,
    /// Being removed.
    Removing,
    /// Exited or stopped.
    Exited,
    /// Dead (removal failed).
    Dead,
    /// Anything else the runtime said.
    Unknown(String),
}

impl ContainerStatus {
    /// Maps a runtime's state string.
    pub fn parse(s: &str) -> ContainerStatus {
        match s.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "restarting" => ContainerStatus::Restarting,
            "stopping" => ContainerStatus::Stopping,
            "removing" => ContainerStatus::Removing,
            "exited" | "stopped" => ContainerStatus::Exited,
            "dead" => ContainerStatus::Dead,
            other => ContainerStatus::Unknown(other.to_string()),
        }
    }
}

/// A container as observed on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Runtime ID.
    pub id: String,
    /// Container name.
    pub name: String,
    /// quorate's labels parsed back; `None` for containers quorate does not manage.
    pub labels: Option<InstanceLabels>,
    /// Lifecycle state.
    pub status: ContainerStatus,
    /// Exit code of the last run, when known.
    pub exit_code: Option<i64>,
    /// Last start, unix seconds.
    pub started_at: Option<i64>,
    /// Last exit, unix seconds.
    pub finished_at: Option<i64>,
    /// Image reference as created.
    pub image: String,
    /// Restart policy name from inspect (`None` when listing; `""`/`"no"` mean none).
    pub restart_policy: Option<String>,
    /// Address per network, from inspect.
    pub addresses: BTreeMap<String, IpAddr>,
}

impl ContainerState {
    /// True when the container is running.
    pub fn is_running(&self) -> bool {
        self.status == ContainerStatus::Running
    }

    /// Whether the runtime would restart this container by itself (a restart policy
    /// other than none, set outside quorate: design invariant 5 forbids it). `None` when
    /// unknown: the container was listed, not inspected.
    pub fn has_restart_policy(&self) -> Option<bool> {
        self.restart_policy
            .as_deref()
            .map(|p| !(p.is_empty() || p == "no"))
    }
}

/// Unix seconds, treating the runtimes' "zero time" (year 1) and garbage as unknown.
pub(crate) fn unix_secs(ts: Option<i64>) -> Option<i64> {
    ts.filter(|t| *t > 0)
}

/// Parses an RFC 3339 timestamp (Docker's format) into unix seconds.
pub(crate) fn rfc3339_secs(s: Option<&str>) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(s?).ok()?;
    unix_secs(Some(t.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_times() {
        assert_eq!(
            ContainerStatus::parse("configured"),
            ContainerStatus::Created
        );
        assert_eq!(ContainerStatus::parse("Stopped"), ContainerStatus::Exited);
        assert_eq!(
            ContainerStatus::parse("odd"),
            ContainerStatus::Unknown("odd".into())
        );
        assert_eq!(rfc3339_secs(Some("1970-01-01T00:01:00Z")), Some(60));
        assert_eq!(rfc3339_secs(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(rfc3339_secs(Some("junk")), None);
    }

    #[test]
    fn restart_policy_is_known_only_after_inspect() {
        let mut c = ContainerState {
            id: "1".into(),
            name: "a-0".into(),
            labels: None,
            status: ContainerStatus::Running,
            exit_code: None,
            started_at: None,
            finished_at: None,
            image: "i".into(),
            restart_policy: None,
            addresses: Default::default(),
        };
        assert_eq!(c.has_restart_policy(), None);
        for (policy, set) in [
            ("", false),
            ("no", false),
            ("always", true),
            ("on-failure", true),
        ] {
            c.restart_policy = Some(policy.into());
            assert_eq!(c.has_restart_policy(), Some(set), "{policy:?}");
        }
    }
}
