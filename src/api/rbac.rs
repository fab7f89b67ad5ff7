//! Authorization as kube-apiserver's RBAC authorizer decides it, over the Role, ClusterRole,
//! RoleBinding and ClusterRoleBinding objects stored in the engine: what a request asks
//! ([`Attributes`], upstream's `RequestInfo`), which rules apply to a user in a namespace, and
//! the Forbidden answer in the API server's words.
//!
//! Invariants: `system:masters` is allowed everything without looking at any object (the
//! privileged-group authorizer runs first upstream); everything else is denied unless a rule
//! allows it; rules are additive, so a binding whose role is missing only adds an error to
//! the denial's reason.

use serde_json::{Value, json};

use super::auth::User;
use super::status::ApiError;

/// The API group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What a request asks to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`;
    /// for non-resource requests the lowercase HTTP method.
    pub verb: String,
    /// `Some` for a resource request.
    pub resource: Option<ResourceAttributes>,
    /// The URL path (what non-resource rules match).
    pub path: String,
}

/// The resource part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    /// API group (empty for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource (`deployments`).
    pub resource: String,
    /// Subresource (`status`, `scale`), empty for none.
    pub subresource: String,
    /// Namespace, empty for cluster scope.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
}

impl Attributes {
    /// The attributes of an HTTP request, as upstream's `RequestInfoFactory` reads them.
    pub fn of_request(method: &str, path: &str, query: &str) -> Attributes {
        let non_resource = || Attributes {
            verb: method.to_lowercase(),
            resource: None,
            path: path.to_string(),
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let rest: &[&str] = match parts.as_slice() {
            ["api", _version, rest @ ..] => rest,
            ["apis", _group, _version, rest @ ..] => rest,
            _ => return non_resource(),
        };
        if rest.is_empty() || rest.iter().all(|p| p.is_empty()) {
            return non_resource();
        }
        let (group, version) = match parts.as_slice() {
            ["api", version, ..] => ("", *version),
            ["apis", group, version, ..] => (*group, *version),
            _ => return non_resource(),
        };
        let param = |key: &str| -> Option<String> {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == key).then(|| percent_decode(v))
            })
        };
        let mut namespace = String::new();
        let mut rest = rest;
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = rest[1].to_string();
            // `namespaces/{ns}/status` and `/finalize` are the namespace's own subresources.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let resource = rest[0].to_string();
        let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        let subresource = if rest.len() >= 3 {
            rest[2].to_string()
        } else {
            String::new()
        };
        let watching = param("watch").is_some_and(|w| w == "true" || w == "1");
        let mut name = name;
        let verb = match method {
            "GET" | "HEAD" if watching => "watch",
            "GET" | "HEAD" if name.is_empty() => "list",
            "GET" | "HEAD" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if name.is_empty() => "deletecollection",
            "DELETE" => "delete",
            other => {
                return Attributes {
                    verb: other.to_lowercase(),
                    ..non_resource()
                };
            }
        };
        // A list or watch of one object by field selector is a request about that name.
        if matches!(verb, "list" | "watch")
            && name.is_empty()
            && let Some(selector) = param("fieldSelector")
        {
            for term in selector.split(',') {
                if let Some(value) = term
                    .strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="))
                {
                    name = value.to_string();
                }
            }
        }
        Attributes {
            verb: verb.to_string(),
            resource: Some(ResourceAttributes {
                group: group.to_string(),
                version: version.to_string(),
                resource,
                subresource,
                namespace,
                name,
            }),
            path: path.to_string(),
        }
    }

    /// The namespace whose RoleBindings apply (empty for cluster scope).
    pub fn namespace(&self) -> &str {
        self.resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or_default()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Verbs (`*` for all).
    pub verbs: Vec<String>,
    /// API groups (`*` for all, `""` for core).
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*` or `*/subresource`.
    pub resources: Vec<String>,
    /// Names the rule is limited to (empty: every name).
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/api/*`, `*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl Rule {
    /// A rule from its JSON (`verbs`, `apiGroups`, `resources`, `resourceNames`,
    /// `nonResourceURLs`).
    pub fn from_json(rule: &Value) -> Rule {
        Rule {
            verbs: strings(rule, "verbs"),
            api_groups: strings(rule, "apiGroups"),
            resources: strings(rule, "resources"),
            resource_names: strings(rule, "resourceNames"),
            non_resource_urls: strings(rule, "nonResourceURLs"),
        }
    }

    /// Whether the rule allows the request (upstream's `RuleAllows`).
    pub fn allows(&self, attributes: &Attributes) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == attributes.verb);
        if !verb {
            return false;
        }
        match &attributes.resource {
            Some(r) => {
                let combined = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                self.api_groups.iter().any(|g| g == "*" || *g == r.group)
                    && self.resources.iter().any(|res| {
                        res == "*"
                            || *res == combined
                            || (!r.subresource.is_empty()
                                && res.strip_prefix("*/") == Some(r.subresource.as_str()))
                    })
                    && (self.resource_names.is_empty() || self.resource_names.contains(&r.name))
            }
            None => self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || *url == attributes.path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| attributes.path.starts_with(prefix))
            }),
        }
    }

    /// The rule as `SelfSubjectRulesReview` reports it.
    fn to_json(&self) -> (Option<Value>, Option<Value>) {
        let resource = (!self.resources.is_empty()).then(|| {
            let mut r = json!({"verbs": self.verbs, "apiGroups": self.api_groups,
                "resources": self.resources});
            if !self.resource_names.is_empty() {
                r["resourceNames"] = json!(self.resource_names);
            }
            r
        });
        let non_resource = (!self.non_resource_urls.is_empty())
            .then(|| json!({"verbs": self.verbs, "nonResourceURLs": self.non_resource_urls}));
        (resource, non_resource)
    }
}

/// The RBAC objects a decision looks at: every ClusterRole and ClusterRoleBinding, and the
/// Roles and RoleBindings of the request's namespace.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
    /// Roles of the namespace.
    pub roles: Vec<Value>,
    /// RoleBindings of the namespace.
    pub role_bindings: Vec<Value>,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// `RBAC: allowed by …`, or the errors met resolving bindings (empty when none).
    pub reason: String,
}

pub(super) fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Why a binding's `roleRef` gives no rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefError {
    /// The role is not stored (`resource`: `role` or `clusterrole`).
    Missing {
        /// `role` or `clusterrole`.
        resource: &'static str,
        /// The role's name.
        name: String,
    },
    /// A `roleRef.kind` other than Role and ClusterRole.
    Unsupported(String),
}

impl RefError {
    /// As the authorizer's listers word it: `clusterrole.rbac.authorization.k8s.io "x" not
    /// found`.
    pub fn lister_words(&self) -> String {
        match self {
            RefError::Missing { resource, name } => {
                format!("{resource}.{GROUP} \"{name}\" not found")
            }
            RefError::Unsupported(kind) => format!("unsupported role reference kind: \"{kind}\""),
        }
    }

    /// As the storage words it (what the escalation checks quote): `clusterroles.rbac…`.
    pub fn registry_words(&self) -> String {
        match self {
            RefError::Missing { resource, name } => {
                format!("{resource}s.{GROUP} \"{name}\" not found")
            }
            RefError::Unsupported(_) => self.lister_words(),
        }
    }
}

