//! Issue 12, secrets: whoever can push a spec is not the reconciler's operator. A spec may
//! reference only the secrets the operator allows; no secret reaches a log at any
//! `RUST_LOG` (real Podman, real dockerd, a real `ipmi_sim`, quorate's own binary); secret
//! files are read only if regular and small. Under `CI` a service that cannot start fails
//! the test; elsewhere the test is skipped with the reason printed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::TEST_IMAGE;
use support::ipmi_sim::{IpmiSim, SimOptions};

/// Distinctive values, so finding them anywhere is unambiguous.
const FILE_SECRET: &str = "fIle-s3cret-Qz81vT";
const ENV_SECRET: &str = "eNv-s3cret-Wm47pK";
/// At most 16 bytes (the simulator also speaks IPMI 1.5).
const BMC_PASSWORD: &str = "Bmc-pw+6Tr2yXu8";
/// The variable the specs name (the default policy's prefix).
const ENV_VAR: &str = "QUORATE_SECRET_HOSTILE";
/// quorate's first debug line, which says the trace level is on.
const LOGS_ON: &str =
    "logging; other crates at most INFO (their debug and trace dump payloads) filter=trace";

/// Runs `cmd`, failing the test if it does not finish within 120 s (a hang).
fn run_bounded(cmd: &mut Command) -> Output {
    support::run_bounded(cmd, Duration::from_secs(120))
}

fn both(o: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How many findings of `code` `text` holds, in any format (GitHub's escapes `:`).
fn count_code(text: &str, code: &str) -> usize {
    text.matches(code).count() + text.matches(&code.replace(':', "%3A")).count()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

/// Every way a secret's bytes could be printed: as text, and as the byte lists and hex
/// strings a debug dump of a buffer makes (`[66, 49, …]`, `[66, 6C, …]`, `666c…`).
fn renderings(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    vec![
        secret.to_owned(),
        format!("{b:?}").trim_matches(['[', ']']).to_owned(),
        format!("{b:X?}").trim_matches(['[', ']']).to_owned(),
        format!("{b:x?}").trim_matches(['[', ']']).to_owned(),
        b.iter().map(|x| format!("{x:02x}")).collect(),
        b.iter().map(|x| format!("{x:02X}")).collect(),
    ]
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        for r in renderings(s) {
            assert!(
                !text.contains(&r),
                "the secret leaked as `{r}` into:\n{text}"
            );
        }
    }
}

/// A spec directory with a cluster of `nodes` (YAML list lines) and `rest` (more documents).
fn write_specs(dir: &Path, nodes: &str, rest: &str) -> PathBuf {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("cluster.yaml"),
        format!(
            "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {{name: hs}}\nspec:\n  \
             quorum: {{reconcilerVotes: 1}}\n  nodes:\n{nodes}{rest}"
        ),
    )
    .unwrap();
    specs
}

/// A secrets directory (the operator's) holding `pw` = [`FILE_SECRET`].
fn secrets_dir(dir: &Path) -> PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("pw"), format!("{FILE_SECRET}\n")).unwrap();
    secrets
}

const NODE1_ONLY: &str = "    - {name: node1, runtime: 'podman+unix:///run/absent-node1.sock'}\n";

fn bundle(env: &str) -> String {
    format!(
        "---\napiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {{name: web}}\nspec:\n  \
         image: {TEST_IMAGE}\n  recovery: restart\n  command: [sleep, '1000']\n  env: {env}\n"
    )
}

// ---- the operator's policy --------------------------------------------------------------

