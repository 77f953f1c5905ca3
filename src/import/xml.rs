//! Reading a CIB: XML parsed by roxmltree under budgets, with every element located.
//!
//! The CIB comes from an operator's cluster, but the file handed to `quorate import` may
//! come from anywhere, so it gets the treatment hostile YAML gets: a size limit checked
//! before parsing, no DTD (so no entity expansion at all), a cap on the number of XML
//! nodes, on nesting depth and on the length of one attribute. Breaking one is a finding
//! with its place in the file, never a crash or a memory blow-up.

use roxmltree::{Document, Node, ParsingOptions};

use crate::diag::{Diagnostic, Location, Span};
use crate::source::FileId;

/// The largest CIB read: 16 MiB. A CIB's status section (the operation history of every
/// resource on every node) is larger than a spec file, hence more than the 4 MiB of one
/// spec file.
pub(crate) const MAX_CIB_BYTES: usize = 16 * 1024 * 1024;
/// Most XML nodes (elements, attributes' owners, text) in one CIB.
pub(crate) const MAX_XML_NODES: u32 = 2_000_000;
/// Deepest nesting of elements. A CIB nests about ten deep (rules inside rules a few more).
pub(crate) const MAX_XML_DEPTH: usize = 32;
/// Longest attribute value, the same as the longest YAML scalar of a spec file.
pub(crate) const MAX_ATTRIBUTE_BYTES: usize = crate::load::yaml::MAX_SCALAR_BYTES;

/// The code of every problem with the CIB file itself.
pub(crate) const XML_CODE: &str = "quorate::import::xml";

/// Parses `bytes` as a CIB within the budgets; the error is a located finding.
pub(crate) fn parse(file: FileId, bytes: &[u8]) -> Result<Document<'_>, Box<Diagnostic>> {
    let fail = |message: String, span: Span| {
        let d = Diagnostic::error(XML_CODE, message)
            .with_help(
                "give the XML that `cibadmin --query` or `pcs cluster cib` prints, unchanged",
            )
            .at(Location {
                file,
                span: Some(span),
            });
        Box::new(d)
    };
    if bytes.len() > MAX_CIB_BYTES {
        return Err(fail(
            format!(
                "the file is {} bytes, over the limit of {MAX_CIB_BYTES} bytes for a CIB",
                bytes.len()
            ),
            Span::START,
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let span = Span::at_offset(bytes, e.valid_up_to(), 1);
        fail("the file is not UTF-8 text".into(), span)
    })?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        let message = match e {
            roxmltree::Error::DtdDetected => {
                "the file has a DTD (<!DOCTYPE ...>): a CIB has none, and entities are refused"
                    .to_owned()
            }
            roxmltree::Error::NodesLimitReached => {
                format!("the file has more than {MAX_XML_NODES} XML nodes")
            }
            other => format!("the XML does not parse: {other}"),
        };
        let span = match text.find("<!DOCTYPE").filter(|_| message.contains("DTD")) {
            // roxmltree places this error at the start of the file; point at the DTD.
            Some(offset) => Span::at_offset(bytes, offset, "<!DOCTYPE".len()),
            None => Span::at_line_column(bytes, pos.row, pos.col, 1),
        };
        fail(message, span)
    })?;
    check_shape(&doc, bytes)
        .map_err(|(message, offset)| fail(message, Span::at_offset(bytes, offset, 1)))?;
    let root = doc.root_element();
    if root.tag_name().name() != "cib" {
        return Err(fail(
            format!(
                "the top element is <{}>, not <cib>",
                truncate(root.tag_name().name())
            ),
            span_of(bytes, root),
        ));
    }
    Ok(doc)
}

