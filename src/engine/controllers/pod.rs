//! The kubelet of every simulated node: pulls images, runs init containers, starts
//! containers, evaluates probes, restarts crashed containers with Kubernetes' back-off and
//! finishes terminating pods.
//!
//! A pod's progress is kept in [`PodSim`]; its `status` is rendered from it. Probe outcomes
//! are computed from the image's behaviour, not sampled: the first readiness success is the
//! first probe instant after the program is up, so the result does not depend on how often
//! the engine wakes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, format_duration, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::images::{ImageBehavior, behavior_of};
use crate::engine::store::{State, Stored};

/// Where a pod is in its life on a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Not bound to a node yet.
    #[default]
    Unscheduled,
    /// Waiting for volumes (a missing ConfigMap or Secret).
    Mounting,
    /// Pulling images.
    Pulling,
    /// Waiting to retry a failed pull.
    PullBackOff,
    /// Running init container number `init_done`.
    Init,
    /// Waiting to restart a failed init container.
    InitBackOff,
    /// A container's configuration references a missing ConfigMap or Secret.
    ConfigError,
    /// Main containers started.
    Running,
    /// All containers finished (restartPolicy Never/OnFailure).
    Finished,
    /// Being stopped after deletion.
    Terminating,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// When it started.
    pub started: Millis,
    /// When it ended.
    pub finished: Millis,
    /// `Error`, `Completed`.
    pub reason: String,
    /// Exit code.
    pub code: i32,
}

/// One main container's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSim {
    /// Running since.
    pub started_at: Option<Millis>,
    /// Times restarted.
    pub restarts: u32,
    /// Exits counted for the back-off (reset after a long healthy run).
    pub exits: u32,
    /// Waiting in CrashLoopBackOff until then.
    pub backoff_until: Option<Millis>,
    /// The current back-off delay.
    pub backoff_ms: Millis,
    /// The previous run's end.
    pub last_exit: Option<Exit>,
    /// Finished for good (restartPolicy Never/OnFailure).
    pub finished: Option<Exit>,
    /// Readiness.
    pub ready: bool,
    /// A failed readiness probe was reported for the current run.
    pub unhealthy_reported: bool,
}

/// The kubelet's private state of one pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodSim {
    /// Current stage.
    pub stage: Stage,
    /// When the current stage's wait ends.
    pub until: Option<Millis>,
    /// Failed pulls in a row.
    pub pull_failures: u32,
    /// Completed init containers.
    pub init_done: usize,
    /// Restarts of the current init container.
    pub init_restarts: u32,
    /// Exits of the current init container (for the back-off).
    pub init_exits: u32,
    /// When the current init container started.
    pub init_started: Option<Millis>,
    /// The last init failure.
    pub init_last_exit: Option<Exit>,
    /// Main containers, in spec order.
    pub containers: Vec<ContainerSim>,
    /// When the pod was bound.
    pub scheduled_at: Option<Millis>,
    /// When init containers completed.
    pub initialized_at: Option<Millis>,
    /// Pod readiness.
    pub ready: bool,
    /// Last change of readiness (the Ready condition's lastTransitionTime).
    pub ready_changed_at: Option<Millis>,
    /// The node controller marked the pod not ready because its node stopped reporting.
    pub node_lost: bool,
    /// Pod IP.
    pub ip: String,
    /// Node IP.
    pub host_ip: String,
    /// Why containers cannot be created (reason, message).
    pub waiting: Option<(String, String)>,
    /// Nothing changes before `next_check` unless something outside the pod changes
    /// (deletion, node loss, image configuration); the kubelet skips settled pods.
    pub settled: bool,
    /// The next instant the pod changes on its own.
    pub next_check: Option<Millis>,
}

/// Probe timing of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// initialDelaySeconds.
    pub delay: Millis,
    /// periodSeconds.
    pub period: Millis,
    /// successThreshold.
    pub success: i64,
    /// failureThreshold.
    pub failure: i64,
}

impl Probe {
    /// The probe of a container (`readinessProbe`, `livenessProbe`), with Kubernetes' defaults.
    pub fn of(container: &Value, field: &str) -> Option<Probe> {
        let p = container.get(field)?;
        let num = |k: &str, d: i64| p.get(k).and_then(Value::as_i64).unwrap_or(d);
        Some(Probe {
            delay: num("initialDelaySeconds", 0) * SECOND,
            period: num("periodSeconds", 10).max(1) * SECOND,
            success: num("successThreshold", 1).max(1),
            failure: num("failureThreshold", 3).max(1),
        })
    }