/// A pushed spec naming a host file or any variable of quorate's environment is refused by
/// `apply` before anything runs, and by `validate` once it is told the policy; the message
/// names the reference and the policy, never the value.
#[test]
fn references_outside_the_operators_policy_are_refused_naming_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(dir.path());
    let outside = dir.path().join("host-file");
    std::fs::write(&outside, FILE_SECRET).unwrap();
    let env = format!(
        "{{A: {{fromFile: {}}}, B: {{fromEnv: QUORATE_HOST_TOKEN}}, C: {{fromFile: ../host-file}}}}",
        outside.display()
    );
    let specs = write_specs(dir.path(), NODE1_ONLY, &bundle(&env));

    let plain = run_bounded(
        support::quorate_cmd()
            .arg("validate")
            .arg("--strict")
            .arg(&specs),
    );
    assert_eq!(code(&plain), 0, "no policy known: {}", both(&plain));

    let checked = run_bounded(
        support::quorate_cmd()
            .arg("validate")
            .arg(&specs)
            .arg("--secrets-dir")
            .arg(&secrets)
            .env("QUORATE_HOST_TOKEN", ENV_SECRET),
    );
    assert_eq!(code(&checked), 1, "{}", both(&checked));
    let text = both(&checked);
    assert_eq!(
        text.matches("quorate::secret::outside-policy").count(),
        3,
        "{text}"
    );
    assert!(
        text.contains("env QUORATE_HOST_TOKEN is outside the secret policy"),
        "{text}"
    );
    assert!(text.contains("starting with `QUORATE_SECRET_`"), "{text}");
    assert!(
        text.contains(&format!("files inside {}", secrets.display())),
        "{text}"
    );
    assert_no_secret(&text, &[FILE_SECRET, ENV_SECRET]);

    let applied = run_bounded(
        support::quorate_cmd()
            .args(["apply", "--yes", "--specs"])
            .arg(&specs)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .env("QUORATE_HOST_TOKEN", ENV_SECRET)
            .env("RUST_LOG", "trace"),
    );
    assert_eq!(code(&applied), 1, "{}", both(&applied));
    assert!(both(&applied).contains("quorate::secret::outside-policy"));
    assert_no_secret(&both(&applied), &[FILE_SECRET, ENV_SECRET]);
}

/// A symlink inside the secrets directory that leaves it passes validation (by its text)
/// and is refused when the secret is read: the container is never created.
#[test]
fn a_symlink_leaving_the_secrets_dir_is_refused_at_use() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets_dir(dir.path());
    let outside = dir.path().join("host-file");
    std::fs::write(&outside, FILE_SECRET).unwrap();
    std::os::unix::fs::symlink(&outside, secrets.join("link")).unwrap();
    let nodes = format!("    - {{name: node1, runtime: '{}'}}\n", svc.url());
    let specs = write_specs(dir.path(), &nodes, &bundle("{PW: {fromFile: link}}"));
    let out = run_bounded(
        support::quorate_cmd()
            .args(["apply", "--yes", "--specs"])
            .arg(&specs)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .env("RUST_LOG", "trace"),
    );
    assert_eq!(code(&out), 1, "{}", both(&out));
    assert!(both(&out).contains("leaves"), "{}", both(&out));
    assert_no_secret(&both(&out), &[FILE_SECRET]);
    let names = svc
        .cli(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&names.stdout).contains("web-0"),
        "the container was created"
    );
}

// ---- no secret in any log, at trace -----------------------------------------------------

/// `quorate apply --yes` at `RUST_LOG=trace` against `url`, with a bundle whose environment
/// holds a file secret and an environment secret. Returns its output after checking the
/// container got both values.
fn apply_at_trace(dir: &Path, url: &str, inspect_env: impl Fn() -> String) -> Output {
    let secrets = secrets_dir(dir);
    let nodes = format!("    - {{name: node1, runtime: '{url}'}}\n");
    let env = format!("{{MODE: test, FILE_PW: {{fromFile: pw}}, ENV_PW: {{fromEnv: {ENV_VAR}}}}}");
    let specs = write_specs(dir, &nodes, &bundle(&env));
    let out = run_bounded(
        support::quorate_cmd()
            .args(["apply", "--yes", "--specs"])
            .arg(&specs)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .env(ENV_VAR, ENV_SECRET)
            .env("RUST_LOG", "trace"),
    );
    assert_eq!(code(&out), 0, "{}", both(&out));
    let env = inspect_env();
    assert!(
        env.contains(&format!("FILE_PW={FILE_SECRET}"))
            && env.contains(&format!("ENV_PW={ENV_SECRET}")),
        "the secrets reached the container: {env}"
    );
    let text = both(&out);
    assert!(text.contains(LOGS_ON), "logs were on at trace: {text}");
    out
}

#[test]
fn podman_apply_at_trace_prints_no_secret() {
    let _serial = support::serial();
    let Some(svc) = support::podman() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = apply_at_trace(dir.path(), &svc.url(), || {
        env_of_web_0(svc.cli(["inspect", "--format", "{{.Config.Env}}", "web-0"]))
    });
    assert_no_secret(&both(&out), &[FILE_SECRET, ENV_SECRET]);
}

/// What `inspect` (given, on either runtime's CLI) says of web-0's environment.
fn env_of_web_0(mut inspect: Command) -> String {
    String::from_utf8_lossy(&inspect.output().unwrap().stdout).into_owned()
}

