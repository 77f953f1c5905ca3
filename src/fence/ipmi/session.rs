//! One blocking IPMI-over-LAN session through `ipmi-rs`: open, raise the privilege, send raw
//! chassis commands, close. Everything here blocks the calling thread: the agent runs it
//! with `spawn_blocking`. Every exchange is bounded by the socket read timeout that
//! `ipmi-rs` sets from the configured timeout.

use std::io::ErrorKind;
use std::time::Duration;

use ipmi_rs::Ipmi;
use ipmi_rs::connection::{
    IpmiConnection, LogicalUnit, Message, Request, RequestTargetAddress, Response,
};
use ipmi_rs::rmcp::{
    ActivationError, RakpMessage2ParseError, Rmcp, RmcpIpmiError, RmcpIpmiReceiveError,
    RmcpIpmiSendError, UnwrapSessionError, V1_5ActivationError, V1_5ReadError, V1_5WriteError,
    V2_0ActivationError, V2_0WriteError,
};
use zeroize::Zeroizing;

use super::{Interface, Privilege};
use crate::fence::{FenceError, PowerState};
use crate::secret::Secret;

const NETFN_CHASSIS: u8 = 0x00;
const NETFN_APP: u8 = 0x06;
const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
const CMD_CHASSIS_CONTROL: u8 = 0x02;
const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
const CMD_CLOSE_SESSION: u8 = 0x3C;

/// The Chassis Control request codes (IPMI 2.0, section 28.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChassisControl {
    Down = 0x00,
    Up = 0x01,
    Cycle = 0x02,
}

/// What is needed to open a session. The password is borrowed only for the activation.
pub(crate) struct Target<'a> {
    pub address: &'a str,
    pub port: u16,
    pub timeout: Duration,
    pub interface: Interface,
    pub username: &'a str,
    pub privilege: Privilege,
}

/// An open, authenticated session raised to the configured privilege.
pub(crate) struct Session {
    ipmi: Ipmi<Rmcp>,
    address: String,
    timeout: Duration,
}

