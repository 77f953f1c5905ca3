//! References to secrets (BMC passwords, secret environment values).
//!
//! Specs live in git, so a secret is never written in them: a spec names an environment
//! variable or a file that holds it, and quorate reads it only when it needs it (design
//! invariant 7). An inline value is accepted by the parser only so that validation can
//! report it as an error; the value itself is dropped at once and never stored.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a secret comes from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// The value of an environment variable of the quorate process.
    FromEnv(String),
    /// The content of a file (trailing newline removed).
    FromFile(PathBuf),
    /// Written inline in the spec: an error. The value is not kept.
    Inline,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{de::from_node, yaml::parse_documents};

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
}
