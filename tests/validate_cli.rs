//! `quorate validate` and `quorate schema` as a user runs them: examples, formats, exit
//! codes, and hostile input that must be refused without a panic, a hang or a memory
//! blow-up.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn quorate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs `cmd`, failing the test if it does not finish within `limit` (a hang).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quorate");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("quorate did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Peak resident memory of all waited-for children so far, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_CHILDREN is valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss as u64 * 1024
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn every_example_and_the_quickstart_specs_are_valid() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 3,
        "examples/ should hold at least three spec sets"
    );
    for dir in dirs {
        let out = quorate()
            .arg("validate")
            .arg(&dir)
            .arg("--strict")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is not valid:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // specs/ is the lab's spec set: valid, and warned only about its nodes' plain-TCP
    // runtimes (`insecure: true`, what a lab on a private bridge uses).
    let out = quorate()
        .arg("validate")
        .arg(repo("specs"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "specs/ is not valid");
    let findings = json(&out);
    let codes: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec!["quorate::runtime::insecure"; 3], "{findings}");
}

#[test]
fn example_files_declare_the_schema_and_satisfy_it() {
    let schemas: Vec<(String, serde_json::Value)> = std::fs::read_dir(repo("schemas"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    let mut checked = 0;
    for dir in [
        "examples/two-workers",
        "examples/racks",
        "examples/lb-pair",
        "examples/capacity",
        "specs",
    ] {
        for entry in std::fs::read_dir(repo(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema="),
                "{} must start with the schema line",
                path.display()
            );
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
            for doc in docs {
                let kind = doc["kind"].as_str().unwrap().to_ascii_lowercase();
                let (_, schema) = schemas
                    .iter()
                    .find(|(n, _)| *n == format!("{kind}.json"))
                    .unwrap();
                let validator = jsonschema::validator_for(schema).unwrap();
                let errors: Vec<String> =
                    validator.iter_errors(&doc).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} documents checked");
}

#[test]
fn the_schemas_directory_equals_the_generated_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let out = quorate()
        .arg("schema")
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut generated: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    assert_eq!(
        generated,
        [
            "bundle.json",
            "cluster.json",
            "constraint.json",
            "fence.json",
            "group.json",
            "observed.json",
            "quorate.json"
        ]
    );
    for name in generated {
        let want = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let have = std::fs::read_to_string(repo("schemas").join(&name)).unwrap_or_default();
        assert!(
            have == want,
            "schemas/{name} is stale: run `cargo run -- schema --out schemas`"
        );
    }
}

#[test]
fn exit_codes_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: web}\nspec:\n  image: x\n  replica: 2\n",
    )
    .unwrap();
    let out = quorate().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("did you mean `replicas`?"), "{text}");
    assert!(text.contains("bad.yaml:6:3"), "{text}");

    let out = quorate()
        .args(["validate", "--format", "github"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("unknown-field")).unwrap();
    assert!(
        line.starts_with(&format!(
            "::error file={},line=6,col=3,title=",
            bad.display()
        )),
        "{line}"
    );

    let out = quorate()
        .args(["validate", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v = json(&out);
    let first = &v.as_array().unwrap()[0];
    for key in [
        "severity", "code", "message", "file", "line", "column", "help",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }

    let out = quorate()
        .args(["validate", "/nonexistent/specs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = quorate()
        .args(["validate", "--format", "xml", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn strict_turns_warnings_into_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///s'}]\n  quorum: {noQuorumPolicy: ignore}\n",
    )
    .unwrap();
    let out = quorate().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = quorate()
        .arg("validate")
        .arg("--strict")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_inline_password_never_appears_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("f.yaml"),
        "apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {name: f}\nspec:\n  targets: [n1]\n  ipmi:\n    address: bmc\n    username: admin\n    password: Tr0ub4dor&3\n",
    )
    .unwrap();
    for format in ["human", "json", "github"] {
        let out = quorate()
            .args(["validate", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.contains("quorate::secret::inline") || text.contains("secret%3A%3Ainline"),
            "{format}: {text}"
        );
        assert!(
            !text.contains("Tr0ub4dor"),
            "{format} leaked the password: {text}"
        );
    }
}

/// Writes one hostile file into a fresh directory, validates the directory, and checks
/// the result: exit 1, a diagnostic with `code` naming the file, in bounded time and memory.
fn refuses(name: &str, code: &str, write: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write(&path);
    let out = run_bounded(
        quorate()
            .args(["validate", "--format", "json"])
            .arg(dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let hit = v
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["code"] == code && d["file"].as_str().is_some_and(|f| f.contains(name)));
    assert!(hit, "{name}: expected {code} naming the file, got {v:#}");
    let peak = children_peak_rss();
    assert!(peak < 256 << 20, "{name}: peak memory {} MiB", peak >> 20);
}

#[test]
fn an_alias_bomb_is_refused() {
    refuses("bomb.yaml", "quorate::yaml::budget", |p| {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            let refs = vec![format!("*{prev}"); 10].join(", ");
            s.push_str(&format!("{cur}: &{cur} [{refs}]\n"));
        }
        std::fs::write(p, s).unwrap();
    });
}

#[test]
fn deep_nesting_is_refused() {
    refuses("deep.yaml", "quorate::yaml::budget", |p| {
        std::fs::write(
            p,
            format!("a: {}{}\n", "[".repeat(20_000), "]".repeat(20_000)),
        )
        .unwrap();
    });
    refuses("deep-block.yaml", "quorate::yaml::budget", |p| {
        std::fs::write(p, format!("{}x\n", "- ".repeat(20_000))).unwrap();
    });
}

#[test]
fn invalid_utf8_is_refused() {
    refuses("latin1.yaml", "quorate::yaml::encoding", |p| {
        std::fs::write(
            p,
            b"apiVersion: quorate.io/v1alpha1\nkind: Bundle\nname: caf\xe9\n",
        )
        .unwrap();
    });
}

#[test]
fn nul_bytes_are_refused() {
    refuses("nul.yaml", "quorate::yaml::syntax", |p| {
        std::fs::write(p, b"apiVersion: quorate.io/v1alpha1\nkind: Bun\x00dle\n").unwrap();
    });
}

#[test]
fn a_multi_megabyte_scalar_is_refused() {
    refuses("huge-scalar.yaml", "quorate::yaml::budget", |p| {
        std::fs::write(p, format!("image: {}\n", "x".repeat(3 << 20))).unwrap();
    });
}

#[test]
fn custom_tags_are_refused() {
    refuses("tag.yaml", "quorate::yaml::tag", |p| {
        std::fs::write(p, "kind: !!python/object:os.system ls\n").unwrap();
    });
}

#[test]
fn duplicate_keys_are_refused() {
    refuses("dup.yaml", "quorate::yaml::duplicate-key", |p| {
        std::fs::write(
            p,
            "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nkind: Fence\n",
        )
        .unwrap();
    });
}

#[test]
fn a_symlink_loop_is_refused() {
    refuses("loop", "quorate::file::unreadable", |p| {
        std::fs::create_dir(p).unwrap();
        std::os::unix::fs::symlink("..", p.join("back")).unwrap();
    });
}

#[test]
fn unreadable_files_are_refused() {
    refuses("dangling.yaml", "quorate::file::unreadable", |p| {
        std::os::unix::fs::symlink("/nonexistent/quorate/spec.yaml", p).unwrap();
    });
    // Root reads any file whatever its mode; as another user the mode is enforced.
    if unsafe { libc::geteuid() } != 0 {
        refuses("secret.yaml", "quorate::file::unreadable", |p| {
            std::fs::write(p, "a: 1\n").unwrap();
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o000))
                .unwrap();
        });
    }
    refuses("pipe.yaml", "quorate::file::not-regular", |p| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    });
}

#[test]
fn a_100_megabyte_file_is_refused_without_reading_it() {
    refuses("big.yaml", "quorate::file::too-large", |p| {
        let f = std::fs::File::create(p).unwrap();
        f.set_len(100 << 20).unwrap();
    });
}

/// Validates one file `b.yaml` holding `text`, in human form.
fn human(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.yaml"), text).unwrap();
    let out = quorate()
        .arg("validate")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of the human output's snippet for the finding with `code`: from its
/// `╭─[file:line:col]` header to the end of the snippet.
fn snippet<'a>(text: &'a str, code: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.contains(code))
        .skip_while(|l| !l.contains("╭─["))
        .take_while(|l| !l.contains("╰"))
        .collect()
}

/// The YAML syntax errors spec authors meet most: the human output names the parser's
/// line and column and its snippet shows that line, with the mark under the culprit.
#[test]
fn yaml_syntax_errors_point_at_the_real_place() {
    let head = "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata:\n  name: web\nspec:\n";
    // (body, header location, the snippet's line, column of the mark, help words)
    let cases = [
        ("\timage: x\n", "b.yaml:6:1]", "6 │     image: x", 1, "tabs"),
        (
            "  image: \"docker.io/x\n  replicas: 2\n",
            "b.yaml:6:10]",
            "6 │   image: \"docker.io/x",
            10,
            "close the quote",
        ),
        (
            "  image: x: y\n  replicas: 2\n",
            "b.yaml:6:11]",
            "6 │   image: x: y",
            11,
            "must be quoted",
        ),
    ];
    for (body, at, line, column, help) in cases {
        let text = human(&format!("{head}{body}"));
        let snip = snippet(&text, "quorate::yaml::syntax");
        assert!(snip.first().is_some_and(|h| h.ends_with(at)), "{text}");
        let i = snip
            .iter()
            .position(|l| l.trim_start().starts_with(line))
            .unwrap_or_else(|| panic!("no line `{line}` in:\n{text}"));
        // The mark sits under the column (a tab is shown as four spaces), on the next line.
        let mark = snip.get(i + 1).copied().unwrap_or_default();
        let gutter = snip[i].find('│').unwrap() + '│'.len_utf8() + 1;
        let shown: String = body.chars().take(column - 1).collect();
        let width = shown
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum::<usize>();
        let mark_at = mark.char_indices().find(|(_, c)| "─▲┬".contains(*c));
        let pad = snip[i][..gutter].chars().count() + width;
        assert_eq!(
            mark_at.map(|(b, _)| mark[..b].chars().count()),
            Some(pad),
            "mark not under column {column}:\n{text}"
        );
        assert!(text.contains(help), "help lacks `{help}`:\n{text}");
    }
}

/// An inline value of a variable whose name says it is a secret is a warning, and the
/// value appears in no output format, not even in the snippet that points at it.
#[test]
fn an_inline_secret_env_value_is_warned_about_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes: [{name: n1, runtime: 'podman+unix:///s'}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: db}\nspec:\n  image: postgres\n  recovery: restart\n  env:\n    DB_PASSWORD: \"c0rrect-h0rse\"\n    Api_Token: >-\n      b4ttery-st4ple\n",
    )
    .unwrap();
    for format in ["human", "json", "github"] {
        let out = quorate()
            .args(["validate", "--format", format])
            .arg(dir.path())
            .output()
            .unwrap();
        let all = [out.stdout.clone(), out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        assert_eq!(out.status.code(), Some(0), "{format}: {text}");
        let warnings = text.matches("inline-env").count();
        assert_eq!(warnings, 2, "{format}: {text}");
        assert!(
            text.contains("fromFile") && text.contains("fromEnv"),
            "{text}"
        );
        for secret in ["c0rrect", "b4ttery"] {
            assert!(!text.contains(secret), "{format} leaked {secret}: {text}");
        }
        if format == "human" {
            assert!(text.contains("b.yaml:8:18"), "{text}");
            assert!(text.contains("DB_PASSWORD: *"), "{text}");
        }
    }
    let out = quorate()
        .args(["validate", "--strict"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A careless document with many wrong values: one run reports each of them at its
/// place, in the spec's words, with a help line saying what to write.
#[test]
fn every_type_and_value_error_of_a_document_is_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec:\n  nodes:\n    - name: n1\n      runtime: podman+unix:///s\n      votes: many\n    - name: n2\n      runtime: podman+unix:///s2\n      votes: -1\n  quorum:\n    reconcilerVotes: 1.5\n  fencing:\n    timeout: 10\n    enabled: yes please\n  membership:\n    probeInterval: [1s]\n  networks:\n    - name: net\n      subnet: 10.0.0.0/33\n";
    std::fs::write(dir.path().join("c.yaml"), text).unwrap();
    let out = quorate()
        .args(["validate", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let got: Vec<(u64, u64, &str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap(),
                d["help"].as_str().unwrap(),
            )
        })
        .collect();
    let want: &[(u64, u64, &str, &str)] = &[
        (
            8,
            14,
            "expected a whole number from 0 to 4294967295, found the text `many`",
            "write a whole number from 0 to 4294967295",
        ),
        (
            11,
            14,
            "expected a whole number from 0 to 4294967295, found the number -1",
            "write a whole number",
        ),
        (
            13,
            22,
            "expected a whole number from 0 to 4294967295, found the number 1.5",
            "without quotes or a unit",
        ),
        (15, 14, "a duration needs a unit", "write `10s` for seconds"),
        (
            16,
            14,
            "expected `true` or `false`, found the text `yes please`",
            "write `true` or `false`",
        ),
        (
            18,
            20,
            "expected a duration such as 10s or 5m, found a list",
            "500ms, 10s, 5m",
        ),
        (
            21,
            15,
            "invalid subnet `10.0.0.0/33`",
            "write an IPv4 network like 10.88.10.0/24",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{v:#}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1, g.2), (w.0, w.1, w.2), "{v:#}");
        assert!(g.3.contains(w.3), "help of line {}: {}", g.0, g.3);
    }
    // Nothing of Rust's vocabulary reaches the user.
    let all = String::from_utf8_lossy(&out.stdout);
    for rust in ["u32", "u64", "f64", "invalid type", "struct "] {
        assert!(!all.contains(rust), "`{rust}` in {all}");
    }
}

/// A document with thousands of wrong values, or thousands of unknown top-level fields,
/// gets 20 findings and a note, in bounded time and memory.
#[test]
fn a_flood_of_problems_is_capped_per_document() {
    let dir = tempfile::tempdir().unwrap();
    let ports = |name: &str, n: usize| {
        let mut text = format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec:\n  image: x\n  network:\n    ports:\n",
        );
        for i in 0..n {
            text.push_str(&format!("      - {{port: p{i}}}\n"));
        }
        text
    };
    std::fs::write(dir.path().join("ports.yaml"), ports("a", 2_000)).unwrap();
    // So large that fewer passes are allowed: fewer findings, and the note all the same.
    std::fs::write(dir.path().join("huge.yaml"), ports("b", 25_000)).unwrap();
    let mut fields =
        String::from("apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: c}\n");
    for i in 0..20_000 {
        fields.push_str(&format!("field{i}: 1\n"));
    }
    std::fs::write(dir.path().join("fields.yaml"), fields).unwrap();
    let out = run_bounded(
        quorate()
            .args(["validate", "--format", "json"])
            .arg(dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    for file in ["ports.yaml", "fields.yaml", "huge.yaml"] {
        let codes: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        if file == "huge.yaml" {
            assert!((2..21).contains(&codes.len()), "{file}: {codes:?}");
        } else {
            assert_eq!(codes.len(), 21, "{file}: {codes:?}");
        }
        assert_eq!(
            codes
                .iter()
                .filter(|c| **c == "quorate::shape::too-many-problems")
                .count(),
            1,
            "{file}: {codes:?}"
        );
    }
    let peak = children_peak_rss();
    assert!(peak < 256 << 20, "peak memory {} MiB", peak >> 20);
}

/// The findings of `quorate validate --format json` on one file: (code, line, column,
/// message, help).
fn findings_of(text: &str) -> Vec<(String, u64, u64, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("set.yaml"), text).unwrap();
    let out = quorate()
        .args(["validate", "--format", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v = json(&out);
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["line"].as_u64().unwrap_or(0),
                d["column"].as_u64().unwrap_or(0),
                d["message"].as_str().unwrap().to_owned(),
                d["help"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn capacity_cluster(strategy: &str) -> String {
    format!(
        "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {{name: c}}
spec:
  placementStrategy: {strategy}
  fencing: {{enabled: false}}
  quorum: {{reconcilerVotes: 1}}
  nodes:
    - {{name: n1, runtime: 'podman+unix:///n1.sock', capacity: {{cpu: 8, memory: 4096}}}}
    - {{name: n2, runtime: 'podman+unix:///n2.sock', capacity: {{cpu: 2, memory: 16384}}}}
"
    )
}

fn needs_bundle(name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: {name}}}\nspec:\n  image: i\n  recovery: restart\n{spec}"
    )
}

#[test]
fn a_set_whose_needs_cannot_fit_even_on_an_empty_cluster_is_refused() {
    let cluster = capacity_cluster("utilization");
    // Fits: 2 × (1 cpu, 2048 memory), one per node.
    let ok = format!(
        "{cluster}{}",
        needs_bundle("web", "  replicas: 2\n  needs: {cpu: 1, memory: 2048}\n")
    );
    assert_eq!(findings_of(&ok), []);
    // More memory than any node offers: at the quantity, line 18 column 27.
    let big = format!(
        "{cluster}{}",
        needs_bundle("db", "  needs: {cpu: 1, memory: 32768}\n")
    );
    let f = findings_of(&big);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].0.as_str(), f[0].1, f[0].2),
        ("quorate::placement::capacity", 18, 27)
    );
    assert_eq!(
        f[0].3,
        "each instance of `db` needs 32768 memory; no node it may run on offers that much (the most is 16384, on n2)"
    );
    assert!(f[0].4.contains("lower the bundle's needs"), "{}", f[0].4);
    // Each quantity fits somewhere, but no node has both.
    let split = format!(
        "{cluster}{}",
        needs_bundle("db", "  needs: {cpu: 4, memory: 8192}\n")
    );
    let f = findings_of(&split);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "quorate::placement::capacity");
    assert!(
        f[0].3
            .contains("no single node it may run on offers all of it at once"),
        "{}",
        f[0].3
    );
    // A quantity no node declares counts as 0 on every node.
    let gpu = format!("{cluster}{}", needs_bundle("ml", "  needs: {gpu: 1}\n"));
    let f = findings_of(&gpu);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].3.contains("no node declares a capacity of gpu"),
        "{}",
        f[0].3
    );
    // The sum over all instances: 3 × 4 cpu > 10 cpu in all, though one fits on n1.
    let total = format!(
        "{cluster}{}",
        needs_bundle(
            "batch",
            "  replicas: 3\n  replicasPerHost: 3\n  needs: {cpu: 4}\n"
        )
    );
    let f = findings_of(&total);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].0.as_str(), f[0].1),
        ("quorate::placement::capacity-total", 20)
    );
    assert_eq!(
        f[0].3,
        "with `batch`, the bundles need 12 cpu in all (replicas × needs), more than the 10 all nodes offer together"
    );
    // A -INFINITY location that keeps a bundle off the only node large enough.
    let away = format!(
        "{cluster}{}---\napiVersion: quorate.io/v1alpha1\nkind: Constraint\nmetadata: {{name: not-n1}}\nspec:\n  location: {{bundle: web, node: n1, score: -INFINITY}}\n",
        needs_bundle("web", "  needs: {cpu: 4}\n")
    );
    let f = findings_of(&away);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].3.contains("the most is 2, on n2"), "{}", f[0].3);
}

#[test]
fn capacity_is_ignored_under_the_default_strategy_with_a_warning() {
    let set = format!(
        "{}{}",
        capacity_cluster("default"),
        needs_bundle("db", "  needs: {memory: 32768}\n")
    );
    let f = findings_of(&set);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "quorate::placement::capacity-ignored");
    assert!(f[0].4.contains("placementStrategy"), "{}", f[0].4);
    // Capacities are non-negative integers, without unit suffixes.
    for bad in ["-1", "32Gi", "1.5"] {
        let set = format!(
            "{}{}",
            capacity_cluster("utilization"),
            needs_bundle("db", &format!("  needs: {{memory: {bad}}}\n"))
        );
        let f = findings_of(&set);
        assert!(
            f.iter().any(|d| d.0.starts_with("quorate::shape")),
            "{bad}: {f:?}"
        );
    }
}
