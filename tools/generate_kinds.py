#!/usr/bin/env python3
"""Regenerates src/engine/kinds_table.rs, the built-in kinds of Kubernetes v1.31 the engine serves.

Sources (both Apache-2.0, fetched with pip into a temp dir):
- the REST paths of the Kubernetes v1.31 OpenAPI document, as the PyPI package `kubernetes`
  31.0.0 (the official client generated from it) spells them, one method per path and verb:
  `'/apis/apps/v1/namespaces/{namespace}/deployments/{name}', 'GET'` + `response_type='V1Deployment'`.
  They give each resource's group, version, plural, scope (a `namespaces/{namespace}/` path),
  verbs and subresources;
- the v1.31 OpenAPI definitions shipped in the PyPI package `kubernetes-validate` 1.31.0, whose
  `x-kubernetes-group-version-kind` confirms every kind the paths name.

What the OpenAPI document does not carry comes from the API server's registry code and is
listed below by hand, with where it comes from: short names and categories (each registry's
`ShortNames()`/`Categories()`), the name rule of `ValidateObjectMeta` (each kind's
`ValidateXName`), and which non-GA versions a default API server serves.

It also writes src/engine/schema_v1_31.json: the same definitions reduced to what
server-side field validation reads (properties, element schemas, scalar types), for every
kind of the table and what they reference.

    python3 tools/generate_kinds.py          # downloads the packages with pip into a temp dir
    python3 tools/generate_kinds.py DIR      # reuses (or fills) DIR as the download folder
"""
import glob
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

CLIENT = "kubernetes==31.0.0"
VALIDATE = "kubernetes-validate==1.31.0"
DEFINITIONS = "kubernetes-json-schema/v1.31.0-local/_definitions.json"
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "engine", "kinds_table.rs")
SCHEMA_OUT = os.path.join(os.path.dirname(__file__), "..", "src", "engine", "schema_v1_31.json")

# A default v1.31 API server serves every GA version and, of the betas, only those enabled
# before the "new beta APIs are off by default" rule (KEP-3136): flowcontrol v1beta3.
SERVED_BETAS = {("flowcontrol.apiserver.k8s.io", "v1beta3")}

# pkg/registry/*/storage ShortNames().
SHORT_NAMES = {
    ("", "componentstatuses"): ["cs"],
    ("", "configmaps"): ["cm"],
    ("", "endpoints"): ["ep"],
    ("", "events"): ["ev"],
    ("", "limitranges"): ["limits"],
    ("", "namespaces"): ["ns"],
    ("", "nodes"): ["no"],
    ("", "persistentvolumeclaims"): ["pvc"],
    ("", "persistentvolumes"): ["pv"],
    ("", "pods"): ["po"],
    ("", "replicationcontrollers"): ["rc"],
    ("", "resourcequotas"): ["quota"],
    ("", "serviceaccounts"): ["sa"],
    ("", "services"): ["svc"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["crd", "crds"],
    ("apps", "daemonsets"): ["ds"],
    ("apps", "deployments"): ["deploy"],
    ("apps", "replicasets"): ["rs"],
    ("apps", "statefulsets"): ["sts"],
    ("autoscaling", "horizontalpodautoscalers"): ["hpa"],
    ("batch", "cronjobs"): ["cj"],
    ("certificates.k8s.io", "certificatesigningrequests"): ["csr"],
    ("events.k8s.io", "events"): ["ev"],
    ("networking.k8s.io", "ingresses"): ["ing"],
    ("networking.k8s.io", "networkpolicies"): ["netpol"],
    ("policy", "poddisruptionbudgets"): ["pdb"],
    ("scheduling.k8s.io", "priorityclasses"): ["pc"],
    ("storage.k8s.io", "storageclasses"): ["sc"],
}

# pkg/registry/*/storage Categories().
ALL = ["all"]
API_EXTENSIONS = ["api-extensions"]
CATEGORIES = {
    ("", "pods"): ALL,
    ("", "replicationcontrollers"): ALL,
    ("", "services"): ALL,
    ("apps", "daemonsets"): ALL,
    ("apps", "deployments"): ALL,
    ("apps", "replicasets"): ALL,
    ("apps", "statefulsets"): ALL,
    ("autoscaling", "horizontalpodautoscalers"): ALL,
    ("batch", "cronjobs"): ALL,
    ("batch", "jobs"): ALL,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): API_EXTENSIONS,
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): API_EXTENSIONS,
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): API_EXTENSIONS,
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): API_EXTENSIONS,
    ("apiextensions.k8s.io", "customresourcedefinitions"): API_EXTENSIONS,
    ("apiregistration.k8s.io", "apiservices"): API_EXTENSIONS,
}

