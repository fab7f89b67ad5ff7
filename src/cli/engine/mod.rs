//! `reconcile engine …`: drive and inspect the built-in cluster, kubectl style.
//!
//! Files: `get` resolves resource arguments (`deploy,rs`, `all`, `TYPE/NAME`) and prints
//! (kubectl's columns live in [`crate::tables`]), `describe/` kubectl's descriptions, `output`
//! the `-o yaml|json` printers, `manifests` reads `-f` files.

mod describe;
mod get;
mod logs;
mod manifests;
mod output;
mod request;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use super::target::{self, Access};
use crate::engine::clock::{Millis, format_duration, parse_duration, rfc3339};
use crate::engine::images::ImageBehavior;
use crate::engine::kinds::{self, KindInfo};
use crate::engine::served::Served;
use crate::engine::{Engine, NodeSpec, Propagation, doc};
use crate::tables;

/// `reconcile engine` arguments.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// The engine's state file (same as `--target engine:PATH`; default: the repository's
    /// `.reconcile/engine.db`).
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// Where the cluster is: `engine` (default), `engine:PATH` (or `RECONCILE_TARGET`).
    #[arg(long, global = true)]
    pub target: Option<String>,
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

/// Output formats of `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// The events as JSON.
    Json,
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
    /// List objects (`get pods`, `get deploy,rs,pods`, `get all`, `get deploy web -o yaml`,
    /// `get deploy/web svc/web`, `get svc -A`).
    Get {
        /// Kinds, comma-separated (`pods`, `deploy,rs`, `all`), then names; or `TYPE/NAME`s.
        #[arg(required = true)]
        resources: Vec<String>,
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
        /// Add a LABELS column.
        #[arg(long)]
        show_labels: bool,
        /// Leave out the title rows.
        #[arg(long)]
        no_headers: bool,
        /// Keep `metadata.managedFields` in `-o yaml|json` (hidden by default, as kubectl).
        #[arg(long)]
        show_managed_fields: bool,
        /// After the table, let virtual time pass and print a row for every object that
        /// changes, until `--timeout`.
        #[arg(short = 'w', long)]
        watch: bool,
        /// How much virtual time `-w` lets pass.
        #[arg(long, default_value = "1m", requires = "watch")]
        timeout: String,
    },
    /// Show objects in detail with their events (`describe deploy web`, `describe pods`).
    Describe {
        /// Kinds, comma-separated, then names (none: every object of the kinds); or
        /// `TYPE/NAME`s.
        #[arg(required = true)]
        resources: Vec<String>,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector (`app=web,tier!=db`).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Print the Events section (default: only when one object is described).
        #[arg(long)]
        show_events: Option<bool>,
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
        /// Output format: a table, or JSON (`reconcile schema events`).
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<EventsFormat>,
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
    /// Serve the engine over the Kubernetes API (HTTPS, bearer token) for kubectl and
    /// other clients, with virtual time following the wall clock. The kubeconfig's user is an
    /// admin (`system:masters`); `--token-auth-file` users are authorized by the RBAC objects
    /// stored in the engine.
    Serve {
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: String,
        /// Where to write the kubeconfig (default: `kubeconfig` beside the state file).
        #[arg(long)]
        kubeconfig_out: Option<PathBuf>,
        /// How many virtual seconds pass per wall-clock second.
        #[arg(long, default_value = "1")]
        speed: f64,
        /// Static bearer tokens, kube-apiserver's CSV format: `token,user,uid,"group1,group2"`.
        #[arg(long, value_name = "FILE")]
        token_auth_file: Option<PathBuf>,
    },
    /// Cordon a node and evict its pods as `kubectl drain --ignore-daemonsets`: evictions a
    /// PodDisruptionBudget refuses are retried every 5 s of virtual time (the cluster runs
    /// meanwhile) until `--timeout`.
    Drain {
        /// Node name.
        name: String,
        /// Also evict pods no controller manages.
        #[arg(long)]
        force: bool,
        /// Virtual time to keep retrying evictions a PodDisruptionBudget refuses.
        #[arg(long, default_value = "5m")]
        timeout: String,
    },
    /// Print a container's simulated output (`logs web-abc12`, `logs deploy/web`): its
    /// image and version at start, then its requests (or time checks), and its exit.
    Logs {
        /// `POD`, `pod/NAME`, or a workload (`deploy/NAME`, `rs/…`, `sts/…`, `job/…`).
        #[arg(value_name = "POD")]
        pod: String,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Container (needed when the pod has several).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Only the last N lines (-1: all).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        tail: i64,
        /// Only lines newer than this (`30s`, `5m`).
        #[arg(long)]
        since: Option<String>,
        /// The previous run of the container (after a crash).
        #[arg(short = 'p', long)]
        previous: bool,
        /// Prefix each line with its time.
        #[arg(long)]
        timestamps: bool,
        /// Follow: let virtual time pass (1 s steps) and print new lines as the container
        /// prints them, until `--timeout` or the pod is gone.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How much virtual time `-f` lets pass.
        #[arg(long, default_value = "1m", requires = "follow")]
        timeout: String,
    },
    /// Send simulated requests through a Service (`request web`) or a NodePort on any node
    /// (`request worker-1:30080`) and show which pods and versions answered.
    Request {
        /// `SERVICE`, `svc/SERVICE` or `NODE:PORT`.
        #[arg(value_name = "SERVICE")]
        service: String,
        /// Namespace of the Service.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Number of requests.
        #[arg(long = "count", short = 'c', default_value_t = 100)]
        count: usize,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<EventsFormat>,
    },
    /// Set the desired replicas of anything with a scale subresource, as `kubectl scale`:
    /// Deployments, ReplicaSets, StatefulSets, and custom resources whose CRD declares
    /// `subresources.scale` (`scale deploy/web --replicas 5`, `scale widgets w1 --replicas 0`).
    Scale {
        /// `TYPE/NAME`, or `TYPE` followed by the name.
        #[arg(required = true, num_args = 1..=2)]
        resource: Vec<String>,
        /// The new desired replica count.
        #[arg(long, required = true)]
        replicas: i64,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
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
    /// Cordon a node and evict its pods (same as `engine drain`).
    Drain {
        /// Node name.
        name: String,
        /// Also evict pods no controller manages.
        #[arg(long)]
        force: bool,
        /// Virtual time to keep retrying evictions a PodDisruptionBudget refuses.
        #[arg(long, default_value = "5m")]
        timeout: String,
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
        /// CPU one pod uses carrying its Service's whole load, shared among the ready pods
        /// behind the Service; drives the autoscaler (`250m`).
        #[arg(long)]
        cpu: Option<String>,
        /// Run time of run-to-completion containers (Jobs, init containers).
        #[arg(long)]
        run: Option<String>,
        /// The line logged per request; `{time}`, `{version}`, `{image}`, `{pod}`,
        /// `{status}`, `{latency}` are replaced.
        #[arg(long)]
        log: Option<String>,
    },
    /// List configured images.
    List,
    /// Forget an image's configuration.
    Unset {
        /// Image.
        image: String,
    },
}

/// Prints the events of a namespace (or all), optionally of one `KIND/NAME` object.
fn print_events(
    engine: &mut Engine,
    namespace: &str,
    all_namespaces: bool,
    for_object: Option<&str>,
    format: Option<EventsFormat>,
) -> anyhow::Result<()> {
    let ns = (!all_namespaces).then_some(namespace);
    let mut events = engine.events(ns)?;
    if let Some(target) = for_object {
        let (k, n) = target.split_once('/').context("--for takes KIND/NAME")?;
        let info = kind_info(&*engine.served()?, k)?;
        events.retain(|e| e.object_kind == info.kind && e.object_name == n);
    }
    if format == Some(EventsFormat::Json) {
        let output = crate::reports::EventsOutput {
            items: events.iter().map(crate::reports::EventOutput::of).collect(),
        };
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else if events.is_empty() {
        eprintln!("No events found.");
    } else {
        print!(
            "{}",
            tables::events_table(&events, engine.now_millis(), all_namespaces)
        );
    }
    Ok(())
}

impl EngineCommand {
    /// Whether the command only reads the cluster (it then never creates a state file).
    fn access(&self) -> Access {
        match self {
            // Watching and following let virtual time pass: that writes.
            EngineCommand::Get { watch: true, .. } | EngineCommand::Logs { follow: true, .. } => {
                Access::Write
            }
            EngineCommand::Get { .. }
            | EngineCommand::Describe { .. }
            | EngineCommand::Events { .. }
            | EngineCommand::Logs { .. }
            | EngineCommand::Request { .. }
            | EngineCommand::Now
            | EngineCommand::Nodes {
                command: NodesCommand::List,
            }
            | EngineCommand::Images {
                command: ImagesCommand::List,
            } => Access::Read,
            _ => Access::Write,
        }
    }
}

/// Runs one engine command; returns the exit code.
pub fn run(args: EngineArgs) -> anyhow::Result<i32> {
    let state = target::locate_engine(args.state.as_deref(), args.target.as_deref())?;
    if let EngineCommand::Serve {
        listen,
        kubeconfig_out,
        speed,
        token_auth_file,
    } = &args.command
    {
        let options = serve::Options {
            state: &state.path,
            listen,
            kubeconfig_out: kubeconfig_out.as_deref(),
            speed: *speed,
            token_auth_file: token_auth_file.as_deref(),
        };
        return serve::run(&options);
    }
    let mut engine = target::open(&state, args.command.access())?;
    match args.command {
        EngineCommand::Get {
            resources,
            namespace,
            all_namespaces,
            selector,
            output,
            show_labels,
            no_headers,
            show_managed_fields,
            watch,
            timeout,
        } => {
            // Events are a log beside the objects, not stored objects: `get events` is the
            // events command, as kubectl users type it.
            if let [word] = resources.as_slice()
                && matches!(word.as_str(), "events" | "event" | "ev")
            {
                let format = match output {
                    None => None,
                    Some(GetFormat::Json) => Some(EventsFormat::Json),
                    Some(other) => anyhow::bail!(
                        "-o {} for events is not supported yet; use -o json",
                        format!("{other:?}").to_lowercase()
                    ),
                };
                print_events(&mut engine, &namespace, all_namespaces, None, format)?;
                return Ok(0);
            }
            let scope = get::Scope {
                namespace: &namespace,
                all_namespaces,
                selector: selector.as_deref(),
            };
            let columns = get::Columns {
                show_labels,
                no_headers,
                show_managed_fields,
            };
            if watch {
                let timeout_ms = parse_duration(&timeout).map_err(anyhow::Error::msg)?;
                return get::watch(&mut engine, &resources, scope, output, columns, timeout_ms);
            }
            return get::run(&mut engine, &resources, scope, output, columns);
        }
        EngineCommand::Describe {
            resources,
            namespace,
            all_namespaces,
            selector,
            show_events,
        } => {
            let scope = get::Scope {
                namespace: &namespace,
                all_namespaces,
                selector: selector.as_deref(),
            };
            return describe::run(&mut engine, &resources, scope, show_events);
        }
        EngineCommand::Events {
            namespace,
            all_namespaces,
            for_object,
            output,
        } => print_events(
            &mut engine,
            &namespace,
            all_namespaces,
            for_object.as_deref(),
            output,
        )?,
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
                print!("{}", tables::node_list(&engine, &nodes));
            }
            NodesCommand::Cordon { name } => {
                engine.cordon(&name, true)?;
                println!("node/{name} cordoned");
            }
            NodesCommand::Uncordon { name } => {
                engine.cordon(&name, false)?;
                println!("node/{name} uncordoned");
            }
            NodesCommand::Drain {
                name,
                force,
                timeout,
            } => return drain(&mut engine, &name, force, &timeout),
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
                log,
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
                    log: log.or(current.log),
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
            for obj in manifests::read(&file)? {
                let created = engine.create(&obj);
                for warning in engine.take_warnings() {
                    eprintln!("Warning: {warning}");
                }
                let created = created.with_context(|| file.display().to_string())?;
                println!("{} created", object_ref(&created));
            }
        }
        EngineCommand::Apply { file } => {
            for obj in manifests::read(&file)? {
                let before = kinds::resolve(
                    doc::str_at(&obj, &["apiVersion"]),
                    doc::str_at(&obj, &["kind"]),
                )
                .ok()
                .and_then(|info| {
                    engine
                        .get(
                            info.key,
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
                let applied = engine.apply(&obj);
                for warning in engine.take_warnings() {
                    eprintln!("Warning: {warning}");
                }
                let after = applied.with_context(|| file.display().to_string())?;
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
            let info = kind_info(&*engine.served()?, &kind)?;
            let propagation = match cascade {
                Cascade::Background => Propagation::Background,
                Cascade::Foreground => Propagation::Foreground,
                Cascade::Orphan => Propagation::Orphan,
            };
            if !engine.delete(info.key, &namespace, &name, propagation)? {
                return Err(not_found(info, &name).into());
            }
            println!("{}/{name} deleted", info.resource_prefix());
        }
        EngineCommand::Drain {
            name,
            force,
            timeout,
        } => return drain(&mut engine, &name, force, &timeout),
        EngineCommand::Logs {
            pod,
            namespace,
            container,
            tail,
            since,
            previous,
            timestamps,
            follow,
            timeout,
        } => {
            let request = logs::Request {
                target: &pod,
                namespace: &namespace,
                container: container.as_deref(),
                tail,
                since: since.as_deref(),
                previous,
                timestamps,
            };
            if follow {
                let timeout_ms = parse_duration(&timeout).map_err(anyhow::Error::msg)?;
                return logs::follow(&mut engine, &request, timeout_ms);
            }
            return logs::run(&mut engine, &request);
        }
        EngineCommand::Request {
            service,
            namespace,
            count,
            output,
        } => {
            return request::run(
                &mut engine,
                &service,
                &namespace,
                count,
                output == Some(EventsFormat::Json),
            );
        }
        EngineCommand::Scale {
            resource,
            replicas,
            namespace,
        } => {
            let (word, name) = match resource.as_slice() {
                [one] => one
                    .split_once('/')
                    .map(|(w, n)| (w.to_string(), n.to_string()))
                    .with_context(|| {
                        format!("{one:?}: expected TYPE/NAME, or TYPE and NAME as two arguments")
                    })?,
                [word, name, ..] => (word.clone(), name.clone()),
                [] => bail!("a resource to scale is required (TYPE/NAME)"),
            };
            let info = kind_info(&*engine.served()?, &word)?;
            if engine.scale(info, &namespace, &name, replicas)?.is_none() {
                return Err(not_found(info, &name).into());
            }
            println!("{}/{name} scaled", info.resource_prefix());
        }
        EngineCommand::Undo {
            name,
            namespace,
            to_revision,
        } => {
            let rev = engine.rollout_undo(&namespace, &name, to_revision)?;
            println!("deployment.apps/{name} rolled back (to the template of revision {rev})");
        }
        EngineCommand::Serve { .. } => unreachable!("serve returns before the engine is opened"),
    }
    Ok(0)
}

/// `engine drain`: prints what kubectl drain prints; exit 1 when pods remain at the timeout.
fn drain(engine: &mut Engine, name: &str, force: bool, timeout: &str) -> anyhow::Result<i32> {
    use crate::engine::DrainStep;
    let timeout_ms = parse_duration(timeout).map_err(anyhow::Error::msg)?;
    let drained = engine.drain(name, force, timeout_ms)?;
    println!("node/{name} cordoned");
    let pod_words = |pod: &str| {
        let (ns, pn) = pod.split_once('/').unwrap_or(("default", pod));
        (ns.to_string(), pn.to_string())
    };
    for step in &drained.steps {
        match step {
            DrainStep::Evicting(pod) => println!("evicting pod {pod}"),
            DrainStep::Blocked { pod, budget } => {
                let (ns, pn) = pod_words(pod);
                println!(
                    "error when evicting pods/\"{pn}\" -n \"{ns}\" (will retry after {}): {} (PodDisruptionBudget {budget})",
                    format_duration(crate::engine::DRAIN_RETRY),
                    crate::engine::controllers::disruption::BLOCKED
                );
            }
            DrainStep::Evicted(pod) => println!("pod/{} evicted", pod_words(pod).1),
        }
    }
    if drained.remaining.is_empty() {
        println!("node/{name} drained");
        return Ok(0);
    }
    let errors: Vec<String> = drained
        .remaining
        .iter()
        .map(|pod| {
            let (ns, pn) = pod_words(pod);
            format!(
                "error when evicting pods/\"{pn}\" -n \"{ns}\": global timeout reached: {}",
                format_duration(timeout_ms)
            )
        })
        .collect();
    eprintln!(
        "error: unable to drain node \"{name}\" due to error: [{}]; the node stays cordoned",
        errors.join(", ")
    );
    Ok(1)
}

/// The kind a resource word names among what the engine serves now, as kubectl resolves it
/// (its warning for a short name that another group's resource has too goes to stderr).
fn kind_info(served: &Served, word: &str) -> anyhow::Result<&'static KindInfo> {
    let (info, warning) = served
        .resolve_word(word)
        .with_context(|| format!("the server doesn't have a resource type \"{word}\""))?;
    for line in warning.iter().flat_map(|w| w.lines()) {
        eprintln!("Warning: {line}");
    }
    Ok(info)
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
