//! Small value types of the spec language: names, scores, durations, ports.
//!
//! Each parses from its YAML spelling with a message that says what is accepted, prints
//! back in that spelling, and describes itself in JSON Schema.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Implements `Deserialize` through `FromStr` (plus an optional integer form), and
/// `Serialize` through `Display` (`@de`: only `Deserialize`).
macro_rules! string_value {
    ($ty:ty, $expecting:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        string_value!(@de $ty, $expecting);
    };
    (@de $ty:ty, $expecting:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        <$ty>::from_u64(v).map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        <$ty>::from_i64(v).map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// Wording for a value that has no integer form.
fn no_integer<T>(what: &str, hint: &str) -> Result<T, String> {
    Err(format!("expected {what}, found an integer; {hint}"))
}

// ---------------------------------------------------------------------------------------
// Name

/// A name of a node, bundle, fence, constraint or cluster: lower-case letters, digits and
/// `-`, starting with a letter, ending with a letter or digit, at most 63 characters (so it
/// fits a DNS label and a container name). Up to 24 bytes are kept inline, not on the
/// heap: planning compares and hashes names on every lookup, and inline they are read
/// with the entry that holds them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(CompactString);

impl Name {
    /// A name from a literal known to be valid.
    pub(crate) fn from_static(s: &'static str) -> Name {
        debug_assert!(s.parse::<Name>().is_ok(), "{s} is not a valid name");
        Name(CompactString::const_new(s))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// No name: a bundle field left out because the constraint gives resource sets
    /// instead (validation refuses it anywhere else).
    pub(crate) fn unset() -> Name {
        Name(CompactString::const_new(""))
    }

    /// Whether this is [`Name::unset`].
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }

    /// The name of a constraint quorate makes from a group or a resource set, readable
    /// in reasons (`group web: app after db`); never a name a spec can write, so it cannot
    /// collide with one.
    pub(crate) fn generated(text: String) -> Name {
        Name(CompactString::from(text))
    }

    fn from_u64(_: u64) -> Result<Self, String> {
        no_integer("a name", "names start with a letter")
    }
    fn from_i64(v: i64) -> Result<Self, String> {
        Self::from_u64(v.unsigned_abs())
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let starts = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let ends = s
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if s.is_empty() || s.len() > 63 || !ok_chars || !starts || !ends {
            return Err(format!(
                "invalid name `{}`: use 1-63 lower-case letters, digits and `-`, starting with a letter and ending with a letter or digit",
                s.chars().take(80).collect::<String>()
            ));
        }
        Ok(Name(CompactString::new(s)))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

string_value!(@de Name, "a name");

impl Serialize for Name {
    /// The name as it is, without going through `Display` (plans name every node and
    /// instance).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
            "description": "1-63 lower-case letters, digits and '-', starting with a letter"
        })
    }
}

// ---------------------------------------------------------------------------------------
// Score

/// A placement score, as Pacemaker counts them: an integer in ±1,000,000 where 1,000,000
/// is `INFINITY`. Addition saturates, and `-INFINITY` wins over `INFINITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Score(i64);

impl Score {
    /// The value of `INFINITY`.
    pub const INFINITY_VALUE: i64 = 1_000_000;
    /// `INFINITY`: must (for colocation), strongest preference (for location).
    pub const INFINITY: Score = Score(Self::INFINITY_VALUE);
    /// `-INFINITY`: never.
    pub const NEG_INFINITY: Score = Score(-Self::INFINITY_VALUE);
    /// No preference.
    pub const ZERO: Score = Score(0);

    /// A score, clamped to ±`INFINITY`.
    pub fn new(v: i64) -> Score {
        Score(v.clamp(-Self::INFINITY_VALUE, Self::INFINITY_VALUE))
    }

    /// The integer value.
    pub fn value(self) -> i64 {
        self.0
    }

    /// Whether this is `INFINITY`.
    pub fn is_infinity(self) -> bool {
        self == Self::INFINITY
    }

    /// Whether this is `-INFINITY`.
    pub fn is_neg_infinity(self) -> bool {
        self == Self::NEG_INFINITY
    }

    /// This score weighted by `factor` (a colocation's score over `INFINITY`), rounded
    /// half away from zero, and never rounded to zero from a score that is not
    /// (Pacemaker's rule); none for no score, or for a negative score through a negative
    /// factor.
    pub(crate) fn weighted(self, factor: f64) -> Option<Score> {
        let v = self.0;
        if v == 0 || (factor < 0.0 && v < 0) {
            return None;
        }
        #[allow(clippy::cast_possible_truncation)]
        let mut delta = (factor * v as f64).round() as i64;
        if delta == 0 {
            delta = if factor > 0.0 { 1 } else { -1 };
        }
        Some(Score::new(delta))
    }

    /// This score over `INFINITY`: the factor a colocation of this score weighs its
    /// dependent's scores by.
    pub(crate) fn factor(self) -> f64 {
        self.0 as f64 / Self::INFINITY_VALUE as f64
    }

    fn from_u64(v: u64) -> Result<Self, String> {
        Ok(Score::new(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(Score::new(v))
    }
}

impl std::ops::Add for Score {
    type Output = Score;
    /// Pacemaker's addition: `-INFINITY` absorbs everything, then `INFINITY`, otherwise the
    /// sum clamped to ±`INFINITY`.
    fn add(self, rhs: Score) -> Score {
        if self.is_neg_infinity() || rhs.is_neg_infinity() {
            Score::NEG_INFINITY
        } else if self.is_infinity() || rhs.is_infinity() {
            Score::INFINITY
        } else {
            Score::new(self.0.saturating_add(rhs.0))
        }
    }
}

impl std::ops::AddAssign for Score {
    fn add_assign(&mut self, rhs: Score) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for Score {
    fn sum<I: Iterator<Item = Score>>(iter: I) -> Score {
        iter.fold(Score::ZERO, |a, b| a + b)
    }
}

impl FromStr for Score {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "INFINITY" | "+INFINITY" => Ok(Score::INFINITY),
            "-INFINITY" => Ok(Score::NEG_INFINITY),
            t => t
                .parse::<i64>()
                .map(Score::new)
                .map_err(|_| format!("invalid score `{s}`: use an integer, INFINITY or -INFINITY")),
        }
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Score::INFINITY => f.write_str("INFINITY"),
            Score::NEG_INFINITY => f.write_str("-INFINITY"),
            Score(v) => write!(f, "{v}"),
        }
    }
}

string_value!(Score, "an integer score, INFINITY or -INFINITY");

impl JsonSchema for Score {
    fn schema_name() -> Cow<'static, str> {
        "Score".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An integer in ±1000000, INFINITY or -INFINITY",
            "anyOf": [
                {"type": "integer"},
                {"type": "string", "enum": ["INFINITY", "+INFINITY", "-INFINITY"]}
            ]
        })
    }
}