/// A role's stored rules. An aggregated ClusterRole's are those the aggregation controller
/// (`engine::controllers::clusterrole`) wrote into it, as upstream's authorizer reads them.
pub(super) fn rules_of(role: &Value) -> Vec<Rule> {
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(Rule::from_json)
        .collect()
}

/// One rule and the binding that grants it (upstream's "source" describer).
struct Granted {
    rule: Rule,
    source: String,
}

impl Policy {
    /// Reads the policy for `namespace` from the engine.
    pub fn load(engine: &mut crate::engine::Engine, namespace: &str) -> Result<Policy, ApiError> {
        let mut policy = Policy {
            cluster_roles: engine.list("ClusterRole", None, None)?,
            cluster_role_bindings: engine.list("ClusterRoleBinding", None, None)?,
            ..Policy::default()
        };
        if !namespace.is_empty() {
            policy.roles = engine.list("Role", Some(namespace), None)?;
            policy.role_bindings = engine.list("RoleBinding", Some(namespace), None)?;
        }
        Ok(policy)
    }

    fn cluster_role(&self, name: &str) -> Option<&Value> {
        self.cluster_roles.iter().find(|r| name_of(r) == name)
    }

    /// The rules a binding's `roleRef` names (the binding in `binding_namespace`; empty for
    /// a ClusterRoleBinding).
    pub fn role_ref_rules(
        &self,
        binding: &Value,
        binding_namespace: &str,
    ) -> Result<Vec<Rule>, RefError> {
        let kind = binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let missing = |resource| RefError::Missing {
            resource,
            name: name.to_string(),
        };
        match kind {
            "Role" => self
                .roles
                .iter()
                .find(|r| name_of(r) == name && namespace_of(r) == binding_namespace)
                .map(rules_of)
                .ok_or_else(|| missing("role")),
            "ClusterRole" => self
                .cluster_role(name)
                .map(rules_of)
                .ok_or_else(|| missing("clusterrole")),
            other => Err(RefError::Unsupported(other.to_string())),
        }
    }

