//! The IPMI fence agent: chassis power through a BMC over RMCP+ (`lanplus`), by `ipmi-rs`.
//!
//! What `ipmi-rs` 0.6 can do decides what this agent accepts:
//! - RMCP+ with cipher suite 3 only (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128): it proposes
//!   exactly that suite. Any other suite is refused as unsupported.
//! - Cipher suite 0 (no authentication) is refused as insecure, and would be unsupported
//!   anyway (`ipmi-rs` has no RAKP-none).
//! - IPMI 1.5 sessions (interface `lan`) are refused unless `allow_insecure` is set, and even
//!   then work only with BMCs that allow `straight` (clear-text password) or `none`
//!   authentication: `ipmi-rs` 0.6 rejects every MD5/MD2-authenticated reply (it checks the
//!   auth code over the length byte too). Against such a BMC the agent says so
//!   ([`FenceError::Unsupported`]).
//! - A BMC without RMCP+ makes `ipmi-rs` fall back to IPMI 1.5 silently (and "straight"
//!   IPMI 1.5 authentication sends the password in clear); on `lanplus` the agent asks the
//!   BMC first and refuses before using the password, and checks the session after.
//!
//! `ipmi-rs` blocks: every session step runs under `spawn_blocking`, every exchange is
//! bounded by the socket read timeout (`timeout`), and each blocking step is also bounded by
//! a `tokio::time` guard.

mod config;
mod preflight;
mod session;

pub use config::{Interface, IpmiConfig, Privilege, RebootMethod};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use self::session::{ChassisControl, Session, Target};
use super::{FenceAgent, FenceError, PowerState};

/// First pause between power-state polls; doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_secs(1);
/// Exchanges in a session setup (preflight, ping, capabilities, open session, RAKP 1 and 3,
/// set privilege), for the `tokio` guard around a blocking step.
const OPEN_EXCHANGES: u32 = 7;

/// A fence agent for one BMC.
#[derive(Debug, Clone)]
pub struct IpmiAgent {
    config: Arc<IpmiConfig>,
}

impl IpmiAgent {
    /// Creates the agent after checking the config ([`IpmiConfig::validate`]).
    pub fn new(config: IpmiConfig) -> Result<Self, FenceError> {
        config.validate()?;
        Ok(IpmiAgent {
            config: Arc::new(config),
        })
    }

    fn address(&self) -> String {
        format!("{}:{}", self.config.address, self.config.port)
    }

    /// Runs one blocking step off the async threads, bounded by `exchanges` timeouts.
    async fn blocking<T, F>(&self, exchanges: u32, during: &str, f: F) -> Result<T, FenceError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, FenceError> + Send + 'static,
    {
        let guard = self.config.timeout * exchanges + Duration::from_millis(500);
        match tokio::time::timeout(guard, tokio::task::spawn_blocking(f)).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(FenceError::Protocol {
                address: self.address(),
                detail: format!("the IPMI task failed during {during}: {join}"),
            }),
            Err(_) => Err(FenceError::Timeout {
                address: self.address(),
                after: guard,
                during: during.to_string(),
            }),
        }
    }

    /// Reads the password and opens a session; the password is dropped (and zeroed) as soon
    /// as the key exchange is done.
    async fn open(&self) -> Result<Session, FenceError> {
        let config = Arc::clone(&self.config);
        self.blocking(OPEN_EXCHANGES, "session setup", move || {
            // The operator's policy again, now: the file may have changed since the check.
            let password = config.password.read_with(&config.secrets)?;
            let max = if config.interface == Interface::Lan {
                16
            } else {
                20
            };
            if password.len() > max {
                return Err(FenceError::Config(format!(
                    "the password from {} is longer than the {max} bytes IPMI allows",
                    config.password.describe()
                )));
            }
            let target = Target {
                address: &config.address,
                port: config.port,
                timeout: config.timeout,
                interface: config.interface,
                username: &config.username,
                privilege: config.privilege,
            };
            Session::open(&target, &password)
        })
        .await
    }

    /// Runs one exchange on the session, handing the session back.
    async fn step<T, F>(
        &self,
        mut session: Session,
        during: &str,
        f: F,
    ) -> Result<(Session, T), FenceError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Session) -> Result<T, FenceError> + Send + 'static,
    {
        self.blocking(1, during, move || f(&mut session).map(|v| (session, v)))
            .await
    }

    /// Sends the control command, then polls until the BMC reports `wanted` or the power
    /// wait runs out. The BMC accepting the command is never taken as the result.
    async fn set_power(
        &self,
        session: Session,
        control: ChassisControl,
        wanted: PowerState,
    ) -> Result<Session, FenceError> {
        tracing::debug!(address = %self.address(), ?control, "chassis control");
        let (session, ()) = self
            .step(session, "chassis control", move |s| {
                s.chassis_control(control)
            })
            .await?;
        self.await_power(session, wanted).await
    }

    async fn await_power(
        &self,
        mut session: Session,
        wanted: PowerState,
    ) -> Result<Session, FenceError> {
        let started = Instant::now();
        let mut pauses = crate::backoff::delays(POLL_FIRST, POLL_MAX);
        loop {
            let (s, state) = self
                .step(session, "power status", |s| s.power_state())
                .await?;
            session = s;
            if state == wanted {
                tracing::debug!(address = %session.address(), %state, "power state confirmed");
                return Ok(session);
            }
            let waited = started.elapsed();
            if waited >= self.config.power_wait {
                close_detached(session);
                return Err(FenceError::NotConfirmed {
                    address: self.address(),
                    wanted,
                    still: state,
                    after: waited,
                });
            }
            let pause = pauses.next().unwrap_or(POLL_MAX);
            tokio::time::sleep(pause.min(self.config.power_wait - waited)).await;
        }
    }
}