/// Depth and attribute lengths, walked without recursion.
fn check_shape(doc: &Document<'_>, bytes: &[u8]) -> Result<(), (String, usize)> {
    let _ = bytes;
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for node in doc.descendants() {
        let d = node.parent().map_or(0, |p| depth[p.id().get_usize()] + 1);
        depth[node.id().get_usize()] = d;
        if d > MAX_XML_DEPTH {
            return Err((
                format!("elements nest deeper than {MAX_XML_DEPTH} levels"),
                node.range().start,
            ));
        }
        for a in node.attributes() {
            if a.value().len() > MAX_ATTRIBUTE_BYTES {
                return Err((
                    format!(
                        "the attribute `{}` is {} bytes long, over the limit of {MAX_ATTRIBUTE_BYTES}",
                        truncate(a.name()),
                        a.value().len()
                    ),
                    a.range().start,
                ));
            }
        }
        if node.is_text() && node.text().is_some_and(|t| t.len() > MAX_ATTRIBUTE_BYTES) {
            return Err((
                format!("a text of over {MAX_ATTRIBUTE_BYTES} bytes"),
                node.range().start,
            ));
        }
    }
    Ok(())
}

/// At most 60 characters of `s`, for messages.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_owned()
    } else {
        s.chars().take(57).chain("...".chars()).collect()
    }
}

/// The span of an element's start tag name (so a snippet points at `<bundle`).
pub(crate) fn span_of(bytes: &[u8], node: Node<'_, '_>) -> Span {
    let start = node.range().start;
    let len = node.tag_name().name().len() + 1;
    Span::at_offset(bytes, start, len)
}

/// The span of an attribute's value.
pub(crate) fn value_span(bytes: &[u8], attr: &roxmltree::Attribute<'_, '_>) -> Span {
    let r = attr.range_value();
    Span::at_offset(bytes, r.start, r.end.saturating_sub(r.start))
}

/// The element children of `node` called `name`.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The first element child of `node` called `name`.
pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, name).next()
}

/// How an element is named in findings and comments: `<bundle id="db">`.
pub(crate) fn describe(node: Node<'_, '_>) -> String {
    let tag = node.tag_name().name();
    match node.attribute("id") {
        Some(id) => format!("<{tag} id=\"{}\">", truncate(id)),
        None => match node.attribute("name") {
            Some(n) => format!("<{tag} name=\"{}\">", truncate(n)),
            None => format!("<{tag}>"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> Diagnostic {
        *parse(FileId(0), text.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_cib_parses_and_elements_are_located() {
        let text = "<cib>\n  <configuration>\n    <nodes/>\n  </configuration>\n</cib>\n";
        let doc = parse(FileId(0), text.as_bytes()).unwrap();
        let nodes = doc.descendants().find(|n| n.has_tag_name("nodes")).unwrap();
        let span = span_of(text.as_bytes(), nodes);
        assert_eq!((span.line, span.column), (3, 5));
        assert_eq!(describe(nodes), "<nodes>");
    }

    #[test]
    fn entity_bombs_and_dtds_are_refused() {
        let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE cib [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n<cib>&b;</cib>\n";
        let d = err(bomb);
        assert_eq!(d.code, XML_CODE);
        assert!(d.message.contains("DTD"), "{}", d.message);
        let external = "<!DOCTYPE cib SYSTEM \"file:///etc/passwd\"><cib/>";
        assert!(err(external).message.contains("DTD"));
    }

    #[test]
    fn deep_nesting_huge_attributes_and_other_roots_are_refused() {
        let deep = format!("<cib>{}{}</cib>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(err(&deep).message.contains("nest deeper"));
        let huge = format!("<cib x=\"{}\"/>", "y".repeat(MAX_ATTRIBUTE_BYTES + 1));
        let d = err(&huge);
        assert!(d.message.contains("attribute `x`"), "{}", d.message);
        assert!(err("<html/>").message.contains("not <cib>"));
        assert!(
            err("<cib><unclosed></cib>")
                .message
                .contains("does not parse")
        );
        let d = parse(FileId(0), b"<cib a=\"\xff\"/>").unwrap_err();
        assert!(d.message.contains("UTF-8"));
        let big = vec![b' '; MAX_CIB_BYTES + 1];
        assert!(
            parse(FileId(0), &big)
                .unwrap_err()
                .message
                .contains("over the limit")
        );
    }

    #[test]
    fn a_million_siblings_is_refused_quickly() {
        let many = format!("<cib>{}</cib>", "<a/>".repeat(MAX_XML_NODES as usize + 1));
        let started = std::time::Instant::now();
        let d = err(&many);
        assert!(d.message.contains("XML nodes"), "{}", d.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
