//! The YAML that specs are written in, read in one pass over the bytes: block mappings
//! and sequences, single-line flow collections, plain and quoted scalars on one line,
//! comments and `---` between documents, and documents that are one flow mapping over
//! many lines (JSON, such as an observed-state snapshot). That is nearly every spec file,
//! and reading it here takes a fraction of the time granit-parser's general scanner
//! takes. Anything else (anchors, tags, block scalars, multi-line scalars, flow
//! collections over several lines inside block ones, escapes,
//! tabs, carriage returns, empty values, anything unusual) and every error gives `None`,
//! and [`super::events`] or the deserializer read the file, the deserializer saying what
//! is wrong. The [`Builder`] makes the nodes, with the same budget whichever reader feeds
//! it; this module's tests compare what it reads with the deserializer.

use std::borrow::Cow;

use super::events::{Builder, Event};
use super::{Budget, Node};
use crate::diag::Span;

/// Longest key read here (bytes): YAML allows an implicit key up to 1,024 characters.
const MAX_KEY: usize = 1024;

/// The documents of `text` (at most `max_documents`, within half of `budget`), or `None`
/// when another reader must read it.
pub(super) fn parse(text: &str, within: (usize, Budget)) -> Option<Vec<Node<'_>>> {
    if !plain_text(text) {
        return None;
    }
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        counted: (0, 0),
        at: None,
        flow_lines: false,
        out: Builder::new(within),
    };
    reader.stream()?;
    reader.out.finish()
}

/// Whether `text` holds only characters whose reading this module can leave to the
/// grammar below: no control characters but the line feed (so no tabs and no carriage
/// returns), and none of the characters some YAML readers take for line breaks or byte
/// order marks. (A NUL byte would read as the end of the text.)
fn plain_text(text: &str) -> bool {
    // A chunk at a time, each byte of it looked at without a branch, which the compiler
    // turns into vector instructions: this runs over every byte of every spec file.
    let control = |b: &u8| (*b < 0x20 && *b != b'\n') | (*b == 0x7f);
    let controls = text
        .as_bytes()
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |any, b| any | control(b)));
    let odd = |c: char| {
        matches!(
            c,
            '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
    };
    !controls && (text.is_ascii() || !text.chars().any(odd))
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    /// The line `pos` is on (1-based), and where it starts.
    line: u32,
    line_start: usize,
    /// An offset on the current line and its column in characters, counted so far.
    counted: (usize, u32),
    /// Between lines: the indentation of the content at `pos`, first on its line, or
    /// `None` at the end of the text or at a `---` or `...` line.
    at: Option<usize>,
    /// Whether the flow collection being read is a document of its own, whose items may
    /// be on several lines.
    flow_lines: bool,
    out: Builder<'t>,
}

impl<'t> Reader<'t> {
    fn peek(&self) -> u8 {
        self.peek_at(0)
    }

    /// The byte `ahead` of `pos`; 0 past the end (a NUL in the text was refused).
    fn peek_at(&self, ahead: usize) -> u8 {
        self.bytes.get(self.pos + ahead).copied().unwrap_or(0)
    }

    /// The span from `start` to `end` on the current line.
    fn span(&mut self, start: usize, end: usize) -> Span {
        let (from, column) = match self.counted {
            (at, column) if at >= self.line_start && at <= start => (at, column),
            _ => (self.line_start, 0),
        };
        let chars = self.bytes.get(from..start).map_or(0, |before| {
            before.iter().filter(|b| (**b & 0xc0) != 0x80).count()
        });
        let column = column.saturating_add(u32::try_from(chars).unwrap_or(u32::MAX));
        self.counted = (start, column);
        Span {
            offset: start,
            len: end.saturating_sub(start),
            line: self.line,
            column: column.saturating_add(1),
        }
    }

