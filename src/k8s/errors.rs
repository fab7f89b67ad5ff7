//! API server errors in the user's words: which verb on which resource was forbidden, which
//! fields were invalid, which manager a field conflict is with, which quota was exceeded —
//! and never a credential.

use crate::cluster;
use crate::model::ResId;

/// What was being done when the error came: `get`, `apply`, `delete`, `list`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The Kubernetes verb (`get`, `list`, `patch`, `create`, `delete`).
    pub verb: &'a str,
    /// kubectl's word for the resource (`deployments.apps`).
    pub resource: &'a str,
    /// The object.
    pub id: &'a ResId,
    /// `kube:CONTEXT`.
    pub target: &'a str,
}

/// Masks bearer tokens and PEM key blocks that a lower layer might have put in a message.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Bearer ") {
        out.push_str(&rest[..at + "Bearer ".len()]);
        out.push_str("***");
        let tail = &rest[at + "Bearer ".len()..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    match (out.find("-----BEGIN"), out.rfind("-----END")) {
        (Some(start), Some(end)) if end > start => {
            let close = out[end + 5..]
                .find("-----")
                .map(|i| end + 5 + i + 5)
                .unwrap_or(out.len());
            format!("{}***{}", &out[..start], &out[close..])
        }
        _ => out,
    }
}

/// True for errors worth retrying: throttling, server errors, a connection that failed.
pub(crate) fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The HTTP status of an API error (0 for transport errors).
pub(crate) fn code(error: &kube::Error) -> u16 {
    match error {
        kube::Error::Api(status) => status.code,
        _ => 0,
    }
}

/// A cluster error for `error`, met while doing `attempt`.
pub(crate) fn to_cluster(error: kube::Error, attempt: Attempt<'_>) -> cluster::Error {
    let Attempt {
        verb,
        resource,
        id,
        target,
    } = attempt;
    let invalid = |message: String| cluster::Error::Invalid {
        id: Box::new(id.clone()),
        message: redact(&message),
    };
    let where_ = if id.namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {:?}", id.namespace)
    };
    let status = match error {
        kube::Error::Api(status) => status,
        other => {
            return cluster::Error::Backend(redact(&format!(
                "{target}: cannot {verb} {resource} {:?}: {}",
                id.name,
                transport_words(&other)
            )));
        }
    };
    let message = status.message.clone();
    match (status.code, status.reason.as_str()) {
        (404, _) if status.details.as_ref().is_some_and(|d| d.name == id.name) || verb == "get" => {
            cluster::Error::NotFound(Box::new(id.clone()))
        }
        (404, _) => invalid(format!("not found: {message}")),
        (401, _) => cluster::Error::Backend(format!(
            "{target}: unauthorized: the cluster refused the credentials of the kubeconfig \
             (expired token or certificate?)"
        )),
        (403, _) if message.contains("exceeded quota") => {
            invalid(format!("quota exceeded: {message}"))
        }
        // RBAC's refusal already names the user, verb, resource and namespace.
        (403, _) if message.contains(" cannot ") => {
            invalid(format!("forbidden on {target}: {message}"))
        }
        (403, _) => invalid(format!(
            "forbidden: {target} does not allow {verb} on {resource}{where_}: {message}"
        )),
        (409, "Conflict") if verb == "patch" && message.contains("conflict") => invalid(format!(
            "{message} (fields owned by another field manager; `--force-conflicts` takes them \
             over, as kubectl apply --server-side --force-conflicts)"
        )),
        (409, "AlreadyExists") => invalid(format!("already exists: {message}")),
        (409, _) => invalid(format!("conflict: {message}")),
        (422, _) => {
            let causes: Vec<String> = status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| match c.field.as_str() {
                            "" => c.message.clone(),
                            field => format!("{field}: {}", c.message),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if causes.is_empty() || causes.iter().all(|c| message.contains(c.as_str())) {
                invalid(format!("invalid: {message}"))
            } else {
                invalid(format!("invalid: {message} ({})", causes.join("; ")))
            }
        }
        (code, reason) => cluster::Error::Backend(redact(&format!(
            "{target}: {verb} {resource} {:?}{where_} failed: {code} {reason}: {message}",
            id.name
        ))),
    }
}

