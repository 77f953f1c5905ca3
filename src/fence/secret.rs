//! BMC credentials: named by reference in the config, read only at the moment of use,
//! wiped from memory on drop, and redacted in every `Debug` and `Display` (design
//! invariant 7: secrets never appear in logs, errors, plans or state).

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::FenceError;

/// Where a secret is read from. Holds the reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value of an environment variable, by name.
    FromEnv(String),
    /// The contents of a file (one trailing newline removed), by path.
    FromFile(PathBuf),
}

impl SecretSource {
    /// A description naming the source (not the value), for errors and reports.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::FromEnv(name) => format!("env {name}"),
            SecretSource::FromFile(path) => format!("file {}", path.display()),
        }
    }

    /// Reads the secret now. Call it just before use and drop the result right after.
    ///
    /// This does blocking I/O for a file source: call it off the async threads.
    pub fn read(&self) -> Result<Secret, FenceError> {
        let fail = |reason: String| FenceError::Credentials {
            source_name: self.describe(),
            reason,
        };
        let mut bytes = match self {
            SecretSource::FromEnv(name) => match std::env::var_os(name) {
                Some(v) => Zeroizing::new(v.into_encoded_bytes()),
                None => return Err(fail("the variable is not set".into())),
            },
            SecretSource::FromFile(path) => match std::fs::read(path) {
                Ok(v) => Zeroizing::new(v),
                // The io error names the kind only (not found, permission denied).
                Err(e) => return Err(fail(e.kind().to_string())),
            },
        };
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            return Err(fail("it is empty".into()));
        }
        Ok(Secret(bytes))
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A secret value. Its memory is zeroed on drop; `Debug` and `Display` print `<redacted>`.
/// It is deliberately neither `Clone` nor serializable.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes as a secret (taking ownership, so no copy is left behind).
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The raw bytes, for handing to the protocol library.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes (IPMI limits passwords to 16 or 20 bytes).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new(b"hunter2-xyz".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), b"hunter2-xyz");
    }

    #[test]
    fn file_source_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "abc\r\n").unwrap();
        let s = SecretSource::FromFile(p).read().unwrap();
        assert_eq!(s.expose(), b"abc");
    }

    #[test]
    fn missing_file_error_names_path_not_value() {
        let e = SecretSource::FromFile("/nonexistent/quorate-pw".into())
            .read()
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/quorate-pw"), "{msg}");
        assert!(matches!(e, FenceError::Credentials { .. }));
    }

    #[test]
    fn empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "\n").unwrap();
        assert!(SecretSource::FromFile(p).read().is_err());
    }

    #[test]
    fn unset_env_is_refused() {
        let e = SecretSource::FromEnv("QUORATE_TEST_SURELY_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(e.to_string().contains("QUORATE_TEST_SURELY_UNSET_VAR"));
    }
}
