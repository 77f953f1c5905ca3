//! Rendering diagnostics for people (miette snippets), machines (JSON) and GitHub
//! Actions annotations.
//!
//! Spans registered as secret (an inline password) are masked in every snippet, so no
//! rendering ever shows them (design invariant 7).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use super::{Diagnostic, Severity, Span};
use crate::source::{FileId, Sources};

/// Output format, chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Snippets with labels and help, for people.
    Human,
    /// One JSON array of findings.
    Json,
    /// GitHub Actions workflow commands (`::error file=…`).
    Github,
}

/// What renderers need besides the diagnostics: the files, and spans never to show.
pub struct RenderContext<'a> {
    /// The files diagnostics point into.
    pub sources: &'a Sources,
    /// Secret spans to mask.
    pub redactions: &'a [(FileId, Span)],
    /// Whether to use colours.
    pub color: bool,
}

/// A diagnostic as JSON: `{severity, code, message, file, line, column, help}`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct JsonDiagnostic<'a> {
    /// `error` or `warning`.
    pub severity: Severity,
    /// Stable code.
    pub code: &'a str,
    /// What is wrong.
    pub message: &'a str,
    /// File name, or null.
    pub file: Option<&'a str>,
    /// 1-based line, or null.
    pub line: Option<u32>,
    /// 1-based column, or null.
    pub column: Option<u32>,
    /// What to do.
    pub help: Option<&'a str>,
}

/// The JSON form of `d`.
pub fn to_json<'a>(d: &'a Diagnostic, sources: &'a Sources) -> JsonDiagnostic<'a> {
    let span = d.location.and_then(|l| l.span);
    JsonDiagnostic {
        severity: d.severity,
        code: d.code,
        message: &d.message,
        file: d.location.map(|l| sources.name(l.file)),
        line: span.map(|s| s.line),
        column: span.map(|s| s.column),
        help: d.help.as_deref(),
    }
}

/// Writes `diags` to `out` in `format`.
pub fn render(
    out: &mut dyn Write,
    format: Format,
    diags: &[Diagnostic],
    ctx: &RenderContext<'_>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let list: Vec<_> = diags.iter().map(|d| to_json(d, ctx.sources)).collect();
            serde_json::to_writer_pretty(&mut *out, &list)?;
            writeln!(out)
        }
        Format::Github => {
            for d in diags {
                writeln!(out, "{}", github_line(d, ctx.sources))?;
            }
            Ok(())
        }
        Format::Human => {
            let mut texts = MaskedTexts::new(ctx);
            let theme = if ctx.color {
                GraphicalTheme::unicode()
            } else {
                GraphicalTheme::unicode_nocolor()
            };
            for d in diags {
                let view = View::new(d, ctx.sources, &mut texts);
                let handler = GraphicalReportHandler::new_themed(theme.clone())
                    .with_context_lines(view.context);
                let mut s = String::new();
                if handler.render_report(&mut s, &view).is_err() {
                    s = format!("{}: {}\n", d.code, d.message);
                }
                write!(out, "{s}")?;
            }
            Ok(())
        }
    }
}

/// One GitHub Actions annotation line.
pub fn github_line(d: &Diagnostic, sources: &Sources) -> String {
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut props = Vec::new();
    if let Some(l) = d.location {
        props.push(format!(
            "file={}",
            escape_property(&printable(sources.name(l.file)))
        ));
        if let Some(s) = l.span {
            props.push(format!("line={}", s.line));
            props.push(format!("col={}", s.column));
        }
    }
    props.push(format!("title={}", escape_property(d.code)));
    let mut message = printable(&d.message).into_owned();
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(&printable(h));
    }
    format!("::{level} {}::{}", props.join(","), escape_data(&message))
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Characters of a spec file or name that must not reach a terminal or a CI log as they
/// are: control characters (escape sequences, carriage returns, line breaks in a value) and
/// the bidirectional overrides that make text read differently from what it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character escaped (`\u{1b}`, `\n`): for messages, help lines,
/// labels and file names, which are one line each.
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// A file's text for snippets, each unsafe character but its line breaks and tabs replaced
/// by as many `?` as it has bytes, so every span still points at the same bytes.
fn blank_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let line_end = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
        if unsafe_char(c) && !line_end && c != '\t' {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    out
}

/// File texts with secret spans masked, built once per file.
struct MaskedTexts<'a> {
    ctx: &'a RenderContext<'a>,
    cache: BTreeMap<FileId, Arc<String>>,
}

