//! The documentation keeps up with the code: every diagnostic code the sources can raise
//! is explained in the docs, and every command of the binary is in the README's table.

use std::collections::BTreeSet;
use std::path::Path;

fn read_tree(dir: &Path, ext: &str, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_tree(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Every `"quorate::<layer>::<what>"` string literal in `text`.
fn codes(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("\"quorate::") {
        let rest = &text[i + 1..];
        let end = rest.find('"').unwrap_or(rest.len());
        let code = &rest[..end];
        let parts: Vec<&str> = code.split("::").collect();
        let well_formed = parts.len() == 3
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        if well_formed {
            found.insert(code.to_owned());
        }
    }
    found
}

#[test]
fn every_diagnostic_code_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    read_tree(&root.join("src"), "rs", &mut sources);
    let mut docs = std::fs::read_to_string(root.join("README.md")).unwrap();
    read_tree(&root.join("docs"), "md", &mut docs);
    let found = codes(&sources);
    assert!(found.len() > 40, "the scan found only {found:?}");
    let missing: Vec<_> = found
        .iter()
        .filter(|c| !docs.contains(&format!("`{c}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented codes: {missing:?}");
}

#[test]
fn every_command_is_in_the_readme() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quorate"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description wrapped to the next line is indented further than a command.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 8, "{help}");
    for c in commands {
        assert!(
            readme.contains(&format!("| `quorate {c}")),
            "`quorate {c}` is not in the README's command table"
        );
    }
}