    /// The instant of probe number `k` for a container started at `started`.
    fn at(&self, started: Millis, k: i64) -> Millis {
        started + self.delay + k * self.period
    }

    /// First probe index at or after `t`.
    fn first_index_at_or_after(&self, started: Millis, t: Millis) -> i64 {
        let t0 = self.at(started, 0);
        if t <= t0 {
            0
        } else {
            (t - t0 + self.period - 1) / self.period
        }
    }
}

/// Kubernetes' container restart back-off for the `exits`-th exit: the first restart is
/// immediate, then 10 s doubling up to 5 minutes.
pub fn restart_backoff(exits: u32) -> Millis {
    if exits <= 1 {
        return 0;
    }
    (10 * SECOND)
        .saturating_mul(1 << (exits - 2).min(10))
        .min(300 * SECOND)
}

/// The image pull back-off after `failures` failed pulls: 10 s doubling up to 5 minutes.
pub fn pull_backoff(failures: u32) -> Millis {
    (10 * SECOND)
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(300 * SECOND)
}

/// How long a stopping container takes to exit after SIGTERM.
const STOP_MS: Millis = SECOND;

/// Runs every live node's kubelet once.
///
/// Pods are independent of each other within one pass, so big clusters are worked on by
/// every core; the changes are applied in the store's order, so the result is the same.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    // Most pods have nothing to do at most instants: they are set aside first, cheaply, so
    // a write that touches no pod does not fan 10,000 no-op passes out over threads.
    let mut pods: Vec<&Stored> = Vec::new();
    for stored in state.kind("Pod").values() {
        match idle(state, stored, now) {
            Some(wake) => {
                if let Some(t) = wake {
                    out.wake_at(t);
                }
            }
            None => pods.push(stored),
        }
    }
    let passes = crate::engine::par::map(&pods, |stored| {
        let mut one = Changes::default();
        sync_pod(state, stored, now, &mut one);
        one
    });
    for pass in passes {
        if let Some(w) = pass.wake {
            out.wake_at(w);
        }
        out.list.extend(pass.list);
    }
}

/// `Some(wake)` when the kubelet has nothing to do for this pod now (unbound, on a node
/// that is down, settled until `wake`); `None` when [`sync_pod`] must look at it.
fn idle(state: &State, stored: &Stored, now: Millis) -> Option<Option<Millis>> {
    let node = stored.facts.node.as_str();
    if node.is_empty() || state.down_nodes.contains_key(node) {
        return Some(None);
    }
    let Some(sim) = &stored.sim else {
        return Some(None);
    };
    let external = (stored.facts.deleting && sim.stage != Stage::Terminating) || sim.node_lost;
    if sim.settled && !external && sim.next_check.is_none_or(|t| now < t) {
        return Some(sim.next_check);
    }
    None
}

/// One kubelet step for one pod.
fn sync_pod(state: &State, stored: &Stored, now: Millis, out: &mut Changes) {
    let pod = &stored.doc;
    if let Some(wake) = idle(state, stored, now) {
        if let Some(t) = wake {
            out.wake_at(t);
        }
        return;
    }
    let Some(sim) = &stored.sim else { return };
    let mut kubelet = Kubelet {
        state,
        pod,
        now,
        events: Vec::new(),
        wake: None,
        remove: false,
    };
    let mut next = kubelet.advance(sim.clone());
    next.next_check = kubelet.wake;
    next.settled = !matches!(
        next.stage,
        Stage::Unscheduled | Stage::Mounting | Stage::ConfigError
    ) && next
        .waiting
        .as_ref()
        .is_none_or(|w| w.0 != "CreateContainerConfigError");
    if let Some(w) = kubelet.wake {
        out.wake_at(w);
    }
    let (ns, name) = (doc::namespace(pod).to_string(), doc::name(pod).to_string());
    for e in kubelet.events.drain(..) {
        out.event(e);
    }
    if kubelet.remove {
        out.push(Change::Remove {
            kind: "Pod",
            namespace: ns,
            name,
        });
        return;
    }
    if &next != sim {
        // The store ignores a status equal to the current one.
        out.push(Change::Status {
            kind: "Pod",
            namespace: ns.clone(),
            name: name.clone(),
            status: render_status(pod, &next),
        });
        out.push(Change::Sim {
            namespace: ns,
            name,
            sim: next,
        });
    }
}

struct Kubelet<'a> {
    state: &'a State,
    pod: &'a Value,
    now: Millis,
    events: Vec<NewEvent>,
    wake: Option<Millis>,
    remove: bool,
}

impl<'a> Kubelet<'a> {
    fn wake_at(&mut self, at: Millis) {
        if at > self.now {
            self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
        }
    }

