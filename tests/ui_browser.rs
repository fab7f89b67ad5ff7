//! The web UI in headless Chromium, served by a real `reconcile watch` on a real git
//! repository: open Applications, follow an application to its resource tree, press Sync and
//! see the status change without reloading (after its confirmation dialog, by mouse and by
//! keyboard alone), see a held Canary step on live once promoted, walk every rollout action
//! with Tab (focus visible, Enter asks, Escape cancels), and save a screenshot of each page
//! under `target/ui-screenshots/`.
//!
//! Skipped (with a message) when no Chromium is installed; `.ci/run` installs Debian's.

mod ui_support;
mod watch_support;

use ui_support::{Browser, chromium, screenshot_dir};
use watch_support::{GitRepo, Watching, web_app};

const CANARY: &str = "    type: Canary\n    canary:\n      steps:\n      - setWeight: 25\n      - pause: {duration: 30s}\n      - setWeight: 50\n      - pause: {duration: 30s}";
/// The same canary held at its first pause until promoted: the page is looked at while it
/// waits (however slow the machine), and the promotion is what must show up live.
const CANARY_HELD: &str = "    type: Canary\n    canary:\n      steps:\n      - setWeight: 25\n      - pause: {}\n      - setWeight: 50\n      - pause: {duration: 30s}";