impl Session {
    /// Opens a session and raises it to the target privilege. The password is used for the
    /// key exchange only; `ipmi-rs` keeps its own copy for the session's lifetime.
    pub fn open(target: &Target<'_>, password: &Secret) -> Result<Session, FenceError> {
        let address = format!("{}:{}", target.address, target.port);
        let mut rmcp =
            Rmcp::new(address.as_str(), target.timeout).map_err(|e| FenceError::Unreachable {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        let plus = target.interface == Interface::Lanplus;
        if plus {
            super::preflight::require_rmcp_plus(&address, target.timeout)?;
        }
        rmcp.activate(plus, Some(target.username), Some(password.expose()))
            .map_err(|e| activation_error(&address, target.timeout, e))?;
        if plus && !is_rmcp_plus(&rmcp) {
            // ipmi-rs falls back to IPMI 1.5 silently when the BMC does not offer 2.0; the
            // preflight refused that already, this catches a BMC that changed its answer
            // (design invariant 7: no credentials over weak auth).
            return Err(FenceError::InsecureRefused {
                what: format!("IPMI 1.5 session: {address} does not offer RMCP+ (lanplus)"),
            });
        }
        let mut session = Session {
            ipmi: Ipmi::new(rmcp),
            address,
            timeout: target.timeout,
        };
        session.raise_privilege(target.privilege)?;
        Ok(session)
    }

    /// The address this session talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Set Session Privilege Level: a new session runs at User, where Chassis Control is
    /// refused with 0xD4.
    fn raise_privilege(&mut self, privilege: Privilege) -> Result<(), FenceError> {
        let level = privilege.code();
        let resp = self.exchange(
            NETFN_APP,
            CMD_SET_SESSION_PRIVILEGE,
            vec![level],
            "privilege",
        )?;
        match resp.cc() {
            0x00 => Ok(()),
            cc @ (0x80 | 0x81 | 0xD4) => Err(FenceError::Auth {
                address: self.address.clone(),
                reason: format!(
                    "the BMC refused {} privilege for this user (completion code 0x{cc:02X})",
                    privilege.as_str()
                ),
            }),
            cc => Err(self.refused("Set Session Privilege Level", cc)),
        }
    }

    /// Get Chassis Status: bit 0 of the first data byte is "power is on".
    pub fn power_state(&mut self) -> Result<PowerState, FenceError> {
        let resp = self.exchange(NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS, vec![], "status")?;
        if resp.cc() != 0 {
            return Err(self.refused("Get Chassis Status", resp.cc()));
        }
        match resp.data().first() {
            Some(b) if b & 0x01 == 1 => Ok(PowerState::On),
            Some(_) => Ok(PowerState::Off),
            None => Err(FenceError::Protocol {
                address: self.address.clone(),
                detail: "empty Get Chassis Status response".into(),
            }),
        }
    }

    /// Chassis Control: the BMC accepting the command is not a confirmation of anything.
    pub fn chassis_control(&mut self, control: ChassisControl) -> Result<(), FenceError> {
        let during = "chassis control";
        let resp = self.exchange(
            NETFN_CHASSIS,
            CMD_CHASSIS_CONTROL,
            vec![control as u8],
            during,
        )?;
        match resp.cc() {
            0x00 => Ok(()),
            0xD4 => Err(FenceError::Auth {
                address: self.address.clone(),
                reason: "insufficient privilege for Chassis Control (completion code 0xD4)".into(),
            }),
            cc => Err(self.refused("Chassis Control", cc)),
        }
    }

    /// Closes the session on the BMC (best effort: a BMC also expires idle sessions), so
    /// repeated fencing and status polls do not exhaust its few session slots.
    pub fn close(mut self) {
        let Some(id) = session_id(self.ipmi.inner_mut()) else {
            return;
        };
        let _ = self.exchange(
            NETFN_APP,
            CMD_CLOSE_SESSION,
            id.to_le_bytes().to_vec(),
            "close",
        );
    }

    fn exchange(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: Vec<u8>,
        during: &str,
    ) -> Result<Response, FenceError> {
        let mut req = Request::new(
            Message::new_raw(netfn, cmd, data),
            RequestTargetAddress::Bmc(LogicalUnit::Zero),
        );
        let resp = self
            .ipmi
            .inner_mut()
            .send_recv(&mut req)
            .map_err(|e| connection_error(&self.address, self.timeout, during, e))?;
        if resp.netfn_raw() != netfn + 1 || resp.cmd() != cmd {
            return Err(FenceError::Protocol {
                address: self.address.clone(),
                detail: format!(
                    "asked netfn 0x{netfn:02X} cmd 0x{cmd:02X}, got netfn 0x{:02X} cmd 0x{:02X}",
                    resp.netfn_raw(),
                    resp.cmd()
                ),
            });
        }
        Ok(resp)
    }

    fn refused(&self, command: &str, cc: u8) -> FenceError {
        FenceError::Protocol {
            address: self.address.clone(),
            detail: format!("{command} refused with completion code 0x{cc:02X}"),
        }
    }
}

/// Whether `ipmi-rs` ended up with an RMCP+ (IPMI 2.0) session. Its session state is
/// private, so this reads its `Debug` output (which redacts the password) and fails closed:
/// anything but a visible 2.0 state counts as not RMCP+.
fn is_rmcp_plus(rmcp: &Rmcp) -> bool {
    let debug = Zeroizing::new(format!("{rmcp:?}"));
    debug.contains("V2_0(") && !debug.contains("V1_5(State")
}

/// The BMC's ID of the open session. `ipmi-rs` keeps it private, so it is read from the
/// `Debug` output (the field `session_id: N`, or `Some(N)` for IPMI 1.5).
fn session_id(rmcp: &Rmcp) -> Option<u32> {
    let debug = Zeroizing::new(format!("{rmcp:?}"));
    let rest = &debug[debug.find("session_id: ")? + "session_id: ".len()..];
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok().filter(|&id| id != 0)
}

pub(super) fn io_error(
    address: &str,
    timeout: Duration,
    during: &str,
    e: &std::io::Error,
) -> FenceError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => FenceError::Timeout {
            address: address.to_string(),
            after: timeout,
            during: during.to_string(),
        },
        _ => FenceError::Unreachable {
            address: address.to_string(),
            reason: e.to_string(),
        },
    }
}

fn receive_error(
    address: &str,
    timeout: Duration,
    during: &str,
    e: &RmcpIpmiReceiveError,
) -> FenceError {
    match e {
        RmcpIpmiReceiveError::Io(io) => io_error(address, timeout, during, io),
        other => FenceError::Protocol {
            address: address.to_string(),
            detail: format!("{during}: {other:?}"),
        },
    }
}