    fn normal(&mut self, reason: &str, message: String) {
        self.events.push(NewEvent::normal(
            "kubelet",
            "Pod",
            doc::namespace(self.pod),
            doc::name(self.pod),
            reason,
            message,
        ));
    }

    fn warning(&mut self, reason: &str, message: String) {
        self.events.push(NewEvent::warning(
            "kubelet",
            "Pod",
            doc::namespace(self.pod),
            doc::name(self.pod),
            reason,
            message,
        ));
    }

    fn containers(&self, field: &str) -> &'a [Value] {
        doc::at(self.pod, &["spec", field])
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn behavior(&self, container: &Value) -> ImageBehavior {
        behavior_of(
            &self.state.images,
            container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
    }

    fn restart_policy(&self) -> &str {
        match doc::str_at(self.pod, &["spec", "restartPolicy"]) {
            "" => "Always",
            p => p,
        }
    }

    fn advance(&mut self, mut sim: PodSim) -> PodSim {
        let now = self.now;
        if doc::is_deleting(self.pod) && sim.stage != Stage::Terminating {
            for c in self.containers("containers") {
                self.normal(
                    "Killing",
                    format!("Stopping container {}", doc::str_at(c, &["name"])),
                );
            }
            let grace = doc::i64_at(self.pod, &["spec", "terminationGracePeriodSeconds"])
                .unwrap_or(30)
                * SECOND;
            sim.stage = Stage::Terminating;
            sim.until = Some(now + grace.min(STOP_MS));
            sim.ready = false;
            sim.ready_changed_at = Some(now);
            for c in &mut sim.containers {
                c.ready = false;
            }
        }
        if sim.node_lost {
            // The kubelet is back: it reports the pod's real state again.
            sim.node_lost = false;
        }
        for _ in 0..16 {
            let before = sim.clone();
            self.step(&mut sim);
            if self.remove || sim == before {
                break;
            }
        }
        self.update_readiness(&mut sim);
        sim
    }

    fn step(&mut self, sim: &mut PodSim) {
        let now = self.now;
        match sim.stage {
            Stage::Unscheduled => {
                sim.stage = Stage::Mounting;
            }
            Stage::Mounting => match self.missing_volume() {
                Some((volume, what)) => {
                    let msg = format!("MountVolume.SetUp failed for volume \"{volume}\" : {what}");
                    if sim.waiting.as_ref().map(|w| &w.1) != Some(&msg) {
                        self.warning("FailedMount", msg.clone());
                        sim.waiting = Some(("ContainerCreating".into(), msg));
                    }
                }
                None => {
                    sim.waiting = None;
                    self.start_pull(sim);
                }
            },
            Stage::Pulling => {
                if sim.until.is_some_and(|u| u > now) {
                    self.wake_at(sim.until.unwrap_or(now));
                    return;
                }
                let images = self.all_images();
                if let Some(missing) = images
                    .iter()
                    .find(|i| behavior_of(&self.state.images, i).missing)
                {
                    sim.pull_failures += 1;
                    self.warning(
                        "Failed",
                        format!(
                            "Failed to pull image \"{missing}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{missing}\": failed to resolve reference \"{missing}\": not found"
                        ),
                    );
                    self.warning("Failed", "Error: ErrImagePull".into());
                    let delay = pull_backoff(sim.pull_failures);
                    sim.stage = Stage::PullBackOff;
                    sim.until = Some(now + delay);
                    sim.waiting = Some((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image \"{missing}\""),
                    ));
                    self.normal("BackOff", format!("Back-off pulling image \"{missing}\""));
                    self.warning("Failed", "Error: ImagePullBackOff".into());
                    self.wake_at(now + delay);
                    return;
                }
                for image in images {
                    let took = format_duration(behavior_of(&self.state.images, &image).pull_ms);
                    self.normal("Pulled", format!("Successfully pulled image \"{image}\" in {took} ({took} including waiting)"));
                }
                sim.pull_failures = 0;
                sim.waiting = None;
                sim.until = None;
                sim.stage = Stage::Init;
                sim.init_started = None;
            }
            Stage::PullBackOff => {
                if sim.until.is_some_and(|u| u > now) {
                    self.wake_at(sim.until.unwrap_or(now));
                    return;
                }
                self.start_pull(sim);
            }
            Stage::Init | Stage::InitBackOff => self.step_init(sim),
            Stage::ConfigError => self.start_main(sim),
            Stage::Running => self.step_running(sim),
            Stage::Finished => {}
            Stage::Terminating => match sim.until {
                Some(u) if u > now => self.wake_at(u),
                _ => self.remove = true,
            },
        }
    }

