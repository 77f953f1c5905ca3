//! Before any credential is used on `lanplus`: ask the BMC, without a session, whether it
//! offers IPMI 2.0 (RMCP+).
//!
//! `ipmi-rs` falls back to an IPMI 1.5 session when the BMC does not offer 2.0, and IPMI 1.5
//! "straight" authentication sends the password in clear. Its fallback cannot be turned
//! off, so this check runs first and refuses such a BMC before the password leaves the host
//! (design invariant 7). The session's version is checked again after activation.

use std::net::UdpSocket;
use std::time::Duration;

use crate::fence::FenceError;

/// RMCP (class IPMI) + IPMI 1.5 session header without auth + Get Channel Authentication
/// Capabilities (netfn App, cmd 0x38) for the current channel, asking for the IPMI 2.0
/// extended data, at administrator level.
const REQUEST: [u8; 23] = [
    0x06, 0x00, 0xFF, 0x07, // RMCP: version 1.0, no ack, class IPMI
    0x00, 0, 0, 0, 0, 0, 0, 0, 0,    // auth type none, sequence 0, session 0
    0x09, // message length
    0x20, 0x18, 0xC8, // BMC address, netfn App << 2, checksum
    0x81, 0x00, 0x38, // our address, sequence, command
    0x8E, 0x04, // channel "current" + v2.0 extended data, administrator
    0xB5, // checksum
];

/// What the BMC says it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Offers {
    pub ipmi15: bool,
    pub ipmi20: bool,
}

/// Reads a Get Channel Authentication Capabilities reply.
pub(super) fn parse(reply: &[u8]) -> Option<Offers> {
    // RMCP header (4), then the session header: auth type, sequence (4), session id (4),
    // an auth code (16) unless the auth type is none, and the message length.
    let auth_type = *reply.get(4)?;
    let ipmb = 4 + 9 + if auth_type == 0 { 0 } else { 16 } + 1;
    let msg = reply.get(ipmb..)?;
    // rqAddr, netfn, checksum, rsAddr, sequence, command, completion code, data...
    if *msg.get(1)? >> 2 != 0x07 || *msg.get(5)? != 0x38 || *msg.get(6)? != 0x00 {
        return None;
    }
    let support = *msg.get(8)?;
    let extended = *msg.get(10)?;
    let has_extended = support & 0x80 != 0;
    Some(Offers {
        ipmi15: !has_extended || extended & 0x01 != 0,
        ipmi20: has_extended && extended & 0x02 != 0,
    })
}

/// Refuses a BMC that does not offer RMCP+. One exchange, bounded by `timeout`.
pub(super) fn require_rmcp_plus(address: &str, timeout: Duration) -> Result<(), FenceError> {
    let fail = |e: std::io::Error| super::session::io_error(address, timeout, "capabilities", &e);
    let socket = UdpSocket::bind("[::]:0")
        .or_else(|_| UdpSocket::bind("0.0.0.0:0"))
        .map_err(fail)?;
    socket.set_read_timeout(Some(timeout)).map_err(fail)?;
    socket.connect(address).map_err(fail)?;
    socket.send(&REQUEST).map_err(fail)?;
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).map_err(fail)?;
    match parse(&buf[..n]) {
        Some(Offers { ipmi20: true, .. }) => Ok(()),
        Some(_) => Err(FenceError::InsecureRefused {
            what: format!("IPMI 1.5 session: {address} does not offer RMCP+ (lanplus)"),
        }),
        None => Err(FenceError::Protocol {
            address: address.to_string(),
            detail: "unreadable Get Channel Authentication Capabilities reply".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(support: u8, extended: u8) -> Vec<u8> {
        let mut r = vec![0x06, 0x00, 0xFF, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        r.extend([0x81, 0x1C, 0x63, 0x20, 0x00, 0x38, 0x00]);
        r.extend([0x01, support, 0x00, extended, 0, 0, 0, 0, 0x00]);
        r
    }

    #[test]
    fn request_checksums_hold() {
        let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
        assert_eq!(sum(&REQUEST[14..17]), 0);
        assert_eq!(sum(&REQUEST[17..23]), 0);
    }

    #[test]
    fn reads_ipmi_2_0_support() {
        let offers = parse(&reply(0x97, 0x03)).unwrap();
        assert_eq!(
            offers,
            Offers {
                ipmi15: true,
                ipmi20: true
            }
        );
        assert!(!parse(&reply(0x97, 0x01)).unwrap().ipmi20);
        assert!(
            !parse(&reply(0x17, 0x03)).unwrap().ipmi20,
            "no extended data"
        );
        assert_eq!(parse(&reply(0x97, 0x03)[..20]), None);
    }

    #[test]
    fn a_bmc_without_rmcp_plus_is_refused_before_any_password() {
        let bmc = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = bmc.local_addr().unwrap().to_string();
        let answer = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let (n, peer) = bmc.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &REQUEST);
            bmc.send_to(&reply(0x97, 0x01), peer).unwrap();
            // Nothing else may arrive: no session, no password.
            bmc.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            bmc.recv_from(&mut buf).is_err()
        });
        let e = require_rmcp_plus(&addr, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(e, FenceError::InsecureRefused { .. }), "{e:?}");
        assert!(
            answer.join().unwrap(),
            "the client sent more after the refusal"
        );
    }
}
