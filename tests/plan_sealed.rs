//! Saved plans are sealed (#16 items 7 and 10): `apply plan.json` applies exactly the file
//! `plan --out` wrote or refuses; any edit, a redirected target and a Secret value changed
//! since the plan are all refused, and nothing is applied or created when refused.

mod plan_support;

use plan_support::{Repo, timecheck};

/// The live objects of the dev namespace, as YAML (what a refusal must leave alone).
fn live(repo: &Repo) -> String {
    repo.ok(
        &[
            "engine",
            "get",
            "all,cm",
            "-n",
            "timecheck-dev",
            "-o",
            "yaml",
        ],
        0,
    )
    .stdout
}

#[test]
fn an_edited_plan_file_is_refused_and_changes_nothing() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    let sealed = repo.read("plan.json");
    assert!(sealed.contains("\"seals\""), "{sealed}");
    assert!(sealed.contains("\"sourceMac\": \"hmac-sha256:"), "{sealed}");
    let before = live(&repo);
    // The edits of the report: actions marked unchanged, the summary changed, a field added.
    let edits = [
        ("\"action\": \"create\"", "\"action\": \"unchanged\""),
        ("\"create\": 4", "\"create\": 0"),
        ("\"prune\": false", "\"prune\": true"),
        (
            "\"formatVersion\": 1,",
            "\"formatVersion\": 1, \"note\": \"ok\",",
        ),
    ];
    for (from, to) in edits {
        assert!(sealed.contains(from), "{from} not in the plan:\n{sealed}");
        repo.write("plan.json", &sealed.replace(from, to));
        let run = repo.ok(&["apply", "plan.json"], 1);
        assert!(
            run.stderr
                .contains("the plan file was changed after `reconcile plan --out` saved it"),
            "{from} → {to}:\n{}",
            run.all()
        );
        assert!(!run.stdout.contains("created"), "{}", run.all());
        assert_eq!(live(&repo), before, "a refused plan changed the cluster");
    }
    // A plan printed with `-o json` carries no seal: it is for reading, not applying.
    let printed = repo.ok(&["plan", "overlays/dev", "-o", "json"], 0);
    repo.write("printed.json", &printed.stdout);
    let run = repo.ok(&["apply", "printed.json"], 1);
    assert!(run.stderr.contains("is not sealed"), "{}", run.all());
    // The file as saved applies.
    repo.write("plan.json", &sealed);
    let run = repo.ok(&["apply", "plan.json"], 0);
    assert!(run.stdout.contains("Apply complete"), "{}", run.all());
}

#[test]
fn the_target_of_a_saved_plan_cannot_be_redirected() {
    let repo = Repo::new();
    timecheck(&repo);
    repo.ok(&["plan", "overlays/dev", "--out", "plan.json"], 0);
    let sealed = repo.read("plan.json");
    let root = repo.path().display().to_string();

    // --target elsewhere is refused, naming both targets and the way to ask for it.
    let run = repo.ok(&["apply", "plan.json", "--target", "engine:other.db"], 1);
    assert!(
        run.stderr
            .contains("was made for engine:$REPO/.reconcile/engine.db")
            && run.stderr.contains("--retarget"),
        "{}",
        run.all()
    );
    assert!(
        !repo.path().join("other.db").exists(),
        "a state was created"
    );

    // The target edited in the file: the seal no longer matches, and no state is created.
    let redirected = sealed.replace(
        &format!("{root}/.reconcile/engine.db"),
        &format!("{root}/elsewhere.db"),
    );
    assert_ne!(redirected, sealed);
    repo.write("plan.json", &redirected);
    let run = repo.ok(&["apply", "plan.json"], 1);
    assert!(
        run.stderr.contains("which holds no plan key"),
        "{}",
        run.all()
    );
    assert!(
        !repo.path().join("elsewhere.db").exists(),
        "a state was created"
    );

    // Asked explicitly, a plan made on an empty cluster applies to another empty one.
    repo.write("plan.json", &sealed);
    let run = repo.ok(
        &[
            "apply",
            "plan.json",
            "--target",
            "engine:other.db",
            "--retarget",
        ],
        0,
    );
    assert!(run.stdout.contains("Apply complete"), "{}", run.all());
}

#[test]
fn a_secret_value_changed_since_the_plan_makes_it_stale_without_leaking_it() {
    let repo = Repo::new();
    repo.write(
        "app/kustomization.yaml",
        "namespace: default\nresources:\n- secret.yaml\n",
    );
    repo.write(
        "app/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: pin\ndata:\n  pin: MTIzNA==\n",
    );
    repo.ok(&["apply", "app"], 0);
    repo.edit("app/secret.yaml", "MTIzNA==", "NTY3OA==");
    repo.ok(&["plan", "app", "--out", "plan.json"], 0);
    let saved = repo.read("plan.json");
    for plaintext in ["MTIzNA==", "NTY3OA==", "1234", "5678"] {
        assert!(!saved.contains(plaintext), "the plan leaked {plaintext}");
    }
    // The value changes back: the masked digest is the same, the keyed one is not.
    repo.edit("app/secret.yaml", "NTY3OA==", "MTIzNA==");
    let run = repo.ok(&["apply", "plan.json"], 1);
    assert!(
        run.stderr
            .contains("plan is stale: the source of application app changed"),
        "{}",
        run.all()
    );
    // Digests of the same value in another target differ (the key is the target's own).
    repo.edit("app/secret.yaml", "MTIzNA==", "NTY3OA==");
    repo.ok(&["plan", "app", "--out", "plan.json"], 0);
    repo.ok(&["engine", "reset", "--target", "engine:other.db"], 0);
    repo.ok(
        &[
            "plan",
            "app",
            "--out",
            "other.json",
            "--target",
            "engine:other.db",
        ],
        0,
    );
    let mac = |file: &str| {
        let text = repo.read(file);
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        value["plans"][0]["sourceMac"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(mac("plan.json").starts_with("hmac-sha256:"));
    assert_ne!(mac("plan.json"), mac("other.json"));
    repo.ok(&["apply", "plan.json"], 0);
}