impl<'a> MaskedTexts<'a> {
    fn new(ctx: &'a RenderContext<'a>) -> Self {
        MaskedTexts {
            ctx,
            cache: BTreeMap::new(),
        }
    }

    fn get(&mut self, file: FileId) -> Arc<String> {
        let ctx = self.ctx;
        self.cache
            .entry(file)
            .or_insert_with(|| {
                let mut bytes = ctx
                    .sources
                    .get(file)
                    .map(|f| f.bytes.clone())
                    .unwrap_or_default();
                for (f, span) in ctx.redactions {
                    if *f == file {
                        let end = (span.offset + span.len).min(bytes.len());
                        for b in bytes
                            .get_mut(span.offset.min(end)..end)
                            .into_iter()
                            .flatten()
                        {
                            // Line breaks stay, so a multi-line value keeps its lines
                            // and the lines after it keep their numbers.
                            if *b != b'\n' && *b != b'\r' {
                                *b = b'*';
                            }
                        }
                    }
                }
                Arc::new(blank_controls(&String::from_utf8_lossy(&bytes)))
            })
            .clone()
    }
}

/// Longest line a snippet shows (bytes): a longer one is hard to read, and miette cannot
/// underline past column 65,535 (it panics).
const MAX_SNIPPET_LINE: usize = 1_000;

/// Where the line holding byte `at` of `text` starts and ends (its line feed), if it is
/// short enough to show.
fn short_line(text: &str, at: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let at = at.min(bytes.len());
    let run = |it: &mut dyn Iterator<Item = &u8>| {
        it.take(MAX_SNIPPET_LINE + 1)
            .take_while(|b| **b != b'\n')
            .count()
    };
    let (before, after) = (
        run(&mut bytes[..at].iter().rev()),
        run(&mut bytes[at..].iter()),
    );
    (before + after <= MAX_SNIPPET_LINE).then_some((at - before, at + after))
}

/// How a snippet shows span `s` of `text`: not at all when it starts or ends on a line too
/// long to show, else with the line around it where that line is short too.
fn snippet(text: &str, s: Span) -> Option<usize> {
    let (first, _) = short_line(text, s.offset)?;
    let (_, last) = short_line(text, s.offset.saturating_add(s.len))?;
    let above = first == 0 || short_line(text, first - 1).is_some();
    let below = last >= text.len() || short_line(text, last + 1).is_some();
    Some(usize::from(above && below))
}

/// A diagnostic as miette sees it.
struct View {
    d: Diagnostic,
    source: Option<NamedSource<Arc<String>>>,
    labels: Vec<LabeledSpan>,
    /// Lines of context around the labels.
    context: usize,
    others: Vec<View>,
}

impl View {
    fn new(d: &Diagnostic, sources: &Sources, texts: &mut MaskedTexts<'_>) -> View {
        let mut labels = Vec::new();
        let mut others = Vec::new();
        let mut d = d.clone();
        let mut context = 1;
        let source = d.location.map(|l| {
            let text = texts.get(l.file);
            let name = printable(sources.name(l.file));
            match l.span.map(|s| (s, snippet(&text, s))) {
                Some((s, Some(lines))) => {
                    context = context.min(lines);
                    labels.push(LabeledSpan::new_primary_with_span(None, to_source_span(s)));
                }
                Some((s, None)) => {
                    d.message = format!(
                        "{} (at {name}:{}:{}, on a line too long to show)",
                        d.message, s.line, s.column
                    );
                }
                None => {}
            }
            NamedSource::new(name, Arc::clone(&text))
        });
        for r in &d.related {
            let same_file = d.location.map(|l| l.file) == Some(r.location.file);
            let text = texts.get(r.location.file);
            match r.location.span.map(|s| (s, snippet(&text, s))) {
                Some((s, Some(lines))) if same_file => {
                    context = context.min(lines);
                    labels.push(LabeledSpan::new_with_span(
                        Some(printable(&r.label).into_owned()),
                        to_source_span(s),
                    ));
                }
                _ => {
                    let note = Diagnostic {
                        severity: Severity::Warning,
                        code: "",
                        message: r.label.clone(),
                        help: None,
                        location: Some(r.location),
                        related: Vec::new(),
                    };
                    others.push(View::new(&note, sources, texts));
                }
            }
        }
        d.message = printable(&d.message).into_owned();
        d.help = d.help.map(|h| printable(&h).into_owned());
        View {
            d,
            source,
            labels,
            context,
            others,
        }
    }
}

