//! YAML text to a tree of [`Node`]s that remember where they came from.
//!
//! serde-saphyr does the parsing, with budgets tight enough that hostile input (alias
//! bombs, deep nesting, huge scalars) is refused early and cheaply; documents of the
//! common shape are read by quorate's own reader of that subset of YAML, or built from
//! serde-saphyr's parser's events directly, in a fraction of the time.
//! Every node keeps its span, so any later layer can point at the exact place a problem
//! comes from.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location as YamlLocation, Spanned};

use crate::diag::Span;
use crate::source::budget::MAX_SET_DOCUMENTS;

mod events;
mod subset;

/// Longest scalar accepted (bytes). Nothing in a spec needs more.
pub const MAX_SCALAR_BYTES: usize = 64 * 1024;
/// Deepest nesting accepted. Specs nest at most about eight levels; parsing recurses per
/// level, so this bound also keeps the stack small (a 2 MiB thread stack suffices even in
/// debug builds).
pub const MAX_DEPTH: usize = 16;

/// A YAML node with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'t> {
    /// What the node holds.
    pub value: Value<'t>,
    /// Where it is.
    pub span: Span,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'t> {
    /// `~`, `null` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// A string: borrowed from the text it was read from when it is written there as
    /// it reads.
    Str(Cow<'t, str>),
    /// A sequence.
    Seq(Vec<Node<'t>>),
    /// A mapping, in document order.
    Map(Vec<(Node<'t>, Node<'t>)>),
}

impl Value<'_> {
    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

impl<'t> Node<'t> {
    /// The value under `key` when this node is a mapping with a string key `key`.
    pub fn get(&self, key: &str) -> Option<&Node<'t>> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value under `key`.
    pub fn entry(&self, key: &str) -> Option<(&Node<'t>, &Node<'t>)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The string, when this node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What the parser said, without location.
    pub message: String,
    /// Where.
    pub span: Span,
    /// Which kind of failure, for the diagnostic code.
    pub kind: ParseErrorKind,
}

/// The classes of parse failure, each with its own diagnostic code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Not valid UTF-8.
    Encoding,
    /// Not valid YAML.
    Syntax,
    /// Over a resource budget (aliases, depth, sizes).
    Budget,
    /// More documents than a whole spec set may hold
    /// ([`MAX_SET_DOCUMENTS`](crate::source::budget::MAX_SET_DOCUMENTS)).
    TooManyDocuments,
    /// A key repeated in one mapping.
    DuplicateKey,
    /// A tag quorate does not accept (`!!python/object`).
    Tag,
}

/// What one file may hold, as serde-saphyr counts it; quorate's own readers take half
/// of the nodes (as events) and of the scalar bytes, and leave whatever comes nearer the
/// limits to serde-saphyr, which says which was passed.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Nodes: scalars and collections.
    pub nodes: usize,
    /// Parser events.
    pub events: usize,
    /// Bytes of all scalars together.
    pub scalar_bytes: usize,
}

impl Budget {
    /// A spec file (at most 4 MiB).
    pub const SPEC_FILE: Budget = Budget {
        nodes: 1_000_000,
        events: 2_000_000,
        scalar_bytes: 8 * 1024 * 1024,
    };

    /// An observed-state snapshot: four times what the snapshot of the largest cluster a
    /// spec set may describe holds (10,000 nodes and 100,000 instances take about 0.9
    /// million nodes and 5 MiB of scalars).
    pub const SNAPSHOT: Budget = Budget {
        nodes: 4_000_000,
        events: 8_000_000,
        scalar_bytes: 32 * 1024 * 1024,
    };
}

/// Parses every document of a spec file (see [`parse_documents_within`]).
pub fn parse_documents(bytes: &[u8]) -> Result<Vec<Node<'_>>, ParseError> {
    parse_documents_within(bytes, Budget::SPEC_FILE)
}

/// Parses every document in `bytes` within `budget`: the YAML specs are written in by
/// [`subset`], the common shape of a spec straight from granit-parser's events
/// ([`events`]), anything else through serde-saphyr.
pub fn parse_documents_within(bytes: &[u8], budget: Budget) -> Result<Vec<Node<'_>>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError {
        message: format!(
            "the file is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ),
        span: Span::at_offset(bytes, e.valid_up_to(), 1),
        kind: ParseErrorKind::Encoding,
    })?;
    let max_documents = usize::try_from(MAX_SET_DOCUMENTS).unwrap_or(usize::MAX);
    let fast = (max_documents, budget);
    match subset::parse(text, fast).or_else(|| events::parse(text, fast)) {
        Some(nodes) => Ok(nodes),
        None => deserialize(text, max_documents, budget),
    }
}