    /// Documents until the end of the text; a `---` must start a document.
    fn stream(&mut self) -> Option<()> {
        let mut pending = false;
        self.next_content();
        loop {
            match self.at {
                Some(0) if matches!(self.peek(), b'{' | b'[') => {
                    self.flow_document()?;
                    self.out.push(Event::DocEnd, Span::START)?;
                    pending = false;
                }
                Some(0) => {
                    self.block_node(0)?;
                    self.out.push(Event::DocEnd, Span::START)?;
                    pending = false;
                }
                None if self.pos >= self.bytes.len() => return (!pending).then_some(()),
                None if !pending && self.bytes[self.pos..].starts_with(b"---") => {
                    self.pos += 3;
                    self.rest_of_line()?;
                    pending = true;
                    self.next_content();
                }
                _ => return None,
            }
        }
    }

    /// A document that is a flow collection, over as many lines as it takes; the next
    /// content must start another document.
    fn flow_document(&mut self) -> Option<()> {
        self.flow_lines = true;
        let read = self.inline();
        self.flow_lines = false;
        read?;
        self.rest_of_line()?;
        self.next_content();
        self.at.is_none().then_some(())
    }

    /// Spaces in a flow collection and, in a flow document, line breaks (but not a
    /// document marker).
    fn flow_gap(&mut self) -> Option<()> {
        self.spaces();
        while self.flow_lines && self.peek() == b'\n' {
            self.newline(self.pos);
            if self.at_marker() {
                return None;
            }
            self.spaces();
        }
        Some(())
    }

    /// From the start of a line to the next one with content, setting [`Reader::at`].
    fn next_content(&mut self) {
        self.at = loop {
            let indent = self.bytes[self.pos..]
                .iter()
                .take_while(|b| **b == b' ')
                .count();
            let content = self.pos + indent;
            match self.bytes.get(content) {
                None => {
                    self.pos = content;
                    break None;
                }
                Some(b'\n') => self.newline(content),
                Some(b'#') => match self.bytes[content..].iter().position(|b| *b == b'\n') {
                    Some(end) => self.newline(content + end),
                    None => self.pos = self.bytes.len(),
                },
                Some(_) if indent == 0 && self.at_marker() => break None,
                Some(_) => {
                    self.pos = content;
                    break Some(indent);
                }
            }
        };
    }

    /// Past the line feed at `at`.
    fn newline(&mut self, at: usize) {
        self.pos = at + 1;
        self.line = self.line.saturating_add(1);
        self.line_start = self.pos;
    }

    /// Whether the line at `pos` is `---` or `...`, alone or followed by a space.
    fn at_marker(&self) -> bool {
        let rest = &self.bytes[self.pos..];
        (rest.starts_with(b"---") || rest.starts_with(b"..."))
            && matches!(self.peek_at(3), b' ' | b'\n' | 0)
    }

    fn spaces(&mut self) -> usize {
        let n = self.bytes[self.pos..]
            .iter()
            .take_while(|b| **b == b' ')
            .count();
        self.pos += n;
        n
    }

    /// Spaces and a comment to the end of the line, and past it.
    fn rest_of_line(&mut self) -> Option<()> {
        let spaced = self.spaces() > 0;
        let end = match self.peek() {
            b'#' if spaced => self.bytes[self.pos..].iter().position(|b| *b == b'\n'),
            b'\n' => Some(0),
            0 => None,
            _ => return None,
        };
        match end {
            Some(end) => self.newline(self.pos + end),
            None => self.pos = self.bytes.len(),
        }
        Some(())
    }

    fn dash(&self) -> bool {
        self.peek() == b'-' && matches!(self.peek_at(1), b' ' | b'\n' | 0)
    }

    /// The block collection at `pos`, indented by `indent`.
    fn block_node(&mut self, indent: usize) -> Option<()> {
        if self.dash() {
            self.block_seq(indent, false)
        } else {
            self.block_map(indent)
        }
    }

    fn block_map(&mut self, indent: usize) -> Option<()> {
        let span = self.span(self.pos, self.pos);
        self.out.push(Event::MapStart, span)?;
        loop {
            self.key(false)?;
            self.block_value(indent)?;
            match self.at {
                Some(next) if next == indent => {}
                Some(next) if next > indent => return None,
                _ => break,
            }
        }
        self.out.push(Event::MapEnd, Span::START)
    }