/// Closes the session on the BMC without making the caller wait for it.
fn close_detached(session: Session) {
    drop(tokio::task::spawn_blocking(move || session.close()));
}

#[async_trait]
impl FenceAgent for IpmiAgent {
    fn describe(&self) -> String {
        let iface = match self.config.interface {
            Interface::Lanplus => "lanplus",
            Interface::Lan => "lan",
        };
        format!(
            "ipmi {iface} {} user {}",
            self.address(),
            self.config.username
        )
    }

    async fn status(&self) -> Result<PowerState, FenceError> {
        let session = self.open().await?;
        let (session, state) = self
            .step(session, "power status", |s| s.power_state())
            .await?;
        close_detached(session);
        Ok(state)
    }

    // Safety (invariant 3): Ok(Off) only after Get Chassis Status reported off.
    async fn off(&self) -> Result<PowerState, FenceError> {
        let session = self.open().await?;
        let session = self
            .set_power(session, ChassisControl::Down, PowerState::Off)
            .await?;
        close_detached(session);
        Ok(PowerState::Off)
    }

    // Safety: powering on starts no instance by itself (invariant 5: no runtime restart
    // policy); this is the operator's unfence.
    async fn on(&self) -> Result<PowerState, FenceError> {
        let session = self.open().await?;
        let session = self
            .set_power(session, ChassisControl::Up, PowerState::On)
            .await?;
        close_detached(session);
        Ok(PowerState::On)
    }

    // Safety: as `on`; with OnOff the off is confirmed before the node is powered on again.
    async fn reboot(&self) -> Result<PowerState, FenceError> {
        let session = self.open().await?;
        let session = match self.config.method {
            RebootMethod::OnOff => {
                let s = self
                    .set_power(session, ChassisControl::Down, PowerState::Off)
                    .await?;
                self.set_power(s, ChassisControl::Up, PowerState::On)
                    .await?
            }
            RebootMethod::Cycle => {
                // A power cycle does nothing to a chassis that is off: power it up instead.
                let (s, now) = self
                    .step(session, "power status", |s| s.power_state())
                    .await?;
                let control = match now {
                    PowerState::On => ChassisControl::Cycle,
                    PowerState::Off => ChassisControl::Up,
                };
                self.set_power(s, control, PowerState::On).await?
            }
        };
        close_detached(session);
        Ok(PowerState::On)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretRef;

    #[test]
    fn describe_names_no_secret_source_value() {
        let c = IpmiConfig::new("127.0.0.1", "admin", SecretRef::FromEnv("X".into()));
        let a = IpmiAgent::new(c).unwrap();
        assert_eq!(a.describe(), "ipmi lanplus 127.0.0.1:623 user admin");
    }

    #[test]
    fn insecure_config_gives_no_agent() {
        let mut c = IpmiConfig::new("127.0.0.1", "admin", SecretRef::FromEnv("X".into()));
        c.interface = Interface::Lan;
        assert!(matches!(
            IpmiAgent::new(c),
            Err(FenceError::InsecureRefused { .. })
        ));
    }
}