/// Every document of `text` through serde-saphyr's deserializer, which reads all of YAML
/// that specs may hold and says what is wrong with the rest.
fn deserialize(
    text: &str,
    max_documents: usize,
    budget: Budget,
) -> Result<Vec<Node<'static>>, ParseError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_total_scalar_bytes: budget.scalar_bytes,
            max_nodes: budget.nodes,
            max_events: budget.events,
            max_aliases: 10_000,
            max_anchors: 10_000,
            // A file cannot hold more than the whole set may: parsing stops there.
            max_documents: max_documents,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
        },
        reject_unsupported_tags: true,
    };
    UNRESOLVED.set(false);
    TEXT_LEN.set(text.len());
    let raw: Vec<Spanned<Raw>> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| parse_error(text, &e))?;
    let mut nodes: Vec<Node<'static>> = raw.into_iter().map(node_of).collect();
    if UNRESOLVED.take() {
        nodes.iter_mut().for_each(|n| resolve(text, n));
    }
    Ok(nodes)
}

fn parse_error(text: &str, err: &serde_saphyr::Error) -> ParseError {
    use serde_saphyr::Error as E;
    use serde_saphyr::budget::BudgetBreach as B;
    // Look through the wrappers that add snippets and alias context.
    let mut inner = err;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let formatter = serde_saphyr::DefaultMessageFormatter;
    let parser_message =
        || serde_saphyr::MessageFormatter::format_message(&formatter, inner).into_owned();
    let (kind, message) = match inner {
        E::Budget {
            breach: B::Documents { .. },
            ..
        } => (
            ParseErrorKind::TooManyDocuments,
            format!("more than {MAX_SET_DOCUMENTS} documents in one file"),
        ),
        E::Budget { breach, .. } => (
            ParseErrorKind::Budget,
            match breach {
                B::Depth { .. } => format!("nesting deeper than {MAX_DEPTH} levels"),
                B::Aliases { .. } | B::Anchors { .. } => "too many anchors or aliases".to_owned(),
                B::ScalarBytes { .. } => "the values in this file are too large in total".to_owned(),
                _ => "the document is too large (too many values, or aliases that expand to too many)".to_owned(),
            },
        ),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => (
            ParseErrorKind::Budget,
            "aliases expand to too many values (an alias bomb?)".to_owned(),
        ),
        E::DuplicateMappingKey { .. } => (ParseErrorKind::DuplicateKey, parser_message()),
        E::UnsupportedTag { .. } | E::TaggedScalarCannotDeserializeIntoString { .. } => {
            (ParseErrorKind::Tag, parser_message())
        }
        _ => {
            let m = parser_message();
            let kind = if m.contains("recursion limit") || m.contains(TOO_LONG) {
                ParseErrorKind::Budget
            } else {
                ParseErrorKind::Syntax
            };
            (kind, m)
        }
    };
    let mut span = inner
        .location()
        .or_else(|| err.location())
        .map_or(Span::START, |l| span_of(text, &l, 1));
    if kind == ParseErrorKind::Syntax && (message.contains(" tab") || message.contains("tabs")) {
        span = at_tab(text, span);
    }
    ParseError {
        message,
        span,
        kind,
    }
}

/// The tab a tab error is about. The parser reports the place just after the tabs
/// (`\t\timage:`), or the start of the plain scalar it was reading when it met the tab
/// (`- b` followed by a tab-indented line): the tab is just before, or the first one
/// after it on the same or the next line.
fn at_tab(text: &str, span: Span) -> Span {
    let bytes = text.as_bytes();
    let end = span.offset.min(bytes.len());
    let before = bytes[..end]
        .iter()
        .rev()
        .take_while(|b| **b == b'\t')
        .count();
    let tab = if before > 0 {
        Some(end - before)
    } else {
        let mut newlines = 0;
        bytes[end..]
            .iter()
            .take_while(|b| {
                newlines += usize::from(**b == b'\n');
                newlines < 2
            })
            .position(|b| *b == b'\t')
            .map(|p| end + p)
    };
    tab.map_or(span, |offset| Span::at_offset(bytes, offset, 1))
}

fn span_of(text: &str, loc: &YamlLocation, min_len: usize) -> Span {
    resolved(text, located(loc, min_len, text.len()))
}

