//! Secrets (BMC passwords, secret environment values): referenced in specs, read only at
//! the moment of use, wiped from memory on drop, redacted in every `Debug` and `Display`
//! (design invariant 7: secrets never appear in logs, errors, plans or state).
//!
//! Specs live in git, so a secret is never written in them: a spec names an environment
//! variable or a file that holds it ([`SecretRef`]). An inline value is accepted by the
//! parser only so that validation can report it as an error; the value itself is dropped
//! at once and never stored, and [`SecretRef::read`] refuses it.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

mod file;
mod policy;

pub use file::MAX_SECRET_FILE_BYTES;
pub use policy::{DEFAULT_ENV_PREFIX, DEFAULT_SECRETS_DIR, PolicyError, SecretPolicy};

/// The words that make an environment variable's name say it holds a secret.
pub const SECRET_NAME_WORDS: [&str; 4] = ["PASSWORD", "TOKEN", "SECRET", "KEY"];

/// Whether an environment variable called `name` holds a secret by its name
/// (`DB_PASSWORD`, `api_token`, `SECRET_KEY_BASE`): one of [`SECRET_NAME_WORDS`] in it,
/// whatever the case. Its inline value is masked in every output, and validation warns.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_NAME_WORDS.iter().any(|w| {
        name.windows(w.len())
            .any(|part| part.eq_ignore_ascii_case(w.as_bytes()))
    })
}

/// Where a secret comes from. Holds the reference, never the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// The value of an environment variable of the quorate process, by name.
    FromEnv(String),
    /// The content of a file (one trailing newline removed), by path.
    FromFile(PathBuf),
    /// Written inline in the spec: an error. The value is not kept.
    Inline,
}

