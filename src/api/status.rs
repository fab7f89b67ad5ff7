//! API errors as the Kubernetes `Status` object kubectl reads its messages from.
//!
//! kubectl prints `Error from server (<reason>): <message>`, so the reason and the message
//! carry the user's experience: they are the API server's own words.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::engine;

/// A failed request: the HTTP code, the `Status` reason and kubectl's message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Forbidden`, `BadRequest`, …
    pub reason: &'static str,
    /// The message kubectl prints.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), when known.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 for a missing object: `deployments.apps "web" not found`.
    pub fn not_found(resource: &str, group: &str, name: &str) -> ApiError {
        let word = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        ApiError {
            details: Some(json!({"name": name, "group": group, "kind": resource})),
            ..ApiError::new(404, "NotFound", format!("{word} \"{name}\" not found"))
        }
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(verb: &str) -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
        )
    }

    /// 401 without a valid bearer token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 410 for a watch from a resourceVersion the server no longer remembers.
    pub fn gone(requested: u64, oldest: u64) -> ApiError {
        ApiError::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.status())).into_response()
    }
}

impl From<engine::Error> for ApiError {
    fn from(err: engine::Error) -> ApiError {
        use engine::Error as E;
        let message = err.to_string();
        match err {
            E::UnknownKind(_) | E::NoMatch(_) => ApiError::new(404, "NotFound", message),
            E::NotFound { resource, name } => {
                let (plural, group) = resource.split_once('.').unwrap_or((&resource, ""));
                ApiError::not_found(plural, group, &name)
            }
            E::AlreadyExists { resource, name } => {
                let (plural, group) = resource.split_once('.').unwrap_or((&resource, ""));
                ApiError {
                    details: Some(json!({"name": name, "group": group, "kind": plural})),
                    ..ApiError::new(409, "AlreadyExists", message)
                }
            }
            E::Conflict { resource, name, .. } => {
                let (plural, group) = resource.split_once('.').unwrap_or((&resource, ""));
                ApiError {
                    details: Some(json!({"name": name, "group": group, "kind": plural})),
                    ..ApiError::new(409, "Conflict", message)
                }
            }
            E::Invalid { id, message } => invalid(&id, message),
            E::Locked { .. } => ApiError::new(409, "Conflict", message),
            E::Usage(_) => ApiError::bad_request(message),
            E::Store(store) => match store {
                engine::store::StoreError::Busy { .. } => {
                    ApiError::new(429, "TooManyRequests", message)
                }
                _ => ApiError::new(500, "InternalError", message),
            },
        }
    }
}

/// Admission's refusal: quota and LimitRange refusals read `... is forbidden: ...` (403), the
/// rest `The Kind "name" is invalid: field: cause` (422) with one cause per field.
fn invalid(id: &crate::model::ResId, message: String) -> ApiError {
    if message.contains(" is forbidden: ") {
        return ApiError::new(403, "Forbidden", message);
    }
    // Strict decoding (unknown field, wrong type) fails before admission: 400, as kubectl
    // shows it (`Error from server (BadRequest): … strict decoding error: unknown field`).
    if message.contains(" cannot be handled as a ") {
        return ApiError::bad_request(message);
    }
    let causes: Vec<Value> = message
        .split_once(" is invalid: ")
        .map(|(_, rest)| {
            split_causes(rest)
                .into_iter()
                .map(|cause| match cause.split_once(": ") {
                    Some((field, text)) => {
                        json!({"reason": cause_reason(text), "message": text, "field": field})
                    }
                    None => json!({"reason": "FieldValueInvalid", "message": cause}),
                })
                .collect()
        })
        .unwrap_or_default();
    ApiError {
        details: Some(json!({
            "name": id.name,
            "group": id.gvk.group,
            "kind": id.gvk.kind,
            "causes": causes,
        })),
        ..ApiError::new(422, "Invalid", message)
    }
}

/// The words a field error's body starts with, and the cause type the API server gives it
/// (`metav1.CauseType`, the field error's type).
const CAUSE_WORDS: &[(&str, &str)] = &[
    ("Invalid value", "FieldValueInvalid"),
    ("Required value", "FieldValueRequired"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Forbidden", "FieldValueForbidden"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Not found", "FieldValueNotFound"),
    ("Internal error", "InternalError"),
];

/// The cause type of a field error's body; a schema type mismatch (`… in body must be of
/// type …`) is `FieldValueTypeInvalid`, though it reads `Invalid value` too.
fn cause_reason(body: &str) -> &'static str {
    if body.starts_with("Invalid value") && body.contains(" in body must be of type ") {
        return "FieldValueTypeInvalid";
    }
    CAUSE_WORDS
        .iter()
        .find(|(words, _)| body.starts_with(words))
        .map_or("FieldValueInvalid", |(_, reason)| reason)
}

