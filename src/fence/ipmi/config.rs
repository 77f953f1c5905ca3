//! The configuration of one IPMI fence device, and what of it the agent accepts.

use std::time::Duration;

use crate::fence::FenceError;
use crate::secret::{SecretError, SecretPolicy, SecretRef};

/// How the agent reaches the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// IPMI 2.0 RMCP+ (`ipmitool -I lanplus`).
    Lanplus,
    /// IPMI 1.5 (`ipmitool -I lan`): weak authentication, refused unless allowed.
    Lan,
}

/// The session privilege the agent raises to before Chassis Control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Operator: enough for Chassis Control on most BMCs.
    Operator,
    /// Administrator.
    Administrator,
}

impl Privilege {
    pub(super) fn code(self) -> u8 {
        match self {
            Privilege::Operator => 0x03,
            Privilege::Administrator => 0x04,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Privilege::Operator => "operator",
            Privilege::Administrator => "administrator",
        }
    }
}

/// How `reboot` is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMethod {
    /// Power off, confirm off, power on, confirm on. The off is observed.
    OnOff,
    /// One power cycle command, then confirm on. The off is not observed.
    Cycle,
}

/// One IPMI fence device. Holds a reference to the password, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiConfig {
    /// BMC host name or address.
    pub address: String,
    /// BMC UDP port (623 by default).
    pub port: u16,
    /// BMC user name.
    pub username: String,
    /// Where the password is read from, at use.
    pub password: SecretRef,
    /// The references `password` may be (checked here and again at use). A device from a
    /// spec has the operator's policy; [`IpmiConfig::new`] (references the operator wrote)
    /// has none.
    pub secrets: SecretPolicy,
    /// RMCP+ cipher suite; only 3 is supported.
    pub cipher_suite: u8,
    /// Session privilege to raise to.
    pub privilege: Privilege,
    /// RMCP+ or IPMI 1.5.
    pub interface: Interface,
    /// Permits IPMI 1.5 (and would permit cipher suite 0, which `ipmi-rs` cannot do).
    /// Spec validation warns about it; the agent refuses both without it.
    pub allow_insecure: bool,
    /// How long to keep polling for the new power state after the BMC accepted a command.
    pub power_wait: Duration,
    /// The limit for each single exchange with the BMC.
    pub timeout: Duration,
    /// How `reboot` is done.
    pub method: RebootMethod,
}

impl IpmiConfig {
    /// A config with the usual defaults: port 623, lanplus, cipher suite 3, administrator,
    /// power wait 20 s, exchange timeout 5 s, reboot by off then on.
    pub fn new(
        address: impl Into<String>,
        username: impl Into<String>,
        password: SecretRef,
    ) -> Self {
        IpmiConfig {
            address: address.into(),
            port: 623,
            username: username.into(),
            password,
            secrets: SecretPolicy::unrestricted(),
            cipher_suite: 3,
            privilege: Privilege::Administrator,
            interface: Interface::Lanplus,
            allow_insecure: false,
            power_wait: Duration::from_secs(20),
            timeout: Duration::from_secs(5),
            method: RebootMethod::OnOff,
        }
    }

    /// Checks what the agent can do safely. Spec validation already rejects insecure
    /// settings that are not explicitly allowed; the agent refuses them again here.
    pub fn validate(&self) -> Result<(), FenceError> {
        if self.address.is_empty() {
            return Err(FenceError::Config("the BMC address is empty".into()));
        }
        if self.username.len() > 16 {
            return Err(FenceError::Config(
                "the BMC user name is longer than 16 bytes".into(),
            ));
        }
        if self.password == SecretRef::Inline {
            return Err(FenceError::Credentials(SecretError::Inline));
        }
        self.secrets
            .check(&self.password)
            .map_err(|e| FenceError::Credentials(e.into()))?;
        if self.timeout.is_zero() {
            return Err(FenceError::Config("the exchange timeout is zero".into()));
        }
        match (self.interface, self.cipher_suite) {
            (Interface::Lan, _) if !self.allow_insecure => Err(FenceError::InsecureRefused {
                what: "IPMI 1.5 (interface lan)".into(),
            }),
            (Interface::Lan, _) | (Interface::Lanplus, 3) => Ok(()),
            (Interface::Lanplus, 0) if !self.allow_insecure => Err(FenceError::InsecureRefused {
                what: "cipher suite 0 (no authentication, no integrity, no encryption)".into(),
            }),
            (Interface::Lanplus, n) => Err(FenceError::Unsupported {
                what: format!(
                    "cipher suite {n}: ipmi-rs 0.6 negotiates only cipher suite 3 \
                     (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128)"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IpmiConfig {
        IpmiConfig::new("127.0.0.1", "admin", SecretRef::FromEnv("X".into()))
    }

    #[test]
    fn inline_password_is_refused() {
        let mut c = config();
        c.password = SecretRef::Inline;
        assert!(matches!(
            c.validate(),
            Err(FenceError::Credentials(SecretError::Inline))
        ));
    }

    #[test]
    fn a_password_outside_the_secret_policy_is_refused() {
        let mut c = config();
        c.secrets = SecretPolicy::default();
        assert!(matches!(
            c.validate(),
            Err(FenceError::Credentials(SecretError::Policy(_)))
        ));
        c.password = SecretRef::FromEnv("QUORATE_SECRET_BMC".into());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn defaults_are_secure_and_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn ipmi_1_5_needs_allow_insecure() {
        let mut c = config();
        c.interface = Interface::Lan;
        assert!(matches!(
            c.validate(),
            Err(FenceError::InsecureRefused { .. })
        ));
        c.allow_insecure = true;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn cipher_suite_0_refused_then_unsupported() {
        let mut c = config();
        c.cipher_suite = 0;
        assert!(matches!(
            c.validate(),
            Err(FenceError::InsecureRefused { .. })
        ));
        c.allow_insecure = true;
        assert!(matches!(c.validate(), Err(FenceError::Unsupported { .. })));
    }

    #[test]
    fn other_cipher_suites_unsupported() {
        let mut c = config();
        c.cipher_suite = 17;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("cipher suite 17"), "{e}");
    }
}