    /// Every rule granted to `user` in `namespace`, and the errors met resolving bindings
    /// (upstream's `RulesFor`).
    pub fn rules_for(&self, user: &User, namespace: &str) -> (Vec<Rule>, Vec<RefError>) {
        let (granted, errors) = self.granted(user, namespace);
        (granted.into_iter().map(|g| g.rule).collect(), errors)
    }

    /// Every rule granted to `user` in `namespace` (cluster-wide bindings first), and the
    /// errors met resolving bindings.
    fn granted(&self, user: &User, namespace: &str) -> (Vec<Granted>, Vec<RefError>) {
        let mut granted = Vec::new();
        let mut errors = Vec::new();
        let mut visit =
            |binding: &Value, binding_namespace: &str, describe: &dyn Fn(&str) -> String| {
                let Some(subject) = applies_to(user, binding, binding_namespace) else {
                    return;
                };
                match self.role_ref_rules(binding, binding_namespace) {
                    Ok(rules) => {
                        let source = describe(&subject);
                        granted.extend(rules.into_iter().map(|rule| Granted {
                            rule,
                            source: source.clone(),
                        }));
                    }
                    Err(e) => errors.push(e),
                }
            };
        for binding in &self.cluster_role_bindings {
            visit(binding, "", &|subject| {
                format!(
                    "ClusterRoleBinding \"{}\" of {} to {subject}",
                    name_of(binding),
                    role_ref_words(binding)
                )
            });
        }
        if !namespace.is_empty() {
            for binding in self
                .role_bindings
                .iter()
                .filter(|b| namespace_of(b) == namespace)
            {
                visit(binding, namespace, &|subject| {
                    format!(
                        "RoleBinding \"{}/{}\" of {} to {subject}",
                        name_of(binding),
                        namespace,
                        role_ref_words(binding)
                    )
                });
            }
        }
        (granted, errors)
    }

    /// Decides a request of `user` (upstream's RBAC authorizer, after the privileged group).
    pub fn authorize(&self, user: &User, attributes: &Attributes) -> Decision {
        if user.is_master() {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let (granted, errors) = self.granted(user, attributes.namespace());
        if let Some(g) = granted.iter().find(|g| g.rule.allows(attributes)) {
            return Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {}", g.source),
            };
        }
        let errors: Vec<String> = errors.iter().map(RefError::lister_words).collect();
        let reason = match errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        };
        Decision {
            allowed: false,
            reason,
        }
    }

    /// `SelfSubjectRulesReview`'s status for `user` in `namespace`.
    pub fn rules_review(&self, user: &User, namespace: &str) -> Value {
        let rules: Vec<Rule> = if user.is_master() {
            vec![
                Rule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Rule::default()
                },
                Rule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Rule::default()
                },
            ]
        } else {
            self.granted(user, namespace)
                .0
                .into_iter()
                .map(|g| g.rule)
                .collect()
        };
        let errors = if user.is_master() {
            Vec::new()
        } else {
            self.granted(user, namespace)
                .1
                .iter()
                .map(RefError::lister_words)
                .collect()
        };
        let mut resource_rules = Vec::new();
        let mut non_resource_rules = Vec::new();
        for rule in &rules {
            let (r, n) = rule.to_json();
            resource_rules.extend(r);
            non_resource_rules.extend(n);
        }
        let mut status = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        });
        if !errors.is_empty() {
            status["evaluationError"] = Value::from(errors.join(", "));
        }
        status
    }
}

