//! Builtin generator plugins configured through `generators:` (objects with
//! `apiVersion: builtin`), other than the ConfigMap and Secret generators, which the pipeline
//! hands to [`crate::render::generators`].
//!
//! - `IAMPolicyGenerator` makes the GKE workload-identity ServiceAccount exactly as kustomize's
//!   `api/filters/iampolicygenerator` writes it (only `cloud: gke` exists upstream);
//! - `HelmChartInflationGenerator` needs helm and the network: refused as not supported;
//! - any other `apiVersion` is an external plugin: refused, as `kubectl kustomize` refuses them
//!   (no plugin execution here);
//! - a builtin transformer kind is not a generator, as upstream says.
//!
//! Invariant: no IO.

use serde::Deserialize;
use serde_json::Value;

use crate::model::Resource;

/// The `apiVersion` of kustomize's builtin plugin configs.
pub const BUILTIN_API_VERSION: &str = "builtin";

/// A generator config could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuiltinGeneratorError {
    /// The config names a plugin that is not builtin.
    #[error(
        "external plugins are not supported (no plugin execution): unable to load external plugin '{kind}'"
    )]
    External {
        /// The config's kind.
        kind: String,
    },
    /// A builtin plugin this renderer cannot run.
    #[error("{kind} is not supported yet ({why})")]
    Unsupported {
        /// The config's kind.
        kind: String,
        /// Why.
        why: &'static str,
    },
    /// A builtin kind that exists but is not a generator.
    #[error("plugin {kind} not a generator")]
    NotAGenerator {
        /// The config's kind.
        kind: String,
    },
    /// An unknown builtin kind.
    #[error("unable to load builtin {kind}")]
    UnknownBuiltin {
        /// The config's kind.
        kind: String,
    },
    /// The config's fields do not fit the plugin.
    #[error("{kind} {name}: {cause}")]
    BadConfig {
        /// The config's kind.
        kind: String,
        /// The config's `metadata.name`.
        name: String,
        /// What is wrong.
        cause: String,
    },
    /// `IAMPolicyGenerator` for a cloud other than `gke`.
    #[error("cloud provider {cloud} not supported yet")]
    CloudNotSupported {
        /// The `cloud` field.
        cloud: String,
    },
}

/// The kinds the pipeline generates itself from builtin configs.
pub const DELEGATED_KINDS: &[&str] = &["ConfigMapGenerator", "SecretGenerator"];

/// Builtin transformer kinds (a config of one of these in `generators:` is an error).
const TRANSFORMER_KINDS: &[&str] = &[
    "AnnotationsTransformer",
    "HashTransformer",
    "ImageTagTransformer",
    "LabelTransformer",
    "NamespaceTransformer",
    "PatchJson6902Transformer",
    "PatchStrategicMergeTransformer",
    "PatchTransformer",
    "PrefixSuffixTransformer",
    "PrefixTransformer",
    "SuffixTransformer",
    "ReplicaCountTransformer",
    "ReplacementTransformer",
    "SortOrderTransformer",
    "ValueAddTransformer",
];

/// True when the config is one of kustomize's builtin plugins (`apiVersion: builtin`).
pub fn is_builtin(config: &Resource) -> bool {
    let gvk = config.gvk();
    gvk.group.is_empty() && gvk.version == BUILTIN_API_VERSION
}

/// Runs a generator config whose kind is not in [`DELEGATED_KINDS`]; what it makes records
/// the config in [`Resource::generated_by`].
pub fn generate(config: &Resource) -> Result<Vec<Resource>, BuiltinGeneratorError> {
    let kind = config.gvk().kind;
    if !is_builtin(config) {
        return Err(BuiltinGeneratorError::External { kind });
    }
    match kind.as_str() {
        "IAMPolicyGenerator" => iam_policy(config).map(|mut made| {
            made.generated_by = Some(config.id());
            vec![made]
        }),
        "HelmChartInflationGenerator" => Err(BuiltinGeneratorError::Unsupported {
            kind,
            why: "no helm, no network",
        }),
        k if TRANSFORMER_KINDS.contains(&k) => Err(BuiltinGeneratorError::NotAGenerator { kind }),
        _ => Err(BuiltinGeneratorError::UnknownBuiltin { kind }),
    }
}

