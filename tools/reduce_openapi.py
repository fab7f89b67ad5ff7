#!/usr/bin/env python3
"""Regenerates src/render/patch/kubernetes_v1_21.json, the OpenAPI data strategic merge reads.

Source: the Kubernetes v1.21 OpenAPI definitions as shipped in the PyPI package
`kubernetes-validate` (Apache-2.0), `kubernetes-json-schema/v1.21.0-local/_definitions.json`.
kustomize v5.5 embeds Kubernetes v1.21.2's document; the merge metadata is the same.

The reduction keeps only what merging can observe: `$ref`s, array and map element schemas,
`type` (always a list), the patch extensions (`x-kubernetes-patch-strategy`,
`x-kubernetes-patch-merge-key`, `x-kubernetes-list-map-keys`) and
`x-kubernetes-group-version-kind`. Properties that are plain scalars are dropped.

    python3 tools/reduce_openapi.py            # downloads the package with pip into a temp dir
"""
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "kubernetes-validate==1.24.0"
MEMBER = "kubernetes-json-schema/v1.21.0-local/_definitions.json"
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "render", "patch", "kubernetes_v1_21.json")
EXTENSIONS = ("x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key", "x-kubernetes-list-map-keys")


def reduce_schema(schema):
    out = {}
    if "$ref" in schema:
        out["$ref"] = schema["$ref"]
    if "properties" in schema:
        props = {}
        for name, prop in sorted(schema["properties"].items()):
            reduced = reduce_schema(prop)
            if set(reduced) - {"type"}:
                props[name] = reduced
        if props:
            out["properties"] = props
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            reduced = reduce_schema(schema[key])
            # An element schema that is only a scalar type merges like no schema at all,
            # unless the list itself carries a patch strategy (a merged list of scalars).
            if set(reduced) - {"type"} or any(ext in schema for ext in EXTENSIONS):
                out[key] = reduced
    if "type" not in schema and any("type" in alt for alt in schema.get("oneOf", [])):
        # kubernetes-validate spells int-or-string and quantities as a oneOf; the
        # Kubernetes document (and so kustomize) says `type: string, format: …`.
        out["type"] = ["string"]
    if "type" in schema:
        kind = schema["type"]
        out["type"] = kind if isinstance(kind, list) else [kind]
    for ext in EXTENSIONS:
        if ext in schema:
            out[ext] = schema[ext]
    if "x-kubernetes-group-version-kind" in schema:
        out["x-kubernetes-group-version-kind"] = schema["x-kubernetes-group-version-kind"]
    return out


def served_by_default(name):
    """kustomize embeds the document a default API server serves: no alpha API groups and no
    alpha-gated types (EphemeralContainers is an alpha subresource in v1.21)."""
    version = name.split(".")[-2]
    return "alpha" not in version and name != "io.k8s.api.core.v1.EphemeralContainers"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        PACKAGE, "-d", tmp], check=True, stdout=subprocess.DEVNULL)
        archive = glob.glob(os.path.join(tmp, "*.tar.gz"))[0]
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(MEMBER))
            definitions = json.load(tar.extractfile(member))["definitions"]
    reduced = {
        name: reduce_schema(schema)
        for name, schema in sorted(definitions.items())
        if served_by_default(name)
    }
    with open(OUT, "w") as f:
        json.dump({"definitions": reduced}, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"wrote {len(reduced)} definitions to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
