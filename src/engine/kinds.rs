//! The kinds the engine serves, with the names kubectl accepts for them.
//!
//! Invariant: an object of a kind not listed here is refused at admission.

/// One kind the engine stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// `Deployment`.
    pub kind: &'static str,
    /// API group (`apps`; empty for core).
    pub group: &'static str,
    /// Served version.
    pub version: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Plural resource name (`deployments`).
    pub plural: &'static str,
    /// kubectl short names (`deploy`).
    pub short: &'static [&'static str],
}

impl KindInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How the API server names the resource in messages: `Deployment.apps`, `Service`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// kubectl's `deployment.apps/web` prefix.
    pub fn resource_prefix(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_lowercase()
        } else {
            format!("{}.{}", self.kind.to_lowercase(), self.group)
        }
    }
}

macro_rules! kind {
    ($kind:literal, $group:literal, $version:literal, $ns:literal, $plural:literal, [$($short:literal),*]) => {
        KindInfo { kind: $kind, group: $group, version: $version, namespaced: $ns, plural: $plural, short: &[$($short),*] }
    };
}

/// Every kind the engine serves.
pub static KINDS: &[KindInfo] = &[
    kind!("Namespace", "", "v1", false, "namespaces", ["ns"]),
    kind!("Node", "", "v1", false, "nodes", ["no"]),
    kind!("Pod", "", "v1", true, "pods", ["po"]),
    kind!("Service", "", "v1", true, "services", ["svc"]),
    kind!("Endpoints", "", "v1", true, "endpoints", ["ep"]),
    kind!("ConfigMap", "", "v1", true, "configmaps", ["cm"]),
    kind!("Secret", "", "v1", true, "secrets", []),
    kind!("ServiceAccount", "", "v1", true, "serviceaccounts", ["sa"]),
    kind!(
        "PersistentVolume",
        "",
        "v1",
        false,
        "persistentvolumes",
        ["pv"]
    ),
    kind!(
        "PersistentVolumeClaim",
        "",
        "v1",
        true,
        "persistentvolumeclaims",
        ["pvc"]
    ),
    kind!("ResourceQuota", "", "v1", true, "resourcequotas", ["quota"]),
    kind!("LimitRange", "", "v1", true, "limitranges", ["limits"]),
    kind!("Deployment", "apps", "v1", true, "deployments", ["deploy"]),
    kind!("ReplicaSet", "apps", "v1", true, "replicasets", ["rs"]),
    kind!("DaemonSet", "apps", "v1", true, "daemonsets", ["ds"]),
    kind!("StatefulSet", "apps", "v1", true, "statefulsets", ["sts"]),
    kind!("Job", "batch", "v1", true, "jobs", []),
    kind!("CronJob", "batch", "v1", true, "cronjobs", ["cj"]),
    kind!(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        true,
        "horizontalpodautoscalers",
        ["hpa"]
    ),
    kind!(
        "EndpointSlice",
        "discovery.k8s.io",
        "v1",
        true,
        "endpointslices",
        []
    ),
    kind!(
        "Ingress",
        "networking.k8s.io",
        "v1",
        true,
        "ingresses",
        ["ing"]
    ),
    kind!(
        "StorageClass",
        "storage.k8s.io",
        "v1",
        false,
        "storageclasses",
        ["sc"]
    ),
    kind!("Role", "rbac.authorization.k8s.io", "v1", true, "roles", []),
    kind!(
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        true,
        "rolebindings",
        []
    ),
    kind!(
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        false,
        "clusterroles",
        []
    ),
    kind!(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        false,
        "clusterrolebindings",
        []
    ),
];

/// The kind an object's `kind` names, whatever its apiVersion.
pub fn by_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// The kind a kubectl-style resource word names: `pods`, `pod`, `po`, `Pod`,
/// `deployments.apps`, `deploy`.
pub fn lookup(word: &str) -> Option<&'static KindInfo> {
    let lower = word.to_lowercase();
    let base = lower.split('.').next().unwrap_or_default();
    KINDS.iter().find(|k| {
        let singular = k.kind.to_lowercase();
        base == singular || base == k.plural || k.short.contains(&base)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_words_resolve() {
        for word in ["pods", "pod", "po", "Pod"] {
            assert_eq!(lookup(word).map(|k| k.kind), Some("Pod"));
        }
        assert_eq!(lookup("deploy").map(|k| k.kind), Some("Deployment"));
        assert_eq!(
            lookup("deployments.apps").map(|k| k.kind),
            Some("Deployment")
        );
        assert_eq!(
            lookup("hpa").map(|k| k.kind),
            Some("HorizontalPodAutoscaler")
        );
        assert!(lookup("widgets").is_none());
    }
}