    fn all_images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for field in ["initContainers", "containers"] {
            for c in self.containers(field) {
                let image = doc::str_at(c, &["image"]).to_string();
                if !out.contains(&image) {
                    out.push(image);
                }
            }
        }
        out
    }

    fn start_pull(&mut self, sim: &mut PodSim) {
        let images = self.all_images();
        let mut took = 0;
        for image in &images {
            self.normal("Pulling", format!("Pulling image \"{image}\""));
            took = took.max(behavior_of(&self.state.images, image).pull_ms);
        }
        sim.stage = Stage::Pulling;
        sim.until = Some(self.now + took);
        sim.waiting = None;
        self.wake_at(self.now + took);
    }

    fn missing_volume(&self) -> Option<(String, String)> {
        let ns = doc::namespace(self.pod);
        for v in doc::at(self.pod, &["spec", "volumes"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = doc::str_at(v, &["name"]).to_string();
            let mut refs: Vec<(&str, &Value)> = Vec::new();
            if let Some(cm) = v.get("configMap") {
                refs.push(("ConfigMap", cm));
            }
            if let Some(s) = v.get("secret") {
                refs.push(("Secret", s));
            }
            for src in doc::at(v, &["projected", "sources"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(cm) = src.get("configMap") {
                    refs.push(("ConfigMap", cm));
                }
                if let Some(s) = src.get("secret") {
                    refs.push(("Secret", s));
                }
            }
            for (kind, r) in refs {
                let target = r
                    .get("name")
                    .or_else(|| r.get("secretName"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                if !optional && self.state.get(kind, ns, target).is_none() {
                    return Some((
                        name,
                        format!("{} \"{target}\" not found", kind.to_lowercase()),
                    ));
                }
            }
        }
        None
    }

    /// The first missing ConfigMap/Secret (or key) a container's environment refers to.
    fn config_error(&self, container: &Value) -> Option<String> {
        let ns = doc::namespace(self.pod);
        let lookup = |kind: &str, name: &str| self.state.get(kind, ns, name).map(|s| &s.doc);
        for e in container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (field, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
                let Some(r) = doc::at(e, &["valueFrom", field]) else {
                    continue;
                };
                if r.get("optional").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let name = doc::str_at(r, &["name"]);
                let key = doc::str_at(r, &["key"]);
                match lookup(kind, name) {
                    None => return Some(format!("{} \"{name}\" not found", kind.to_lowercase())),
                    Some(obj) => {
                        let has = ["data", "binaryData", "stringData"]
                            .iter()
                            .any(|d| doc::at(obj, &[d, key]).is_some());
                        if !has {
                            return Some(format!("couldn't find key {key} in {kind} {ns}/{name}"));
                        }
                    }
                }
            }
        }
        for e in container
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                let Some(r) = e.get(field) else { continue };
                if r.get("optional").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                let name = doc::str_at(r, &["name"]);
                if lookup(kind, name).is_none() {
                    return Some(format!("{} \"{name}\" not found", kind.to_lowercase()));
                }
            }
        }
        None
    }

    fn step_init(&mut self, sim: &mut PodSim) {
        let now = self.now;
        let inits = self.containers("initContainers");
        if sim.init_done >= inits.len() {
            sim.initialized_at.get_or_insert(now);
            sim.stage = Stage::ConfigError;
            sim.waiting = None;
            self.start_main(sim);
            return;
        }
        let c = &inits[sim.init_done];
        let cname = doc::str_at(c, &["name"]).to_string();
        let b = self.behavior(c);
        if sim.stage == Stage::InitBackOff {
            match sim.until {
                Some(u) if u > now => {
                    self.wake_at(u);
                    return;
                }
                _ => {
                    sim.init_restarts += 1;
                    sim.stage = Stage::Init;
                    sim.init_started = None;
                }
            }
        }
        let Some(started) = sim.init_started else {
            if let Some(err) = self.config_error(c) {
                if sim.waiting.as_ref().map(|w| &w.1) != Some(&err) {
                    self.warning("Failed", format!("Error: {err}"));
                    sim.waiting = Some(("CreateContainerConfigError".into(), err));
                }
                return;
            }
            sim.waiting = None;
            self.normal("Created", format!("Created container: {cname}"));
            self.normal("Started", format!("Started container {cname}"));
            sim.init_started = Some(now);
            let end = now + if b.crash { b.startup_ms } else { b.run_ms };
            sim.until = Some(end);
            self.wake_at(end);
            return;
        };
        match sim.until {
            Some(u) if u > now => self.wake_at(u),
            _ => {
                if b.crash {
                    sim.init_exits += 1;
                    sim.init_last_exit = Some(Exit {
                        started,
                        finished: now,
                        reason: "Error".into(),
                        code: 1,
                    });
                    let pod_id = self.pod_id();
                    let delay = restart_backoff(sim.init_exits);
                    if self.restart_policy() == "Never" {
                        sim.stage = Stage::Finished;
                        sim.init_started = None;
                        return;
                    }
                    if delay > 0 {
                        self.warning(
                            "BackOff",
                            format!("Back-off restarting failed container {cname} in pod {pod_id}"),
                        );
                    }
                    sim.stage = Stage::InitBackOff;
                    sim.init_started = None;
                    sim.until = Some(now + delay);
                    self.wake_at(now + delay);
                } else {
                    sim.init_done += 1;
                    sim.init_started = None;
                    sim.init_restarts = 0;
                    sim.init_exits = 0;
                    sim.init_last_exit = None;
                    sim.until = None;
                }
            }
        }
    }

    fn pod_id(&self) -> String {
        format!(
            "{}_{}({})",
            doc::name(self.pod),
            doc::namespace(self.pod),
            doc::uid(self.pod)
        )
    }

    fn start_main(&mut self, sim: &mut PodSim) {
        let containers = self.containers("containers");
        for c in containers {
            if let Some(err) = self.config_error(c) {
                if sim.waiting.as_ref().map(|w| &w.1) != Some(&err) {
                    self.warning("Failed", format!("Error: {err}"));
                    sim.waiting = Some(("CreateContainerConfigError".into(), err));
                }
                sim.stage = Stage::ConfigError;
                return;
            }
        }
        sim.waiting = None;
        sim.stage = Stage::Running;
        sim.until = None;
        sim.containers = containers.iter().map(|_| ContainerSim::default()).collect();
        for (i, c) in containers.iter().enumerate() {
            self.start_container(sim, i, c, false);
        }
    }

    fn start_container(&mut self, sim: &mut PodSim, i: usize, c: &Value, restart: bool) {
        let cname = doc::str_at(c, &["name"]).to_string();
        self.normal("Created", format!("Created container: {cname}"));
        self.normal("Started", format!("Started container {cname}"));
        let cs = &mut sim.containers[i];
        cs.started_at = Some(self.now);
        cs.backoff_until = None;
        cs.ready = false;
        cs.unhealthy_reported = false;
        if restart {
            cs.restarts += 1;
        }
    }

    fn step_running(&mut self, sim: &mut PodSim) {
        let now = self.now;
        let containers = self.containers("containers");
        let policy = self.restart_policy().to_string();
        let pod_id = self.pod_id();
        for (i, c) in containers.iter().enumerate() {
            if i >= sim.containers.len() {
                sim.containers.push(ContainerSim::default());
            }
            let cname = doc::str_at(c, &["name"]).to_string();
            let b = self.behavior(c);
            if sim.containers[i].finished.is_some() {
                continue;
            }
            if let Some(until) = sim.containers[i].backoff_until {
                if until > now {
                    self.wake_at(until);
                    continue;
                }
                self.start_container(sim, i, c, true);
            }
            let Some(started) = sim.containers[i].started_at else {
                continue;
            };
            let up_at = started + b.startup_ms;
            // When does this run end, and how?
            let mut end: Option<(Millis, &str, i32, bool)> = None; // (at, reason, code, by liveness)
            if b.crash {
                end = Some((up_at, "Error", 1, false));
            } else if policy != "Always" {
                end = Some((started + b.run_ms.max(b.startup_ms), "Completed", 0, false));
            }
            if let Some(live) = Probe::of(c, "livenessProbe") {
                let last_failure = live.at(started, live.failure - 1);
                if last_failure < up_at && end.is_none_or(|e| last_failure < e.0) {
                    end = Some((last_failure, "Error", 137, true));
                }
            }
            let readiness = Probe::of(c, "readinessProbe");
            if let Some(probe) = readiness {
                let first = probe.at(started, 0);
                let fails = b.fail_readiness || up_at > first;
                if fails
                    && !sim.containers[i].unhealthy_reported
                    && first <= now
                    && end.is_none_or(|e| first < e.0)
                {
                    sim.containers[i].unhealthy_reported = true;
                    let msg = if b.fail_readiness && up_at <= first {
                        "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string()
                    } else {
                        format!(
                            "Readiness probe failed: {}",
                            refused(c, "readinessProbe", &sim.ip)
                        )
                    };
                    self.warning("Unhealthy", msg);
                } else if fails && !sim.containers[i].unhealthy_reported {
                    self.wake_at(first);
                }
            }
            match end {
                Some((at, reason, code, by_liveness)) if at <= now => {
                    if by_liveness {
                        let why = refused(c, "livenessProbe", &sim.ip);
                        self.warning("Unhealthy", format!("Liveness probe failed: {why}"));
                        self.normal(
                            "Killing",
                            format!("Container {cname} failed liveness probe, will be restarted"),
                        );
                    }
                    let cs = &mut sim.containers[i];
                    let exit = Exit {
                        started,
                        finished: at,
                        reason: reason.into(),
                        code,
                    };
                    cs.started_at = None;
                    cs.ready = false;
                    if at - started >= 600 * SECOND {
                        cs.exits = 0;
                    }
                    let restart = policy == "Always" || (policy == "OnFailure" && code != 0);
                    if !restart {
                        cs.finished = Some(exit);
                        continue;
                    }
                    cs.exits += 1;
                    cs.last_exit = Some(exit);
                    let delay = restart_backoff(cs.exits);
                    cs.backoff_ms = delay;
                    if delay == 0 {
                        self.start_container(sim, i, c, true);
                        // Re-evaluated on the next step at the same instant.
                    } else {
                        cs.backoff_until = Some(now + delay);
                        self.warning(
                            "BackOff",
                            format!("Back-off restarting failed container {cname} in pod {pod_id}"),
                        );
                        self.wake_at(now + delay);
                    }
                }
                Some((at, ..)) => self.wake_at(at),
                None => {}
            }
            // Readiness of a running container.
            if let Some(started) = sim.containers[i].started_at {
                let ready_at = match readiness {
                    None => Some(started),
                    Some(_) if b.fail_readiness => None,
                    Some(p) => {
                        let k = p.first_index_at_or_after(started, up_at);
                        Some(p.at(started, k + p.success - 1))
                    }
                };
                let ready = ready_at.is_some_and(|r| r <= now);
                sim.containers[i].ready = ready;
                if let Some(r) = ready_at.filter(|r| *r > now) {
                    self.wake_at(r);
                }
            }
        }
        if policy != "Always"
            && !sim.containers.is_empty()
            && sim.containers.iter().all(|c| c.finished.is_some())
        {
            sim.stage = Stage::Finished;
        }
    }

    fn update_readiness(&mut self, sim: &mut PodSim) {
        let ready = sim.stage == Stage::Running
            && !sim.containers.is_empty()
            && sim.containers.iter().all(|c| c.ready)
            && !doc::is_deleting(self.pod);
        if ready != sim.ready || sim.ready_changed_at.is_none() {
            sim.ready = ready;
            sim.ready_changed_at = Some(self.now);
        }
    }
}

