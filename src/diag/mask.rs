//! The one place an inline secret is taken out of findings' text (design invariant 7).
//! Snippets are masked by span when rendered ([`super::render`]); a message, a help line or
//! a label can also quote a value (`found the number 27182.81828`), and those are stored in
//! state.db and served by `/status`, so every finding's text is masked here, before any of
//! that, for every secret span of every file, whatever the finding is about.

use super::{Diagnostic, Span};
use crate::source::{FileId, Sources};

/// What a secret is replaced with in a finding's text.
pub const MASK: &str = "<redacted>";

/// Replaces, in the message, help and labels of every finding, each way the value of a
/// secret span could have been quoted: its source text, its scalars unquoted, a number as
/// Rust prints it back.
pub fn mask_findings(diags: &mut [Diagnostic], sources: &Sources, secrets: &[(FileId, Span)]) {
    let mut forms: Vec<String> = secrets
        .iter()
        .filter_map(|(file, span)| {
            let bytes = &sources.get(*file)?.bytes;
            let end = (span.offset + span.len).min(bytes.len());
            Some(String::from_utf8_lossy(bytes.get(span.offset.min(end)..end)?).into_owned())
        })
        .flat_map(|raw| secret_forms(&raw))
        .collect();
    if forms.is_empty() {
        return;
    }
    // The longest first, so a value is masked whole before a part of it is looked for.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    for d in diags {
        mask(&mut d.message, &forms);
        if let Some(h) = &mut d.help {
            mask(h, &forms);
        }
        for r in &mut d.related {
            mask(&mut r.label, &forms);
        }
    }
}

/// The texts that would show a secret written as `raw`: `raw` itself, each scalar in it
/// with its quotes removed, and a number's other spellings.
fn secret_forms(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    let mut forms = vec![raw.to_owned(), unquote(raw).to_owned()];
    for token in raw.split(|c: char| c.is_whitespace() || "[]{},".contains(c)) {
        let token = unquote(token.trim_end_matches(':'));
        if token.is_empty() {
            continue;
        }
        forms.push(token.to_owned());
        let plain = token.replace('_', "");
        if let Ok(f) = plain.parse::<f64>() {
            forms.push(f.to_string());
            forms.push(format!("{f:?}"));
        }
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
            .into_iter()
            .find_map(|(p, r)| plain.strip_prefix(p).map(|d| (d, r)));
        if let Some(Ok(n)) = radix.map(|(d, r)| i128::from_str_radix(d, r)) {
            forms.push(n.to_string());
        }
    }
    forms.retain(|f| !f.is_empty());
    forms
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Replaces every occurrence of a form in `text` that is not part of a longer word.
fn mask(text: &mut String, forms: &[String]) {
    for form in forms {
        if !text.contains(form.as_str()) {
            continue;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(form.as_str()) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + form.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            out.push_str(&rest[..at]);
            if word(before) || word(after) {
                out.push_str(form);
            } else {
                out.push_str(MASK);
            }
            rest = &rest[at + form.len()..];
        }
        out.push_str(rest);
        *text = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;

    #[test]
    fn every_spelling_of_a_secret_is_masked_in_every_text_of_a_finding() {
        let mut sources = Sources::new();
        let text = "a: 27182.81828\nb: 'hunter 2'\nc: 0x1F\nd: [s3cr3t, x]\n";
        let file = sources.add("f.yaml", text.as_bytes().to_vec());
        let span = |from: &str, to_eol: bool| {
            let offset = text.find(from).unwrap();
            let len = if to_eol {
                text[offset..].find('\n').unwrap()
            } else {
                from.len()
            };
            Span::at_offset(text.as_bytes(), offset, len)
        };
        let secrets = [
            (file, span("27182.81828", false)),
            (file, span("'hunter 2'", false)),
            (file, span("0x1F", false)),
            (file, span("[s3cr3t", true)),
        ];
        let mut d = vec![
            Diagnostic::error(
                "quorate::shape::invalid-type",
                "found the number 27182.81828",
            )
            .with_help("not `hunter 2`, nor 31, nor s3cr3t; keep 31337 and x-ray")
            .in_file(file)
            .with_related(Location { file, span: None }, "was 27182.81828 here"),
        ];
        mask_findings(&mut d, &sources, &secrets);
        assert_eq!(d[0].message, "found the number <redacted>");
        assert_eq!(
            d[0].help.as_deref(),
            Some("not `<redacted>`, nor <redacted>, nor <redacted>; keep 31337 and <redacted>-ray")
        );
        assert_eq!(d[0].related[0].label, "was <redacted> here");
    }
}
