//! The [`Builder`] of the node tree from a reader's events, with its budget, and the
//! reader of the common case of [`super::parse_documents`] that [`super::subset`] leaves:
//! granit-parser's events, without serde in between, for documents that are mappings,
//! with no anchors, aliases, tags, directives or merge keys, whose keys are distinct
//! strings. It gives the same nodes and spans as serde-saphyr's deserializer, in less than
//! half the time; anything else, and every error, it leaves to the deserializer (`None`),
//! which also says what is wrong. This module's tests, property tests among them, compare
//! the two.

use std::borrow::Cow;
use std::collections::HashSet;

use granit_parser::{Event as Parsed, Parser, ScalarStyle, Span as ParserSpan};

use super::{Budget, MAX_DEPTH, MAX_SCALAR_BYTES, Node, Value, span_at, unresolved};
use crate::diag::Span;

/// Less nesting than the deserializer allows (see [`Budget`] for the rest): whatever
/// comes near a limit is left to it, and it says which was passed.
const MAX_OPEN: usize = MAX_DEPTH - 2;
/// Keys of one mapping compared pairwise for duplicates; past them a mapping keeps its
/// keys in a hashed set, so hostile input cannot make this quadratic.
const MAX_KEYS: usize = 64;

/// A collection being read: its items (a mapping's key waiting for its value) and span.
enum Open<'t> {
    Seq(Vec<Node<'t>>, Span),
    Map(Vec<(Node<'t>, Node<'t>)>, Option<Node<'t>>, Span, Keys),
}

/// The keys of a mapping past [`MAX_KEYS`] entries (none before).
type Keys = Option<HashSet<String>>;

/// What a reader of YAML text tells the [`Builder`], in document order.
pub(super) enum Event<'t> {
    SeqStart,
    MapStart,
    /// A scalar's text, and whether it is plain (not quoted): a plain scalar is typed.
    Scalar(Cow<'t, str>, bool),
    SeqEnd,
    MapEnd,
    DocEnd,
}

/// The documents of a file, built from its events within the budget; `None` from any
/// method means the deserializer must read the file.
pub(super) struct Builder<'t> {
    docs: Vec<Node<'t>>,
    open: Vec<Open<'t>>,
    root: Option<Node<'t>>,
    events: usize,
    scalar_bytes: usize,
    max_documents: usize,
    /// Events: the deserializer's budget of nodes, which is half its events.
    max_events: usize,
    /// Half the deserializer's scalar bytes.
    max_scalar_bytes: usize,
}

impl<'t> Builder<'t> {
    /// At most `max_documents` documents, within half of `budget`.
    pub(super) fn new((max_documents, budget): (usize, Budget)) -> Builder<'t> {
        Builder {
            docs: Vec::new(),
            open: Vec::new(),
            root: None,
            events: 0,
            scalar_bytes: 0,
            max_documents,
            max_events: budget.nodes,
            max_scalar_bytes: budget.scalar_bytes / 2,
        }
    }

    /// Takes the next event, which starts at `span` (a collection's span is at least
    /// one byte long).
    pub(super) fn push(&mut self, event: Event<'t>, mut span: Span) -> Option<()> {
        self.events += 1;
        if self.events > self.max_events {
            return None;
        }
        let node = match event {
            Event::DocEnd => {
                let root = self
                    .root
                    .take()
                    .filter(|r| matches!(r.value, Value::Map(_)))?;
                self.docs.push(root);
                return (self.docs.len() <= self.max_documents).then_some(());
            }
            Event::SeqStart | Event::MapStart if self.open.len() >= MAX_OPEN => return None,
            Event::SeqStart => {
                span.len = span.len.max(1);
                self.open.push(Open::Seq(Vec::new(), span));
                return Some(());
            }
            Event::MapStart => {
                span.len = span.len.max(1);
                self.open.push(Open::Map(Vec::new(), None, span, None));
                return Some(());
            }
            Event::Scalar(text, plain) => self.scalar(text, plain, span)?,
            Event::SeqEnd => match self.open.pop()? {
                Open::Seq(items, span) => Node {
                    value: Value::Seq(items),
                    span,
                },
                Open::Map(..) => return None,
            },
            Event::MapEnd => match self.open.pop()? {
                Open::Map(entries, None, span, _) => Node {
                    value: Value::Map(entries),
                    span,
                },
                _ => return None,
            },
        };
        match self.open.last_mut() {
            None if self.root.is_none() => self.root = Some(node),
            None => return None,
            Some(Open::Seq(items, _)) => items.push(node),
            Some(Open::Map(entries, key @ None, _, keys)) => {
                *key = Some(usable_key(node, entries, keys)?);
            }
            Some(Open::Map(entries, key, _, _)) => entries.push((key.take()?, node)),
        }
        Some(())
    }

    fn scalar(&mut self, text: Cow<'t, str>, plain: bool, span: Span) -> Option<Node<'t>> {
        self.scalar_bytes += text.len();
        if text.len() > MAX_SCALAR_BYTES || self.scalar_bytes > self.max_scalar_bytes {
            return None;
        }
        let value = if plain {
            self::plain(text)?
        } else {
            Value::Str(text)
        };
        Some(Node { value, span })
    }

    /// The documents, when every one was whole.
    pub(super) fn finish(self) -> Option<Vec<Node<'t>>> {
        let whole = self.open.is_empty() && self.root.is_none() && !self.docs.is_empty();
        whole.then_some(self.docs)
    }
}

