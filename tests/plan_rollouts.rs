//! Progressive delivery from the CLI on the engine: a canary promoted, a canary aborted by a
//! failing analysis, a blue/green promotion with a preview Service, pause/resume/abort.

mod plan_support;

use plan_support::{Repo, web};

const CANARY: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 25
      - pause: {duration: 30s}
      - analysis: {metric: success-rate, threshold: 0.95, interval: 10s, count: 3, failureLimit: 1}
      - setWeight: 50
      - pause: {}";

fn to_version(repo: &Repo, from: &str, to: &str) {
    repo.edit(
        "app/kustomization.yaml",
        &format!("newTag: \"{from}\""),
        &format!("newTag: \"{to}\""),
    );
}

#[test]
fn a_healthy_canary_walks_its_steps_and_waits_for_promote() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.01"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    let plan = repo.ok(&["plan", "app", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout
            .contains("~ update Deployment shop/web  (rolled out by Canary: 5 steps)"),
        "{}",
        plan.stdout
    );

    let apply = repo.ok(&["apply", "app", "--wait"], 0);
    for line in [
        "step 1/5: weight 25% on 1 canary replicas",
        "step 2/5: paused for 30s",
        "step 3/5: analysis passed (3 of 3 measurements passed)",
        "step 4/5: weight 50% on 2 canary replicas",
        "rollout Deployment shop/web paused: step 5/5: paused until `reconcile rollout promote`",
    ] {
        assert!(
            apply.stdout.contains(line),
            "missing {line:?} in\n{}",
            apply.stdout
        );
    }
    let svc = repo.ok(
        &[
            "engine", "get", "service", "web", "-n", "shop", "-o", "yaml",
        ],
        0,
    );
    assert!(
        svc.stdout.contains("reconcile.dev/canary-weight: \"50\""),
        "{}",
        svc.stdout
    );
    let status = repo.ok(&["rollout", "status", "web", "-n", "shop"], 0);
    assert!(
        status.stdout.contains("Status:    Paused") && status.stdout.contains("Weight:    50%"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Track:     web-canary: 2 desired, 2 available"),
        "{}",
        status.stdout
    );

    let promote = repo.ok(&["rollout", "promote", "web", "-n", "shop", "--wait"], 0);
    assert!(
        promote
            .stdout
            .contains("revision 2 is stable; canary removed"),
        "{}",
        promote.stdout
    );
    let deployments = repo.ok(
        &["engine", "get", "deployments", "-n", "shop", "-o", "name"],
        0,
    );
    assert!(
        !deployments.stdout.contains("web-canary"),
        "{}",
        deployments.stdout
    );
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}

#[test]
fn a_canary_failing_its_analysis_is_aborted_automatically() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.4"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    let apply = repo.ok(&["apply", "app", "--wait"], 1);
    assert!(
        apply.stderr.contains("error: rollout of Deployment shop/web is Degraded: rollout aborted: analysis failed: success-rate"),
        "{}",
        apply.stderr
    );
    assert!(
        apply.stderr.contains("all traffic back on stable"),
        "{}",
        apply.stderr
    );
    let status = repo.ok(&["rollout", "status", "web", "-n", "shop"], 1);
    assert!(
        status.stdout.contains("Images:    web:1.0")
            && status.stdout.contains("Status:    Degraded"),
        "{}",
        status.stdout
    );
    let deployments = repo.ok(
        &["engine", "get", "deployments", "-n", "shop", "-o", "name"],
        0,
    );
    assert!(
        !deployments.stdout.contains("web-canary"),
        "{}",
        deployments.stdout
    );
    let svc = repo.ok(
        &[
            "engine", "get", "service", "web", "-n", "shop", "-o", "yaml",
        ],
        0,
    );
    assert!(!svc.stdout.contains("canary-weight"), "{}", svc.stdout);
    // Applying the same bad version again does not retry it.
    let again = repo.ok(&["apply", "app", "--wait"], 1);
    assert!(again.stderr.contains("is Degraded"), "{}", again.stderr);
}

#[test]
fn pause_resume_and_abort_work_across_processes() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    let started = repo.ok(&["apply", "app"], 0);
    assert!(
        started
            .stdout
            .contains("rollout Deployment shop/web in progress"),
        "{}",
        started.stdout
    );
    let paused = repo.ok(&["rollout", "pause", "web", "-n", "shop"], 0);
    assert!(
        paused
            .stdout
            .contains("paused by `reconcile rollout pause`"),
        "{}",
        paused.stdout
    );
    let watch = repo.ok(&["rollout", "status", "web", "-n", "shop", "--watch"], 0);
    assert!(
        watch.stdout.contains("Status:    Paused"),
        "{}",
        watch.stdout
    );
    repo.ok(&["rollout", "resume", "web", "-n", "shop"], 0);
    let aborted = repo.ok(&["rollout", "abort", "web", "-n", "shop"], 0);
    assert!(
        aborted
            .stdout
            .contains("rollout aborted: aborted by `reconcile rollout abort`"),
        "{}",
        aborted.stdout
    );
    let refused = repo.ok(&["rollout", "promote", "web", "-n", "shop"], 1);
    assert!(
        refused
            .stderr
            .contains("Deployment shop/web: cannot promote: the rollout of revision 2 is Degraded"),
        "{}",
        refused.stderr
    );
}

#[test]
fn blue_green_brings_up_a_preview_and_switches_on_promote() {
    let repo = Repo::new();
    let strategy = "    type: BlueGreen
    blueGreen:
      activeService: web
      previewService: web-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 30
      prePromotionAnalysis: {metric: success-rate, threshold: 0.99, count: 2, interval: 10s}";
    let preview = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web-preview\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n";
    web(&repo, strategy, preview);
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    let apply = repo.ok(&["apply", "app", "--wait"], 0);
    assert!(
        apply
            .stdout
            .contains("pre-promotion analysis passed (2 of 2 measurements passed)"),
        "{}",
        apply.stdout
    );
    assert!(
        apply
            .stdout
            .contains("paused: preview ready; paused until `reconcile rollout promote`"),
        "{}",
        apply.stdout
    );
    let services = repo.ok(
        &["engine", "get", "services", "-n", "shop", "-o", "wide"],
        0,
    );
    assert!(
        services
            .stdout
            .contains("app=web,reconcile.dev/track=preview"),
        "{}",
        services.stdout
    );
    assert!(
        services
            .stdout
            .contains("app=web,reconcile.dev/track=stable"),
        "{}",
        services.stdout
    );

    let promote = repo.ok(&["rollout", "promote", "web", "-n", "shop"], 0);
    assert!(
        promote
            .stdout
            .contains("active Service web now selects the new version; old version kept 30s"),
        "{}",
        promote.stdout
    );
    let switched = repo.ok(
        &[
            "engine", "get", "service", "web", "-n", "shop", "-o", "yaml",
        ],
        0,
    );
    assert!(
        switched.stdout.contains("reconcile.dev/track: preview"),
        "{}",
        switched.stdout
    );
    let done = repo.ok(&["rollout", "status", "web", "-n", "shop", "--watch"], 0);
    assert!(
        done.stdout
            .contains("revision 2 is active; preview removed"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("Images:    web:2.0"),
        "{}",
        done.stdout
    );
    let deployments = repo.ok(
        &["engine", "get", "deployments", "-n", "shop", "-o", "name"],
        0,
    );
    assert!(
        !deployments.stdout.contains("web-preview"),
        "{}",
        deployments.stdout
    );
    repo.ok(&["plan", "app", "--detailed-exitcode"], 0);
}