    /// A sequence's items, each `- ` at `indent`. It ends at a line indented less, or as
    /// much but not an item (the next key of the mapping it is the value of). Its span is
    /// its first dash, or the first item when it is `indentless` (as indented as the
    /// mapping it is the value of), as in the other readers.
    fn block_seq(&mut self, indent: usize, indentless: bool) -> Option<()> {
        let mut first = true;
        loop {
            let dash = self.pos;
            self.pos += 1;
            self.spaces();
            if first {
                let at = if indentless { self.pos } else { dash };
                let span = self.span(at, at);
                self.out.push(Event::SeqStart, span)?;
                first = false;
            }
            self.item()?;
            match self.at {
                Some(next) if next == indent && self.dash() => {}
                Some(next) if next > indent => return None,
                _ => break,
            }
        }
        self.out.push(Event::SeqEnd, Span::START)
    }

    /// A sequence item on the line of its dash: a mapping, whose first key is here, or a
    /// scalar or flow collection alone on the line.
    fn item(&mut self) -> Option<()> {
        match self.peek() {
            b'\n' | b'#' | 0 => return None,
            _ if self.dash() => return None,
            b'[' | b'{' => {}
            _ if self.at_key() => return self.block_map(self.pos - self.line_start),
            _ => {}
        }
        self.inline()?;
        self.rest_of_line()?;
        self.next_content();
        Some(())
    }

    /// A mapping's value, after its key's colon: on the same line, or a block collection
    /// on the lines below, indented more than the mapping (`indent`) or, for a
    /// sequence, as much.
    fn block_value(&mut self, indent: usize) -> Option<()> {
        let spaces = self.bytes[self.pos..]
            .iter()
            .take_while(|b| **b == b' ')
            .count();
        let below = matches!(self.peek_at(spaces), b'\n' | b'#' | 0);
        if !below {
            self.pos += spaces;
            self.inline()?;
        }
        self.rest_of_line()?;
        self.next_content();
        if !below {
            return Some(());
        }
        match self.at {
            Some(next) if next > indent => self.block_node(next),
            Some(next) if next == indent && self.dash() => self.block_seq(next, true),
            _ => None,
        }
    }

    /// A flow collection or a scalar, on the current line.
    fn inline(&mut self) -> Option<()> {
        match self.peek() {
            b'[' => self.flow_seq(),
            b'{' => self.flow_map(),
            _ => self.scalar(false),
        }
    }

    fn flow_seq(&mut self) -> Option<()> {
        let span = self.span(self.pos, self.pos + 1);
        self.out.push(Event::SeqStart, span)?;
        self.pos += 1;
        self.flow_gap()?;
        if self.peek() != b']' {
            loop {
                self.flow_node()?;
                self.flow_gap()?;
                if !self.flow_next(b']')? {
                    break;
                }
            }
        }
        self.pos += 1;
        self.out.push(Event::SeqEnd, Span::START)
    }

    fn flow_map(&mut self) -> Option<()> {
        let span = self.span(self.pos, self.pos + 1);
        self.out.push(Event::MapStart, span)?;
        self.pos += 1;
        self.flow_gap()?;
        if self.peek() != b'}' {
            loop {
                self.key(true)?;
                self.spaces();
                self.flow_node()?;
                self.flow_gap()?;
                if !self.flow_next(b'}')? {
                    break;
                }
            }
        }
        self.pos += 1;
        self.out.push(Event::MapEnd, Span::START)
    }

    fn flow_node(&mut self) -> Option<()> {
        match self.peek() {
            b'[' => self.flow_seq(),
            b'{' => self.flow_map(),
            _ => self.scalar(true),
        }
    }

