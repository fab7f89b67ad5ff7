//! Impersonation, as kube-apiserver's `WithImpersonation` filter does it (`kubectl --as USER
//! --as-group G --as-uid U`): the `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`
//! and `Impersonate-Extra-KEY` headers ask to act as someone else; each part needs the
//! `impersonate` verb on `users`, `serviceaccounts`, `groups`, `uids` or `userextras/KEY`
//! for that name, and the request is then authenticated as the impersonated user.
//!
//! Invariant: the requester's own permissions decide every part before the user is
//! switched; the first part refused answers the API server's Forbidden, naming it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{AUTHENTICATED, User};
use super::rbac::{self, Attributes, Policy, ResourceAttributes};
use super::status::ApiError;
use super::worker::Worker;

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";

/// One thing a request asks to impersonate (upstream builds an `ObjectReference` for each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// `Impersonate-User: system:serviceaccount:NS:NAME`.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `Impersonate-User` naming anyone else.
    User(String),
    /// One `Impersonate-Group`.
    Group(String),
    /// One value of `Impersonate-Extra-KEY`.
    Extra {
        /// The key (lowercase, percent-decoded).
        key: String,
        /// The value.
        value: String,
    },
    /// `Impersonate-Uid`.
    Uid(String),
}

/// Why impersonation failed.
#[derive(Debug)]
pub enum Refused {
    /// Groups, extras or a UID without a user: upstream answers a plain-text 500
    /// (`responsewriters.InternalError`).
    NoUser(String),
    /// The requester may not impersonate one of the parts, or the policy could not be read.
    Denied(ApiError),
}

impl Asked {
    /// The request upstream authorizes for this part (verb `impersonate`).
    fn attributes(&self) -> Attributes {
        let (group, version, resource, subresource, namespace, name) = match self {
            Asked::ServiceAccount { namespace, name } => {
                ("", "v1", "serviceaccounts", "", namespace.as_str(), name)
            }
            Asked::User(name) => ("", "v1", "users", "", "", name),
            Asked::Group(name) => ("", "v1", "groups", "", "", name),
            Asked::Extra { key, value } => (
                AUTHENTICATION_GROUP,
                "v1",
                "userextras",
                key.as_str(),
                "",
                value,
            ),
            Asked::Uid(uid) => (AUTHENTICATION_GROUP, "v1", "uids", "", "", uid),
        };
        Attributes {
            verb: "impersonate".into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                version: version.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: namespace.into(),
                name: name.clone(),
            }),
            path: String::new(),
        }
    }

    /// Go's `%v` of the `ObjectReference` upstream builds (its error text quotes them).
    fn go_reference(&self) -> String {
        let api = "authentication.k8s.io/v1";
        // Kind Namespace Name UID APIVersion ResourceVersion FieldPath
        let fields: [&str; 7] = match self {
            Asked::ServiceAccount { namespace, name } => {
                ["ServiceAccount", namespace, name, "", "", "", ""]
            }
            Asked::User(name) => ["User", "", name, "", "", "", ""],
            Asked::Group(name) => ["Group", "", name, "", "", "", ""],
            Asked::Extra { key, value } => ["UserExtra", "", value, "", api, "", key],
            Asked::Uid(uid) => ["UID", "", uid, "", api, "", ""],
        };
        format!("{{{}}}", fields.join(" "))
    }
}

/// What the headers ask, in upstream's order (user, groups, extras, UID); empty when the
/// request impersonates no one.
pub fn asked(headers: &HeaderMap) -> Result<Vec<Asked>, Refused> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let mut asked = Vec::new();
    let user = values(USER_HEADER).into_iter().next().unwrap_or_default();
    if !user.is_empty() {
        asked.push(match split_service_account(&user) {
            Some((namespace, name)) => Asked::ServiceAccount { namespace, name },
            None => Asked::User(user.clone()),
        });
    }
    asked.extend(values(GROUP_HEADER).into_iter().map(Asked::Group));
    // Header maps are unordered upstream; keys in name order here, so errors are stable.
    let mut extras: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in headers.keys() {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            extras
                .entry(path_unescape(key))
                .or_default()
                .extend(values(name.as_str()));
        }
    }
    for (key, values) in extras {
        asked.extend(values.into_iter().map(|value| Asked::Extra {
            key: key.clone(),
            value,
        }));
    }
    let uid = values(UID_HEADER).into_iter().next().unwrap_or_default();
    if !uid.is_empty() {
        asked.push(Asked::Uid(uid));
    }
    if !asked.is_empty() && user.is_empty() {
        let listed: Vec<String> = asked.iter().map(Asked::go_reference).collect();
        return Err(Refused::NoUser(format!(
            "requested [{}] without impersonating a user",
            listed.join(" ")
        )));
    }
    Ok(asked)
}

