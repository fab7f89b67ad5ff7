//! `reconcile engine …`: drive and inspect the built-in cluster, kubectl style.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use crate::engine::clock::{
    Millis, format_duration, human_age, parse_duration, parse_rfc3339, rfc3339,
};
use crate::engine::images::ImageBehavior;
use crate::engine::kinds::{self, KindInfo};
use crate::engine::{Engine, NodeSpec, Propagation, doc};

/// `reconcile engine` arguments.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// The engine's state file.
    #[arg(
        long,
        global = true,
        default_value = ".reconcile/engine.db",
        env = "RECONCILE_ENGINE_STATE"
    )]
    pub state: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: EngineCommand,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    /// More columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// Names only (`kind/name`).
    Name,
}

/// Deletion propagation for `delete --cascade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cascade {
    /// Delete now, collect dependents afterwards.
    Background,
    /// Delete dependents first.
    Foreground,
    /// Keep dependents.
    Orphan,
}

/// The engine's subcommands.
#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// List objects (`get pods`, `get deploy web -o yaml`, `get svc -A`).
    Get {
        /// Kind (`pods`, `deploy`, `svc`, `nodes`, …).
        kind: String,
        /// One object's name.
        name: Option<String>,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector (`app=web,tier!=db`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum)]
        output: Option<GetFormat>,
    },
    /// Show an object in detail with its events.
    Describe {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
    },
    /// Events, oldest first.
    Events {
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only events of this object (`pod/web-abc`, `deployment/web`).
        #[arg(long = "for")]
        for_object: Option<String>,
    },
    /// Manage nodes.
    Nodes {
        /// What to do.
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Stop a node's kubelet (as if it lost power).
    NodeFail {
        /// Node name.
        node: String,
    },
    /// Restart a failed node's kubelet.
    NodeRecover {
        /// Node name.
        node: String,
    },
    /// Configure how containers of an image behave.
    Images {
        /// What to do.
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Let virtual time pass (`advance 5m`), running the controllers.
    Advance {
        /// Duration (`30s`, `5m`, `1h30m`).
        duration: String,
    },
    /// Print the cluster's virtual time.
    Now,
    /// Delete everything and start a fresh cluster.
    Reset {
        /// Number of worker nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Create objects from a YAML file (`-` for stdin); fails if one exists.
    Create {
        /// The file.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Create or update objects from a YAML file (`-` for stdin).
    Apply {
        /// The file.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Delete an object.
    Delete {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// How dependents are treated.
        #[arg(long, value_enum, default_value = "background")]
        cascade: Cascade,
    },
    /// Roll a Deployment back to a revision (default: the previous one).
    Undo {
        /// Deployment name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Revision to go back to.
        #[arg(long)]
        to_revision: Option<i64>,
    },
}

/// `engine nodes …`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Add a worker node.
    Add {
        /// Node name.
        name: String,
        /// CPU capacity (`4`, `2500m`).
        #[arg(long, default_value = "4")]
        cpu: String,
        /// Memory capacity (`8Gi`).
        #[arg(long, default_value = "8Gi")]
        memory: String,
        /// Pod slots.
        #[arg(long, default_value_t = 110)]
        pods: i64,
        /// Extra labels (`zone=a`), repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Remove a node (its pods are replaced elsewhere).
    Remove {
        /// Node name.
        name: String,
    },
    /// List nodes.
    List,
    /// Mark a node unschedulable.
    Cordon {
        /// Node name.
        name: String,
    },
    /// Mark a node schedulable again.
    Uncordon {
        /// Node name.
        name: String,
    },
    /// Cordon a node and evict its pods.
    Drain {
        /// Node name.
        name: String,
        /// Also evict pods no controller manages.
        #[arg(long)]
        force: bool,
    },
}

/// `engine images …`.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Set an image's behaviour (an image without a tag covers all its tags).
    Set {
        /// Image (`web:2.0` or `web`).
        image: String,
        /// Time to pull.
        #[arg(long)]
        pull: Option<String>,
        /// Time from start until the program serves.
        #[arg(long)]
        startup: Option<String>,
        /// The program exits with an error after starting.
        #[arg(long)]
        crash: bool,
        /// The readiness probe never succeeds.
        #[arg(long)]
        fail_readiness: bool,
        /// Fraction of requests that fail (0..1).
        #[arg(long)]
        error_rate: Option<f64>,
        /// Median latency (`120ms`).
        #[arg(long)]
        latency: Option<String>,
        /// The image does not exist (ImagePullBackOff).
        #[arg(long)]
        missing: bool,
        /// CPU used per pod, for the autoscaler (`250m`).
        #[arg(long)]
        cpu: Option<String>,
        /// Run time of run-to-completion containers (Jobs, init containers).
        #[arg(long)]
        run: Option<String>,
    },
    /// List configured images.
    List,
    /// Forget an image's configuration.
    Unset {
        /// Image.
        image: String,
    },
}

/// Runs one engine command; returns the exit code.
pub fn run(args: EngineArgs) -> anyhow::Result<i32> {
    let mut engine = Engine::open(&args.state)?;
    match args.command {
        EngineCommand::Get {
            kind,
            name,
            namespace,
            all_namespaces,
            selector,
            output,
        } => {
            let info = kind_info(&kind)?;
            let objects = match &name {
                Some(n) => vec![
                    engine
                        .get(info.kind, &namespace, n)?
                        .ok_or_else(|| not_found(info, n))?,
                ],
                None => {
                    let ns = (!all_namespaces).then_some(namespace.as_str());
                    engine.list(info.kind, ns, selector.as_deref())?
                }
            };
            let now = engine.now_millis();
            match output {
                Some(GetFormat::Json) => {
                    let v = if name.is_some() {
                        objects[0].clone()
                    } else {
                        list_value(&objects)
                    };
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Some(GetFormat::Yaml) => {
                    let v = if name.is_some() {
                        objects[0].clone()
                    } else {
                        list_value(&objects)
                    };
                    print!("{}", to_yaml(&v));
                }
                Some(GetFormat::Name) => {
                    for o in &objects {
                        println!("{}/{}", info.resource_prefix(), doc::name(o));
                    }
                }
                other => {
                    if objects.is_empty() {
                        if all_namespaces || !info.namespaced {
                            eprintln!("No resources found");
                        } else {
                            eprintln!("No resources found in {namespace} namespace.");
                        }
                    } else {
                        let wide = other == Some(GetFormat::Wide);
                        print!(
                            "{}",
                            table(info, &objects, now, all_namespaces && info.namespaced, wide)
                        );
                    }
                }
            }
        }
        EngineCommand::Describe {
            kind,
            name,
            namespace,
        } => {
            let info = kind_info(&kind)?;
            let obj = engine
                .get(info.kind, &namespace, &name)?
                .ok_or_else(|| not_found(info, &name))?;
            let events = engine.events(None)?;
            print!("{}", describe(info, &obj, &events, engine.now_millis()));
        }
        EngineCommand::Events {
            namespace,
            all_namespaces,
            for_object,
        } => {
            let ns = (!all_namespaces).then_some(namespace.as_str());
            let mut events = engine.events(ns)?;
            if let Some(target) = for_object {
                let (k, n) = target.split_once('/').context("--for takes KIND/NAME")?;
                let info = kind_info(k)?;
                events.retain(|e| e.object_kind == info.kind && e.object_name == n);
            }
            if events.is_empty() {
                eprintln!("No events found.");
            } else {
                print!(
                    "{}",
                    events_table(&events, engine.now_millis(), all_namespaces)
                );
            }
        }
        EngineCommand::Nodes { command } => match command {
            NodesCommand::Add {
                name,
                cpu,
                memory,
                pods,
                labels,
            } => {
                let cpu_millis = doc::cpu_millis(&Value::String(cpu.clone()))
                    .with_context(|| format!("invalid --cpu {cpu:?}"))?;
                let memory_bytes = doc::bytes(&Value::String(memory.clone()))
                    .with_context(|| format!("invalid --memory {memory:?}"))?;
                let labels = labels
                    .iter()
                    .map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .with_context(|| format!("invalid --label {l:?}: expected KEY=VALUE"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                engine.add_node(
                    &name,
                    &NodeSpec {
                        cpu_millis,
                        memory: memory_bytes,
                        pods,
                        labels,
                    },
                )?;
                println!("node/{name} added");
            }
            NodesCommand::Remove { name } => {
                engine.remove_node(&name)?;
                println!("node/{name} removed");
            }
            NodesCommand::List => {
                let nodes = engine.list("Node", None, None)?;
                print!("{}", node_list(&engine, &nodes));
            }
            NodesCommand::Cordon { name } => {
                engine.cordon(&name, true)?;
                println!("node/{name} cordoned");
            }
            NodesCommand::Uncordon { name } => {
                engine.cordon(&name, false)?;
                println!("node/{name} uncordoned");
            }
            NodesCommand::Drain { name, force } => {
                for p in engine.drain(&name, force)? {
                    println!("evicting pod {p}");
                }
                println!("node/{name} drained");
            }
        },
        EngineCommand::NodeFail { node } => {
            engine.fail_node(&node)?;
            println!(
                "node/{node}: kubelet stopped at {}",
                rfc3339(engine.now_millis())
            );
        }
        EngineCommand::NodeRecover { node } => {
            engine.recover_node(&node)?;
            println!(
                "node/{node}: kubelet started at {}",
                rfc3339(engine.now_millis())
            );
        }
        EngineCommand::Images { command } => match command {
            ImagesCommand::Set {
                image,
                pull,
                startup,
                crash,
                fail_readiness,
                error_rate,
                latency,
                missing,
                cpu,
                run,
            } => {
                let current = engine
                    .state()
                    .images
                    .get(&image)
                    .cloned()
                    .unwrap_or_default();
                let dur = |v: Option<String>, d: Millis| -> anyhow::Result<Millis> {
                    v.map(|s| parse_duration(&s).map_err(anyhow::Error::msg))
                        .transpose()
                        .map(|x| x.unwrap_or(d))
                };
                if let Some(r) = error_rate
                    && !(0.0..=1.0).contains(&r)
                {
                    bail!("--error-rate must be between 0 and 1, got {r}");
                }
                let behavior = ImageBehavior {
                    pull_ms: dur(pull, current.pull_ms)?,
                    startup_ms: dur(startup, current.startup_ms)?,
                    crash: crash || current.crash,
                    fail_readiness: fail_readiness || current.fail_readiness,
                    error_rate: error_rate.unwrap_or(current.error_rate),
                    latency_ms: dur(latency, current.latency_ms.round() as Millis)? as f64,
                    missing: missing || current.missing,
                    cpu_millis: match cpu {
                        Some(c) => doc::cpu_millis(&Value::String(c.clone()))
                            .with_context(|| format!("invalid --cpu {c:?}"))?,
                        None => current.cpu_millis,
                    },
                    run_ms: dur(run, current.run_ms)?,
                };
                println!("image {image}: {}", behavior.summary());
                engine.set_image(&image, behavior)?;
            }
            ImagesCommand::List => {
                let images = &engine.state().images;
                if images.is_empty() {
                    println!(
                        "No images configured; every image is healthy: {}",
                        ImageBehavior::default().summary()
                    );
                }
                for (name, b) in images {
                    println!("{name}\t{}", b.summary());
                }
            }
            ImagesCommand::Unset { image } => {
                if engine.unset_image(&image)? {
                    println!("image {image}: back to defaults");
                } else {
                    println!("image {image} was not configured");
                }
            }
        },
        EngineCommand::Advance { duration } => {
            let ms = parse_duration(&duration).map_err(anyhow::Error::msg)?;
            let wall = std::time::Instant::now();
            let done = engine.advance(ms)?;
            println!(
                "advanced {} to {} ({} controller steps, {:.0} ms wall)",
                format_duration(done.to - done.from),
                rfc3339(done.to),
                done.steps,
                wall.elapsed().as_secs_f64() * 1000.0
            );
        }
        EngineCommand::Now => println!("{}", rfc3339(engine.now_millis())),
        EngineCommand::Reset { nodes } => {
            engine.reset(nodes)?;
            println!(
                "engine reset: {nodes} nodes, time {}",
                rfc3339(engine.now_millis())
            );
        }
        EngineCommand::Create { file } => {
            for obj in read_manifests(&file)? {
                let created = engine.create(&obj)?;
                println!("{} created", object_ref(&created));
            }
        }
        EngineCommand::Apply { file } => {
            for obj in read_manifests(&file)? {
                let before = obj
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(kinds::by_kind)
                    .and_then(|info| {
                        engine
                            .get(
                                info.kind,
                                if doc::namespace(&obj).is_empty() {
                                    "default"
                                } else {
                                    doc::namespace(&obj)
                                },
                                doc::name(&obj),
                            )
                            .ok()
                            .flatten()
                    });
                let after = engine.apply(&obj)?;
                let verb = match before {
                    None => "created",
                    Some(b)
                        if b.get("metadata").and_then(|m| m.get("resourceVersion"))
                            == after.get("metadata").and_then(|m| m.get("resourceVersion")) =>
                    {
                        "unchanged"
                    }
                    Some(_) => "configured",
                };
                println!("{} {verb}", object_ref(&after));
            }
        }
        EngineCommand::Delete {
            kind,
            name,
            namespace,
            cascade,
        } => {
            let info = kind_info(&kind)?;
            let propagation = match cascade {
                Cascade::Background => Propagation::Background,
                Cascade::Foreground => Propagation::Foreground,
                Cascade::Orphan => Propagation::Orphan,
            };
            if !engine.delete(info.kind, &namespace, &name, propagation)? {
                return Err(not_found(info, &name).into());
            }
            println!("{}/{name} deleted", info.resource_prefix());
        }
        EngineCommand::Undo {
            name,
            namespace,
            to_revision,
        } => {
            let rev = engine.rollout_undo(&namespace, &name, to_revision)?;
            println!("deployment.apps/{name} rolled back (to the template of revision {rev})");
        }
    }
    Ok(0)
}

fn kind_info(word: &str) -> anyhow::Result<&'static KindInfo> {
    kinds::lookup(word)
        .with_context(|| format!("the server doesn't have a resource type \"{word}\""))
}

fn not_found(info: &KindInfo, name: &str) -> crate::engine::Error {
    let resource = if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    };
    crate::engine::Error::NotFound {
        resource,
        name: name.into(),
    }
}

fn object_ref(obj: &Value) -> String {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .and_then(kinds::by_kind);
    match kind {
        Some(info) => format!("{}/{}", info.resource_prefix(), doc::name(obj)),
        None => doc::name(obj).to_string(),
    }
}

fn list_value(objects: &[Value]) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""}})
}