/// What the kubelet reports when a probe finds nothing listening: the HTTP GET or TCP dial
/// it tried, with a named port resolved against the container's ports.
fn refused(c: &Value, field: &str, ip: &str) -> String {
    let probe = c.get(field);
    let http = probe.and_then(|p| p.get("httpGet"));
    let action = http.or_else(|| probe.and_then(|p| p.get("tcpSocket")));
    let port = match action.and_then(|a| a.get("port")) {
        Some(Value::String(name)) => doc::at(c, &["ports"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| doc::str_at(p, &["name"]) == name)
            .and_then(|p| doc::i64_at(p, &["containerPort"]))
            .map_or_else(|| name.clone(), |n| n.to_string()),
        Some(other) => other.to_string(),
        None => "80".to_string(),
    };
    let dial = format!("dial tcp {ip}:{port}: connect: connection refused");
    match http {
        Some(h) => {
            let scheme = doc::str_at(h, &["scheme"]).to_ascii_lowercase();
            let scheme = if scheme.is_empty() {
                "http".into()
            } else {
                scheme
            };
            let path = match doc::str_at(h, &["path"]) {
                "" => "/",
                p => p,
            };
            format!("Get \"{scheme}://{ip}:{port}{path}\": {dial}")
        }
        None => dial,
    }
}

/// The pod's `status` as the kubelet reports it.
pub fn render_status(pod: &Value, sim: &PodSim) -> Value {
    let time = |t: Option<Millis>| t.map(rfc3339).map(Value::String).unwrap_or(Value::Null);
    let spec_list = |f: &str| -> &[Value] {
        doc::at(pod, &["spec", f])
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    };
    let inits = spec_list("initContainers");
    let mains = spec_list("containers");
    let pod_uid = doc::uid(pod);
    let cid =
        |n: &str, r: u32| format!("containerd://{}", short_hash(&format!("{pod_uid}/{n}/{r}")));
    let phase = match sim.stage {
        Stage::Running | Stage::Terminating
            if sim
                .containers
                .iter()
                .any(|c| c.started_at.is_some() || c.backoff_until.is_some()) =>
        {
            "Running"
        }
        Stage::Finished => {
            let failed = sim
                .containers
                .iter()
                .any(|c| c.finished.as_ref().is_some_and(|e| e.code != 0))
                || sim.init_last_exit.is_some() && sim.init_done < inits.len();
            if failed { "Failed" } else { "Succeeded" }
        }
        _ => "Pending",
    };
    let waiting_reason = sim.waiting.clone();
    let mut init_statuses = Vec::new();
    for (i, c) in inits.iter().enumerate() {
        let name = doc::str_at(c, &["name"]);
        let image = doc::str_at(c, &["image"]);
        let (state, ready, restarts, last) = if i < sim.init_done {
            let term = json!({"terminated": {"exitCode": 0, "reason": "Completed", "containerID": cid(name, 0)}});
            (term, true, 0, json!({}))
        } else if i == sim.init_done && sim.stage == Stage::Init && sim.init_started.is_some() {
            (
                json!({"running": {"startedAt": time(sim.init_started)}}),
                false,
                sim.init_restarts,
                last_state(&sim.init_last_exit),
            )
        } else if i == sim.init_done && sim.stage == Stage::InitBackOff {
            let msg = format!(
                "back-off {} restarting failed container={name} pod={}_{}({pod_uid})",
                format_duration(restart_backoff(sim.init_exits)),
                doc::name(pod),
                doc::namespace(pod)
            );
            (
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}}),
                false,
                sim.init_restarts,
                last_state(&sim.init_last_exit),
            )
        } else if i == sim.init_done && sim.stage == Stage::Finished {
            (
                last_state(&sim.init_last_exit),
                false,
                sim.init_restarts,
                json!({}),
            )
        } else {
            let (reason, message) = waiting_reason
                .clone()
                .filter(|_| i == sim.init_done)
                .unwrap_or(("PodInitializing".into(), String::new()));
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            (json!({"waiting": w}), false, 0, json!({}))
        };
        init_statuses.push(json!({
            "name": name, "image": image, "imageID": "", "ready": ready, "restartCount": restarts,
            "started": state.get("running").is_some(), "state": state, "lastState": last,
        }));
    }
    let initialized = sim.initialized_at.is_some();
    let mut statuses = Vec::new();
    for (i, c) in mains.iter().enumerate() {
        let name = doc::str_at(c, &["name"]);
        let image = doc::str_at(c, &["image"]);
        let fresh = ContainerSim::default();
        let cs = sim.containers.get(i).unwrap_or(&fresh);
        let state = if let Some(f) = &cs.finished {
            json!({"terminated": {"exitCode": f.code, "reason": f.reason, "startedAt": time(Some(f.started)), "finishedAt": time(Some(f.finished)), "containerID": cid(name, cs.restarts)}})
        } else if let Some(t) = cs.started_at {
            json!({"running": {"startedAt": time(Some(t))}})
        } else if cs.backoff_until.is_some() {
            let msg = format!(
                "back-off {} restarting failed container={name} pod={}_{}({pod_uid})",
                format_duration(cs.backoff_ms),
                doc::name(pod),
                doc::namespace(pod)
            );
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}})
        } else {
            let (reason, message) = match (&waiting_reason, initialized) {
                (Some(w), _) if sim.stage != Stage::Init && sim.stage != Stage::InitBackOff => {
                    w.clone()
                }
                (_, true) => ("ContainerCreating".to_string(), String::new()),
                _ if !inits.is_empty() => ("PodInitializing".to_string(), String::new()),
                _ => ("ContainerCreating".to_string(), String::new()),
            };
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        };
        // The run that ended last: the current one's predecessor while running again, the
        // current index itself while waiting out a back-off.
        let mut last = last_state(&cs.last_exit);
        if let Some(term) = last.get_mut("terminated") {
            let ended = if cs.started_at.is_some() {
                cs.restarts.saturating_sub(1)
            } else {
                cs.restarts
            };
            term["containerID"] = json!(cid(name, ended));
        }
        let mut status = json!({
            "name": name, "image": image, "imageID": "", "ready": cs.ready, "restartCount": cs.restarts,
            "started": cs.started_at.is_some(), "state": state, "lastState": last,
        });
        // Kubernetes keeps reporting the last container's id while the next one waits
        // (CrashLoopBackOff).
        if cs.started_at.is_some() || cs.finished.is_some() || cs.last_exit.is_some() {
            status["containerID"] = json!(cid(name, cs.restarts));
            status["imageID"] = json!(format!("{image}@sha256:{}", short_hash(image)));
        }
        statuses.push(status);
    }
    let not_ready: Vec<String> = mains
        .iter()
        .enumerate()
        .filter(|(i, _)| !sim.containers.get(*i).is_some_and(|c| c.ready))
        .map(|(_, c)| doc::str_at(c, &["name"]).to_string())
        .collect();
    let ready = sim.ready && !sim.node_lost;
    let cond = |kind: &str,
                ok: bool,
                at: Option<Millis>,
                reason: Option<&str>,
                msg: Option<String>| {
        let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": time(at)});
        if let (false, Some(r)) = (ok, reason) {
            c["reason"] = json!(r);
        }
        if let (false, Some(m)) = (ok, msg) {
            c["message"] = json!(m);
        }
        c
    };
    let unready_msg = Some(format!(
        "containers with unready status: [{}]",
        not_ready.join(" ")
    ));
    let (ready_reason, ready_msg) = if phase == "Succeeded" || phase == "Failed" {
        (Some("PodCompleted"), None)
    } else {
        (Some("ContainersNotReady"), unready_msg.clone())
    };
    let init_msg = if initialized {
        None
    } else {
        let pending: Vec<String> = inits
            .iter()
            .skip(sim.init_done)
            .map(|c| doc::str_at(c, &["name"]).to_string())
            .collect();
        Some(format!(
            "containers with incomplete status: [{}]",
            pending.join(" ")
        ))
    };
    let conditions = vec![
        cond(
            "PodReadyToStartContainers",
            sim.stage != Stage::Mounting,
            sim.scheduled_at,
            None,
            None,
        ),
        cond(
            "Initialized",
            initialized || inits.is_empty(),
            sim.initialized_at.or(sim.scheduled_at),
            Some("ContainersNotInitialized"),
            init_msg,
        ),
        cond(
            "Ready",
            ready,
            sim.ready_changed_at,
            ready_reason,
            ready_msg.clone(),
        ),
        cond(
            "ContainersReady",
            ready,
            sim.ready_changed_at,
            ready_reason,
            ready_msg,
        ),
        cond("PodScheduled", true, sim.scheduled_at, None, None),
    ];
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": sim.host_ip,
        "hostIPs": [{"ip": sim.host_ip}],
        "podIP": sim.ip,
        "podIPs": [{"ip": sim.ip}],
        "startTime": time(sim.scheduled_at),
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = Value::Array(init_statuses);
    }
    status["containerStatuses"] = Value::Array(statuses);
    status["qosClass"] = json!(qos_class(pod));
    status
}

