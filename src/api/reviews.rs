//! The review resources: questions to the authenticator and the authorizer that are answered,
//! never stored (`kubectl auth can-i` is a SelfSubjectAccessReview, `can-i --list` a
//! SelfSubjectRulesReview, `kubectl auth whoami` a SelfSubjectReview; SubjectAccessReview,
//! LocalSubjectAccessReview and TokenReview ask about someone else).

use serde_json::{Value, json};

use super::auth::{Authenticator, User};
use super::rbac::{Attributes, Policy, ResourceAttributes};
use super::status::ApiError;
use super::worker::Worker;
use crate::engine::kinds::KindInfo;

/// Whether a kind is a review (answered by [`answer`]).
pub fn is_review(info: &KindInfo) -> bool {
    matches!(
        (info.group, info.kind),
        (
            "authorization.k8s.io",
            "SelfSubjectAccessReview"
                | "SelfSubjectRulesReview"
                | "SubjectAccessReview"
                | "LocalSubjectAccessReview"
        ) | ("authentication.k8s.io", "SelfSubjectReview" | "TokenReview")
    )
}

fn invalid(info: &KindInfo, field: &str, message: &str) -> ApiError {
    ApiError {
        details: Some(json!({"group": info.group, "kind": info.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]})),
        ..ApiError::new(
            422,
            "Invalid",
            format!(
                "{} in version \"v1\" is invalid: {field}: {message}",
                info.kind
            ),
        )
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The attributes a review's `spec` asks about.
fn asked(info: &KindInfo, spec: &Value) -> Result<Attributes, ApiError> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Ok(Attributes {
            verb: text(r, "/verb"),
            resource: Some(ResourceAttributes {
                group: text(r, "/group"),
                version: text(r, "/version"),
                resource: text(r, "/resource"),
                subresource: text(r, "/subresource"),
                namespace: text(r, "/namespace"),
                name: text(r, "/name"),
            }),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: text(n, "/verb"),
            resource: None,
            path: text(n, "/path"),
        }),
        (Some(_), Some(_)) => Err(invalid(
            info,
            "spec.nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            info,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// Answers the POST of a review of kind `info` by `user`; `url_namespace` is the namespace in
/// the path (LocalSubjectAccessReview).
pub async fn answer(
    worker: &Worker,
    authenticator: &Authenticator,
    user: &User,
    info: &'static KindInfo,
    url_namespace: Option<&str>,
    mut review: Value,
) -> Result<Value, ApiError> {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let load =
        |namespace: String| async move { worker.call(move |e| Policy::load(e, &namespace)).await? };
    let status = match info.kind {
        "SelfSubjectReview" => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = Value::from(user.uid.as_str());
            }
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            json!({"userInfo": info})
        }
        "TokenReview" => {
            let token = text(&spec, "/token");
            match authenticator.user_of_token(&token) {
                Some(found) => {
                    let mut info = json!({"username": found.name, "groups": found.groups});
                    if !found.uid.is_empty() {
                        info["uid"] = Value::from(found.uid.as_str());
                    }
                    json!({"authenticated": true, "user": info})
                }
                None => json!({"authenticated": false, "user": {},
                    "error": "invalid bearer token"}),
            }
        }
        "SelfSubjectRulesReview" => {
            let namespace = text(&spec, "/namespace");
            load(namespace.clone())
                .await?
                .rules_review(user, &namespace)
        }
        _ => {
            let attributes = asked(info, &spec)?;
            let subject = if info.kind == "SelfSubjectAccessReview" {
                user.clone()
            } else {
                let name = text(&spec, "/user");
                let groups: Vec<String> = spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if name.is_empty() && groups.is_empty() {
                    return Err(invalid(
                        info,
                        "spec.user",
                        "at least one of user or group must be specified",
                    ));
                }
                let extra = spec
                    .get("extra")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(key, values)| {
                        let values = values
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect();
                        (key.clone(), values)
                    })
                    .collect();
                User {
                    name,
                    uid: text(&spec, "/uid"),
                    groups,
                    extra,
                }
            };
            if let Some(url_ns) = url_namespace
                && attributes.namespace() != url_ns
            {
                return Err(invalid(
                    info,
                    "spec.resourceAttributes.namespace",
                    &format!("must match namespace: {url_ns}"),
                ));
            }
            let decision = load(attributes.namespace().to_string())
                .await?
                .authorize(&subject, &attributes);
            let mut status = json!({"allowed": decision.allowed});
            if !decision.reason.is_empty() {
                status["reason"] = Value::from(decision.reason);
            }
            status
        }
    };
    if info.kind == "TokenReview"
        && let Some(spec) = review.get_mut("spec").and_then(Value::as_object_mut)
    {
        // The token is not echoed back.
        spec.remove("token");
    }
    review["apiVersion"] = Value::from(info.api_version());
    review["kind"] = Value::from(info.kind);
    if review.get("metadata").is_none_or(|m| !m.is_object()) {
        review["metadata"] = json!({});
    }
    review["status"] = status;
    Ok(review)
}