// ---- manifests ----

/// Reads the objects of a multi-document YAML file (`-`: stdin); `List` kinds are unpacked.
pub fn read_manifests(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .with_context(|| format!("{}: invalid YAML", path.display()))?;
    let mut out = Vec::new();
    for d in docs {
        let v = yaml_to_json(&d);
        if v.is_null() {
            continue;
        }
        if v.get("kind").and_then(Value::as_str) == Some("List") {
            out.extend(
                v.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        } else {
            out.push(v);
        }
    }
    Ok(out)
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    _ => continue,
                };
                m.insert(key, yaml_to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
    }
}

/// YAML for printing objects (block style, strings quoted when they would read as
/// something else).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out, true);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && !matches!(
                    s.to_lowercase().as_str(),
                    "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
                )
                && s.parse::<f64>().is_err()
                && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
                && !s.ends_with(' ')
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.contains('\n');
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(m) if m.is_empty() => "{}".into(),
        _ => String::new(),
    }
}

fn emit(v: &Value, indent: usize, out: &mut String, _top: bool) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                let key = scalar(&Value::String(k.clone()));
                match val {
                    Value::Object(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent + 2, out, false);
                    }
                    Value::Array(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(val, indent, out, false);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                match item {
                    Value::Object(x) if !x.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner, false);
                        let trimmed = inner
                            .strip_prefix(&" ".repeat(indent + 2))
                            .unwrap_or(&inner);
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    Value::Array(x) if !x.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out, false);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

