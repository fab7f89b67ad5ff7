//! YAML in and out, with kustomize's exact semantics.
