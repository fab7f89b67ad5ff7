//! `render`, `validate` and `schema`: one library call each, then printing.

use std::path::Path;

use super::args::{RenderFormat, ValidateFormat};
use super::source::SourceArgs;
use super::{EXIT_ERROR, EXIT_OK};
use crate::render;

/// `reconcile render PATH [-o yaml|json]`: the build on stdout, or the error on stderr and
/// nothing on stdout.
pub fn render(path: &Path, format: RenderFormat, source: &SourceArgs) -> anyhow::Result<i32> {
    let resources = match source.tree()? {
        Some(tree) => render::render(&*tree.fs, &tree.join(path)),
        None => render::render_dir(path),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = match format {
        RenderFormat::Yaml => render::into_yaml(resources),
        RenderFormat::Json => render::to_json(&resources),
    };
    super::output::write_text(&text);
    Ok(EXIT_OK)
}

/// `reconcile validate PATH`: every problem found, one per line (or one JSON document);
/// exit 1 when there is any.
pub fn validate(path: &Path, format: ValidateFormat, source: &SourceArgs) -> anyhow::Result<i32> {
    let problems = match source.tree()? {
        Some(tree) => render::validate::validate(&*tree.fs, &tree.join(path)),
        None => render::validate::validate_dir(path),
    };
    if format == ValidateFormat::Json {
        let output = crate::reports::ValidateOutput {
            path: path.display().to_string(),
            valid: problems.is_empty(),
            problems: problems.iter().map(ToString::to_string).collect(),
        };
        super::output::write_text(&(serde_json::to_string_pretty(&output)? + "\n"));
        return Ok(if problems.is_empty() {
            EXIT_OK
        } else {
            EXIT_ERROR
        });
    }
    if problems.is_empty() {
        println!("{}: ok", path.display());
        return Ok(EXIT_OK);
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("{} problem(s) found", problems.len());
    Ok(EXIT_ERROR)
}

/// `reconcile schema NAME`: a JSON Schema on stdout.
pub fn schema(name: &str) -> anyhow::Result<i32> {
    let text = match name {
        "kustomization" => render::kustomization_schema(),
        "plan" => crate::plan::plan_schema(),
        "config" => crate::plan::config_schema(),
        "strategy" => crate::plan::strategy_schema(),
        "apps" => crate::controller::status::apps_schema(),
        "diff" => crate::review::report_schema(),
        other => match crate::reports::schema(other) {
            Some(text) => text,
            None => anyhow::bail!(
                "unknown schema {other:?} (known: kustomization, plan, config, strategy, apps, diff, apply, rollout-status, rollout-get, validate, events)"
            ),
        },
    };
    print!("{text}");
    Ok(EXIT_OK)
}
