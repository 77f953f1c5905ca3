//! JSON Schemas of the spec documents and of the observed-state snapshot, generated from
//! the Rust types, for editors (`# yaml-language-server: $schema=…`) and other tools.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::observed::Observed;
use crate::spec::{
    API_VERSION, BundleSpec, ClusterSpec, ConstraintSpec, Document, FenceSpec, GroupSpec, Kind,
};

/// Every schema quorate publishes, by file name: one per kind, `quorate.json` accepting
/// any spec document, and `observed.json` for the observed-state snapshot.
pub fn all() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut refs = Vec::new();
    for kind in Kind::ALL {
        let schema = match kind {
            Kind::Cluster => document::<ClusterSpec>(kind),
            Kind::Bundle => document::<BundleSpec>(kind),
            Kind::Fence => document::<FenceSpec>(kind),
            Kind::Constraint => document::<ConstraintSpec>(kind),
            Kind::Group => document::<GroupSpec>(kind),
        };
        let file = format!("{}.json", kind.as_str().to_ascii_lowercase());
        refs.push(json!({
            "if": {"properties": {"kind": {"const": kind.as_str()}}, "required": ["kind"]},
            "then": {"$ref": file.clone()}
        }));
        out.insert(file, schema);
    }
    out.insert("observed.json".to_owned(), observed());
    out.insert(
        "quorate.json".to_owned(),
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "quorate.json",
            "title": "quorate spec document",
            "type": "object",
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "kind": {"enum": Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()}
            },
            "allOf": refs
        }),
    );
    out
}

fn document<S: schemars::JsonSchema>(kind: Kind) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<Document<S>>();
    let mut v = schema.to_value();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!(format!("{}.json", kind.as_str().to_ascii_lowercase())),
        );
        obj.insert("title".into(), json!(format!("quorate {kind}")));
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"const": API_VERSION}));
            props.insert("kind".into(), json!({"const": kind.as_str()}));
        }
    }
    v
}

/// The schema of the snapshot file `quorate plan --observed` reads.
fn observed() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut v = generator.into_root_schema_for::<Observed>().to_value();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$id".into(), json!("observed.json"));
        obj.insert("title".into(), json!("quorate observed-state snapshot"));
    }
    v
}

/// The schemas as pretty JSON text with a trailing newline, by file name.
pub fn rendered() -> BTreeMap<String, String> {
    all()
        .into_iter()
        .map(|(name, v)| {
            let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
            text.push('\n');
            (name, text)
        })
        .collect()
}