#[test]
fn docker_apply_at_trace_prints_no_secret() {
    let _serial = support::serial();
    let Some(svc) = support::docker() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = apply_at_trace(dir.path(), &svc.url(), || {
        env_of_web_0(svc.cli(["inspect", "--format", "{{.Config.Env}}", "web-0"]))
    });
    assert_no_secret(&both(&out), &[FILE_SECRET, ENV_SECRET]);
}

/// `quorate fence` at `RUST_LOG=trace` against a real BMC: the session is set up (the
/// power state is read), and neither the password nor the RAKP exchange it could be
/// recovered from is logged.
#[test]
fn ipmi_fence_at_trace_prints_no_password_and_no_rakp_exchange() {
    let Some(sim) = IpmiSim::start_or_skip(&SimOptions::new(BMC_PASSWORD)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("bmc"), format!("{BMC_PASSWORD}\n")).unwrap();
    let fence = format!(
        "  fencing: {{timeout: 30s}}\n---\napiVersion: quorate.io/v1alpha1\nkind: Fence\n\
         metadata: {{name: bmc1}}\nspec:\n  targets: [node1]\n  ipmi:\n    address: 127.0.0.1\n    \
         port: {}\n    username: {}\n    password: {{fromFile: bmc}}\n",
        sim.port(),
        support::ipmi_sim::USER
    );
    let specs = write_specs(dir.path(), NODE1_ONLY, &fence);
    let out = run_bounded(
        support::quorate_cmd()
            .args(["fence", "node1", "--action", "status", "--specs"])
            .arg(&specs)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--secrets-dir")
            .arg(&secrets)
            .env("RUST_LOG", "trace"),
    );
    assert_eq!(code(&out), 0, "{}", both(&out));
    let text = both(&out);
    assert!(text.contains("result: node1 is on"), "{text}");
    assert!(text.contains(LOGS_ON), "logs were on at trace: {text}");
    for exchange in ["RAKP", "Open Session", "ipmi_rs"] {
        assert!(!text.contains(exchange), "`{exchange}` was logged:\n{text}");
    }
    assert_no_secret(&text, &[BMC_PASSWORD]);
}

// ---- inline secrets masked in every finding ---------------------------------------------

/// The head of a Fence document whose `ipmi` mapping continues.
const FENCE_HEAD: &str = "apiVersion: quorate.io/v1alpha1\nkind: Fence\nmetadata: {name: f}\n\
                          spec:\n  targets: [n1]\n  ipmi:\n    address: b\n    username: u\n";

/// The four documents: each has an inline password and something else wrong.
fn inline_cases() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "a duplicate key on the next line",
            format!("{FENCE_HEAD}    password: hunter2-dup\n    password: hunter2-dup2\n"),
            "hunter2-dup",
            "quorate::yaml::duplicate-key",
        ),
        (
            "flow style with a wrong apiVersion",
            "{apiVersion: quorate.io/v2, kind: Fence, metadata: {name: f}, spec: {targets: [n1], \
             ipmi: {address: b, username: u, password: hunter2-flow}}}\n"
                .to_owned(),
            "hunter2-flow",
            "quorate::doc::api-version",
        ),
        (
            "a repeated Fence name",
            format!(
                "{FENCE_HEAD}    password: {{fromEnv: QUORATE_SECRET_A}}\n---\n{FENCE_HEAD}    \
                 password: hunter2-again\n"
            ),
            "hunter2-again",
            "quorate::set::duplicate-name",
        ),
        (
            "a numeric password",
            format!("{FENCE_HEAD}    password: 27182.81828\n"),
            "27182.81828",
            "quorate::shape::invalid-type",
        ),
    ]
}

#[test]
fn inline_secrets_are_masked_in_every_finding_and_format() {
    for (what, text, secret, finding) in inline_cases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.yaml"), &text).unwrap();
        for format in ["human", "json", "github"] {
            let out = run_bounded(
                support::quorate_cmd()
                    .args(["validate", "--format", format])
                    .arg(dir.path()),
            );
            assert_eq!(code(&out), 1, "{what}: {}", both(&out));
            let shown = both(&out);
            assert!(
                count_code(&shown, finding) > 0,
                "{what} ({format}): no {finding} in {shown}"
            );
            assert!(
                !shown.contains(secret),
                "{what} ({format}): the secret is shown in {shown}"
            );
            // Every snippet line showing the password shows it masked (or the reference).
            for (at, _) in shown.match_indices("password: ") {
                let next = shown[at + "password: ".len()..].chars().next();
                assert!(
                    matches!(next, Some('*' | '{')),
                    "{what} ({format}): {shown}"
                );
            }
        }
    }
}