fn to_source_span(s: Span) -> SourceSpan {
    SourceSpan::new(s.offset.into(), s.len)
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for View {}

impl miette::Diagnostic for View {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.d.code.is_empty()).then(|| Box::new(self.d.code) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning if self.d.code.is_empty() => miette::Severity::Advice,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.others.is_empty()).then(|| {
            Box::new(self.others.iter().map(|o| o as &dyn miette::Diagnostic))
                as Box<dyn Iterator<Item = &'a dyn miette::Diagnostic>>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;

    fn setup() -> (Sources, Diagnostic) {
        let mut sources = Sources::new();
        let file = sources.add("specs/fence.yaml", b"password: hunter2\n".to_vec());
        let span = Span {
            offset: 10,
            len: 7,
            line: 1,
            column: 11,
        };
        let d = Diagnostic::error("quorate::secret::inline", "inline, with: a comma")
            .with_help("use fromEnv")
            .at(Location {
                file,
                span: Some(span),
            });
        (sources, d)
    }

    #[test]
    fn human_output_masks_secrets_and_names_the_file() {
        let (sources, d) = setup();
        let redactions = [(FileId(0), d.location.unwrap().span.unwrap())];
        let ctx = RenderContext {
            sources: &sources,
            redactions: &redactions,
            color: false,
        };
        let mut out = Vec::new();
        render(&mut out, Format::Human, &[d], &ctx).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("specs/fence.yaml:1:11"), "{text}");
        assert!(text.contains("quorate::secret::inline"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("*******"), "{text}");
    }

    #[test]
    fn masking_keeps_the_lines_of_a_multi_line_secret() {
        let mut sources = Sources::new();
        let text = b"env:\n  DB_PASSWORD: |\n    one-secret\n    two-secret\n  X: 1\n";
        let file = sources.add("b.yaml", text.to_vec());
        let span = Span::at_offset(text, 26, 26);
        let d = Diagnostic::warning("quorate::secret::inline-env", "inline").at(Location {
            file,
            span: Some(Span::at_offset(text, 54, 1)),
        });
        let redactions = [(file, span)];
        let ctx = RenderContext {
            sources: &sources,
            redactions: &redactions,
            color: false,
        };
        let mut out = Vec::new();
        render(&mut out, Format::Human, &[d], &ctx).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("one-secret") && !text.contains("two-secret"),
            "{text}"
        );
        assert!(text.contains("4 │ **************\n"), "{text}");
        assert!(text.contains("5 │   X: 1"), "{text}");
    }

    /// A finding far along a line (a spec written on one line) is not drawn under it:
    /// miette panics past column 65,535. Its place goes in the message instead.
    #[test]
    fn a_finding_on_a_very_long_line_names_its_place_without_a_snippet() {
        let mut sources = Sources::new();
        let text = format!("a: [{}]\nbad: 1\n", "1, ".repeat(30_000));
        let file = sources.add("long.yaml", text.clone().into_bytes());
        let at = |offset: usize| Location {
            file,
            span: Some(Span::at_offset(text.as_bytes(), offset, 1)),
        };
        let far = Diagnostic::error("quorate::shape::unknown-field", "far").at(at(90_001));
        let near =
            Diagnostic::error("quorate::shape::unknown-field", "near").at(at(text.len() - 7));
        let ctx = RenderContext {
            sources: &sources,
            redactions: &[],
            color: false,
        };
        let mut out = Vec::new();
        render(&mut out, Format::Human, &[far, near], &ctx).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("far (at long.yaml:1:90002, on a line too long to show)"),
            "{out}"
        );
        assert!(!out.contains("1, 1, 1"), "a long line is not shown: {out}");
        // A finding beside a long line is shown without that line around it.
        assert!(
            out.contains("long.yaml:2:1") && out.contains("2 │ b"),
            "{out}"
        );
    }

    #[test]
    fn github_lines_escape_properties_and_data() {
        let (sources, d) = setup();
        let line = github_line(&d, &sources);
        assert_eq!(
            line,
            "::error file=specs/fence.yaml,line=1,col=11,title=quorate%3A%3Asecret%3A%3Ainline::inline, with: a comma%0Ahelp: use fromEnv"
        );
    }

    #[test]
    fn json_has_the_documented_fields() {
        let (sources, d) = setup();
        let ctx = RenderContext {
            sources: &sources,
            redactions: &[],
            color: false,
        };
        let mut out = Vec::new();
        render(&mut out, Format::Json, &[d], &ctx).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["severity"], "error");
        assert_eq!(v[0]["file"], "specs/fence.yaml");
        assert_eq!(v[0]["line"], 1);
        assert_eq!(v[0]["column"], 11);
        assert_eq!(v[0]["help"], "use fromEnv");
    }
}