fn role_ref_words(binding: &Value) -> String {
    format!(
        "{} \"{}\"",
        binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// The first subject of `binding` that is `user`, described as upstream describes it.
fn applies_to(user: &User, binding: &Value, binding_namespace: &str) -> Option<String> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|subject| {
            let kind = subject.get("kind").and_then(Value::as_str)?;
            let name = subject.get("name").and_then(Value::as_str)?;
            let namespace = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            match kind {
                "User" if user.name == name => Some(format!("User \"{name}\"")),
                "Group" if user.groups.iter().any(|g| g == name) => {
                    Some(format!("Group \"{name}\""))
                }
                "ServiceAccount"
                    if !namespace.is_empty()
                        && user.name == format!("system:serviceaccount:{namespace}:{name}") =>
                {
                    Some(format!("ServiceAccount \"{name}/{namespace}\""))
                }
                _ => None,
            }
        })
}

/// The 403 the API server answers a denied request with (upstream `responsewriters.Forbidden`
/// over `apierrors.NewForbidden`).
pub fn forbidden(user: &User, attributes: &Attributes, reason: &str) -> ApiError {
    let (message, group, resource, name) = match &attributes.resource {
        None => (
            format!(
                "User \"{}\" cannot {} path \"{}\"",
                user.name, attributes.verb, attributes.path
            ),
            String::new(),
            String::new(),
            String::new(),
        ),
        Some(r) => {
            let combined = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            (
                format!(
                    "User \"{}\" cannot {} resource \"{combined}\" in API group \"{}\" {scope}",
                    user.name, attributes.verb, r.group
                ),
                r.group.clone(),
                r.resource.clone(),
                r.name.clone(),
            )
        }
    };
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    new_forbidden(&group, &resource, &name, &message)
}

/// apimachinery's `NewForbidden`: `{resource}.{group} "{name}" is forbidden: {message}`.
pub fn new_forbidden(group: &str, resource: &str, name: &str, message: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let full = if qualified.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} \"{name}\" is forbidden: {message}")
    };
    ApiError {
        details: Some(json!({"name": name, "group": group, "kind": resource})),
        ..ApiError::new(403, "Forbidden", full)
    }
}

/// The default roles and bindings kube-apiserver bootstraps that this server relies on:
/// `cluster-admin` for `system:masters`, discovery, health and the self reviews for every
/// authenticated user, and the user-facing `admin`, `edit` and `view` with the
/// `system:aggregate-to-*` roles they gather. Created when absent, left alone when present
/// (a user may change them).
pub fn bootstrap_objects() -> Vec<Value> {
    let meta = |name: &str| bootstrap_meta(name, None);
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole",
            "metadata": meta(name), "rules": rules})
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRoleBinding",
            "metadata": meta(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": name},
            "subjects": subjects})
    };
    vec![
        role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"]}]),
        ),
        role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                 "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
                 "verbs": ["create"]},
            ]),
        ),
        role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                "/version/"], "verbs": ["get"]}]),
        ),
        aggregated("admin", "admin", None),
        aggregated("edit", "edit", Some("admin")),
        aggregated("view", "view", Some("edit")),
        aggregate_to("admin", aggregate_to_admin()),
        aggregate_to("edit", aggregate_to_edit()),
        aggregate_to("view", aggregate_to_view()),
        binding("cluster-admin", &[super::auth::MASTERS]),
        binding("system:discovery", &[super::auth::AUTHENTICATED]),
        binding("system:basic-user", &[super::auth::AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            &[super::auth::AUTHENTICATED, "system:unauthenticated"],
        ),
    ]
}

/// The label that adds a ClusterRole's rules to the default role `to` (`admin`, `edit`,
/// `view`).
fn aggregate_label(to: &str) -> String {
    format!("{GROUP}/aggregate-to-{to}")
}

fn bootstrap_meta(name: &str, aggregate_to: Option<&str>) -> Value {
    let mut meta = json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    });
    if let Some(to) = aggregate_to {
        meta["labels"][aggregate_label(to)] = Value::from("true");
    }
    meta
}

/// A user-facing default role (`admin`, `edit`, `view`): no rules of its own, only those the
/// aggregation controller gathers from the roles labelled `aggregate-to-{gathers}`; itself
/// labelled to be gathered into `into` (`view` into `edit`, `edit` into `admin`).
fn aggregated(name: &str, gathers: &str, into: Option<&str>) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole",
        "metadata": bootstrap_meta(name, into),
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {aggregate_label(gathers): "true"}}]}})
}