// ---------------------------------------------------------------------------------------
// Duration

/// A length of time written with units: `500ms`, `10s`, `5m`, `1h30m`, `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// The longest duration accepted: a year.
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }

    /// As a standard duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    fn from_u64(v: u64) -> Result<Self, String> {
        if v == 0 {
            return Ok(Duration::default());
        }
        Err(format!(
            "a duration needs a unit: write `{v}s` for seconds (units: ms, s, m, h, d)"
        ))
    }
    fn from_i64(v: i64) -> Result<Self, String> {
        Err(format!("a duration cannot be negative: {v}"))
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration `{s}`: use a number with a unit, like 500ms, 10s, 5m, 1h30m or 2d"
            )
        };
        let t = s.trim();
        if t == "0" {
            return Ok(Duration::default());
        }
        let mut total: u128 = 0;
        let mut rest = t;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let unit_len = rest[digits..]
                .bytes()
                .take_while(u8::is_ascii_alphabetic)
                .count();
            if digits == 0 || unit_len == 0 || digits > 12 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            let ms: u128 = match &rest[digits..digits + unit_len] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            total = total.saturating_add(n.saturating_mul(ms));
            rest = &rest[digits + unit_len..];
        }
        if total > Self::MAX.as_millis() {
            return Err(format!("duration `{s}` is longer than a year"));
        }
        Ok(Duration::from_millis(
            u64::try_from(total).map_err(|_| bad())?,
        ))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

