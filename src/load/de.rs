//! A serde `Deserializer` over a located YAML [`Node`], so the typed spec model can be
//! derived with serde while every error still points at the exact node it concerns.
//!
//! Unknown fields are checked before a struct is visited, so every unknown field of a
//! mapping is reported at once, each with a "did you mean" suggestion.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::yaml::{Node, Value};
use crate::diag::Span;

/// What went wrong turning a node into a typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeErrorKind {
    /// A mapping key the type does not know.
    UnknownField {
        /// The key as written.
        field: String,
        /// The closest known field, if one is close.
        suggestion: Option<&'static str>,
        /// All known fields.
        expected: &'static [&'static str],
    },
    /// A required field is absent.
    MissingField(&'static str),
    /// The node has the wrong type (a string where a number belongs).
    InvalidType,
    /// The node has the right type but a value out of range or not understood.
    InvalidValue,
    /// An enum value that is not one of the allowed ones.
    UnknownVariant,
}

/// One shape error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// What.
    pub kind: ShapeErrorKind,
    /// In words.
    pub message: String,
    /// Where; filled in by the innermost node that saw the error.
    pub span: Option<Span>,
}

/// The error type of the deserializer: one or more shape errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeErrors(pub Vec<ShapeError>);

impl ShapeErrors {
    fn one(kind: ShapeErrorKind, message: String) -> Self {
        ShapeErrors(vec![ShapeError {
            kind,
            message,
            span: None,
        }])
    }

    /// Sets the span of errors that have none yet.
    fn at(mut self, span: Span) -> Self {
        for e in &mut self.0 {
            e.span.get_or_insert(span);
        }
        self
    }
}

impl fmt::Display for ShapeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs: Vec<_> = self.0.iter().map(|e| e.message.as_str()).collect();
        f.write_str(&msgs.join("; "))
    }
}

impl std::error::Error for ShapeErrors {}

impl de::Error for ShapeErrors {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::one(ShapeErrorKind::InvalidValue, msg.to_string())
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::one(
            ShapeErrorKind::InvalidType,
            format!("expected {exp}, found {}", describe(&unexp)),
        )
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::one(
            ShapeErrorKind::InvalidValue,
            format!("invalid value {}: expected {exp}", describe(&unexp)),
        )
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let list = expected.join(", ");
        let mut message = format!("unknown value `{variant}`, expected one of: {list}");
        if let Some(s) = suggest(variant, expected.iter().copied()) {
            message.push_str(&format!(" (did you mean `{s}`?)"));
        }
        Self::one(ShapeErrorKind::UnknownVariant, message)
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        unknown_field(field, expected)
    }
    fn missing_field(field: &'static str) -> Self {
        Self::one(
            ShapeErrorKind::MissingField(field),
            format!("missing required field `{field}`"),
        )
    }
    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format!("field `{field}` appears twice"))
    }
}

fn unknown_field(field: &str, expected: &'static [&'static str]) -> ShapeErrors {
    let suggestion = suggest(field, expected.iter().copied());
    let message = match suggestion {
        Some(s) => format!("unknown field `{field}` (did you mean `{s}`?)"),
        None if expected.is_empty() => {
            format!("unknown field `{field}`: no fields are allowed here")
        }
        None => format!("unknown field `{field}`"),
    };
    ShapeErrors::one(
        ShapeErrorKind::UnknownField {
            field: field.to_owned(),
            suggestion,
            expected,
        },
        message,
    )
}

fn describe(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Unit => "null".to_owned(),
        de::Unexpected::Map => "a mapping".to_owned(),
        de::Unexpected::Seq => "a sequence".to_owned(),
        other => other.to_string(),
    }
}

/// The entry of `candidates` closest to `word`, when it is close enough to be a typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

/// Deserializes `T` from `node`.
pub fn from_node<'a, T: de::Deserialize<'a>>(node: &'a Node) -> Result<T, ShapeErrors> {
    T::deserialize(NodeDe(node))
}

/// The deserializer: a borrowed node.
#[derive(Clone, Copy)]
pub struct NodeDe<'a>(pub &'a Node);

