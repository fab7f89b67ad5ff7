//! The generated monorepo the benchmarks share: N applications, each a base (Deployment,
//! Service, HPA, ConfigMap and Secret generators) with dev and prod overlays (patches,
//! images, labels, namePrefix), and `all-prod`, the aggregate of every prod overlay.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Writes the monorepo and returns every overlay directory.
pub fn generate_monorepo(root: &Path, apps: usize) -> Vec<PathBuf> {
    let mut overlays = Vec::new();
    let mut aggregate = String::from("resources:\n");
    for i in 0..apps {
        let name = format!("app{i:03}");
        let app = root.join("apps").join(&name);
        write(
            &app.join("base/kustomization.yaml"),
            &base_kustomization(&name),
        );
        write(&app.join("base/deployment.yaml"), &deployment(&name, i));
        write(&app.join("base/service.yaml"), &service(&name));
        write(&app.join("base/hpa.yaml"), &hpa(&name));
        write(
            &app.join("base/app.properties"),
            &format!("name={name}\nport=8080\nfeature.x=on\n"),
        );
        for env in ["dev", "prod"] {
            let overlay = app.join("overlays").join(env);
            write(
                &overlay.join("kustomization.yaml"),
                &overlay_kustomization(&name, env, i),
            );
            write(&overlay.join("patch.yaml"), &overlay_patch(&name, env));
            overlays.push(overlay);
        }
        writeln!(aggregate, "- ../apps/{name}/overlays/prod").expect("string write");
    }
    write(&root.join("all-prod/kustomization.yaml"), &aggregate);
    overlays
}

pub fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create directory");
    fs::write(path, text).expect("write file");
}

fn base_kustomization(name: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- deployment.yaml
- service.yaml
- hpa.yaml
labels:
- pairs:
    app.kubernetes.io/name: {name}
  includeSelectors: true
configMapGenerator:
- name: {name}-config
  files:
  - app.properties
  literals:
  - MODE=base
secretGenerator:
- name: {name}-secret
  literals:
  - TOKEN=t-{name}
"
    )
}

fn deployment(name: &str, i: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: registry.example.com/team/{name}:1.0.{i}
        ports:
        - containerPort: 8080
        envFrom:
        - configMapRef:
            name: {name}-config
        env:
        - name: TOKEN
          valueFrom:
            secretKeyRef:
              name: {name}-secret
              key: TOKEN
        volumeMounts:
        - name: config
          mountPath: /etc/app
      volumes:
      - name: config
        configMap:
          name: {name}-config
",
        replicas = 1 + i % 3
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

fn hpa(name: &str) -> String {
    format!(
        "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 70
"
    )
}

fn overlay_kustomization(name: &str, env: &str, i: usize) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {env}-apps
namePrefix: {env}-
resources:
- ../../base
labels:
- pairs:
    environment: {env}
images:
- name: registry.example.com/team/{name}
  newTag: 2.{i}.0-{env}
replicas:
- name: {name}
  count: {count}
patches:
- path: patch.yaml
- target:
    kind: Deployment
  patch: |-
    - op: add
      path: /spec/template/metadata/annotations
      value:
        team: team-{team}
configMapGenerator:
- name: {name}-config
  behavior: merge
  literals:
  - MODE={env}
",
        count = if env == "prod" { 3 } else { 1 },
        team = i % 7
    )
}

fn overlay_patch(name: &str, env: &str) -> String {
    let (cpu, memory) = if env == "prod" {
        ("500m", "512Mi")
    } else {
        ("50m", "64Mi")
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
      - name: main
        resources:
          requests:
            cpu: {cpu}
            memory: {memory}
"
    )
}