/// The user `requester` acts as after `asked` (not empty), each part authorized against
/// the policy `policy_in` reads for a namespace.
pub fn impersonate(
    requester: &User,
    asked: &[Asked],
    mut policy_in: impl FnMut(&str) -> Result<Policy, ApiError>,
) -> Result<User, Refused> {
    let groups_given = asked.iter().any(|a| matches!(a, Asked::Group(_)));
    let mut user = User {
        name: String::new(),
        uid: String::new(),
        groups: Vec::new(),
        extra: BTreeMap::new(),
    };
    for part in asked {
        let attributes = part.attributes();
        let policy = policy_in(attributes.namespace()).map_err(Refused::Denied)?;
        let decision = policy.authorize(requester, &attributes);
        if !decision.allowed {
            return Err(Refused::Denied(rbac::forbidden(
                requester,
                &attributes,
                &decision.reason,
            )));
        }
        match part {
            Asked::ServiceAccount { namespace, name } => {
                user.name = format!("system:serviceaccount:{namespace}:{name}");
                if !groups_given {
                    user.groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Asked::User(name) => user.name = name.clone(),
            Asked::Group(group) => user.groups.push(group.clone()),
            Asked::Extra { key, value } => user
                .extra
                .entry(key.clone())
                .or_default()
                .push(value.clone()),
            Asked::Uid(uid) => user.uid = uid.clone(),
        }
    }
    let has = |group: &str| user.groups.iter().any(|g| g == group);
    if user.name != ANONYMOUS {
        if !has(AUTHENTICATED) && !has(UNAUTHENTICATED) {
            user.groups.push(AUTHENTICATED.into());
        }
    } else if !has(UNAUTHENTICATED) {
        user.groups.push(UNAUTHENTICATED.into());
    }
    Ok(user)
}

/// The user a request acts as: `requester` itself when it impersonates no one, else the
/// impersonated user once every part is allowed (one engine job reads the policy); the
/// refusal is the response to send.
pub async fn switch(
    worker: &Worker,
    requester: Arc<User>,
    headers: &HeaderMap,
    uri: &str,
) -> Result<Arc<User>, Response> {
    let parts = match asked(headers) {
        Ok(parts) if parts.is_empty() => return Ok(requester),
        Ok(parts) => parts,
        Err(refused) => return Err(refusal(refused, uri)),
    };
    let acting = requester.clone();
    let switched = worker
        .call(move |engine| {
            impersonate(&acting, &parts, |namespace| Policy::load(engine, namespace))
        })
        .await;
    match switched {
        Ok(Ok(user)) => Ok(Arc::new(user)),
        Ok(Err(refused)) => Err(refusal(refused, uri)),
        Err(err) => Err(err.into_response()),
    }
}

fn refusal(refused: Refused, uri: &str) -> Response {
    match refused {
        Refused::Denied(err) => err.into_response(),
        Refused::NoUser(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("x-content-type-options", "nosniff"),
            ],
            format!("{}\n", internal_error_text(uri, &message)),
        )
            .into_response(),
    }
}

/// `system:serviceaccount:NS:NAME` split, when both parts are valid names
/// (upstream's `serviceaccount.SplitUsername`).
fn split_service_account(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [namespace, name] = parts.as_slice() else {
        return None;
    };
    use crate::engine::admission::{is_label, is_subdomain};
    (is_label(namespace) && is_subdomain(name)).then(|| (namespace.to_string(), name.to_string()))
}

/// `url.PathUnescape`, keeping the text as it is when an escape is malformed.
fn path_unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return text.to_string(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The plain-text 500 upstream's `InternalError` writes for `uri`.
pub fn internal_error_text(uri: &str, message: &str) -> String {
    let text = format!("Internal Server Error: {}: {message}", json!(uri));
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: BTreeMap::new(),
        }
    }

    /// A policy where `ops` may impersonate user `jane`, group `dev` and any service account
    /// in `shop`.
    fn policy(namespace: &str) -> Result<Policy, ApiError> {
        let mut policy = Policy {
            cluster_roles: vec![json!({"metadata": {"name": "impersonator"}, "rules": [
                {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"],
                 "resourceNames": ["jane"]},
                {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["groups"],
                 "resourceNames": ["dev"]},
                {"verbs": ["impersonate"], "apiGroups": ["authentication.k8s.io"],
                 "resources": ["userextras/scopes"]}]})],
            cluster_role_bindings: vec![json!({"metadata": {"name": "ops-impersonate"},
                "roleRef": {"kind": "ClusterRole", "name": "impersonator"},
                "subjects": [{"kind": "Group", "name": "ops"}]})],
            ..Policy::default()
        };
        if namespace == "shop" {
            policy.roles = vec![json!({"metadata": {"name": "sa", "namespace": "shop"},
                "rules": [{"verbs": ["impersonate"], "apiGroups": [""],
                           "resources": ["serviceaccounts"]}]})];
            policy.role_bindings =
                vec![json!({"metadata": {"name": "ops-sa", "namespace": "shop"},
                "roleRef": {"kind": "Role", "name": "sa"},
                "subjects": [{"kind": "Group", "name": "ops"}]})];
        }
        Ok(policy)
    }

    #[test]
    fn headers_read_as_upstream_builds_its_requests() {
        assert_eq!(asked(&HeaderMap::new()).ok(), Some(vec![]));
        let parts = asked(&headers(&[
            ("impersonate-user", "system:serviceaccount:shop:ci"),
            ("impersonate-group", "a"),
            ("impersonate-group", "b"),
            ("impersonate-extra-scopes%2Fx", "s1"),
            ("impersonate-uid", "u-1"),
        ]))
        .ok()
        .unwrap_or_default();
        assert_eq!(
            parts,
            vec![
                Asked::ServiceAccount {
                    namespace: "shop".into(),
                    name: "ci".into()
                },
                Asked::Group("a".into()),
                Asked::Group("b".into()),
                Asked::Extra {
                    key: "scopes/x".into(),
                    value: "s1".into()
                },
                Asked::Uid("u-1".into()),
            ]
        );
        // Not a valid service-account name: a plain user.
        let plain = asked(&headers(&[(
            "impersonate-user",
            "system:serviceaccount:a:b:c",
        )]));
        assert!(matches!(plain.as_deref(), Ok([Asked::User(_)])));
        let Err(Refused::NoUser(message)) = asked(&headers(&[("impersonate-group", "dev")])) else {
            panic!("groups without a user are refused");
        };
        assert_eq!(
            message,
            "requested [{Group  dev    }] without impersonating a user"
        );
        assert_eq!(
            internal_error_text("/api/v1/pods?x=<", "m"),
            "Internal Server Error: \"/api/v1/pods?x=&lt;\": m"
        );
    }

    #[test]
    fn each_part_needs_the_impersonate_verb_and_the_user_switches() {
        let ops = user("olga", &["ops", AUTHENTICATED]);
        let as_jane = [Asked::User("jane".into()), Asked::Group("dev".into())];
        let jane = impersonate(&ops, &as_jane, policy).ok();
        assert_eq!(
            jane.as_ref().map(|u| (u.name.as_str(), u.groups.clone())),
            Some(("jane", vec!["dev".to_string(), AUTHENTICATED.to_string()]))
        );
        let extra = [
            Asked::User("jane".into()),
            Asked::Extra {
                key: "scopes".into(),
                value: "read".into(),
            },
        ];
        let with_extra = impersonate(&ops, &extra, policy).ok();
        assert_eq!(
            with_extra.map(|u| json!(u.extra)),
            Some(json!({"scopes": ["read"]}))
        );
        // A service account in its namespace, with its groups.
        let sa = [Asked::ServiceAccount {
            namespace: "shop".into(),
            name: "ci".into(),
        }];
        let robot = impersonate(&ops, &sa, policy).ok();
        assert_eq!(
            robot.map(|u| u.groups),
            Some(vec![
                "system:serviceaccounts".to_string(),
                "system:serviceaccounts:shop".to_string(),
                AUTHENTICATED.to_string()
            ])
        );
        // Refused parts, in upstream's words.
        let refused = |asked: &[Asked], who: &User| match impersonate(who, asked, policy) {
            Err(Refused::Denied(err)) => (err.code, err.message),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            refused(&[Asked::User("root".into())], &ops),
            (
                403,
                "users \"root\" is forbidden: User \"olga\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope".to_string()
            )
        );
        assert_eq!(
            refused(
                &[
                    Asked::User("jane".into()),
                    Asked::Group("system:masters".into())
                ],
                &ops
            )
            .1,
            "groups \"system:masters\" is forbidden: User \"olga\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            refused(&[Asked::User("jane".into()), Asked::Uid("u".into())], &ops).1,
            "uids.authentication.k8s.io \"u\" is forbidden: User \"olga\" cannot impersonate resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope"
        );
        let elsewhere = [Asked::ServiceAccount {
            namespace: "prod".into(),
            name: "ci".into(),
        }];
        assert!(
            refused(&elsewhere, &ops)
                .1
                .ends_with("in the namespace \"prod\"")
        );
        let jane = user("jane", &[AUTHENTICATED]);
        assert!(
            refused(&[Asked::User("olga".into())], &jane)
                .1
                .starts_with("users \"olga\" is forbidden: User \"jane\" cannot impersonate")
        );
    }
}