// ---- tables ----

fn render_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn age(obj: &Value, now: Millis) -> String {
    parse_rfc3339(doc::str_at(obj, &["metadata", "creationTimestamp"]))
        .map(|t| human_age(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn num(obj: &Value, path: &[&str]) -> i64 {
    doc::i64_at(obj, path).unwrap_or(0)
}

fn containers_images(obj: &Value, template: &[&str]) -> (String, String) {
    let mut path: Vec<&str> = template.to_vec();
    path.push("containers");
    let list = doc::at(obj, &path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| doc::str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

fn selector_text(sel: Option<&Value>) -> String {
    sel.map(crate::engine::labels::Selector::from_label_selector)
        .and_then(Result::ok)
        .map(|s| s.to_text())
        .unwrap_or_default()
}

/// kubectl's STATUS column of a pod.
pub fn pod_status(pod: &Value) -> (String, usize, usize, i64) {
    let statuses = |f: &str| {
        doc::at(pod, &["status", f])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut reason = doc::str_at(pod, &["status", "phase"]).to_string();
    if let Some(r) = doc::at(pod, &["status", "reason"]).and_then(Value::as_str) {
        reason = r.to_string();
    }
    let inits = statuses("initContainerStatuses");
    let init_total = doc::at(pod, &["spec", "initContainers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let term = doc::at(c, &["state", "terminated"]);
        let waiting = doc::str_at(c, &["state", "waiting", "reason"]);
        if term.is_some_and(|t| doc::i64_at(t, &["exitCode"]) == Some(0)) {
            continue;
        }
        if let Some(t) = term {
            reason = format!("Init:{}", doc::str_at(t, &["reason"]));
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    let mains = statuses("containerStatuses");
    let total = doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    let initialized = crate::engine::scheduler::pod_condition(pod, "Initialized")
        .is_some_and(|c| doc::str_at(c, &["status"]) == "True");
    if !initializing || initialized {
        let mut has_running = false;
        for c in mains.iter().rev() {
            restarts += num(c, &["restartCount"]);
            let waiting = doc::str_at(c, &["state", "waiting", "reason"]);
            let terminated = doc::str_at(c, &["state", "terminated", "reason"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if !terminated.is_empty() {
                reason = terminated.to_string();
            } else if doc::at(c, &["ready"]).and_then(Value::as_bool) == Some(true)
                && doc::at(c, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if doc::is_deleting(pod) {
        reason = "Terminating".into();
    }
    (reason, ready, total, restarts)
}

fn last_restart(pod: &Value, now: Millis) -> Option<String> {
    doc::at(pod, &["status", "containerStatuses"])
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| parse_rfc3339(doc::str_at(c, &["lastState", "terminated", "finishedAt"])))
        .max()
        .map(|t| human_age(now - t))
}

fn table(info: &KindInfo, objects: &[Value], now: Millis, with_ns: bool, wide: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let header: Vec<&str> = match (info.kind, wide) {
        ("Pod", false) => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ("Pod", true) => vec![
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
        ("Deployment", false) => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ("Deployment", true) => vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        ("ReplicaSet", false) => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ("ReplicaSet", true) => vec![
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR",
        ],
        ("Service", false) => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ("Service", true) => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR",
        ],
        ("Node", false) => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ("Node", true) => vec![
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME",
        ],
        ("Endpoints", _) => vec!["NAME", "ENDPOINTS", "AGE"],
        ("EndpointSlice", _) => vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        ("Namespace", _) => vec!["NAME", "STATUS", "AGE"],
        ("ConfigMap", _) => vec!["NAME", "DATA", "AGE"],
        ("Secret", _) => vec!["NAME", "TYPE", "DATA", "AGE"],
        ("PersistentVolumeClaim", _) => vec![
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "AGE",
        ],
        ("PersistentVolume", _) => vec![
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "AGE",
        ],
        ("Ingress", _) => vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
        _ => super::engine_tables::header(info.kind, wide).unwrap_or_else(|| vec!["NAME", "AGE"]),
    };
    let mut head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    if with_ns {
        head.insert(0, "NAMESPACE".into());
    }
    rows.push(head);
    for o in objects {
        let name = doc::name(o).to_string();
        let mut row: Vec<String> = match info.kind {
            "Pod" => {
                let (status, ready, total, restarts) = pod_status(o);
                let restarts = match last_restart(o, now) {
                    Some(ago) if restarts > 0 => format!("{restarts} ({ago} ago)"),
                    _ => restarts.to_string(),
                };
                let mut r = vec![
                    name,
                    format!("{ready}/{total}"),
                    status,
                    restarts,
                    age(o, now),
                ];
                if wide {
                    let ip = doc::str_at(o, &["status", "podIP"]);
                    let node = doc::str_at(o, &["spec", "nodeName"]);
                    let none = |s: &str| {
                        if s.is_empty() {
                            "<none>".to_string()
                        } else {
                            s.to_string()
                        }
                    };
                    r.extend([none(ip), none(node), "<none>".into(), "<none>".into()]);
                }
                r
            }
            "Deployment" => {
                let mut r = vec![
                    name,
                    format!(
                        "{}/{}",
                        num(o, &["status", "readyReplicas"]),
                        num(o, &["spec", "replicas"])
                    ),
                    num(o, &["status", "updatedReplicas"]).to_string(),
                    num(o, &["status", "availableReplicas"]).to_string(),
                    age(o, now),
                ];
                if wide {
                    let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                    r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
                }
                r
            }
            "ReplicaSet" => {
                let mut r = vec![
                    name,
                    num(o, &["spec", "replicas"]).to_string(),
                    num(o, &["status", "replicas"]).to_string(),
                    num(o, &["status", "readyReplicas"]).to_string(),
                    age(o, now),
                ];
                if wide {
                    let (c, i) = containers_images(o, &["spec", "template", "spec"]);
                    r.extend([c, i, selector_text(doc::at(o, &["spec", "selector"]))]);
                }
                r
            }
            "Service" => {
                let kind = doc::str_at(o, &["spec", "type"]).to_string();
                let external = match kind.as_str() {
                    "LoadBalancer" => doc::at(o, &["status", "loadBalancer", "ingress"])
                        .and_then(|i| i.get(0))
                        .map(|i| doc::str_at(i, &["ip"]).to_string())
                        .unwrap_or_else(|| "<pending>".into()),
                    "ExternalName" => doc::str_at(o, &["spec", "externalName"]).to_string(),
                    _ => "<none>".into(),
                };
                let ports: Vec<String> = doc::at(o, &["spec", "ports"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| match doc::i64_at(p, &["nodePort"]) {
                        Some(np) => format!(
                            "{}:{np}/{}",
                            num(p, &["port"]),
                            doc::str_at(p, &["protocol"])
                        ),
                        None => format!("{}/{}", num(p, &["port"]), doc::str_at(p, &["protocol"])),
                    })
                    .collect();
                let ip = match doc::str_at(o, &["spec", "clusterIP"]) {
                    "" => "<none>",
                    ip => ip,
                };
                let mut r = vec![
                    name,
                    kind,
                    ip.to_string(),
                    external,
                    if ports.is_empty() {
                        "<none>".into()
                    } else {
                        ports.join(",")
                    },
                    age(o, now),
                ];
                if wide {
                    let sel = doc::at(o, &["spec", "selector"])
                        .map(crate::engine::labels::Selector::from_map)
                        .map(|s| s.to_text())
                        .unwrap_or_default();
                    r.push(if sel.is_empty() { "<none>".into() } else { sel });
                }
                r
            }
            "Node" => {
                let ready = crate::engine::scheduler::node_ready(o);
                let mut status = if ready {
                    "Ready".to_string()
                } else {
                    "NotReady".to_string()
                };
                if doc::at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
                    status.push_str(",SchedulingDisabled");
                }
                let roles: Vec<String> = doc::labels(o)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| {
                        k.strip_prefix("node-role.kubernetes.io/").map(String::from)
                    })
                    .collect();
                let mut r = vec![
                    name,
                    status,
                    if roles.is_empty() {
                        "<none>".into()
                    } else {
                        roles.join(",")
                    },
                    age(o, now),
                    doc::str_at(o, &["status", "nodeInfo", "kubeletVersion"]).into(),
                ];
                if wide {
                    let ip = doc::at(o, &["status", "addresses"])
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find(|x| doc::str_at(x, &["type"]) == "InternalIP"))
                        .map(|x| doc::str_at(x, &["address"]).to_string())
                        .unwrap_or_default();
                    let info = |k: &str| doc::str_at(o, &["status", "nodeInfo", k]).to_string();
                    r.extend([
                        ip,
                        "<none>".into(),
                        info("osImage"),
                        info("kernelVersion"),
                        info("containerRuntimeVersion"),
                    ]);
                }
                r
            }
            "Endpoints" => {
                let mut addrs = Vec::new();
                for s in doc::at(o, &["subsets"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let ports: Vec<i64> = s
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| num(p, &["port"]))
                        .collect();
                    for a in s
                        .get("addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        for p in &ports {
                            addrs.push(format!("{}:{p}", doc::str_at(a, &["ip"])));
                        }
                    }
                }
                let shown = if addrs.is_empty() {
                    "<none>".to_string()
                } else if addrs.len() > 3 {
                    format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
                } else {
                    addrs.join(",")
                };
                vec![name, shown, age(o, now)]
            }
            "EndpointSlice" => {
                let ports: Vec<String> = o
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| num(p, &["port"]).to_string())
                    .collect();
                let eps: Vec<String> = o
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        e.get("addresses")
                            .and_then(|a| a.get(0))
                            .and_then(Value::as_str)
                            .map(String::from)
                    })
                    .collect();
                let shown = if eps.len() > 3 {
                    format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
                } else if eps.is_empty() {
                    "<unset>".into()
                } else {
                    eps.join(",")
                };
                vec![
                    name,
                    doc::str_at(o, &["addressType"]).into(),
                    if ports.is_empty() {
                        "<unset>".into()
                    } else {
                        ports.join(",")
                    },
                    shown,
                    age(o, now),
                ]
            }
            "Namespace" => vec![
                name,
                doc::str_at(o, &["status", "phase"]).into(),
                age(o, now),
            ],
            "ConfigMap" => {
                let n = ["data", "binaryData"]
                    .iter()
                    .map(|f| o.get(*f).and_then(Value::as_object).map_or(0, Map::len))
                    .sum::<usize>();
                vec![name, n.to_string(), age(o, now)]
            }
            "Secret" => {
                let n = o.get("data").and_then(Value::as_object).map_or(0, Map::len);
                vec![
                    name,
                    doc::str_at(o, &["type"]).into(),
                    n.to_string(),
                    age(o, now),
                ]
            }
            "PersistentVolumeClaim" => {
                let modes = access_modes(
                    o.pointer("/status/accessModes")
                        .or_else(|| o.pointer("/spec/accessModes")),
                );
                vec![
                    name,
                    doc::str_at(o, &["status", "phase"]).into(),
                    doc::str_at(o, &["spec", "volumeName"]).into(),
                    o.pointer("/status/capacity/storage")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    modes,
                    doc::str_at(o, &["spec", "storageClassName"]).into(),
                    age(o, now),
                ]
            }
            "PersistentVolume" => {
                let claim = o
                    .pointer("/spec/claimRef")
                    .map(|c| {
                        format!(
                            "{}/{}",
                            doc::str_at(c, &["namespace"]),
                            doc::str_at(c, &["name"])
                        )
                    })
                    .unwrap_or_default();
                vec![
                    name,
                    o.pointer("/spec/capacity/storage")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    access_modes(o.pointer("/spec/accessModes")),
                    doc::str_at(o, &["spec", "persistentVolumeReclaimPolicy"]).into(),
                    doc::str_at(o, &["status", "phase"]).into(),
                    claim,
                    doc::str_at(o, &["spec", "storageClassName"]).into(),
                    age(o, now),
                ]
            }
            "Ingress" => {
                let hosts: Vec<&str> = doc::at(o, &["spec", "rules"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| doc::str_at(r, &["host"]))
                    .map(|h| if h.is_empty() { "*" } else { h })
                    .collect();
                let class = match doc::str_at(o, &["spec", "ingressClassName"]) {
                    "" => "<none>",
                    c => c,
                };
                let tls = doc::at(o, &["spec", "tls"]).is_some();
                vec![
                    name,
                    class.into(),
                    hosts.join(","),
                    String::new(),
                    if tls { "80, 443".into() } else { "80".into() },
                    age(o, now),
                ]
            }
            _ => super::engine_tables::row(info.kind, o, now, wide)
                .unwrap_or_else(|| vec![name, age(o, now)]),
        };
        if with_ns {
            row.insert(0, doc::namespace(o).to_string());
        }
        rows.push(row);
    }
    render_table(&rows)
}

fn access_modes(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn events_table(events: &[crate::engine::events::Event], now: Millis, with_ns: bool) -> String {
    let mut rows = vec![];
    let mut head = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if with_ns {
        head.insert(0, "NAMESPACE");
    }
    rows.push(head.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for e in events {
        let object = format!("{}/{}", e.object_kind.to_lowercase(), e.object_name);
        let mut row = vec![
            human_age(now - e.last),
            e.kind.clone(),
            e.reason.clone(),
            object,
            e.message.clone(),
        ];
        if e.count > 1 {
            row[0] = format!(
                "{} (x{} over {})",
                human_age(now - e.last),
                e.count,
                human_age(e.last - e.first)
            );
        }
        if with_ns {
            row.insert(0, e.namespace.clone());
        }
        rows.push(row);
    }
    render_table(&rows)
}

fn node_list(engine: &Engine, nodes: &[Value]) -> String {
    let state = engine.state();
    let mut rows = vec![
        [
            "NAME",
            "STATUS",
            "CPU",
            "MEMORY",
            "PODS",
            "CPU REQUESTS",
            "KUBELET",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for n in nodes {
        let name = doc::name(n);
        let pods: Vec<&Value> = state
            .kind("Pod")
            .values()
            .map(|s| &s.doc)
            .filter(|p| {
                doc::str_at(p, &["spec", "nodeName"]) == name
                    && crate::engine::controllers::replicaset::is_active(p)
            })
            .collect();
        let cpu_req: i64 = pods
            .iter()
            .map(|p| crate::engine::scheduler::pod_requests(p, false).0)
            .sum();
        let mut status = if crate::engine::scheduler::node_ready(n) {
            "Ready".to_string()
        } else {
            "NotReady".to_string()
        };
        if doc::at(n, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
            status.push_str(",SchedulingDisabled");
        }
        let kubelet = match state.down_nodes.get(name) {
            Some(t) => format!("stopped at {}", rfc3339(*t)),
            None => "running".into(),
        };
        rows.push(vec![
            name.to_string(),
            status,
            doc::str_at(n, &["status", "allocatable", "cpu"]).into(),
            doc::str_at(n, &["status", "allocatable", "memory"]).into(),
            format!(
                "{}/{}",
                pods.len(),
                doc::str_at(n, &["status", "allocatable", "pods"])
            ),
            doc::format_cpu(cpu_req),
            kubelet,
        ]);
    }
    render_table(&rows)
}

// ---- describe ----

fn kv_lines(label: &str, map: Option<&Value>, out: &mut String) {
    let entries: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if entries.is_empty() {
        out.push_str(&format!("{label:<20}<none>\n"));
        return;
    }
    for (i, e) in entries.iter().enumerate() {
        let l = if i == 0 {
            label.to_string()
        } else {
            String::new()
        };
        out.push_str(&format!("{l:<20}{e}\n"));
    }
}

fn describe(
    info: &KindInfo,
    o: &Value,
    events: &[crate::engine::events::Event],
    now: Millis,
) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| {
        out.push_str(&format!("{:<20}{v}\n", format!("{k}:")))
    };
    line(&mut out, "Name", doc::name(o).into());
    if info.namespaced {
        line(&mut out, "Namespace", doc::namespace(o).into());
    }
    line(
        &mut out,
        "CreationTimestamp",
        doc::str_at(o, &["metadata", "creationTimestamp"]).into(),
    );
    kv_lines("Labels:", doc::labels(o), &mut out);
    kv_lines(
        "Annotations:",
        doc::at(o, &["metadata", "annotations"]),
        &mut out,
    );
    match info.kind {
        "Deployment" => {
            line(
                &mut out,
                "Selector",
                selector_text(doc::at(o, &["spec", "selector"])),
            );
            line(
                &mut out,
                "Replicas",
                format!(
                    "{} desired | {} updated | {} total | {} available | {} unavailable",
                    num(o, &["spec", "replicas"]),
                    num(o, &["status", "updatedReplicas"]),
                    num(o, &["status", "replicas"]),
                    num(o, &["status", "availableReplicas"]),
                    num(o, &["status", "unavailableReplicas"])
                ),
            );
            let strategy = doc::str_at(o, &["spec", "strategy", "type"]);
            line(&mut out, "StrategyType", strategy.into());
            line(
                &mut out,
                "MinReadySeconds",
                num(o, &["spec", "minReadySeconds"]).to_string(),
            );
            if strategy == "RollingUpdate" {
                let ru = |f: &str| match doc::at(o, &["spec", "strategy", "rollingUpdate", f]) {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "25%".into(),
                };
                line(
                    &mut out,
                    "RollingUpdateStrategy",
                    format!(
                        "{} max unavailable, {} max surge",
                        ru("maxUnavailable"),
                        ru("maxSurge")
                    ),
                );
            }
            let (c, i) = containers_images(o, &["spec", "template", "spec"]);
            out.push_str(&format!(
                "Pod Template:\n  Containers: {c}\n  Images:     {i}\n"
            ));
            conditions(
                o,
                &["Type", "Status", "Reason"],
                &["type", "status", "reason"],
                &mut out,
            );
        }
        "Pod" => {
            let (status, ready, total, restarts) = pod_status(o);
            line(
                &mut out,
                "Node",
                format!(
                    "{}/{}",
                    doc::str_at(o, &["spec", "nodeName"]),
                    doc::str_at(o, &["status", "hostIP"])
                ),
            );
            line(&mut out, "Status", status);
            line(&mut out, "IP", doc::str_at(o, &["status", "podIP"]).into());
            line(
                &mut out,
                "Ready",
                format!("{ready}/{total} (restarts {restarts})"),
            );
            if let Some(owner) = doc::at(o, &["metadata", "ownerReferences"]).and_then(|r| r.get(0))
            {
                line(
                    &mut out,
                    "Controlled By",
                    format!(
                        "{}/{}",
                        doc::str_at(owner, &["kind"]),
                        doc::str_at(owner, &["name"])
                    ),
                );
            }
            for (title, field, status_field) in [
                ("Init Containers", "initContainers", "initContainerStatuses"),
                ("Containers", "containers", "containerStatuses"),
            ] {
                let specs = doc::at(o, &["spec", field])
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if specs.is_empty() {
                    continue;
                }
                out.push_str(&format!("{title}:\n"));
                let statuses = doc::at(o, &["status", status_field])
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, c) in specs.iter().enumerate() {
                    out.push_str(&format!(
                        "  {}:\n    Image:          {}\n",
                        doc::str_at(c, &["name"]),
                        doc::str_at(c, &["image"])
                    ));
                    if let Some(s) = statuses.get(i) {
                        let state = s
                            .get("state")
                            .and_then(Value::as_object)
                            .and_then(|m| m.iter().next());
                        if let Some((k, v)) = state {
                            let mut state_name = k.clone();
                            if let Some(first) = state_name.get_mut(0..1) {
                                first.make_ascii_uppercase();
                            }
                            out.push_str(&format!("    State:          {state_name}\n"));
                            for f in ["reason", "message", "startedAt", "finishedAt", "exitCode"] {
                                if let Some(x) = v.get(f) {
                                    let shown = x
                                        .as_str()
                                        .map(String::from)
                                        .unwrap_or_else(|| x.to_string());
                                    out.push_str(&format!(
                                        "      {:<14}{shown}\n",
                                        format!("{f}:")
                                    ));
                                }
                            }
                        }
                        if let Some((k, v)) = s
                            .pointer("/lastState")
                            .and_then(Value::as_object)
                            .and_then(|m| m.iter().next())
                        {
                            out.push_str(&format!(
                                "    Last State:     {k} ({} exit {})\n",
                                doc::str_at(v, &["reason"]),
                                num(v, &["exitCode"])
                            ));
                        }
                        out.push_str(&format!(
                            "    Ready:          {}\n    Restart Count:  {}\n",
                            s.get("ready").and_then(Value::as_bool).unwrap_or(false),
                            num(s, &["restartCount"])
                        ));
                    }
                    for probe in ["livenessProbe", "readinessProbe"] {
                        if let Some(p) = c.get(probe) {
                            out.push_str(&format!(
                                "    {}: delay={}s period={}s #success={} #failure={}\n",
                                if probe == "livenessProbe" {
                                    "Liveness "
                                } else {
                                    "Readiness"
                                },
                                num(p, &["initialDelaySeconds"]),
                                doc::i64_at(p, &["periodSeconds"]).unwrap_or(10),
                                doc::i64_at(p, &["successThreshold"]).unwrap_or(1),
                                doc::i64_at(p, &["failureThreshold"]).unwrap_or(3)
                            ));
                        }
                    }
                }
            }
            conditions(o, &["Type", "Status"], &["type", "status"], &mut out);
        }
        "Node" => {
            conditions(
                o,
                &["Type", "Status", "Reason", "Message"],
                &["type", "status", "reason", "message"],
                &mut out,
            );
            let taints: Vec<String> = doc::at(o, &["spec", "taints"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| {
                    let v = doc::str_at(t, &["value"]);
                    let kv = if v.is_empty() {
                        doc::str_at(t, &["key"]).to_string()
                    } else {
                        format!("{}={v}", doc::str_at(t, &["key"]))
                    };
                    format!("{kv}:{}", doc::str_at(t, &["effect"]))
                })
                .collect();
            line(
                &mut out,
                "Taints",
                if taints.is_empty() {
                    "<none>".into()
                } else {
                    taints.join(", ")
                },
            );
            line(
                &mut out,
                "Unschedulable",
                (doc::at(o, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true))
                    .to_string(),
            );
            for section in ["capacity", "allocatable"] {
                let mut title = section.to_string();
                if let Some(first) = title.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                out.push_str(&format!("{title}:\n"));
                for (k, v) in doc::at(o, &["status", section])
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    out.push_str(&format!(
                        "  {:<19}{}\n",
                        format!("{k}:"),
                        v.as_str().unwrap_or_default()
                    ));
                }
            }
            line(
                &mut out,
                "PodCIDR",
                doc::str_at(o, &["spec", "podCIDR"]).into(),
            );
        }
        "Service" => {
            line(
                &mut out,
                "Selector",
                doc::at(o, &["spec", "selector"])
                    .map(crate::engine::labels::Selector::from_map)
                    .map(|s| s.to_text())
                    .unwrap_or_else(|| "<none>".into()),
            );
            line(&mut out, "Type", doc::str_at(o, &["spec", "type"]).into());
            line(
                &mut out,
                "IP",
                doc::str_at(o, &["spec", "clusterIP"]).into(),
            );
            if let Some(ip) =
                doc::at(o, &["status", "loadBalancer", "ingress"]).and_then(|i| i.get(0))
            {
                line(
                    &mut out,
                    "LoadBalancer Ingress",
                    doc::str_at(ip, &["ip"]).into(),
                );
            }
            for p in doc::at(o, &["spec", "ports"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let pname = match doc::str_at(p, &["name"]) {
                    "" => "<unset>",
                    n => n,
                };
                line(
                    &mut out,
                    "Port",
                    format!(
                        "{pname}  {}/{}",
                        num(p, &["port"]),
                        doc::str_at(p, &["protocol"])
                    ),
                );
                let target = p
                    .get("targetPort")
                    .map(|t| {
                        t.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| t.to_string())
                    })
                    .unwrap_or_default();
                line(
                    &mut out,
                    "TargetPort",
                    format!("{target}/{}", doc::str_at(p, &["protocol"])),
                );
                if let Some(np) = doc::i64_at(p, &["nodePort"]) {
                    line(
                        &mut out,
                        "NodePort",
                        format!("{pname}  {np}/{}", doc::str_at(p, &["protocol"])),
                    );
                }
            }
        }
        _ => {
            for section in ["spec", "data", "status"] {
                if let Some(v) = o.get(section) {
                    let mut title = section.to_string();
                    if let Some(first) = title.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    out.push_str(&format!("{title}:\n"));
                    for l in to_yaml(v).lines() {
                        out.push_str(&format!("  {l}\n"));
                    }
                }
            }
        }
    }
    let mine: Vec<&crate::engine::events::Event> = events
        .iter()
        .filter(|e| {
            e.object_kind == info.kind
                && e.object_name == doc::name(o)
                && (!info.namespaced || e.namespace == doc::namespace(o))
        })
        .collect();
    if mine.is_empty() {
        out.push_str("Events:             <none>\n");
    } else {
        out.push_str("Events:\n");
        let mut rows = vec![vec![
            "  Type".to_string(),
            "Reason".into(),
            "Age".into(),
            "From".into(),
            "Message".into(),
        ]];
        rows.push(vec![
            "  ----".to_string(),
            "------".into(),
            "----".into(),
            "----".into(),
            "-------".into(),
        ]);
        for e in mine {
            let age = if e.count > 1 {
                format!(
                    "{} (x{} over {})",
                    human_age(now - e.last),
                    e.count,
                    human_age(e.last - e.first)
                )
            } else {
                human_age(now - e.last)
            };
            rows.push(vec![
                format!("  {}", e.kind),
                e.reason.clone(),
                age,
                e.source.clone(),
                e.message.clone(),
            ]);
        }
        out.push_str(&render_table(&rows));
    }
    out
}

fn conditions(o: &Value, titles: &[&str], fields: &[&str], out: &mut String) {
    let conds = doc::at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conds.is_empty() {
        return;
    }
    out.push_str("Conditions:\n");
    let mut rows = vec![titles.iter().map(|t| format!("  {t}")).collect::<Vec<_>>()];
    rows.push(
        titles
            .iter()
            .map(|t| format!("  {}", "-".repeat(t.len())))
            .collect(),
    );
    for c in conds {
        rows.push(
            fields
                .iter()
                .map(|f| format!("  {}", doc::str_at(&c, &[f])))
                .collect(),
        );
    }
    out.push_str(&render_table(&rows));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_output_quotes_what_would_change_type() {
        let v = json!({"a": "1", "b": [{"c": "x", "d": true}], "e": {}, "f": "yes"});
        assert_eq!(
            to_yaml(&v),
            "a: \"1\"\nb:\n- c: x\n  d: true\ne: {}\nf: \"yes\"\n"
        );
    }

    #[test]
    fn pod_status_reads_like_kubectl() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(pod_status(&pod), ("CrashLoopBackOff".to_string(), 0, 1, 2));
        let init = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}, "status": {"phase": "Pending",
            "initContainerStatuses": [{"state": {"running": {}}}], "containerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(pod_status(&init).0, "Init:0/1");
    }
}