/// `system:aggregate-to-{to}`, carrying upstream's rules for the default role `to`.
fn aggregate_to(to: &str, rules: Value) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1"), "kind": "ClusterRole",
        "metadata": bootstrap_meta(&format!("system:aggregate-to-{to}"), Some(to)),
        "rules": rules})
}

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 5] = ["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = crate::engine::kinds::STANDARD_VERBS;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// Upstream's `system:aggregate-to-admin` (kube-apiserver 1.31 bootstrap policy).
fn aggregate_to_admin() -> Value {
    json!([
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"]
        ),
        rule(&[GROUP], &["rolebindings", "roles"], READ_WRITE),
    ])
}

/// Upstream's `system:aggregate-to-edit`: writes to workloads and their configuration,
/// Secrets included (which `view` leaves out).
fn aggregate_to_edit() -> Value {
    json!([
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy"
            ],
            &READ
        ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy"
            ],
            &WRITE
        ),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy"
            ],
            &WRITE
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale"
            ],
            &WRITE
        ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], &WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], &WRITE),
        rule(
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "ingresses",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale"
            ],
            &WRITE
        ),
        rule(&["policy"], &["poddisruptionbudgets"], &WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            &WRITE
        ),
        rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
    ])
}

/// Upstream's `system:aggregate-to-view`: reads of everything in a namespace but Secrets
/// (and roles and bindings).
fn aggregate_to_view() -> Value {
    json!([
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status"
            ],
            &READ
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status"
            ],
            &READ
        ),
        rule(&[""], &["namespaces"], &READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], &READ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status"
            ],
            &READ
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status"
            ],
            &READ
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            &READ
        ),
        rule(
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "networkpolicies",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale"
            ],
            &READ
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            &READ
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            &READ
        ),
    ])
}

