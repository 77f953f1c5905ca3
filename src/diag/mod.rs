//! Diagnostics: what every layer of quorate reports about its input.
//!
//! A [`Diagnostic`] names a stable code (`quorate::ref::unknown-bundle`), a message, a
//! help line saying what to do, and, when it comes from a file, the exact place in that
//! file. Renderers for people (miette), machines (JSON) and GitHub annotations live in
//! [`render`].

pub(crate) mod mask;
pub(crate) mod render;

use serde::Serialize;

use crate::source::FileId;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The spec set is invalid and must not be applied.
    Error,
    /// The spec set is valid but unsafe or suspicious; `--strict` turns it into a failure.
    Warning,
}

/// A byte range in one source file, with the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
    /// 1-based line of the first byte.
    pub line: u32,
    /// 1-based column (in characters) of the first byte.
    pub column: u32,
}

impl Span {
    /// A point at the start of a file.
    pub const START: Span = Span {
        offset: 0,
        len: 0,
        line: 1,
        column: 1,
    };

    /// The span of the byte at `offset` in `text`, with line and column computed.
    pub fn at_offset(text: &[u8], offset: usize, len: usize) -> Span {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Span {
            offset,
            len,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl Span {
    /// The span at 1-based `line` and `column` (in characters) of `text`, `len` bytes
    /// long, with its byte offset computed. A column past the end of its line is clamped
    /// to the line's end, a line past the end of the text to the text's end.
    pub fn at_line_column(text: &[u8], line: u32, column: u32, len: usize) -> Span {
        let skip = usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX);
        let line_start = if skip == 0 {
            Some(0)
        } else {
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(skip - 1)
                .map(|(i, _)| i + 1)
        };
        let Some(line_start) = line_start else {
            return Span::at_offset(text, text.len(), 0);
        };
        let rest = &text[line_start..];
        let line_text = &rest[..rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len())];
        let chars = usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX);
        let within = String::from_utf8_lossy(line_text)
            .char_indices()
            .nth(chars)
            .map_or(line_text.len(), |(i, _)| i);
        // from_utf8_lossy keeps byte positions for valid UTF-8 (the only text parsed).
        let offset = line_start + within.min(line_text.len());
        let len = len.min(text.len() - offset);
        Span::at_offset(text, offset, len)
    }
}

/// Where a diagnostic points: a file, and a span in it when one is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file.
    pub file: FileId,
    /// The place in the file; `None` when the finding concerns the whole file.
    pub span: Option<Span>,
}

/// A secondary place that explains a diagnostic ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub location: Location,
    /// What is there.
    pub label: String,
}

/// One finding about the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, `quorate::<layer>::<what>`; documented in docs/validate.md.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// Where it is; `None` for findings about the spec set as a whole.
    pub location: Option<Location>,
    /// Other places worth showing.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// An error with `code` and `message`.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
            location: None,
            related: Vec::new(),
        }
    }

    /// A warning with `code` and `message`.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Adds the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points the diagnostic at `location`.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Points the diagnostic at a whole file.
    pub fn in_file(self, file: FileId) -> Self {
        self.at(Location { file, span: None })
    }

    /// Adds a secondary place.
    pub fn with_related(mut self, location: Location, label: impl Into<String>) -> Self {
        self.related.push(Related {
            location,
            label: label.into(),
        });
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics into a stable order: by file, position, then code.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (
                d.location.map(|l| l.file),
                d.location.and_then(|l| l.span).map(|s| s.offset),
                d.code,
                d.message.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// An error and its causes on one line (an HTTP client's own message names only the step
/// that failed).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_at_offset_counts_lines_and_characters() {
        let text = "a: 1\nbé: x\n".as_bytes();
        let s = Span::at_offset(text, 9, 1);
        assert_eq!((s.line, s.column), (2, 4));
        assert_eq!(Span::at_offset(text, 0, 0).line, 1);
        // Past the end is clamped, never a panic.
        assert_eq!(Span::at_offset(text, 999, 0).offset, text.len());
    }

    #[test]
    fn span_at_line_column_finds_the_byte_offset() {
        let text = "a: 1\nbé: x\n".as_bytes();
        let s = Span::at_line_column(text, 2, 4, 1);
        assert_eq!((s.offset, s.line, s.column), (9, 2, 4));
        assert_eq!(Span::at_line_column(text, 1, 1, 0).offset, 0);
        // Past the end of a line or of the text is clamped, never a panic.
        let s = Span::at_line_column(text, 1, 99, 1);
        assert_eq!((s.offset, s.line), (4, 1));
        let s = Span::at_line_column(text, 9, 1, 5);
        assert_eq!((s.offset, s.len), (text.len(), 0));
    }
}
