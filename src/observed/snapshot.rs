//! The observed-state snapshot file: one YAML or JSON document holding an [`Observed`],
//! written by `quorate observe` and read by `quorate plan --observed`.

use super::Observed;
use crate::diag::{Diagnostic, Location};
use crate::load::de::from_node;
use crate::load::yaml::{Budget, parse_documents_within};
use crate::source::FileId;

/// Parses a snapshot from `bytes` (file `file` of some [`crate::source::Sources`]),
/// reporting problems located in the file.
pub fn parse(file: FileId, bytes: &[u8]) -> Result<Observed, Vec<Diagnostic>> {
    let at = |span| Location {
        file,
        span: Some(span),
    };
    let docs = parse_documents_within(bytes, Budget::SNAPSHOT).map_err(|e| {
        vec![
            Diagnostic::error("quorate::observed::yaml", e.message)
                .with_help("an observed-state snapshot is one YAML or JSON document")
                .at(at(e.span)),
        ]
    })?;
    let [doc] = docs.as_slice() else {
        return Err(vec![
            Diagnostic::error(
                "quorate::observed::documents",
                format!("expected one document, found {}", docs.len()),
            )
            .with_help("write the snapshot as a single document")
            .in_file(file),
        ]);
    };
    from_node::<Observed>(doc).map_err(|e| {
        e.errors
            .into_iter()
            .map(|e| {
                let help = e.help.map_or_else(String::new, |h| format!("{h}; "));
                Diagnostic::error("quorate::observed::shape", e.message)
                    .with_help(format!(
                        "{help}see the snapshot format in docs/planning.md or schemas/observed.json"
                    ))
                    .at(at(e.span.unwrap_or(doc.span)))
            })
            .collect()
    })
}

/// The snapshot as pretty JSON text (JSON is YAML too, so `parse` reads it back).
pub fn to_json(observed: &Observed) -> String {
    // The model is plain data (strings, integers, maps), which always serializes.
    let mut text = serde_json::to_string_pretty(observed).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{InstanceState, NodeState};

    #[test]
    fn a_snapshot_parses_and_errors_are_located() {
        let text = "now: 100\nnodes:\n  worker1:\n    state: lost\n    since: 90\n    instances:\n      - {bundle: db, index: 0, specHash: abc, state: running}\nconfirmations:\n  - {node: worker1, by: alice, at: 95}\n";
        let o = parse(FileId(0), text.as_bytes()).unwrap();
        let n = &o.nodes["worker1"];
        assert_eq!(n.state, NodeState::Lost);
        assert_eq!(n.instances[0].state, InstanceState::Running);
        assert!(o.confirmed_off("worker1"));

        let bad = "nodes:\n  worker1:\n    state: gone\n";
        let d = parse(FileId(0), bad.as_bytes()).unwrap_err();
        let span = d[0].location.unwrap().span.unwrap();
        assert_eq!((span.line, span.column), (3, 12));
        assert!(d[0].message.contains("online"), "{}", d[0].message);
    }

    /// A cluster of 10,000 nodes and 100,000 instances writes a snapshot of about as many
    /// nodes as a spec file may hold; one of more is read.
    #[test]
    fn a_snapshot_may_hold_more_than_a_spec_file() {
        let count = Budget::SPEC_FILE.nodes / 9 + 1;
        let mut text = String::from(
            "{\"now\": 0, \"nodes\": {\"n1\": {\"state\": \"online\", \"instances\": [",
        );
        for i in 0..count {
            let comma = if i == 0 { "" } else { "," };
            text.push_str(&format!(
                "{comma}{{\"bundle\": \"b\", \"index\": {i}, \"specHash\": \"0\", \"state\": \"running\"}}"
            ));
        }
        text.push_str("]}}}");
        let o = parse(FileId(0), text.as_bytes()).unwrap();
        assert_eq!(o.nodes["n1"].instances.len(), count);
    }

    #[test]
    fn json_round_trips() {
        let text = "{\"now\": 5, \"nodes\": {\"n1\": {\"state\": \"fenced\"}}}";
        let o = parse(FileId(0), text.as_bytes()).unwrap();
        let again = parse(FileId(0), to_json(&o).as_bytes()).unwrap();
        assert_eq!(o, again);
    }
}
