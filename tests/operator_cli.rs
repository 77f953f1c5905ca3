//! The operator's commands against a real `quorate run` serving HTTPS (issue 17): a real
//! bare repository, `quorate run --tls-cert/--tls-key --token-file --notify` as a separate
//! process, a real local webhook receiver, and the CLI as an operator runs it.
//!
//! - `status`, `history` and `reconcile` reach it over `https://` (the CA through
//!   `SSL_CERT_FILE`), and `reconcile` needs the right token, which never shows in output.
//! - `/` serves the web page with its Content-Security-Policy; `/metrics` has the
//!   Prometheus names from the start.
//! - A refused commit is counted in the metrics and POSTed to the receiver as an
//!   Alertmanager-style event.

mod support;

use std::ffi::OsStr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::git_repos::Repos;
use support::quorate_run::QuorateRun;
use support::{make_tls_certs, wait_for};

/// A valid spec set whose one node is never reached; adopting it needs no runtime.
const GOOD: &str = "apiVersion: quorate.io/v1alpha1
kind: Cluster
metadata: {name: operator}
spec:
  nodes: [{name: n1, runtime: 'podman+unix:///nonexistent/podman.sock'}]
  quorum: {reconcilerVotes: 0}
  fencing: {enabled: false}
";

const TOKEN: &str = "s3cret-operator-token-5f1e";

fn quorate(args: &[&str], ca: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .env("SSL_CERT_FILE", ca)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A webhook receiver on 127.0.0.1: every JSON body POSTed to it, in order.
fn receiver() -> (String, Arc<Mutex<Vec<Value>>>, std::thread::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = got.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(body);
                        axum::http::StatusCode::OK
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let _ =
                tokio::time::timeout(Duration::from_secs(300), axum::serve(listener, app)).await;
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/hook"), got, handle)
}

#[test]
fn status_history_and_reconcile_over_https_with_metrics_page_and_notifications() {
    let repos = Repos::new();
    let certs = make_tls_certs(repos.dir.path()).unwrap();
    repos.write("specs/cluster.yaml", GOOD);
    let good = repos.commit("good");
    assert!(repos.push().status.success());
    let token = repos.dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let (hook, got, _receiver) = receiver();
    let log = repos.dir.path().join("run.log");
    let run = QuorateRun::start(
        &repos.bare(),
        &repos.state(),
        &log,
        &[
            OsStr::new("--tls-cert"),
            certs.server_cert.as_os_str(),
            OsStr::new("--tls-key"),
            certs.server_key.as_os_str(),
            OsStr::new("--token-file"),
            token.as_os_str(),
            OsStr::new("--notify"),
            OsStr::new(&hook),
        ],
    );
    let url = format!("https://{}", run.addr);
    let ca = certs.ca.as_path();

    // status over https, once the good commit is in force and a pass is recorded.
    let status = wait_for("the good commit in force", Duration::from_secs(60), || {
        let out = quorate(&["status", "--server", &url, "--format", "json"], ca);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["commit"] == good.as_str() && !v["lastPass"].is_null()).then_some(v)
    });
    assert_eq!(status["nodes"][0]["name"], "n1", "{status:#}");
    // The server speaks only TLS: plain http to it fails, with exit 1.
    let plain = quorate(&["status", "--server", &run.url()], ca);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    // Without the CA, the certificate is refused.
    let untrusted = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["status", "--server", &url])
        .env("SSL_CERT_FILE", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(1), "{}", text(&untrusted));

    // history over https: the passes and the commit put in force.
    let out = quorate(&["history", "--server", &url, "--format", "json"], ca);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        history["applied"][0]["commit"]["id"],
        good.as_str(),
        "{history:#}"
    );
    assert!(
        !history["passes"].as_array().unwrap().is_empty(),
        "{history:#}"
    );
    assert!(history["passes"][0]["observed"].is_null(), "{history:#}");
    let human = quorate(&["history", "--server", &url], ca);
    assert!(
        text(&human).contains("Passes (newest first):"),
        "{}",
        text(&human)
    );

    // reconcile with the token; a wrong one is refused with exit 1; neither is printed.
    let ok = quorate(
        &[
            "reconcile",
            "--server",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ],
        ca,
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let wrong = repos.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let refused = quorate(
        &[
            "reconcile",
            "--server",
            &url,
            "--token-file",
            wrong.to_str().unwrap(),
        ],
        ca,
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("refused"), "{}", text(&refused));
    for o in [&ok, &refused] {
        assert!(!text(o).contains(TOKEN) && !text(o).contains("not-the-token"));
    }

    // The page and the metrics, with a client that trusts the test CA.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca_cert = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca_cert)
        .build()
        .unwrap();
    let get = |path: &str| {
        rt.block_on(async {
            let r = client.get(format!("{url}{path}")).send().await.unwrap();
            let csp = r
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), csp, r.text().await.unwrap())
        })
    };
    let (code, csp, page) = get("/");
    assert_eq!(code, 200);
    assert!(page.contains(r#"<script src="/ui.js""#), "{page}");
    assert!(csp.unwrap_or_default().contains("script-src 'self'"));
    let (code, _, script) = get("/ui.js");
    assert_eq!(code, 200);
    assert!(script.contains("textContent") && !script.contains("innerHTML"));
    let (_, _, metrics) = get("/metrics");
    for name in [
        "quorate_has_quorum ",
        "quorate_quorum_votes_present ",
        "quorate_quorum_votes_expected ",
        "quorate_pass_duration_seconds_count ",
        "quorate_last_pass_timestamp_seconds ",
        "quorate_nodes{state=\"lost\"} ",
        "quorate_instances{state=\"running\"} ",
        "quorate_fence_attempts_total{result=\"failure\"} 0",
        "quorate_rejected_commits_total 0",
        "quorate_git_fetch_errors_total ",
        "quorate_build_info{",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }

    // A refused commit: counted, and POSTed to the receiver.
    repos.write("specs/bad.yaml", "kind: Nonsense\n");
    let bad = repos.commit("bad");
    assert!(repos.push().status.success());
    let event = wait_for("the refusal POSTed", Duration::from_secs(60), || {
        got.lock()
            .unwrap()
            .iter()
            .find(|e| e["alerts"][0]["labels"]["commit"] == bad.as_str())
            .cloned()
    });
    assert_eq!(
        event["alerts"][0]["labels"]["alertname"],
        "QuorateCommitRejected"
    );
    assert_eq!(event["version"], "4");
    let (_, _, metrics) = get("/metrics");
    assert!(
        metrics.contains("quorate_rejected_commits_total 1"),
        "{metrics}"
    );
    let all = serde_json::to_string(&*got.lock().unwrap()).unwrap();
    assert!(!all.contains(TOKEN));
    let logged = std::fs::read_to_string(&run.log).unwrap_or_default();
    assert!(!logged.contains(TOKEN));
}

#[test]
fn status_watch_shows_the_status_again_and_again_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["status", "--watch", "--interval", "200ms", "--state-dir"])
        .arg(&missing)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Piped: no screen clearing, one status after the other, each read tried again.
    assert!(!text.contains('\x1b'), "{text:?}");
    let reads = text.matches("no state database in").count();
    assert!(reads >= 3, "{reads} reads in 1.5 s at 200ms: {text}");
    assert!(text.contains("(trying again)"), "{text}");
}