impl<'a> NodeDe<'a> {
    fn span(&self) -> Span {
        self.0.span
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = ShapeErrors;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        let result = match &self.0.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at(span))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        match self.0.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(span))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        visitor.visit_newtype_struct(self).map_err(|e| e.at(span))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        if let Value::Map(entries) = &self.0.value {
            let unknown: Vec<ShapeError> = entries
                .iter()
                .filter_map(|(k, _)| {
                    let name = k.as_str()?;
                    if fields.contains(&name) {
                        return None;
                    }
                    Some(unknown_field(name, fields).at(k.span).0)
                })
                .flatten()
                .collect();
            if !unknown.is_empty() {
                return Err(ShapeErrors(unknown));
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        match &self.0.value {
            Value::Str(_) => visitor.visit_enum(Enum {
                tag: self.0,
                value: None,
            }),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(Enum {
                tag: &entries[0].0,
                value: Some(&entries[0].1),
            }),
            Value::Map(entries) => Err(de::Error::custom(format!(
                "expected exactly one of the alternatives as the only key, found {} keys",
                entries.len()
            ))),
            other => Err(de::Error::custom(format!(
                "expected a string or a mapping with one key, found {}",
                other.type_name()
            ))),
        }
        .map_err(|e| e.at(span))
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        self.deserialize_any(visitor)
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = ShapeErrors;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ShapeErrors> {
        self.items
            .next()
            .map(|n| seed.deserialize(NodeDe(n)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = ShapeErrors;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ShapeErrors> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe(k))
                    .map(Some)
                    .map_err(|e| e.at(k.span))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ShapeErrors> {
        match self.value.take() {
            Some(v) => seed.deserialize(NodeDe(v)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a> {
    tag: &'a Node,
    value: Option<&'a Node>,
}

impl<'de> EnumAccess<'de> for Enum<'de> {
    type Error = ShapeErrors;
    type Variant = Variant<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'de>), ShapeErrors> {
        let tag = seed
            .deserialize(NodeDe(self.tag))
            .map_err(|e| e.at(self.tag.span))?;
        Ok((
            tag,
            Variant {
                tag: self.tag,
                value: self.value,
            },
        ))
    }
}

struct Variant<'a> {
    tag: &'a Node,
    value: Option<&'a Node>,
}

impl<'de> Variant<'de> {
    fn value(&self) -> Result<&'de Node, ShapeErrors> {
        self.value.ok_or_else(|| {
            ShapeErrors::custom_at("this alternative needs settings under it", self.tag.span)
        })
    }
}

impl ShapeErrors {
    fn custom_at(msg: &str, span: Span) -> Self {
        <Self as de::Error>::custom(msg).at(span)
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = ShapeErrors;

    fn unit_variant(self) -> Result<(), ShapeErrors> {
        match self.value {
            None
            | Some(Node {
                value: Value::Null, ..
            }) => Ok(()),
            Some(v) => Err(ShapeErrors::custom_at(
                "this alternative takes no settings",
                v.span,
            )),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ShapeErrors> {
        seed.deserialize(NodeDe(self.value()?))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        de::Deserializer::deserialize_seq(NodeDe(self.value()?), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        de::Deserializer::deserialize_struct(NodeDe(self.value()?), "", fields, visitor)
    }
}

impl<'de> IntoDeserializer<'de, ShapeErrors> for NodeDe<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Port {
        port: u16,
        #[serde(default)]
        internal_port: Option<u16>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Check {
        Tcp { port: u16 },
        Exec(Vec<String>),
        None,
    }

    fn node(s: &str) -> Node {
        parse_documents(s.as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn typed_values_come_out() {
        let n = node("port: 80\ninternalPort: 8080\n");
        assert_eq!(
            from_node::<Port>(&n).unwrap(),
            Port {
                port: 80,
                internal_port: Some(8080)
            }
        );
        let n = node("- tcp: {port: 5}\n- exec: [a, b]\n- none\n");
        let v: Vec<Check> = from_node(&n).unwrap();
        assert_eq!(v[0], Check::Tcp { port: 5 });
        assert_eq!(v[1], Check::Exec(vec!["a".into(), "b".into()]));
        assert_eq!(v[2], Check::None);
    }

    #[test]
    fn all_unknown_fields_are_reported_with_suggestions_and_spans() {
        let n = node("port: 80\ninternalPrt: 1\nbogus: 2\n");
        let errs = from_node::<Port>(&n).unwrap_err().0;
        assert_eq!(errs.len(), 2);
        assert!(
            errs[0].message.contains("did you mean `internalPort`"),
            "{}",
            errs[0].message
        );
        assert_eq!(errs[0].span.map(|s| (s.line, s.column)), Some((2, 1)));
        assert_eq!(errs[1].span.map(|s| s.line), Some(3));
        assert!(matches!(
            errs[1].kind,
            ShapeErrorKind::UnknownField {
                suggestion: None,
                ..
            }
        ));
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let n = node("port: 80\ninternalPort: high\n");
        let e = &from_node::<Port>(&n).unwrap_err().0[0];
        assert_eq!(e.kind, ShapeErrorKind::InvalidType);
        assert_eq!(e.span.map(|s| (s.line, s.column)), Some((2, 15)));
        let n = node("port: 70000\n");
        let e = &from_node::<Port>(&n).unwrap_err().0[0];
        assert_eq!(e.span.map(|s| (s.line, s.column)), Some((1, 7)));
    }

    #[test]
    fn missing_fields_point_at_the_mapping() {
        let n = node("x:\n  internalPort: 1\n");
        let inner = n.get("x").unwrap();
        let e = &from_node::<Port>(inner).unwrap_err().0[0];
        assert_eq!(e.kind, ShapeErrorKind::MissingField("port"));
        assert_eq!(e.span.map(|s| s.line), Some(2));
    }

    #[test]
    fn unknown_variants_get_suggestions() {
        let n = node("- tpc: {port: 5}\n");
        let e = &from_node::<Vec<Check>>(&n).unwrap_err().0[0];
        assert!(e.message.contains("did you mean `tcp`"), "{}", e.message);
    }
}
