//! Fencing: turning a node that stopped answering into a node that is confirmed off.
//!
//! A fence succeeds only when the device reports the node powered off (design invariant 3:
//! an instance on a silent node starts elsewhere only after that node is fenced and confirmed
//! off, or an operator confirmed it by hand).
//!
//! - [`FenceAgent`]: one fence device (off, on, reboot, status), each answer confirmed.
//! - [`ipmi`]: the IPMI agent (RMCP+ through `ipmi-rs`).
//! - [`from_spec`]: a node's topology and the fence policy, built from a spec set.
//! - [`topology`]: levels of devices, delays, retries, the attempt records.
//! - [`log`]: where attempts and manual confirmations are recorded ([`FenceLog`]).
//! - [`ops`]: the functions the CLI calls (`quorate fence ...`).

pub(crate) mod clock;
pub mod from_spec;
pub mod ipmi;
pub mod log;
pub mod ops;
pub mod topology;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use clock::{Clock, SystemClock, format_unix_ms};
pub use log::{FenceLog, FenceLogError, MemoryFenceLog};
pub use topology::{FenceDevice, FencePolicy, NodeTopology};

/// The power state a fence device reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// The device reports the node powered on.
    On,
    /// The device reports the node powered off.
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// What to do to a node through its fence devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FenceAction {
    /// Power off and confirm off: the fence proper.
    Off,
    /// Power on and confirm on (unfencing).
    On,
    /// Power off then on again (or a power cycle, by the device's method).
    Reboot,
    /// Only ask the device for the power state.
    Status,
}

impl FenceAction {
    /// The lower-case name used in reports and records.
    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Reboot => "reboot",
            FenceAction::Status => "status",
        }
    }

    /// Parses the name written by [`FenceAction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(FenceAction::Off),
            "on" => Some(FenceAction::On),
            "reboot" => Some(FenceAction::Reboot),
            "status" => Some(FenceAction::Status),
            _ => None,
        }
    }

    /// The power state a successful action leaves the node in, if the action changes it.
    pub fn target(self) -> Option<PowerState> {
        match self {
            FenceAction::Off => Some(PowerState::Off),
            FenceAction::On | FenceAction::Reboot => Some(PowerState::On),
            FenceAction::Status => None,
        }
    }
}

impl fmt::Display for FenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a fence device could not do or confirm what it was asked.
///
/// No variant ever carries a password: credentials are named by their source (an env var
/// name, a file path), never by value (design invariant 7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The device refused the credentials or the privilege level asked for.
    #[error("authentication failed at {address}: {reason}")]
    Auth {
        /// The device address.
        address: String,
        /// What was refused.
        reason: String,
    },
    /// The device could not be reached at all.
    #[error("{address} is unreachable: {reason}")]
    Unreachable {
        /// The device address.
        address: String,
        /// The transport error.
        reason: String,
    },
    /// The device did not answer in time.
    #[error("{address} did not answer within {after:?} ({during})")]
    Timeout {
        /// The device address.
        address: String,
        /// How long we waited.
        after: Duration,
        /// What we were waiting for.
        during: String,
    },
    /// The device accepted the command but kept reporting the old power state.
    #[error("{address} accepted power {wanted} but still reports {still} after {after:?}")]
    NotConfirmed {
        /// The device address.
        address: String,
        /// The state asked for.
        wanted: PowerState,
        /// The state the device kept reporting.
        still: PowerState,
        /// How long we polled.
        after: Duration,
    },
    /// The device answered with something we could not use.
    #[error("protocol error with {address}: {detail}")]
    Protocol {
        /// The device address.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The configuration asks for an insecure protocol without allowing it.
    #[error("refused insecure {what}: set allowInsecure on the fence device to permit it")]
    InsecureRefused {
        /// The insecure feature asked for.
        what: String,
    },
    /// The configuration asks for something the IPMI library cannot do.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The password could not be read from its reference (or was written inline).
    #[error("BMC password: {0}")]
    Credentials(#[from] crate::secret::SecretError),
    /// The device configuration is invalid.
    #[error("invalid fence configuration: {0}")]
    Config(String),
    /// The fence ran out of its overall time budget.
    #[error("fence timeout of {0:?} exhausted")]
    Deadline(Duration),
    /// The reconciler lost quorum before sending a power command (invariant 2).
    #[error("not sent: {0}")]
    NoQuorum(String),
}

impl FenceError {
    /// Whether trying again could help: transport trouble and unconfirmed power states may
    /// clear; refused credentials, refused insecure settings and bad configuration will not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FenceError::Unreachable { .. }
                | FenceError::Timeout { .. }
                | FenceError::NotConfirmed { .. }
                | FenceError::Protocol { .. }
        )
    }

    /// A short machine-friendly name of the error kind, for records.
    pub fn kind(&self) -> &'static str {
        match self {
            FenceError::Auth { .. } => "auth",
            FenceError::Unreachable { .. } => "unreachable",
            FenceError::Timeout { .. } => "timeout",
            FenceError::NotConfirmed { .. } => "not-confirmed",
            FenceError::Protocol { .. } => "protocol",
            FenceError::InsecureRefused { .. } => "insecure-refused",
            FenceError::Unsupported { .. } => "unsupported",
            FenceError::Credentials(_) => "credentials",
            FenceError::Config(_) => "config",
            FenceError::Deadline(_) => "deadline",
            FenceError::NoQuorum(_) => "no-quorum",
        }
    }
}

/// One fence device: every answer is a state the device confirmed.
///
/// Object safe, so a topology holds `Box<dyn FenceAgent>`; the simulation implements it
/// in memory.
#[async_trait]
pub trait FenceAgent: Send + Sync {
    /// A description for logs and reports (kind and address; never credentials).
    fn describe(&self) -> String;

    /// Asks the device for the node's power state.
    async fn status(&self) -> Result<PowerState, FenceError>;

    /// Powers the node off; `Ok` only once the device reports it off.
    async fn off(&self) -> Result<PowerState, FenceError>;

    /// Powers the node on; `Ok` only once the device reports it on.
    async fn on(&self) -> Result<PowerState, FenceError>;

    /// Reboots the node; `Ok` only once the device reports it on again.
    async fn reboot(&self) -> Result<PowerState, FenceError>;

    /// Runs `action` through the matching method.
    async fn run(&self, action: FenceAction) -> Result<PowerState, FenceError> {
        match action {
            FenceAction::Off => self.off().await,
            FenceAction::On => self.on().await,
            FenceAction::Reboot => self.reboot().await,
            FenceAction::Status => self.status().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_round_trip() {
        for a in [
            FenceAction::Off,
            FenceAction::On,
            FenceAction::Reboot,
            FenceAction::Status,
        ] {
            assert_eq!(FenceAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(FenceAction::parse("cycle"), None);
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let auth = FenceError::Auth {
            address: "a".into(),
            reason: "r".into(),
        };
        assert!(!auth.is_retryable());
        assert!(!FenceError::Config("x".into()).is_retryable());
        let t = FenceError::Timeout {
            address: "a".into(),
            after: Duration::from_secs(1),
            during: "ping".into(),
        };
        assert!(t.is_retryable());
    }
}