/// The numeric password of a pushed commit, quoted by a finding, is neither stored with
/// the rejected commit in state.db nor served by `/status`.
#[test]
fn a_rejected_commits_inline_secret_is_not_stored_or_served() {
    let repos = support::git_repos::Repos::new();
    let cluster = "apiVersion: quorate.io/v1alpha1\nkind: Cluster\nmetadata: {name: hs}\nspec:\n  \
                   nodes: [{name: n1, runtime: 'podman+unix:///run/absent-n1.sock'}]\n";
    repos.write("specs/cluster.yaml", cluster);
    repos.write(
        "specs/fence.yaml",
        &format!("{FENCE_HEAD}    password: 27182.81828\n"),
    );
    repos.commit("an inline numeric password");
    assert!(repos.push().status.success());
    let dir = tempfile::tempdir().unwrap();
    let run = support::quorate_run::QuorateRun::start(
        &repos.bare(),
        &repos.state(),
        &dir.path().join("run.log"),
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = run.status();
        if s["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
            break s;
        }
        assert!(Instant::now() < deadline, "no rejected commit: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let served = status.to_string();
    assert!(served.contains("quorate::shape::invalid-type"), "{served}");
    assert!(served.contains("<redacted>"), "{served}");
    drop(run);
    let mut stored = vec![served];
    for e in std::fs::read_dir(repos.state()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("state.db"))
        {
            stored.push(String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned());
        }
    }
    assert!(stored.len() > 1, "state.db was read");
    stored.push(std::fs::read_to_string(dir.path().join("run.log")).unwrap());
    for text in &stored {
        assert!(!text.contains("27182.81828"), "the password is in: {text}");
    }
}

// ---- validate reads only inside its roots; control characters escaped --------------------

/// A pull request adding `x.yaml -> ~/.token` (or a directory link out of the tree): the
/// link is an error naming the link, and what it points at is never read or printed.
#[test]
fn validate_never_follows_a_symlink_out_of_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".token"), format!("{FILE_SECRET}: x\n")).unwrap();
    std::fs::write(home.join("other.yaml"), format!("{ENV_SECRET}: x\n")).unwrap();
    let specs = write_specs(dir.path(), NODE1_ONLY, "");
    std::os::unix::fs::symlink(home.join(".token"), specs.join("x.yaml")).unwrap();
    std::os::unix::fs::symlink(&home, specs.join("more")).unwrap();
    std::fs::write(dir.path().join("inside.yaml"), "kind: Bundle\n").unwrap();
    std::fs::create_dir(specs.join("sub")).unwrap();
    std::os::unix::fs::symlink(specs.join("cluster.yaml"), specs.join("sub/ok.yaml")).unwrap();
    for format in ["human", "json", "github"] {
        let out = run_bounded(
            support::quorate_cmd()
                .args(["validate", "--format", format])
                .arg(&specs),
        );
        assert_eq!(code(&out), 1, "{}", both(&out));
        let text = both(&out);
        assert_eq!(
            count_code(&text, "quorate::file::outside-root"),
            2,
            "{format}: {text}"
        );
        assert!(text.contains("x.yaml") && text.contains("more"), "{text}");
        assert_no_secret(&text, &[FILE_SECRET, ENV_SECRET]);
        // A link inside the root is read: the cluster is defined twice.
        assert_eq!(
            count_code(&text, "quorate::set::duplicate-name"),
            1,
            "{format}: {text}"
        );
    }
}

/// Escape sequences in a spec file (and its name) reach neither the terminal nor a CI log.
#[test]
fn control_characters_of_spec_files_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let name = "evil\u{1b}[1m.yaml";
    std::fs::write(
        dir.path().join(name),
        "apiVersion: quorate.io/v1alpha1\nkind: Bundle\nmetadata: {name: web}\n\
         spec: {image: \"x\u{1b}]0;pwned\u{7}\", replicas: \"\u{1b}[2J\u{202e}\"}\n",
    )
    .unwrap();
    for format in ["human", "github"] {
        let out = run_bounded(
            support::quorate_cmd()
                .args(["validate", "--format", format])
                .arg(dir.path()),
        );
        assert_eq!(code(&out), 1, "{}", both(&out));
        let text = both(&out);
        for c in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!text.contains(c), "{format}: {c:?} printed raw: {text:?}");
        }
        assert!(text.contains("evil\\u{1b}[1m.yaml"), "{format}: {text}");
    }
}