string_value!(Duration, "a duration such as 10s or 5m");

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(0|([0-9]+(ms|s|m|h|d))+)$",
            "description": "A duration with units: 500ms, 10s, 5m, 1h30m, 2d"
        })
    }
}

// ---------------------------------------------------------------------------------------
// Ports

/// A TCP or UDP port, 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u16);

impl Port {
    /// The IPMI port, 623.
    pub const IPMI: Port = Port(623);

    /// A port; `None` for 0.
    pub fn new(p: u16) -> Option<Port> {
        (p != 0).then_some(Port(p))
    }

    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }

    fn from_u64(v: u64) -> Result<Self, String> {
        u16::try_from(v)
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| format!("port {v} is out of range: use 1-65535"))
    }
}

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("invalid port `{s}`: use a number 1-65535"))
            .and_then(Port::from_u64)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number from 1 to 65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                Port::from_u64(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_u64(V)
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "minimum": 1, "maximum": 65535})
    }
}

/// A range of ports written `first-last`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub first: Port,
    /// Last port, not below `first`.
    pub last: Port,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(self) -> u16 {
        self.last.0 - self.first.0 + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }

    fn from_u64(_: u64) -> Result<Self, String> {
        Err("a port range is written `first-last`, like `8000-8010`".to_owned())
    }
    fn from_i64(v: i64) -> Result<Self, String> {
        Self::from_u64(v.unsigned_abs())
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid port range `{s}`: write `first-last`, like `8000-8010`");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: Port = a.parse().map_err(|_| bad())?;
        let last: Port = b.parse().map_err(|_| bad())?;
        if last < first {
            return Err(format!(
                "invalid port range `{s}`: the last port is below the first"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

string_value!(PortRange, "a port range such as 8000-8010");

impl JsonSchema for PortRange {
    fn schema_name() -> Cow<'static, str> {
        "PortRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": "^[0-9]{1,5}-[0-9]{1,5}$"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_add_like_pacemaker() {
        let s = Score::new;
        assert_eq!(s(5) + s(7), s(12));
        assert_eq!(Score::INFINITY + Score::NEG_INFINITY, Score::NEG_INFINITY);
        assert_eq!(Score::NEG_INFINITY + Score::INFINITY, Score::NEG_INFINITY);
        assert_eq!(Score::INFINITY + s(-999_999), Score::INFINITY);
        assert_eq!(s(900_000) + s(900_000), Score::INFINITY);
        assert_eq!(s(-900_000) + s(-900_000), Score::NEG_INFINITY);
        assert_eq!(s(i64::MAX), Score::INFINITY);
        assert_eq!("-INFINITY".parse::<Score>().unwrap(), Score::NEG_INFINITY);
        assert_eq!(
            "+INFINITY".parse::<Score>().unwrap().to_string(),
            "INFINITY"
        );
        assert!("lots".parse::<Score>().is_err());
    }

    #[test]
    fn durations_parse_and_print() {
        let d = |s: &str| s.parse::<Duration>().map(|d| d.get().as_millis());
        assert_eq!(d("500ms"), Ok(500));
        assert_eq!(d("10s"), Ok(10_000));
        assert_eq!(d("1h30m"), Ok(5_400_000));
        assert_eq!(d("0"), Ok(0));
        assert!(d("10").is_err());
        assert!(d("10 s").is_err());
        assert!(d("5y").is_err());
        assert!(d("").is_err());
        assert!(d("400d").is_err());
        assert!(d("99999999999999999999s").is_err());
        assert_eq!("90s".parse::<Duration>().unwrap().to_string(), "1m30s");
    }

    #[test]
    fn names_ports_and_ranges_check_their_ranges() {
        assert!("web-1".parse::<Name>().is_ok());
        for bad in ["", "Web", "1web", "web-", "a_b", &"a".repeat(64)] {
            assert!(bad.parse::<Name>().is_err(), "{bad}");
        }
        assert!(Port::from_u64(0).is_err());
        assert!(Port::from_u64(65536).is_err());
        assert_eq!("8000-8010".parse::<PortRange>().unwrap().len(), 11);
        assert!("8010-8000".parse::<PortRange>().is_err());
    }
}