/// The documents of `text` (at most `max_documents`, within half of `budget`) from
/// granit-parser's events, or `None` when the deserializer must read it.
pub(super) fn parse(text: &str, (max_documents, budget): (usize, Budget)) -> Option<Vec<Node<'_>>> {
    let mut builder = Builder::new((max_documents, budget));
    for item in Parser::new_from_str(text) {
        let (event, span) = item.ok()?;
        let event = match event {
            Parsed::StreamStart | Parsed::StreamEnd | Parsed::DocumentStart(_, None) => continue,
            Parsed::DocumentEnd => Event::DocEnd,
            Parsed::SequenceStart(_, 0, None) => Event::SeqStart,
            Parsed::MappingStart(_, 0, None) => Event::MapStart,
            Parsed::Scalar(text, style, 0, None) => {
                Event::Scalar(text, style == ScalarStyle::Plain)
            }
            Parsed::SequenceEnd => Event::SeqEnd,
            Parsed::MappingEnd => Event::MapEnd,
            _ => return None,
        };
        let span = match event {
            Event::Scalar(..) | Event::SeqStart | Event::MapStart => span_of(&span)?,
            _ => Span::START,
        };
        builder.push(event, span)?;
    }
    builder.finish()
}

/// A key the deserializer would read the same way: a string, not the merge key, not
/// already in the mapping (its `entries`; `keys` once it has [`MAX_KEYS`] of them).
fn usable_key<'t>(
    key: Node<'t>,
    entries: &[(Node<'t>, Node<'t>)],
    keys: &mut Keys,
) -> Option<Node<'t>> {
    let s = key.as_str()?;
    let repeated = match keys {
        Some(keys) => !keys.insert(s.to_owned()),
        None if entries.len() < MAX_KEYS => entries.iter().any(|(k, _)| k.as_str() == Some(s)),
        None => {
            let known = entries.iter().filter_map(|(k, _)| k.as_str());
            let keys = keys.insert(known.map(str::to_owned).collect());
            !keys.insert(s.to_owned())
        }
    };
    (s != "<<" && !repeated).then_some(key)
}

/// A plain scalar as serde-saphyr reads it untyped (YAML 1.1 booleans, then integers,
/// then floats, else a string), or `None` for the spellings whose reading is not plain to
/// see here (signs, underscores, radix prefixes, infinities, padding).
fn plain(text: Cow<'_, str>) -> Option<Value<'_>> {
    let s: &str = &text;
    // Read by the byte: the bytes looked for are ASCII, and no byte of a longer character
    // is.
    let bytes = s.as_bytes();
    let pad = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t' | b'\r' | b'\n'));
    if pad(bytes.first()) || pad(bytes.last()) {
        return None;
    }
    if matches!(s, "" | "~" | "null" | "Null" | "NULL") {
        return Some(Value::Null);
    }
    if let Some(b) = yaml11_bool(s) {
        return Some(Value::Bool(b));
    }
    if !matches!(bytes.first(), Some(b'0'..=b'9' | b'-' | b'.' | b'+')) {
        return Some(Value::Str(text));
    }
    let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let radix = matches!(
        unsigned,
        [b'0', b'x' | b'X' | b'o' | b'O' | b'b' | b'B', ..]
    );
    let named = matches!(unsigned, [b'.', c, ..] if c.is_ascii_alphabetic());
    if bytes.iter().any(|b| matches!(b, b'+' | b'_')) || radix || named {
        return None;
    }
    let decimal = !unsigned.is_empty()
        && unsigned.iter().all(u8::is_ascii_digit)
        && (unsigned == b"0" || !unsigned.starts_with(b"0"));
    if decimal {
        if let Ok(i) = s.parse::<i64>() {
            return Some(match u64::try_from(i) {
                Ok(u) => Value::UInt(u),
                Err(_) => Value::Int(i),
            });
        }
        if let Ok(u) = s.parse::<u64>() {
            return Some(Value::UInt(u));
        }
    }
    // Rust also reads `inf`, `infinity` and `nan`, which YAML keeps as text; a numeral
    // too large for a float is refused by the deserializer, which says so.
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Some(Value::Float(f)),
        Ok(_) if unsigned.first().is_some_and(u8::is_ascii_digit) => None,
        _ => Some(Value::Str(text)),
    }
}

