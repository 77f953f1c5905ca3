//! A serde `Deserializer` over a located YAML [`Node`], so the typed spec model can be
//! derived with serde while every error still points at the exact node it concerns.
//!
//! Unknown fields are checked before a struct is visited, so every unknown field of a
//! mapping is reported at once, each with a "did you mean" suggestion.
//!
//! A serde visitor stops at its first error, and a struct cannot be built without the
//! field that failed. So [`from_node`] decodes in passes: each failed pass records its
//! problems and the mapping entry or list item they came from, and the next pass leaves
//! that entry out, as if it had not been written. A struct that then misses a required
//! field because of it is no new problem (it is not reported), and its own entry is left
//! out in turn. Every pass finds a new problem or leaves out a new entry, so decoding
//! ends; it stops at [`MAX_ERRORS`] problems or [`MAX_PASSES`] passes and says so.
//!
//! Messages speak the spec's language: `expected u32` becomes "expected a whole number
//! from 0 to 4294967295", and each comes with a help line saying what to write.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::yaml::{Node, Value};
use crate::diag::Span;

/// Most problems reported for one decoded node (a document's `spec`, its `metadata`);
/// past it decoding stops, and [`ShapeErrors::more`] says there may be more.
pub const MAX_ERRORS: usize = 20;

/// Most decoding passes for one node.
pub const MAX_PASSES: usize = 64;

/// Nodes the passes after the first may walk in total, for one decoded node: a pass
/// costs up to one walk of the node, so a huge document gets fewer passes (and says it
/// stopped early) while a spec of ordinary size gets all [`MAX_PASSES`].
pub const PASS_BUDGET_NODES: usize = 1_000_000;

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
    /// What to write instead, when the error knows better than its kind.
    pub help: Option<String>,
    /// Where; filled in by the innermost node that saw the error.
    pub span: Option<Span>,
}

/// The error type of the deserializer: the problems of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeErrors {
    /// The problems, in the order found (at most [`MAX_ERRORS`]).
    pub errors: Vec<ShapeError>,
    /// Whether decoding stopped at a limit, so there may be more problems.
    pub more: bool,
    /// During a pass: the entries (key nodes) or items to leave out of the next one.
    skip: Vec<usize>,
}

impl ShapeErrors {
    fn one(kind: ShapeErrorKind, message: String) -> Self {
        ShapeErrors {
            errors: vec![ShapeError {
                kind,
                message,
                help: None,
                span: None,
            }],
            more: false,
            skip: Vec::new(),
        }
    }

    fn with_help(mut self, help: String) -> Self {
        for e in &mut self.errors {
            e.help.get_or_insert_with(|| help.clone());
        }
        self
    }

    /// Sets the span of errors that have none yet.
    fn at(mut self, span: Span) -> Self {
        for e in &mut self.errors {
            e.span.get_or_insert(span);
        }
        self
    }

    /// Names `node` (a mapping key or a list item) as what the next pass leaves out,
    /// unless a node inside it was named already.
    fn skipping(mut self, node: &Node) -> Self {
        if self.skip.is_empty() {
            self.skip.push(address(node));
        }
        self
    }
}

/// A node's identity during one [`from_node`]: its address in the borrowed tree.
fn address(node: &Node) -> usize {
    std::ptr::from_ref(node) as usize
}

/// What the passes of one [`from_node`] share: the entries and items left out.
#[derive(Default)]
struct Passes {
    skipped: RefCell<HashSet<usize>>,
}

impl Passes {
    fn skips(&self, node: &Node) -> bool {
        self.skipped.borrow().contains(&address(node))
    }

    /// Leaves `nodes` out from now on; false when none is new (no progress).
    fn leave_out(&self, nodes: &[usize]) -> bool {
        let mut set = self.skipped.borrow_mut();
        let before = set.len();
        set.extend(nodes.iter().copied());
        set.len() > before
    }
}

impl fmt::Display for ShapeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs: Vec<_> = self.errors.iter().map(|e| e.message.as_str()).collect();
        f.write_str(&msgs.join("; "))
    }
}

impl std::error::Error for ShapeErrors {}