fn connection_error(
    address: &str,
    timeout: Duration,
    during: &str,
    e: RmcpIpmiError,
) -> FenceError {
    match &e {
        RmcpIpmiError::Receive(r) => receive_error(address, timeout, during, r),
        RmcpIpmiError::Send(RmcpIpmiSendError::V1_5(V1_5WriteError::Io(io)))
        | RmcpIpmiError::Send(RmcpIpmiSendError::V2_0(V2_0WriteError::Io(io))) => {
            io_error(address, timeout, during, io)
        }
        other => FenceError::Protocol {
            address: address.to_string(),
            detail: format!("{during}: {other:?}"),
        },
    }
}

/// `ipmi-rs` 0.6 computes the IPMI 1.5 reply auth code over the length byte too, so every
/// MD5/MD2-authenticated reply fails its check.
fn is_v15_authcode_error(c: &RmcpIpmiError) -> bool {
    matches!(
        c,
        RmcpIpmiError::Receive(RmcpIpmiReceiveError::Session(UnwrapSessionError::V1_5(
            V1_5ReadError::AuthcodeError
        )))
    )
}

fn auth(address: &str, reason: &str) -> FenceError {
    FenceError::Auth {
        address: address.to_string(),
        reason: reason.to_string(),
    }
}

/// Maps a failed session activation. The `Debug` forms of `ipmi-rs` errors carry codes and
/// response bytes, never the password.
fn activation_error(address: &str, timeout: Duration, e: ActivationError) -> FenceError {
    use V2_0ActivationError as V2;
    let io = |during: &str, e: &std::io::Error| io_error(address, timeout, during, e);
    let recv = |during: &str, e: &RmcpIpmiReceiveError| receive_error(address, timeout, during, e);
    match e {
        ActivationError::BindSocket(e) | ActivationError::PingSend(e) => io("RMCP ping", &e),
        ActivationError::PongReceive(e) => io("RMCP ping", &e),
        ActivationError::GetChannelAuthenticationCapabilities(ipmi_rs::IpmiError::Connection(
            c,
        )) => connection_error(address, timeout, "authentication capabilities", c),
        ActivationError::V2_0(v2) => match v2 {
            V2::Io(e) => io("RMCP+ open session", &e),
            V2::OpenSessionResponseReceive(e) => recv("RMCP+ open session", &e),
            V2::RakpMessage2Receive(e) => recv("RAKP message 2", &e),
            V2::RakpMessage4Receive(e) => recv("RAKP message 4", &e),
            V2::RakpMessage2Parse(RakpMessage2ParseError::ErrorStatusCode(code)) => {
                auth(address, &format!("the BMC refused the user ({code:?})"))
            }
            V2::ServerAuthenticationFailed => auth(
                address,
                "wrong password (the BMC's RAKP message 2 does not match it)",
            ),
            V2::RakpMessage4InvalidIntegrityCheckValue | V2::RakpMessage4Parse(_) => {
                auth(address, "the BMC refused the key exchange (RAKP message 4)")
            }
            other => FenceError::Protocol {
                address: address.to_string(),
                detail: format!("RMCP+ session: {other:?}"),
            },
        },
        ActivationError::V1_5(V1_5ActivationError::PasswordTooLong) => {
            FenceError::Config("the password is longer than the 16 bytes IPMI 1.5 allows".into())
        }
        ActivationError::V1_5(V1_5ActivationError::ActivateSession(
            ipmi_rs::IpmiError::Connection(c),
        ))
        | ActivationError::V1_5(V1_5ActivationError::GetSessionChallenge(
            ipmi_rs::IpmiError::Connection(c),
        )) if is_v15_authcode_error(&c) => FenceError::Unsupported {
            what: format!(
                "IPMI 1.5 with MD5/MD2 authentication at {address}: ipmi-rs 0.6 rejects the \
                 BMC's authenticated replies; it works only where the BMC allows 'straight' \
                 (clear-text password) or 'none' authentication"
            ),
        },
        ActivationError::V1_5(V1_5ActivationError::ActivateSession(
            ipmi_rs::IpmiError::Connection(c),
        ))
        | ActivationError::V1_5(V1_5ActivationError::GetSessionChallenge(
            ipmi_rs::IpmiError::Connection(c),
        )) => connection_error(address, timeout, "IPMI 1.5 session", c),
        ActivationError::V1_5(V1_5ActivationError::ActivateSession(_))
        | ActivationError::V1_5(V1_5ActivationError::GetSessionChallenge(_)) => {
            auth(address, "the BMC refused the IPMI 1.5 session")
        }
        other => FenceError::Protocol {
            address: address.to_string(),
            detail: format!("session activation: {other:?}"),
        },
    }
}