/// The span `loc` gives, its offset at most `limit` (see [`span_at`]).
fn located(loc: &YamlLocation, min_len: usize, limit: usize) -> Span {
    let s = loc.span();
    let offset = s.byte_offset().and_then(|o| usize::try_from(o).ok());
    let len = s
        .byte_len()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0);
    span_at(offset, len.max(min_len), (loc.line(), loc.column()), limit)
}

/// The span of a place the parser names by its byte offset, length, and 1-based line and
/// column, its offset at most `limit`. Nodes carry their byte offset and the parser's line
/// and column, which are trusted; parse errors carry only a line and column. What is
/// missing is marked (offset `usize::MAX`, or line 0) for [`resolved`].
fn span_at(offset: Option<usize>, len: usize, (line, column): (u64, u64), limit: usize) -> Span {
    let line = u32::try_from(line).unwrap_or(u32::MAX);
    let column = u32::try_from(column).unwrap_or(u32::MAX);
    match offset {
        Some(offset) => Span {
            offset: offset.min(limit),
            len,
            line,
            column: if line > 0 { column } else { 0 },
        },
        None if line > 0 => Span {
            offset: usize::MAX,
            len,
            line,
            column,
        },
        None => Span::START,
    }
}

/// Whether [`located`] left part of `span` to work out from the text.
fn unresolved(span: Span) -> bool {
    span.line == 0 || span.offset == usize::MAX
}

/// `span` with what [`located`] marked missing worked out from the text: the offset from
/// the line and column (so a snippet shows the place an error names, not the start of
/// the file), or the line and column from the offset.
fn resolved(text: &str, span: Span) -> Span {
    if span.offset == usize::MAX {
        Span::at_line_column(text.as_bytes(), span.line, span.column, span.len)
    } else if span.line == 0 {
        Span::at_offset(text.as_bytes(), span.offset, span.len)
    } else {
        span
    }
}

const TOO_LONG: &str = "scalar longer than";

/// What to write instead, for the syntax errors spec authors meet most.
pub fn syntax_help(message: &str) -> &'static str {
    if message.contains(" tab") || message.contains("tabs") {
        "indent with spaces: YAML does not allow tabs in indentation"
    } else if message.contains("unclosed quote") {
        "close the quote on the same value (`image: \"docker.io/library/nginx:1.27\"`), or remove it"
    } else if message.contains("mapping values are not allowed") {
        "a value that contains `: ` must be quoted (`command: [\"sh\", \"-c\", \"a: b\"]`); a nested mapping starts on its own line, indented"
    } else {
        "fix the YAML syntax at this point (indentation, quotes, brackets)"
    }
}

/// The shape serde-saphyr fills in, one level at a time: its children are [`Node`]s
/// already, made as soon as their spans are known, so the tree is built once.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node<'static>>),
    Map(Vec<(Node<'static>, Node<'static>)>),
}

thread_local! {
    /// Whether a node of the file being parsed came without a byte offset and a line
    /// (its span is then worked out from the text afterwards, by [`resolve`]).
    static UNRESOLVED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The length of the text being parsed: no span starts past it.
    static TEXT_LEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The node of a parsed value; a span [`located`] could not complete is resolved against
/// the text later.
fn node_of(raw: Spanned<Raw>) -> Node<'static> {
    let min_len = usize::from(matches!(raw.value, Raw::Map(_) | Raw::Seq(_)));
    let span = located(&raw.referenced, min_len, TEXT_LEN.get());
    if unresolved(span) {
        UNRESOLVED.set(true);
    }
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(b),
        Raw::Int(i) => Value::Int(i),
        Raw::UInt(u) => Value::UInt(u),
        Raw::Float(f) => Value::Float(f),
        Raw::Str(s) => Value::Str(Cow::Owned(s)),
        Raw::Seq(items) => Value::Seq(items),
        Raw::Map(entries) => Value::Map(entries),
    };
    Node { value, span }
}

