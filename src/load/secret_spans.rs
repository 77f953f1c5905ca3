//! Where a file's inline secrets are, so no output shows them (design invariant 7): the
//! value of a `password` key that is not a `fromEnv`/`fromFile` reference, and the inline
//! value of an environment variable whose name says it is a secret. Found whatever else is
//! wrong with the document: by its tree when the file parses (any kind, any apiVersion, a
//! duplicate name), and by its lines when it does not (a duplicate key, bad syntax).

use super::yaml::{Node, Value};
use crate::diag::Span;
use crate::secret::is_secret_name;

/// The keys of a secret reference: a mapping of only these is not an inline value.
const REFERENCE_KEYS: [&str; 2] = ["fromEnv", "fromFile"];

/// The inline secrets of a parsed document: every `password` value (at any depth) and
/// every secret-named entry of an `env` mapping (at any depth) that is not a reference.
pub(super) fn in_tree(root: &Node) -> Vec<Span> {
    let mut out = Vec::new();
    walk(root, false, &mut out);
    out
}

fn walk(node: &Node, in_env: bool, out: &mut Vec<Span>) {
    match &node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                let secret =
                    key.eq_ignore_ascii_case("password") || (in_env && is_secret_name(key));
                if secret && !is_reference(v) {
                    out.push(v.span);
                } else {
                    walk(v, key == "env", out);
                }
            }
        }
        Value::Seq(items) => items.iter().for_each(|n| walk(n, false, out)),
        _ => {}
    }
}

fn is_reference(n: &Node) -> bool {
    match &n.value {
        Value::Map(entries) => entries
            .iter()
            .all(|(k, _)| k.as_str().is_some_and(|k| REFERENCE_KEYS.contains(&k))),
        _ => false,
    }
}

/// The inline secrets of a file that does not parse, by its lines: after a key that is
/// `password` or names a secret (`DB_PASSWORD:`, `"api_token":`), the rest of the line,
/// and the lines after it indented deeper (a block or multi-line scalar), unless the value
/// is a reference. Errs on the side of masking: a broken file has no structure to trust.
pub(super) fn in_lines(bytes: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut offset = 0;
    // The indentation of a secret key whose value continues on deeper lines.
    let mut open: Option<usize> = None;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let indent = body.iter().take_while(|b| **b == b' ').count();
        let blank = body[indent..].is_empty() || body[indent] == b'#';
        if let Some(key_indent) = open {
            if blank || indent > key_indent {
                if !blank && !starts_reference(&body[indent..]) {
                    out.push(Span::at_offset(bytes, offset + indent, body.len() - indent));
                }
                offset += line.len();
                continue;
            }
            open = None;
        }
        if let Some((value_at, key_indent)) = secret_value_start(body) {
            let value = &body[value_at..];
            let trimmed = value.iter().take_while(|b| **b == b' ').count();
            if !starts_reference(&value[trimmed..]) && trimmed < value.len() {
                out.push(Span::at_offset(
                    bytes,
                    offset + value_at + trimmed,
                    value.len() - trimmed,
                ));
            }
            open = Some(key_indent);
        }
        offset += line.len();
    }
    out
}

/// Where the value of the first secret key of `line` starts, and the key's column.
fn secret_value_start(line: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < line.len() {
        // A key starts after the indentation, `- `, `{`, `,` or a space.
        let starts_key = i == 0 || matches!(line[i - 1], b' ' | b'{' | b',' | b'-');
        if starts_key && line[i] != b' ' {
            let (key, end) = key_at(line, i);
            if end < line.len()
                && line[end] == b':'
                && (end + 1 == line.len() || line[end + 1] == b' ')
                && (key.eq_ignore_ascii_case("password") || is_secret_name(key))
            {
                return Some((end + 1, i));
            }
        }
        i += 1;
    }
    None
}

/// The key text at `i` (quotes removed) and the index just after it.
fn key_at(line: &[u8], i: usize) -> (&str, usize) {
    let quote = line[i];
    if quote == b'"' || quote == b'\'' {
        let close = line[i + 1..].iter().position(|b| *b == quote);
        return match close {
            Some(c) => (
                std::str::from_utf8(&line[i + 1..i + 1 + c]).unwrap_or_default(),
                i + c + 2,
            ),
            None => ("", line.len()),
        };
    }
    let end = line[i..]
        .iter()
        .position(|b| matches!(b, b':' | b' ' | b',' | b'{' | b'}' | b'[' | b']'))
        .map_or(line.len(), |p| i + p);
    (std::str::from_utf8(&line[i..end]).unwrap_or_default(), end)
}

/// Whether a value is written as a reference (`{fromEnv: X}`, `fromFile: /p`).
fn starts_reference(value: &[u8]) -> bool {
    let v = value.strip_prefix(b"{").unwrap_or(value);
    let v = &v[v.iter().take_while(|b| **b == b' ').count()..];
    REFERENCE_KEYS
        .iter()
        .any(|k| v.starts_with(k.as_bytes()) && v.get(k.len()) == Some(&b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str, spans: &[Span]) -> String {
        let mut b = text.as_bytes().to_vec();
        for s in spans {
            for x in &mut b[s.offset..s.offset + s.len] {
                *x = b'*';
            }
        }
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn lines_mask_secret_values_of_a_file_that_does_not_parse() {
        let text = "spec:\n  ipmi:\n    password: hunter2\n    password: again\n  \
                    env: {DB_PASSWORD: 's3 cr', MODE: x, \"api_token\": tok}\n  \
                    other: {password: {fromEnv: X}}\n  key: |\n    multi\n    line\n  \
                    next: visible\n  password:\n    fromFile: /p\n";
        let out = masked(text, &in_lines(text.as_bytes()));
        for gone in ["hunter2", "again", "s3 cr", "tok", "multi", "line\n"] {
            assert!(!out.contains(gone), "{gone}: {out}");
        }
        for kept in [
            "fromEnv: X",
            "next: visible",
            "fromFile: /p",
            "spec:",
            "password:",
        ] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
    }

    #[test]
    fn the_tree_masks_passwords_at_any_depth_and_secret_env_values() {
        let text = "a: {b: [{Password: 1.5}]}\nspec:\n  env: {DB_TOKEN: x1, MODE: plain, K: {fromEnv: Y}}\n  \
                    ipmi: {password: {fromEnv: Z}}\n";
        let root = super::super::yaml::parse_documents(text.as_bytes())
            .unwrap()
            .remove(0);
        let out = masked(text, &in_tree(&root));
        assert!(!out.contains("1.5") && !out.contains("x1"), "{out}");
        assert!(
            out.contains("MODE: plain") && out.contains("fromEnv: Z"),
            "{out}"
        );
    }
}