/// The YAML 1.1 spellings of a boolean, in any case (`yes`, `Off`, `TRUE`).
fn yaml11_bool(s: &str) -> Option<bool> {
    let mut word = [0u8; 5];
    if s.len() > word.len() {
        return None;
    }
    for (w, b) in word.iter_mut().zip(s.bytes()) {
        *w = b.to_ascii_lowercase();
    }
    match word.get(..s.len())? {
        b"true" | b"yes" | b"y" | b"on" => Some(true),
        b"false" | b"no" | b"n" | b"off" => Some(false),
        _ => None,
    }
}

/// The span the deserializer gives a node from its event ([`span_at`]), or `None` when
/// the parser left part of it out (the deserializer works it out from the text).
fn span_of(span: &ParserSpan) -> Option<Span> {
    let (start, end) = (&span.start, &span.end);
    let len = end
        .byte_offset()
        .zip(start.byte_offset())
        .map_or(0, |(e, s)| e.saturating_sub(s));
    let at = (start.line() as u64, start.col() as u64 + 1);
    let span = span_at(start.byte_offset(), len, at, usize::MAX);
    (!unresolved(span)).then_some(span)
}

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::super::deserialize;
    use super::*;

    pub(in crate::load::yaml) const MAX: (usize, Budget) = (1_000, Budget::SPEC_FILE);

    /// Whether `reader` gave an answer; when it does, it is the deserializer's.
    pub(in crate::load::yaml) fn agrees_with(
        reader: fn(&str, (usize, Budget)) -> Option<Vec<Node>>,
        text: &str,
    ) -> bool {
        let fast = reader(text, MAX);
        if let Some(nodes) = &fast {
            let deserialized = deserialize(text, MAX.0, MAX.1);
            assert_eq!(Ok(nodes), deserialized.as_ref(), "{text:?}");
        }
        fast.is_some()
    }

    /// Whether the events gave an answer; when they do, it is the deserializer's.
    fn agrees(text: &str) -> bool {
        agrees_with(parse, text)
    }

    pub(in crate::load::yaml) fn yaml_files(
        dir: &std::path::Path,
        out: &mut Vec<std::path::PathBuf>,
    ) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_examples_are_read_from_the_events_as_the_deserializer_reads_them() {
        let mut files = Vec::new();
        yaml_files(std::path::Path::new("examples"), &mut files);
        assert!(files.len() >= 10, "{files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                agrees(&text),
                "{} was left to the deserializer",
                path.display()
            );
        }
    }

    #[test]
    fn every_style_and_spelling_reads_as_the_deserializer_reads_it() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: true\ne: Yes\nf: ~\ng:\nh: 'q'\ni: \"d\\n\"\n\
            j: |\n  lit\n  two\nk: >-\n  folded\n  text\nl: [1, x, {m: n}, []]\nm: 10s\n\
            nn: 1.2.3.4\no: 007\np: 1e5\nq: 12345678901234567890\nr: -9223372036854775809\n\
            s: inf\nt: nan\nu: 0\nv: -0\nw: .5\nx: 0s\nyy: \"\"\naa: 10.0.0.0/24\n\
            ab: {}\nac:\n  - x: 1\n    ys: [a, b]\n  - plain text over\n    two lines\n\
            'ad': é ü\n\"ae\": NULL\naf: -1.5e-3\nag: off\n";
        assert!(agrees(text));
        assert!(agrees("---\na: 1\n...\n---\nb: 2\n# end\n"));
    }

    #[test]
    fn what_it_cannot_read_plainly_is_left_to_the_deserializer() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "<<: {a: 1}\n",
            "a: 1\na: 2\n",
            "a: 1\n'a': 2\n",
            "%YAML 1.2\n---\na: 1\n",
            "- 1\n",
            "a: +5\n",
            "a: 1_000\n",
            "a: 0x1F\n",
            "a: .inf\n",
            "a: -.NaN\n",
            "a: 1e999\n",
            "1: a\n",
            "true: a\n",
            "a: [\n",
            "a: 1\n---\n",
            "",
        ] {
            assert!(parse(text, MAX).is_none(), "{text:?}");
        }
        let three = "a: 1\n---\nb: 2\n---\nc: 3\n";
        assert!(parse(three, (2, Budget::SPEC_FILE)).is_none());
        // Past MAX_KEYS keys, a mapping's keys are compared through a set.
        for n in [MAX_KEYS - 1, MAX_KEYS, MAX_KEYS + 1, 3 * MAX_KEYS] {
            let many: String = (0..n).map(|i| format!("k{i}: v\n")).collect();
            assert!(agrees(&format!("{many}k{n}: new\n")), "{n} keys");
            for repeated in [0, n / 2, n - 1] {
                let again = format!("{many}k{repeated}: again\n");
                assert!(parse(&again, MAX).is_none(), "{n} keys, k{repeated} again");
            }
        }
    }

    #[test]
    fn deep_nesting_is_read_or_left_whole() {
        for depth in 1..=MAX_DEPTH + 4 {
            let mut text = String::new();
            for level in 0..depth {
                text.push_str(&format!("{}k{level}:\n", "  ".repeat(level)));
            }
            text.push_str(&format!("{}leaf: 1\n", "  ".repeat(depth)));
            assert_eq!(agrees(&text), depth < MAX_OPEN, "depth {depth}");
        }
    }

    /// A document tree to write out as YAML.
    #[derive(Debug, Clone)]
    pub(in crate::load::yaml) enum Tree {
        Scalar(String),
        Seq(Vec<Tree>),
        Map(Vec<(String, Tree)>),
    }

    pub(in crate::load::yaml) fn tree() -> impl Strategy<Value = Tree> {
        let scalar = prop_oneof![
            "[a-z0-9.:/~-]{0,8}",
            "'[a-z 0-9#:]{0,6}'",
            "\"[a-z 0-9#:\\\\]{0,6}\"",
            Just("true".to_owned()),
            Just("-3".to_owned()),
        ];
        scalar
            .prop_map(Tree::Scalar)
            .prop_recursive(5, 40, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Tree::Seq),
                    prop::collection::btree_map("k[a-z]{0,2}", inner, 0..5)
                        .prop_map(|m| Tree::Map(m.into_iter().collect())),
                ]
            })
    }

    pub(in crate::load::yaml) fn flow(t: &Tree) -> String {
        match t {
            Tree::Scalar(s) => s.clone(),
            Tree::Seq(items) => format!(
                "[{}]",
                items.iter().map(flow).collect::<Vec<_>>().join(", ")
            ),
            Tree::Map(entries) => {
                let e: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", flow(v)))
                    .collect();
                format!("{{{}}}", e.join(", "))
            }
        }
    }

    fn block(entries: &[(String, Tree)], indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        for (k, v) in entries {
            match v {
                Tree::Map(inner) if !inner.is_empty() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    block(inner, indent + 2, out);
                }
                Tree::Seq(items) if !items.is_empty() => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    for item in items {
                        out.push_str(&format!("{pad}  - {}\n", flow(item)));
                    }
                }
                _ => out.push_str(&format!("{pad}{k}: {}\n", flow(v))),
            }
        }
    }

    proptest! {
        #[test]
        fn plain_scalars_read_as_the_deserializer_reads_them(s in "[-+._0-9a-fA-FinxobsyY:/ ~]{0,10}") {
            agrees(&format!("k: {s}\n"));
        }

        #[test]
        fn documents_read_as_the_deserializer_reads_them(
            docs in prop::collection::vec(prop::collection::btree_map("k[a-z]{0,2}", tree(), 1..6), 1..4),
            flow_style in any::<bool>(),
        ) {
            let text: Vec<String> = docs
                .iter()
                .map(|entries| {
                    let entries: Vec<(String, Tree)> = entries.clone().into_iter().collect();
                    let mut out = String::new();
                    if flow_style {
                        out = flow(&Tree::Map(entries.clone()));
                        out.push('\n');
                    } else {
                        block(&entries, 0, &mut out);
                    }
                    out
                })
                .collect();
            agrees(&text.join("---\n"));
        }
    }
}