/// Works out the spans [`node_of`] could not, from the text.
fn resolve(text: &str, node: &mut Node<'_>) {
    node.span = resolved(text, node.span);
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| resolve(text, n)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            resolve(text, k);
            resolve(text, v);
        }),
        _ => {}
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(if v < 0 {
            Raw::Int(v)
        } else {
            Raw::UInt(v.unsigned_abs())
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::UInt(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Raw, E> {
        i64::try_from(v)
            .map(|v| {
                if v < 0 {
                    Raw::Int(v)
                } else {
                    Raw::UInt(v.unsigned_abs())
                }
            })
            .or_else(|_| u64::try_from(v).map(Raw::UInt))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Raw, E> {
        u64::try_from(v)
            .map(Raw::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
        check_len(v)?;
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Raw, E> {
        check_len(&v)?;
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Raw, E> {
        Err(E::custom("binary values are not accepted in specs"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element::<Spanned<Raw>>()? {
            items.push(node_of(item));
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = a.next_key::<Spanned<Raw>>()? {
            let v = a.next_value::<Spanned<Raw>>()?;
            entries.push((node_of(k), node_of(v)));
        }
        Ok(Raw::Map(entries))
    }
}

fn check_len<E: serde::de::Error>(s: &str) -> Result<(), E> {
    if s.len() > MAX_SCALAR_BYTES {
        return Err(E::custom(format!(
            "{TOO_LONG} {MAX_SCALAR_BYTES} bytes ({} bytes)",
            s.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<Node<'_>>, ParseError> {
        parse_documents(s.as_bytes())
    }

    #[test]
    fn nodes_keep_line_and_column() {
        let docs = parse("a: 1\nb:\n  c: [x, y]\n---\nd: e\n").unwrap();
        assert_eq!(docs.len(), 2);
        let c = docs[0].get("b").unwrap().get("c").unwrap();
        let Value::Seq(items) = &c.value else {
            panic!("not a seq")
        };
        assert_eq!((items[1].span.line, items[1].span.column), (3, 10));
        let (k, v) = docs[1].entry("d").unwrap();
        assert_eq!((k.span.line, v.span.line, v.span.column), (5, 5, 4));
        assert_eq!(v.as_str(), Some("e"));
    }

    #[test]
    fn syntax_errors_have_the_offset_of_their_line_and_column() {
        fn at(s: &str) -> (u32, u32, &str) {
            let e = parse_documents(s.as_bytes()).unwrap_err();
            (e.span.line, e.span.column, &s[e.span.offset..])
        }
        let (line, column, rest) = at("a: 1\nb: \"open\nc: 2\n");
        assert_eq!((line, column), (2, 4));
        assert!(rest.starts_with("\"open"), "{rest}");
        let (line, column, rest) = at("a: 1\nb: x: y\n");
        assert_eq!((line, column), (2, 5));
        assert!(rest.starts_with(": y"), "{rest}");
        // Tab errors point at the tab, wherever the parser stopped.
        for s in ["a:\n\t\tb: x\n", "a:\n  - b\n\t- c\n", "a: |\n\tx\n"] {
            let (_, column, rest) = at(s);
            assert_eq!(column, 1, "{s:?}");
            assert!(rest.starts_with('\t'), "{s:?}: {rest:?}");
        }
    }

    #[test]
    fn hostile_input_fits_in_a_small_stack() {
        let deep_block = "- ".repeat(20_000);
        let deep_flow = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        let t = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || parse(&deep_block).is_err() && parse(&deep_flow).is_err())
            .unwrap();
        assert!(t.join().unwrap());
    }

    #[test]
    fn hostile_input_is_refused_with_its_kind() {
        let kind = |s: &str| parse(s).unwrap_err().kind;
        assert_eq!(kind("a: 1\na: 2\n"), ParseErrorKind::DuplicateKey);
        assert_eq!(kind("a: !!python/object x\n"), ParseErrorKind::Tag);
        assert_eq!(kind("a: [\n"), ParseErrorKind::Syntax);
        let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert_eq!(kind(&deep), ParseErrorKind::Budget);
        assert_eq!(kind(&"- ".repeat(20_000)), ParseErrorKind::Budget);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for c in b'b'..=b'l' {
            let refs = vec![format!("*{}", (c - 1) as char); 10].join(", ");
            bomb.push_str(&format!("{0}: &{0} [{refs}]\n", c as char));
        }
        assert_eq!(kind(&bomb), ParseErrorKind::Budget);
        let long = format!("a: {}\n", "x".repeat(MAX_SCALAR_BYTES + 1));
        assert_eq!(kind(&long), ParseErrorKind::Budget);
        let most = vec!["a: 1\n"; MAX_SET_DOCUMENTS as usize].join("---\n");
        assert_eq!(parse(&most).unwrap().len(), MAX_SET_DOCUMENTS as usize);
        assert_eq!(
            kind(&format!("{most}---\na: 1\n")),
            ParseErrorKind::TooManyDocuments
        );
        let e = parse_documents(b"a: 1\nb: \xff\n").unwrap_err();
        assert_eq!(
            (e.kind, e.span.line, e.span.column),
            (ParseErrorKind::Encoding, 2, 4)
        );
    }
}