impl de::Error for ShapeErrors {
    /// The value types of the spec end their messages with what to write (`invalid
    /// duration `x`: use a number with a unit, …`): that part becomes the help line.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let msg = msg.to_string();
        // Where "use …" or "write …" starts, after a ": " or "; ".
        let help_at = [": use ", ": write ", "; use ", "; write "]
            .iter()
            .filter_map(|sep| msg.find(sep))
            .min();
        match help_at {
            Some(i) => Self::one(ShapeErrorKind::InvalidValue, msg[..i].to_owned())
                .with_help(msg[i + 2..].to_owned()),
            None => Self::one(ShapeErrorKind::InvalidValue, msg),
        }
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let (words, help) = spec_words(&exp.to_string());
        Self::one(
            ShapeErrorKind::InvalidType,
            format!("expected {words}, found {}", describe(&unexp)),
        )
        .with_help(help)
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let (words, help) = spec_words(&exp.to_string());
        Self::one(
            ShapeErrorKind::InvalidValue,
            format!("expected {words}, found {}", describe(&unexp)),
        )
        .with_help(help)
    }
    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        let (words, help) = spec_words(&exp.to_string());
        Self::one(
            ShapeErrorKind::InvalidValue,
            format!("expected {words}, found a list of {len}"),
        )
        .with_help(help)
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let list = expected.join(", ");
        let mut message = format!("unknown value `{}`, expected one of: {list}", clip(variant));
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
    let shown = clip(field);
    let message = match suggestion {
        Some(s) => format!("unknown field `{shown}` (did you mean `{s}`?)"),
        None if expected.is_empty() => {
            format!("unknown field `{shown}`: no fields are allowed here")
        }
        None => format!("unknown field `{shown}`"),
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

/// At most 60 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// What was found, in the spec's words.
fn describe(u: &de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match u {
        U::Unit => "nothing (null)".to_owned(),
        U::Map => "a mapping".to_owned(),
        U::Seq => "a list".to_owned(),
        U::Str(s) => format!("the text `{}`", clip(s)),
        U::Bool(b) => format!("`{b}`"),
        U::Unsigned(n) => format!("the number {n}"),
        U::Signed(n) => format!("the number {n}"),
        U::Float(f) => format!("the number {f}"),
        U::Char(c) => format!("the text `{c}`"),
        U::Bytes(_) => "binary data".to_owned(),
        other => other.to_string(),
    }
}

/// What serde's `expected …` means in the spec's words, and what to write.
fn spec_words(expected: &str) -> (String, String) {
    if let Some((min, max)) = integer_range(expected) {
        return (
            format!("a whole number from {min} to {max}"),
            format!("write a whole number from {min} to {max}, without quotes or a unit"),
        );
    }
    let (words, help) = match expected {
        "f32" | "f64" => ("a number", "write a number such as `1.5`, without quotes"),
        "a boolean" => (
            "`true` or `false`",
            "write `true` or `false`, without quotes",
        ),
        "a string" | "a borrowed string" | "a character" => (
            "text",
            "write text; quote it (`\"…\"`) when it looks like a number or `true`/`false`, or holds `: ` or ` #`",
        ),
        "path string" => ("a path", "write a path such as `/srv/data`"),
        "IPv4 address" => (
            "an IPv4 address such as 10.88.10.100",
            "write four numbers from 0 to 255 separated by dots, such as `10.88.10.100`",
        ),
        "a sequence" => (
            "a list",
            "write a list: one `- item` per line, indented under the field, or `[a, b]`",
        ),
        "a map" => (
            "a mapping",
            "write `key: value` lines indented under the field, or `{key: value}`",
        ),
        "a duration such as 10s or 5m" => (
            expected,
            "write a number with a unit: 500ms, 10s, 5m, 1h30m or 2d (`0` for none)",
        ),
        "a name" => (
            expected,
            "write 1-63 lower-case letters, digits and `-`, starting with a letter, such as `web-1`",
        ),
        "an integer score, INFINITY or -INFINITY" => (
            expected,
            "write a whole number such as `100`, or `INFINITY` or `-INFINITY`",
        ),
        "a port number from 1 to 65535" => (
            expected,
            "write a port number from 1 to 65535, without quotes",
        ),
        "a port range such as 8000-8010" => (expected, "write `first-last`, such as `8000-8010`"),
        s if s.starts_with("struct ") || s.starts_with("struct variant ") => (
            "a mapping of settings",
            "write the settings as `key: value` lines indented under the field (the README lists them)",
        ),
        s if s.starts_with("enum ") || s == "variant identifier" => (
            "one of the allowed values",
            "write one of the values the README lists for this field",
        ),
        other => (
            other,
            "change the value to what the message expects (the README lists every field)",
        ),
    };
    (words.to_owned(), help.to_owned())
}

/// The range of a Rust integer type named by serde (`u32`).
fn integer_range(ty: &str) -> Option<(i128, i128)> {
    Some(match ty {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// The entry of `candidates` closest to `word`, when it is close enough to be a typo.
///
/// A candidate whose letters differ from the word's by more than that is passed over
/// without working out the distance: the candidates may be the 10,000 nodes of a cluster,
/// asked of each of a thousand findings.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let letters = Letters::of(&lower);
    candidates
        .into_iter()
        .filter(|c| letters.within(c, 2.max(c.len() / 4)))
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

/// How many times each character occurs in an ASCII word, compared case-insensitively.
struct Letters {
    counts: [u16; 128],
    ascii: bool,
}

impl Letters {
    fn of(word: &str) -> Letters {
        let mut counts = [0u16; 128];
        for b in word.bytes().filter(u8::is_ascii) {
            let at = usize::from(b.to_ascii_lowercase());
            counts[at] = counts[at].saturating_add(1);
        }
        Letters {
            counts,
            ascii: word.is_ascii(),
        }
    }

    /// Whether `other` may be within `edits` edits of the word (insertions, deletions,
    /// substitutions, swaps). An edit adds at most one character to either side's count
    /// of what the other lacks (a swap none), so more than `edits` on either side is too
    /// far. Words that are not ASCII are always within.
    fn within(&self, other: &str, edits: usize) -> bool {
        if !self.ascii || !other.is_ascii() {
            return true;
        }
        let theirs = Letters::of(other);
        let (mut extra, mut missing) = (0usize, 0usize);
        for (a, b) in self.counts.iter().zip(&theirs.counts) {
            missing += usize::from(a.saturating_sub(*b));
            extra += usize::from(b.saturating_sub(*a));
        }
        extra <= edits && missing <= edits
    }
}

/// Deserializes `T` from `node`, reporting every problem (up to [`MAX_ERRORS`]).
pub fn from_node<'a, T: de::Deserialize<'a>>(node: &'a Node<'a>) -> Result<T, ShapeErrors> {
    let passes = Passes::default();
    let mut found: Vec<ShapeError> = Vec::new();
    let mut stopped = true;
    // Counted only once a pass failed: a valid node costs one pass, as without passes.
    let mut allowed = MAX_PASSES;
    let mut pass_number = 0;
    while pass_number < allowed {
        pass_number += 1;
        if pass_number == 2 {
            allowed = allowed.min(1 + PASS_BUDGET_NODES / size(node));
        }
        let pass = match T::deserialize(NodeDe::new(node, &passes)) {
            Ok(v) if found.is_empty() => return Ok(v),
            Ok(_) => {
                stopped = false;
                break;
            }
            Err(e) => e,
        };
        found.extend(pass.errors);
        if found.len() > MAX_ERRORS || !passes.leave_out(&pass.skip) {
            stopped = found.len() > MAX_ERRORS;
            break;
        }
    }
    if found.is_empty() {
        // Only reachable if the passes ran out before finding anything; never silent.
        found.push(ShapeError {
            kind: ShapeErrorKind::InvalidValue,
            message: "this value could not be read".to_owned(),
            help: None,
            span: Some(node.span),
        });
    }
    found.truncate(MAX_ERRORS);
    Err(ShapeErrors {
        errors: found,
        more: stopped,
        skip: Vec::new(),
    })
}

/// Number of nodes in the tree under `node`, itself included.
fn size(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size(k) + size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// The deserializer: a borrowed node, and the state of the passes.
#[derive(Clone, Copy)]
pub struct NodeDe<'a, 'p> {
    node: &'a Node<'a>,
    passes: &'p Passes,
}

impl<'a, 'p> NodeDe<'a, 'p> {
    fn new(node: &'a Node<'a>, passes: &'p Passes) -> Self {
        NodeDe { node, passes }
    }

    fn span(&self) -> Span {
        self.node.span
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = ShapeErrors;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                passes: self.passes,
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                passes: self.passes,
            }),
        };
        result.map_err(|e| e.at(span))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        match self.node.value {
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
        let Value::Map(entries) = &self.node.value else {
            return self.deserialize_any(visitor);
        };
        let present = entries.iter().filter(|(k, _)| !self.passes.skips(k));
        let mut unknown = ShapeErrors {
            errors: Vec::new(),
            more: false,
            skip: Vec::new(),
        };
        for (k, _) in present {
            let Some(name) = k.as_str().filter(|n| !fields.contains(n)) else {
                continue;
            };
            unknown
                .errors
                .extend(unknown_field(name, fields).at(k.span).errors);
            unknown.skip.push(address(k));
        }
        if !unknown.errors.is_empty() {
            return Err(unknown);
        }
        // A required field this pass left out is missing because of a problem already
        // reported: no new problem, but this struct cannot be built either.
        let left_out: Vec<&str> = entries
            .iter()
            .filter(|(k, _)| self.passes.skips(k))
            .filter_map(|(k, _)| k.as_str())
            .collect();
        self.deserialize_any(visitor).map_err(|mut e| {
            e.errors.retain(
                |x| !matches!(x.kind, ShapeErrorKind::MissingField(f) if left_out.contains(&f)),
            );
            e
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        let span = self.span();
        let list = variants.join(", ");
        match &self.node.value {
            Value::Str(_) => visitor.visit_enum(Enum {
                tag: self.node,
                value: None,
                passes: self.passes,
            }),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(Enum {
                tag: &entries[0].0,
                value: Some(&entries[0].1),
                passes: self.passes,
            }),
            Value::Map(entries) => Err(ShapeErrors::custom_with_help(
                format!(
                    "expected exactly one of {list} as the only key, found {} keys",
                    entries.len()
                ),
                "keep one of the alternatives and remove the others".to_owned(),
            )),
            other => Err(ShapeErrors::custom_with_help(
                format!("expected one of {list}, found {}", other.type_name()),
                format!("write one of: {list}"),
            )),
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

struct Seq<'a, 'p> {
    items: std::slice::Iter<'a, Node<'a>>,
    passes: &'p Passes,
}

impl<'de> SeqAccess<'de> for Seq<'de, '_> {
    type Error = ShapeErrors;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ShapeErrors> {
        let passes = self.passes;
        let Some(item) = self.items.find(|n| !passes.skips(n)) else {
            return Ok(None);
        };
        seed.deserialize(NodeDe::new(item, passes))
            .map(Some)
            .map_err(|e| e.at(item.span).skipping(item))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a, 'p> {
    entries: std::slice::Iter<'a, (Node<'a>, Node<'a>)>,
    value: Option<(&'a Node<'a>, &'a Node<'a>)>,
    passes: &'p Passes,
}

impl<'de> MapAccess<'de> for Map<'de, '_> {
    type Error = ShapeErrors;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ShapeErrors> {
        let passes = self.passes;
        match self.entries.find(|(k, _)| !passes.skips(k)) {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(NodeDe::new(k, passes))
                    .map(Some)
                    .map_err(|e| e.at(k.span).skipping(k))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ShapeErrors> {
        match self.value.take() {
            // The value's span is set here too: a value type that checks what it read
            // (a subnet, an endpoint) fails after its node returned.
            Some((k, v)) => seed
                .deserialize(NodeDe::new(v, self.passes))
                .map_err(|e| e.at(v.span).skipping(k)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a, 'p> {
    tag: &'a Node<'a>,
    value: Option<&'a Node<'a>>,
    passes: &'p Passes,
}

impl<'de, 'p> EnumAccess<'de> for Enum<'de, 'p> {
    type Error = ShapeErrors;
    type Variant = Variant<'de, 'p>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Variant<'de, 'p>), ShapeErrors> {
        let tag = seed
            .deserialize(NodeDe::new(self.tag, self.passes))
            .map_err(|e| e.at(self.tag.span))?;
        Ok((
            tag,
            Variant {
                tag: self.tag,
                value: self.value,
                passes: self.passes,
            },
        ))
    }
}

struct Variant<'a, 'p> {
    tag: &'a Node<'a>,
    value: Option<&'a Node<'a>>,
    passes: &'p Passes,
}

impl<'de, 'p> Variant<'de, 'p> {
    fn value(&self) -> Result<NodeDe<'de, 'p>, ShapeErrors> {
        match self.value {
            Some(v) => Ok(NodeDe::new(v, self.passes)),
            None => Err(ShapeErrors::custom_with_help(
                "this alternative needs settings under it".to_owned(),
                "write its settings as a mapping under it (the README lists them)".to_owned(),
            )
            .at(self.tag.span)),
        }
    }
}

impl ShapeErrors {
    fn custom_with_help(message: String, help: String) -> Self {
        Self::one(ShapeErrorKind::InvalidValue, message).with_help(help)
    }
}

impl<'de> VariantAccess<'de> for Variant<'de, '_> {
    type Error = ShapeErrors;

    fn unit_variant(self) -> Result<(), ShapeErrors> {
        match self.value {
            None
            | Some(Node {
                value: Value::Null, ..
            }) => Ok(()),
            Some(v) => Err(ShapeErrors::custom_with_help(
                "this alternative takes no settings".to_owned(),
                "remove the settings under it".to_owned(),
            )
            .at(v.span)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ShapeErrors> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        de::Deserializer::deserialize_seq(self.value()?, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeErrors> {
        de::Deserializer::deserialize_struct(self.value()?, "", fields, visitor)
    }
}

impl<'de, 'p> IntoDeserializer<'de, ShapeErrors> for NodeDe<'de, 'p> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse_documents;
    use proptest::prelude::*;
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

    fn node(s: &str) -> Node<'_> {
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
        let errs = from_node::<Port>(&n).unwrap_err().errors;
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
        let e = &from_node::<Port>(&n).unwrap_err().errors[0];
        assert_eq!(e.kind, ShapeErrorKind::InvalidType);
        assert_eq!(e.span.map(|s| (s.line, s.column)), Some((2, 15)));
        let n = node("port: 70000\n");
        let e = &from_node::<Port>(&n).unwrap_err().errors[0];
        assert_eq!(e.span.map(|s| (s.line, s.column)), Some((1, 7)));
    }

    #[test]
    fn missing_fields_point_at_the_mapping() {
        let n = node("x:\n  internalPort: 1\n");
        let inner = n.get("x").unwrap();
        let e = &from_node::<Port>(inner).unwrap_err().errors[0];
        assert_eq!(e.kind, ShapeErrorKind::MissingField("port"));
        assert_eq!(e.span.map(|s| s.line), Some(2));
    }

    #[test]
    fn unknown_variants_get_suggestions() {
        let n = node("- tpc: {port: 5}\n");
        let e = &from_node::<Vec<Check>>(&n).unwrap_err().errors[0];
        assert!(e.message.contains("did you mean `tcp`"), "{}", e.message);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Spec {
        name: String,
        #[serde(default)]
        votes: u32,
        #[serde(default)]
        enabled: bool,
        ports: Vec<Port>,
        #[serde(default)]
        check: Option<Check>,
    }

    fn problems<'a, T: Deserialize<'a> + fmt::Debug>(n: &'a Node<'a>) -> Vec<(u32, u32, String)> {
        from_node::<T>(n)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| {
                let s = e.span.unwrap();
                (s.line, s.column, e.message)
            })
            .collect()
    }

    #[test]
    fn every_problem_of_a_document_is_reported_at_its_place() {
        let n = node(concat!(
            "name: [x]\n",           // 1: a list for text
            "votes: many\n",         // 2
            "enabled: yes please\n", // 3
            "bogus: 1\n",            // 4: unknown, reported with the rest
            "ports:\n",
            "  - port: 70000\n", // 6
            "  - port: 80\n",
            "  - port: http\n",          // 8
            "    internalPort: -1\n",    // 9
            "check: {tcp: {port: x}}\n", // 10
        ));
        let got = problems::<Spec>(&n);
        let at: Vec<(u32, u32)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            at,
            vec![
                (4, 1),
                (1, 7),
                (2, 8),
                (3, 10),
                (6, 11),
                (8, 11),
                (9, 19),
                (10, 21)
            ],
            "{got:#?}"
        );
        // Required fields left out because their value was wrong (`name`, the ports'
        // `port`, the check's `port`) are not reported again as missing.
        assert!(
            !got.iter().any(|(_, _, m)| m.contains("missing")),
            "{got:#?}"
        );
        assert_eq!(
            got[2].2,
            "expected a whole number from 0 to 4294967295, found the text `many`"
        );
        assert_eq!(
            got[3].2,
            "expected `true` or `false`, found the text `yes please`"
        );
    }

    #[test]
    fn a_missing_field_is_still_reported_beside_other_problems() {
        let n = node("votes: x\nports: []\n");
        let got = problems::<Spec>(&n);
        let msgs: Vec<&str> = got.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(msgs.len(), 2, "{got:#?}");
        assert!(msgs[0].starts_with("expected a whole number"), "{msgs:?}");
        assert_eq!(msgs[1], "missing required field `name`");
    }

    #[test]
    fn messages_and_help_speak_the_spec() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "votes: -3",
                "found the number -3",
                "write a whole number from 0 to 4294967295",
            ),
            (
                "votes: 1.5",
                "found the number 1.5",
                "without quotes or a unit",
            ),
            (
                "enabled: 1",
                "expected `true` or `false`, found the number 1",
                "write `true`",
            ),
            ("name: {a: 1}", "expected text, found a mapping", "quote it"),
            (
                "ports: {a: 1}",
                "expected a list, found a mapping",
                "`- item`",
            ),
            (
                "ports: [7]",
                "expected a mapping of settings, found the number 7",
                "`key: value`",
            ),
            (
                "ports: [{port: -1}]",
                "expected a whole number from 0 to 65535",
                "from 0 to 65535",
            ),
            (
                "check: 5",
                "expected one of tcp, exec, none, found an integer",
                "write one of: tcp, exec, none",
            ),
            (
                "check: {tcp: {port: 1}, none: ~}",
                "exactly one of tcp, exec, none",
                "keep one",
            ),
        ];
        for (line, message, help) in cases {
            // The two required fields, unless the case sets one of them.
            let key = line.split(':').next().unwrap_or_default();
            let mut text = String::new();
            if key != "name" {
                text.push_str("name: a\n");
            }
            if key != "ports" {
                text.push_str("ports: []\n");
            }
            let text = format!("{text}{line}\n");
            let n = node(&text);
            let e = &from_node::<Spec>(&n).unwrap_err().errors[0];
            assert!(e.message.contains(message), "{line}: {}", e.message);
            let h = e.help.as_deref().unwrap_or_default();
            assert!(h.contains(help), "{line}: {h}");
            for rust in ["u32", "u16", "i64", "struct ", "enum ", "invalid type"] {
                assert!(!e.message.contains(rust), "{line}: {}", e.message);
            }
        }
    }

    #[test]
    fn problems_are_capped_and_the_cap_is_said() {
        let mut text = String::from("name: a\nports:\n");
        for _ in 0..500 {
            text.push_str("  - port: x\n");
        }
        let n = node(&text);
        let e = from_node::<Spec>(&n).unwrap_err();
        assert_eq!(e.errors.len(), MAX_ERRORS);
        assert!(e.more);
        // Exactly at the cap: all shown, nothing more to say.
        let mut text = String::from("name: a\nports:\n");
        for _ in 0..MAX_ERRORS {
            text.push_str("  - port: x\n");
        }
        let n = node(&text);
        let e = from_node::<Spec>(&n).unwrap_err();
        assert_eq!((e.errors.len(), e.more), (MAX_ERRORS, false));
    }

    #[test]
    fn a_value_that_cannot_be_built_at_all_ends_the_passes() {
        // The root itself is wrong: nothing to leave out, one problem, no loop.
        let n = node("- a\n");
        let e = from_node::<Spec>(&n).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e:?}");
        assert!(!e.more);
    }

    proptest! {
        /// The letter counts pass over only candidates the distance would refuse too.
        #[test]
        fn letters_pass_over_only_what_is_too_far(
            word in "[abAB0-9é-]{0,9}",
            other in "[abAB0-9é-]{0,9}",
        ) {
            let lower = word.to_ascii_lowercase();
            let most = 2.max(other.len() / 4);
            let distance = strsim::damerau_levenshtein(&lower, &other.to_ascii_lowercase());
            if distance <= most {
                prop_assert!(Letters::of(&lower).within(&other, most));
            }
        }
    }

    #[test]
    fn a_typo_among_ten_thousand_names_is_found() {
        let names: Vec<String> = (0..10_000).map(|i| format!("node{i}")).collect();
        let found = suggest("ndoe4321", names.iter().map(String::as_str));
        assert_eq!(found, Some("node4321"));
        assert_eq!(suggest("Node-17", ["node17", "node71"]), Some("node17"));
        assert_eq!(suggest("database", names.iter().map(String::as_str)), None);
    }
}
