//! The committed JSON Schemas of plans, reconcile.yaml, strategies and the watcher's
//! `/api/v1/apps` are current.
//! Regenerate with `UPDATE_EXPECT=1 cargo test --test plan_schemas`.

use std::path::Path;

fn check(file: &str, current: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &current).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "schemas/{file} is stale: run `UPDATE_EXPECT=1 cargo test --test plan_schemas`"
    );
}

#[test]
fn committed_schemas_are_current() {
    check("plan.json", reconcile::plan::plan_schema());
    check("config.json", reconcile::plan::config_schema());
    check("strategy.json", reconcile::plan::strategy_schema());
    check("diff.json", reconcile::review::report_schema());
    check("apps.json", reconcile::controller::status::apps_schema());
}

#[test]
fn committed_output_schemas_are_current() {
    for (name, file) in reconcile::reports::SCHEMAS {
        let schema =
            reconcile::reports::schema(name).unwrap_or_else(|| panic!("no schema named {name}"));
        check(file, schema);
    }
}
