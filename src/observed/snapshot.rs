//! The observed-state snapshot file: one YAML or JSON document holding an [`Observed`],
//! written by `quorate observe` and read by `quorate plan --observed`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};

use super::Observed;
use crate::diag::{Diagnostic, Location};
use crate::load::de::from_node;
use crate::load::yaml::{Budget, parse_documents_within};
use crate::source::FileId;

/// Parses a snapshot from `bytes` (file `file` of some [`crate::source::Sources`]),
/// reporting problems located in the file.
pub fn parse(file: FileId, bytes: &[u8]) -> Result<Observed, Vec<Diagnostic>> {
    match json(bytes, Budget::SNAPSHOT) {
        Some(observed) => Ok(observed),
        None => yaml(file, bytes),
    }
}

/// A snapshot in JSON, as `quorate observe` writes it, read by serde_json without a tree
/// of located nodes (4.7 ms against the YAML reader's 8.2 ms at 1,000 nodes). `None` for
/// anything else, for every error (the YAML reader then says where and what is wrong),
/// and for text that might hold more than `budget` allows (the YAML reader refuses it).
fn json(bytes: &[u8], budget: Budget) -> Option<Observed> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    (object && within(bytes, budget))
        .then(|| serde_json::from_slice(bytes).ok())
        .flatten()
}

/// Whether JSON `bytes` hold at most the nodes and scalar bytes of `budget`. A
/// conservative count, strings included: each `:` stands for at most a key and its value,
/// each `,` for one more item, and each `[` or `{` for a collection and its first item.
fn within(bytes: &[u8], budget: Budget) -> bool {
    let nodes: usize = bytes
        .iter()
        .map(|b| match b {
            b':' | b'[' | b'{' => 2,
            b',' => 1,
            _ => 0,
        })
        .sum();
    bytes.len() <= budget.scalar_bytes && nodes <= budget.nodes
}

/// A map whose keys are distinct: serde_json, unlike the YAML reader, would keep the last
/// of two equal keys. For the maps of [`Observed`].
pub(super) fn distinct_keys<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + std::fmt::Display,
    V: Deserialize<'de>,
{
    struct Distinct<K, V>(PhantomData<(K, V)>);
    impl<'de, K, V> Visitor<'de> for Distinct<K, V>
    where
        K: Deserialize<'de> + Ord + std::fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<K, V>()? {
                match out.entry(k) {
                    Entry::Occupied(e) => {
                        return Err(A::Error::custom(format!("duplicate key {}", e.key())));
                    }
                    Entry::Vacant(e) => e.insert(v),
                };
            }
            Ok(out)
        }
    }
    d.deserialize_map(Distinct(PhantomData))
}

/// The YAML reader's reading of a snapshot, JSON included, with located errors.
fn yaml(file: FileId, bytes: &[u8]) -> Result<Observed, Vec<Diagnostic>> {
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

    /// A snapshot with every field set, in JSON.
    fn rich_json() -> String {
        let text = "now: 100\nreconcilerVotes: 2\nnodes:\n  w1:\n    state: lost\n    since: 90\n    standby: true\n    instances:\n      - {bundle: db, index: 0, specHash: abc, state: running, role: {promoted: false, follows: w2, preference: -3}}\n      - {bundle: db, index: 1, state: failed}\n    conflicts: [db-2]\n    failures: {db-0: {count: 2, last: 80}}\n  w2: {}\nconfirmations:\n  - {node: w1, by: \"al \\u00e9\", at: 95}\nsuspended:\n  cluster: {atUnixMs: 7, reason: r}\n  bundles: {db: {atUnixMs: 8, reason: \"\"}}\n";
        to_json(&parse(FileId(0), text.as_bytes()).unwrap())
    }

    /// serde_json and the YAML reader read a JSON snapshot the same way.
    #[test]
    fn json_is_read_as_the_yaml_reader_reads_it() {
        let text = rich_json();
        let fast = json(text.as_bytes(), Budget::SNAPSHOT).expect("read by serde_json");
        assert_eq!(Ok(fast.clone()), yaml(FileId(0), text.as_bytes()));
        assert_eq!(fast.nodes["w1"].failures["db-0"].count, 2);
        assert_eq!(fast.suspended.bundles.len(), 1);
        assert_eq!(fast.confirmations[0].by, "al é");
    }

    /// Equal keys are refused in each map, as the YAML reader refuses them, with the
    /// YAML reader's location; the first wins nowhere.
    #[test]
    fn json_with_equal_keys_is_refused_where_it_is() {
        let rich = rich_json();
        let doubled = [
            rich.replacen("\"w2\": {", "\"w2\": {}, \"w2\": {", 1),
            rich.replacen("\"db-0\": {", "\"db-0\": {\"count\": 1}, \"db-0\": {", 1),
            rich.replacen("\"db\": {", "\"db\": {\"atUnixMs\": 1}, \"db\": {", 1),
        ];
        for text in doubled {
            assert_ne!(text, rich);
            assert_eq!(json(text.as_bytes(), Budget::SNAPSHOT), None, "{text}");
            let d = parse(FileId(0), text.as_bytes()).unwrap_err();
            assert!(d[0].message.contains("duplicate"), "{}", d[0].message);
            assert!(d[0].location.unwrap().span.unwrap().line > 1);
        }
    }

    /// JSON that might hold more than the YAML reader's budget goes to it: whatever the
    /// count lets through, the YAML reader reads within the budget.
    #[test]
    fn json_over_the_budget_goes_to_the_yaml_reader() {
        let budget = Budget {
            nodes: 60,
            events: 120,
            scalar_bytes: 400,
        };
        let item = |i: usize| match i % 4 {
            0 => "[]".to_owned(),
            1 => format!("{{\"k{i}\": \"a,b:c\"}}"),
            2 => format!("[{i}, [\"x\"]]"),
            _ => format!("{{\"k\": {{\"m\": [{i}]}}}}"),
        };
        let mut passed = 0;
        for count in 0..60 {
            let items: Vec<String> = (0..count).map(item).collect();
            let text = format!("{{\"now\": 0, \"x\": [{}]}}", items.join(","));
            if within(text.as_bytes(), budget) {
                passed += 1;
                assert!(
                    parse_documents_within(text.as_bytes(), budget).is_ok(),
                    "{text}"
                );
            } else {
                assert_eq!(json(text.as_bytes(), budget), None);
            }
        }
        assert!((5..60).contains(&passed), "{passed}");
        assert!(within(rich_json().as_bytes(), Budget::SNAPSHOT));
    }

    #[test]
    fn json_round_trips() {
        let text = "{\"now\": 5, \"nodes\": {\"n1\": {\"state\": \"fenced\"}}}";
        let o = parse(FileId(0), text.as_bytes()).unwrap();
        let again = parse(FileId(0), to_json(&o).as_bytes()).unwrap();
        assert_eq!(o, again);
    }
}