fn sync_status(browser: &mut Browser) -> String {
    browser
        .eval("(document.getElementById('sync-status')||{}).innerText||''")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn applications_tree_sync_and_a_live_canary_in_chromium() {
    let Some(binary) = chromium() else {
        eprintln!("skipped: no chromium on PATH (apt-get install chromium, or set CHROMIUM=/path)");
        return;
    };
    let repo = GitRepo::new();
    web_app(&repo, "app", "web:1.0", 4, CANARY);
    // A manual policy: the watcher compares and reports; syncs happen when asked.
    repo.write(
        "reconcile.yaml",
        "applications:\n- name: web\n  path: app\n  syncPolicy: {}\n",
    );
    repo.commit("web 1.0");
    let mut watcher = repo.watch(&["--interval", "300ms", "--speed", "10"]);
    watcher.wait_for("the UI", |l| l.contains("web UI on http://"));
    let base = format!("http://{}", watcher.addr);
    let shots = screenshot_dir();
    let mut browser = Browser::start(&binary);

    // Applications: the row, its status by icon and word.
    browser.open(&format!("{base}/"));
    browser.wait_for("the web row OutOfSync", |b| {
        let text = b.main_text();
        text.contains("web") && text.contains("OutOfSync")
    });
    browser.wait_for("live updates on", |b| {
        b.eval("document.body.getAttribute('data-live')") == "on"
    });
    browser.screenshot(&shots.join("applications.png"));

    // Follow the application to its page.
    browser.eval("document.querySelector('a[href=\"/apps/web\"]').click()");
    browser.wait_for("the application page", |b| {
        b.eval("location.pathname") == "/apps/web" && b.main_text().contains("Resources")
    });
    assert!(sync_status(&mut browser).contains("OutOfSync"));

    // Sync asks first: Cancel (or Escape) does nothing.
    browser.eval("document.getElementById('sync').click()");
    browser.wait_for("the confirmation dialog", |b| {
        b.eval("document.getElementById('confirm').open") == true
    });
    let question = browser
        .eval("document.getElementById('confirm-text').textContent")
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(question.contains("Sync web: apply"), "{question}");
    assert_eq!(
        browser.focused().0,
        "confirm-cancel",
        "focus starts on Cancel"
    );
    browser.screenshot(&shots.join("confirm.png"));
    browser.press("Escape");
    browser.wait_for("the dialog to close", |b| {
        b.eval("document.getElementById('confirm').open") == false
    });
    assert_eq!(browser.eval("location.search"), "", "Escape sent nothing");
    assert!(sync_status(&mut browser).contains("OutOfSync"));

    // Sync: confirmed, the form posts, the page comes back, and the status turns Synced live.
    browser.eval("document.getElementById('sync').click()");
    browser.wait_for("the confirmation dialog", |b| {
        b.eval("document.getElementById('confirm').open") == true
    });
    browser.eval("document.getElementById('confirm-ok').click()");
    browser.wait_for("the sync to be requested", |b| {
        b.eval("location.search")
            .as_str()
            .is_some_and(|s| s.contains("notice"))
            && b.eval("document.readyState") == "complete"
    });
    browser.eval("window.__sameDocument = true");
    browser.wait_for("Synced without a reload, with the tree", |b| {
        let text = b.main_text();
        sync_status(b).contains("Synced")
            && !sync_status(b).contains("OutOfSync")
            && text.contains("ReplicaSet")
            && text.contains("Pod")
    });
    assert_eq!(browser.eval("window.__sameDocument === true"), true);
    browser.screenshot(&shots.join("application.png"));

    // A new version: OutOfSync with its diff, then Sync starts the canary.
    web_app(&repo, "app", "web:2.0", 4, CANARY_HELD);
    repo.commit("web 2.0");
    browser.wait_for("the new revision's diff", |b| {
        let text = b.main_text();
        sync_status(b).contains("OutOfSync")
            && text.contains("update Deployment demo/web")
            && text.contains("web:2.0")
    });
    // This time with the keyboard only: Tab to Sync, Enter, Tab to the action, Enter.
    browser.open(&format!("{base}/apps/web"));
    let mut seen = Vec::new();
    for _ in 0..80 {
        browser.press("Tab");
        let (id, shown) = browser.focused();
        assert!(shown, "{id} has focus but does not show it");
        seen.push(id.clone());
        if id == "sync" {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("sync"),
        "Tab never reached Sync: {seen:?}"
    );
    assert!(
        seen.iter().any(|i| i.contains("Skip to content")),
        "{seen:?}"
    );
    browser.press("Enter");
    browser.wait_for("the confirmation dialog", |b| {
        b.eval("document.getElementById('confirm').open") == true
    });
    browser.press("Tab");
    assert_eq!(browser.focused(), ("confirm-ok".to_string(), true));
    browser.press("Enter");
    browser.wait_for("the sync to be requested again", |b| {
        b.eval("document.readyState") == "complete" && b.main_text().contains("Sync requested")
    });

    // The Rollout page: the step advances while we look, without a reload.
    browser.open(&format!("{base}/rollouts/demo/web"));
    browser.wait_for("the canary held at its pause", |b| {
        let text = b.main_text();
        text.contains("web:2.0") && text.contains("Paused")
    });
    browser.eval("window.__sameDocument = true");
    let first = browser.main_text();
    let step_of = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Step") || l.contains("step "))
            .unwrap_or_default()
            .to_string()
    };
    let first_step = step_of(&first);
    browser.screenshot(&shots.join("rollout.png"));
    // Every rollout action is reached by Tab and shows its focus; Enter opens its question,
    // Escape leaves it with nothing done.
    let mut reached = Vec::new();
    for _ in 0..80 {
        browser.press("Tab");
        let (id, shown) = browser.focused();
        assert!(shown, "{id} has focus but does not show it");
        reached.push(id);
        if ["promote", "promote-full", "abort", "retry", "undo"]
            .iter()
            .all(|a| reached.iter().any(|r| r == a))
        {
            break;
        }
        if browser.focused().0 == "abort" {
            browser.press("Enter");
            browser.wait_for("the abort question", |b| {
                b.eval("document.getElementById('confirm').open") == true
            });
            let text = browser.eval("document.getElementById('confirm-text').textContent");
            assert!(
                text.as_str()
                    .is_some_and(|t| t.contains("Abort the rollout of demo/web")),
                "{text}"
            );
            browser.press("Escape");
            browser.wait_for("the dialog to close", |b| {
                b.eval("document.getElementById('confirm').open") == false
            });
            // The focus returns to Abort; go on from there.
            assert_eq!(browser.focused().0, "abort");
        }
    }
    for action in ["promote", "promote-full", "abort", "retry", "undo"] {
        assert!(
            reached.iter().any(|r| r == action),
            "Tab never reached {action}: {reached:?}"
        );
    }
    assert!(
        !browser.main_text().contains("Aborted"),
        "an Escape'd abort did nothing"
    );
    // Promoted from the command line, beside the watcher: the page follows without a reload.
    let (code, out, err) = repo
        .run(&["rollout", "promote", "web", "-n", "demo"])
        .parts();
    assert_eq!(code, 0, "{out}{err}");
    browser.wait_for("the canary's step to advance live", |b| {
        let now = b.main_text();
        step_of(&now) != first_step || (now.contains("Healthy") && !first.contains("Healthy"))
    });
    assert_eq!(browser.eval("window.__sameDocument === true"), true);
    browser.wait_for("the canary to finish", |b| {
        let text = b.main_text();
        text.contains("Healthy") && text.contains("web:2.0") && !text.contains("canary Deployment")
    });
    browser.screenshot(&shots.join("rollout-done.png"));

    // The Cluster page: nodes with their pods.
    browser.open(&format!("{base}/cluster"));
    browser.wait_for("nodes and pods", |b| {
        let text = b.main_text();
        text.contains("worker-1") && text.contains("Ready") && text.contains("2.0")
    });
    browser.screenshot(&shots.join("cluster.png"));
    for name in [
        "applications",
        "confirm",
        "application",
        "rollout",
        "rollout-done",
        "cluster",
    ] {
        let path = shots.join(format!("{name}.png"));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{}: {size} bytes", path.display());
    }
    drop(browser);
    let (code, _) = watcher.stop();
    assert_eq!(code, Some(0));
}
