//! The web page of `quorate run` in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver), against a three-node `quorate lab` and `quorate run`
//! as a separate process. The page shows the cluster; a cut cable shows, without a reload,
//! as a fenced node and the database on another node; no secret is on the page; the test
//! saves screenshots (`target/web-ui*.png`; `docs/web-ui.png` is one of them).
//!
//! Brings up the lab: run it alone (`flock /tmp/quorate-lab.lock cargo test --test web_ui`).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::lab::TestLab;
use support::lab_run::{Watcher, db_answers, db_node, lab, reconciler, restore, wait_for};
use support::webdriver::Browser;

/// What the page shows: each node's state and the instances on it with their health.
const READ_PAGE: &str = r##"
    if (document.body.dataset.loaded !== "true") return null;
    return Array.from(document.querySelectorAll("#nodes .node")).map((n) => ({
        node: n.dataset.node,
        state: n.dataset.state,
        instances: Array.from(n.querySelectorAll("tr[data-instance]"))
            .map((r) => [r.dataset.instance, r.dataset.health]),
    }));
"##;

fn shown(page: &Value, node: &str) -> Option<(String, Vec<(String, String)>)> {
    let n = page.as_array()?.iter().find(|n| n["node"] == node)?;
    let instances = n["instances"]
        .as_array()?
        .iter()
        .map(|i| {
            let s = |k: usize| i[k].as_str().unwrap_or("").to_owned();
            (s(0), s(1))
        })
        .collect();
    Some((n["state"].as_str()?.to_owned(), instances))
}

/// The node the page shows `db-0` running on.
fn db_on_page(page: &Value) -> Option<String> {
    page.as_array()?.iter().find_map(|n| {
        let node = n["node"].as_str()?;
        let (_, instances) = shown(page, node)?;
        instances
            .iter()
            .any(|(i, h)| i == "db-0" && h == "running")
            .then(|| node.to_owned())
    })
}

fn save(png: &[u8], name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
    path
}

#[test]
fn the_page_shows_the_cluster_and_follows_a_cut_cable_without_a_reload() {
    let Some(t) = TestLab::up(3) else {
        return;
    };
    let r = reconciler(&t);
    let w = Watcher::start(t.lab.nodes(), t.name.clone());
    let first = wait_for("the database up", Duration::from_secs(60), &w, || {
        let s = r.status();
        db_node(&s).filter(|n| s["lastPass"]["outcome"] == "converged" && db_answers(&t, n))
    });
    let Some(browser) = Browser::start(1200, 1500) else {
        return;
    };
    browser.goto(&format!("{}/", r.url()));
    // A mark that a reload would wipe: it must still be there at the end.
    browser.run("window.quorateMark = 17; return null;");

    // The page shows the cluster: three nodes online, db-0 running where status says.
    let page = wait_for("the page to show db-0", Duration::from_secs(20), &w, || {
        let page = browser.run(READ_PAGE);
        db_on_page(&page).map(|n| (n, page))
    });
    assert_eq!(page.0, first, "{:#}", page.1);
    for node in t.lab.nodes() {
        let (state, _) = shown(&page.1, &node.name).unwrap_or_else(|| panic!("{node:?}"));
        assert_eq!(state, "online", "{:#}", page.1);
    }
    let text = browser.run("return document.body.innerText;");
    let text = text.as_str().unwrap_or_default();
    assert!(text.contains("quorate"), "{text}");
    let quorate = browser.run("return document.getElementById('quorum').dataset.quorate;");
    assert_eq!(quorate, "true", "the quorum badge: {text}");
    assert!(text.contains("votes, quorate"), "{text}");
    save(&browser.screenshot(), "web-ui.png");

    // A cut cable: the page shows the node fenced and db-0 on another node, by itself.
    lab(&t, &["cut", &first]);
    let (second, page) = wait_for(
        "the page to show the fence and the move",
        Duration::from_secs(60),
        &w,
        || {
            let page = browser.run(READ_PAGE);
            let fenced = shown(&page, &first).is_some_and(|(s, _)| s == "fenced");
            let moved = db_on_page(&page).filter(|n| *n != first);
            moved.filter(|_| fenced).map(|n| (n, page))
        },
    );
    assert!(db_answers(&t, &second), "{page:#}");
    assert_eq!(
        browser.run("return window.quorateMark;"),
        17,
        "the page reloaded"
    );
    // The fence history on the page names the node and a successful fence.
    let fences = browser.run(
        "return Array.from(document.querySelectorAll('#fences tr[data-node]'))\
         .map((r) => [r.dataset.node, r.dataset.type, r.innerText]);",
    );
    let rows = fences.as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().any(|r| r[0] == first.as_str()
            && r[1] == "outcome"
            && r[2].as_str().unwrap_or("").contains("succeeded")),
        "{fences:#}"
    );
    save(&browser.screenshot(), "web-ui-fenced.png");

    // No secret on the page: neither the BMC passwords nor anything from the secrets dir.
    let html = browser.run("return document.documentElement.outerHTML;");
    let html = html.as_str().unwrap_or_default().to_owned();
    let secrets = t.lab.config().secrets_dir();
    for entry in std::fs::read_dir(&secrets).unwrap() {
        let secret = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let secret = secret.trim();
        if secret.len() >= 4 {
            assert!(
                !html.contains(secret),
                "a secret from {} is on the page",
                secrets.display()
            );
        }
    }
    restore(&t, &r, &w, &first);
}