/// A transport error in plain words (the chain of causes, which names the address).
fn transport_words(error: &kube::Error) -> String {
    let mut words = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !words.contains(&text) {
            words.push_str(": ");
            words.push_str(&text);
        }
        source = cause.source();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Gvk;
    use kube::core::Status;

    fn id() -> ResId {
        ResId {
            gvk: Gvk::from_api_version("apps/v1", "Deployment"),
            name: "web".into(),
            namespace: "prod".into(),
        }
    }

    fn attempt<'a>(id: &'a ResId, verb: &'static str) -> Attempt<'a> {
        Attempt {
            verb,
            resource: "deployments.apps",
            id,
            target: "kube:test",
        }
    }

    #[test]
    fn tokens_and_keys_are_masked() {
        let text = "sent Authorization: Bearer abc.def-123 and -----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY----- done";
        let masked = redact(text);
        assert!(!masked.contains("abc.def-123"), "{masked}");
        assert!(!masked.contains("MIIB"), "{masked}");
        assert!(masked.ends_with(" done"), "{masked}");
    }

    #[test]
    fn forbidden_names_verb_resource_and_namespace() {
        let id = id();
        let status =
            Status::failure("deployments.apps \"web\" is forbidden", "Forbidden").with_code(403);
        let error = to_cluster(kube::Error::Api(Box::new(status)), attempt(&id, "patch"));
        let text = error.to_string();
        assert!(
            text.contains("does not allow patch on deployments.apps in namespace \"prod\""),
            "{text}"
        );
        // RBAC's own words already name them: kept as they are, said once.
        let rbac = "deployments.apps \"web\" is forbidden: User \"jane\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"prod\"";
        let status = Status::failure(rbac, "Forbidden").with_code(403);
        let text =
            to_cluster(kube::Error::Api(Box::new(status)), attempt(&id, "patch")).to_string();
        assert!(
            text.contains(&format!("forbidden on kube:test: {rbac}")),
            "{text}"
        );
    }

    #[test]
    fn apply_conflicts_name_the_manager_and_the_way_out() {
        let id = id();
        let status = Status::failure(
            "Apply failed with 1 conflict: conflict with \"ops\" using apps/v1: .spec.replicas",
            "Conflict",
        )
        .with_code(409);
        let text =
            to_cluster(kube::Error::Api(Box::new(status)), attempt(&id, "patch")).to_string();
        assert!(text.contains("conflict with \"ops\""), "{text}");
        assert!(text.contains("--force-conflicts"), "{text}");
    }

    #[test]
    fn quota_and_invalid_are_refusals_of_the_object() {
        let id = id();
        let quota = Status::failure(
            "pods \"web\" is forbidden: exceeded quota: small, requested: pods=1",
            "Forbidden",
        )
        .with_code(403);
        let text = to_cluster(kube::Error::Api(Box::new(quota)), attempt(&id, "patch")).to_string();
        assert!(text.contains("quota exceeded"), "{text}");
        let invalid = Status::failure("Deployment.apps \"web\" is invalid", "Invalid")
            .with_code(422)
            .with_details(kube::core::response::StatusDetails {
                causes: vec![kube::core::response::StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: "must be greater than or equal to 0".into(),
                    field: "spec.replicas".into(),
                }],
                name: "web".into(),
                group: "apps".into(),
                kind: "deployments".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            });
        let text =
            to_cluster(kube::Error::Api(Box::new(invalid)), attempt(&id, "patch")).to_string();
        assert!(
            text.contains("spec.replicas: must be greater than or equal to 0"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_object_is_not_found() {
        let id = id();
        let status = Status::failure("not found", "NotFound").with_code(404);
        let error = to_cluster(kube::Error::Api(Box::new(status)), attempt(&id, "get"));
        assert!(matches!(error, cluster::Error::NotFound(_)));
        assert_eq!(error.to_string(), "deployments.apps \"web\" not found");
    }
}