/// `IAMPolicyGenerator`'s arguments (`types.IAMPolicyGeneratorArgs`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IamPolicyArgs {
    #[serde(default)]
    cloud: String,
    #[serde(default)]
    kubernetes_service: KubernetesService,
    #[serde(default)]
    service_account: ServiceAccount,
}

#[derive(Debug, Default, Deserialize)]
struct KubernetesService {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceAccount {
    #[serde(default)]
    name: String,
    #[serde(default)]
    project_id: String,
}

fn iam_policy(config: &Resource) -> Result<Resource, BuiltinGeneratorError> {
    let bad = |cause: String| BuiltinGeneratorError::BadConfig {
        kind: "IAMPolicyGenerator".to_string(),
        name: config.name().to_string(),
        cause,
    };
    let args: IamPolicyArgs =
        serde_json::from_value(config.to_value()).map_err(|e| bad(e.to_string()))?;
    if args.cloud != "gke" {
        return Err(BuiltinGeneratorError::CloudNotSupported { cloud: args.cloud });
    }
    // Upstream fills a YAML template and parses it; doing the same keeps its typing of the
    // values (a name like `123` becomes a number there too).
    let mut text = format!(
        "\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  annotations:\n    iam.gke.io/gcp-service-account: {}@{}.iam.gserviceaccount.com\n  name: {}\n",
        args.service_account.name, args.service_account.project_id, args.kubernetes_service.name
    );
    if !args.kubernetes_service.namespace.is_empty() {
        text.push_str(&format!(
            "\n  namespace: {}",
            args.kubernetes_service.namespace
        ));
    }
    let documents = crate::yaml::parse_documents(&text).map_err(|e| bad(e.to_string()))?;
    match documents.into_iter().next() {
        Some(Value::Object(object)) => Ok(Resource::new(object)),
        _ => Err(bad(
            "the generated ServiceAccount is not an object".to_string()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> Resource {
        Resource::new(value.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn gke_service_account_is_generated() {
        // Expected output from `kubectl kustomize` on the same config.
        let made = generate(&config(json!({
            "apiVersion": "builtin", "kind": "IAMPolicyGenerator",
            "metadata": {"name": "my-gke-generator"}, "cloud": "gke",
            "kubernetesService": {"namespace": "k8s-namespace", "name": "k8s-sa-name"},
            "serviceAccount": {"name": "gsa-name", "projectId": "project-id"}
        })))
        .unwrap();
        assert_eq!(
            made[0].to_value(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "annotations": {"iam.gke.io/gcp-service-account": "gsa-name@project-id.iam.gserviceaccount.com"},
                "name": "k8s-sa-name", "namespace": "k8s-namespace"}})
        );
    }

    #[test]
    fn other_clouds_helm_and_external_plugins_are_refused() {
        let err = generate(&config(
            json!({"apiVersion": "builtin", "kind": "IAMPolicyGenerator",
            "metadata": {"name": "x"}, "cloud": "aws"}),
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "cloud provider aws not supported yet");
        let err = generate(&config(
            json!({"apiVersion": "builtin", "kind": "HelmChartInflationGenerator",
            "metadata": {"name": "x"}}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "HelmChartInflationGenerator is not supported yet (no helm, no network)"
        );
        let err = generate(&config(
            json!({"apiVersion": "someteam.example.com/v1", "kind": "Gen",
            "metadata": {"name": "x"}}),
        ))
        .unwrap_err();
        assert!(matches!(err, BuiltinGeneratorError::External { .. }));
    }
}
