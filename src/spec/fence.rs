//! `kind: Fence`: a device that can power nodes off (STONITH), here an IPMI BMC.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{Duration, Name, Port};
use crate::secret::SecretRef;

/// The spec of a `Fence` device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FenceSpec {
    /// Nodes this device can power off.
    pub targets: Vec<Name>,
    /// Topology level: level 1 is tried first, then 2, and so on; every device of a level
    /// must succeed for the level to succeed.
    #[serde(default = "one")]
    pub level: u32,
    /// The IPMI endpoint.
    pub ipmi: IpmiSpec,
    /// How a `reboot` is done: `onoff` (power off, confirm off, power on, confirm on) or
    /// `cycle` (one power cycle command, confirm on). A fence (`off`) is the same with
    /// either: power off, confirm off.
    #[serde(default)]
    pub method: FenceMethod,
    /// How long to keep asking the device for the power state after it accepted a power
    /// command, until it reports the state asked for (polled from the first moment, with
    /// growing pauses up to 1s). A device that still reports the old state after this
    /// window has not confirmed, and the try fails.
    #[serde(default = "default_power_wait")]
    pub power_wait: Duration,
    /// Delay before acting; give one side of a two-node cluster a delay so the two
    /// never fence each other at once.
    #[serde(default)]
    pub delay: Duration,
}

fn one() -> u32 {
    1
}

fn default_power_wait() -> Duration {
    Duration::from_secs(20)
}

/// How to reach a BMC over IPMI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpmiSpec {
    /// BMC host name or address.
    pub address: String,
    /// UDP port.
    #[serde(default = "default_ipmi_port")]
    pub port: Port,
    /// BMC user.
    pub username: String,
    /// BMC password, by reference only (`fromEnv` or `fromFile`).
    pub password: SecretRef,
    /// `lanplus` (IPMI 2.0 RMCP+, the default) or `lan` (IPMI 1.5, insecure).
    #[serde(default)]
    pub interface: IpmiInterface,
    /// RMCP+ cipher suite; 3 (AES-CBC-128, HMAC-SHA1) by default. 0 sends no
    /// authentication and is refused unless `allowInsecure` is set.
    #[serde(default = "default_cipher_suite")]
    pub cipher_suite: u8,
    /// IPMI 1.5 authentication type (only with `interface: lan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<IpmiAuthType>,
    /// Privilege level the session is raised to.
    #[serde(default)]
    pub privilege: IpmiPrivilege,
    /// Allow cipher suite 0 and IPMI 1.5 `none`/`straight` authentication.
    #[serde(default)]
    pub allow_insecure: bool,
}

fn default_ipmi_port() -> Port {
    Port::IPMI
}

fn default_cipher_suite() -> u8 {
    3
}

/// IPMI transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpmiInterface {
    /// IPMI 2.0 RMCP+.
    #[default]
    Lanplus,
    /// IPMI 1.5.
    Lan,
}

/// IPMI 1.5 authentication types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpmiAuthType {
    /// No authentication (insecure).
    None,
    /// MD2.
    Md2,
    /// MD5.
    Md5,
    /// Password in clear text (insecure).
    Straight,
}

/// Session privilege level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpmiPrivilege {
    /// Operator: enough for chassis control on most BMCs.
    Operator,
    /// Administrator (the default).
    #[default]
    Administrator,
}

/// How a device reboots a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum FenceMethod {
    /// Power off, confirm off, power on, confirm on: the off is observed.
    #[default]
    Onoff,
    /// One power cycle command, then confirm on: the off is not observed.
    Cycle,
}
