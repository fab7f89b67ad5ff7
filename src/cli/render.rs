//! `render`, `validate` and `schema`: one library call each, then printing.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::args::RenderFormat;
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
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(EXIT_OK)
}

/// `reconcile validate PATH`: every problem found, one per line; exit 1 when there is any.
pub fn validate(path: &Path, source: &SourceArgs) -> anyhow::Result<i32> {
    let problems = match source.tree()? {
        Some(tree) => render::validate::validate(&*tree.fs, &tree.join(path)),
        None => render::validate::validate_dir(path),
    };
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
        "diff" => crate::review::report_schema(),
        other => {
            anyhow::bail!(
                "unknown schema {other:?} (known: kustomization, plan, config, strategy, diff)"
            )
        }
    };
    print!("{text}");
    Ok(EXIT_OK)
}