    /// After a flow item: a comma and another item (`true`), or the `close` bracket
    /// (`false`).
    fn flow_next(&mut self, close: u8) -> Option<bool> {
        match self.peek() {
            b',' => {
                self.pos += 1;
                self.flow_gap()?;
                (!matches!(self.peek(), b',' | b']' | b'}')).then_some(true)
            }
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// A key and its colon, which a space or the end of the line follows (a space, in a
    /// flow mapping).
    fn key(&mut self, flow: bool) -> Option<()> {
        let start = self.pos;
        let plain = !matches!(self.peek(), b'"' | b'\'');
        let text = self.scalar_text(flow)?;
        let after = self.peek_at(1);
        let colon = self.peek() == b':' && (after == b' ' || !flow && matches!(after, b'\n' | 0));
        if !colon || self.pos - start > MAX_KEY {
            return None;
        }
        let span = self.span(start, self.pos);
        self.out.push(Event::Scalar(text, plain), span)?;
        self.pos += 1;
        Some(())
    }

    /// Whether a key of a block mapping starts at `pos`.
    fn at_key(&self) -> bool {
        let end = match self.peek() {
            b'"' | b'\'' => quoted_end(self.bytes, self.pos).map(|(end, _)| end),
            _ => plain_end(self.bytes, self.pos, false),
        };
        end.is_some_and(|end| {
            let after = self.bytes.get(end + 1).copied().unwrap_or(0);
            self.bytes.get(end) == Some(&b':') && matches!(after, b' ' | b'\n' | 0)
        })
    }

    fn scalar(&mut self, flow: bool) -> Option<()> {
        let start = self.pos;
        let plain = !matches!(self.peek(), b'"' | b'\'');
        let text = self.scalar_text(flow)?;
        let span = self.span(start, self.pos);
        self.out.push(Event::Scalar(text, plain), span)
    }

    /// The scalar at `pos`, and `pos` past it.
    fn scalar_text(&mut self, flow: bool) -> Option<Cow<'t, str>> {
        let text: &'t str = self.text;
        let start = self.pos;
        if !matches!(self.peek(), b'"' | b'\'') {
            self.pos = plain_end(self.bytes, start, flow)?;
            return text.get(start..self.pos).map(Cow::Borrowed);
        }
        let (end, doubled) = quoted_end(self.bytes, start)?;
        self.pos = end;
        let inner = text.get(start + 1..end - 1)?;
        Some(if doubled {
            Cow::Owned(inner.replace("''", "'"))
        } else {
            Cow::Borrowed(inner)
        })
    }
}

/// Which bytes are among `bytes`, as a table to look a byte up in.
const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut k = 0;
    while k < bytes.len() {
        table[bytes[k] as usize] = true;
        k += 1;
    }
    table
}

// The tables are statics, read in place: a `const` table indexed at run time was copied
// to the stack (256 bytes) at every call of `plain_end`, some 43,000 times for a set of
// 1,000 bundles.
/// The bytes at which a plain scalar may end; the others are part of it.
static STOPS: [bool; 256] = table(b" \n:,[]{}");
/// The bytes a plain scalar cannot start with (but `-` followed by more of it).
static INDICATORS: [bool; 256] = table(b"-?:,[]{}#&*!|>'\"%@` \n");
/// The bytes that end a flow collection's item.
static FLOW: [bool; 256] = table(b",[]{}");

/// The end of the plain scalar at `start` (without trailing spaces), in a flow
/// collection or not; `None` when none starts there.
fn plain_end(bytes: &[u8], start: usize, flow: bool) -> Option<usize> {
    let first = *bytes.get(start)?;
    let second = bytes.get(start + 1).copied().unwrap_or(b'\n');
    let indicator = INDICATORS[usize::from(first)];
    let dash = first == b'-' && !(matches!(second, b' ' | b'\n') || FLOW[usize::from(second)]);
    if indicator && !dash {
        return None;
    }
    let (mut i, mut end) = (start + 1, start + 1);
    while let Some(&b) = bytes.get(i) {
        if !STOPS[usize::from(b)] {
            i += 1;
            end = i;
            continue;
        }
        let next = bytes.get(i + 1).copied().unwrap_or(b'\n');
        let stop = match b {
            b'\n' => true,
            b' ' => next == b'#',
            b':' => matches!(next, b' ' | b'\n') || flow && FLOW[usize::from(next)],
            b',' | b'[' | b']' | b'{' | b'}' => flow,
            _ => false,
        };
        if stop {
            break;
        }
        i += 1;
        if b != b' ' {
            end = i;
        }
    }
    Some(end)
}

