//! The ways into the git source from outside: the pre-receive hook run by a real
//! `git push`, and the webhook endpoint with GitHub, Gitea and GitLab push deliveries
//! signed by `openssl`.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use quorate::secret::{Secret, SecretRef};
use quorate::source::git::RepoKind;
use quorate::source::watch::{self, Wake, WatchOptions};
use quorate::source::webhook::{self, Event, HookState, Provider, Refusal};
use support::git_repos::{Repos, git, git_ok};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Installs `quorate validate --pre-receive ARGS` as the bare repository's hook.
fn install_hook(bare: &Path, args: &str) {
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nexec '{}' validate --pre-receive {args}\n",
            env!("CARGO_BIN_EXE_quorate")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_pre_receive_hook_refuses_invalid_pushes_and_accepts_valid_ones() {
    let r = Repos::new();
    install_hook(&r.bare(), "--path specs");
    r.add_example("specs");
    let good = r.commit("two workers");
    let out = r.push();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a valid push is accepted: {err}");
    assert!(
        err.contains(&format!(
            "remote: quorate: refs/heads/main at {} is valid",
            &good[..12]
        )),
        "{err}"
    );

    // A constraint naming a bundle that does not exist.
    let path = r.work().join("specs/constraints.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("with: db", "with: cache")).unwrap();
    let bad = r.commit("colocate with the cache");
    let out = r.push();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid push is refused: {err}");
    assert!(
        err.contains("remote: quorate::ref::unknown-bundle"),
        "{err}"
    );
    assert!(err.contains("no bundle is named `cache`"), "{err}");
    assert!(
        err.contains("[specs/constraints.yaml:10:11]"),
        "file and line: {err}"
    );
    assert!(
        err.contains(&format!("refs/heads/main at {} is invalid", &bad[..12])),
        "{err}"
    );
    assert!(err.contains("pre-receive hook declined"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour codes: {err:?}");
    assert_eq!(
        git_ok(&r.bare(), &["rev-parse", "main"]),
        good,
        "the branch did not move"
    );

    // Fixed: accepted. A deletion and a tag are let through without checks.
    std::fs::write(&path, text).unwrap();
    let fixed = r.commit("fix");
    assert!(r.push().status.success());
    assert_eq!(git_ok(&r.bare(), &["rev-parse", "main"]), fixed);
    assert!(
        git(&r.work(), &["push", "-q", "origin", "main:side"])
            .status
            .success()
    );
    assert!(
        git(&r.work(), &["push", "-q", "origin", ":side"])
            .status
            .success()
    );
    git_ok(&r.work(), &["tag", "v1", &bad]);
    assert!(
        git(&r.work(), &["push", "-q", "origin", "v1"])
            .status
            .success()
    );
}

#[test]
fn the_pre_receive_hook_can_check_only_some_branches() {
    let r = Repos::new();
    install_hook(&r.bare(), "--branch main");
    r.write("broken.yaml", "kind: [\n");
    r.commit("broken");
    let side = git(&r.work(), &["push", "-q", "origin", "main:wip"]);
    assert!(side.status.success(), "wip is not checked");
    let main = r.push();
    assert!(!main.status.success(), "main is checked");
    assert!(String::from_utf8_lossy(&main.stderr).contains("[broken.yaml:"));
}

#[test]
fn the_pre_receive_hook_outside_a_repository_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["validate", "--pre-receive"])
        .current_dir(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .env_remove("GIT_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in a git repository"));
}

/// `openssl dgst -sha256 -hmac SECRET` of `body`: an independent HMAC to check against.
fn openssl_hmac(secret: &str, body: &[u8]) -> Option<String> {
    let child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return support::unavailable("openssl", e),
    };
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    Some(text.rsplit(' ').next().unwrap().trim().to_owned())
}

const AFTER: &str = "5f8a2e6d9c0b1a3f4e7d6c5b4a39281706f5e4d3";
const BEFORE: &str = "0d1c2b3a495867f0e1d2c3b4a5968778695a4b3c";

/// A push to `branch` as GitHub sends it (abridged: the fields it always carries).
fn github_payload(branch: &str) -> String {
    format!(
        r#"{{"ref":"refs/heads/{branch}","before":"{BEFORE}","after":"{AFTER}","repository":{{"id":812345,"node_id":"R_kgDOAAxyz","name":"cluster-specs","full_name":"acme/cluster-specs","private":true,"owner":{{"name":"acme","login":"acme","id":4242,"type":"Organization"}},"html_url":"https://github.com/acme/cluster-specs","default_branch":"main","master_branch":"main"}},"pusher":{{"name":"ada","email":"ada@example.org"}},"sender":{{"login":"ada","id":1001,"type":"User"}},"created":false,"deleted":false,"forced":false,"base_ref":null,"compare":"https://github.com/acme/cluster-specs/compare/0d1c2b3a4958...5f8a2e6d9c0b","commits":[{{"id":"{AFTER}","tree_id":"9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b","distinct":true,"message":"db: raise memory","timestamp":"2024-05-02T10:11:12+02:00","url":"https://github.com/acme/cluster-specs/commit/{AFTER}","author":{{"name":"Ada","email":"ada@example.org","username":"ada"}},"committer":{{"name":"Ada","email":"ada@example.org","username":"ada"}},"added":[],"removed":[],"modified":["bundles.yaml"]}}],"head_commit":{{"id":"{AFTER}","message":"db: raise memory","timestamp":"2024-05-02T10:11:12+02:00"}}}}"#
    )
}

/// A push as Gitea (and Forgejo) send it.
fn gitea_payload(branch: &str) -> String {
    format!(
        r#"{{"ref":"refs/heads/{branch}","before":"{BEFORE}","after":"{AFTER}","compare_url":"https://gitea.example/acme/cluster-specs/compare/0d1c2b3a4958...5f8a2e6d9c0b","commits":[{{"id":"{AFTER}","message":"db: raise memory\n","url":"https://gitea.example/acme/cluster-specs/commit/{AFTER}","author":{{"name":"Ada","email":"ada@example.org","username":"ada"}},"committer":{{"name":"Ada","email":"ada@example.org","username":"ada"}},"verification":null,"timestamp":"2024-05-02T10:11:12+02:00","added":[],"removed":[],"modified":["bundles.yaml"]}}],"total_commits":1,"head_commit":{{"id":"{AFTER}","message":"db: raise memory\n"}},"repository":{{"id":17,"owner":{{"id":3,"login":"acme","username":"acme"}},"name":"cluster-specs","full_name":"acme/cluster-specs","private":true,"html_url":"https://gitea.example/acme/cluster-specs","clone_url":"https://gitea.example/acme/cluster-specs.git","default_branch":"main"}},"pusher":{{"id":5,"login":"ada","username":"ada","email":"ada@example.org"}},"sender":{{"id":5,"login":"ada","username":"ada"}}}}"#
    )
}

/// A push as GitLab sends it ("Push Hook").
fn gitlab_payload(branch: &str) -> String {
    format!(
        r#"{{"object_kind":"push","event_name":"push","before":"{BEFORE}","after":"{AFTER}","ref":"refs/heads/{branch}","ref_protected":true,"checkout_sha":"{AFTER}","message":null,"user_id":4,"user_name":"Ada","user_username":"ada","user_email":"","user_avatar":"https://gitlab.example/uploads/user/avatar/4/ada.png","project_id":15,"project":{{"id":15,"name":"cluster-specs","description":"","web_url":"https://gitlab.example/acme/cluster-specs","git_ssh_url":"git@gitlab.example:acme/cluster-specs.git","git_http_url":"https://gitlab.example/acme/cluster-specs.git","namespace":"acme","visibility_level":0,"path_with_namespace":"acme/cluster-specs","default_branch":"main"}},"commits":[{{"id":"{AFTER}","message":"db: raise memory\n","title":"db: raise memory","timestamp":"2024-05-02T10:11:12+02:00","url":"https://gitlab.example/acme/cluster-specs/-/commit/{AFTER}","author":{{"name":"Ada","email":"ada@example.org"}},"added":[],"modified":["bundles.yaml"],"removed":[]}}],"total_commits_count":1,"push_options":{{}},"repository":{{"name":"cluster-specs","url":"git@gitlab.example:acme/cluster-specs.git","description":"","homepage":"https://gitlab.example/acme/cluster-specs","visibility_level":0}}}}"#
    )
}

const SECRET: &str = "9c1f0f2e-quorate-hook-secret";

/// The headers each forge sends with a push, signed with `secret`.
fn signed(provider: Provider, body: &str, secret: &str) -> Option<Vec<(&'static str, String)>> {
    Some(match provider {
        Provider::GitHub => vec![
            ("x-github-event", "push".into()),
            (
                "x-github-delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            (
                "x-hub-signature-256",
                format!("sha256={}", openssl_hmac(secret, body.as_bytes())?),
            ),
        ],
        Provider::Gitea => vec![
            ("x-gitea-event", "push".into()),
            ("x-gogs-event", "push".into()),
            ("x-github-event", "push".into()),
            (
                "x-gitea-delivery",
                "7a1b2c3d-0000-4000-8000-0123456789ab".into(),
            ),
            ("x-gitea-signature", openssl_hmac(secret, body.as_bytes())?),
        ],
        Provider::GitLab => vec![
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-instance", "https://gitlab.example".into()),
            ("x-gitlab-token", secret.into()),
        ],
    })
}

fn header_map(pairs: &[(&'static str, String)]) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}

#[test]
fn webhook_signatures_of_each_forge_are_verified() {
    let secret = Secret::new(SECRET.as_bytes().to_vec());
    let cases = [
        (
            Provider::GitHub,
            github_payload("main"),
            "X-Hub-Signature-256",
        ),
        (Provider::Gitea, gitea_payload("main"), "X-Gitea-Signature"),
        (Provider::GitLab, gitlab_payload("main"), "X-Gitlab-Token"),
    ];
    for (provider, body, header) in cases {
        let Some(good) = signed(provider, &body, SECRET) else {
            return;
        };
        let d = webhook::verify(&header_map(&good), body.as_bytes(), &secret).unwrap();
        assert_eq!(d.provider, provider);
        assert_eq!(
            d.event,
            Event::Push {
                branch: "main".into(),
                after: Some(AFTER.into())
            }
        );
        // The body changed after signing (GitLab's token does not cover the body).
        let tampered = body.replace("refs/heads/main", "refs/heads/prod");
        let r = webhook::verify(&header_map(&good), tampered.as_bytes(), &secret);
        if provider == Provider::GitLab {
            assert!(r.is_ok());
        } else {
            assert_eq!(r, Err(Refusal::Mismatch(header)), "{provider:?}");
        }
        // Signed with another secret.
        let wrong = signed(provider, &body, "another-secret").unwrap();
        let r = webhook::verify(&header_map(&wrong), body.as_bytes(), &secret);
        assert_eq!(r, Err(Refusal::Mismatch(header)), "{provider:?}");
        // Unsigned.
        let bare: Vec<_> = good
            .iter()
            .filter(|(k, _)| k.ends_with("event"))
            .cloned()
            .collect();
        let r = webhook::verify(&header_map(&bare), body.as_bytes(), &secret);
        assert_eq!(r, Err(Refusal::Unsigned));
    }
}

/// Whether no wake comes within 200 ms.
async fn quiet(w: &mut watch::Wakes) -> bool {
    tokio::time::timeout(Duration::from_millis(200), w.next())
        .await
        .is_err()
}

/// Sends one HTTP/1.1 request; returns the status code and body.
async fn post(
    addr: std::net::SocketAddr,
    headers: &[(&'static str, String)],
    body: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /hooks/git HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let code = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

#[test]
fn the_webhook_endpoint_asks_for_a_fetch_only_for_signed_pushes_of_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("hook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = WatchOptions {
            poll_interval: Duration::from_secs(3600),
            ..WatchOptions::default()
        };
        let mut wakes = watch::wakes(&RepoKind::Remote, &options).unwrap();
        let app = webhook::router(HookState {
            secret: SecretRef::FromFile(secret_file.clone()),
            branch: "main".into(),
            fetch: wakes.handle(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        for (provider, body) in [
            (Provider::GitHub, github_payload("main")),
            (Provider::Gitea, gitea_payload("main")),
            (Provider::GitLab, gitlab_payload("main")),
        ] {
            let Some(good) = signed(provider, &body, SECRET) else {
                return;
            };
            let (code, text) = post(addr, &good, &body).await;
            assert_eq!(code, 202, "{provider:?}: {text}");
            let w = tokio::time::timeout(Duration::from_secs(2), wakes.next())
                .await
                .unwrap();
            assert_eq!(w, Some(Wake::Request));

            let wrong = signed(provider, &body, "another-secret").unwrap();
            let (code, text) = post(addr, &wrong, &body).await;
            assert_eq!(code, 401, "{provider:?}: {text}");
            assert!(!text.contains(SECRET));
            assert!(
                quiet(&mut wakes).await,
                "a refused delivery fetches nothing"
            );

            let other = match provider {
                Provider::GitHub => github_payload("feature"),
                Provider::Gitea => gitea_payload("feature"),
                Provider::GitLab => gitlab_payload("feature"),
            };
            let signed_other = signed(provider, &other, SECRET).unwrap();
            let (code, text) = post(addr, &signed_other, &other).await;
            assert_eq!(
                (code, text.trim()),
                (200, "ignored: quorate follows main, not feature")
            );
            assert!(quiet(&mut wakes).await, "another branch fetches nothing");
        }
        // GitHub's ping when the hook is created.
        let ping = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        let mut h = signed(Provider::GitHub, ping, SECRET).unwrap();
        h[0].1 = "ping".into();
        assert_eq!(post(addr, &h, ping).await.0, 200);
        // An unreadable secret file is the server's problem, and says so without details.
        std::fs::remove_file(&secret_file).unwrap();
        let body = github_payload("main");
        let good = signed(Provider::GitHub, &body, SECRET).unwrap();
        assert_eq!(post(addr, &good, &body).await.0, 500);
    });
}