fn last_state(exit: &Option<Exit>) -> Value {
    let time = |t: Millis| Value::String(rfc3339(t));
    match exit {
        Some(e) => {
            json!({"terminated": {"exitCode": e.code, "reason": e.reason, "startedAt": time(e.started), "finishedAt": time(e.finished)}})
        }
        None => json!({}),
    }
}

/// Kubernetes' QoS class of a pod from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = doc::at(pod, &["spec", "containers"])
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let req = doc::at(c, &["resources", "requests"]).and_then(Value::as_object);
        let lim = doc::at(c, &["resources", "limits"]).and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}{:016x}", h.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failures_name_the_resolved_port_and_path() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 9000}}});
        assert_eq!(
            refused(&c, "readinessProbe", "10.244.1.2"),
            "Get \"http://10.244.1.2:8080/healthz\": dial tcp 10.244.1.2:8080: connect: connection refused"
        );
        assert_eq!(
            refused(&c, "livenessProbe", "10.244.1.2"),
            "dial tcp 10.244.1.2:9000: connect: connection refused"
        );
    }

    #[test]
    fn backoff_follows_the_kubelet() {
        let delays: Vec<Millis> = (1..=8).map(restart_backoff).collect();
        assert_eq!(
            delays,
            vec![0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]
        );
        assert_eq!(pull_backoff(1), 10_000);
        assert_eq!(pull_backoff(7), 300_000);
    }

    #[test]
    fn readiness_waits_for_the_first_probe_after_startup() {
        let c = json!({"readinessProbe": {"initialDelaySeconds": 2, "periodSeconds": 5, "successThreshold": 2}});
        let p = Probe::of(&c, "readinessProbe").unwrap_or(Probe {
            delay: 0,
            period: 1,
            success: 1,
            failure: 1,
        });
        // Program up at 6 s: probes at 2, 7, 12 s; two successes needed: ready at 12 s.
        let k = p.first_index_at_or_after(0, 6000);
        assert_eq!(p.at(0, k + p.success - 1), 12_000);
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }
}