/// The end (past the closing quote) of the quoted scalar on one line at `start`, and
/// whether it holds a doubled single quote; `None` for an escape, which the other
/// readers decode.
fn quoted_end(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let quote = *bytes.get(start)?;
    let (mut i, mut doubled) = (start + 1, false);
    loop {
        match *bytes.get(i)? {
            b'\n' | b'\\' if quote == b'"' => return None,
            b'\n' => return None,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => {
                doubled = true;
                i += 2;
            }
            b if b == quote => return Some((i + 1, doubled)),
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::Value;
    use super::super::events::tests::{MAX, Tree, agrees_with, flow, tree, yaml_files};
    use super::*;

    /// Whether this reader gave an answer; when it does, it is the deserializer's.
    fn agrees(text: &str) -> bool {
        agrees_with(parse, text)
    }

    #[test]
    fn the_examples_are_read_here_but_for_block_scalars() {
        let mut files = Vec::new();
        yaml_files(std::path::Path::new("examples"), &mut files);
        assert!(files.len() >= 10, "{files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let block_scalar = text.lines().any(|l| {
                let l = l.trim_end();
                ["|", "|-", ">", ">-"]
                    .iter()
                    .any(|s| l.ends_with(&format!(" {s}")))
            });
            assert_eq!(agrees(&text), !block_scalar, "{}", path.display());
        }
    }

    #[test]
    fn what_specs_are_made_of_reads_as_the_deserializer_reads_it() {
        let text = "# a spec\napiVersion: quorate.io/v1alpha1\nkind: Bundle\n\
            metadata: {name: b0, labels: {tier: db}}\nspec:\n  image: 'reg/app:1.0'\n  \
            replicas: 2   # two\n  ports: [{port: 8080}, {port: 9090, protocol: udp}]\n  \
            storage:\n    - sourceDir: /srv/b0\n      targetDir: \"/data\"\n    - {a: b}\n  \
            env:\n  - x\n  -  y z#q\n  'quoted key': 'it''s'\n  é: ü ö\n  neg: -3\n  \
            f: 1.5\n  t: yes\n  e: []\n  m: {}\n  u: http://h:80/p\n\n---\n\nkind: X # end\n";
        assert!(agrees(text));
        assert!(agrees("---\na: 1\n---\nb: [x, \"y\", 'z', -1, {c: d}]\n"));
        assert!(agrees("a:\n- 1\n- b: 2\n  c: [3]\nd: 4\n"));
    }

    #[test]
    fn a_plain_scalar_ends_where_the_deserializer_ends_it() {
        // At the end of the text with and without spaces after it, with a space inside,
        // a colon not followed by a space, a `#` not after a space.
        for text in [
            "a: b c",
            "a: b c  ",
            "a: b  c \n",
            "a: x:y z#w\n",
            "a: [x y , z]\n",
            "a: b c # d\n",
        ] {
            assert!(agrees(text), "{text:?}");
        }
        let end = |text: &str, flow| plain_end(text.as_bytes(), 0, flow);
        assert_eq!(end("ab c  ", false), Some(4));
        assert_eq!(end("ab c", false), Some(4));
        assert_eq!(end("ab #c", false), Some(2));
        assert_eq!(end("a:b, c]", true), Some(3));
        assert_eq!(end("a:b, c]", false), Some(7));
        assert_eq!(end("a: b", false), Some(1));
        assert_eq!(end("- a", false), None);
    }

    #[test]
    fn spans_point_at_each_node() {
        let docs = parse("a:\n  - é: [x, 'y']\n", MAX).unwrap();
        let seq = docs[0].get("a").unwrap();
        let (é, flow) = match &seq.value {
            Value::Seq(items) => match &items[0].value {
                Value::Map(entries) => (&entries[0].0, &entries[0].1),
                _ => panic!("{items:?}"),
            },
            _ => panic!("{seq:?}"),
        };
        assert_eq!((seq.span.line, seq.span.column, seq.span.offset), (2, 3, 5));
        assert_eq!((é.span.column, é.span.len), (5, 2));
        assert_eq!((flow.span.column, flow.span.len), (8, 1));
        let Value::Seq(items) = &flow.value else {
            panic!("{flow:?}")
        };
        assert_eq!((items[1].span.column, items[1].span.len), (12, 3));
    }

    #[test]
    fn what_it_does_not_read_is_left_to_the_others() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  text\n",
            "a: >-\n  text\n",
            "a: \"x\\ny\"\n",
            "a: [1,\n  2]\n",
            "a: 'two\n  lines'\n",
            "a: plain\n  over two\n",
            "a:\n",
            "a: 1\r\nb: 2\r\n",
            "a:\t1\n",
            "\u{feff}a: 1\n",
            "a: x\u{85}y\n",
            "? a\n: b\n",
            "a: 1\n...\n",
            "%YAML 1.2\n---\na: 1\n",
            "--- {a: 1}\n",
            "a: 1\n---\n",
            "---\n---\na: 1\n",
            "  a: 1\n",
            "a: [1,]\n",
            "a: {b:c}\n",
            "a: [b: c]\n",
            "a : 1\n",
            "a: b: c\n",
            "a: [x]#c\n",
            "{\n# c\n a: 1}\n",
            "{a: [\n---\n]}\n",
            "{a: 1}\nb: 2\n",
            "{a: 1}\n{b: 2}\n",
            "{a: \n 1}\n",
            "{a: x\n y}\n",
            "[1,\n 2]\n",
            "  {a: 1}\n",
            "- a\n",
            "a:\n  - \n  - b\n",
            "",
        ] {
            assert!(parse(text, MAX).is_none(), "{text:?}");
            agrees(text);
        }
        assert!(parse("a: 1\n---\nb: 2\n---\nc: 3\n", (2, MAX.1)).is_none());
        // A control character anywhere, whichever chunk of the text it falls in.
        let long: String = (0..20).map(|i| format!("key{i}: value\n")).collect();
        for at in [0, 63, 64, 65, 150, long.len() - 1] {
            for control in ['\t', '\r', '\u{7f}', '\u{1}'] {
                let mut text = long.clone();
                text.insert(at, control);
                assert!(parse(&text, MAX).is_none(), "{text:?}");
            }
        }
        assert!(parse(&long, MAX).is_some());
    }

    #[test]
    fn a_snapshot_in_json_is_read_here() {
        let text = "{\n  \"now\": 8,\n  \"nodes\": {\n    \"n0\": {\n      \"state\": \"lost\",\n      \
            \"since\": -3,\n      \"instances\": [\n        {\n          \"bundle\": \"b\",\n          \
            \"index\": 0\n        },\n        {}\n      ],\n      \"failures\": []\n    },\n    \
            \"n1\": {}\n  }\n}";
        assert!(agrees(text));
        assert!(agrees(&format!("{text}\n---\n{text}\n")));
        let docs = parse(text, MAX).unwrap();
        let since = docs[0]
            .get("nodes")
            .unwrap()
            .get("n0")
            .unwrap()
            .get("since")
            .unwrap();
        assert_eq!((since.span.line, since.span.column), (6, 16));
    }

    /// `tree` as JSON is written: every item of a collection on a line of its own.
    fn lines(t: &Tree, indent: usize, out: &mut String) {
        let items: Vec<(Option<&str>, &Tree)> = match t {
            Tree::Scalar(s) => return out.push_str(s),
            Tree::Seq(items) => items.iter().map(|i| (None, i)).collect(),
            Tree::Map(entries) => entries.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
        };
        let (open, close) = if matches!(t, Tree::Seq(_)) {
            ('[', ']')
        } else {
            ('{', '}')
        };
        out.push(open);
        for (n, (key, item)) in items.iter().enumerate() {
            out.push_str(if n == 0 { "\n" } else { ",\n" });
            out.push_str(&" ".repeat(indent + 2));
            if let Some(key) = key {
                out.push_str(&format!("\"{key}\": "));
            }
            lines(item, indent + 2, out);
        }
        if !items.is_empty() {
            out.push_str(&format!("\n{}", " ".repeat(indent)));
        }
        out.push(close);
    }

    /// `tree` as block YAML at `indent`: mappings in sequences written compactly
    /// (`- k: v`), and a mapping's sequences at its own indentation when `indentless`.
    fn block(t: &Tree, indent: usize, indentless: bool, out: &mut String) {
        let pad = " ".repeat(indent);
        match t {
            Tree::Map(entries) if !entries.is_empty() => {
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&pad);
                    }
                    match v {
                        Tree::Map(inner) if !inner.is_empty() => {
                            out.push_str(&format!("{k}:\n{pad}  "));
                            block(v, indent + 2, indentless, out);
                        }
                        Tree::Seq(items) if !items.is_empty() => {
                            let inner = if indentless { indent } else { indent + 2 };
                            out.push_str(&format!("{k}:  # {k}\n{}", " ".repeat(inner)));
                            block(v, inner, indentless, out);
                        }
                        _ => out.push_str(&format!("{k}: {}\n", flow(v))),
                    }
                }
            }
            Tree::Seq(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&pad);
                    }
                    out.push_str("- ");
                    match item {
                        Tree::Map(inner) if !inner.is_empty() => {
                            block(item, indent + 2, indentless, out)
                        }
                        _ => out.push_str(&format!("{}\n\n", flow(item))),
                    }
                }
            }
            _ => out.push_str(&format!("{}\n", flow(t))),
        }
    }

    proptest! {
        #[test]
        fn documents_read_as_the_deserializer_reads_them(
            docs in prop::collection::vec(prop::collection::btree_map("k[a-z]{0,2}", tree(), 1..6), 1..4),
            indentless in any::<bool>(),
        ) {
            let text: Vec<String> = docs
                .iter()
                .map(|entries| {
                    let mut out = String::new();
                    block(&Tree::Map(entries.clone().into_iter().collect()), 0, indentless, &mut out);
                    out
                })
                .collect();
            agrees(&text.join("---\n"));
        }

        #[test]
        fn documents_over_many_lines_read_as_the_deserializer_reads_them(
            entries in prop::collection::btree_map("k[a-z]{0,2}", tree(), 0..6),
            indent in 0..3usize,
        ) {
            let mut text = String::new();
            lines(&Tree::Map(entries.into_iter().collect()), indent, &mut text);
            agrees(&text);
        }

        #[test]
        fn whatever_it_reads_over_many_lines_it_reads_as_the_deserializer(
            lines in prop::collection::vec((0..4usize, 0..FLOW_TOKENS.len()), 1..12),
        ) {
            let mut text = String::from("{");
            for (indent, token) in lines {
                text += &format!("\n{}{}", " ".repeat(indent), FLOW_TOKENS[token]);
            }
            agrees(&text);
        }

        #[test]
        fn whatever_it_reads_it_reads_as_the_deserializer(
            lines in prop::collection::vec((0..3usize, 0..6usize, 0..TOKENS.len(), any::<bool>()), 1..7),
        ) {
            // Each line indented a level less than the one before, as much, or one more.
            let mut indent = 0usize;
            let mut text = String::new();
            for (i, (step, lead, token, comment)) in lines.iter().enumerate() {
                indent = (indent + step).saturating_sub(1).min(3);
                let lead = ["", "- ", "k: ", "k:", "- k: ", "'k': "][*lead].replace('k', &format!("k{i}"));
                let comment = if *comment { " # c" } else { "" };
                text += &format!("{}{lead}{}{comment}\n", "  ".repeat(indent), TOKENS[*token]);
            }
            agrees(&text);
        }
    }

    /// Pieces of a flow document, ordinary and not.
    const FLOW_TOKENS: [&str; 20] = [
        "\"k\": 1,",
        "\"k\": \"v\",",
        "\"k\": [",
        "\"k\": {",
        "\"j\": -2",
        "x: y",
        "]",
        "}",
        "],",
        "},",
        "1,",
        "{}",
        "[]",
        ",",
        "",
        "# c",
        "---",
        "...",
        "a b,",
        "\"k\":",
    ];

    /// Values and lines, ordinary and not, for the property test above.
    const TOKENS: [&str; 24] = [
        "x",
        "-1",
        "a b",
        "a #c",
        "a#b",
        "[x, y]",
        "{a: b}",
        "'q'",
        "\"d\"",
        "",
        "a:b",
        "http://x",
        "é",
        "[]",
        "{}",
        "- x",
        ": x",
        "[a, {b: c}]",
        "k: v",
        "---",
        "...",
        "? x",
        "y",
        "'a''b'",
    ];
}