/// Creates the [`bootstrap_objects`] the engine lacks.
pub fn bootstrap(engine: &mut crate::engine::Engine) -> Result<(), crate::engine::Error> {
    for object in bootstrap_objects() {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if engine.get(&kind, "", name_of(&object))?.is_none() {
            engine.create(&object)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn jane() -> User {
        user("jane", &["dev", super::super::auth::AUTHENTICATED])
    }

    fn request(method: &str, path: &str) -> Attributes {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Attributes::of_request(method, path, query)
    }

    #[test]
    fn requests_read_as_upstream_request_info() {
        let a = request("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web");
        let r = a.resource.clone().expect("resource request");
        assert_eq!(a.verb, "patch");
        assert_eq!(
            (
                r.group.as_str(),
                r.resource.as_str(),
                r.namespace.as_str(),
                r.name.as_str()
            ),
            ("apps", "deployments", "shop", "web")
        );
        let a = request("GET", "/api/v1/namespaces/shop/pods?watch=true");
        assert_eq!(a.verb, "watch");
        let a = request("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dp1");
        assert_eq!(
            (a.verb.as_str(), a.resource.expect("r").name.as_str()),
            ("list", "p1")
        );
        let a = request(
            "PUT",
            "/apis/apps/v1/namespaces/shop/deployments/web/status",
        );
        assert_eq!(a.resource.expect("r").subresource, "status");
        let a = request("DELETE", "/api/v1/namespaces/shop/configmaps");
        assert_eq!(a.verb, "deletecollection");
        // A namespace is in its own namespace; its status is its subresource.
        let a = request("GET", "/api/v1/namespaces/shop");
        let r = a.resource.expect("r");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.namespace.as_str()),
            ("namespaces", "shop", "shop")
        );
        let a = request("PUT", "/api/v1/namespaces/shop/status");
        let r = a.resource.expect("r");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_str()),
            ("namespaces", "status")
        );
        for path in [
            "/api",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/openapi/v3",
        ] {
            let a = request("GET", path);
            assert!(a.resource.is_none(), "{path}");
            assert_eq!(a.verb, "get");
        }
        assert_eq!(request("POST", "/version").verb, "post");
    }

    #[test]
    fn rules_match_verbs_groups_resources_names_and_paths() {
        let rule = |v: Value| Rule::from_json(&v);
        let read = rule(
            json!({"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}),
        );
        assert!(read.allows(&request("GET", "/apis/apps/v1/namespaces/a/deployments/x")));
        assert!(!read.allows(&request(
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/x"
        )));
        assert!(
            !read.allows(&request("GET", "/api/v1/namespaces/a/pods/x")),
            "core is not apps"
        );
        assert!(
            !read.allows(&request(
                "GET",
                "/apis/apps/v1/namespaces/a/deployments/x/status"
            )),
            "a resource does not grant its subresources"
        );
        let status = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]}));
        assert!(status.allows(&request(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/x/status"
        )));
        assert!(!status.allows(&request(
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/x/scale"
        )));
        assert!(!status.allows(&request("PUT", "/apis/apps/v1/namespaces/a/deployments/x")));
        let named = rule(
            json!({"verbs": ["get", "list", "update"], "apiGroups": [""],
            "resources": ["configmaps"], "resourceNames": ["settings"]}),
        );
        assert!(named.allows(&request("GET", "/api/v1/namespaces/a/configmaps/settings")));
        assert!(!named.allows(&request("GET", "/api/v1/namespaces/a/configmaps/other")));
        assert!(
            !named.allows(&request("GET", "/api/v1/namespaces/a/configmaps")),
            "a list names no object, so a named rule does not allow it"
        );
        let paths = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        assert!(paths.allows(&request("GET", "/healthz")));
        assert!(paths.allows(&request("GET", "/apis/apps/v1")));
        assert!(!paths.allows(&request("GET", "/version")));
        assert!(
            !paths.allows(&request("GET", "/apis/apps/v1/deployments")),
            "non-resource rules never allow resource requests"
        );
    }

    /// The ClusterRoles as the aggregation controller leaves them.
    fn aggregated(roles: Vec<Value>) -> Vec<Value> {
        let all: Vec<&Value> = roles.iter().collect();
        crate::engine::controllers::clusterrole::aggregate_all(&all)
    }

    fn bootstrap_cluster_roles() -> Vec<Value> {
        bootstrap_objects()
            .into_iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .collect()
    }

    fn policy() -> Policy {
        Policy {
            cluster_roles: {
                let mut roles = bootstrap_cluster_roles();
                roles.push(json!({"metadata": {"name": "widgets-reader"},
                    "aggregationRule": {"clusterRoleSelectors": [
                        {"matchLabels": {"example.com/aggregate-to-view": "true"}}]}}));
                roles.push(json!({"metadata": {"name": "widgets-view",
                    "labels": {"example.com/aggregate-to-view": "true"}},
                    "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}));
                aggregated(roles)
            },
            cluster_role_bindings: bootstrap_objects()
                .into_iter()
                .filter(|o| o["kind"] == "ClusterRoleBinding")
                .chain([json!({"metadata": {"name": "dev-view"},
                    "roleRef": {"kind": "ClusterRole", "name": "widgets-reader"},
                    "subjects": [{"kind": "Group", "name": "dev"}]})])
                .collect(),
            roles: vec![json!({"metadata": {"name": "reader", "namespace": "shop"},
                "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]}]})],
            role_bindings: vec![
                json!({"metadata": {"name": "jane-reads", "namespace": "shop"},
                    "roleRef": {"kind": "Role", "name": "reader"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
                json!({"metadata": {"name": "broken", "namespace": "shop"},
                    "roleRef": {"kind": "ClusterRole", "name": "missing"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
                json!({"metadata": {"name": "robot", "namespace": "shop"},
                    "roleRef": {"kind": "Role", "name": "reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "ci"}]}),
            ],
        }
    }

    #[test]
    fn bindings_grant_their_roles_rules_in_their_scope() {
        let p = policy();
        let get = request("GET", "/apis/apps/v1/namespaces/shop/deployments/web");
        let decision = p.authorize(&jane(), &get);
        assert!(decision.allowed);
        assert_eq!(
            decision.reason,
            "RBAC: allowed by RoleBinding \"jane-reads/shop\" of Role \"reader\" to User \"jane\""
        );
        // The Role binds in its namespace only.
        let elsewhere = request("GET", "/apis/apps/v1/namespaces/prod/deployments/web");
        assert!(!p.authorize(&jane(), &elsewhere).allowed);
        // Denied, with the missing role of a binding that applied as the reason.
        let patch = request("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web");
        let denied = p.authorize(&jane(), &patch);
        assert!(!denied.allowed);
        assert_eq!(
            denied.reason,
            "RBAC: clusterrole.rbac.authorization.k8s.io \"missing\" not found"
        );
        // Groups: discovery for every authenticated user; aggregated roles for `dev`.
        assert!(p.authorize(&jane(), &request("GET", "/apis")).allowed);
        assert!(
            !p.authorize(&user("x", &[]), &request("GET", "/apis"))
                .allowed
        );
        let widget = request("GET", "/apis/example.com/v1/namespaces/prod/widgets/w");
        assert!(
            p.authorize(&jane(), &widget).allowed,
            "aggregated into widgets-reader"
        );
        // Service accounts by their user name, namespace defaulted to the binding's.
        let sa = user("system:serviceaccount:shop:ci", &[]);
        assert!(p.authorize(&sa, &get).allowed);
        // Masters need no binding.
        let admin = user("root", &[super::super::auth::MASTERS]);
        assert!(
            p.authorize(&admin, &request("DELETE", "/api/v1/namespaces/x"))
                .allowed
        );
    }

    #[test]
    fn default_view_edit_and_admin_grow_with_aggregated_roles() {
        let bound = |role: &str| {
            json!({"metadata": {"name": "b", "namespace": "shop"},
                "roleRef": {"kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": "jane"}]})
        };
        let mut roles = bootstrap_cluster_roles();
        roles.push(json!({"metadata": {"name": "widgets-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"verbs": ["get", "list"], "apiGroups": ["example.com"],
                       "resources": ["widgets"]}]}));
        let policy_with = |role: &str| Policy {
            cluster_roles: aggregated(roles.clone()),
            role_bindings: vec![bound(role)],
            ..Policy::default()
        };
        let may = |p: &Policy, method: &str, path: &str| {
            p.authorize(&jane(), &request(method, path)).allowed
        };
        let shop = "/api/v1/namespaces/shop";
        let deployments = "/apis/apps/v1/namespaces/shop/deployments";
        let widgets = "/apis/example.com/v1/namespaces/shop/widgets";
        let view = policy_with("view");
        assert!(may(&view, "GET", &format!("{shop}/pods")));
        assert!(may(&view, "GET", &format!("{deployments}/web")));
        assert!(!may(&view, "POST", deployments));
        assert!(
            !may(&view, "GET", &format!("{shop}/secrets/s")),
            "view leaves Secrets out"
        );
        assert!(!may(
            &view,
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments"
        ));
        assert!(may(&view, "GET", widgets), "aggregated into view");
        let edit = policy_with("edit");
        assert!(may(&edit, "POST", deployments));
        assert!(may(&edit, "GET", &format!("{shop}/secrets/s")));
        assert!(may(&edit, "GET", widgets), "view is aggregated into edit");
        assert!(!may(
            &edit,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles"
        ));
        let admin = policy_with("admin");
        assert!(may(
            &admin,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles"
        ));
        assert!(may(&admin, "GET", widgets), "and edit into admin");
        assert!(!may(&admin, "GET", "/api/v1/nodes"));
    }

    #[test]
    fn forbidden_reads_as_the_api_server_writes_it() {
        let patch = request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web");
        let err = forbidden(&jane(), &patch, "");
        assert_eq!((err.code, err.reason), (403, "Forbidden"));
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: User \"jane\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"default\""
        );
        assert_eq!(err.status()["details"]["kind"], "deployments");
        let list = request("GET", "/api/v1/nodes");
        assert_eq!(
            forbidden(&jane(), &list, "").message,
            "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let status = request("PUT", "/apis/apps/v1/namespaces/a/deployments/web/status");
        assert!(
            forbidden(&jane(), &status, "RBAC: x")
                .message
                .ends_with("cannot update resource \"deployments/status\" in API group \"apps\" in the namespace \"a\": RBAC: x")
        );
        assert_eq!(
            forbidden(&jane(), &request("GET", "/metrics"), "").message,
            "forbidden: User \"jane\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn rules_reviews_list_what_a_user_may_do() {
        let p = policy();
        let review = p.rules_review(&jane(), "shop");
        let resources = review["resourceRules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(resources.iter().any(
            |r| r["resources"] == json!(["*"]) && r["verbs"] == json!(["get", "list", "watch"])
        ));
        assert!(
            review["nonResourceRules"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        );
        assert!(
            review["evaluationError"]
                .as_str()
                .is_some_and(|e| e.contains("missing"))
        );
        let admin = p.rules_review(&user("root", &[super::super::auth::MASTERS]), "");
        assert_eq!(admin["resourceRules"][0]["verbs"], json!(["*"]));
    }
}