/// The API server joins several causes as `[a, b]`; one cause stands alone. A cause's own
/// text may hold `, ` (`supported values: "a", "b"`), so a new cause starts only where a
/// field path is followed by a field error's words.
fn split_causes(text: &str) -> Vec<String> {
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return vec![text.to_string()];
    };
    let starts_cause = |rest: &str| {
        rest.split_once(": ").is_some_and(|(field, body)| {
            !field.is_empty()
                && field
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-/[]<>".contains(c))
                && CAUSE_WORDS.iter().any(|(words, _)| body.starts_with(words))
        })
    };
    let mut causes = Vec::new();
    let mut start = 0;
    for (at, _) in inner.match_indices(", ") {
        if at >= start && starts_cause(&inner[at + 2..]) {
            causes.push(inner[start..at].to_string());
            start = at + 2;
        }
    }
    causes.push(inner[start..].to_string());
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding_errors_are_bad_requests() {
        let id = crate::model::ResId::of(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "typo"}}));
        let err = invalid(
            &id,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dta\"".into(),
        );
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
    }

    #[test]
    fn not_found_reads_as_kubectl_prints_it() {
        let err = ApiError::from(engine::Error::NotFound {
            resource: "deployments.apps".into(),
            name: "web".into(),
        });
        assert_eq!(err.code, 404);
        assert_eq!(err.message, "deployments.apps \"web\" not found");
        assert_eq!(err.status()["details"]["group"], "apps");
        assert_eq!(err.status()["details"]["kind"], "deployments");
    }

    #[test]
    fn quota_refusals_are_forbidden_and_field_errors_invalid() {
        let id = crate::model::ResId::of(&json!({"kind": "Pod", "metadata": {"name": "p"}}));
        let forbidden = invalid(
            &id,
            "pods \"p\" is forbidden: exceeded quota: q, requested: pods=1".into(),
        );
        assert_eq!((forbidden.code, forbidden.reason), (403, "Forbidden"));
        let bad = invalid(
            &id,
            "The Pod \"p\" is invalid: [spec.containers: Required value, metadata.name: Invalid value]".into(),
        );
        assert_eq!((bad.code, bad.reason), (422, "Invalid"));
        let causes = bad.status()["details"]["causes"].clone();
        assert_eq!(causes[0]["field"], "spec.containers");
        assert_eq!(causes[0]["reason"], "FieldValueRequired");
        assert_eq!(causes[1]["message"], "Invalid value");
    }

    #[test]
    fn causes_keep_their_commas_and_carry_their_type() {
        let id = crate::model::ResId::of(&json!({"kind": "Widget", "metadata": {"name": "w"}}));
        let bad = invalid(
            &id,
            "Widget.example.com \"w\" is invalid: [spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\", spec.name: Too long: may not be longer than 3, spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\", spec.tags: Too many: 3: must have at most 2 items]".into(),
        );
        let causes = bad.status()["details"]["causes"].clone();
        let fields: Vec<(&str, &str)> = (0..4)
            .map(|i| {
                (
                    causes[i]["field"].as_str().unwrap_or_default(),
                    causes[i]["reason"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.color", "FieldValueNotSupported"),
                ("spec.name", "FieldValueTooLong"),
                ("spec.size", "FieldValueTypeInvalid"),
                ("spec.tags", "FieldValueTooMany"),
            ]
        );
        assert_eq!(
            causes[0]["message"],
            "Unsupported value: \"green\": supported values: \"red\", \"blue\""
        );
    }

    #[test]
    fn a_validation_rules_message_with_a_comma_stays_one_cause() {
        let id = crate::model::ResId::of(&json!({"kind": "Widget", "metadata": {"name": "w"}}));
        let bad = invalid(
            &id,
            "Widget.example.com \"w\" is invalid: [spec: Invalid value: \"object\": min, then max, in order, spec.name: Forbidden: fixed]".into(),
        );
        let causes = bad.status()["details"]["causes"].clone();
        assert_eq!(causes.as_array().map(Vec::len), Some(2), "{causes}");
        assert_eq!(
            causes[0]["message"],
            "Invalid value: \"object\": min, then max, in order"
        );
        assert_eq!(
            (causes[1]["field"].as_str(), causes[1]["reason"].as_str()),
            (Some("spec.name"), Some("FieldValueForbidden"))
        );
    }
}
