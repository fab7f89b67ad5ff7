//! `reconcile`: a declarative GitOps reconciler.
//!
//! A tour of the crate, in the order data flows:
//! - [`source`] reads a tree of manifests (a directory, or a git revision) behind the `Fs` trait;
//! - [`yaml`] parses YAML as kustomize does and prints it byte for byte as kustomize does;
//! - [`model`] holds the shared types: `Resource`, `ResId`, `ResMap`;
//! - [`render`] turns a kustomization into a `ResMap`, exactly as `kustomize build`;
//! - [`cluster`] is the one interface to a cluster; [`engine`] is the built-in one, [`k8s`] a
//!   Kubernetes API server reached with the `kube` crate;
//! - [`fields`] is server-side apply's field ownership (`managedFields`), pure;
//! - [`diff`] compares desired and live objects honestly, Secrets masked;
//! - [`review`] compares the rendered desired state of two git revisions (pull requests);
//! - [`plan`] computes and applies plans (order, prune, inventory, saved plans);
//! - [`promote`] carries pinned images and files from one environment folder to the next;
//! - [`rollout`] drives Canary and BlueGreen Deployments through `Cluster`;
//! - [`reports`] holds the `-o json` shapes of apply, rollout status, validate and events;
//! - [`tables`] holds kubectl's `get` columns, shared by `engine get` and the API's `Table`s;
//! - [`api`] serves the engine over the Kubernetes REST API (`engine serve`, for kubectl);
//! - [`controller`] is `reconcile watch`: a loop keeping targets converged to a repository;
//! - [`ui`] is the web UI (applications, resource trees, diffs, rollouts, the cluster);
//! - [`cli`] is the command line; only it prints, picks a backend or decides exit codes.
#![deny(missing_docs)]
// Errors carry the object's full id (group, version, kind, namespace, name) so messages can
// name it; they are built only on the failure path, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod diff;
pub mod engine;
pub mod fields;
pub mod k8s;
pub mod model;
pub mod plan;
pub mod promote;
pub mod render;
pub mod reports;
pub mod review;
pub mod rollout;
pub mod source;
pub mod tables;
pub mod ui;
pub mod yaml;