/// Why a secret could not be read. Names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The spec wrote the secret inline.
    #[error(
        "inline secrets are refused: reference it with `fromEnv: VARIABLE` or `fromFile: /path`"
    )]
    Inline,
    /// The variable or file could not be read, or held nothing.
    #[error("cannot read the secret from {reference}: {reason}")]
    Unreadable {
        /// The reference, e.g. `env BMC_PASS` or `file /etc/quorate/bmc1`.
        reference: String,
        /// Why (never the value).
        reason: String,
    },
    /// The reference is outside what the operator allows ([`SecretPolicy`]).
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl SecretRef {
    /// A description naming the reference (not the value), for errors and reports.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::FromEnv(name) => format!("env {name}"),
            SecretRef::FromFile(path) => format!("file {}", path.display()),
            SecretRef::Inline => "an inline value".into(),
        }
    }

    /// Reads a secret a spec references, now, if `policy` allows it: the reference is
    /// checked and resolved first ([`SecretPolicy::resolve`]), so a spec cannot read a file
    /// or variable of the reconciler's host the operator did not allow. Blocking I/O.
    pub fn read_with(&self, policy: &SecretPolicy) -> Result<Secret, SecretError> {
        // A resolved file path has no symlink left: one that appears now is refused.
        let no_follow = !policy.is_unrestricted();
        policy.resolve(self)?.read_bytes(no_follow)
    }

    /// Reads the secret now. Call it just before use and drop the result right after.
    /// No policy: for references the operator gave (flags); a spec's go through
    /// [`SecretRef::read_with`].
    ///
    /// A file is read only if it is a regular file of at most [`MAX_SECRET_FILE_BYTES`]
    /// (a device, FIFO or socket is refused without waiting). This does blocking I/O for a
    /// file reference: call it off the async threads.
    pub fn read(&self) -> Result<Secret, SecretError> {
        self.read_bytes(false)
    }

    fn read_bytes(&self, no_follow: bool) -> Result<Secret, SecretError> {
        let fail = |reason: String| SecretError::Unreadable {
            reference: self.describe(),
            reason,
        };
        let mut bytes = match self {
            SecretRef::FromEnv(name) => match std::env::var_os(name) {
                Some(v) => Zeroizing::new(v.into_encoded_bytes()),
                None => return Err(fail("the variable is not set".into())),
            },
            SecretRef::FromFile(path) => {
                file::read_regular(path, no_follow).map_err(|e| fail(e.to_string()))?
            }
            SecretRef::Inline => return Err(SecretError::Inline),
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

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::FromEnv(v) => write!(f, "fromEnv({v})"),
            SecretRef::FromFile(p) => write!(f, "fromFile({})", p.display()),
            SecretRef::Inline => f.write_str("inline(<redacted>)"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            SecretRef::FromEnv(v) => m.serialize_entry("fromEnv", v)?,
            SecretRef::FromFile(p) => m.serialize_entry("fromFile", p)?,
            SecretRef::Inline => m.serialize_entry("inline", "<redacted>")?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`fromEnv: VARIABLE` or `fromFile: /path`")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Ok(SecretRef::Inline)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Ok(SecretRef::Inline)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Ok(SecretRef::Inline)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<SecretRef, A::Error> {
                let mut found = None;
                while let Some(key) = m.next_key::<Cow<'de, str>>()? {
                    let value = match key.as_ref() {
                        "fromEnv" => SecretRef::FromEnv(m.next_value()?),
                        "fromFile" => SecretRef::FromFile(m.next_value()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["fromEnv", "fromFile"]));
                        }
                    };
                    if found.replace(value).is_some() {
                        return Err(de::Error::custom(
                            "give exactly one of `fromEnv` or `fromFile`",
                        ));
                    }
                }
                found.ok_or_else(|| de::Error::custom("give one of `fromEnv` or `fromFile`"))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A secret, by reference only: an environment variable or a file",
            "oneOf": [
                {"type": "object", "properties": {"fromEnv": {"type": "string"}},
                 "required": ["fromEnv"], "additionalProperties": false},
                {"type": "object", "properties": {"fromFile": {"type": "string"}},
                 "required": ["fromFile"], "additionalProperties": false}
            ]
        })
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

    /// The raw bytes, for handing to a protocol library.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, if it is UTF-8 (an environment value handed to a container).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
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
    use crate::load::{de::from_node, yaml::parse_documents};

    #[test]
    fn secret_names_are_recognised_in_any_case() {
        for name in [
            "DB_PASSWORD",
            "api_token",
            "SecretKeyBase",
            "AWS_ACCESS_KEY_ID",
            "key",
            "ключ_Token",
            "db_passworD",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "POSTGRES_DB",
            "PASSWD_FILE_PATH",
            "TOKYO",
            "KE",
            "ключ",
            "PASS_WORD",
            "",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    fn parse(s: &str) -> Result<SecretRef, String> {
        let n = parse_documents(s.as_bytes()).unwrap().remove(0);
        from_node(&n).map_err(|e| e.to_string())
    }

    #[test]
    fn references_parse_and_inline_values_are_dropped() {
        assert_eq!(
            parse("fromEnv: BMC_PW"),
            Ok(SecretRef::FromEnv("BMC_PW".into()))
        );
        assert_eq!(
            parse("fromFile: /etc/pw"),
            Ok(SecretRef::FromFile("/etc/pw".into()))
        );
        assert_eq!(parse("hunter2"), Ok(SecretRef::Inline));
        assert!(!format!("{:?}", SecretRef::Inline).contains("hunter2"));
        assert!(parse("{fromEnv: A, fromFile: /b}").is_err());
        assert!(parse("{}").is_err());
        assert!(
            parse("fromEnvv: A")
                .unwrap_err()
                .contains("did you mean `fromEnv`")
        );
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new(b"hunter2-xyz".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), b"hunter2-xyz");
        assert_eq!(s.expose_str(), Some("hunter2-xyz"));
        assert_eq!(Secret::new(vec![0xff, 0xfe]).expose_str(), None);
    }

    #[test]
    fn file_reference_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "abc\r\n").unwrap();
        let s = SecretRef::FromFile(p).read().unwrap();
        assert_eq!(s.expose(), b"abc");
    }

    #[test]
    fn missing_file_error_names_path_not_value() {
        let e = SecretRef::FromFile("/nonexistent/quorate-pw".into())
            .read()
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/quorate-pw"), "{msg}");
        assert!(matches!(e, SecretError::Unreadable { .. }));
    }

    #[test]
    fn devices_and_fifos_are_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [PathBuf::from("/dev/zero"), fifo] {
            let (tx, rx) = std::sync::mpsc::channel();
            let r = SecretRef::FromFile(path.clone());
            std::thread::spawn(move || tx.send(r.read().map(|_| ()).map_err(|e| e.to_string())));
            let got = rx
                .recv_timeout(std::time::Duration::from_secs(2))
                .unwrap_or_else(|_| panic!("reading {} did not return in 2 s", path.display()));
            let e = got.unwrap_err();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "\n").unwrap();
        assert!(SecretRef::FromFile(p).read().is_err());
    }

    #[test]
    fn unset_env_is_refused() {
        let e = SecretRef::FromEnv("QUORATE_TEST_SURELY_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(e.to_string().contains("QUORATE_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn env_reference_reads_the_variable() {
        // PATH is set in every test environment and is never empty.
        let s = SecretRef::FromEnv("PATH".into()).read().unwrap();
        assert_eq!(
            s.expose(),
            std::env::var_os("PATH").unwrap().as_encoded_bytes()
        );
    }

    #[test]
    fn inline_is_refused_on_read() {
        let e = SecretRef::Inline.read().unwrap_err();
        assert_eq!(e, SecretError::Inline);
        assert!(e.to_string().contains("inline secrets are refused"), "{e}");
    }
}