# The name rule each kind's `ValidateObjectMeta` call is given (pkg/apis/*/validation);
# every kind not listed uses `NameIsDNSSubdomain`.
NAME_RULES = {
    ("", "namespaces"): "Label",
    ("", "services"): "Dns1035Label",
    ("rbac.authorization.k8s.io", "roles"): "PathSegment",
    ("rbac.authorization.k8s.io", "rolebindings"): "PathSegment",
    ("rbac.authorization.k8s.io", "clusterroles"): "PathSegment",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "PathSegment",
}

VERB_ORDER = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CALL = re.compile(
    r"'(/apis?/[^']*)', '(GET|POST|PUT|PATCH|DELETE)',.*?response_type=(?:'(\w+)'|None)",
    re.S,
)
VERSION_PREFIX = re.compile(r"^[A-Za-z]*?V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])")


def version_rank(version):
    """Kubernetes' version priority: GA before beta before alpha, higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor)


def served(group, version):
    return re.fullmatch(r"v\d+", version) is not None or (group, version) in SERVED_BETAS


def fetch(tmp, package):
    """Downloads one sdist into its own folder of `tmp` and returns its path."""
    folder = os.path.join(tmp, package.split("==")[0])
    found = glob.glob(os.path.join(folder, "*.tar.gz"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    package, "-d", folder], check=True, stdout=subprocess.DEVNULL)
    return glob.glob(os.path.join(folder, "*.tar.gz"))[0]


def read_sources(tmp):
    validate = fetch(tmp, VALIDATE)
    with tarfile.open(validate) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(DEFINITIONS))
        document = json.load(tar.extractfile(member))
        definitions = document.get("$defs") or document["definitions"]
    client = fetch(tmp, CLIENT)
    sources = []
    with tarfile.open(client) as tar:
        for m in tar.getmembers():
            if re.search(r"/kubernetes/client/api/\w+_api\.py$", m.name):
                sources.append(tar.extractfile(m).read().decode())
    return definitions, sources


def parse_path(path):
    """(group, version, namespaced, plural, has_name, subresource) or None."""
    parts = path.strip("/").split("/")
    if len(parts) < 3:
        return None
    if parts[0] == "api":
        group, rest = "", parts[1:]
    else:
        group, rest = parts[1], parts[2:]
    if len(rest) < 2 or "watch" in rest:
        return None
    version, rest = rest[0], rest[1:]
    namespaced = len(rest) >= 3 and rest[0] == "namespaces" and rest[1] == "{namespace}"
    if namespaced:
        rest = rest[2:]
    plural = rest[0]
    has_name = len(rest) >= 2 and rest[1] == "{name}"
    sub = rest[2] if has_name and len(rest) >= 3 else None
    if len(rest) >= 2 and not has_name:
        return None
    return group, version, namespaced, plural, has_name, sub


def reduce_schema(schema):
    """The shape field validation checks: `t` a type (object, array, string, integer, number,
    boolean, int-or-string, quantity; absent = anything), `p` properties, `i` the element
    schema of an array, `a` the value schema of a map, `r` a reference to another definition."""
    out = {}
    if "$ref" in schema:
        out["r"] = schema["$ref"].split("/")[-1]
        return out
    alternatives = {t for alt in schema.get("oneOf", []) for t in alt.get("type", [])} - {"null"}
    if alternatives == {"string", "integer"}:
        out["t"] = "int-or-string"
    elif alternatives == {"string", "number"}:
        out["t"] = "quantity"
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    kinds = [k for k in kinds if k != "null"]
    if len(kinds) == 1:
        out["t"] = kinds[0]
    if "properties" in schema:
        out["p"] = {name: reduce_schema(prop) for name, prop in sorted(schema["properties"].items())}
    if isinstance(schema.get("items"), dict):
        out["i"] = reduce_schema(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["a"] = reduce_schema(schema["additionalProperties"])
    return out


def reachable(definitions, roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(re.findall(r'"#/(?:\$defs|definitions)/([^"]+)"', json.dumps(definitions[name])))
    return seen


def main():
    cache = sys.argv[1] if len(sys.argv) > 1 else None
    if cache:
        os.makedirs(cache, exist_ok=True)
        definitions, sources = read_sources(cache)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            definitions, sources = read_sources(tmp)
    gvks = {}
    for name, schema in definitions.items():
        for g in schema.get("x-kubernetes-group-version-kind", []):
            gvks[(g["group"], g["version"], g["kind"])] = name

    resources = {}  # (group, version, plural) -> facts
    for text in sources:
        for path, method, response in CALL.findall(text):
            parsed = parse_path(path)
            if parsed is None:
                continue
            group, version, namespaced, plural, has_name, sub = parsed
            if not served(group, version):
                continue
            r = resources.setdefault((group, version, plural), {
                "namespaced": False, "verbs": set(), "subresources": set(), "kind": None})
            if namespaced:
                r["namespaced"] = True
            if sub:
                r["subresources"].add(sub)
                continue
            verb = {
                (False, "GET"): "list", (False, "POST"): "create", (False, "DELETE"): "deletecollection",
                (True, "GET"): "get", (True, "PUT"): "update", (True, "PATCH"): "patch",
                (True, "DELETE"): "delete",
            }.get((has_name, method))
            if verb:
                r["verbs"].add(verb)
                if verb == "list":
                    r["verbs"].add("watch")
            if response and verb in ("get", "create") and response != "V1Status":
                r["kind"] = VERSION_PREFIX.sub("", response)
    # A namespaced resource also has a cluster-wide list path: scope comes from any
    # `namespaces/{namespace}/` path, and `namespaces` itself is cluster-scoped.
    kinds = {}  # (group, kind) -> entry
    for (group, version, plural), r in sorted(resources.items()):
        kind = r["kind"]
        if kind is None:
            continue
        if (group, version, kind) not in gvks:
            sys.exit(f"{group}/{version} {plural}: kind {kind} not in the OpenAPI definitions")
        entry = kinds.setdefault((group, kind), {
            "plural": plural, "namespaced": r["namespaced"], "versions": [],
            "verbs": set(), "subresources": set()})
        if entry["plural"] != plural or entry["namespaced"] != r["namespaced"]:
            sys.exit(f"{group} {kind}: versions disagree on plural or scope")
        entry["versions"].append(version)
        entry.setdefault("definitions", {})[version] = gvks[(group, version, kind)]
        entry["verbs"] |= r["verbs"]
        entry["subresources"] |= r["subresources"]

    def strs(items):
        return "&[" + ", ".join(f'"{s}"' for s in items) + "]"

    lines = [
        "//! Every built-in kind a default Kubernetes v1.31 API server serves.",
        "//!",
        "//! @generated by `python3 tools/generate_kinds.py` from the Kubernetes v1.31 OpenAPI",
        "//! document (paths: PyPI `kubernetes` 31.0.0; kinds: PyPI `kubernetes-validate` 1.31.0).",
        "//! Do not edit: change the tool and run it again.",
        "",
        "use super::kinds::{KindInfo, NameRule};",
        "",
        "/// The built-in kinds, sorted by group then kind; versions preferred first.",
        "#[rustfmt::skip]",
        "pub static BUILTIN: &[KindInfo] = &[",
    ]
    for (group, kind), e in sorted(kinds.items()):
        versions = sorted(e["versions"], key=version_rank)
        key = (group, e["plural"])
        verbs = [v for v in VERB_ORDER if v in e["verbs"]]
        lines.append(
            f'    KindInfo {{ kind: "{kind}", key: "{kind}", group: "{group}", version: "{versions[0]}", '
            f'versions: {strs(versions)}, namespaced: {str(e["namespaced"]).lower()}, '
            f'plural: "{e["plural"]}", singular: "{kind.lower()}", '
            f'short: {strs(SHORT_NAMES.get(key, []))}, categories: {strs(CATEGORIES.get(key, []))}, '
            f'verbs: {strs(verbs)}, subresources: {strs(sorted(e["subresources"]))}, '
            f'name_rule: NameRule::{NAME_RULES.get(key, "Subdomain")} }},'
        )
    lines.append("];")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(kinds)} kinds to {os.path.normpath(OUT)}")
    roots = {f"{group}/{version}/{kind}".lstrip("/"): name
             for (group, kind), e in kinds.items() for version, name in e["definitions"].items()}
    names = reachable(definitions, roots.values())
    reduced = {"kinds": roots, "definitions": {n: reduce_schema(definitions[n]) for n in sorted(names)}}
    with open(SCHEMA_OUT, "w") as f:
        json.dump(reduced, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(f"wrote {len(names)} definitions to {os.path.normpath(SCHEMA_OUT)}")


if __name__ == "__main__":
    main()
